//! The checks stage: between plan and apply, it decides which planned changes go ahead
//! this pass and which are held, and says why and what would release each one.
//!
//! Pure: a [`Plan`] and a [`Context`] in, the same plan out with some changes moved to
//! [`Plan::held`]. The rules (docs/concepts.md, "Revocation first" and "Safety"):
//!
//! - **Additions are never held by a safety limit**; a change that keeps failing waits out
//!   its own back-off, except a revocation, which is tried every pass.
//! - **Per mapping**: a revocation that would take away more than
//!   `safety.maxPrincipalRemovalShare` of the principals a role trusted at its baseline
//!   (the most within `safety.removalWindowSeconds`, so quick successive passes add up),
//!   and more than `safety.principalRemovalFloor`, is held: a group that suddenly reads as
//!   empty. Only that mapping's revocation waits; the grant planned with it still adds
//!   (without removing).
//! - **Across the pass**: if the revocations not already held add up to more than the
//!   share of every principal the owned roles trust, they are all held (mass revocation).
//! - **Role deletions** (prune) over `safety.maxRoleDeletionShare` of the owned roles are
//!   held with the rest of their teardown.
//! - A person releases a hold with `--release NAME` (a mapping, or the role of an orphan)
//!   once the removal is known to be right.

use std::collections::BTreeSet;

use crate::config::Safety;
use crate::model::names::Arn;
use crate::plan::{Action, Change, Held, Hold, HoldKind, IamAction, PeopleAction, Plan};

/// What the checks weigh besides the plan.
pub struct Context<'a> {
    /// The removal limits.
    pub safety: &'a Safety,
    /// The reason a change is waiting out a back-off after failing, if it is.
    pub deferred: &'a (dyn Fn(&Change) -> Option<String> + Sync),
    /// Mappings (or orphan role names) whose removal holds a person released.
    pub released: &'a BTreeSet<String>,
}

/// The name a hold is released by: the mapping, or for an orphan the resource's last part.
pub fn release_name(c: &Change) -> String {
    c.mapping.as_ref().map(String::from).unwrap_or_else(|| {
        c.resource
            .rsplit(['/', ':'])
            .next()
            .unwrap_or(&c.resource)
            .to_string()
    })
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 * 100.0 / of as f64
    }
}

/// Runs the checks: back-off, the per-mapping and pass-wide removal limits, the role
/// deletion limit, then what depends on a held change.
pub fn check(mut plan: Plan, ctx: &Context) -> Plan {
    let changes = std::mem::take(&mut plan.changes);
    let mut c = Checker {
        ctx,
        holds: vec![None; changes.len()],
        changes,
        trusted_baseline: plan.trusted_baseline,
        owned_roles: plan.owned_roles,
    };
    c.back_off();
    c.mapping_removals();
    c.pass_removals();
    c.role_deletions();
    let (go, held) = c.with_dependents();
    plan.changes = go;
    plan.held.extend(held);
    plan.summarize();
    plan
}

/// The planned changes and, index for index, the hold each has so far.
struct Checker<'a> {
    ctx: &'a Context<'a>,
    changes: Vec<Change>,
    holds: Vec<Option<Hold>>,
    trusted_baseline: usize,
    owned_roles: usize,
}

impl Checker<'_> {
    fn released(&self, c: &Change) -> bool {
        self.ctx.released.contains(&release_name(c))
    }

    fn release_hint(&self, c: &Change) -> String {
        format!(
            "If the removal is right, run `trustsync apply --release {}` (or raise safety.maxPrincipalRemovalShare); if the directory read is wrong, fix it: the change is planned again every pass",
            release_name(c)
        )
    }

    /// A change that keeps failing waits out its back-off, unless it only takes access
    /// away.
    fn back_off(&mut self) {
        for (i, c) in self.changes.iter().enumerate() {
            if c.action.is_revocation() {
                continue;
            }
            if let Some(why) = (self.ctx.deferred)(c) {
                self.holds[i] = Some(Hold {
                    kind: HoldKind::Backoff,
                    reason: why,
                    release:
                        "Retried by the controller when its back-off ends; a clean apply clears it"
                            .into(),
                });
            }
        }
    }

    /// The share of a role's baseline one revocation takes away.
    fn mapping_removals(&mut self) {
        let (share, floor) = (
            self.ctx.safety.max_principal_removal_share,
            self.ctx.safety.principal_removal_floor,
        );
        for (i, c) in self.changes.iter().enumerate() {
            let Some(r) = c.removal.filter(|r| !r.deletes_role) else {
                continue;
            };
            let removed = r.removed();
            if removed > floor && pct(removed, r.baseline) > share * 100.0 && !self.released(c) {
                // A role trusts principals; trustsync's identity-store group holds people.
                let held = match c.action {
                    Action::People(_) => "people the group held",
                    _ => "principals the role trusted",
                };
                self.holds[i] = Some(Hold {
                    kind: HoldKind::MappingRemovalLimit,
                    reason: format!(
                        "would leave {} of the {} {held} within the last {}s ({} removed, {:.0}%), over safety.maxPrincipalRemovalShare = {:.0}% for one mapping",
                        r.after,
                        r.baseline,
                        self.ctx.safety.removal_window_seconds,
                        removed,
                        pct(removed, r.baseline),
                        share * 100.0
                    ),
                    release: self.release_hint(c),
                });
            }
        }
    }

    /// Every removal not already held, against every principal the owned roles trust.
    fn pass_removals(&mut self) {
        let (share, floor) = (
            self.ctx.safety.max_principal_removal_share,
            self.ctx.safety.principal_removal_floor,
        );
        let pending: Vec<usize> = self
            .changes
            .iter()
            .enumerate()
            .filter(|(i, c)| self.holds[*i].is_none() && c.removal.is_some() && !self.released(c))
            .map(|(i, _)| i)
            .collect();
        let removed_total: usize = pending
            .iter()
            .filter_map(|i| self.changes[*i].removal.map(|r| r.removed()))
            .sum();
        let trusted = self.trusted_baseline.max(1);
        if removed_total > floor && pct(removed_total, trusted) > share * 100.0 {
            for i in pending {
                self.holds[i] = Some(Hold {
                    kind: HoldKind::PassRemovalLimit,
                    reason: format!(
                        "the pass would remove {removed_total} of the {} principals and people trusted within the last {}s ({:.0}%), over safety.maxPrincipalRemovalShare = {:.0}% across all mappings",
                        self.trusted_baseline,
                        self.ctx.safety.removal_window_seconds,
                        pct(removed_total, trusted),
                        share * 100.0
                    ),
                    release: self.release_hint(&self.changes[i]),
                });
            }
        }
    }

    /// Role deletions (prune) over their share of the owned roles.
    fn role_deletions(&mut self) {
        let deletions: Vec<usize> = self
            .changes
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                self.holds[*i].is_none()
                    && matches!(c.action, Action::Iam(IamAction::DeleteRole { .. }))
                    && !self.released(c)
            })
            .map(|(i, _)| i)
            .collect();
        if !deletions.is_empty()
            && pct(deletions.len(), self.owned_roles.max(1))
                > self.ctx.safety.max_role_deletion_share * 100.0
        {
            for i in deletions {
                self.holds[i] = Some(Hold {
                    kind: HoldKind::RoleDeletionLimit,
                    reason: format!(
                        "the pass would delete {} of {} owned roles, over safety.maxRoleDeletionShare = {:.0}%",
                        self.changes.iter().filter(|c| matches!(c.action, Action::Iam(IamAction::DeleteRole { .. }))).count(),
                        self.owned_roles,
                        self.ctx.safety.max_role_deletion_share * 100.0
                    ),
                    release: format!(
                        "If the roles should go, run `trustsync apply --release {}` (or raise safety.maxRoleDeletionShare)",
                        release_name(&self.changes[i])
                    ),
                });
            }
        }
    }

    /// The changes that go ahead and those held. The rest of a held role deletion waits
    /// with it; a grant planned after a held revocation adds without removing.
    fn with_dependents(self) -> (Vec<Change>, Vec<Held>) {
        let changes = self.changes;
        let mut holds = self.holds;
        // What the held changes of a kind name: their resources, or their documents.
        let held = |holds: &[Option<Hold>], is: fn(&Action) -> bool| -> Vec<usize> {
            (0..changes.len())
                .filter(|i| holds[*i].is_some() && is(&changes[*i].action))
                .collect()
        };
        let resources = |ids: Vec<usize>| -> BTreeSet<Arn> {
            ids.into_iter()
                .map(|i| changes[i].resource.clone())
                .collect()
        };
        let held_deletions = resources(held(&holds, |a| {
            matches!(a, Action::Iam(IamAction::DeleteRole { .. }))
        }));
        hold_denials_of_held_removals(&changes, &mut holds);
        let held_revocations = resources(held(&holds, |a| {
            matches!(
                a,
                Action::Iam(IamAction::RevokeTrust { .. })
                    | Action::People(PeopleAction::DenyPermissionSetSessions { .. })
            )
        }));
        let (mut out, mut held) = (Vec::new(), Vec::new());
        for (c, hold) in changes.into_iter().zip(holds) {
            let mut c = c;
            let hold = hold.or_else(|| {
                (c.mapping.is_none() && held_deletions.contains(&c.resource)).then(|| Hold {
                    kind: HoldKind::DependsOnHeld,
                    reason: "part of a role deletion that is held".into(),
                    release: "Released with the deletion".into(),
                })
            });
            // The sessions of principals whose removal from the trust is held stay too.
            let hold = hold.or_else(|| {
                (matches!(c.action, Action::Iam(IamAction::RevokeSessions { .. }))
                    && held_revocations.contains(&c.resource))
                .then(|| Hold {
                    kind: HoldKind::DependsOnHeld,
                    reason: "denies the sessions of a revocation that is held".into(),
                    release: "Released with the revocation".into(),
                })
            });
            if hold.is_none() && held_revocations.contains(&c.resource) {
                adding_only(&mut c);
            }
            match hold {
                Some(hold) => held.push(Held {
                    change: c,
                    held: hold,
                }),
                None => out.push(c),
            }
        }
        (out, held)
    }
}

/// The changes of a kind that are held, by index.
fn held_of(changes: &[Change], holds: &[Option<Hold>], is: fn(&Action) -> bool) -> Vec<usize> {
    (0..changes.len())
        .filter(|i| holds[*i].is_some() && is(&changes[*i].action))
        .collect()
}

/// A held removal from a group holds the denial of the same people's sessions.
fn hold_denials_of_held_removals(changes: &[Change], holds: &mut [Option<Hold>]) {
    // People: a held removal from a group holds the denial of the same people's
    // sessions (same document), and a held denial keeps the permission set's update
    // from writing it.
    let held_people: BTreeSet<String> = held_of(changes, holds, |a| {
        matches!(a, Action::People(PeopleAction::RemoveGroupMembers { .. }))
    })
    .into_iter()
    .filter_map(|i| changes[i].mapping.as_ref().map(|m| m.to_string()))
    .collect();
    let is_denial = |a: &Action| {
        matches!(
            a,
            Action::People(PeopleAction::DenyPermissionSetSessions { .. })
        )
    };
    for (i, c) in changes.iter().enumerate() {
        if holds[i].is_none()
            && is_denial(&c.action)
            && c.mapping
                .as_deref()
                .is_some_and(|m| held_people.contains(m))
        {
            holds[i] = Some(Hold {
                kind: HoldKind::DependsOnHeld,
                reason: "denies the sessions of a removal that is held".into(),
                release: "Released with the removal".into(),
            });
        }
    }
}

/// A change to a resource whose revocation is held adds without removing: the trust
/// policy's grant only, the permission set without the held session denials.
fn adding_only(c: &mut Change) {
    match (&mut c.action, c.grant_only.take()) {
        (Action::Iam(IamAction::UpdateTrustPolicy { trust_policy, .. }), Some(grant)) => {
            *trust_policy = grant.clone();
            c.after = Some(grant);
            c.reason = format!("{}; adding only, as the revocation is held", c.reason);
        }
        (
            Action::People(PeopleAction::PutPermissionSet {
                inline_policy,
                delete_inline_policy,
                ..
            }),
            Some(without_new),
        ) => {
            *delete_inline_policy = without_new.is_null();
            *inline_policy = Some(without_new).filter(|v| !v.is_null());
            c.reason = format!("{}; without the session denials that are held", c.reason);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Effect, EntraAction, Removal};
    use serde_json::json;

    fn revoke(mapping: &str, baseline: usize, after: usize) -> Change {
        let action = Action::Iam(IamAction::RevokeTrust {
            role_name: mapping.into(),
            trust_policy: json!({}),
            baseline: None,
        });
        let resource = format!("arn:aws:iam::1:role/trustsync/{mapping}");
        Change {
            members_removed: (after..baseline).map(|i| format!("p{i}")).collect(),
            removal: Some(Removal {
                baseline,
                after,
                deletes_role: false,
            }),
            ..Change::new(action, resource, Some(mapping), "r")
        }
    }

    fn grant(mapping: &str) -> Change {
        Change {
            action: Action::Iam(IamAction::UpdateTrustPolicy {
                role_name: mapping.into(),
                trust_policy: json!({"full": true}),
            }),
            effect: Effect::Change,
            removal: None,
            members_removed: vec![],
            members_added: vec!["new".into()],
            grant_only: Some(json!({"grantOnly": true})),
            ..revoke(mapping, 0, 0)
        }
    }

    #[test]
    fn a_held_revocation_holds_its_session_denial_and_a_free_one_does_not() {
        let sessions = |m: &str| {
            Change::new(
                Action::Iam(IamAction::RevokeSessions {
                    role_name: m.into(),
                    document: json!({}),
                }),
                format!("arn:aws:iam::1:role/trustsync/{m}"),
                Some(m),
                "deny",
            )
        };
        let p = run(
            plan_of(
                vec![
                    revoke("big", 10, 1),
                    sessions("big"),
                    revoke("small", 10, 9),
                    sessions("small"),
                ],
                100,
                2,
            ),
            &[],
        );
        let go: Vec<String> = p.changes.iter().map(|c| c.key()).collect();
        assert_eq!(go.len(), 2, "{go:?}");
        assert!(go.iter().all(|k| k.contains("/small")), "{go:?}");
        assert_eq!(held_kinds(&p).len(), 2);
        assert!(p.held.iter().any(|h| h.held.kind == HoldKind::DependsOnHeld
            && matches!(
                h.change.action,
                Action::Iam(IamAction::RevokeSessions { .. })
            )));
    }

    fn plan_of(changes: Vec<Change>, trusted: usize, owned: usize) -> Plan {
        let mut p = Plan {
            changes,
            trusted_baseline: trusted,
            owned_roles: owned,
            ..Plan::default()
        };
        p.summarize();
        p
    }

    fn run(plan: Plan, released: &[&str]) -> Plan {
        let released = released.iter().map(|s| s.to_string()).collect();
        check(
            plan,
            &Context {
                safety: &Safety::default(),
                deferred: &|_| None,
                released: &released,
            },
        )
    }

    fn held_kinds(p: &Plan) -> Vec<(String, String)> {
        p.held
            .iter()
            .map(|h| {
                (
                    h.change
                        .mapping
                        .as_ref()
                        .map(String::from)
                        .unwrap_or_default(),
                    h.held.kind.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn table_of_removal_limits() {
        // (revocations as (mapping, baseline, after), trusted in total, held (mapping, kind))
        type Case<'a> = (
            &'a [(&'a str, usize, usize)],
            usize,
            &'a [(&'a str, &'a str)],
        );
        let cases: &[Case] = &[
            // A group that reads as empty is held per mapping, however large the tenant.
            (
                &[("small", 4, 0), ("big", 12, 12)],
                16,
                &[("small", "mapping-removal-limit")],
            ),
            // The floor lets one principal go.
            (&[("one", 1, 0)], 20, &[]),
            // Half or less of a mapping goes through.
            (&[("half", 4, 2)], 40, &[]),
            // Many small mappings each under the floor, together over the share: all held.
            (
                &[("a", 1, 0), ("b", 1, 0), ("c", 1, 0)],
                4,
                &[
                    ("a", "pass-removal-limit"),
                    ("b", "pass-removal-limit"),
                    ("c", "pass-removal-limit"),
                ],
            ),
            // A mapping held on its own does not count towards the pass.
            (
                &[("gone", 10, 0), ("ok", 10, 8)],
                30,
                &[("gone", "mapping-removal-limit")],
            ),
        ];
        for (revocations, trusted, want) in cases {
            let changes = revocations
                .iter()
                .map(|(m, b, a)| revoke(m, *b, *a))
                .collect();
            let p = run(plan_of(changes, *trusted, 3), &[]);
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(m, k)| (m.to_string(), k.to_string()))
                .collect();
            assert_eq!(held_kinds(&p), want, "{revocations:?}");
            assert_eq!(p.changes.len() + p.held.len(), revocations.len());
        }
    }

    #[test]
    fn the_baseline_not_the_current_count_is_what_a_removal_is_measured_by() {
        // 10 trusted an hour ago (recorded), 6 now, 3 after: 7 of 10 removed.
        let p = run(plan_of(vec![revoke("m", 10, 3)], 10, 1), &[]);
        assert_eq!(
            held_kinds(&p),
            [("m".to_string(), "mapping-removal-limit".to_string())]
        );
        assert!(
            p.held[0].held.reason.contains("7 removed, 70%"),
            "{}",
            p.held[0].held.reason
        );
        assert!(p.held[0].held.release.contains("--release m"));
    }

    #[test]
    fn a_held_revocation_never_holds_the_grant_which_adds_without_removing() {
        let p = run(plan_of(vec![revoke("m", 4, 0), grant("m")], 4, 1), &[]);
        assert_eq!(p.held.len(), 1);
        assert_eq!(p.changes.len(), 1);
        let Action::Iam(IamAction::UpdateTrustPolicy { trust_policy, .. }) = &p.changes[0].action
        else {
            panic!()
        };
        assert_eq!(trust_policy, &json!({"grantOnly": true}));
        assert!(p.changes[0].reason.contains("adding only"));
    }

    #[test]
    fn a_release_lets_the_named_mapping_through() {
        let p = run(plan_of(vec![revoke("m", 4, 0)], 4, 1), &["m"]);
        assert!(p.held.is_empty());
        assert_eq!(p.changes.len(), 1);
    }

    #[test]
    fn back_off_defers_failed_changes_but_never_a_revocation() {
        let released = BTreeSet::new();
        // An Entra credential no function wants any more is a revocation too.
        let forget = Change::new(
            Action::Entra(EntraAction::DeleteFederatedCredential {
                application_id: "obj".into(),
                app_id: "app".into(),
                credential_id: "c".into(),
                name: "trustsync-x-123456789012-api".into(),
            }),
            "entra:application/app/federatedIdentityCredentials/n",
            None,
            "no FunctionAccess wants it",
        );
        let p = check(
            plan_of(vec![revoke("m", 2, 1), grant("m"), forget], 10, 1),
            &Context {
                safety: &Safety::default(),
                deferred: &|_| Some("failed: AccessDenied".into()),
                released: &released,
            },
        );
        assert_eq!(p.changes.len(), 2);
        assert!(matches!(
            p.changes[0].action,
            Action::Iam(IamAction::RevokeTrust { .. })
        ));
        assert!(p.changes[1].action.is_entra(), "{:?}", p.changes[1]);
        assert_eq!(held_kinds(&p), [("m".to_string(), "backoff".to_string())]);
        assert!(!p.needs_attention(), "a back-off clears by itself");
    }

    #[test]
    fn role_deletions_over_the_share_are_held_with_their_teardown() {
        let delete = |name: &str| Change {
            action: Action::Iam(IamAction::DeleteRole {
                role_name: name.into(),
            }),
            mapping: None,
            removal: Some(Removal {
                baseline: 0,
                after: 0,
                deletes_role: true,
            }),
            ..revoke(name, 0, 0)
        };
        let detach = |name: &str| Change {
            action: Action::Iam(IamAction::DetachManagedPolicy {
                role_name: name.into(),
                policy_arn: "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
            }),
            mapping: None,
            removal: None,
            ..revoke(name, 0, 0)
        };
        let p = run(plan_of(vec![detach("x"), delete("x")], 0, 2), &[]);
        let kinds: Vec<&str> = p.held.iter().map(|h| h.held.kind.as_str()).collect();
        assert_eq!(kinds, ["depends-on-held", "role-deletion-limit"]);
        assert!(p.needs_attention());
        let p = run(plan_of(vec![detach("x"), delete("x")], 0, 2), &["x"]);
        assert!(p.held.is_empty());
    }
}
