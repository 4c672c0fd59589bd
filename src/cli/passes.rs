//! The commands that run a pass: `validate`, `plan`, `apply`, `run`.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::bail;

use super::{confirm as confirm_changes, out, outln, ApplyArgs, Pass, PlanArgs, Progress, RunArgs};
use crate::apply::{self};
use crate::audit;
use crate::config::Config;
use crate::render::{self, Format};
use crate::runtime::controller::{self, RunSettings};
use crate::sources::policy::{self};

/// `trustsync validate`: 0 when every document is valid, else 1 with every problem of
/// every file in one run: what keeps a document from loading, its references, the
/// accounts in the config, and the guardrails on what loaded.
pub(super) fn validate(config: &Config, policies: &Path) -> anyhow::Result<u8> {
    let (set, loading) = match policy::load_dir_partly(policies, &config.limits) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let mut problems = 0;
    for d in &loading {
        eprintln!("{d}");
    }
    problems += loading.len();
    // Accounts listed in the config are known without AWS: check the selectors against
    // them (discovered accounts are checked by every plan).
    let a = &config.accounts;
    if !a.targets.is_empty() && a.organization.is_none() {
        let regions: Vec<String> = config.aws.region.iter().cloned().collect();
        let accounts: Vec<_> = a
            .targets
            .iter()
            .map(|t| a.target_account(t, &regions, config.partition()))
            .collect();
        let scope = policy::scope::scope_problems(&set, &accounts);
        for (_, d) in &scope {
            eprintln!("{d}");
        }
        problems += scope.len();
    }
    // The guardrails, with what is known without AWS: the accounts the config lists, the
    // tenant of the directory the config names.
    let listed = (!a.targets.is_empty() && a.organization.is_none())
        .then(|| a.targets.iter().map(|t| t.id.clone()).collect());
    let tenant = crate::sources::directory::tenant_of(config.directory.tenant_file.as_deref());
    let violations = policy::guardrails::check(
        &set,
        &config.guardrails,
        &policy::guardrails::Known {
            accounts: listed,
            tenant,
        },
    );
    for v in &violations {
        eprintln!("{}", v.diagnostic);
    }
    problems += violations.len();
    if problems > 0 {
        eprintln!(
            "{problems} problem(s) in the policy repository ({}){}",
            policies.display(),
            if violations.is_empty() {
                String::new()
            } else {
                format!("; {} guardrail violation(s) among them: the controller would change nothing for those documents but their revocations (docs/policy-reference.md, \"Guardrails\")", violations.len())
            }
        );
        return Ok(1);
    }
    outln!(
        "{}: {} document(s) valid ({} identity provider(s), {} role mapping(s), {} function access, {} access assignment(s))",
        policies.display(),
        set.len(),
        set.providers.len(),
        set.role_mappings.len(),
        set.functions.len(),
        set.access_assignments.len()
    )?;
    Ok(0)
}

pub(super) fn color_for(stdout_format: Format) -> bool {
    stdout_format == Format::Text
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
}

/// `trustsync plan`: 1 when something needs a person, 2 (with `--detailed-exitcode`) when
/// changes are pending, else 0.
pub(super) async fn plan(args: PlanArgs, config: Config) -> anyhow::Result<u8> {
    let PlanArgs {
        pass,
        output,
        detailed_exitcode,
    } = args;
    let Some(ctx) = Pass::prepare(pass, config, Progress::new(output == Format::Json)).await?
    else {
        return Ok(1);
    };
    let plan = &ctx.planned.plan;
    out!("{}", render::render(plan, output, color_for(output)))?;
    ctx.log_stats();
    Ok(if plan.needs_attention() {
        1
    } else if detailed_exitcode && !plan.is_empty() {
        2
    } else {
        0
    })
}

/// `trustsync apply`: the plan, a confirmation unless `--auto-approve`, the changes; 0
/// only when everything was applied and nothing needs a person. With the S3 audit store,
/// under the writers' lease: taken after the confirmation (a person at the prompt never
/// keeps the controller from revoking), and the plan read again under it must be the one
/// confirmed.
pub(super) async fn apply(args: ApplyArgs, config: Config) -> anyhow::Result<u8> {
    let ApplyArgs {
        pass,
        auto_approve,
        wait_for_lease,
    } = args;
    let Some(s3) = config.audit.s3.clone() else {
        return apply_now(pass, config, Confirm::Ask(auto_approve), None).await;
    };
    let confirm = if auto_approve {
        Confirm::Ask(true)
    } else {
        let Some(ctx) = Pass::prepare(pass.clone(), config.clone(), Progress::new(false)).await?
        else {
            return Ok(1);
        };
        let plan = &ctx.planned.plan;
        let shown = confirmed(plan);
        out!(
            "{}",
            render::render(plan, Format::Text, color_for(Format::Text))
        )?;
        if plan.is_empty() && plan.held.is_empty() {
            ctx.log_stats();
            return Ok(if plan.needs_attention() { 1 } else { 0 });
        }
        if !plan.is_empty() && !confirm_changes(plan.changes.len())? {
            outln!("Apply cancelled; nothing was changed.")?;
            return Ok(1);
        }
        Confirm::Confirmed(shown)
    };
    let leased = crate::cli::lease::take(&s3, &config.aws, wait_for_lease).await?;
    let fence = leased.fence();
    let result = apply_now(pass, config, confirm, Some(fence)).await;
    leased.end().await;
    result
}

/// What the person said before the changes are made.
enum Confirm {
    /// Ask now, unless `true` (`--auto-approve`).
    Ask(bool),
    /// They confirmed these changes (what, to which resource).
    Confirmed(Vec<(crate::plan::Action, String)>),
}

fn confirmed(plan: &crate::plan::Plan) -> Vec<(crate::plan::Action, String)> {
    plan.changes
        .iter()
        .map(|c| (c.action.clone(), c.resource.to_string()))
        .collect()
}

async fn apply_now(
    pass: super::PassArgs,
    config: Config,
    confirm: Confirm,
    fence: Option<audit::lease::Fence>,
) -> anyhow::Result<u8> {
    let audit_config = config.audit.clone();
    let aws_config = config.aws.clone();
    let progress = Progress::new(false);
    let Some(ctx) = Pass::prepare(pass, config, progress).await? else {
        return Ok(1);
    };
    // One writer at a time; writes a crash left without an outcome are recorded first.
    let mut log =
        tokio::task::block_in_place(|| audit::open_configured(&audit_config, &aws_config, fence))?;
    log.recover(&ctx.planned.observed, &ctx.actor)?;
    let plan = &ctx.planned.plan;
    if let Confirm::Confirmed(shown) = &confirm {
        if confirmed(plan) != *shown {
            out!(
                "{}",
                render::render(plan, Format::Text, color_for(Format::Text))
            )?;
            outln!("The plan changed between the confirmation and the writers' lease (above: the plan now); nothing was changed. Run apply again.")?;
            return Ok(1);
        }
    } else {
        out!(
            "{}",
            render::render(plan, Format::Text, color_for(Format::Text))
        )?;
    }
    if plan.is_empty() && plan.held.is_empty() {
        ctx.log_stats();
        return Ok(if plan.needs_attention() { 1 } else { 0 });
    }
    // With only held changes nothing is asked: the pass is still recorded, so the audit
    // log shows what was held and why.
    if let Confirm::Ask(false) = confirm {
        if !plan.is_empty() && !confirm_changes(plan.changes.len())? {
            outln!("Apply cancelled; nothing was changed.")?;
            return Ok(1);
        }
    }
    let shared = tokio::sync::Mutex::new(log);
    let report = ctx
        .planned
        .apply(
            &ctx.fleet,
            &shared,
            &ctx.actor,
            ctx.policies.revision.as_ref(),
            apply::Control {
                stop: &|| false,
                progress: &|done, total| progress.show(&format!("applying {done} of {total}")),
                trigger: None,
            },
        )
        .await?;
    let mut log = shared.into_inner();
    progress.clear();
    crate::runtime::pass::anchor(&mut log, audit_config.anchor.as_ref(), ctx.fleet.hub()).await;
    print_report(&report, plan.held.len(), &log.location())?;
    ctx.log_stats();
    Ok(if report.success() && !plan.needs_attention() {
        0
    } else {
        1
    })
}

/// `trustsync run`: the controller, until SIGTERM or SIGINT.
pub(super) async fn run(args: RunArgs, mut config: Config) -> anyhow::Result<u8> {
    let RunArgs {
        pass,
        listen,
        interval_seconds,
    } = args;
    let (dir, source, released) = pass.resolve(&mut config, true)?;
    if !released.is_empty() {
        bail!("--release is for plan and apply: a person releases a hold once, not the controller for ever");
    }
    let run = &config.run;
    let settings = RunSettings {
        interval: std::time::Duration::from_secs(
            interval_seconds.unwrap_or(run.interval_seconds).max(1),
        ),
        directory_poll: std::time::Duration::from_secs(run.directory_poll_seconds.max(1)),
        policy_poll: std::time::Duration::from_secs(run.policy_poll_seconds.max(1)),
        listen: listen.unwrap_or(run.listen),
        shutdown: std::time::Duration::from_secs(run.shutdown_seconds),
    };
    controller::run(config, dir, source, settings).await
}

/// What an apply did, and where it is recorded.
fn print_report(report: &apply::Report, held: usize, location: &str) -> anyhow::Result<()> {
    outln!(
        "\nApply: {} applied, {} failed, {} skipped, {} held. Audit log: {}",
        report.applied,
        report.failed,
        report.skipped,
        held,
        location
    )?;
    for done in &report.outcomes {
        if let apply::Outcome::Failed(f) = &done.outcome {
            outln!("  failed  {} {}: {f}", done.action, done.resource)?;
        }
    }
    Ok(())
}
