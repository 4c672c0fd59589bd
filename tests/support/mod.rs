//! Test support: a real moto server per test, the trustsync binary, and AWS SDK clients
//! that read state back independently of trustsync's own reader.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("TRUSTSYNC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let path = dir.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it installs moto into .venv via scripts/setup-moto.sh)",
        path.display()
    );
    path
}

/// A moto server on a free loopback port, stopped on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    rt: tokio::runtime::Runtime,
    sdk: aws_config::SdkConfig,
}

impl Moto {
    pub fn start() -> Moto {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(venv_bin("moto_server"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: port taken, try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    let endpoint = format!("http://127.0.0.1:{port}");
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let sdk = rt.block_on(
                        aws_config::defaults(BehaviorVersion::latest())
                            .endpoint_url(&endpoint)
                            .region(aws_config::Region::new("us-east-1"))
                            .credentials_provider(aws_sdk_iam::config::Credentials::new(
                                "test", "test", None, None, "test",
                            ))
                            .load(),
                    );
                    return Moto {
                        child,
                        endpoint,
                        rt,
                        sdk,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start");
    }

    /// Runs the trustsync binary against this server.
    pub fn trustsync(&self, dir: &Path, args: &[&str]) -> Output {
        trustsync_with_endpoint(dir, &self.endpoint, args)
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk)
    }

    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk)
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Creates Lambda functions (trustsync manages their permissions, not the functions).
    pub fn create_functions(&self, names: &[&str]) {
        let out = Command::new(venv_bin("python"))
            .arg(repo().join("scripts/seed_demo.py"))
            .arg(&self.endpoint)
            .args(names)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "seeding failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The decoded trust policy of a role.
    pub fn trust_policy(&self, role: &str) -> serde_json::Value {
        let out = self
            .block_on(self.iam().get_role().role_name(role).send())
            .unwrap();
        trustsync::iam_policy::parse_document(
            out.role().unwrap().assume_role_policy_document().unwrap(),
        )
        .unwrap()
    }

    /// The `sub` values a role's trust policy allows.
    pub fn trusted_subs(&self, role: &str) -> Vec<String> {
        trustsync::observed::trusted_subjects(&self.trust_policy(role))
            .into_iter()
            .collect()
    }

    pub fn role_exists(&self, role: &str) -> bool {
        self.block_on(self.iam().get_role().role_name(role).send())
            .is_ok()
    }

    /// Statement ids of a function's resource policy.
    pub fn lambda_sids(&self, function: &str) -> Vec<String> {
        let Ok(out) = self.block_on(self.lambda().get_policy().function_name(function).send())
        else {
            return Vec::new();
        };
        let doc = trustsync::iam_policy::parse_document(out.policy().unwrap()).unwrap();
        let mut sids: Vec<String> = doc["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Sid"].as_str().unwrap().to_string())
            .collect();
        sids.sort();
        sids
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the trustsync binary in `dir` with AWS pointed at `endpoint` and nothing from
/// the user's own AWS configuration.
pub fn trustsync_with_endpoint(dir: &Path, endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trustsync"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run trustsync")
}

/// A scratch directory holding a copy of the example policies, tenant and a config.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                dir.path().join("policies").join(entry.file_name()),
            )
            .unwrap();
        }
        std::fs::create_dir(dir.path().join("examples")).unwrap();
        std::fs::copy(
            repo().join("examples/tenant.json"),
            dir.path().join("examples/tenant.json"),
        )
        .unwrap();
        let ws = Workspace { dir };
        ws.write("trustsync.yaml", "audit:\n  path: audit.jsonl\n");
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).unwrap();
    }

    /// Edits the tenant file as JSON.
    pub fn edit_tenant(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut v: serde_json::Value =
            serde_json::from_str(&self.read("examples/tenant.json")).unwrap();
        f(&mut v);
        self.write(
            "examples/tenant.json",
            &serde_json::to_string_pretty(&v).unwrap(),
        );
    }
}

/// stdout + stderr of a run, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs trustsync with the workspace config and asserts the exit code.
pub fn run_ok(moto: &Moto, ws: &Workspace, args: &[&str], code: i32) -> Output {
    let mut full = vec!["--config", "trustsync.yaml"];
    full.extend_from_slice(args);
    let out = moto.trustsync(ws.path(), &full);
    assert_eq!(
        out.status.code(),
        Some(code),
        "trustsync {args:?}\n{}",
        show(&out)
    );
    out
}

/// `plan --output json`, parsed.
pub fn plan_json(moto: &Moto, ws: &Workspace, code: i32) -> serde_json::Value {
    let out = run_ok(
        moto,
        ws,
        &["plan", "--output", "json", "--detailed-exitcode"],
        code,
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("plan JSON: {e}\n{}", show(&out)))
}

/// The action names of a JSON plan, in order.
pub fn actions(plan: &serde_json::Value) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap().to_string())
        .collect()
}
