//! Test support: a real moto server per test, the trustsync binary, and AWS SDK clients
//! that read state back independently of trustsync's own reader.
#![allow(dead_code)]

pub mod daemon;
pub mod entra;
pub mod judge;
pub mod proxy;
pub mod s3;
pub mod settle;

// Each test binary takes the ones it uses.
#[allow(unused_imports)]
pub use settle::{apply, apply_unsettled, spawn_apply, Unsettled, Via};

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn venv_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("TRUSTSYNC_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv"));
    let path = dir.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it installs the test servers into .venv via scripts/setup-test-env.sh)",
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
            // moto, with the calls it lacks answered as AWS documents them.
            let mut child = Command::new(venv_bin("python"))
                .arg(repo().join("tests/moto_server.py"))
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

    /// The SDK config of moto's default account (the hub's, in these tests).
    pub fn sdk(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    /// An SDK config acting in `account`: moto keeps state per account, and credentials
    /// from AssumeRole into one of its roles act there.
    pub fn in_account(&self, account: &str) -> aws_config::SdkConfig {
        let sts = aws_sdk_sts::Client::new(&self.sdk);
        let c = self
            .block_on(
                sts.assume_role()
                    .role_arn(format!("arn:aws:iam::{account}:role/test-reader"))
                    .role_session_name("test")
                    .send(),
            )
            .expect("assume a role in the account");
        let c = c.credentials().expect("credentials");
        self.sdk
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_sdk_iam::config::Credentials::new(
                        c.access_key_id(),
                        c.secret_access_key(),
                        Some(c.session_token().to_string()),
                        None,
                        "test",
                    ),
                ),
            )
            .build()
    }

    /// The roles of `account`, by name, with their trusted subjects.
    pub fn roles_in(&self, account: &str) -> std::collections::BTreeMap<String, Vec<String>> {
        let iam = aws_sdk_iam::Client::new(&self.in_account(account));
        let out = self
            .block_on(iam.list_roles().path_prefix("/trustsync/").send())
            .expect("list roles");
        out.roles()
            .iter()
            .map(|r| {
                let doc = trustsync::model::iam_policy::parse_document(
                    r.assume_role_policy_document().unwrap_or("{}"),
                )
                .unwrap();
                let subs = trustsync::observed::trusted_subjects(&doc)
                    .into_iter()
                    .collect();
                (r.role_name().to_string(), subs)
            })
            .collect()
    }

    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk)
    }

    /// Creates a CloudWatch Logs group (the audit anchor's).
    pub fn create_log_group(&self, name: &str) {
        let logs = aws_sdk_cloudwatchlogs::Client::new(&self.sdk);
        self.block_on(logs.create_log_group().log_group_name(name).send())
            .expect("create the log group");
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Creates Lambda functions (trustsync manages their permissions, not the functions).
    pub fn create_functions(&self, names: &[&str]) {
        self.create_functions_in(None, names)
    }

    /// Creates Lambda functions in `account` (and the spoke role there), or in moto's
    /// default account.
    pub fn create_functions_in(&self, account: Option<&str>, names: &[&str]) {
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg(repo().join("scripts/seed_demo.py"))
            .arg(&self.endpoint);
        if let Some(a) = account {
            cmd.args(["--account", a]);
        }
        let out = cmd.args(names).output().unwrap();
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
        trustsync::model::iam_policy::parse_document(
            out.role().unwrap().assume_role_policy_document().unwrap(),
        )
        .unwrap()
    }

    /// The `sub` values a role's trust policy allows.
    /// Removes `member` from `group` in the Graph server and waits (up to 30 s) until moto's
    /// `role` no longer trusts it; returns how long that took.
    pub fn revoke_through_graph(
        &self,
        graph: &GraphServer,
        (group, member): (&str, &str),
        role: &str,
    ) -> Duration {
        let t = Instant::now();
        graph.remove_member(group, member);
        wait_for(Duration::from_secs(30), "the revocation", || {
            !self.trusted_subs(role).iter().any(|s| s == member)
        });
        t.elapsed()
    }

    pub fn trusted_subs(&self, role: &str) -> Vec<String> {
        trustsync::observed::trusted_subjects(&self.trust_policy(role))
            .into_iter()
            .collect()
    }

    /// The names of the managed policies attached to a role.
    pub fn attached_policies(&self, role: &str) -> Vec<String> {
        self.block_on(
            self.iam()
                .list_attached_role_policies()
                .role_name(role)
                .send(),
        )
        .unwrap()
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_name().map(String::from))
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
        let doc = trustsync::model::iam_policy::parse_document(out.policy().unwrap()).unwrap();
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

/// `program` in `dir` with AWS pointed at `endpoint` and nothing from the user's own AWS or
/// Azure configuration.
pub fn isolated(program: impl AsRef<std::ffi::OsStr>, dir: &Path, endpoint: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // The tests of other things create roles in moto's bare accounts with configs
        // that name no boundary: they opt out of the secure default, which has tests of
        // its own (they remove this).
        .env("TRUSTSYNC_ALLOW_UNBOUNDED_ROLES", "true")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    // A run's log level, to take a slow test or benchmark apart (`TRUSTSYNC_LOG=
    // trustsync=debug,trustsync::adapters::aws=trace`).
    if let Some(level) = std::env::var_os("TRUSTSYNC_LOG") {
        cmd.env("TRUSTSYNC_LOG", level);
    }
    cmd
}

/// The trustsync binary, [`isolated`].
pub fn command(dir: &Path, endpoint: &str) -> Command {
    isolated(env!("CARGO_BIN_EXE_trustsync"), dir, endpoint)
}

/// Runs the trustsync binary in `dir` with AWS pointed at `endpoint`.
pub fn trustsync_with_endpoint(dir: &Path, endpoint: &str, args: &[&str]) -> Output {
    command(dir, endpoint)
        .args(args)
        .output()
        .expect("run trustsync")
}

/// Polls `f` (every 50 ms) until it holds; how long that took. Panics, naming `what`,
/// after `limit`.
pub fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for {what}");
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
        ws.write(
            "trustsync.yaml",
            "audit:\n  path: audit.jsonl\ndirectory:\n  tenantFile: examples/tenant.json\n",
        );
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

    /// `policies/bulk.yaml` with `n` roles for Lambda (`bulk-0` …), so that an apply or a
    /// pass has enough to write to be interrupted.
    pub fn many_roles(&self, n: usize) {
        let mut docs = String::new();
        for i in 0..n {
            docs.push_str(&format!(
                "---\napiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata: {{name: bulk-{i}}}\nspec:\n  trustedServices: [lambda.amazonaws.com]\n  role:\n    name: bulk-{i}\n    managedPolicies: [arn:aws:iam::aws:policy/ReadOnlyAccess]\n    inlinePolicies: {{p: {{Version: '2012-10-17', Statement: [{{Effect: Allow, Action: 's3:GetObject', Resource: '*'}}]}}}}\n"
            ));
        }
        self.write("policies/bulk.yaml", &docs);
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).unwrap();
    }

    /// Takes a member out of a group of the tenant file.
    pub fn remove_tenant_member(&self, group: &str, member: &str) {
        self.edit_tenant(|t| {
            let g = t["groups"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|g| g["id"] == group)
                .unwrap();
            g["members"].as_array_mut().unwrap().retain(|m| m != member);
        });
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
    run_at(&moto.endpoint, ws, args, code)
}

/// `trustsync audit acknowledge --by BY --key KEY [--note NOTE]`, expecting exit `code`.
pub fn acknowledge(
    moto: &Moto,
    ws: &Workspace,
    (by, key, note): (&str, &str, Option<&str>),
    code: i32,
) -> Output {
    let mut args = vec!["audit", "acknowledge", "--by", by, "--key", key];
    if let Some(note) = note {
        args.extend(["--note", note]);
    }
    run_ok(moto, ws, &args, code)
}

/// [`run_ok`] with AWS at `endpoint` (a proxy in front of moto, say).
pub fn run_at(endpoint: &str, ws: &Workspace, args: &[&str], code: i32) -> Output {
    let mut full = vec!["--config", "trustsync.yaml"];
    full.extend_from_slice(args);
    let out = trustsync_with_endpoint(ws.path(), endpoint, &full);
    assert_eq!(
        out.status.code(),
        Some(code),
        "trustsync {args:?}\n{}",
        show(&out)
    );
    out
}

/// `plan --output json --detailed-exitcode`, parsed.
pub fn plan_json(moto: &Moto, ws: &Workspace, code: i32) -> serde_json::Value {
    plan_json_with(moto, ws, &[], code)
}

/// `plan --output json --detailed-exitcode` with more flags, parsed.
pub fn plan_json_with(moto: &Moto, ws: &Workspace, flags: &[&str], code: i32) -> serde_json::Value {
    let mut args = vec!["plan", "--output", "json", "--detailed-exitcode"];
    args.extend_from_slice(flags);
    let out = run_ok(moto, ws, &args, code);
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

pub const TENANT_ID: &str = "7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45";
pub const CLIENT_ID: &str = "3f0e8a52-7c1d-4b8e-9f6a-1c2d3e4f5a6b";
pub const CLIENT_SECRET: &str = "local-demo-secret-for-the-graph-server-only";

/// The local Graph server's binary (the workspace crate `trustsync-graph-server`), next to
/// the `trustsync` binary under test: `make test` builds both.
pub fn graph_server_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_trustsync")).with_file_name("trustsync-graph-server");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p trustsync-graph-server` (make test does)",
        bin.display()
    );
    bin
}

/// The local Graph server binary, serving a tenant file; stopped on drop.
pub struct GraphServer {
    child: Child,
    pub base: String,
}

impl GraphServer {
    pub fn start(tenant: &Path, max_page_size: usize) -> GraphServer {
        use std::io::BufRead;
        let mut child = Command::new(graph_server_bin())
            .arg("--tenant")
            .arg(tenant)
            .args(["--max-page-size", &max_page_size.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start trustsync-graph-server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected: {line}"))
            .to_string();
        GraphServer { child, base }
    }

    pub fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, String) {
        http(method, &format!("{}{path}", self.base), body)
    }

    /// Every change-notification subscription the server holds.
    pub fn subscriptions(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.admin("GET", "/admin/subscriptions", None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Sends a lifecycle notification (`reauthorizationRequired`, `subscriptionRemoved`,
    /// `missed`) for a subscription.
    pub fn lifecycle(&self, subscription: &str, event: &str) {
        let (status, body) = self.admin(
            "POST",
            &format!("/admin/subscriptions/{subscription}/lifecycle"),
            Some(serde_json::json!({"event": event})),
        );
        assert_eq!(status, 202, "{body}");
    }

    pub fn add_member(&self, group: &str, member: &str) {
        let (status, body) = self.admin(
            "POST",
            &format!("/admin/groups/{group}/members"),
            Some(serde_json::json!({"id": member})),
        );
        assert_eq!(status, 204, "{body}");
    }

    pub fn remove_member(&self, group: &str, member: &str) {
        let (status, body) = self.admin(
            "DELETE",
            &format!("/admin/groups/{group}/members/{member}"),
            None,
        );
        assert_eq!(status, 204, "{body}");
    }

    pub fn faults(&self, faults: serde_json::Value) {
        let (status, body) = self.admin("POST", "/admin/faults", Some(faults));
        assert_eq!(status, 204, "{body}");
    }

    /// Requests served per route since the last reset.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.admin("GET", "/admin/stats", None).1).unwrap()
    }

    pub fn reset_stats(&self) {
        self.admin("POST", "/admin/stats/reset", None);
    }

    /// The environment that points trustsync at this server with the given secret.
    pub fn env(&self, secret: &str) -> Vec<(String, String)> {
        vec![
            ("AZURE_TENANT_ID".into(), TENANT_ID.into()),
            ("AZURE_CLIENT_ID".into(), CLIENT_ID.into()),
            ("AZURE_CLIENT_SECRET".into(), secret.into()),
            ("AZURE_AUTHORITY_HOST".into(), self.base.clone()),
            (
                "TRUSTSYNC_GRAPH_ENDPOINT".into(),
                format!("{}/v1.0", self.base),
            ),
        ]
    }
}

impl Drop for GraphServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client for the admin API: returns status and body.
/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn http(method: &str, url: &str, body: Option<serde_json::Value>) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = TcpStream::connect(host).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Bodies may come chunked; the admin answers are small and sent whole.
    let body = if raw
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// Runs trustsync with the workspace config and extra environment (e.g. the Graph
/// server's), asserting the exit code.
pub fn run_env(
    moto: &Moto,
    ws: &Workspace,
    env: &[(String, String)],
    args: &[&str],
    code: i32,
) -> Output {
    run_env_at(&moto.endpoint, ws, env, args, code)
}

/// [`run_env`] with AWS at `endpoint` (a proxy in front of moto, say).
pub fn run_env_at(
    endpoint: &str,
    ws: &Workspace,
    env: &[(String, String)],
    args: &[&str],
    code: i32,
) -> Output {
    let mut cmd = command(ws.path(), endpoint);
    cmd.arg("--config")
        .arg("trustsync.yaml")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().expect("run trustsync");
    assert_eq!(
        out.status.code(),
        Some(code),
        "trustsync {args:?}\n{}",
        show(&out)
    );
    out
}

/// Everything trustsync manages, read back through the SDK straight from moto.
pub fn managed_state(moto: &Moto) -> serde_json::Value {
    let iam = moto.iam();
    let lambda = moto.lambda();
    let mut roles = std::collections::BTreeMap::new();
    let list = moto
        .block_on(
            iam.list_roles()
                .path_prefix("/trustsync/")
                .max_items(1000)
                .send(),
        )
        .unwrap();
    for r in list.roles() {
        let name = r.role_name();
        let inline = moto
            .block_on(iam.list_role_policies().role_name(name).send())
            .unwrap();
        let mut inline_docs = std::collections::BTreeMap::new();
        for p in inline.policy_names() {
            let doc = moto
                .block_on(iam.get_role_policy().role_name(name).policy_name(p).send())
                .unwrap();
            let doc = trustsync::model::iam_policy::parse_document(doc.policy_document()).unwrap();
            inline_docs.insert(p.clone(), trustsync::model::iam_policy::canonical(&doc));
        }
        let attached = moto
            .block_on(iam.list_attached_role_policies().role_name(name).send())
            .unwrap();
        let mut attached: Vec<String> = attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(String::from))
            .collect();
        attached.sort();
        let tags = moto
            .block_on(iam.list_role_tags().role_name(name).send())
            .unwrap();
        // The removal baseline records when a revocation happened (its value carries a
        // time): history, not desired state, so two runs that converge differ in it.
        let tags: std::collections::BTreeMap<String, String> = tags
            .tags()
            .iter()
            .filter(|t| t.key() != trustsync::plan::BASELINE_TAG)
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        let trust =
            trustsync::model::iam_policy::parse_document(r.assume_role_policy_document().unwrap())
                .unwrap();
        let full = moto
            .block_on(iam.get_role().role_name(name).send())
            .unwrap();
        roles.insert(
            name.to_string(),
            serde_json::json!({"trust": trustsync::model::iam_policy::canonical(&trust), "inline": inline_docs, "attached": attached, "tags": tags,
                   "maxSession": full.role().unwrap().max_session_duration()}),
        );
    }
    let providers = moto
        .block_on(iam.list_open_id_connect_providers().send())
        .unwrap();
    let mut provider_state = Vec::new();
    for p in providers.open_id_connect_provider_list() {
        let got = moto
            .block_on(
                iam.get_open_id_connect_provider()
                    .open_id_connect_provider_arn(p.arn().unwrap())
                    .send(),
            )
            .unwrap();
        let mut ids = got.client_id_list().to_vec();
        ids.sort();
        provider_state.push(serde_json::json!({"arn": p.arn(), "clientIds": ids}));
    }
    // Every function: its execution role and trustsync's statement ids.
    let mut functions = std::collections::BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = moto
            .block_on(lambda.list_functions().set_marker(marker.clone()).send())
            .unwrap();
        for f in page.functions() {
            let name = f.function_name().unwrap().to_string();
            let sids = moto.lambda_sids(&name);
            functions.insert(
                name,
                serde_json::json!({"role": f.role(), "statements": sids}),
            );
        }
        match page.next_marker() {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    serde_json::json!({"roles": roles, "providers": provider_state, "functions": functions})
}
