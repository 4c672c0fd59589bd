//! Decide: the world a pass gathered ([`crate::runtime::gather`]) turned into its checked
//! plan, with no I/O: each account and region planned on its own and the plans merged,
//! grouped by account; the outbound direction; people; the problems the read found; the
//! checks, which weigh the pass as a whole; and what the scope may change. Its wall time
//! is its CPU time.

use crate::checks;
use crate::plan::{self, outbound, Plan, Problem, ProblemKind};
use crate::runtime::gather::{Inputs, World};
use crate::runtime::people;
use crate::runtime::scope::Scope;
use crate::sources::policy::scope as placement;

/// Turns the world into the pass's checked plan.
pub fn decide(world: &World<'_>, inputs: &Inputs<'_>, pass_scope: Scope<'_>) -> Plan {
    let mut plan = plan_places(world, inputs);
    if let Some(apps) = &world.applications {
        let accounts = world.read.observed.homes.keys().cloned().collect();
        let prefix = inputs.config.instance_statement_prefix();
        let p = outbound::plan(&outbound::Inputs {
            wanted: &world.wanted,
            issuers: &world.read.issuers,
            applications: &apps.read,
            accounts: &accounts,
            prefix: &prefix,
            enable: inputs.config.outbound_federation.enable,
            prune: world.settings.prune,
        });
        plan = Plan::merge(vec![plan, p]);
    }
    match &world.people {
        Some(Ok(read)) => {
            let p = people::decide(
                read,
                pass_scope,
                (inputs.config, &world.settings),
                world.began,
                (inputs.recorded_baselines, inputs.recorded_people),
            );
            plan = Plan::merge(vec![plan, p]);
        }
        Some(Err(problem)) => plan.problems.push(problem.clone()),
        None => {}
    }
    report_problems(&mut plan, world, inputs, pass_scope);
    let mut plan = checks::check(
        plan,
        &checks::Context {
            safety: &inputs.config.safety,
            deferred: inputs.deferred,
            released: inputs.released,
        },
    );
    pass_scope.trim(&mut plan);
    let policies = &world.admitted.policies;
    plan.label(|name| policies.labels_of(name).cloned());
    plan.summarize();
    plan
}

/// Plans each account and region on its own (IAM once, from the account's home region)
/// and merges the plans, grouped by account.
fn plan_places(world: &World<'_>, inputs: &Inputs<'_>) -> Plan {
    let plans = world
        .places
        .iter()
        .map(|place| {
            let (id, region) = &place.at;
            let seen = &world.read.observed.by_place[&place.at];
            let mut p = plan::plan(
                &place.desired,
                seen,
                &world.settings,
                inputs.recorded_baselines,
            );
            p.place(id, region);
            p
        })
        .collect();
    Plan::merge(plans)
}

/// The accounts read, and the problems the read found: accounts that could not be read,
/// pins changed outside trustsync, guardrails broken, and (the full pass over the whole
/// fleet) documents that name no account in scope.
fn report_problems(plan: &mut Plan, world: &World<'_>, inputs: &Inputs<'_>, pass_scope: Scope<'_>) {
    plan.accounts = world.read.accounts.clone();
    plan.problems.extend(world.read.unreachable.iter().cloned());
    plan.problems.extend(world.pin_problems.iter().cloned());
    for v in &world.admitted.violations {
        let d = &v.diagnostic;
        plan.problems.push(Problem {
            kind: ProblemKind::Guardrail,
            account: None,
            mapping: Some(v.name.as_str().into()),
            resource: format!("{}:{}", d.file.display(), d.line),
            message: format!("{}: {}", d.field, d.message),
        });
    }
    let fleet = inputs.fleet;
    if !fleet.narrowed && pass_scope.is_fleet() {
        let in_scope: Vec<_> = fleet.members().iter().map(|m| m.account.clone()).collect();
        for (name, d) in placement::scope_problems(&world.admitted.policies, &in_scope) {
            plan.problems.push(Problem {
                kind: ProblemKind::OutOfScope,
                account: None,
                mapping: Some(name.as_str().into()),
                resource: format!("{}:{}", d.file.display(), d.line),
                message: format!("{}: {}", d.field, d.message),
            });
        }
    }
}
