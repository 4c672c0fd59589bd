//! One pass, the same for `plan`, `apply` and `run`: gather → decide → write.
//!
//! [`plan`] gathers the world for the pass's scope ([`crate::runtime::gather`]: AWS first,
//! as the roles record which group each display-name selector is pinned to, then the
//! directory for exactly the groups the policies need, Entra's applications and people),
//! then decides with no I/O ([`crate::runtime::decide`]: desired, plan, checks).
//! [`Planned::apply`] writes the changes the checks let through and records them. The
//! membership fast path is the same pass over a smaller [`Scope`]. The CLI adds flags,
//! confirmation and exit codes; the controller adds triggers, back-off state and status.
//! Nothing else decides what a pass does.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::adapters::entra;
use crate::apply::{self, Actor, Report};
use crate::audit::AuditLog;
use crate::config::AnchorConfig;
use crate::observed::Observations;
use crate::plan::{Notice, NoticeKind, Plan, Settings};
use crate::ports::{AwsApi, Executor};
use crate::runtime::gather::{self, World};
use crate::runtime::{decide, people, who_changed};
use crate::sources::directory::GroupRequest;
use crate::sources::policy::Revision;

pub use crate::runtime::accounts::observe;
pub use crate::runtime::directory::DirectorySource;
pub use crate::runtime::gather::{pins, Inputs};
pub use crate::runtime::scope::Scope;

/// Publishes the checkpoints the log wrote since the last time to the configured anchor.
/// A failure is logged and the checkpoints are tried again after the next pass: the
/// anchor records the log, it never holds a change back.
pub async fn anchor(audit: &mut AuditLog, anchor: Option<&AnchorConfig>, aws: &dyn AwsApi) {
    let checkpoints = audit.take_unpublished();
    let Some(anchor) = anchor else {
        return;
    };
    if let Err(e) = aws.publish_checkpoints(anchor, &checkpoints).await {
        tracing::error!(error = %e, log_group = %anchor.log_group, "cannot publish audit checkpoints; retrying after the next pass");
        audit.requeue(checkpoints);
    }
}

/// A pass that has read the world and decided.
pub struct Planned {
    /// The checked plan: changes to apply, and those held with their reasons.
    pub plan: Plan,
    /// What AWS looked like, per account and region.
    pub observed: Observations,
    /// The directory requests made (with pins), for the controller's delta watcher.
    pub requests: Vec<GroupRequest>,
    /// The planner's settings, with the pass's one reading of the clock.
    pub settings: Settings,
    /// Microsoft Graph, when the plan's Entra changes (federated credentials) can be
    /// written.
    pub entra: Option<entra::GraphReader>,
    /// IAM Identity Center, when the plan has people's changes.
    pub identity_center: Option<std::sync::Arc<crate::adapters::aws::AwsClients>>,
    /// A focused pass: its writes go ahead of a full pass's requests in the rate limits.
    pub urgent: bool,
}

/// Reads the world and decides, in three steps: [`gather::read_world`] does every read
/// for the pass's scope (the whole fleet, or the documents a directory change touches);
/// [`decide::decide`] turns it into the checked plan with no I/O; [`who_changed::record`]
/// adds to the record who changed the groups (bounded: it never holds a revocation back),
/// then the audit log's notice, if it needs a person.
/// What the pass learnt of people is remembered for the passes after it.
pub async fn plan(
    inputs: &Inputs<'_>,
    directory: &tokio::sync::Mutex<DirectorySource>,
) -> anyhow::Result<Planned> {
    let pass_scope = inputs.scope;
    // The pass's one reading of the clock, before anything waits.
    let settings = Settings::new(inputs.config, crate::model::clock::unix_seconds());
    let admitted = gather::admit(inputs, pass_scope, directory).await;
    // Boxed: the read is a large future, and it is awaited one of two ways.
    let read = Box::pin(gather::read_world(
        &admitted, inputs, pass_scope, settings, directory,
    ));
    // A focused pass (a departure, a joiner) goes ahead of a full pass's requests in every
    // rate limit, its reads here and its writes (`Planned::writers`).
    let world = match pass_scope.is_fleet() {
        true => read.await?,
        false => crate::adapters::aws::urgent(read).await?,
    };
    let started = Instant::now();
    let mut plan = decide::decide(&world, inputs, pass_scope);
    tracing::info!(
        plan_us = started.elapsed().as_micros() as u64,
        accounts = inputs.fleet.members().len(),
        changes = plan.changes.len(),
        held = plan.held.len(),
        "planned"
    );
    let World {
        settings,
        read,
        requests,
        mut groups,
        applications,
        people: people_read,
        snapshot,
        ..
    } = world;
    let (identity_center, people_ids) = match people_read {
        Some(Ok(read)) => {
            let names = people::remember(
                &read,
                pass_scope,
                inputs.fleet,
                (&snapshot, &admitted.policies),
                &plan,
            );
            groups.extend(names.groups);
            (Some(read.clients), names.ids)
        }
        _ => (None, BTreeMap::new()),
    };
    let audit_reader = directory.lock().await.reader().cloned();
    who_changed::record(&mut plan, (&groups, &people_ids), audit_reader.as_ref()).await;
    if let Some(message) = &inputs.audit_attention {
        plan.notices.push(Notice {
            kind: NoticeKind::AuditSegmentRotated,
            account: None,
            resource: inputs.config.audit.path.display().to_string(),
            message: message.clone(),
        });
    }
    // The notices the lookup added are counted too.
    plan.summarize();
    Ok(Planned {
        plan,
        observed: read.observed,
        requests,
        settings,
        entra: applications.and_then(|a| a.writer),
        identity_center,
        urgent: !pass_scope.is_fleet(),
    })
}

impl Planned {
    /// The one writer of this pass's changes, routing each by back-end: IAM and Lambda
    /// through `aws`, Entra and Identity Center through what the pass connected.
    pub fn writers<'a, E: Executor + ?Sized>(
        &'a self,
        aws: &'a E,
    ) -> crate::runtime::writers::Writers<'a, E> {
        let entra = self
            .entra
            .as_ref()
            .map(|g| g as &dyn crate::ports::Write<crate::plan::EntraAction>);
        let people = self
            .identity_center
            .as_deref()
            .map(|ic| ic as &dyn crate::ports::Write<crate::plan::PeopleAction>);
        crate::runtime::writers::Writers::new(aws, entra, people).urgent(self.urgent)
    }

    /// Applies the changes the checks let through, recording each in the audit log.
    pub async fn apply<E: Executor + ?Sized>(
        &self,
        aws: &E,
        audit: &tokio::sync::Mutex<AuditLog>,
        actor: &Actor,
        policy_revision: Option<&Revision>,
        control: apply::Control<'_>,
    ) -> Result<Report, apply::Error> {
        let writers = self.writers(aws);
        apply::apply(&self.plan, &writers, audit, actor, policy_revision, control).await
    }
}
