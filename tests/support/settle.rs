//! One property for every integration test (issue 38): after an apply, a re-plan with the
//! same inputs changes nothing. Every apply goes through [`apply`], which runs
//! `apply --auto-approve`, then `plan --output json --detailed-exitcode` with the same
//! flags, AWS endpoint and environment, and fails naming every change the re-plan still
//! finds. (After oxidecomputer/omicron's reconfigurator tests, where every plan is
//! followed by one that must change nothing.)
//!
//! A test that applies on purpose into a state a re-plan would change (a removal a safety
//! limit holds, a write that fails, a document a guardrail refuses, a pass cut short, a
//! step the next pass can take only once this one has written) says so with
//! [`apply_unsettled`] and an [`Unsettled`] reason: the property is waived there in
//! writing, never skipped in silence.

use std::process::{Child, Command, Output, Stdio};

use super::{command, show, Moto, Workspace};

/// How a test runs trustsync: AWS at `endpoint` (moto, or a proxy in front of it), with
/// extra environment (the Graph server's) and variables the harness sets taken away.
#[derive(Clone, Copy)]
pub struct Via<'a> {
    endpoint: &'a str,
    env: &'a [(String, String)],
    unset: &'a [&'a str],
}

impl<'a> Via<'a> {
    /// Straight at moto.
    pub fn moto(moto: &'a Moto) -> Via<'a> {
        Via::at(&moto.endpoint)
    }

    /// AWS at `endpoint` (a proxy in front of moto, say).
    pub fn at(endpoint: &'a str) -> Via<'a> {
        Via {
            endpoint,
            env: &[],
            unset: &[],
        }
    }

    /// With this environment as well (e.g. [`super::GraphServer::env`]).
    pub fn env(self, env: &'a [(String, String)]) -> Via<'a> {
        Via { env, ..self }
    }

    /// Without these variables the harness sets (e.g. its opt-out of the secure default).
    pub fn unset(self, unset: &'a [&'a str]) -> Via<'a> {
        Via { unset, ..self }
    }

    /// `trustsync --config trustsync.yaml ARGS` in the workspace.
    pub fn run(&self, ws: &Workspace, args: &[&str]) -> Output {
        self.command(ws).args(args).output().expect("run trustsync")
    }

    /// `trustsync --config trustsync.yaml`, to be given its arguments.
    fn command(&self, ws: &Workspace) -> Command {
        let mut cmd = command(ws.path(), self.endpoint);
        for name in self.unset {
            cmd.env_remove(name);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["--config", "trustsync.yaml"]);
        cmd
    }
}

/// `apply --auto-approve FLAGS`, which must succeed (exit 0), then the re-plan with the
/// same flags, which must find nothing to change. Returns the apply's output.
pub fn apply(via: Via, ws: &Workspace, flags: &[&str]) -> Output {
    let out = run_apply(via, ws, flags, 0, "");
    replan_is_empty(via, ws, flags, &out);
    out
}

/// Why a test applies into a state that a re-plan would change, on purpose.
#[derive(Clone, Copy, Debug)]
pub enum Unsettled {
    /// A safety limit holds a removal: the re-plan shows it held until a person releases it.
    Held(&'static str),
    /// A write or a read fails on purpose (a fault, a denied call, an unreachable account):
    /// the re-plan shows what did not land.
    Fails(&'static str),
    /// A guardrail, a conflict or a problem keeps a document from being (fully) planned:
    /// the re-plan reports it again.
    Refused(&'static str),
    /// The pass is cut short or races another writer: the test looks at the state it left.
    Interrupted(&'static str),
    /// What this pass writes lets the next pass read what it needs for the next step (an
    /// answer AWS gives only once a setting is on): the re-plan shows that step.
    Staged(&'static str),
}

/// `apply --auto-approve FLAGS` expecting exit `code`, with no re-plan, for `why`.
pub fn apply_unsettled(
    via: Via,
    ws: &Workspace,
    flags: &[&str],
    code: i32,
    why: Unsettled,
) -> Output {
    run_apply(via, ws, flags, code, &format!("{why:?}"))
}

/// `apply --auto-approve FLAGS` started and left running, its output dropped, for a test
/// that ends it part way ([`Unsettled::Interrupted`]): no re-plan, for `why`.
pub fn spawn_apply(via: Via, ws: &Workspace, flags: &[&str], why: Unsettled) -> Child {
    let mut cmd = via.command(ws);
    cmd.args(["apply", "--auto-approve"])
        .args(flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn()
        .unwrap_or_else(|e| panic!("start trustsync apply ({why:?}): {e}"))
}

fn run_apply(via: Via, ws: &Workspace, flags: &[&str], code: i32, why: &str) -> Output {
    let mut args = vec!["apply", "--auto-approve"];
    args.extend_from_slice(flags);
    let out = via.run(ws, &args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "trustsync {args:?} {why}\n{}",
        show(&out)
    );
    out
}

/// The re-plan, `plan --output json --detailed-exitcode FLAGS` the way the apply ran.
fn replan_is_empty(via: Via, ws: &Workspace, flags: &[&str], applied: &Output) {
    let mut args = vec!["plan", "--output", "json", "--detailed-exitcode"];
    args.extend_from_slice(flags);
    assert_replan_empty(&via.run(ws, &args), flags, applied);
}

/// The property itself, for a re-plan (`plan --output json --detailed-exitcode`) run
/// after `applied`: exit 0, no change, nothing held; else every leftover change, one a
/// line. [`apply`] calls it; so does a test whose apply cannot run through [`Via`] (the
/// README's tour, which answers `yes` on a terminal).
pub fn assert_replan_empty(out: &Output, flags: &[&str], applied: &Output) {
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let listed = |key: &str| -> Vec<String> {
        plan[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|c| {
                        format!(
                            "  {key}: {} {}",
                            c["action"].as_str().unwrap_or("?"),
                            c["resource"].as_str().unwrap_or("?")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let leftover: Vec<String> = [listed("changes"), listed("held")].concat();
    assert!(
        out.status.code() == Some(0) && leftover.is_empty(),
        "the re-plan after `apply --auto-approve {}` is not empty:\n{}\n--- the re-plan\n{}\n--- the apply\n{}",
        flags.join(" "),
        leftover.join("\n"),
        show(out),
        show(applied)
    );
}
