//! The command line as CI and shells meet it, through the binary: exit codes (a usage
//! error is 1, never the 2 of "changes pending"), and output that its reader closes early.

mod support;

use std::process::{Command, Output, Stdio};

use support::*;

/// The binary with nothing from the user's AWS or Azure configuration, and no AWS
/// endpoint: the usage errors below must end before any AWS request.
fn bare(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustsync"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn usage_errors_exit_1_not_the_2_of_changes_pending() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        // The mistyped flag of the issue: it must not read as drift.
        (
            &["plan", "--detailed-exitcod"],
            "unexpected argument '--detailed-exitcod'",
        ),
        (&["plan", "--output", "yaml"], "invalid value 'yaml'"),
        (&["apply", "--prune", "maybe"], "invalid value 'maybe'"),
        (&["no-such-command"], "unrecognized subcommand"),
        (&["audit", "verify"], "required arguments were not provided"),
        (
            &["audit", "verify", "a.jsonl", "--anchor"],
            "--public-key <PUBLIC_KEY>",
        ),
        (&["completions", "tcsh"], "invalid value 'tcsh'"),
        // No command at all: the help, on stderr, as an error.
        (&[], "Usage: trustsync"),
        (&["audit"], "Usage: trustsync audit"),
    ];
    for (args, says) in cases {
        let out = bare(dir.path()).args(*args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}\n{}", show(&out));
        assert!(stderr(&out).contains(says), "{args:?}\n{}", show(&out));
        assert!(out.stdout.is_empty(), "{args:?}: errors go to stderr");
    }
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["plan", "--help"],
        &["-h"],
        &["help", "audit"],
    ] {
        let out = bare(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}\n{}", show(&out));
        assert!(stdout(&out).contains("Usage: trustsync"), "{}", show(&out));
    }
    // The help covers people too, not only workloads.
    let out = bare(dir.path()).arg("--help").output().unwrap();
    for says in ["IAM Identity Center", "people", "--people"] {
        let text = stdout(&out)
            + &stdout(
                &bare(dir.path())
                    .args(["access", "--help"])
                    .output()
                    .unwrap(),
            );
        assert!(text.contains(says), "--help lacks {says:?}:\n{text}");
    }
    let out = bare(dir.path()).arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("trustsync {}", env!("CARGO_PKG_VERSION"))
    );
}

/// The whole ladder of `plan`'s codes against one account: 0 with changes and no flag, 2
/// with changes and `--detailed-exitcode`, 0 once applied, 1 on invalid policies (before
/// any AWS request).
#[test]
fn plan_exits_2_only_for_pending_changes_with_detailed_exitcode() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    run_ok(&moto, &ws, &["plan"], 0);
    run_ok(&moto, &ws, &["plan", "--detailed-exitcode"], 2);
    run_ok(
        &moto,
        &ws,
        &["plan", "--output", "json", "--detailed-exitcode"],
        2,
    );
    apply(Via::moto(&moto), &ws, &[]);
    run_ok(&moto, &ws, &["plan", "--detailed-exitcode"], 0);

    // An invalid document: 1, with or without the flag, and nothing read from AWS.
    ws.write("policies/broken.yaml", "kind: RoleMapping\n");
    let out = run_ok(&moto, &ws, &["plan", "--detailed-exitcode"], 1);
    assert!(
        stderr(&out).contains("Nothing was read from or changed in AWS"),
        "{}",
        show(&out)
    );
    let out = run_ok(&moto, &ws, &["validate"], 1);
    assert!(stderr(&out).contains("broken.yaml"), "{}", show(&out));
}

/// Runs the binary with its standard output already closed by the reader (as `| head`
/// does once it has its line): the first write finds the pipe broken, every time.
fn with_closed_stdout(mut cmd: Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    cmd.stdout(writer).stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    assert!(out.stdout.is_empty());
    out
}

fn assert_quiet(what: &str, out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{what}\n{}", show(out));
    let err = stderr(out);
    assert!(
        !err.contains("panicked")
            && !err.to_lowercase().contains("broken pipe")
            && !err.contains("error:"),
        "{what} must end quietly when stdout closes:\n{err}"
    );
}

#[test]
fn commands_without_aws_end_quietly_when_stdout_closes() {
    let ws = Workspace::new();
    let cases: &[&[&str]] = &[
        &["completions", "bash"],
        &["completions", "zsh"],
        &["completions", "fish"],
        &["completions", "powershell"],
        &["man"],
        &["schema"],
        &["--help"],
        &["plan", "--help"],
        &["validate"],
        &["entra-permissions"],
        &["entra-permissions", "--output", "json"],
        &["iam-policy"],
    ];
    for args in cases {
        let mut cmd = bare(ws.path());
        cmd.args(["--config", "trustsync.yaml"]).args(*args);
        let out = with_closed_stdout(cmd);
        assert_quiet(&format!("{args:?}"), &out, 0);
    }
    // A failing command keeps its own exit code.
    ws.write("policies/broken.yaml", "kind: RoleMapping\n");
    let mut cmd = bare(ws.path());
    cmd.args(["--config", "trustsync.yaml", "validate"]);
    let out = with_closed_stdout(cmd);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stderr(&out).contains("broken.yaml"), "{}", show(&out));
}

#[test]
fn commands_that_read_aws_end_quietly_with_their_own_exit_code() {
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    let run = |args: &[&str]| {
        let mut cmd = command(ws.path(), &moto.endpoint);
        cmd.args(["--config", "trustsync.yaml"]).args(args);
        with_closed_stdout(cmd)
    };
    // Changes pending: still 2, the reader's early close notwithstanding.
    assert_quiet("plan", &run(&["plan", "--detailed-exitcode"]), 2);
    assert_quiet(
        "plan --output markdown",
        &run(&["plan", "--output", "markdown"]),
        0,
    );
    // apply goes on with the changes (the audit log, not stdout, is the record).
    assert_quiet("apply", &run(&["apply", "--auto-approve"]), 0);
    run_ok(&moto, &ws, &["plan", "--detailed-exitcode"], 0);
    for args in [
        &["audit", "show", "audit.jsonl"][..],
        &["audit", "show", "audit.jsonl", "--output", "json"],
        &["audit", "verify", "audit.jsonl"],
        &["access"],
        &["access", "--output", "json"],
        &[
            "access",
            "--principal",
            "5e1f0a2b-1111-4111-8111-000000000001",
        ],
        &["export"],
    ] {
        assert_quiet(&format!("{args:?}"), &run(args), 0);
    }
}

/// `validate` lists every problem of a document, unknown fields included, and an unknown
/// field neither hides the document's other problems nor the document itself: no false
/// `no RoleMapping named …` for a document that is there.
#[test]
fn validate_lists_every_problem_with_no_follow_on_errors() {
    let ws = Workspace::new();
    let text = ws.read("policies/payments.yaml");
    let text = text
        // Two typos and a real problem in the role the FunctionAccess refers to.
        .replacen(
            "    name: payments-runtime\n",
            "    name: payments-runtime\n    maxSesionDuration: 3600\n    path: no-slashes\n",
            1,
        )
        .replacen(
            "  trustedServices: [lambda.amazonaws.com]\n",
            "  trustedServices: [lambda.amazonaws.com]\n  memebers: {transitive: true}\n",
            1,
        )
        // Wrong types in the other mapping: each is reported, none hides the next.
        .replacen(
            "    maxSessionDuration: 3600\n",
            "    maxSessionDuration: an hour\n    permissionsBoundary: [not, text]\n",
            1,
        );
    ws.write("policies/payments.yaml", &text);
    let out = bare(ws.path())
        .args(["--config", "trustsync.yaml", "validate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    for says in [
        "(RoleMapping payments-runtime): spec.memebers: unknown field `memebers`",
        "(RoleMapping payments-runtime): spec.role.maxSesionDuration: unknown field `maxSesionDuration`",
        // Checked like any other document once the typos are out.
        "(RoleMapping payments-runtime): spec.role.path:",
        "(RoleMapping payments-deployers): spec.role.maxSessionDuration: invalid type: string \"an hour\"",
        "(RoleMapping payments-deployers): spec.role.permissionsBoundary: invalid type: sequence",
        "5 problem(s) in the policy repository",
    ] {
        assert!(err.contains(says), "missing {says:?}:\n{err}");
    }
    // Both mappings are there: the FunctionAccess's references to them are not problems.
    assert!(!err.contains("no RoleMapping named"), "{err}");
    assert!(!err.contains("missing field"), "{err}");

    // A document serde cannot even read (a duplicate key) is still known by name.
    let text = ws.read("policies/payments.yaml").replacen(
        "    path: no-slashes\n",
        "    path: /a/\n    path: /b/\n",
        1,
    );
    ws.write("policies/payments.yaml", &text);
    let out = bare(ws.path())
        .args(["--config", "trustsync.yaml", "validate"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("duplicate entry with key \"path\""), "{err}");
    assert!(!err.contains("no RoleMapping named"), "{err}");
}

/// `check-token` names each way its input is not a token, in words, before reading AWS.
#[test]
fn check_token_names_each_problem_in_words() {
    let ws = Workspace::new();
    for (input, says) in [
        ("", "the input is empty"),
        (
            "aaa.bbb.ccc",
            "the first part (the header) is not base64url",
        ),
        ("abc", "not a JWT: the input has no dots"),
        ("a.b", "the input has 2 dot-separated parts"),
        (
            "{\"access_token\": \"x\"}",
            "give the value of its access_token",
        ),
    ] {
        let mut cmd = bare(ws.path());
        cmd.args(["--config", "trustsync.yaml", "check-token"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{input:?}\n{}", show(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{input:?}: {err}");
        for jargon in ["Invalid", "offset", "symbol", "part(s)"] {
            assert!(!err.contains(jargon), "{input:?}: {err}");
        }
    }
}

/// After a workload leaves a role, `access --principal` says the role no longer trusts
/// it, that its sessions before the cut-off are denied and what the cut-off is, and does
/// not list the role's functions as its own.
#[test]
fn access_says_when_a_role_no_longer_trusts_the_principal() {
    const SP2: &str = "5e1f0a2b-1111-4111-8111-000000000002";
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    apply(Via::moto(&moto), &ws, &[]);
    let before = stdout(&run_ok(&moto, &ws, &["access", "--principal", SP2], 0));
    assert!(before.contains("may invoke"), "{before}");
    ws.remove_tenant_member("a1b2c3d4-0001-4000-8000-000000000001", SP2);
    apply(Via::moto(&moto), &ws, &[]);
    let after = stdout(&run_ok(&moto, &ws, &["access", "--principal", SP2], 0));
    assert!(
        after.contains(&format!("no longer trusts {SP2}")),
        "{after}"
    );
    assert!(
        after.contains(&format!("sessions of {SP2} issued before"))
            && after.contains("the cut-off is when its removal was written plus"),
        "{after}"
    );
    assert!(!after.contains("  may invoke"), "{after}");
    assert!(after.contains(&format!("but not for {SP2}")), "{after}");
    let md = stdout(&run_ok(
        &moto,
        &ws,
        &["access", "--principal", SP2, "--output", "markdown"],
        0,
    ));
    assert!(md.contains("**no longer trusted**"), "{md}");
}

/// Without AWS credentials a command waits a short, bounded time (the instance metadata
/// service here accepts connections and never answers, the worst case) and says in one
/// line what to set; without a region, at once.
#[test]
fn without_aws_settings_one_line_says_what_to_set() {
    let ws = Workspace::new();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let imds = format!("http://{}", silent.local_addr().unwrap());
    let run = |env: &[(&str, &str)]| {
        let started = std::time::Instant::now();
        let out = bare(ws.path())
            // No ~/.aws: nothing from the user's own configuration.
            .env("HOME", ws.path())
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds)
            .envs(env.iter().copied())
            .args(["--config", "trustsync.yaml", "plan"])
            .output()
            .unwrap();
        (out, started.elapsed())
    };
    let (out, took) = run(&[("AWS_REGION", "us-east-1")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line:\n{err}");
    assert!(err.starts_with("error: no AWS credentials"), "{err}");
    for names in ["AWS_PROFILE", "AWS_ACCESS_KEY_ID", "IRSA"] {
        assert!(err.contains(names), "{err}");
    }
    assert!(took < std::time::Duration::from_secs(14), "waited {took:?}");

    let (out, took) = run(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line:\n{err}");
    assert!(
        err.contains("no AWS region: set aws.region in the config or AWS_REGION"),
        "{err}"
    );
    assert!(took < std::time::Duration::from_secs(14), "waited {took:?}");
    drop(silent);
}
