//! The start of every pass a command makes: the config's policies, the directory and the
//! accounts, read once, and the confirmation before an apply.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{out, output, PassArgs, Progress};
use crate::adapters::aws::CallerIdentity;
use crate::apply::Actor;
use crate::config::Config;
use crate::runtime::fleet::{self, Fleet};
use crate::runtime::pass::{self, DirectorySource, Planned};
use crate::sources::policy::{self, PolicySet};

pub(super) fn confirm(n: usize) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal: pass --auto-approve to apply without confirmation; nothing was changed");
    }
    out!("\nApply these {n} change(s)? Only 'yes' is accepted: ")?;
    output::flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// Everything one plan or apply pass reads, and the checked plan.
pub(super) struct Pass {
    /// Microsoft Graph requests, retries and throttled answers of the read.
    pub(super) graph: (u64, u64, u64),
    pub(super) policies: PolicySet,
    pub(super) fleet: Fleet,
    pub(super) actor: Actor,
    pub(super) planned: Planned,
}

impl PassArgs {
    /// Applies the flag overrides to the config; returns the policy directory, the
    /// directory source and the released holds.
    pub(super) fn resolve(
        self,
        config: &mut Config,
        delta: bool,
    ) -> anyhow::Result<(PathBuf, DirectorySource, BTreeSet<String>)> {
        let PassArgs {
            mut read,
            prune,
            release,
        } = self;
        if !read.accounts.is_empty() {
            bail!("--account is for plan and apply: the controller manages every account in scope");
        }
        if let Some(p) = prune {
            config.prune = p;
        }
        let source = match read.directory(config) {
            Some(path) => DirectorySource::File(path),
            None => DirectorySource::graph(
                config.directory.graph.clone(),
                delta.then(|| {
                    std::time::Duration::from_secs(config.directory.full_read_seconds.max(1))
                }),
            ),
        };
        Ok((
            read.policies.policies,
            source,
            release.into_iter().collect(),
        ))
    }
}

/// The `--account` ids, each a 12-digit account id, checked before anything is read.
pub(super) fn check_accounts(only: &[String]) -> anyhow::Result<()> {
    match only
        .iter()
        .find(|a| !crate::model::account::is_account_id(a))
    {
        Some(bad) => {
            bail!("--account {bad}: not a 12-digit account id; nothing was read or changed")
        }
        None => Ok(()),
    }
}

/// How long a one-shot command waits for the AWS credential chain before saying what to
/// set: the chain's last resort, the instance metadata service, is otherwise retried for
/// half a minute on a machine that has none.
const CREDENTIALS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// AWS settings and credentials before the first request: a missing region or no
/// credentials within [`CREDENTIALS_WAIT`] is one line that says what to set.
pub(super) async fn aws_ready(config: &Config) -> anyhow::Result<()> {
    use aws_credential_types::provider::ProvideCredentials;
    let what = "set AWS_PROFILE (a profile of ~/.aws/config; `aws sso login` for SSO), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role provides them (IRSA, EKS Pod Identity, an instance profile)";
    let shared = crate::adapters::aws::shared_config(&config.aws)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let Some(provider) = shared.credentials_provider() else {
        bail!("no AWS credentials: {what}");
    };
    match tokio::time::timeout(CREDENTIALS_WAIT, provider.provide_credentials()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::info!(error = ?e, "the AWS credential chain");
            bail!("no AWS credentials: {what} (-v shows what the AWS credential chain tried)")
        }
        Err(_) => bail!(
            "no AWS credentials within {} s: {what}",
            CREDENTIALS_WAIT.as_secs()
        ),
    }
}

/// The start of every command that reads AWS: the `--account` ids checked, the policies
/// loaded (`None` when they are invalid: reported, and no AWS request made), then the
/// hub connected and the accounts in scope found and narrowed to `only`.
pub(super) async fn open_scope(
    dir: &Path,
    only: &[String],
    config: &Config,
    progress: &Progress,
) -> anyhow::Result<Option<(PolicySet, Fleet, CallerIdentity)>> {
    check_accounts(only)?;
    let policies = match policy::load_dir(dir, &config.limits) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}\nNothing was read from or changed in AWS.");
            return Ok(None);
        }
    };
    progress.show("reading AWS and the directory…");
    aws_ready(config).await.inspect_err(|_| progress.clear())?;
    let (mut fleet, caller) = fleet::connect(config, None, Default::default())
        .await
        .context("reading the AWS caller identity and the accounts in scope")?;
    fleet.narrow(only)?;
    Ok(Some((policies, fleet, caller)))
}

impl Pass {
    /// Reads policies, AWS and the directory, and plans. `None` when the policies are
    /// invalid (already reported; no AWS or directory request was made).
    pub(super) async fn prepare(
        mut args: PassArgs,
        mut config: Config,
        progress: Progress,
    ) -> anyhow::Result<Option<Pass>> {
        let only = std::mem::take(&mut args.read.accounts);
        let (dir, source, released) = args.resolve(&mut config, false)?;
        let Some((policies, fleet, caller)) = open_scope(&dir, &only, &config, &progress).await?
        else {
            return Ok(None);
        };
        // The pins and removal baselines the audit log says were written (read without
        // the writer's lock; with the S3 store, from a copy of the bucket's log: a bucket
        // that cannot be read is an error, never an empty log).
        let mut audit = config.audit.clone();
        let readable = crate::audit::readable_copy(&config.audit, &config.aws)
            .map_err(|e| anyhow::anyhow!("the audit log: {e}"))?;
        audit.path = readable.path.clone();
        let crate::audit::Recorded {
            pins: recorded_pins,
            baselines: recorded_baselines,
            people: recorded_people,
        } = crate::audit::recorded(&audit);
        let attention = crate::audit::needs_attention(&audit)
            .into_iter()
            .chain(readable.tampering.iter().cloned())
            .reduce(|a, b| format!("{a}; {b}"));
        let source = tokio::sync::Mutex::new(source);
        let planned = pass::plan(
            &pass::Inputs {
                config: &config,
                policies: &policies,
                fleet: &fleet,
                deferred: &|_| None,
                released: &released,
                recorded_pins: &recorded_pins,
                recorded_baselines: &recorded_baselines,
                recorded_people: &recorded_people,
                audit_attention: attention,
                scope: pass::Scope::Fleet,
            },
            &source,
        )
        .await;
        progress.clear();
        let planned = planned?;
        let graph = source.lock().await.graph_stats();
        Ok(Some(Pass {
            graph,
            policies,
            fleet,
            actor: Actor::new(&caller.arn),
            planned,
        }))
    }

    /// The requests the pass sent: logged (`-v`), and with `--stats` printed on stderr.
    pub(super) fn log_stats(&self) {
        let stats = self.fleet.stats();
        let (requests, retries, throttled) = self.graph;
        tracing::info!(
            requests = stats.total(),
            retries = stats.retries,
            throttled = stats.throttled,
            by_operation = ?stats.requests,
            "AWS requests"
        );
        if requests > 0 {
            tracing::info!(requests, retries, throttled, "Microsoft Graph requests");
        }
        if super::STATS.get().copied().unwrap_or(false) {
            let by_operation: Vec<String> = stats
                .requests
                .iter()
                .map(|((service, op), n)| format!("{service}:{op} {n}"))
                .collect();
            eprintln!(
                "AWS requests: {} ({} retries, {} throttled): {}",
                stats.total(),
                stats.retries,
                stats.throttled,
                by_operation.join(", ")
            );
            eprintln!(
                "Microsoft Graph requests: {requests} ({retries} retries, {throttled} throttled)"
            );
        }
    }
}
