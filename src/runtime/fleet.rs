//! The accounts a pass manages, and how it reaches each: the hub (the controller's own
//! credentials) and, per account, clients per region, through the spoke role when
//! accounts are configured ([`crate::config::AccountsConfig`]) or the hub's own
//! credentials when not.
//!
//! The fleet routes each change to its account's clients ([`Executor`]), so apply sees one
//! executor; every account has its own clients, and so its own rate limits and retries: a
//! throttled account slows only itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::adapters::aws::connect::Spokes;
use crate::adapters::aws::{AwsClients, CallerIdentity};
use crate::config::{partition_of, Config};
use crate::model::account::Account;
use crate::model::call::{CallStats, Failure, Pending, Written};
use crate::plan::Change;
use crate::ports::{AwsApi, Connector, Executor};

/// One account and how to reach it.
pub struct Member {
    /// The account.
    pub account: Account,
    /// Its clients.
    pub connector: Box<dyn Connector>,
}

/// Every account in scope.
pub struct Fleet {
    hub: Arc<dyn AwsApi>,
    /// Makes members for newly found accounts; `None` for a fixed fleet.
    spokes: Option<Spokes>,
    /// When the organization was last read, if it is.
    discovered: Option<std::time::Instant>,
    members: Vec<Member>,
    /// Requests made through accounts that have left the fleet, so that totals never drop.
    retired: CallStats,
    concurrency: usize,
    write_slots: usize,
    /// True when `--account` narrowed the accounts: selectors are not checked against them.
    pub narrowed: bool,
    /// The accounts in scope before `--account` narrowed them.
    scope: Option<Vec<String>>,
    /// How long each account's last successful read took.
    read_times: Mutex<BTreeMap<String, std::time::Duration>>,
    /// IAM Identity Center, reached with the controller's own credentials in its region:
    /// connected by the first pass that plans people.
    identity_center: tokio::sync::OnceCell<Arc<AwsClients>>,
    /// What the last full pass learnt of people, for the fast path.
    people: Mutex<crate::runtime::people_state::PeopleState>,
}

/// A straggler (an account still being read when another has been read) is left for the
/// next pass once its read has taken this many times its last successful one...
pub const STRAGGLER_FACTOR: u32 = 3;
/// ...and at least this long.
pub const STRAGGLER_FLOOR: std::time::Duration = std::time::Duration::from_secs(5);

impl Fleet {
    /// A fleet of `members`, reached `concurrency` at a time; `hub` publishes audit
    /// checkpoints.
    pub fn new(hub: Arc<dyn AwsApi>, members: Vec<Member>, concurrency: usize) -> Fleet {
        let write_slots = hub.write_slots();
        Fleet {
            hub,
            spokes: None,
            discovered: None,
            members,
            retired: CallStats::default(),
            concurrency: concurrency.max(1),
            write_slots,
            narrowed: false,
            scope: None,
            read_times: Mutex::new(BTreeMap::new()),
            identity_center: tokio::sync::OnceCell::new(),
            people: Mutex::new(Default::default()),
        }
    }

    /// What the last full pass learnt of people (the fast path's index), and the fast
    /// path's recent removals.
    pub fn people(&self) -> std::sync::MutexGuard<'_, crate::runtime::people_state::PeopleState> {
        self.people.lock().expect("people state")
    }

    /// The client for IAM Identity Center (`identityCenter.region`, else `aws.region`),
    /// with the controller's own credentials: the instance lives in the organization's
    /// management account or its delegated administrator, where the controller runs.
    pub async fn identity_center(&self, config: &Config) -> Result<Arc<AwsClients>, Failure> {
        self.identity_center
            .get_or_try_init(|| async {
                let aws = crate::config::AwsConfig {
                    region: config
                        .identity_center
                        .region
                        .clone()
                        .or_else(|| config.aws.region.clone()),
                    ..config.aws.clone()
                };
                let mut clients = AwsClients::connect(&aws).await?;
                // Its retries, and its waits for Identity Center's asynchronous requests,
                // end at shutdown as every account's do.
                clients.stop = self.spokes.as_ref().and_then(|s| s.stop().clone());
                Ok::<_, Failure>(Arc::new(clients))
            })
            .await
            .cloned()
    }

    /// How long a read of `account` may take, once another account has been read, before
    /// it is left for the next pass: [`STRAGGLER_FACTOR`] times its last successful read,
    /// at least [`STRAGGLER_FLOOR`]. `None` before its first successful read: an account
    /// read for the first time gets its whole retry budget.
    pub fn read_allowance(&self, account: &str) -> Option<std::time::Duration> {
        self.read_times
            .lock()
            .expect("read times")
            .get(account)
            .map(|last| (*last * STRAGGLER_FACTOR).max(STRAGGLER_FLOOR))
    }

    /// Records how long a successful read of `account` took.
    pub fn record_read(&self, account: &str, took: std::time::Duration) {
        self.read_times
            .lock()
            .expect("read times")
            .insert(account.to_string(), took);
    }

    /// The ids of every account in scope, `--account` or not: the managed accounts the
    /// guardrails weigh invokers against.
    pub fn account_ids_in_scope(&self) -> std::collections::BTreeSet<String> {
        match &self.scope {
            Some(ids) => ids.iter().cloned().collect(),
            None => self.members.iter().map(|m| m.account.id.clone()).collect(),
        }
    }

    /// One account through one client (the unit tests' fake, or the hub itself).
    pub fn single(account: Account, aws: Arc<dyn AwsApi>) -> Fleet {
        let member = Member {
            account,
            connector: Box::new(Fixed(aws.clone())),
        };
        Fleet::new(aws, vec![member], 1)
    }

    /// The accounts, in order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Accounts read and written at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The hub's clients (the controller's own credentials).
    pub fn hub(&self) -> &dyn AwsApi {
        self.hub.as_ref()
    }

    /// Keeps only the accounts `keep` names (`--account`); an id that is not in scope is
    /// an error.
    pub fn narrow(&mut self, keep: &[String]) -> anyhow::Result<()> {
        if keep.is_empty() {
            return Ok(());
        }
        if let Some(unknown) = keep
            .iter()
            .find(|id| !self.members.iter().any(|m| &m.account.id == *id))
        {
            let known: Vec<&str> = self.members.iter().map(|m| m.account.id.as_str()).collect();
            anyhow::bail!(
                "--account {unknown}: not an account in scope (in scope: {})",
                known.join(", ")
            );
        }
        self.scope = Some(self.members.iter().map(|m| m.account.id.clone()).collect());
        self.members.retain(|m| keep.contains(&m.account.id));
        self.narrowed = true;
        Ok(())
    }

    /// Replaces the accounts, keeping the clients (and cached credentials) of those that
    /// stay.
    pub fn set_members(&mut self, members: Vec<Member>) {
        let mut old: BTreeMap<String, Member> = std::mem::take(&mut self.members)
            .into_iter()
            .map(|m| (m.account.id.clone(), m))
            .collect();
        self.members = members
            .into_iter()
            .map(|m| match old.remove(&m.account.id) {
                Some(kept) if kept.account == m.account => kept,
                Some(changed) => {
                    self.retired.add(&changed.connector.stats());
                    m
                }
                None => m,
            })
            .collect();
        for gone in old.into_values() {
            self.retired.add(&gone.connector.stats());
        }
    }

    /// The member for an account id.
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.account.id == id)
    }

    /// Requests so far, the hub's, every account's and IAM Identity Center's.
    pub fn stats(&self) -> CallStats {
        let mut total = self.hub.stats();
        total.add(&self.retired);
        for m in &self.members {
            total.add(&m.connector.stats());
        }
        if let Some(ic) = self.identity_center.get() {
            total.add(&ic.stats());
        }
        total
    }
}

#[async_trait::async_trait]
impl Executor for Fleet {
    fn write_slots(&self) -> usize {
        self.write_slots
    }

    fn parallel_accounts(&self) -> usize {
        self.concurrency
    }

    async fn execute(&self, change: &Change, use_revision: bool) -> Result<Written, Failure> {
        let account = change.account.as_deref().unwrap_or_default();
        let member = self.member(account).ok_or_else(|| {
            Failure::permanent(
                change.action.name(),
                format!("account {account} is not in scope"),
            )
        })?;
        let region = change
            .region
            .clone()
            .unwrap_or_else(|| member.account.home().to_string());
        member
            .connector
            .clients(&region)
            .execute(change, use_revision)
            .await
    }
}

/// One client for every region: the unit tests' fake.
struct Fixed(Arc<dyn AwsApi>);

#[async_trait::async_trait]
impl Connector for Fixed {
    async fn reach(&self) -> Result<(), Failure> {
        Ok(())
    }

    fn clients(&self, _region: &str) -> Arc<dyn AwsApi> {
        self.0.clone()
    }

    fn stats(&self) -> CallStats {
        // Counted once, as the hub.
        CallStats::default()
    }
}

/// Connects the hub, reads who it is, and finds the accounts in scope: the configured
/// targets and the organization's accounts, or, with neither, the hub's own account.
pub async fn connect(
    config: &Config,
    stop: crate::ports::retry::Stop,
    pending: Pending,
) -> Result<(Fleet, CallerIdentity), Failure> {
    let (spokes, caller) = Spokes::connect(config, stop, pending).await?;
    let accounts = accounts(config, spokes.hub(), &caller).await?;
    let members = accounts.into_iter().map(|a| member(&spokes, a)).collect();
    let mut fleet = Fleet::new(spokes.hub().clone(), members, config.accounts.concurrency);
    fleet.discovered = Some(std::time::Instant::now());
    fleet.spokes = Some(spokes);
    Ok((fleet, caller))
}

/// A member for `account`, reached through the spoke connector.
fn member(spokes: &Spokes, account: Account) -> Member {
    Member {
        connector: spokes.connector(&account),
        account,
    }
}

impl Fleet {
    /// Whether [`Fleet::rediscover`] would read the organization now.
    pub fn rediscovery_due(&self) -> bool {
        let Some(org) = self
            .spokes
            .as_ref()
            .and_then(|s| s.config().accounts.organization.as_ref())
        else {
            return false;
        };
        !self.narrowed
            && self
                .discovered
                .is_none_or(|t| t.elapsed().as_secs() >= org.refresh_seconds)
    }

    /// Reads the organization again when `accounts.organization.refreshSeconds` have
    /// passed: new accounts join, closed or untagged ones leave, the others keep their
    /// clients. A failed read keeps the accounts known so far (and says so).
    pub async fn rediscover(&mut self, caller: &CallerIdentity) {
        if !self.rediscovery_due() {
            return;
        }
        let Some(spokes) = &self.spokes else {
            return;
        };
        match accounts(spokes.config(), spokes.hub(), caller).await {
            Ok(found) => {
                let members = found.into_iter().map(|a| member(spokes, a)).collect();
                self.set_members(members);
                self.discovered = Some(std::time::Instant::now());
                tracing::info!(
                    accounts = self.members.len(),
                    "read the organization's accounts"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the organization's accounts; keeping the {} known", self.members.len());
            }
        }
    }
}

/// The accounts in scope, in id order.
async fn accounts(
    config: &Config,
    hub: &AwsClients,
    caller: &CallerIdentity,
) -> Result<Vec<Account>, Failure> {
    let a = &config.accounts;
    let default_regions = vec![hub.region.clone()];
    if !a.is_hub() {
        return Ok(vec![Account {
            id: caller.account.clone(),
            labels: BTreeMap::new(),
            regions: default_regions,
            role_arn: None,
            external_id: None,
        }]);
    }
    let partition = partition_of(&hub.region);
    let mut out: BTreeMap<String, Account> = BTreeMap::new();
    if let Some(org) = &a.organization {
        for (id, tags) in hub.organization_accounts(&org.parents).await? {
            let wanted = org.tags.iter().all(|(k, v)| tags.get(k) == Some(v));
            if !wanted || org.exclude.contains(&id) {
                continue;
            }
            out.insert(
                id.clone(),
                Account {
                    role_arn: Some(a.spoke_role_arn(partition, &id)),
                    external_id: a.external_id.clone(),
                    regions: if org.regions.is_empty() {
                        default_regions.clone()
                    } else {
                        org.regions.clone()
                    },
                    labels: tags,
                    id,
                },
            );
        }
    }
    // A listed target wins over the same account found in the organization.
    for t in &a.targets {
        out.insert(
            t.id.clone(),
            a.target_account(t, &default_regions, partition),
        );
    }
    Ok(out.into_values().collect())
}
