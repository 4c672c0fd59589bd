//! The document's permission set: its owner tag, and what it is written as.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::denials::{fit, Denials};
use super::{set_description, People, Wanted};
use crate::model::iam_policy;
use crate::observed::{IdentityCenterPermissionSet, PermissionSetPolicies, SetBoundary};
use crate::plan::{Action, Change, PeopleAction};

impl People<'_> {
    /// trustsync's set whose tags were read and lack the owner tag (made before sets were
    /// tagged at creation) gets it, before anything else is written to it.
    pub(super) fn tag_set(&mut self, set: &IdentityCenterPermissionSet, w: Option<&Wanted>) {
        // The configured tag itself: a key may hold `=`, which the mark cannot tell apart.
        let (key, value) = (
            self.i.owner_tag.key.as_str(),
            self.i.owner_tag.value.as_str(),
        );
        let Some(tags) = set.policies.as_ref().and_then(|p| p.tags.as_ref()) else {
            return;
        };
        if tags.get(key).map(String::as_str) == Some(value) {
            return;
        }
        let action = PeopleAction::TagPermissionSet {
            instance_arn: self.i.observed.instance_arn.clone(),
            permission_set_arn: set.arn.clone(),
            name: set.name.clone(),
            tags: BTreeMap::from([(key.to_string(), value.to_string())]),
        };
        let mut change = Change::new(
            Action::People(action),
            set.arn.clone(),
            w.map(|w| w.mapping.as_str()),
            format!("trustsync's permission set {} lacks the owner tag {key}={value} (made before sets were tagged at creation)", set.name),
        );
        change.before = Some(json!({"tags": tags}));
        change.after = Some(json!({"tags": {key: value}}));
        self.plan.changes.push(change);
    }

    /// Creates the permission set, or updates what differs from the document.
    pub(super) fn permission_set(
        &mut self,
        w: &Wanted,
        set: Option<&IdentityCenterPermissionSet>,
        denials: Denials,
    ) {
        let wanted = self.wanted_set(w, denials);
        match set {
            None => self.create_set(w, wanted),
            Some(set) => self.update_set(w, set, wanted),
        }
    }

    /// What the document makes of the set this pass: its description, its inline policy
    /// (the document's statements and the session denials), its boundary.
    fn wanted_set(&self, w: &Wanted, denials: Denials) -> WantedSet {
        let spec = &w.spec.permission_set;
        let description = set_description(spec.description.as_deref(), self.i.mark);
        let own: Vec<Value> = spec
            .inline_policy
            .as_ref()
            .map(iam_policy::statements)
            .unwrap_or_default();
        let cutoff = self.i.now + self.i.propagation_seconds;
        let inline = |denials: Vec<Value>| {
            (!own.is_empty() || !denials.is_empty()).then(|| fit(own.clone(), denials, cutoff).0)
        };
        let denials_written = denials.written;
        let wanted_inline = inline(denials.all);
        // Written instead when the new denials are held (the checks swap it in).
        let without_new = inline(denials.kept);
        let wanted_boundary = spec.permissions_boundary.as_ref().map(|b| SetBoundary {
            managed_policy_arn: b.managed_policy_arn.clone(),
            customer_managed_policy: b
                .customer_managed_policy
                .as_ref()
                .map(|c| (c.name.clone(), c.path.clone())),
        });
        WantedSet {
            description,
            inline: wanted_inline,
            without_new,
            denials_written,
            boundary: wanted_boundary,
        }
    }

    /// A new permission set, as the document says.
    fn create_set(&mut self, w: &Wanted, wanted: WantedSet) {
        let spec = &w.spec.permission_set;
        self.push(
            PeopleAction::PutPermissionSet {
                instance_arn: self.i.observed.instance_arn.clone(),
                permission_set_arn: None,
                name: spec.name.clone(),
                description: wanted.description,
                session_duration: spec.session_duration.clone(),
                inline_policy: wanted.inline,
                delete_inline_policy: false,
                attach_managed_policies: spec.managed_policies.clone(),
                detach_managed_policies: Vec::new(),
                attach_customer_managed_policies: spec
                    .customer_managed_policies
                    .iter()
                    .map(|c| (c.name.clone(), c.path.clone()))
                    .collect(),
                detach_customer_managed_policies: Vec::new(),
                put_boundary: wanted.boundary.map(Box::new),
                delete_boundary: false,
            },
            format!(
                "{}/permissionSet/{}",
                self.i.observed.instance_arn, spec.name
            ),
            w,
            "AccessAssignment is new".into(),
        );
    }

    /// The existing set brought in line with the document, where it drifted.
    fn update_set(&mut self, w: &Wanted, set: &IdentityCenterPermissionSet, wanted: WantedSet) {
        let spec = &w.spec.permission_set;
        let policies = set.policies.clone().unwrap_or_default();
        let d = drift(w, set, &policies, &wanted);
        if d.reasons.is_empty() {
            return;
        }
        let before = json!({
            "description": set.description,
            "sessionDuration": set.session_duration,
            "inlinePolicy": policies.inline_policy,
            "managedPolicies": policies.managed_policies,
            "customerManagedPolicies": policies.customer_managed_policies,
            "permissionsBoundary": policies.boundary,
        });
        let after = json!({
            "description": wanted.description,
            "sessionDuration": spec.session_duration,
            "inlinePolicy": wanted.inline,
            "managedPolicies": spec.managed_policies,
            "customerManagedPolicies": d.want_c,
            "permissionsBoundary": wanted.boundary,
        });
        let delete_inline = d.inline_changed && wanted.inline.is_none();
        let c = self.push(
            PeopleAction::PutPermissionSet {
                instance_arn: self.i.observed.instance_arn.clone(),
                permission_set_arn: Some(set.arn.clone()),
                name: spec.name.clone(),
                description: wanted.description,
                session_duration: spec.session_duration.clone(),
                inline_policy: if d.inline_changed {
                    wanted.inline
                } else {
                    None
                },
                delete_inline_policy: delete_inline,
                attach_managed_policies: d.attach,
                detach_managed_policies: d.detach,
                attach_customer_managed_policies: d.attach_c,
                detach_customer_managed_policies: d.detach_c,
                put_boundary: wanted
                    .boundary
                    .clone()
                    .filter(|_| d.boundary_changed)
                    .map(Box::new),
                delete_boundary: d.boundary_changed && wanted.boundary.is_none(),
            },
            set.arn.clone(),
            w,
            format!("drift: {}", d.reasons.join(", ")),
        );
        c.before = Some(before);
        c.after = Some(after);
        if d.inline_changed {
            c.grant_only = Some(wanted.without_new.unwrap_or(Value::Null));
        }
    }
}

/// The set as the document wants it this pass.
struct WantedSet {
    description: String,
    inline: Option<Value>,
    /// The inline policy without this pass's new denials (written instead when they are
    /// held).
    without_new: Option<Value>,
    /// The inline policy this pass's denial writes, if it writes one.
    denials_written: Option<Value>,
    boundary: Option<SetBoundary>,
}

/// How an existing set differs from the document.
struct Drift {
    reasons: Vec<&'static str>,
    inline_changed: bool,
    attach: Vec<String>,
    detach: Vec<String>,
    want_c: BTreeSet<(String, String)>,
    attach_c: Vec<(String, String)>,
    detach_c: Vec<(String, String)>,
    boundary_changed: bool,
}

fn drift(
    w: &Wanted,
    set: &IdentityCenterPermissionSet,
    policies: &PermissionSetPolicies,
    wanted: &WantedSet,
) -> Drift {
    let spec = &w.spec.permission_set;
    let mut reasons = Vec::new();
    let session_changed = set
        .session_duration
        .as_deref()
        .and_then(crate::sources::policy::iso_duration_seconds)
        != spec.session_seconds();
    if set.description.as_deref() != Some(wanted.description.as_str()) || session_changed {
        reasons.push("description or session duration");
    }
    // After this pass's denial, the set holds what the denial wrote.
    let current_inline = wanted
        .denials_written
        .clone()
        .or(policies.inline_policy.clone());
    let inline_changed = match (&wanted.inline, &current_inline) {
        (None, None) => false,
        (Some(a), Some(b)) => !iam_policy::equivalent(a, b),
        _ => true,
    };
    if inline_changed {
        reasons.push("inline policy");
    }
    let have: BTreeSet<&str> = policies
        .managed_policies
        .iter()
        .map(String::as_str)
        .collect();
    let want: BTreeSet<&str> = spec.managed_policies.iter().map(String::as_str).collect();
    let attach: Vec<String> = want.difference(&have).map(|s| s.to_string()).collect();
    let detach: Vec<String> = have.difference(&want).map(|s| s.to_string()).collect();
    let have_c: BTreeSet<(String, String)> =
        policies.customer_managed_policies.iter().cloned().collect();
    let want_c: BTreeSet<(String, String)> = spec
        .customer_managed_policies
        .iter()
        .map(|c| (c.name.clone(), c.path.clone()))
        .collect();
    let attach_c: Vec<(String, String)> = want_c.difference(&have_c).cloned().collect();
    let detach_c: Vec<(String, String)> = have_c.difference(&want_c).cloned().collect();
    if !(attach.is_empty() && detach.is_empty() && attach_c.is_empty() && detach_c.is_empty()) {
        reasons.push("policies attached");
    }
    let boundary_changed = policies.boundary != wanted.boundary;
    if boundary_changed {
        reasons.push("permissions boundary");
    }
    Drift {
        reasons,
        inline_changed,
        attach,
        detach,
        want_c,
        attach_c,
        detach_c,
        boundary_changed,
    }
}
