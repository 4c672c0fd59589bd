//! The commands of examples/gitops/.github/workflows/trustsync.yml, run as the workflow
//! runs them (bash, with `trustsync` on PATH), against moto and the local Graph server.

mod support;

use std::path::Path;
use std::process::Output;

use support::*;

/// The `run` script of the workflow step with this name.
fn step(workflow: &serde_yaml::Value, name: &str) -> String {
    workflow["jobs"]["plan"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str() == Some(name))
        .and_then(|s| s["run"].as_str())
        .unwrap_or_else(|| panic!("no step {name:?} with a run script"))
        .to_string()
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

#[test]
fn the_drift_report_workflow_runs_against_local_servers() {
    let text =
        std::fs::read_to_string(repo().join("examples/gitops/.github/workflows/trustsync.yml"))
            .unwrap();
    let workflow: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    let checkout = ws.path().join("checkout");
    copy_dir(&repo().join("examples/gitops"), &checkout);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);
    let bin = ws.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_trustsync"), bin.join("trustsync")).unwrap();
    let output_file = ws.path().join("github-output");
    let summary_file = ws.path().join("github-summary");

    let run_step = |name: &str, extra: &[(&str, &str)]| -> Output {
        let mut cmd = isolated("bash", &checkout, &moto.endpoint);
        cmd.args([
            "--noprofile",
            "--norc",
            "-eo",
            "pipefail",
            "-c",
            &step(&workflow, name),
        ])
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env("GITHUB_OUTPUT", &output_file)
        .env("GITHUB_STEP_SUMMARY", &summary_file)
        .envs(graph.env(CLIENT_SECRET))
        .envs(extra.iter().copied());
        cmd.output().unwrap()
    };
    let exitcode = || {
        let out = std::fs::read_to_string(&output_file).unwrap_or_default();
        out.lines()
            .rev()
            .find_map(|l| l.strip_prefix("exitcode="))
            .unwrap_or("")
            .to_string()
    };

    let out = run_step("Validate the policies", &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stdout(&out).contains("5 document(s) valid"),
        "{}",
        show(&out)
    );

    // A fresh account: the plan has changes (exit 2), the comment is Markdown.
    let out = run_step("Plan", &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(exitcode(), "2");
    let plan = std::fs::read_to_string(checkout.join("plan.md")).unwrap();
    assert!(plan.starts_with("### trustsync plan"), "{plan}");
    assert!(plan.contains("| 10 | 2 | 0 | 0 | 0 | 4 | 0 |"), "{plan}");
    assert!(std::fs::read_to_string(&summary_file)
        .unwrap()
        .contains("### trustsync plan"));

    // On a pull request, pending changes are fine; on the schedule they are drift.
    let out = run_step("Verdict", &[("PLAN_EXIT", "2"), ("EVENT", "pull_request")]);
    assert!(out.status.success(), "{}", show(&out));
    let out = run_step("Verdict", &[("PLAN_EXIT", "2"), ("EVENT", "schedule")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("AWS has drifted"), "{}", show(&out));

    // Once applied (by the controller), the scheduled run is green.
    let apply = command(&checkout, &moto.endpoint)
        .args([
            "--config",
            "trustsync.yaml",
            "apply",
            "--policies",
            "policies",
            "--auto-approve",
        ])
        .envs(graph.env(CLIENT_SECRET))
        .output()
        .unwrap();
    assert!(apply.status.success(), "{}", show(&apply));
    let out = run_step("Plan", &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(exitcode(), "0");
    let code = exitcode();
    let out = run_step(
        "Verdict",
        &[("PLAN_EXIT", code.as_str()), ("EVENT", "schedule")],
    );
    assert!(out.status.success(), "{}", show(&out));

    // A broken policy in a pull request: validation fails with the location.
    let broken = std::fs::read_to_string(checkout.join("policies/teams/reporting.yaml"))
        .unwrap()
        .replace("maxSessionDuration: 7200", "maxSessionDuration: 1");
    std::fs::write(checkout.join("policies/teams/reporting.yaml"), broken).unwrap();
    let out = run_step("Validate the policies", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("teams/reporting.yaml:11:5"),
        "{}",
        show(&out)
    );
}
