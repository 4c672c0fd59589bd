//! What the controller last read of each permission set in full, so that a full pass costs
//! what changed (issue 40, point 3): a set's description, session duration, policies,
//! boundary, tags and assignments are taken from the last full read of it, by ARN, until
//! one of these says read it again:
//! - its schedule: it was read `identityCenter.fullReadSeconds` ago (the sets first read in
//!   one pass come due spread over the first schedule, [`first_due`], so that later passes
//!   share the reads instead of one pass in each schedule reading everything);
//! - trustsync wrote it since, or planned to ([`SetCache::written`]: a pass marks every set
//!   its plan touches, applied or held, and the fast path's too);
//! - the pass reads accounts its assignments were not read in.
//!
//! What never comes from here: the instance, the identity store's users and groups, every
//! group's members (what a revocation acts on), the list of permission sets (a set made or
//! deleted is seen at once), and anything of a set an `adopt: true` document names and
//! trustsync does not own yet. And a pass that would change anything of a document reads
//! its set again first and plans from that read ([`crate::runtime::people::refresh`]), so no
//! write is decided from what this holds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::adapters::aws::KnownSets;
use crate::observed::{
    IdentityCenterAssignment, IdentityCenterPermissionSet, ObservedIdentityCenter,
};
use crate::plan::people::Wanted;
use crate::plan::{Action, PeopleAction, Plan};

/// Whether an entry may stand in for a read this pass, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Read less than the schedule ago, not written since: used.
    Fresh,
    /// Its schedule came: read in full.
    Due,
    /// trustsync wrote the set, or a plan touched it, since it was read: read in full.
    Written,
    /// The pass reads accounts its assignments were not read in: read in full.
    NewAccounts,
}

/// One permission set as its last full read showed it.
#[derive(Debug, Clone)]
pub struct SetEntry {
    /// Described (name, description, session duration); an owned set with its policies
    /// and tags.
    pub set: IdentityCenterPermissionSet,
    /// An owned set's assignments, and the accounts they were read in.
    pub assignments: Option<(BTreeSet<String>, Vec<IdentityCenterAssignment>)>,
    read_at: Instant,
    /// The part of the schedule its first read counts as gone already (see [`first_due`]).
    head_start: Duration,
    written: bool,
}

impl SetEntry {
    /// Whether the entry may stand in for a read `now`, on a schedule of `max_age`, in a
    /// pass over `accounts`.
    pub fn freshness(&self, now: Instant, max_age: Duration, accounts: &[String]) -> Freshness {
        if self.written {
            return Freshness::Written;
        }
        if let Some((read_in, _)) = &self.assignments {
            if accounts.iter().any(|a| !read_in.contains(a)) {
                return Freshness::NewAccounts;
            }
        }
        let age = now.saturating_duration_since(self.read_at) + self.head_start;
        match age >= max_age {
            true => Freshness::Due,
            false => Freshness::Fresh,
        }
    }
}

/// The controller's permission sets by ARN, as last read in full.
#[derive(Debug, Default)]
pub struct SetCache {
    entries: BTreeMap<String, SetEntry>,
}

/// When a set read for the first time comes due, as a share of the schedule in (0, 1]: a
/// stable hash of its ARN. The sets a first pass reads together come due one by one over
/// the first schedule, so that each pass after it re-reads about `interval / schedule` of
/// them, never all of them at once; after its first re-read a set keeps the whole schedule.
pub fn first_due(arn: &str) -> f64 {
    // FNV-1a: stable across runs and releases.
    let hash = arn.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % 1000 + 1) as f64 / 1000.0
}

impl SetCache {
    /// The entry of `arn`, if any.
    pub fn get(&self, arn: &str) -> Option<&SetEntry> {
        self.entries.get(arn)
    }

    /// What a pass over `accounts` may take as read `now`: the fresh entries, but for the
    /// sets `skip` names (by ARN and name: those an adopting document may take over are
    /// read in full). An owned set's assignments only in `accounts`.
    pub fn known(
        &self,
        now: Instant,
        max_age: Duration,
        accounts: &[String],
        skip: impl Fn(&IdentityCenterPermissionSet) -> bool,
    ) -> KnownSets {
        let mut known = KnownSets::default();
        for (arn, e) in &self.entries {
            if e.freshness(now, max_age, accounts) != Freshness::Fresh || skip(&e.set) {
                continue;
            }
            known.sets.insert(arn.clone(), e.set.clone());
            if let Some((_, assigned)) = &e.assignments {
                let here = assigned
                    .iter()
                    .filter(|a| accounts.contains(&a.account))
                    .cloned()
                    .collect();
                known.assignments.insert(arn.clone(), here);
            }
        }
        known
    }

    /// Records what a pass read in full at `read_at` (what it took from here is not read
    /// again: pass only what was read): each set, an owned one (its policies read) with
    /// its assignments in `accounts`. A set seen for the first time gets its spread first
    /// schedule ([`first_due`]) of `max_age`; one read before keeps the whole schedule.
    pub fn record(
        &mut self,
        sets: &[&IdentityCenterPermissionSet],
        assignments: &[IdentityCenterAssignment],
        accounts: &[String],
        read_at: Instant,
        max_age: Duration,
    ) {
        for set in sets {
            let head_start = match self.entries.contains_key(&set.arn) {
                true => Duration::ZERO,
                false => max_age.mul_f64(1.0 - first_due(&set.arn)),
            };
            let owned = set.policies.as_ref().is_some_and(|p| p.tags.is_some());
            let assigned = owned.then(|| {
                (
                    accounts.iter().cloned().collect(),
                    assignments
                        .iter()
                        .filter(|a| a.permission_set_arn == set.arn)
                        .cloned()
                        .collect(),
                )
            });
            self.entries.insert(
                set.arn.clone(),
                SetEntry {
                    set: (*set).clone(),
                    assignments: assigned,
                    read_at,
                    head_start,
                    written: false,
                },
            );
        }
    }

    /// Marks the sets `arns` as written since their read: the next pass reads them in full.
    pub fn written<'a>(&mut self, arns: impl IntoIterator<Item = &'a String>) {
        for arn in arns {
            if let Some(e) = self.entries.get_mut(arn) {
                e.written = true;
            }
        }
    }

    /// Forgets the sets the instance no longer lists.
    pub fn keep_only(&mut self, listed: &BTreeSet<&str>) {
        self.entries.retain(|arn, _| listed.contains(arn.as_str()));
    }

    /// How many sets it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The permission sets a plan changes anything of: the set a people's change names, and
/// the set of every document with a change (a joiner added, a departure taken out, its
/// set written or assigned).
pub fn touched_sets(
    plan: &Plan,
    observed: &ObservedIdentityCenter,
    wanted: &[Wanted<'_>],
) -> BTreeSet<String> {
    let set_of = |mapping: &str| {
        let w = wanted.iter().find(|w| w.mapping.as_str() == mapping)?;
        let s = observed
            .permission_sets
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&w.spec.permission_set.name))?;
        Some(s.arn.clone())
    };
    plan.changes
        .iter()
        .chain(plan.held.iter().map(|h| &h.change))
        .filter_map(|c| match &c.action {
            Action::People(a) => Some((a, c.mapping.as_deref())),
            _ => None,
        })
        .flat_map(|(a, mapping)| {
            set_named(a)
                .map(String::from)
                .into_iter()
                .chain(mapping.and_then(set_of))
        })
        .collect()
}

/// The permission set a people's action names, if it names one.
fn set_named(action: &PeopleAction) -> Option<&str> {
    use PeopleAction::*;
    match action {
        PutPermissionSet {
            permission_set_arn, ..
        }
        | CreateAccountAssignment {
            permission_set_arn, ..
        } => permission_set_arn.as_deref(),
        TagPermissionSet {
            permission_set_arn, ..
        }
        | AdoptPermissionSet {
            permission_set_arn, ..
        }
        | DenyPermissionSetSessions {
            permission_set_arn, ..
        }
        | DeleteAccountAssignment {
            permission_set_arn, ..
        } => Some(permission_set_arn),
        CreateIdentityStoreUser { .. }
        | CreateIdentityStoreGroup { .. }
        | AddGroupMembers { .. }
        | RemoveGroupMembers { .. }
        | AdoptIdentityStoreGroup { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{AssignedTo, PermissionSetPolicies};

    const HOUR: Duration = Duration::from_secs(3600);

    fn owned(arn: &str) -> IdentityCenterPermissionSet {
        IdentityCenterPermissionSet {
            arn: arn.into(),
            name: arn.to_uppercase(),
            session_duration: Some("PT1H".into()),
            description: Some("[trustsync k=v]".into()),
            policies: Some(PermissionSetPolicies {
                tags: Some(BTreeMap::new()),
                ..Default::default()
            }),
        }
    }

    fn assigned(arn: &str, account: &str) -> IdentityCenterAssignment {
        IdentityCenterAssignment {
            account: account.into(),
            permission_set_arn: arn.into(),
            principal_type: AssignedTo::Group,
            principal_id: "g-1".into(),
        }
    }

    fn accounts(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// A cache holding `ps-1`, read at `t0` and re-read once, so that it keeps the whole
    /// schedule.
    fn cache_at(t0: Instant) -> SetCache {
        let mut c = SetCache::default();
        let (set, a) = (owned("ps-1"), assigned("ps-1", "111"));
        c.record(
            &[&set],
            std::slice::from_ref(&a),
            &accounts(&["111"]),
            t0,
            HOUR,
        );
        c.record(&[&set], &[a], &accounts(&["111"]), t0, HOUR);
        c
    }

    #[test]
    fn an_entry_is_fresh_until_its_schedule_then_due() {
        let t0 = Instant::now();
        let c = cache_at(t0);
        let e = c.get("ps-1").unwrap();
        let here = accounts(&["111"]);
        assert_eq!(e.freshness(t0, HOUR, &here), Freshness::Fresh);
        assert_eq!(
            e.freshness(t0 + HOUR - Duration::from_secs(1), HOUR, &here),
            Freshness::Fresh,
            "a second before the schedule"
        );
        assert_eq!(e.freshness(t0 + HOUR, HOUR, &here), Freshness::Due);
        assert_eq!(
            e.freshness(t0, Duration::ZERO, &here),
            Freshness::Due,
            "fullReadSeconds: 0 reads every set every pass"
        );
        let known = c.known(t0 + Duration::from_secs(60), HOUR, &here, |_| false);
        assert_eq!(known.sets.len(), 1);
        assert_eq!(known.assignments["ps-1"], [assigned("ps-1", "111")]);
        assert!(c.known(t0 + HOUR, HOUR, &here, |_| false).sets.is_empty());
    }

    #[test]
    fn a_set_trustsync_wrote_since_its_read_is_read_again_however_young() {
        let t0 = Instant::now();
        let mut c = cache_at(t0);
        c.written([&"ps-1".to_string(), &"ps-unknown".to_string()]);
        let e = c.get("ps-1").unwrap();
        assert_eq!(
            e.freshness(t0, HOUR, &accounts(&["111"])),
            Freshness::Written
        );
        assert!(c
            .known(t0, HOUR, &accounts(&["111"]), |_| false)
            .sets
            .is_empty());
        // Read again: fresh, on the whole schedule.
        let set = owned("ps-1");
        let later = t0 + Duration::from_secs(10);
        c.record(&[&set], &[], &accounts(&["111"]), later, HOUR);
        let e = c.get("ps-1").unwrap();
        assert_eq!(
            e.freshness(later, HOUR, &accounts(&["111"])),
            Freshness::Fresh
        );
        assert_eq!(
            e.freshness(later + HOUR, HOUR, &accounts(&["111"])),
            Freshness::Due
        );
    }

    #[test]
    fn a_new_account_or_an_adoptable_name_reads_the_set_in_full() {
        let t0 = Instant::now();
        let c = cache_at(t0);
        let e = c.get("ps-1").unwrap();
        assert_eq!(
            e.freshness(t0, HOUR, &accounts(&["111", "222"])),
            Freshness::NewAccounts
        );
        assert_eq!(
            e.freshness(t0, HOUR, &[]),
            Freshness::Fresh,
            "fewer accounts: what was read covers them"
        );
        let known = c.known(t0, HOUR, &accounts(&["111"]), |s| s.name == "PS-1");
        assert!(known.sets.is_empty(), "a set an adopting document names");
    }

    #[test]
    fn sets_first_read_together_come_due_spread_over_the_first_schedule() {
        let t0 = Instant::now();
        let mut c = SetCache::default();
        let sets: Vec<IdentityCenterPermissionSet> = (0..1000)
            .map(|i| owned(&format!("arn:aws:sso:::permissionSet/ssoins-1/ps-{i:016x}")))
            .collect();
        let refs: Vec<&IdentityCenterPermissionSet> = sets.iter().collect();
        c.record(&refs, &[], &[], t0, HOUR);
        let due_by = |secs: u64| {
            refs.iter()
                .filter(|s| {
                    c.get(&s.arn)
                        .unwrap()
                        .freshness(t0 + Duration::from_secs(secs), HOUR, &[])
                        == Freshness::Due
                })
                .count()
        };
        // A pass every 300 s re-reads about a twelfth of them, and all by the schedule.
        let first = due_by(300);
        assert!((40..=130).contains(&first), "{first} due after 300 s");
        assert!((400..=600).contains(&due_by(1800)), "{}", due_by(1800));
        assert_eq!(due_by(3600), 1000, "every set within the schedule");
        assert_eq!(first_due("x"), first_due("x"), "stable");
    }

    /// What a pass whose cache holds trustsync's set `ps-ops` (as written, assigned) plans,
    /// with `members` in the Entra group and `ana` in trustsync's group.
    fn plan_with(members: &[&str], inline: serde_json::Value) -> (Plan, BTreeSet<String>) {
        use crate::observed::{GroupMembership, IdentityCenterGroup, IdentityCenterUser};
        use crate::plan::people::{plan, Inputs, Members, Person};
        let spec: crate::sources::policy::AccessAssignmentSpec = serde_yaml::from_str(
            r#"{group: {displayName: ops}, permissionSet: {name: Ops, sessionDuration: PT2H,
              inlinePolicy: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "s3:GetObject", Resource: "*"}]}},
              accounts: {ids: ["111"]}}"#,
        )
        .unwrap();
        let mark = "[trustsync k=v]";
        let user = |n: &str| IdentityCenterUser {
            id: format!("id-{n}"),
            user_name: n.into(),
            display_name: None,
            external_ids: Vec::new(),
        };
        let mut set = owned("ps-ops");
        set.name = "Ops".into();
        set.session_duration = Some("PT2H".into());
        set.description = Some(mark.into());
        let policies = set.policies.as_mut().unwrap();
        policies.inline_policy = Some(inline);
        policies.tags = Some(BTreeMap::from([("k".into(), "v".into())]));
        let observed = ObservedIdentityCenter {
            instance_arn: "i".into(),
            identity_store_id: "d-1".into(),
            users: vec![user("ana"), user("bo")],
            groups: vec![IdentityCenterGroup {
                id: "g-1".into(),
                display_name: "ops".into(),
                description: Some(format!("{mark}: AccessAssignment ops")),
                members: vec![GroupMembership {
                    user_id: "id-ana".into(),
                    membership_id: "m-ana".into(),
                }],
                holds: None,
            }],
            permission_sets: vec![set],
            assignments: vec![assigned("ps-ops", "111")],
        };
        let person = |n: &str| Person {
            id: format!("entra-{n}"),
            user_name: n.into(),
            display_name: Some(n.into()),
            given_name: None,
            surname: None,
            mail: None,
            enabled: true,
            guest: false,
        };
        let wanted = [Wanted {
            mapping: "ops".into(),
            spec: &spec,
            members: Members::Read(members.iter().map(|m| person(m)).collect()),
            accounts: accounts(&["111"]),
            blocked: false,
        }];
        let recorded_people = ["ana", "bo"]
            .map(|n| (n.to_string(), format!("entra-{n}")))
            .into();
        let p = plan(&Inputs {
            wanted: &wanted,
            observed: &observed,
            mark,
            owner_tag: &crate::config::OwnerTag {
                key: "k".into(),
                value: "v".into(),
            },
            now: 1_800_000_000,
            prune: false,
            adopting: true,
            recorded_baselines: &BTreeMap::new(),
            window_seconds: 3600,
            propagation_seconds: 300,
            recorded_people: &recorded_people,
        });
        let touched = touched_sets(&p, &observed, &wanted);
        (p, touched)
    }

    /// The sets a pass reads again before planning (and marks written after): those of
    /// every document with a change, a joiner's or a departure's too; none when nothing
    /// changes.
    #[test]
    fn any_change_of_a_document_touches_its_set_and_no_change_touches_none() {
        let as_written = serde_json::json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
        let (p, touched) = plan_with(&["ana"], as_written.clone());
        assert!(p.changes.is_empty(), "{:#?}", p.changes);
        assert!(touched.is_empty(), "nothing changes: the cache stands");
        let (p, touched) = plan_with(&["ana", "bo"], as_written.clone());
        assert_eq!(
            p.changes
                .iter()
                .map(|c| c.action.name())
                .collect::<Vec<_>>(),
            ["add-group-members"]
        );
        assert_eq!(touched, BTreeSet::from(["ps-ops".to_string()]), "a joiner");
        let (p, touched) = plan_with(&[], as_written);
        assert!(
            p.changes
                .iter()
                .any(|c| c.action.name() == "deny-permission-set-sessions"),
            "{:#?}",
            p.changes
        );
        assert_eq!(
            touched,
            BTreeSet::from(["ps-ops".to_string()]),
            "a departure"
        );
        let drifted = serde_json::json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        let (_, touched) = plan_with(&["ana"], drifted);
        assert_eq!(touched, BTreeSet::from(["ps-ops".to_string()]), "drift");
    }

    #[test]
    fn sets_no_longer_listed_are_forgotten() {
        let t0 = Instant::now();
        let mut c = cache_at(t0);
        c.keep_only(&BTreeSet::from(["ps-2"]));
        assert!(c.is_empty());
    }
}
