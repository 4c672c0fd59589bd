//! Gather: every read a pass makes, for its scope, before anything is decided. The
//! policies are admitted through the guardrails and narrowed to the scope; the accounts
//! are read ([`crate::runtime::accounts`]); the directory once, for the groups every
//! account needs (each with the pins its roles record); the desired state of each account
//! and region made concrete from them; Entra's applications when functions act as one;
//! and people (Identity Center, the directory's users). What is read next may depend on
//! what was read (the pins on the roles, the functions acting as applications): that is
//! this step's to work out. [`crate::runtime::decide`] then turns the world into a plan
//! with no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::adapters::entra;
use crate::config::Config;
use crate::desired::{self, Desired, Pins, Target};
use crate::observed::{Observations, Observed, ObservedApplication};
use crate::plan::{outbound, Change, Problem, ProblemKind, Settings};
use crate::runtime::accounts::{read_accounts, Read};
use crate::runtime::directory::DirectorySource;
use crate::runtime::fleet::Fleet;
use crate::runtime::people::{self, PeopleRead};
use crate::runtime::scope::Scope;
use crate::sources::directory::{DirectorySnapshot, GroupRequest, PIN_TAG};
use crate::sources::policy::guardrails::{self, Enforced, Violation};
use crate::sources::policy::PolicySet;

/// Everything a pass reads besides the world.
pub struct Inputs<'a> {
    /// The controller config.
    pub config: &'a Config,
    /// The policy set.
    pub policies: &'a PolicySet,
    /// The accounts in scope and how to reach them.
    pub fleet: &'a Fleet,
    /// Why a change is waiting out a back-off (the controller's); `None` for none.
    pub deferred: &'a (dyn Fn(&Change) -> Option<String> + Sync),
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
    /// What the pass covers: the whole fleet, or the documents a directory change touches.
    pub scope: Scope<'a>,
}

/// The policies a pass may act on: those the guardrails let through, narrowed to its
/// scope, and what the guardrails found.
pub struct Admitted {
    /// The policy set, what breaks a guardrail left out or blocked, narrowed to the scope.
    pub policies: PolicySet,
    /// What breaks a guardrail (reported as problems).
    pub violations: Vec<Violation>,
    /// What the guardrails left out or blocked.
    pub enforced: Enforced,
}

/// Guardrails first: what breaks one is left out or blocked (revocations go on), and
/// reported; the rest of the repository applies. Then the scope narrows what is left.
pub async fn admit(
    inputs: &Inputs<'_>,
    pass_scope: Scope<'_>,
    directory: &tokio::sync::Mutex<DirectorySource>,
) -> Admitted {
    let violations = guardrails::check(
        inputs.policies,
        &inputs.config.guardrails,
        &guardrails::Known {
            accounts: Some(inputs.fleet.account_ids_in_scope()),
            tenant: directory.lock().await.tenant(),
        },
    );
    let mut policies = inputs.policies.clone();
    let enforced = guardrails::enforce(&mut policies, &violations);
    pass_scope.narrow(&mut policies);
    Admitted {
        policies,
        violations,
        enforced,
    }
}

/// The desired state of one account and region.
pub struct Place {
    /// (account, region).
    pub at: (String, String),
    /// What trustsync wants there.
    pub desired: Desired,
}

/// Entra's applications, read because functions act as one (or the config declares
/// outbound federation, or a credential is to go).
pub struct Applications {
    /// The applications trustsync's service principal owns, or why they could not be read.
    pub read: Result<Vec<ObservedApplication>, String>,
    /// The writer of the Entra changes, when they could be read.
    pub writer: Option<entra::GraphReader>,
}

/// Everything a pass read, for its scope.
pub struct World<'p> {
    /// The planner's settings, with the pass's one reading of the clock.
    pub settings: Settings,
    /// The policies admitted and narrowed to the scope.
    pub admitted: &'p Admitted,
    /// What AWS showed, per account and region, and the accounts that could not be read.
    pub read: Read,
    /// The directory requests made (with pins), for the controller's delta watcher.
    pub requests: Vec<GroupRequest>,
    /// Owned roles whose pin tag was changed outside trustsync.
    pub pin_problems: Vec<Problem>,
    /// The desired state of each account and region read.
    pub places: Vec<Place>,
    /// Each mapping's group (object id), for who changed it.
    pub groups: BTreeMap<String, String>,
    /// The functions acting as Entra applications.
    pub wanted: Vec<outbound::Wanted>,
    /// Entra's applications, when the pass needs them.
    pub applications: Option<Applications>,
    /// People, when the pass plans them (`Err`: what could not be read).
    pub people: Option<Result<PeopleRead<'p>, Problem>>,
    /// The directory's snapshot of the groups asked for.
    pub snapshot: DirectorySnapshot,
    /// When the directory read began: a full pass does not undo a removal the fast path
    /// made after it.
    pub began: Instant,
}

/// Reads the world for `pass_scope`: AWS first (the roles record which group each
/// display-name selector is pinned to), then the directory for exactly the groups the
/// policies need, then Entra's applications and people as the pass needs them.
///
/// The directory is locked only while it is read, never while AWS is: the controller's
/// delta watcher and fast path use it meanwhile.
pub async fn read_world<'p>(
    admitted: &'p Admitted,
    inputs: &Inputs<'_>,
    pass_scope: Scope<'_>,
    settings: Settings,
    directory: &tokio::sync::Mutex<DirectorySource>,
) -> anyhow::Result<World<'p>> {
    let (config, fleet) = (inputs.config, inputs.fleet);
    let policies = &admitted.policies;
    let read = read_accounts(fleet, policies, config, &settings, pass_scope).await?;
    let (pins, mut requests) = directory_requests(&read, &settings, inputs.recorded_pins);
    let plans_people = pass_scope.plans_people(policies, config);
    if plans_people {
        requests.extend(
            policies
                .access_assignments
                .iter()
                .map(|a| people::group_request(&a.spec)),
        );
        requests.sort();
        requests.dedup();
    }
    let pin_problems = changed_pins(&read, &settings, inputs.recorded_pins);
    let began = Instant::now();
    let snapshot = match pass_scope.is_fleet() {
        true => DirectorySource::snapshot(directory, &requests).await?,
        false => directory.lock().await.cached_snapshot(&requests).await?,
    };
    let (places, groups, wanted) = place(&read, config, &pins, &snapshot, &admitted.enforced);
    let applications = match pass_scope.is_fleet()
        && outbound_in_use(&read, config, &settings, !wanted.is_empty())
    {
        true => Some(read_applications(&mut *directory.lock().await).await),
        false => None,
    };
    let reachable: BTreeSet<String> = read
        .accounts
        .iter()
        .filter(|a| a.unreachable.is_none())
        .map(|a| a.id.clone())
        .collect();
    let mut people = match plans_people {
        true => {
            people::read(
                pass_scope,
                (policies, config),
                fleet,
                &reachable,
                (&admitted.enforced, &snapshot),
                directory,
            )
            .await
        }
        false => None,
    };
    // What the pass would change of a permission set the set cache gave is read again
    // first, and planned from that.
    if let Some(Ok(read)) = &mut people {
        let recorded = (inputs.recorded_baselines, inputs.recorded_people);
        if let Err(problem) =
            people::refresh(read, (config, &settings), began, recorded, fleet).await
        {
            people = Some(Err(problem));
        }
    }
    Ok(World {
        settings,
        admitted,
        read,
        requests,
        pin_problems,
        places,
        groups,
        wanted,
        applications,
        people,
        snapshot,
        began,
    })
}

/// The applications trustsync owns in Entra, and the writer of their credentials. A
/// failed read is kept as such: no federated credential is planned this pass.
async fn read_applications(directory: &mut DirectorySource) -> Applications {
    match directory.applications().await {
        Ok((apps, writer)) => Applications {
            read: Ok(apps),
            writer: Some(writer),
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot read the Entra applications trustsync owns; no federated credential is planned this pass");
            Applications {
                read: Err(e),
                writer: None,
            }
        }
    }
}

/// The desired state of each account and region (IAM once, from the account's home
/// region), what the guardrails block marked; each mapping's group, for the who-changed
/// lookup; and the functions acting as Entra applications, for the outbound planner.
fn place(
    read: &Read,
    config: &Config,
    pins: &BTreeMap<String, Pins>,
    snapshot: &DirectorySnapshot,
    enforced: &Enforced,
) -> (Vec<Place>, BTreeMap<String, String>, Vec<outbound::Wanted>) {
    let observed = &read.observed;
    let mut places = Vec::new();
    let mut groups = BTreeMap::new();
    let mut wanted = BTreeSet::new();
    for place @ (id, region) in observed.by_place.keys() {
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
        places.push(Place {
            at: place.clone(),
            desired,
        });
    }
    (places, groups, wanted.into_iter().collect())
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

/// The pins each account's roles record, and the directory requests of every account
/// (each with its own pins), deduplicated: the directory is read once for all.
fn directory_requests(
    read: &Read,
    settings: &Settings,
    recorded: &BTreeMap<String, String>,
) -> (BTreeMap<String, Pins>, Vec<GroupRequest>) {
    let mut pins_by_account = BTreeMap::new();
    let mut requests: BTreeSet<GroupRequest> = BTreeSet::new();
    for (id, iam) in read.observed.iam() {
        let pins = pins(iam, settings, recorded);
        let home = (id.to_string(), member_home(&read.observed, id).to_string());
        requests.extend(desired::group_requests(&read.here[&home], &pins));
        pins_by_account.insert(id.to_string(), pins);
    }
    (pins_by_account, requests.into_iter().collect())
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

fn member_home<'a>(observed: &'a Observations, account: &str) -> &'a str {
    observed.homes.get(account).map_or("", String::as_str)
}
