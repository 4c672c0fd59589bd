//! The authorization judge (tests/judge/judge.py): what real AWS would decide, from the
//! state moto holds, with an IAM policy evaluator nobody on this team wrote
//! (principalmapper) and the STS rules of tests/judge/sts_rules.py.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::{repo, venv_bin, GraphServer, Moto};

/// Asks the judge about one AWS endpoint, with the Entra issuers' keys served by a local
/// Graph server.
pub struct Judge {
    aws: String,
    hosts: Value,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Judge {
    pub fn new(moto: &Moto, graph: &GraphServer) -> Judge {
        Judge {
            aws: moto.endpoint.clone(),
            hosts: json!({"sts.windows.net": graph.base, "login.microsoftonline.com": graph.base}),
        }
    }

    /// A judge of identity policies alone (no AWS state).
    pub fn policies_only() -> Judge {
        Judge {
            aws: String::new(),
            hosts: json!({}),
        }
    }

    /// Answers each check (`{"op": "assume", ...}` or `{"op": "request", ...}`) in order.
    pub fn check(&self, checks: Vec<Value>) -> Vec<Value> {
        let mut child = Command::new(venv_bin("python"))
            .arg(repo().join("tests/judge/judge.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the judge");
        let req = json!({"aws": self.aws, "hosts": self.hosts, "now": now(), "checks": checks});
        child
            .stdin
            .take()
            .unwrap()
            .write_all(req.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "judge failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the judge answers JSON")
    }

    /// May this token assume this role now? The answer carries the session when it may.
    pub fn assume(&self, role: &str, token: &str) -> Value {
        self.check(vec![json!({"op": "assume", "role": role, "token": token})])
            .remove(0)
    }

    /// May this session make this request now?
    pub fn request(&self, session: &Value, action: &str, resource: &str) -> Value {
        self.check(vec![
            json!({"op": "request", "session": session, "action": action, "resource": resource}),
        ])
        .remove(0)
    }
}

/// An access token from the local Graph server's token endpoint, for a workload (client
/// credentials with its secret) to `resource`.
pub fn workload_token(
    graph: &GraphServer,
    tenant: &str,
    client_id: &str,
    secret: &str,
    resource: &str,
) -> String {
    let scope = format!("{resource}/.default");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", scope.as_str()),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{}/{tenant}/oauth2/v2.0/token", graph.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    });
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// A token with any claims, signed with the local Graph server's key (so that only the
/// claims decide): expired tokens, user tokens, other tenants.
pub fn signed_token(claims: &Value) -> String {
    let pem =
        std::fs::read(repo().join("crates/trustsync-graph-server/keys/token-signing-key.pem"))
            .unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("trustsync-local-graph-1".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}
