//! The README's "A five-minute tour", run as written against `make local`.
//!
//! The fenced block is parsed from README.md, so the test breaks when the tour changes and
//! this file does not: each line is matched, in order, to an expectation below. Every line
//! runs through bash, as a reader pastes it, in a scratch checkout (the Makefile, scripts/,
//! the example tenant, the sample policies, the built binaries under target/debug), so
//! nothing the tour writes lands in the repository. Two things are not repeated because the
//! test harness has done them: `make local`'s build (`CARGO=:`) and its `test-env`
//! prerequisite (`-o test-env`, the .venv the other tests use already exists).
#![cfg(feature = "loopback-graph")]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{http, repo, show, venv_bin, wait_for};

/// What a tour line must do: its exit code and what its stdout must say.
struct Expect {
    line: &'static str,
    exit: i32,
    says: &'static [&'static str],
}

/// The tour, line by line (comments stripped), with what each must do.
const TOUR: &[Expect] = &[
    Expect {
        line: "make local",
        exit: 0,
        says: &[
            "export AWS_ENDPOINT_URL=http://127.0.0.1:",
            "make local-stop",
        ],
    },
    Expect {
        line: r#"eval "$(scripts/local-env.sh env)""#,
        exit: 0,
        says: &[],
    },
    Expect {
        line: "trustsync validate --policies policies",
        exit: 0,
        says: &["5 document(s) valid"],
    },
    Expect {
        line: "trustsync plan --output markdown",
        exit: 0,
        says: &["### trustsync plan", "`111111111111`", "`222222222222`"],
    },
    Expect {
        line: "trustsync apply",
        exit: 0,
        says: &["Only 'yes' is accepted", "applied, 0 failed"],
    },
    Expect {
        line: "trustsync run --listen 127.0.0.1:8080",
        exit: 0,
        says: &["serving /healthz /readyz /metrics /status on http://127.0.0.1:8080"],
    },
    Expect {
        line: "trustsync iam-policy",
        exit: 0,
        says: &[
            "AssumeSpokeRoles",
            "arn:aws:iam::111111111111:role/trustsync-spoke",
        ],
    },
    Expect {
        line: "trustsync entra-permissions",
        exit: 0,
        says: &["GroupMember.Read.All", "az ad app permission add"],
    },
    Expect {
        line: "trustsync access --output markdown",
        exit: 0,
        says: &[
            "| role | managed | workload | via | since |",
            "**Access outside the policy repository:**",
            "legacy-reports-export",
        ],
    },
    Expect {
        line: "trustsync export > $TRUSTSYNC_LOCAL/adopted.yaml",
        exit: 0,
        says: &[],
    },
    Expect {
        line: "trustsync check-token $TRUSTSYNC_LOCAL/token.jwt",
        exit: 0,
        says: &[
            "REFUSES  arn:aws:iam::111111111111:role/trustsync/payments-deployer",
            "is not among the 3 principal(s) the role trusts",
            "ACCEPTS  arn:aws:iam::111111111111:role/trustsync/reporting-reader",
        ],
    },
    Expect {
        line: "trustsync plan --account 111111111111",
        exit: 0,
        says: &["No changes. AWS matches the policies."],
    },
    Expect {
        line: "trustsync completions bash",
        exit: 0,
        says: &["_trustsync()", "check-token"],
    },
    Expect {
        line: "trustsync audit show --principal 5e1f0a2b-1111-4111-8111-000000000002 --since 7d",
        exit: 0,
        says: &[
            "granted arn:aws:iam::111111111111:role/trustsync/payments-deployer (create-role)",
            "granted arn:aws:iam::222222222222:role/trustsync/payments-deployer (create-role)",
        ],
    },
    Expect {
        line: "make local-stop",
        exit: 0,
        says: &[],
    },
];

/// The command lines of the README's tour block, comments stripped.
fn tour_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("## A five-minute tour")
        .expect("README.md has no \"A five-minute tour\" section");
    let block = readme[start..]
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the tour has no ```sh block");
    block
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A checkout as `make local` finds it after its build: what the Makefile and
/// scripts/local-env.sh read, and the binaries under test where the build puts them.
fn scratch_checkout(dir: &Path) {
    std::fs::copy(repo().join("Makefile"), dir.join("Makefile")).unwrap();
    copy_dir(&repo().join("scripts"), &dir.join("scripts"));
    copy_dir(&repo().join("policies"), &dir.join("policies"));
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::copy(
        repo().join("tests/moto_server.py"),
        dir.join("tests/moto_server.py"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("examples")).unwrap();
    std::fs::copy(
        repo().join("examples/tenant.json"),
        dir.join("examples/tenant.json"),
    )
    .unwrap();
    let debug = dir.join("target/debug");
    std::fs::create_dir_all(&debug).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_trustsync"));
    std::os::unix::fs::symlink(&bin, debug.join("trustsync")).unwrap();
    std::os::unix::fs::symlink(
        support::graph_server_bin(),
        debug.join("trustsync-graph-server"),
    )
    .unwrap();
}

/// Stops the local environment (and the controller) whatever happens to the test.
struct Cleanup {
    dir: PathBuf,
    venv: PathBuf,
    controller: Option<std::process::Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut c) = self.controller.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new(self.dir.join("scripts/local-env.sh"))
            .arg("stop")
            .env("TRUSTSYNC_VENV", &self.venv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether something accepts connections on this loopback port.
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn the_readme_tour_runs_as_written_against_make_local() {
    let lines = tour_lines();
    let expected: Vec<&str> = TOUR.iter().map(|e| e.line).collect();
    assert_eq!(
        lines, expected,
        "README.md's tour changed: update TOUR in tests/tour.rs to match (and say what each new line must do)"
    );
    // The Makefile's `local` is the build, then the script this test runs through make.
    let makefile = std::fs::read_to_string(repo().join("Makefile")).unwrap();
    let recipe: Vec<&str> = makefile
        .split("\nlocal: test-env\n")
        .nth(1)
        .expect("the Makefile has a `local: test-env` target")
        .lines()
        .take_while(|l| l.starts_with('\t'))
        .map(str::trim)
        .collect();
    assert_eq!(
        recipe,
        [
            "$(CARGO) build --locked --workspace --bins --features trustsync/loopback-graph",
            "scripts/local-env.sh start",
        ]
    );

    assert!(
        !listening(8080),
        "something already listens on 127.0.0.1:8080, the port the tour's `trustsync run` uses"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    scratch_checkout(&dir);
    let venv = venv_bin("python")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        venv: venv.clone(),
        controller: None,
    };

    // The reader's shell: nothing of the user's own AWS or Azure set-up, and whatever the
    // tour's `eval` line exports from then on.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for key in ["PATH", "HOME", "TMPDIR"] {
        if let Ok(v) = std::env::var(key) {
            env.insert(key.into(), v);
        }
    }
    env.insert("TRUSTSYNC_VENV".into(), venv.display().to_string());
    env.insert("NO_COLOR".into(), "1".into());
    let bash = |script: &str, env: &BTreeMap<String, String>| {
        let mut cmd = Command::new("bash");
        cmd.args(["--noprofile", "--norc", "-o", "pipefail", "-c", script])
            .current_dir(&dir)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null());
        cmd
    };
    let mut moto_and_graph = Vec::new();

    for expect in TOUR {
        let line = expect.line;
        let out: Output = match line {
            // The build and the venv are the harness's (see the top of this file).
            "make local" => bash("make -s -o test-env local CARGO=:", &env)
                .output()
                .unwrap(),
            l if l.starts_with("eval ") => {
                let out = bash(&format!("{l} && env -0"), &env).output().unwrap();
                assert!(out.status.success(), "{line}: {}", show(&out));
                env = out
                    .stdout
                    .split(|b| *b == 0)
                    .filter_map(|kv| std::str::from_utf8(kv).ok()?.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                for key in [
                    "AWS_ENDPOINT_URL",
                    "AWS_REGION",
                    "AWS_SESSION_TOKEN",
                    "AZURE_TENANT_ID",
                    "AZURE_CLIENT_SECRET",
                    "TRUSTSYNC_GRAPH_ENDPOINT",
                    "TRUSTSYNC_CONFIG",
                    "TRUSTSYNC_LOCAL",
                ] {
                    assert!(env.contains_key(key), "{line} does not export {key}");
                }
                for key in ["AWS_ENDPOINT_URL", "TRUSTSYNC_GRAPH_ENDPOINT"] {
                    let port: u16 = env[key]
                        .trim_start_matches("http://127.0.0.1:")
                        .split('/')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap_or_else(|e| panic!("{key}={}: {e}", env[key]));
                    assert!(listening(port), "{key}: nothing listens at {}", env[key]);
                    moto_and_graph.push(port);
                }
                // `trustsync` on PATH is the build's (the binary under test).
                let which = bash("command -v trustsync", &env).output().unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&which.stdout).trim(),
                    dir.join("target/debug/trustsync").display().to_string()
                );
                out
            }
            // Answers "yes" on a terminal, as the comment says (script(1) gives it one).
            "trustsync apply" => {
                let mut child = bash(&format!("script -qec '{line}' /dev/null"), &env)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                child.stdin.take().unwrap().write_all(b"yes\n").unwrap();
                child.wait_with_output().unwrap()
            }
            // The controller runs until stopped: /status once ready, then SIGTERM (Ctrl-C's
            // clean counterpart) ends it with exit 0.
            l if l.starts_with("trustsync run ") => {
                let log = dir.join("run.out");
                let child = bash(l, &env)
                    .stdout(std::fs::File::create(&log).unwrap())
                    .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
                    .spawn()
                    .unwrap();
                let pid = child.id();
                cleanup.controller = Some(child);
                wait_for(Duration::from_secs(60), "the controller's /readyz", || {
                    listening(8080) && http("GET", "http://127.0.0.1:8080/readyz", None).0 == 200
                });
                let (code, body) = http("GET", "http://127.0.0.1:8080/status", None);
                assert_eq!(code, 200, "{body}");
                let status: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(status["lastPass"]["outcome"], "success", "{body}");
                assert_eq!(
                    status["mappings"]["payments-deployers"]["state"], "Ready",
                    "{body}"
                );
                Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .unwrap();
                let mut child = cleanup.controller.take().unwrap();
                let status = child.wait().unwrap();
                Output {
                    status,
                    stdout: std::fs::read(&log).unwrap(),
                    stderr: std::fs::read(dir.join("run.log")).unwrap(),
                }
            }
            l => bash(l, &env).output().unwrap(),
        };
        assert_eq!(
            out.status.code(),
            Some(expect.exit),
            "`{line}` exits {}: {}",
            expect.exit,
            show(&out)
        );
        // Every apply is followed by a re-plan that must change nothing
        // (tests/support/settle.rs), the tour's as well.
        if line == "trustsync apply" {
            let replan = bash("trustsync plan --output json --detailed-exitcode", &env)
                .output()
                .unwrap();
            support::settle::assert_replan_empty(&replan, &[], &out);
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        for s in expect.says {
            assert!(
                stdout.contains(s),
                "`{line}` does not say {s:?}: {}",
                show(&out)
            );
        }
        // What the lines that write files wrote.
        if line.starts_with("trustsync export > ") {
            let adopted =
                std::fs::read_to_string(Path::new(&env["TRUSTSYNC_LOCAL"]).join("adopted.yaml"))
                    .unwrap();
            assert!(
                adopted.contains("name: legacy-reports-export") && adopted.contains("adopt: true"),
                "{adopted}"
            );
        }
    }

    // `make local-stop` stopped both servers and took the state away.
    for port in moto_and_graph {
        wait_for(Duration::from_secs(10), "the servers to stop", || {
            !listening(port)
        });
    }
    assert!(!dir.join("target/local-env").exists());
}
