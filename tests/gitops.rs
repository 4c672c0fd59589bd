//! The GitOps example (examples/gitops) as shipped.
//!
//! - Its workflow's `run` steps, run in order as GitHub runs them (bash, `-eo pipefail`,
//!   `GITHUB_ENV` / `GITHUB_PATH` / `GITHUB_OUTPUT` between steps), with trustsync from the
//!   container image `scripts/build-image.sh` builds, through the example's
//!   `.github/bin/trustsync` (docker played by podman), against moto and the local Graph
//!   server. The steps not run are GitHub's own: `uses:` actions (the test provides what
//!   they would: AWS credentials) and the request of GitHub's OIDC token (the test gives
//!   the Graph server's client secret instead).
//! - Who can do what: the jobs' permissions and conditions, the AWS roles' trust policies,
//!   the plan role's actions and the Entra federated credentials (examples/gitops/setup)
//!   are the ones examples/gitops/README.md describes.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;
use serde_yaml::Value;
use support::*;

const EXAMPLE: &str = "examples/gitops";
/// The repository and account the example's setup files name.
const REPO: &str = "acme/aws-access";
const GITHUB_PROVIDER: &str =
    "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";
const IMAGE: &str = "localhost/trustsync:gitops-test";

fn workflow() -> Value {
    let text =
        std::fs::read_to_string(repo().join(EXAMPLE).join(".github/workflows/trustsync.yml"))
            .unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn setup(name: &str) -> Json {
    let path = repo().join(EXAMPLE).join("setup").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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

/// The `${{ ... }}` expressions and `if:` conditions the workflow uses, evaluated as
/// GitHub does for one event; anything else fails the test (so it cannot pass by
/// ignoring a condition it does not understand).
struct Context {
    event: &'static str,
    git_ref: &'static str,
    vars: BTreeMap<&'static str, String>,
    outputs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Context {
    fn value(&self, expr: &str) -> String {
        let expr = expr.trim();
        if let Some(s) = expr.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            return s.to_string();
        }
        match expr.split('.').collect::<Vec<_>>()[..] {
            ["github", "event_name"] => self.event.to_string(),
            ["github", "ref"] => self.git_ref.to_string(),
            ["vars", name] => self
                .vars
                .get(name)
                .unwrap_or_else(|| panic!("the test sets no vars.{name}"))
                .clone(),
            ["steps", id, "outputs", key] => self
                .outputs
                .get(id)
                .and_then(|o| o.get(key))
                .cloned()
                .unwrap_or_default(),
            _ => panic!("expression the test does not evaluate: {expr}"),
        }
    }

    /// `a == 'b' && c != 'd'`: the only condition forms the run steps' jobs use.
    fn condition(&self, cond: &str) -> bool {
        cond.split("&&").all(|term| {
            if let Some((l, r)) = term.split_once("!=") {
                self.value(l) != self.value(r)
            } else if let Some((l, r)) = term.split_once("==") {
                self.value(l) == self.value(r)
            } else {
                panic!("condition the test does not evaluate: {cond}")
            }
        })
    }

    /// A string with its `${{ ... }}` replaced.
    fn expand(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("unclosed ${{") + start;
            out.push_str(&self.value(&rest[start + 3..end]));
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// Runs a job's steps in a checkout of the example, as a GitHub runner would.
struct Runner<'a> {
    checkout: PathBuf,
    files: PathBuf,
    /// The environment GitHub's own steps would leave: AWS credentials, the Entra secret.
    provided: Vec<(String, String)>,
    shims: &'a Path,
}

/// What a job did: each step's name and output, in order, up to the first failure.
struct Job {
    steps: Vec<(String, Output)>,
}

impl Job {
    fn step(&self, name: &str) -> &Output {
        &self
            .steps
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("step {name:?} did not run: {:?}", self.names()))
            .1
    }

    fn names(&self) -> Vec<&str> {
        self.steps.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn failed(&self) -> Option<&(String, Output)> {
        self.steps.iter().find(|(_, o)| !o.status.success())
    }
}

/// The `uses:` actions the workflow may call: GitHub's side, not run here.
const ACTIONS: &[&str] = &[
    "actions/checkout@v4",
    "aws-actions/configure-aws-credentials@v4",
    "actions/upload-artifact@v4",
    "actions/download-artifact@v4",
    "actions/github-script@v7",
];
/// The `run` steps that need GitHub's OIDC token endpoint.
const GITHUB_ONLY: &[&str] = &["Entra federated token"];

impl Runner<'_> {
    fn run(&self, wf: &Value, job: &str, cx: &mut Context) -> Job {
        let spec = &wf["jobs"][job];
        let job_if = spec["if"].as_str().expect("every job says when it runs");
        assert!(
            cx.condition(job_if),
            "job {job} does not run on {} {}",
            cx.event,
            cx.git_ref
        );
        std::fs::create_dir_all(&self.files).unwrap();
        for f in ["env", "path", "output", "summary"] {
            std::fs::write(self.files.join(f), "").unwrap();
        }
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        env.insert(
            "PATH".into(),
            format!(
                "{}:{}",
                self.shims.display(),
                std::env::var("PATH").unwrap()
            ),
        );
        env.insert("HOME".into(), std::env::var("HOME").unwrap_or_default());
        env.insert(
            "GITHUB_WORKSPACE".into(),
            self.checkout.display().to_string(),
        );
        env.insert("RUNNER_TEMP".into(), self.files.display().to_string());
        env.insert("GITHUB_EVENT_NAME".into(), cx.event.into());
        env.insert("GITHUB_REF".into(), cx.git_ref.into());
        for (k, v) in [
            ("GITHUB_ENV", "env"),
            ("GITHUB_PATH", "path"),
            ("GITHUB_OUTPUT", "output"),
            ("GITHUB_STEP_SUMMARY", "summary"),
        ] {
            env.insert(k.into(), self.files.join(v).display().to_string());
        }
        for scope in [&wf["env"], &spec["env"]] {
            for (k, v) in scope.as_mapping().into_iter().flatten() {
                env.insert(k.as_str().unwrap().into(), cx.expand(v.as_str().unwrap()));
            }
        }
        env.extend(self.provided.iter().cloned());

        let mut done = Job { steps: Vec::new() };
        for step in spec["steps"].as_sequence().unwrap() {
            let name = step["name"].as_str().unwrap_or_default().to_string();
            if let Some(action) = step["uses"].as_str() {
                assert!(
                    ACTIONS.contains(&action),
                    "job {job}: unexpected action {action}"
                );
                continue;
            }
            let script = step["run"]
                .as_str()
                .unwrap_or_else(|| panic!("job {job}: step {name:?} has neither uses nor run"));
            if GITHUB_ONLY.contains(&name.as_str()) {
                continue;
            }
            assert!(
                step["if"].is_null(),
                "job {job}: the run step {name:?} has a condition the test does not evaluate"
            );
            let mut step_env = env.clone();
            for (k, v) in step["env"].as_mapping().into_iter().flatten() {
                step_env.insert(k.as_str().unwrap().into(), cx.expand(v.as_str().unwrap()));
            }
            std::fs::write(self.files.join("output"), "").unwrap();
            let out = Command::new("bash")
                .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
                .current_dir(&self.checkout)
                .env_clear()
                .envs(&step_env)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            // What the step handed to the next ones.
            let read = |f: &str| std::fs::read_to_string(self.files.join(f)).unwrap();
            if let Some(id) = step["id"].as_str() {
                let outputs = read("output")
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                cx.outputs.insert(id.to_string(), outputs);
            }
            for line in read("env").lines() {
                let (k, v) = line
                    .split_once('=')
                    .expect("GITHUB_ENV lines are NAME=value");
                env.insert(k.into(), v.into());
            }
            for dir in read("path").lines().rev() {
                let path = format!("{dir}:{}", env["PATH"]);
                env.insert("PATH".into(), path);
            }
            std::fs::write(self.files.join("env"), "").unwrap();
            std::fs::write(self.files.join("path"), "").unwrap();
            let failed = !out.status.success();
            done.steps.push((name, out));
            if failed {
                break;
            }
        }
        done
    }
}

/// `--ulimit` for `kind`: podman on these machines needs them explicit, and no higher than
/// this process's own hard limit (as tests/image.rs).
fn ulimit(kind: &str, flag: &str, most: u64) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("ulimit -H{flag}")])
        .output()
        .unwrap();
    let hard: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(most);
    let n = hard.min(most);
    format!("--ulimit={kind}={n}:{n}")
}

#[test]
fn the_example_workflow_runs_as_shipped_from_the_image() {
    let wf = workflow();
    let moto = Moto::start();
    moto.create_functions(&["payments-api"]);
    let ws = Workspace::new();
    let checkout = ws.path().join("checkout");
    copy_dir(&repo().join(EXAMPLE), &checkout);
    let graph = GraphServer::start(&ws.path().join("examples/tenant.json"), 999);

    // The image the project builds (offline base), from the binary under test.
    let built = Command::new(repo().join("scripts/build-image.sh"))
        .args(["--binary", env!("CARGO_BIN_EXE_trustsync")])
        .args(["--local-base", "--tag", IMAGE])
        .output()
        .expect("scripts/build-image.sh");
    assert!(built.status.success(), "{}", show(&built));
    // docker, played by podman; no trustsync on PATH but the example's.
    let shims = ws.path().join("shims");
    std::fs::create_dir(&shims).unwrap();
    let docker = shims.join("docker");
    std::fs::write(
        &docker,
        format!(
            "#!/bin/sh\n# docker, played by podman (runc and explicit ulimits, as tests/image.rs)\n\
             if [ \"$1\" = run ]; then shift; exec podman --runtime runc run {} {} \"$@\"; fi\n\
             exec podman \"$@\"\n",
            ulimit("nofile", "n", 16384),
            ulimit("nproc", "u", 4096)
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut provided = vec![
        ("AWS_ENDPOINT_URL".to_string(), moto.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("NO_COLOR".into(), "1".into()),
    ];
    provided.extend(
        graph
            .env(CLIENT_SECRET)
            .into_iter()
            .filter(|(k, _)| k != "AZURE_TENANT_ID" && k != "AZURE_CLIENT_ID"),
    );
    let runner = Runner {
        checkout: checkout.clone(),
        files: ws.path().join("runner"),
        provided,
        shims: &shims,
    };
    let vars = BTreeMap::from([
        ("TRUSTSYNC_IMAGE", IMAGE.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AZURE_TENANT_ID", TENANT_ID.to_string()),
        // The local tenant has one app registration for trustsync: both jobs use it here.
        ("TRUSTSYNC_PLAN_CLIENT_ID", CLIENT_ID.to_string()),
        ("TRUSTSYNC_APPLY_CLIENT_ID", CLIENT_ID.to_string()),
    ]);
    let context = |event, git_ref| Context {
        event,
        git_ref,
        vars: vars.clone(),
        outputs: BTreeMap::new(),
    };
    let summary = || std::fs::read_to_string(runner.files.join("summary")).unwrap();

    // A pull request on a fresh account: valid, the plan has changes (exit 2), the comment
    // is Markdown, and pending changes are what a pull request is for.
    let mut pr = context("pull_request", "refs/pull/7/merge");
    let job = runner.run(&wf, "plan", &mut pr);
    assert!(job.failed().is_none(), "{}", show(&job.failed().unwrap().1));
    assert_eq!(
        job.names(),
        [
            "Install trustsync",
            "Validate the policies",
            "Plan",
            "Verdict"
        ]
    );
    assert!(stdout(job.step("Install trustsync")).contains("trustsync 0.1.0"));
    assert!(stdout(job.step("Validate the policies")).contains("5 document(s) valid"));
    assert_eq!(pr.outputs["plan"]["exitcode"], "2");
    let plan = std::fs::read_to_string(checkout.join("plan.md")).unwrap();
    assert!(plan.starts_with("### trustsync plan"), "{plan}");
    assert!(plan.contains("| 10 | 2 | 0 | 0 | 0 | 4 | 0 |"), "{plan}");
    assert!(summary().contains("### trustsync plan"));
    assert!(stdout(job.step("Verdict")).contains("The pull request changes AWS access"));
    // Nothing a plan does writes AWS.
    assert!(!moto.role_exists("payments-deployer"));

    // The schedule, before anything is applied: drift, a red job.
    let mut schedule = context("schedule", "refs/heads/main");
    let job = runner.run(&wf, "plan", &mut schedule);
    let (name, out) = job.failed().expect("drift fails the scheduled run");
    assert_eq!(name, "Verdict");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(out).contains("AWS has drifted"), "{}", show(out));

    // The merge: the apply job on main applies, and keeps its audit log.
    let mut push = context("push", "refs/heads/main");
    assert!(!push.condition(wf["jobs"]["plan"]["if"].as_str().unwrap()));
    let job = runner.run(&wf, "apply", &mut push);
    assert!(job.failed().is_none(), "{}", show(&job.failed().unwrap().1));
    assert_eq!(job.names(), ["Install trustsync", "Apply"]);
    assert!(
        summary().contains("Apply: 12 applied, 0 failed"),
        "{}",
        summary()
    );
    assert_eq!(
        moto.trusted_subs("payments-deployer").len(),
        3,
        "the apply reached AWS"
    );
    let audit = std::fs::read_to_string(checkout.join("trustsync-audit.jsonl")).unwrap();
    assert!(audit.contains("\"create-role\""), "{audit}");
    // A pull request never runs the apply job.
    assert!(!pr.condition(wf["jobs"]["apply"]["if"].as_str().unwrap()));

    // Applied: the scheduled run is green.
    let mut schedule = context("schedule", "refs/heads/main");
    let job = runner.run(&wf, "plan", &mut schedule);
    assert!(job.failed().is_none(), "{}", show(&job.failed().unwrap().1));
    assert_eq!(schedule.outputs["plan"]["exitcode"], "0");
    assert!(stdout(job.step("Verdict")).contains("AWS matches the policies."));

    // A broken policy in a pull request: validation fails with the location, and the job
    // stops there.
    let broken = std::fs::read_to_string(checkout.join("policies/teams/reporting.yaml"))
        .unwrap()
        .replace("maxSessionDuration: 7200", "maxSessionDuration: 1");
    std::fs::write(checkout.join("policies/teams/reporting.yaml"), broken).unwrap();
    let mut pr = context("pull_request", "refs/pull/8/merge");
    let job = runner.run(&wf, "plan", &mut pr);
    let (name, out) = job.failed().expect("a broken policy fails the job");
    assert_eq!(name, "Validate the policies");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("teams/reporting.yaml:11:5"),
        "{}",
        show(out)
    );
    assert_eq!(job.names().last(), Some(&"Validate the policies"));

    // The wrapper says what is missing rather than running docker with no image.
    let out = Command::new(checkout.join(".github/bin/trustsync"))
        .arg("--version")
        .env_remove("TRUSTSYNC_IMAGE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("set TRUSTSYNC_IMAGE"),
        "{}",
        show(&out)
    );
}

/// The string values of a mapping's keys, e.g. a job's `permissions`.
fn mapping(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .unwrap_or_else(|| panic!("not a mapping: {v:?}"))
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
        .collect()
}

/// Every `vars.NAME` a job's text refers to.
fn vars_of(job: &Value) -> BTreeSet<String> {
    let text = serde_yaml::to_string(job).unwrap();
    text.split("vars.")
        .skip(1)
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// The `sub` values a GitHub trust policy allows, after checking its shape: GitHub's
/// provider, web identity, the STS audience, exact matches only.
fn github_subjects(trust: &Json) -> BTreeSet<String> {
    let statements = trust["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{trust}");
    let s = &statements[0];
    assert_eq!(s["Effect"], "Allow");
    assert_eq!(s["Principal"]["Federated"], GITHUB_PROVIDER);
    assert_eq!(s["Action"], "sts:AssumeRoleWithWebIdentity");
    let condition = s["Condition"].as_object().unwrap();
    assert_eq!(
        condition.keys().collect::<Vec<_>>(),
        ["StringEquals"],
        "exact subjects only, no StringLike: {trust}"
    );
    let eq = &condition["StringEquals"];
    assert_eq!(
        eq["token.actions.githubusercontent.com:aud"],
        "sts.amazonaws.com"
    );
    match &eq["token.actions.githubusercontent.com:sub"] {
        Json::String(s) => BTreeSet::from([s.clone()]),
        Json::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
        other => panic!("sub: {other}"),
    }
}

/// Whether an IAM action only reads (Get, List, Describe).
fn reads(action: &str) -> bool {
    let name = action.split_once(':').unwrap().1.to_ascii_lowercase();
    ["get", "list", "describe"]
        .iter()
        .any(|p| name.starts_with(p))
}

fn actions(statement: &Json) -> Vec<String> {
    match &statement["Action"] {
        Json::String(s) => vec![s.clone()],
        Json::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
        other => panic!("Action: {other}"),
    }
}

#[test]
fn pull_requests_get_nothing_that_can_write_and_apply_needs_main_and_the_environment() {
    let wf = workflow();
    let jobs = wf["jobs"].as_mapping().unwrap();
    assert_eq!(
        jobs.keys().map(|k| k.as_str().unwrap()).collect::<Vec<_>>(),
        ["plan", "comment", "apply"]
    );
    // No permission unless a job asks; never the trigger that runs a pull request's code
    // with the base branch's secrets.
    assert!(wf["permissions"].as_mapping().unwrap().is_empty());
    let on = mapping_keys(&wf["on"]);
    assert_eq!(
        on,
        ["pull_request", "push", "schedule", "workflow_dispatch"]
    );
    assert_eq!(
        wf["on"]["push"]["branches"],
        serde_yaml::from_str::<Value>("[main]").unwrap()
    );

    // plan: read-only GitHub token, the plan role and app only, no environment.
    let plan = &wf["jobs"]["plan"];
    assert_eq!(
        mapping(&plan["permissions"]),
        BTreeMap::from([
            ("contents".into(), "read".into()),
            ("id-token".into(), "write".into())
        ])
    );
    assert!(plan["environment"].is_null());
    assert_eq!(plan["if"], "github.event_name != 'push'");
    let shared: BTreeSet<String> = ["TRUSTSYNC_IMAGE", "AWS_REGION", "AZURE_TENANT_ID"]
        .map(String::from)
        .into();
    assert_eq!(vars_of(&wf["env"]), shared);
    assert_eq!(
        vars_of(plan),
        [
            "TRUSTSYNC_PLAN_CLIENT_ID",
            "TRUSTSYNC_PLAN_ROLE_ARN",
            "AWS_REGION"
        ]
        .map(String::from)
        .into()
    );
    let plan_text = serde_yaml::to_string(plan).unwrap();
    assert!(
        !plan_text.contains(" apply"),
        "the plan job applies nothing"
    );

    // comment: may comment, holds no cloud token, runs only on pull requests.
    let comment = &wf["jobs"]["comment"];
    assert_eq!(
        mapping(&comment["permissions"]),
        BTreeMap::from([("pull-requests".into(), "write".into())])
    );
    assert!(comment["if"]
        .as_str()
        .unwrap()
        .contains("github.event_name == 'pull_request'"));
    assert!(vars_of(comment).is_empty());
    assert!(!serde_yaml::to_string(comment)
        .unwrap()
        .contains("trustsync --config"));

    // apply: only pushes to main, in the protected environment, with its own role and app.
    let apply = &wf["jobs"]["apply"];
    assert_eq!(
        apply["if"],
        "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    );
    let environment = apply["environment"]
        .as_str()
        .expect("apply names its environment");
    assert_eq!(environment, "production");
    assert_eq!(
        mapping(&apply["permissions"]),
        BTreeMap::from([
            ("contents".into(), "read".into()),
            ("id-token".into(), "write".into())
        ])
    );
    assert_eq!(
        vars_of(apply),
        [
            "TRUSTSYNC_APPLY_CLIENT_ID",
            "TRUSTSYNC_APPLY_ROLE_ARN",
            "AWS_REGION"
        ]
        .map(String::from)
        .into()
    );

    // The AWS roles: the plan role trusts the pull-request subject (and the default
    // branch's, for the schedule), the apply role only the environment's.
    let plan_subjects = github_subjects(&setup("plan-role-trust.json"));
    assert_eq!(
        plan_subjects,
        [
            format!("repo:{REPO}:pull_request"),
            format!("repo:{REPO}:ref:refs/heads/main")
        ]
        .into()
    );
    let apply_subjects = github_subjects(&setup("apply-role-trust.json"));
    assert_eq!(
        apply_subjects,
        [format!("repo:{REPO}:environment:{environment}")].into()
    );

    // Entra: each app's federated credentials are exactly its role's subjects, for the
    // audience the workflow asks GitHub for.
    let audience = plan_text
        .split("audience=")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the plan job asks GitHub for a token with an audience")
        .to_string();
    let credentials = |files: &[&str]| -> BTreeSet<String> {
        files
            .iter()
            .map(|f| {
                let c = setup(f);
                assert_eq!(c["issuer"], "https://token.actions.githubusercontent.com");
                assert_eq!(c["audiences"], serde_json::json!([audience]));
                c["subject"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert_eq!(
        credentials(&["entra-plan-pull-request.json", "entra-plan-main.json"]),
        plan_subjects
    );
    assert_eq!(credentials(&["entra-apply.json"]), apply_subjects);
    assert!(serde_yaml::to_string(apply)
        .unwrap()
        .contains(&format!("audience={audience}")));

    // The plan role's actions are exactly the reads of `trustsync iam-policy` for these
    // policies: nothing that writes, nothing a plan lacks.
    let out = command(&repo().join(EXAMPLE), "http://127.0.0.1:9")
        .args([
            "--config",
            "trustsync.yaml",
            "iam-policy",
            "--policies",
            "policies",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let full: Json = serde_json::from_slice(&out.stdout).unwrap();
    let allowed: Vec<String> = full["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(actions)
        .collect();
    assert!(
        allowed.iter().any(|a| !reads(a)),
        "the apply role needs writes"
    );
    let needed: BTreeSet<String> = allowed.into_iter().filter(|a| reads(a)).collect();
    let plan_policy = setup("plan-role-policy.json");
    let mut granted = BTreeSet::new();
    for s in plan_policy["Statement"].as_array().unwrap() {
        assert_eq!(s["Effect"], "Allow");
        for a in actions(s) {
            assert!(reads(&a), "the plan role may {a}");
            granted.insert(a);
        }
    }
    assert_eq!(granted, needed);

    // The README says the same: the environment, the subjects, the variables.
    let readme = std::fs::read_to_string(repo().join(EXAMPLE).join("README.md")).unwrap();
    for needle in [
        format!("`{environment}`"),
        "`repo:<org>/<repo>:pull_request`".to_string(),
        format!("`repo:<org>/<repo>:environment:{environment}`"),
    ] {
        assert!(readme.contains(&needle), "README.md lacks {needle}");
    }
    for job in [plan, apply] {
        for var in vars_of(job).iter().chain(&shared) {
            assert!(
                readme.contains(&format!("`{var}`")),
                "README.md lacks {var}"
            );
        }
    }
}

fn mapping_keys(v: &Value) -> Vec<String> {
    v.as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}
