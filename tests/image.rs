//! The container image: built with podman from the Containerfile (on a base assembled
//! from this machine's files, as no registry is reachable), run read-only as uid 65532
//! against moto and the local Graph server, as the chart runs it.
//!
//! Needs podman and runc (`make test` installs them when run as root on Debian).

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::*;

const SP1: &str = "5e1f0a2b-1111-4111-8111-000000000001";
const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
const SP4: &str = "5e1f0a2b-1111-4111-8111-000000000004";
const TAG: &str = "localhost/trustsync:test";

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("podman is needed for the image tests (Debian: apt-get install podman runc)")
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(out.status.success(), "podman {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A container started by the test, removed when it ends however it ends.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "0", &self.0]);
    }
}

/// `--ulimit` for `kind`: podman on these machines needs them explicit, and no higher than
/// this process's own hard limit (`ulimit -H<flag>`), at most `most`.
fn ulimit(kind: &str, flag: &str, most: u64) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("ulimit -H{flag}")])
        .output()
        .unwrap();
    let hard = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(most);
    let n = hard.min(most);
    format!("--ulimit={kind}={n}:{n}")
}

/// GET on the container's listener; `None` while nothing listens there yet.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    Some(http("GET", &format!("http://127.0.0.1:{port}{path}"), None))
}

#[test]
fn the_image_runs_read_only_as_nonroot_and_reconciles() {
    let built = Command::new(repo().join("scripts/build-image.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_trustsync")])
        .args(["--local-base", "--tag", TAG])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", show(&built));
    let image = String::from_utf8_lossy(&built.stdout).trim().to_string();
    let inspect = |format: &str| podman_ok(&["image", "inspect", "--format", format, &image]);
    assert_eq!(inspect("{{.Config.User}}"), "65532:65532");
    assert_eq!(
        inspect("{{json .Config.Entrypoint}}"),
        r#"["/usr/bin/trustsync"]"#
    );
    println!(
        "image size: {} bytes (this test's debug binary)",
        inspect("{{.Size}}")
    );

    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    // The config and policies are mounted read-only; the audit log is the one writable
    // volume, as in the chart.
    ws.write(
        "trustsync.yaml",
        "audit: {path: /var/lib/trustsync/audit.jsonl}\nrun: {intervalSeconds: 60}\npermissionsBoundaries: [trustsync-workload-boundary]\n",
    );
    let audit = ws.path().join("audit");
    std::fs::create_dir(&audit).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o777)).unwrap();

    let port = free_port();
    let name = format!("trustsync-test-{port}");
    let mut env = vec![
        ("AWS_ENDPOINT_URL".to_string(), moto.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    env.extend(graph.env(CLIENT_SECRET));
    let mut args: Vec<String> = [
        "run",
        "--detach",
        "--runtime",
        "runc",
        "--read-only",
        "--network",
        "host",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--name",
        &name,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(ulimit("nofile", "n", 16384));
    args.push(ulimit("nproc", "u", 4096));
    args.push(format!(
        "--volume={}:/etc/trustsync:ro",
        ws.path().display()
    ));
    args.push(format!(
        "--volume={}/policies:/policies:ro",
        ws.path().display()
    ));
    args.push(format!("--volume={}:/var/lib/trustsync", audit.display()));
    for (k, v) in &env {
        args.push(format!("--env={k}={v}"));
    }
    args.push(image.clone());
    args.extend(
        [
            "--config=/etc/trustsync/trustsync.yaml",
            "run",
            "--policies=/policies",
            &format!("--listen=127.0.0.1:{port}"),
        ]
        .map(String::from),
    );
    let started = Instant::now();
    let id = podman_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let container = Container(id);
    let logs = || show(&podman(&["logs", &container.0]));

    wait_for(Duration::from_secs(30), "/healthz", || {
        get(port, "/healthz").is_some_and(|(code, _)| code == 200)
    });
    println!(
        "/healthz answered {} ms after `podman run` was started",
        started.elapsed().as_millis()
    );
    wait_for(Duration::from_secs(60), "/readyz after a pass", || {
        get(port, "/readyz").is_some_and(|(code, _)| code == 200)
    });
    assert_eq!(
        moto.trusted_subs("payments-deployer"),
        [SP1, SP2, SP4],
        "{}",
        logs()
    );
    // The process runs as 65532: the audit log it created is that user's.
    use std::os::unix::fs::MetadataExt;
    let log = std::fs::metadata(audit.join("audit.jsonl")).unwrap();
    assert_eq!(log.uid(), 65532, "{}", logs());
    // A read-only root: the only entries podman's diff shows are the mount points it
    // made (the volumes, and the tmpfs that --read-only puts on /tmp, /var/tmp and /run).
    let mounts = [
        "/etc/trustsync",
        "/policies",
        "/var/lib/trustsync",
        "/tmp",
        "/var/tmp",
        "/run",
    ];
    for line in podman_ok(&["diff", &container.0]).lines() {
        let path = line.split_whitespace().last().unwrap_or_default();
        assert!(
            mounts
                .iter()
                .any(|m| m == &path || m.starts_with(&format!("{path}/"))),
            "the container changed its root filesystem: {line}"
        );
    }

    let asked = Instant::now();
    podman_ok(&["kill", "--signal", "TERM", &container.0]);
    let code = podman_ok(&["wait", &container.0]);
    assert_eq!(code, "0", "{}", logs());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "SIGTERM took {:?}",
        asked.elapsed()
    );
    let records = std::fs::read_to_string(audit.join("audit.jsonl")).unwrap();
    assert!(records.contains("payments-deployer"), "{records}");
}
