//! Who writes a role when: the full pass and the membership fast path run side by side
//! and never write the same role at once.
//!
//! - A fast pass holds the locks of its roles (by name, in every account) from before it
//!   reads them until its last write, so what it writes follows what it read.
//! - The full pass takes a role's lock for each of its writes. A role the fast path wrote
//!   after the full pass began to read is left alone ([`Failure::superseded`], recorded as
//!   skipped): the full pass's view of it is older than the fast path's. The controller
//!   then starts another full pass at once.
//! - The session-deny policy of each role, as trustsync last read or wrote it: a fast pass
//!   takes it from here instead of reading it again, and records a revocation's removal
//!   baseline in the audit log rather than in the role's tag, so a revocation costs three
//!   requests (read the role, write its trust, write the denial). The full pass refreshes
//!   the policies from what it reads; a write whose outcome is unknown forgets it (the next
//!   fast pass reads).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use crate::model::call::{Failure, Written};
use crate::model::names::SESSIONS_POLICY;
use crate::observed::Observations;
use crate::plan::{Action, Change, IamAction, Settings};
use crate::ports::Executor;

/// A role's session-deny policy by (account, lower-case role name): `None` when the role
/// has none.
type Sessions = HashMap<(String, String), Option<Value>>;

/// The role locks, the fast path's last write per role, and the session-deny policies
/// known; shared by the controller's full and fast passes.
#[derive(Default)]
pub struct RoleWrites {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    fast_written: Mutex<HashMap<String, Instant>>,
    sessions: Mutex<Sessions>,
}

/// What a change writes, as the locks know it: a role by lower-case name (the last
/// segment of an IAM role ARN), or an AccessAssignment's people (its group, permission
/// set and assignments) as `people:<document>`, so that the fast path and a full pass never
/// write the same permission set or trustsync group at once either.
fn role_of(change: &Change) -> Option<String> {
    if let (Action::People(_), Some(m)) = (&change.action, &change.mapping) {
        return Some(people_key(m.as_str()));
    }
    crate::model::arn::ArnParts::parse(&change.resource)?
        .role_name()
        .map(str::to_ascii_lowercase)
}

/// The lock of an AccessAssignment's people writes.
pub fn people_key(document: &str) -> String {
    format!("people:{}", document.to_ascii_lowercase())
}

impl RoleWrites {
    fn lock_of(&self, role: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("role locks")
            .entry(role.to_ascii_lowercase())
            .or_default()
            .clone()
    }

    /// Holds these roles (by name, in every account) until the guards are dropped: a fast
    /// pass, before it reads them. Taken in name order, so two holders never wait on each
    /// other.
    pub async fn hold(&self, roles: &BTreeSet<String>) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let names: BTreeSet<String> = roles.iter().map(|r| r.to_ascii_lowercase()).collect();
        let mut guards = Vec::with_capacity(names.len());
        for name in names {
            guards.push(self.lock_of(&name).lock_owned().await);
        }
        guards
    }

    /// Whether the fast path wrote `role` after `since`.
    fn fast_written_since(&self, role: &str, since: Instant) -> bool {
        self.fast_written
            .lock()
            .expect("fast writes")
            .get(role)
            .is_some_and(|t| *t > since)
    }

    /// The session-deny policy known for this role: `Some(None)` when it has none, `None`
    /// when it is not known (read it).
    pub fn sessions_of(&self, account: &str, role: &str) -> Option<Option<Value>> {
        self.sessions
            .lock()
            .expect("sessions")
            .get(&(account.to_string(), role.to_ascii_lowercase()))
            .cloned()
    }

    /// What a full pass that began reading at `read_at` saw of the roles trustsync owns,
    /// except those the fast path wrote since (what it wrote is newer).
    pub fn learn(&self, observed: &Observations, settings: &Settings, read_at: Instant) {
        let mut known = self.sessions.lock().expect("sessions");
        for (account, iam) in observed.iam() {
            for (name, role) in &iam.roles {
                if !settings.ownership().role(role) || self.fast_written_since(name, read_at) {
                    continue;
                }
                known.insert(
                    (account.to_string(), name.to_ascii_lowercase()),
                    role.inline_policies.get(SESSIONS_POLICY).cloned(),
                );
            }
        }
    }

    /// After a write to `role`: what its session-deny policy is now, when the write says.
    fn wrote(&self, change: &Change, role: &str, result: &Result<Written, Failure>) {
        let key = (change.account.clone().unwrap_or_default(), role.to_string());
        let now = match (&change.action, change.action.inline_policy()) {
            (_, Some((_, name, document))) if name == SESSIONS_POLICY => Some(document.clone()),
            (Action::Iam(IamAction::DeleteInlinePolicy { policy_name, .. }), _)
                if policy_name == SESSIONS_POLICY =>
            {
                None
            }
            // A role made now has no inline policy; one that was there already is read.
            (Action::Iam(IamAction::CreateRole { .. }), _)
                if result.as_ref().is_ok_and(|w| w.note.is_none()) =>
            {
                None
            }
            (
                Action::Iam(IamAction::DeleteRole { .. })
                | Action::Iam(IamAction::CreateRole { .. }),
                _,
            ) => {
                self.sessions.lock().expect("sessions").remove(&key);
                return;
            }
            _ => return,
        };
        let mut known = self.sessions.lock().expect("sessions");
        if result.is_ok() {
            known.insert(key, now);
        } else {
            // Written or not: the next fast pass reads it.
            known.remove(&key);
        }
    }
}

/// The executor a controller pass writes through: the fleet, with the role locks.
pub struct Guarded<'a> {
    /// Where the writes go.
    inner: &'a dyn Executor,
    /// The locks and what they guard.
    writes: &'a RoleWrites,
    /// A full pass: when it began to read (each write takes its role's lock, and a role
    /// the fast path wrote since is left). `None`: a fast pass, which holds its roles'
    /// locks already.
    full_read_at: Option<Instant>,
    /// Changes left because the fast path wrote their role meanwhile.
    superseded: AtomicUsize,
}

impl<'a> Guarded<'a> {
    /// Writes through `inner`; `full_read_at` as [`Guarded::full_read_at`].
    pub fn new(
        inner: &'a dyn Executor,
        writes: &'a RoleWrites,
        full_read_at: Option<Instant>,
    ) -> Guarded<'a> {
        Guarded {
            inner,
            writes,
            full_read_at,
            superseded: AtomicUsize::new(0),
        }
    }

    /// How many changes were left because the fast path wrote their role meanwhile.
    pub fn superseded(&self) -> usize {
        self.superseded.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Executor for Guarded<'_> {
    fn write_slots(&self) -> usize {
        self.inner.write_slots()
    }

    fn parallel_accounts(&self) -> usize {
        self.inner.parallel_accounts()
    }

    async fn execute(&self, change: &Change, use_revision: bool) -> Result<Written, Failure> {
        let Some(role) = role_of(change) else {
            return self.inner.execute(change, use_revision).await;
        };
        let _held = match self.full_read_at {
            Some(read_at) => {
                let held = self.writes.lock_of(&role).lock_owned().await;
                if self.writes.fast_written_since(&role, read_at) {
                    self.superseded.fetch_add(1, Ordering::SeqCst);
                    return Err(Failure::superseded(
                        change.action.name(),
                        "the membership fast path wrote this role after this pass read it; left for the next pass, which reads it again",
                    ));
                }
                Some(held)
            }
            None => {
                self.writes
                    .fast_written
                    .lock()
                    .expect("fast writes")
                    .insert(role.clone(), Instant::now());
                None
            }
        };
        let result = match (&change.action, self.full_read_at) {
            // The fast path records a revocation's removal baseline in the audit log only
            // (with the change): one request fewer than tagging the role too.
            (
                Action::Iam(IamAction::RevokeTrust {
                    baseline: Some(_), ..
                }),
                None,
            ) => {
                let mut untagged = change.clone();
                if let Action::Iam(IamAction::RevokeTrust { baseline, .. }) = &mut untagged.action {
                    *baseline = None;
                }
                self.inner.execute(&untagged, use_revision).await
            }
            _ => self.inner.execute(change, use_revision).await,
        };
        self.writes.wrote(change, &role, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROLE: &str = "arn:aws:iam::111111111111:role/trustsync/Deployer";

    fn change(action: Action, resource: &str) -> Change {
        let mut c = Change::new(action, resource, None, "test");
        c.account = Some("111111111111".into());
        c
    }

    fn revoke_sessions(doc: Value) -> Change {
        change(
            Action::Iam(IamAction::RevokeSessions {
                role_name: "Deployer".into(),
                document: doc,
            }),
            ROLE,
        )
    }

    /// Records what it was asked to write; fails while `fail` is set.
    #[derive(Default)]
    struct Recorder {
        done: Mutex<Vec<String>>,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl Executor for Recorder {
        fn write_slots(&self) -> usize {
            1
        }

        async fn execute(&self, change: &Change, _: bool) -> Result<Written, Failure> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(Failure::permanent(change.action.name(), "refused"));
            }
            self.done
                .lock()
                .unwrap()
                .push(change.action.name().to_string());
            Ok(Written::default())
        }
    }

    #[test]
    fn the_role_of_a_change_is_the_last_segment_of_its_iam_role_arn() {
        let c = change(
            Action::Iam(IamAction::DeleteRole {
                role_name: "Deployer".into(),
            }),
            ROLE,
        );
        assert_eq!(role_of(&c).as_deref(), Some("deployer"));
        let f = change(
            Action::Iam(IamAction::DeleteRole {
                role_name: "x".into(),
            }),
            "arn:aws:lambda:eu-west-1:111111111111:function:role/x",
        );
        assert_eq!(role_of(&f), None, "not an IAM role");
    }

    #[tokio::test]
    async fn a_full_pass_leaves_a_role_the_fast_path_wrote_after_it_read() {
        let writes = RoleWrites::default();
        let aws = Recorder::default();
        let read_at = Instant::now();
        let fast = Guarded::new(&aws, &writes, None);
        fast.execute(&revoke_sessions(json!({"a": 1})), false)
            .await
            .unwrap();
        let full = Guarded::new(&aws, &writes, Some(read_at));
        let left = full
            .execute(&revoke_sessions(json!({"b": 2})), false)
            .await
            .unwrap_err();
        assert!(left.is_superseded(), "{left}");
        assert_eq!(full.superseded(), 1);
        assert_eq!(aws.done.lock().unwrap().len(), 1, "not sent");
        // A full pass that read after the fast write goes ahead.
        let later = Guarded::new(&aws, &writes, Some(Instant::now()));
        later
            .execute(&revoke_sessions(json!({"c": 3})), false)
            .await
            .unwrap();
        assert_eq!(later.superseded(), 0);
        assert_eq!(
            writes.sessions_of("111111111111", "deployer"),
            Some(Some(json!({"c": 3}))),
            "the session denials as last written"
        );
    }

    #[tokio::test]
    async fn a_held_role_waits_for_the_fast_pass_and_other_roles_do_not() {
        let writes = Arc::new(RoleWrites::default());
        let held = writes.hold(&BTreeSet::from(["DEPLOYER".to_string()])).await;
        let aws = Arc::new(Recorder::default());
        let read_at = Instant::now();
        let (w, a) = (writes.clone(), aws.clone());
        let full = tokio::spawn(async move {
            let g = Guarded::new(&*a, &w, Some(read_at));
            g.execute(&revoke_sessions(json!({})), false).await
        });
        let other = change(
            Action::Iam(IamAction::DeleteRole {
                role_name: "Reader".into(),
            }),
            "arn:aws:iam::111111111111:role/trustsync/Reader",
        );
        Guarded::new(&*aws, &writes, Some(read_at))
            .execute(&other, false)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(
            *aws.done.lock().unwrap(),
            ["delete-role"],
            "the held role waits"
        );
        drop(held);
        full.await.unwrap().unwrap();
        assert_eq!(aws.done.lock().unwrap().len(), 2);
    }

    /// People too (issue 34): a full pass that read before the fast path wrote a
    /// document's people leaves its own write to them (a permission set update from the
    /// older read would drop the fast path's new denial); another document's goes ahead.
    #[tokio::test]
    async fn a_full_pass_leaves_the_people_the_fast_path_wrote_after_its_read() {
        let writes = RoleWrites::default();
        let aws = Recorder::default();
        let set = |mapping: &str| {
            let mut c = change(
                Action::People(crate::plan::PeopleAction::DenyPermissionSetSessions {
                    instance_arn: "i".into(),
                    permission_set_arn: "ps".into(),
                    document: json!({}),
                }),
                "arn:aws:sso:::permissionSet/ssoins-1/ps-1",
            );
            c.mapping = Some(mapping.into());
            c
        };
        let read_at = Instant::now();
        let held = writes
            .hold(&BTreeSet::from([people_key("Payments-People")]))
            .await;
        Guarded::new(&aws, &writes, None)
            .execute(&set("payments-people"), false)
            .await
            .unwrap();
        drop(held);
        let full = Guarded::new(&aws, &writes, Some(read_at));
        let left = full
            .execute(&set("payments-people"), false)
            .await
            .unwrap_err();
        assert!(left.is_superseded(), "{left}");
        full.execute(&set("other-people"), false).await.unwrap();
        assert_eq!(
            aws.done.lock().unwrap().len(),
            2,
            "the fast write and the other document's"
        );
    }

    #[tokio::test]
    async fn a_write_whose_outcome_is_unknown_forgets_the_session_denials() {
        let writes = RoleWrites::default();
        let aws = Recorder::default();
        let fast = Guarded::new(&aws, &writes, None);
        fast.execute(&revoke_sessions(json!({"a": 1})), false)
            .await
            .unwrap();
        assert!(writes.sessions_of("111111111111", "Deployer").is_some());
        aws.fail.store(true, Ordering::SeqCst);
        assert!(fast
            .execute(&revoke_sessions(json!({"b": 2})), false)
            .await
            .is_err());
        assert_eq!(
            writes.sessions_of("111111111111", "Deployer"),
            None,
            "read again next time"
        );
    }
}
