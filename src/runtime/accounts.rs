//! Reading the accounts of a pass: each reached (its role assumed), IAM and Lambda read
//! in its home region and Lambda in each other region its functions live in,
//! `accounts.concurrency` at a time, a straggler left for the next pass. A focused pass
//! (the membership fast path) reads only its mappings' roles, one by one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::model::call::Failure;
use crate::model::names::SESSIONS_POLICY;
use crate::observed::{Observations, Observed};
use crate::plan::{outbound, AccountPlan, Problem, ProblemKind, Settings};
use crate::ports::{at_once, AwsApi};
use crate::runtime::fleet::{Fleet, Member};
use crate::runtime::scope::Scope;
use crate::runtime::writes::RoleWrites;
use crate::sources::policy::{function_name_of, scope, PolicySet};

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
    pass_scope: Scope<'_>,
) -> AccountRead {
    member.connector.reach().await?;
    if !pass_scope.is_fleet() {
        return read_focused(member, policies, config, pass_scope.known()).await;
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

/// A focused read: the mappings' roles in the home region, one by one, the session-deny
/// policies `known` not read again; nothing else.
async fn read_focused(
    member: &Member,
    policies: &PolicySet,
    config: &Config,
    known: Option<&RoleWrites>,
) -> AccountRead {
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
    Ok((vec![(region, here, observed)], None))
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
pub struct Read {
    /// What AWS showed, per account and region.
    pub observed: Observations,
    /// The documents that apply in each (account, region) read.
    pub here: BTreeMap<(String, String), PolicySet>,
    /// Each account read, or why it could not be.
    pub accounts: Vec<AccountPlan>,
    /// The accounts that could not be read, as problems.
    pub unreachable: Vec<Problem>,
    /// The outbound federation issuer of each account whose functions need one.
    pub issuers: BTreeMap<String, outbound::Issuer>,
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
pub async fn read_accounts(
    fleet: &Fleet,
    policies: &PolicySet,
    config: &Config,
    settings: &Settings,
    pass_scope: Scope<'_>,
) -> anyhow::Result<Read> {
    // A focused pass reaches only the accounts its mappings are in.
    let members: Vec<&Member> = fleet
        .members()
        .iter()
        .filter(|m| pass_scope.reaches(policies, m))
        .collect();
    let (read_one, _) = tokio::sync::watch::channel(false);
    let read_one = &read_one;
    let several = members.len() > 1;
    let reads = members.iter().copied().map(|m| async move {
            let started = Instant::now();
            let read = read_account(m, policies, config, settings, pass_scope);
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
                // A focused read says nothing of how long the account's full read takes.
                if pass_scope.is_fleet() {
                    fleet.record_read(&m.account.id, started.elapsed());
                }
                read_one.send_replace(true);
            }
            result
        });
    let reads: Vec<AccountRead> = at_once(reads, fleet.concurrency()).await;
    assemble(&members, reads)
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
    let read = read_accounts(fleet, policies, config, &settings, Scope::Fleet).await?;
    Ok((read.observed, read.unreachable))
}

/// The accounts' reads put together: what each showed, by place; the accounts that could
/// not be read as problems; an error when none could be (or the only one could not).
fn assemble(members: &[&Member], reads: Vec<AccountRead>) -> anyhow::Result<Read> {
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
