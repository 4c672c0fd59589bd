//! One pass, the same for `plan`, `apply` and `run`:
//! read → desired → observed → plan → checks → apply → audit.
//!
//! [`plan`] reads the world and decides: AWS first (the roles record which group each
//! display-name selector is pinned to), then the directory for exactly the groups the
//! policies need, then the pure stages (desired, plan, checks). [`Planned::apply`] makes
//! the changes the checks let through and records them. The CLI adds flags, confirmation
//! and exit codes; the controller adds triggers, back-off state and status. Nothing else
//! decides what a pass does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::adapters::entra::{self};
use crate::apply::{self, Actor, Report};
use crate::audit::AuditLog;
use crate::checks;
use crate::config::{AnchorConfig, Config};
use crate::desired::{self, Pins, Target};
use crate::model::call::Failure;
use crate::model::names::SESSIONS_POLICY;
use crate::observed::{Observations, Observed};
use crate::plan::{self, outbound, AccountPlan, Change, Plan, Problem, ProblemKind, Settings};
use crate::ports::{AwsApi, Executor};
use crate::runtime::fleet::{Fleet, Member};
use crate::runtime::writes::RoleWrites;
use crate::sources::directory::{DirectorySnapshot, GroupRequest, MembershipChange, PIN_TAG};
use crate::sources::policy::{function_name_of, guardrails, scope, PolicySet, Revision};

pub use crate::runtime::directory::DirectorySource;

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

/// Everything a pass reads besides the world.
pub struct Inputs<'a> {
    /// The controller config.
    pub config: &'a Config,
    /// The policy set.
    pub policies: &'a PolicySet,
    /// The accounts in scope and how to reach them.
    pub fleet: &'a Fleet,
    /// Why a change is waiting out a back-off (the controller's); `None` for none.
    pub deferred: &'a dyn Fn(&Change) -> Option<String>,
    /// Holds a person released (`--release`).
    pub released: &'a BTreeSet<String>,
    /// The group pins this instance's audit log says it last wrote, per role ARN.
    pub recorded_pins: &'a BTreeMap<String, String>,
    /// The removal baselines (`count@unix-time`) its audit log says its revocations took,
    /// per role ARN: the membership fast path records them there, not in the role's tag.
    pub recorded_baselines: &'a BTreeMap<String, String>,
    /// Whom each identity-store user name was made or taken over for, as the audit log
    /// records it (lower-cased user name -> Entra object id).
    pub recorded_people: &'a BTreeMap<String, String>,
    /// What the audit log says needs a person (a rotation not acknowledged, a break the
    /// next writer rotates away from): a notice in every plan until then.
    pub audit_attention: Option<String>,
    /// The membership fast path: only these RoleMapping documents (by name), their roles
    /// read one by one, and only their trust and session denials changed. `None`: the
    /// full pass.
    pub focus: Option<&'a BTreeSet<String>>,
    /// The session-deny policies the controller knows its roles carry: the fast path does
    /// not read those again.
    pub known: Option<&'a RoleWrites>,
}

/// How a pass reads an account.
#[derive(Clone, Copy)]
enum Reading<'a> {
    /// Everything the planner compares.
    Full,
    /// The membership fast path: the focused mappings' roles, the session-deny policies
    /// not in `known` read with them.
    Fast { known: Option<&'a RoleWrites> },
}

/// What the fast path may change: a role's trust and the session denials that go with it,
/// a returning member's denial dropped included (its next session works at once).
/// Everything else waits for the full pass.
fn fast_path_action(action: &plan::Action) -> bool {
    use plan::IamAction::*;
    match action {
        // People's fast path: revocations, and onboarding into trustsync's groups (users
        // made, members added); permission sets and assignments wait for the full pass.
        plan::Action::People(
            plan::PeopleAction::CreateIdentityStoreUser { .. }
            | plan::PeopleAction::AddGroupMembers { .. },
        ) => true,
        plan::Action::People(_) => action.is_revocation(),
        plan::Action::Iam(
            RevokeTrust { .. } | RevokeSessions { .. } | UpdateTrustPolicy { .. },
        ) => true,
        plan::Action::Iam(
            PutInlinePolicy { policy_name, .. } | DeleteInlinePolicy { policy_name, .. },
        ) => policy_name == SESSIONS_POLICY,
        _ => false,
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
}

/// The group pins of the roles trustsync owns: the one its audit log says it last wrote
/// when there is one (a pin tag changed by someone else is not followed), else the tag.
pub fn pins(observed: &Observed, settings: &Settings, recorded: &BTreeMap<String, String>) -> Pins {
    observed
        .roles
        .iter()
        .filter(|(_, r)| settings.ownership().role(r))
        .filter_map(|(k, r)| {
            let pin = recorded.get(&r.arn).or_else(|| r.tags.get(PIN_TAG))?;
            Some((k.clone(), pin.clone()))
        })
        .collect()
}

/// Owned roles whose pin tag is not the one the audit log says trustsync last wrote:
/// changed (or removed) by someone else. Reported; the recorded pin is followed and the
/// tag put back.
fn changed_pins(
    read: &Read,
    settings: &Settings,
    recorded: &BTreeMap<String, String>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    for (account, iam) in read.observed.iam() {
        for r in iam.roles.values().filter(|r| settings.ownership().role(r)) {
            let Some(want) = recorded.get(&r.arn) else {
                continue;
            };
            let have = r.tags.get(PIN_TAG);
            if have != Some(want) {
                out.push(Problem {
                    kind: ProblemKind::PinChanged,
                    account: Some(account.to_string()),
                    mapping: None,
                    resource: r.arn.clone(),
                    message: format!(
                        "the group pin tag `{PIN_TAG}` reads {}, but trustsync last wrote {want} (audit log): changed outside trustsync. The recorded pin is followed and the tag put back; to follow another group, change the mapping's selector",
                        have.map_or("nothing".to_string(), |h| format!("`{h}`"))
                    ),
                });
            }
        }
    }
    out
}

/// What one account showed: per region visited (home first), the documents that apply
/// there and what AWS showed; and, when its functions act as Entra applications, its
/// outbound federation issuer.
type AccountRead = Result<(Vec<(String, PolicySet, Observed)>, Option<outbound::Issuer>), Failure>;

/// Reads one account: reaches it (assuming its role), then IAM and Lambda in its home
/// region and Lambda in each other region its functions live in.
async fn read_account(
    member: &Member,
    policies: &PolicySet,
    config: &Config,
    settings: &Settings,
    reading: Reading<'_>,
) -> AccountRead {
    member.connector.reach().await?;
    if let Reading::Fast { known } = reading {
        // The fast path: the mappings' roles in the home region, one by one; nothing else.
        let region = member.account.home().to_string();
        let here = scope::policies_at(policies, &member.account, &region);
        let names: Vec<String> = here
            .role_mappings
            .iter()
            .map(|m| m.spec.role.name.clone())
            .collect();
        let id = &member.account.id;
        let cached: BTreeMap<String, Option<serde_json::Value>> = names
            .iter()
            .filter_map(|n| Some((n.to_ascii_lowercase(), known?.sessions_of(id, n)?)))
            .collect();
        let mut observed = member
            .connector
            .clients(&region)
            .observe_roles(&config.role_path, &names, &cached.keys().cloned().collect())
            .await?;
        for (name, role) in observed.roles.iter_mut() {
            if let Some(doc) = cached.get(name) {
                role.inline_policies.remove(SESSIONS_POLICY);
                if let Some(doc) = doc {
                    role.inline_policies
                        .insert(SESSIONS_POLICY.to_string(), doc.clone());
                }
            }
        }
        return Ok((vec![(region, here, observed)], None));
    }
    let mut out = Vec::new();
    let mut issuer = None;
    for (i, region) in scope::regions_of(policies, &member.account)
        .into_iter()
        .enumerate()
    {
        let here = scope::policies_at(policies, &member.account, &region);
        let functions: Vec<_> = here
            .functions
            .iter()
            .map(|f| {
                (
                    function_name_of(&f.spec.function).to_string(),
                    f.spec.qualifier.clone(),
                )
            })
            .collect();
        let observed = member
            .connector
            .clients(&region)
            .observe(
                i == 0,
                &config.role_path,
                &functions,
                &settings.function_tag_key,
            )
            .await?;
        if i == 0
            && here
                .functions
                .iter()
                .any(|f| f.spec.entra_application.is_some())
        {
            issuer = Some(
                outbound_issuer(
                    &member.account.id,
                    &*member.connector.clients(&region),
                    config,
                )
                .await,
            );
        }
        out.push((region, here, observed));
    }
    Ok((out, issuer))
}

/// The account's outbound federation issuer, as AWS reports it. An entry of
/// `outboundFederation.issuerUrls` pins it: one AWS does not report is refused (a federated
/// identity credential trusting it would let whoever runs that issuer get Entra tokens as
/// the application). Only builds for the local test servers (`loopback-graph`) take a
/// loopback entry as the issuer outright: moto has no outbound federation. A failed read or
/// a refused pin concerns only the outbound credentials of the account, so it is kept as
/// such and never fails the account's read (its revocations go on).
async fn outbound_issuer(account: &str, aws: &dyn AwsApi, config: &Config) -> outbound::Issuer {
    let pinned = config.outbound_federation.issuer_urls.get(account);
    if let Some(url) = pinned {
        let stand_in = url::Url::parse(url).is_ok_and(|u| crate::config::is_loopback(&u));
        if cfg!(feature = "loopback-graph") && stand_in {
            return outbound::Issuer::Url(url.clone());
        }
    }
    let same = |a: &str, b: &str| {
        a.trim_end_matches('/')
            .eq_ignore_ascii_case(b.trim_end_matches('/'))
    };
    match (pinned, aws.outbound_issuer().await) {
        (_, Err(e)) => {
            tracing::warn!(account, error = %e, "cannot read the outbound identity federation issuer");
            outbound::Issuer::Unreadable(e.to_string())
        }
        (None, Ok(Some(url))) => outbound::Issuer::Url(url),
        (Some(p), Ok(Some(url))) if same(p, &url) => outbound::Issuer::Url(url),
        (Some(p), Ok(Some(url))) => {
            tracing::error!(account, configured = %p, reported = %url, "outboundFederation.issuerUrls disagrees with AWS; refused");
            outbound::Issuer::Unreadable(format!(
                "outboundFederation.issuerUrls names {p} for account {account}, but AWS reports {url}: refused, nothing is written that trusts either (a credential trusting an issuer AWS does not report would let whoever runs it get Entra tokens as the application)"
            ))
        }
        // Off: turned on when the config allows, and the pin checked once it is.
        (_, Ok(None)) => outbound::Issuer::Off,
    }
}

/// What the pass read of AWS: each account's state, and the accounts it could not read.
struct Read {
    observed: Observations,
    /// The documents that apply in each (account, region) read.
    here: BTreeMap<(String, String), PolicySet>,
    accounts: Vec<AccountPlan>,
    unreachable: Vec<Problem>,
    /// The outbound federation issuer of each account whose functions need one.
    issuers: BTreeMap<String, outbound::Issuer>,
}

/// Resolves once a read that began at `started` has taken `allowance` and another account
/// has been read in this pass (so AWS and the controller's own credentials work: the
/// account itself is what does not answer).
async fn straggling(
    started: Instant,
    allowance: Duration,
    mut read_one: tokio::sync::watch::Receiver<bool>,
) {
    tokio::time::sleep_until((started + allowance).into()).await;
    let _ = read_one.wait_for(|r| *r).await;
}

/// Reads every account, `accounts.concurrency` at a time. One that cannot be reached or
/// read is reported (`account-unreachable`) and the others go on, unless it is the only
/// account: then the pass fails, as a failed read is never "nothing to do".
async fn read_accounts(
    fleet: &Fleet,
    policies: &PolicySet,
    config: &Config,
    settings: &Settings,
    reading: Reading<'_>,
) -> anyhow::Result<Read> {
    let fast = matches!(reading, Reading::Fast { .. });
    // The fast path reaches only the accounts its mappings are in.
    let members: Vec<&Member> = fleet
        .members()
        .iter()
        .filter(|m| {
            !fast
                || !scope::policies_at(policies, &m.account, m.account.home())
                    .role_mappings
                    .is_empty()
        })
        .collect();
    let (read_one, _) = tokio::sync::watch::channel(false);
    let read_one = &read_one;
    let several = members.len() > 1;
    let reads: Vec<AccountRead> = stream::iter(members.iter().copied())
        .map(|m| async move {
            let started = Instant::now();
            let read = read_account(m, policies, config, settings, reading);
            let result = match fleet.read_allowance(&m.account.id).filter(|_| several) {
                Some(allowance) => tokio::select! {
                    r = read => r,
                    _ = straggling(started, allowance, read_one.subscribe()) => Err(Failure::permanent(
                        "ReadAccount",
                        format!(
                            "no answer within {}s ({}x its last read, at least {}s) while other accounts were read: left for the next pass so that it holds no other account back",
                            allowance.as_secs(),
                            crate::runtime::fleet::STRAGGLER_FACTOR,
                            crate::runtime::fleet::STRAGGLER_FLOOR.as_secs()
                        ),
                    )),
                },
                None => read.await,
            };
            if result.is_ok() {
                // A fast read says nothing of how long the account's full read takes.
                if !fast {
                    fleet.record_read(&m.account.id, started.elapsed());
                }
                read_one.send_replace(true);
            }
            result
        })
        .buffered(fleet.concurrency())
        .collect()
        .await;
    let mut read = Read {
        observed: Observations::default(),
        here: BTreeMap::new(),
        accounts: Vec::new(),
        unreachable: Vec::new(),
        issuers: BTreeMap::new(),
    };
    for (member, result) in members.iter().zip(reads) {
        let account = &member.account;
        match result {
            Ok((regions, issuer)) => {
                if let Some(issuer) = issuer {
                    read.issuers.insert(account.id.clone(), issuer);
                }
                read.accounts.push(AccountPlan {
                    id: account.id.clone(),
                    regions: regions.iter().map(|(r, ..)| r.clone()).collect(),
                    unreachable: None,
                });
                if let Some((home, ..)) = regions.first() {
                    read.observed.homes.insert(account.id.clone(), home.clone());
                }
                for (region, here, o) in regions {
                    let place = (account.id.clone(), region);
                    read.here.insert(place.clone(), here);
                    read.observed.by_place.insert(place, o);
                }
            }
            Err(e) if members.len() == 1 => {
                return Err(
                    anyhow::Error::new(e).context("reading AWS state (nothing was changed)")
                );
            }
            Err(e) => {
                tracing::error!(account = %account.id, error = %e, "cannot read the account; the others go on");
                read.accounts.push(AccountPlan {
                    id: account.id.clone(),
                    regions: account.regions.clone(),
                    unreachable: Some(e.to_string()),
                });
                read.unreachable.push(Problem {
                    kind: ProblemKind::AccountUnreachable,
                    account: Some(account.id.clone()),
                    mapping: None,
                    resource: account
                        .role_arn
                        .clone()
                        .unwrap_or_else(|| format!("account {}", account.id)),
                    message: format!(
                        "account {} could not be read, so nothing in it was planned or changed this pass: {e}",
                        account.id
                    ),
                });
            }
        }
    }
    if !read.unreachable.is_empty() && read.unreachable.len() == members.len() {
        anyhow::bail!(
            "no account could be read (nothing was changed): {}",
            read.unreachable
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(read)
}

/// What AWS shows in every account in scope, without planning: for the reports that read
/// live state (`access`, `export`, `check-token`). The accounts that could not be read
/// come back as problems; none readable is an error, as for a pass.
pub async fn observe(
    fleet: &Fleet,
    policies: &PolicySet,
    config: &Config,
) -> anyhow::Result<(Observations, Vec<Problem>)> {
    let settings = Settings::new(config, crate::model::clock::unix_seconds());
    let read = read_accounts(fleet, policies, config, &settings, Reading::Full).await?;
    Ok((read.observed, read.unreachable))
}

/// The pins each account's roles record, and the directory requests of every account
/// (each with its own pins), deduplicated: the directory is read once for all.
fn directory_requests<'a>(
    read: &'a Read,
    settings: &Settings,
    recorded: &BTreeMap<String, String>,
) -> (BTreeMap<&'a str, Pins>, Vec<GroupRequest>) {
    let mut pins_by_account = BTreeMap::new();
    let mut requests: BTreeSet<GroupRequest> = BTreeSet::new();
    for (id, iam) in read.observed.iam() {
        let pins = pins(iam, settings, recorded);
        let home = (id.to_string(), member_home(&read.observed, id).to_string());
        requests.extend(desired::group_requests(&read.here[&home], &pins));
        pins_by_account.insert(id, pins);
    }
    (pins_by_account, requests.into_iter().collect())
}

/// What [`plan_places`] found besides the plan: each mapping's group (for the who-changed
/// lookup) and the functions acting as Entra applications (for the outbound planner).
struct Placed {
    groups: BTreeMap<String, String>,
    wanted: Vec<outbound::Wanted>,
}

/// Plans each account and region on its own (IAM once, from the account's home region)
/// and merges the plans, grouped by account.
fn plan_places(
    read: &Read,
    config: &Config,
    settings: &Settings,
    pins: &BTreeMap<&str, Pins>,
    snapshot: &DirectorySnapshot,
    enforced: &guardrails::Enforced,
    recorded_baselines: &BTreeMap<String, String>,
) -> (Plan, Placed) {
    let observed = &read.observed;
    let mut plans = Vec::new();
    let mut groups = BTreeMap::new();
    let mut wanted = BTreeSet::new();
    for (place @ (id, region), seen) in &observed.by_place {
        let here = &read.here[place];
        let target = Target {
            account_id: id.clone(),
            region: region.clone(),
        };
        let mut desired = desired::build(here, snapshot, &pins[id.as_str()], config, &target);
        desired
            .providers
            .retain(|p| !enforced.blocked_providers.contains(p.mapping.as_str()));
        for role in &mut desired.roles {
            if enforced.blocked_mappings.contains(role.mapping.as_str()) && role.blocked.is_none() {
                role.blocked = Some("it breaks a guardrail (see the problem)".into());
            }
        }
        if member_home(observed, id) != region {
            desired.providers.clear();
            desired.roles.clear();
            desired.errors.clear();
        }
        groups.extend(
            desired
                .roles
                .iter()
                .filter_map(|r| Some((r.mapping.to_string(), r.group.as_ref()?.id.to_string()))),
        );
        wanted.extend(desired.functions.iter().filter_map(|f| {
            Some(outbound::Wanted {
                account: id.clone(),
                app_id: f.entra_application.clone()?,
                role_arn: f.execution_role.clone()?,
                mapping: f.mapping.clone(),
            })
        }));
        let mut p = plan::plan(&desired, seen, settings, recorded_baselines);
        p.place(id, region);
        plans.push(p);
    }
    let wanted = wanted.into_iter().collect();
    (Plan::merge(plans), Placed { groups, wanted })
}

/// Whether the pass must read Entra's applications: functions act as one, the config
/// declares outbound federation, or an owned role still carries the token policy (its
/// function's application was just removed, so its credential is to go).
fn outbound_in_use(read: &Read, config: &Config, settings: &Settings, wanted: bool) -> bool {
    let of = &config.outbound_federation;
    wanted
        || of.enable
        || !of.issuer_urls.is_empty()
        || read.observed.iam().any(|(_, o)| {
            o.roles.values().any(|r| {
                settings.ownership().role(r)
                    && r.inline_policies
                        .contains_key(crate::sources::policy::OUTBOUND_POLICY_NAME)
            })
        })
}

/// Plans the outbound direction and adds it to the pass's plan; returns the writer for
/// its Entra changes.
async fn plan_outbound(
    plan: &mut Plan,
    read: &Read,
    wanted: &[outbound::Wanted],
    (config, settings): (&Config, &Settings),
    directory: &mut DirectorySource,
) -> Option<entra::GraphReader> {
    if !outbound_in_use(read, config, settings, !wanted.is_empty()) {
        return None;
    }
    let (applications, writer) = match directory.applications().await {
        Ok((apps, writer)) => (Ok(apps), Some(writer)),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the Entra applications trustsync owns; no federated credential is planned this pass");
            (Err(e), None)
        }
    };
    let accounts: BTreeSet<String> = read.observed.homes.keys().cloned().collect();
    let prefix = config.instance_statement_prefix();
    let p = outbound::plan(&outbound::Inputs {
        wanted,
        issuers: &read.issuers,
        applications: &applications,
        accounts: &accounts,
        prefix: &prefix,
        enable: config.outbound_federation.enable,
        prune: settings.prune,
    });
    *plan = Plan::merge(vec![std::mem::take(plan), p]);
    writer
}

/// Reads AWS and the directory, and plans and checks.
///
/// Every account is read ([`read_accounts`]); the directory once, for the groups every
/// account needs; each account and region is planned on its own and the plans merged,
/// grouped by account ([`plan_places`]), before the checks, which weigh the pass as a
/// whole.
///
/// The directory is locked only while it is read, never while AWS is: the controller's
/// delta watcher and fast path use it meanwhile.
pub async fn plan(
    inputs: &Inputs<'_>,
    directory: &tokio::sync::Mutex<DirectorySource>,
) -> anyhow::Result<Planned> {
    let Inputs {
        config,
        policies,
        fleet,
        deferred,
        released,
        recorded_pins,
        recorded_baselines,
        recorded_people,
        audit_attention,
        focus,
        known,
    } = inputs;
    let settings = Settings::new(config, crate::model::clock::unix_seconds());
    // Guardrails first: what breaks one is left out or blocked (revocations go on), and
    // reported; the rest of the repository applies.
    let violations = guardrails::check(
        policies,
        &config.guardrails,
        &guardrails::Known {
            accounts: Some(fleet.account_ids_in_scope()),
            tenant: directory.lock().await.tenant(),
        },
    );
    let mut allowed = (*policies).clone();
    let enforced = guardrails::enforce(&mut allowed, &violations);
    if let Some(focus) = focus {
        allowed
            .role_mappings
            .retain(|m| focus.contains(m.name.as_str()));
        allowed
            .access_assignments
            .retain(|a| focus.contains(a.name.as_str()));
        allowed.functions.clear();
    }
    let policies = &allowed;
    let reading = match focus {
        Some(_) => Reading::Fast { known: *known },
        None => Reading::Full,
    };
    let read = read_accounts(fleet, policies, config, &settings, reading).await?;
    let (pins, mut requests) = directory_requests(&read, &settings, recorded_pins);
    let people = match focus {
        Some(_) => !policies.access_assignments.is_empty(),
        None => super::people::in_use(policies, config),
    };
    if people {
        requests.extend(
            policies
                .access_assignments
                .iter()
                .map(|a| super::people::group_request(&a.spec)),
        );
        requests.sort();
        requests.dedup();
    }
    let pin_problems = changed_pins(&read, &settings, recorded_pins);
    let began = Instant::now();
    let snapshot = match focus {
        Some(_) => directory.lock().await.cached_snapshot(&requests).await?,
        None => DirectorySource::snapshot(directory, &requests).await?,
    };
    // The planner and the checks do no I/O: their wall time is their CPU time.
    let started = Instant::now();
    let (mut plan, placed) = plan_places(
        &read,
        config,
        &settings,
        &pins,
        &snapshot,
        &enforced,
        recorded_baselines,
    );
    // Reading Entra's applications is I/O: left out of the planner's time.
    let reading = Instant::now();
    let entra = match focus {
        Some(_) => None,
        None => {
            plan_outbound(
                &mut plan,
                &read,
                &placed.wanted,
                (config, &settings),
                &mut *directory.lock().await,
            )
            .await
        }
    };
    let reachable: BTreeSet<String> = read
        .accounts
        .iter()
        .filter(|a| a.unreachable.is_none())
        .map(|a| a.id.clone())
        .collect();
    let people = match people {
        true => {
            super::people::plan_people(
                &mut plan,
                (policies, config, &settings),
                fleet,
                &reachable,
                (&enforced, &snapshot),
                directory,
                (focus.is_some(), began, recorded_baselines, recorded_people),
            )
            .await
        }
        false => None,
    };
    let started = started + reading.elapsed();
    let mut groups = placed.groups;
    let (identity_center, people_ids) = match people {
        Some(p) => {
            groups.extend(p.groups);
            (Some(p.clients), p.ids)
        }
        None => (None, BTreeMap::new()),
    };
    let Read {
        observed,
        accounts,
        unreachable,
        ..
    } = read;
    plan.accounts = accounts;
    plan.problems.extend(unreachable);
    plan.problems.extend(pin_problems);
    for v in &violations {
        let d = &v.diagnostic;
        plan.problems.push(Problem {
            kind: ProblemKind::Guardrail,
            account: None,
            mapping: Some(v.name.as_str().into()),
            resource: format!("{}:{}", d.file.display(), d.line),
            message: format!("{}: {}", d.field, d.message),
        });
    }
    if !fleet.narrowed && focus.is_none() {
        let in_scope: Vec<_> = fleet.members().iter().map(|m| m.account.clone()).collect();
        for (name, d) in scope::scope_problems(policies, &in_scope) {
            plan.problems.push(Problem {
                kind: ProblemKind::OutOfScope,
                account: None,
                mapping: Some(name.as_str().into()),
                resource: format!("{}:{}", d.file.display(), d.line),
                message: format!("{}: {}", d.field, d.message),
            });
        }
    }
    let mut plan = checks::check(
        plan,
        &checks::Context {
            safety: &config.safety,
            deferred,
            released,
        },
    );
    if focus.is_some() {
        plan.changes.retain(|c| fast_path_action(&c.action));
        plan.held.retain(|h| fast_path_action(&h.change.action));
        // What the full pass owns (orphans, names, providers) is not this pass's to say;
        // that sessions were cut role-wide is.
        plan.notices
            .retain(|n| n.kind == crate::plan::NoticeKind::SessionsCutRoleWide);
    }
    plan.label(|name| policies.labels_of(name).cloned());
    tracing::info!(
        plan_us = started.elapsed().as_micros() as u64,
        accounts = fleet.members().len(),
        changes = plan.changes.len(),
        held = plan.held.len(),
        "planned"
    );
    // Bounded: the directory's audit log is a courtesy to the reader of the record, and a
    // slow or throttled one must not hold a revocation back.
    let audit_reader = directory.lock().await.reader().cloned();
    let lookup = who_changed_the_groups(&mut plan, (&groups, &people_ids), audit_reader.as_ref());
    if tokio::time::timeout(MEMBERSHIP_AUDIT_BUDGET, lookup)
        .await
        .is_err()
    {
        tracing::warn!("the directory audit log did not answer in time; recording changes without who made them");
        plan.notices.push(crate::plan::Notice {
            kind: crate::plan::NoticeKind::DirectoryAuditUnavailable,
            account: None,
            resource: "auditLogs/directoryAudits".into(),
            message: format!(
                "who changed the groups is not recorded: the directory audit log did not answer within {}s",
                MEMBERSHIP_AUDIT_BUDGET.as_secs()
            ),
        });
    }
    if let Some(message) = audit_attention {
        plan.notices.push(crate::plan::Notice {
            kind: crate::plan::NoticeKind::AuditSegmentRotated,
            account: None,
            resource: config.audit.path.display().to_string(),
            message: message.clone(),
        });
    }
    // The notices the lookup added are counted too.
    plan.summarize();
    Ok(Planned {
        plan,
        observed,
        requests,
        settings,
        entra,
        identity_center,
    })
}

fn member_home<'a>(observed: &'a Observations, account: &str) -> &'a str {
    observed.homes.get(account).map_or("", String::as_str)
}

/// How far back the directory's audit log is searched for who changed a group: Entra keeps
/// it 7 days on the free tier (30 with P1/P2).
const MEMBERSHIP_AUDIT_DAYS: i64 = 7;

/// How long a pass waits for the directory's audit log, all groups together: a revocation
/// waits at most this long for the record of who asked for it.
const MEMBERSHIP_AUDIT_BUDGET: Duration = Duration::from_secs(3);

/// Gives each change that grants or revokes group members who changed the group in Entra
/// and when. A directory that cannot say (no AuditLog.Read.All, say) is a notice, never a
/// failure: nothing may hold a revocation back.
async fn who_changed_the_groups(
    plan: &mut Plan,
    (groups, people): (&BTreeMap<String, String>, &BTreeMap<String, String>),
    directory: Option<&entra::GraphReader>,
) {
    let since = (time::OffsetDateTime::now_utc() - time::Duration::days(MEMBERSHIP_AUDIT_DAYS))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // A new role's members are granted by the policy change that created the mapping
    // (its commit and author are recorded); who once added them to the group is not
    // asked, which keeps a first plan of N mappings at N/10 Graph requests.
    let group_of = |c: &Change| -> Option<&str> {
        // And a new group of people, as a new role.
        let new_role = matches!(
            c.action,
            crate::plan::Action::Iam(crate::plan::IamAction::CreateRole { .. })
                | crate::plan::Action::People(crate::plan::PeopleAction::AddGroupMembers {
                    group_id: None,
                    ..
                })
        );
        if new_role || (c.members_added.is_empty() && c.members_removed.is_empty()) {
            return None;
        }
        c.mapping
            .as_deref()
            .and_then(|m| groups.get(m))
            .map(String::as_str)
    };
    let wanted: BTreeSet<&str> = plan
        .changes
        .iter()
        .chain(plan.held.iter().map(|h| &h.change))
        .filter_map(group_of)
        .collect();
    if wanted.is_empty() {
        return;
    }
    let wanted: Vec<&str> = wanted.into_iter().collect();
    let mut read: BTreeMap<String, Vec<MembershipChange>> = BTreeMap::new();
    let mut unavailable: BTreeMap<String, String> = BTreeMap::new();
    let Some(reader) = directory else {
        return;
    };
    match reader.membership_changes(&wanted, &since).await {
        Ok(answers) => {
            for (group, answer) in wanted.iter().zip(answers) {
                match answer {
                    Ok(changes) => {
                        read.insert(group.to_string(), changes);
                    }
                    Err(e) => {
                        unavailable.insert(group.to_string(), e.to_string());
                    }
                }
            }
        }
        Err(e) => {
            for group in &wanted {
                unavailable.insert(group.to_string(), e.to_string());
            }
        }
    }
    let held = plan.held.iter_mut().map(|h| &mut h.change);
    for c in plan.changes.iter_mut().chain(held) {
        let Some(changes) = group_of(c).and_then(|g| read.get(g)) else {
            continue;
        };
        let latest = |member: &String, added: bool| {
            // People's changes name users by user name; the log, by object id.
            let id = people.get(&member.to_lowercase()).unwrap_or(member);
            changes
                .iter()
                .rev()
                .find(|m| &m.member == id && m.added == added)
                .cloned()
        };
        c.membership = c
            .members_added
            .iter()
            .filter_map(|m| latest(m, true))
            .chain(c.members_removed.iter().filter_map(|m| latest(m, false)))
            .collect();
    }
    for (group, error) in unavailable {
        tracing::warn!(group = %group, error = %error, "cannot read who changed the group from the directory audit log");
        plan.notices.push(crate::plan::Notice {
            kind: crate::plan::NoticeKind::DirectoryAuditUnavailable,
            account: None,
            resource: group,
            message: format!("who changed this group is not recorded: the directory audit log could not be read ({error}); grant the app AuditLog.Read.All"),
        });
    }
}

impl Planned {
    /// Applies the changes the checks let through, recording each in the audit log.
    pub async fn apply<E: Executor + ?Sized>(
        &self,
        aws: &E,
        audit: &tokio::sync::Mutex<AuditLog>,
        actor: &Actor,
        policy_revision: Option<&Revision>,
        control: apply::Control<'_>,
    ) -> Result<Report, apply::Error> {
        let writers = Writers {
            aws,
            entra: self.entra.as_ref(),
            identity_center: self.identity_center.as_deref(),
        };
        apply::apply(&self.plan, &writers, audit, actor, policy_revision, control).await
    }
}

/// Where a pass's changes are written: AWS, and Microsoft Graph for the federated
/// credentials.
struct Writers<'a, E: ?Sized> {
    aws: &'a E,
    entra: Option<&'a entra::GraphReader>,
    /// IAM Identity Center, for people's changes.
    identity_center: Option<&'a crate::adapters::aws::AwsClients>,
}

#[async_trait::async_trait]
impl<E: Executor + ?Sized> Executor for Writers<'_, E> {
    fn write_slots(&self) -> usize {
        self.aws.write_slots()
    }

    fn parallel_accounts(&self) -> usize {
        self.aws.parallel_accounts()
    }

    async fn execute(
        &self,
        change: &Change,
        use_revision: bool,
    ) -> Result<crate::model::call::Written, crate::model::call::Failure> {
        if change.action.is_people() {
            return match self.identity_center {
                Some(ic) => ic.execute(&change.action, use_revision).await,
                None => Err(crate::model::call::Failure::permanent(
                    change.action.name(),
                    "IAM Identity Center is not connected in this pass",
                )),
            };
        }
        let crate::plan::Action::Entra(action) = &change.action else {
            return self.aws.execute(change, use_revision).await;
        };
        match self.entra {
            Some(graph) => graph.write_credential(action).await,
            None => Err(crate::model::call::Failure::permanent(
                change.action.name(),
                "Microsoft Graph is not connected in this pass",
            )),
        }
    }
}
