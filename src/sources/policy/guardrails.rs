//! Guardrails: what one merged change to the policy repository may grant.
//!
//! Valid documents can still ask for too much: AdministratorAccess, `Action: "*"` on
//! `"*"`, an external account invoking a function, a service invoking one on anyone's
//! behalf (the confused deputy), a role trusting EC2, a provider for a stranger's tenant.
//! Each rule here is on by default, documented with its reason (docs/policy-reference.md,
//! "Guardrails"), and set or turned off one by one in the config's `guardrails`.
//!
//! `trustsync validate` refuses a violation (file, line, field, rule); `plan`, `apply` and
//! `run` report it as a problem of that document and change nothing for it but its
//! revocations, while the rest of the repository applies: the controller enforces the
//! rules even when CI did not run.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Diagnostic, PolicySet};
use crate::model::iam_policy::{statements, strings};

pub use crate::config::Guardrails;

/// What the rules are checked against besides the documents.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The managed accounts, when known (`invokerAccounts` unset).
    pub accounts: Option<BTreeSet<String>>,
    /// The controller's own tenant, when known (`allowedTenants` unset).
    pub tenant: Option<String>,
}

/// One document breaking one rule.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The document's kind.
    pub kind: &'static str,
    /// The document's name.
    pub name: String,
    /// The rule, as its config key.
    pub rule: &'static str,
    /// For a FunctionAccess: the index of the invoker that breaks it.
    pub invoker: Option<usize>,
    /// Where and what, with the rule named in the message.
    pub diagnostic: Diagnostic,
}

/// The account of an invoker principal: an account id, or the account field of an ARN.
fn account_of(principal: &str) -> Option<&str> {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        return Some(principal);
    }
    crate::model::arn::account_of(principal)
}

/// Whether an action pattern reaches administration: everything, or any wildcard over
/// IAM, STS or Organizations.
fn is_admin_action(action: &str) -> bool {
    let a = action.to_ascii_lowercase();
    if a == "*" || a == "*:*" {
        return true;
    }
    match a.split_once(':') {
        Some((service, name)) => {
            (service.contains('*') || matches!(service, "iam" | "sts" | "organizations"))
                && (name.contains('*') || name.contains('?'))
        }
        None => false,
    }
}

/// Why an inline policy's statement grants administration, if it does.
fn admin_statement(st: &Value) -> Option<String> {
    if st["Effect"] != "Allow" {
        return None;
    }
    let everywhere =
        st.get("NotResource").is_some() || strings(&st["Resource"]).iter().any(|r| r == "*");
    if !everywhere {
        return None;
    }
    if st.get("NotAction").is_some() {
        return Some("Allow with NotAction on every resource".into());
    }
    strings(&st["Action"])
        .into_iter()
        .find(|a| is_admin_action(a))
        .map(|a| format!("Allow `{a}` on every resource"))
}

/// The actions that let a principal widen its own access or another's: privilege
/// escalation. Each with what it does and where the path is documented:
/// - "RSL": Rhino Security Labs, "AWS IAM Privilege Escalation – Methods and Mitigation"
///   (the 21 methods, and their `aws_escalate` tool);
/// - "PMapper": NCC Group's principalmapper, its edge checks (`iam_edges`, `sts_edges`,
///   `lambda_edges`, `ec2_edges`, `cloudformation_edges`, `codebuild_edges`,
///   `sagemaker_edges`, `ssm_edges`, `autoscaling_edges`);
/// - "SAR": the Service Authorization Reference (IAM User Guide, "Actions, resources, and
///   condition keys"), for what each action writes.
///
/// Matched case-insensitively (IAM action names are), through `*` and `?` wildcards and
/// `NotAction`, on any resource but the role's own ARN.
pub const ESCALATION_ACTIONS: &[(&str, &str)] = &[
    // Writing permissions into a principal (RSL 8-13; PMapper iam_edges).
    ("iam:PutRolePolicy", "writes an inline policy into a role"),
    ("iam:PutUserPolicy", "writes an inline policy into a user"),
    ("iam:PutGroupPolicy", "writes an inline policy into a group"),
    (
        "iam:AttachRolePolicy",
        "attaches any managed policy to a role",
    ),
    (
        "iam:AttachUserPolicy",
        "attaches any managed policy to a user",
    ),
    (
        "iam:AttachGroupPolicy",
        "attaches any managed policy to a group",
    ),
    // Rewriting a managed policy in place (RSL 1-2).
    (
        "iam:CreatePolicyVersion",
        "rewrites a managed policy, made the default version at once",
    ),
    (
        "iam:SetDefaultPolicyVersion",
        "switches a managed policy to another of its versions",
    ),
    // Who may assume a role (RSL 14; PMapper sts_edges).
    (
        "iam:UpdateAssumeRolePolicy",
        "rewrites who may assume a role",
    ),
    // Boundaries and denials (SAR; trustsync's own denials of revoked sessions live in an
    // inline policy of the role).
    (
        "iam:PutRolePermissionsBoundary",
        "sets a role's permissions boundary",
    ),
    (
        "iam:DeleteRolePermissionsBoundary",
        "lifts a role's permissions boundary",
    ),
    (
        "iam:PutUserPermissionsBoundary",
        "sets a user's permissions boundary",
    ),
    (
        "iam:DeleteUserPermissionsBoundary",
        "lifts a user's permissions boundary",
    ),
    (
        "iam:DeleteRolePolicy",
        "removes a role's inline policy, a Deny included (trustsync's denial of revoked sessions)",
    ),
    (
        "iam:DetachRolePolicy",
        "detaches a managed policy from a role, a Deny included",
    ),
    // Credentials for a principal (RSL 4-6, 15; PMapper iam_edges).
    ("iam:CreateAccessKey", "makes long-lived keys for a user"),
    ("iam:CreateLoginProfile", "gives a user a console password"),
    (
        "iam:UpdateLoginProfile",
        "changes a user's console password",
    ),
    (
        "iam:CreateUser",
        "makes a user, to give permissions and keys to",
    ),
    (
        "iam:CreateRole",
        "makes a role, to give permissions and a trust to",
    ),
    (
        "iam:AddUserToGroup",
        "puts a user in a group and its permissions (RSL 7)",
    ),
    (
        "iam:CreateServiceLinkedRole",
        "makes a role a service acts as",
    ),
    // Acting as another role (PMapper sts_edges).
    ("sts:AssumeRole", "assumes any role that trusts the account"),
    // Passing a role to a service that then runs code as it (RSL 3, 16-21; PMapper
    // lambda, ec2, cloudformation, codebuild, sagemaker, glue, datapipeline edges): see
    // PASS_ROLE_SERVICES.
    ("iam:PassRole", "hands a role to a service"),
    // The organization (SAR, AWS Organizations): accounts, SCPs, delegated admins.
    (
        "organizations:AttachPolicy",
        "attaches a service control policy",
    ),
    (
        "organizations:DetachPolicy",
        "detaches a service control policy",
    ),
    (
        "organizations:CreatePolicy",
        "writes a service control policy",
    ),
    (
        "organizations:UpdatePolicy",
        "rewrites a service control policy",
    ),
    (
        "organizations:DeletePolicy",
        "deletes a service control policy",
    ),
    (
        "organizations:DisablePolicyType",
        "turns service control policies off",
    ),
    ("organizations:EnablePolicyType", "turns a policy type on"),
    (
        "organizations:CreateAccount",
        "makes an account with an admin role in it",
    ),
    (
        "organizations:InviteAccountToOrganization",
        "brings an account in",
    ),
    (
        "organizations:RemoveAccountFromOrganization",
        "takes an account out of every SCP",
    ),
    (
        "organizations:LeaveOrganization",
        "takes the account out of every SCP",
    ),
    (
        "organizations:MoveAccount",
        "moves an account under other SCPs",
    ),
    (
        "organizations:RegisterDelegatedAdministrator",
        "delegates a service's administration",
    ),
    (
        "organizations:EnableAWSServiceAccess",
        "lets a service act in every account",
    ),
    // IAM Identity Center and its identity store (SAR, sso and identitystore): people's
    // permission sets, assignments and group memberships.
    ("sso:CreatePermissionSet", "makes a permission set"),
    ("sso:UpdatePermissionSet", "changes a permission set"),
    (
        "sso:PutInlinePolicyToPermissionSet",
        "writes a permission set's policy",
    ),
    (
        "sso:AttachManagedPolicyToPermissionSet",
        "attaches a managed policy to a permission set",
    ),
    (
        "sso:AttachCustomerManagedPolicyReferenceToPermissionSet",
        "attaches a policy to a permission set",
    ),
    (
        "sso:DeleteInlinePolicyFromPermissionSet",
        "removes a permission set's policy, a Deny included",
    ),
    (
        "sso:PutPermissionsBoundaryToPermissionSet",
        "sets a permission set's boundary",
    ),
    (
        "sso:DeletePermissionsBoundaryFromPermissionSet",
        "lifts a permission set's boundary",
    ),
    (
        "sso:CreateAccountAssignment",
        "gives a person or group a permission set in an account",
    ),
    (
        "sso:ProvisionPermissionSet",
        "writes a permission set's roles into accounts",
    ),
    ("identitystore:CreateUser", "makes an identity-store user"),
    ("identitystore:UpdateUser", "changes an identity-store user"),
    (
        "identitystore:CreateGroupMembership",
        "puts a person in a group and its access",
    ),
    (
        "identitystore:DeleteGroupMembership",
        "takes a person out of a group, or trustsync's record of it",
    ),
    ("identitystore:CreateGroup", "makes a group"),
    ("identitystore:UpdateGroup", "changes a group"),
];

/// The services that run code or templates as a role passed to them: `iam:PassRole` with
/// one of these runs anything as that role (RSL 3, 16-21; PMapper's service edges).
pub const PASS_ROLE_SERVICES: &[&str] = &[
    "lambda:CreateFunction",
    "lambda:UpdateFunctionConfiguration",
    "ec2:RunInstances",
    "ec2:AssociateIamInstanceProfile",
    "ec2:ReplaceIamInstanceProfileAssociation",
    "autoscaling:CreateLaunchConfiguration",
    "ecs:RegisterTaskDefinition",
    "ecs:RunTask",
    "ecs:StartTask",
    "glue:CreateJob",
    "glue:UpdateJob",
    "glue:CreateDevEndpoint",
    "glue:UpdateDevEndpoint",
    "cloudformation:CreateStack",
    "cloudformation:UpdateStack",
    "cloudformation:CreateChangeSet",
    "cloudformation:CreateStackSet",
    "sagemaker:CreateNotebookInstance",
    "sagemaker:CreateTrainingJob",
    "sagemaker:CreateProcessingJob",
    "sagemaker:CreateEndpointConfig",
    "codebuild:CreateProject",
    "codebuild:UpdateProject",
    "datapipeline:CreatePipeline",
    "datapipeline:PutPipelineDefinition",
    "states:CreateStateMachine",
    "ssm:SendCommand",
];

/// Whether an IAM action pattern (`*` any run, `?` one character) matches an action,
/// case-insensitively, as IAM matches `Action` and `NotAction`.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    fn glob(p: &[u8], a: &[u8]) -> bool {
        let (mut pi, mut ai, mut star, mut mark) = (0, 0, None, 0);
        while ai < a.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi] == a[ai]) {
                pi += 1;
                ai += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some(pi);
                mark = ai;
                pi += 1;
            } else if let Some(s) = star {
                pi = s + 1;
                mark += 1;
                ai = mark;
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == b'*')
    }
    glob(
        pattern.to_ascii_lowercase().as_bytes(),
        action.to_ascii_lowercase().as_bytes(),
    )
}

/// Whether a statement's actions reach `action`: one of its `Action` patterns matches, or,
/// with `NotAction`, none of those do (an Allow with `NotAction` grants every action it
/// does not name).
fn statement_reaches(st: &Value, action: &str) -> bool {
    if let Some(not) = st.get("NotAction") {
        !strings(not).iter().any(|p| action_matches(p, action))
    } else {
        strings(&st["Action"])
            .iter()
            .any(|p| action_matches(p, action))
    }
}

/// The service whose ARNs an action's resources are (`sts:AssumeRole` acts on IAM roles).
fn resource_service(action: &str) -> &str {
    match action.split_once(':') {
        Some(("sts", _)) => "iam",
        Some((service, _)) => service,
        None => action,
    }
}

/// Whether a `Resource` entry may name a resource of `action`: `*`, or an ARN whose
/// service part matches the action's (`Action: "*"` on an S3 bucket grants no IAM write).
/// Anything not shaped as an ARN is taken to match.
fn resource_reaches(resource: &str, action: &str) -> bool {
    let parts: Vec<&str> = resource.splitn(4, ':').collect();
    match parts[..] {
        [arn, _, service, _] if action_matches(arn, "arn") => {
            action_matches(service, resource_service(action))
        }
        _ => true,
    }
}

/// How far a statement's resources reach for `action`: `None` when none of them can name a
/// resource of it; else whether they reach beyond the role itself (`NotResource`, no
/// `Resource`, or any but the role's own ARN: any account, any path, no wildcard, as role
/// names are unique in an account and IAM writes reach only the caller's own account),
/// and whether they reach any resource (a wildcard).
fn reach(st: &Value, action: &str, own_role: Option<&str>) -> Option<(bool, bool)> {
    if st.get("NotResource").is_some() {
        return Some((true, true));
    }
    let resources: Vec<String> = strings(&st["Resource"])
        .into_iter()
        .filter(|r| resource_reaches(r, action))
        .collect();
    if st.get("Resource").is_none() {
        return Some((true, true));
    }
    if resources.is_empty() {
        return None;
    }
    let beyond = resources.iter().any(|r| !is_own_role_arn(r, own_role));
    let any = resources.iter().any(|r| r.contains(['*', '?']));
    Some((beyond, any))
}

/// Whether a resource is the role's own ARN: an IAM role ARN ending in its name, with no
/// wildcard or policy variable.
fn is_own_role_arn(resource: &str, own_role: Option<&str>) -> bool {
    let Some(name) = own_role else {
        return false;
    };
    let parts: Vec<&str> = resource.splitn(6, ':').collect();
    let [arn, _partition, service, region, _account, rest] = parts[..] else {
        return false;
    };
    arn == "arn"
        && service == "iam"
        && region.is_empty()
        && !rest.contains(['*', '?', '$'])
        && rest.starts_with("role/")
        && rest.rsplit('/').next() == Some(name)
}

/// Unconditional denials on every resource, which take an action away whatever allows it.
fn denied_everywhere(statements: &[&Value], action: &str) -> bool {
    statements.iter().any(|st| {
        st["Effect"] == "Deny"
            && st.get("Condition").is_none()
            && st.get("NotResource").is_none()
            && strings(&st["Resource"]).iter().any(|r| r == "*")
            && statement_reaches(st, action)
    })
}

/// The escalations a set of statements grants beyond the role itself, per statement (its
/// index among `statements`): the actions, and why they escalate. `iam:PassRole` counts
/// only with one of [`PASS_ROLE_SERVICES`] somewhere in the same statements.
fn escalations(
    statements: &[&Value],
    own_role: Option<&str>,
    allowed: &[String],
) -> Vec<(usize, Vec<&'static str>, &'static str)> {
    let is_allowed = |a: &str| allowed.iter().any(|x| x.eq_ignore_ascii_case(a));
    let allows = |st: &Value| st["Effect"] == "Allow";
    let runs_code = PASS_ROLE_SERVICES.iter().find(|svc| {
        statements
            .iter()
            .any(|st| allows(st) && statement_reaches(st, svc) && reach(st, svc, None).is_some())
            && !denied_everywhere(statements, svc)
    });
    let mut out = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        if !allows(st) {
            continue;
        }
        let mut found: Vec<&'static str> = Vec::new();
        let mut why = "";
        for (action, what) in ESCALATION_ACTIONS {
            let Some((beyond, any)) = reach(st, action, own_role) else {
                continue;
            };
            if !beyond
                || (WILDCARD_ONLY.contains(action) && !any)
                || is_allowed(action)
                || !statement_reaches(st, action)
                || denied_everywhere(statements, action)
            {
                continue;
            }
            if *action == "iam:PassRole" && runs_code.is_none() {
                continue;
            }
            if found.is_empty() {
                why = what;
            }
            found.push(action);
        }
        if !found.is_empty() {
            out.push((i, found, why));
        }
    }
    out
}

/// Actions escalating only on a wildcard resource (or `NotResource`): passing or assuming
/// one named role is a reviewed decision; passing or assuming any role is not.
const WILDCARD_ONLY: &[&str] = &["sts:AssumeRole", "iam:PassRole"];

/// What the violations mean for a pass: mappings that may only revoke, providers that
/// are not registered, and the set without the invokers that break a rule.
#[derive(Debug, Clone, Default)]
pub struct Enforced {
    /// RoleMappings that break a rule, or use a provider that does: revocations only.
    pub blocked_mappings: BTreeSet<String>,
    /// IdentityProviders that break a rule: never created or changed.
    pub blocked_providers: BTreeSet<String>,
    /// AccessAssignments that break a rule: revocations only.
    pub blocked_assignments: BTreeSet<String>,
}

/// Applies the violations to a set: the invokers that break a rule are left out (their
/// statements are then removed like any trustsync no longer wants), and what else is
/// blocked is returned.
pub fn enforce(set: &mut PolicySet, violations: &[Violation]) -> Enforced {
    let mut e = Enforced::default();
    let mut invokers: BTreeSet<(String, usize)> = BTreeSet::new();
    for v in violations {
        match v.kind {
            "IdentityProvider" => {
                e.blocked_providers.insert(v.name.clone());
            }
            "RoleMapping" => {
                e.blocked_mappings.insert(v.name.clone());
            }
            "AccessAssignment" => {
                e.blocked_assignments.insert(v.name.clone());
            }
            _ => {
                if let Some(i) = v.invoker {
                    invokers.insert((v.name.clone(), i));
                }
            }
        }
    }
    for m in &set.role_mappings {
        if m.spec
            .provider
            .as_ref()
            .is_some_and(|p| e.blocked_providers.contains(p))
        {
            e.blocked_mappings.insert(m.name.clone());
        }
    }
    for f in &mut set.functions {
        let name = f.name.clone();
        let mut i = 0;
        f.spec.invokers.retain(|_| {
            let keep = !invokers.contains(&(name.clone(), i));
            i += 1;
            keep
        });
    }
    e
}

/// What a role or a permission set grants, against the rules on grants: managed policies
/// (`deniedManagedPolicies`, `allowedManagedPolicies`) and inline statements
/// (`noAdminStatements`, `noEscalationActions`; `own_role` is the role's name, whose own
/// ARN an escalation action may name). Each violation as (rule, field, message).
fn grant_violations(
    g: &Guardrails,
    (field, arns): (&str, &[String]),
    inline: &[(String, &Value)],
    own_role: Option<&str>,
) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for (i, arn) in arns.iter().enumerate() {
        let field = format!("{field}[{i}]");
        if g.denied_managed_policies
            .iter()
            .any(|d| d.eq_ignore_ascii_case(arn))
        {
            out.push((
                "deniedManagedPolicies",
                field,
                format!("`{arn}` grants administration; no mapping may attach it"),
            ));
        } else if let Some(allowed) = &g.allowed_managed_policies {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(arn)) {
                out.push((
                    "allowedManagedPolicies",
                    field,
                    format!("`{arn}` is not among the managed policies a mapping may attach"),
                ));
            }
        }
    }
    // Every inline statement of the role, with its field: `iam:PassRole` in one policy
    // and `lambda:CreateFunction` in another are one grant.
    let mut located: Vec<(String, Value)> = Vec::new();
    for (field, doc) in inline {
        for (i, st) in statements(doc).into_iter().enumerate() {
            located.push((format!("{field}.Statement[{i}]"), st));
        }
    }
    let mut admin = BTreeSet::new();
    if g.no_admin_statements {
        for (i, (field, st)) in located.iter().enumerate() {
            if let Some(why) = admin_statement(st) {
                admin.insert(i);
                out.push((
                    "noAdminStatements",
                    field.clone(),
                    format!("{why}: that is administration, not what a mapping grants"),
                ));
            }
        }
    }
    if g.no_escalation_actions {
        let all: Vec<&Value> = located.iter().map(|(_, st)| st).collect();
        for (i, actions, why) in escalations(&all, own_role, &g.allowed_escalation_actions) {
            if admin.contains(&i) {
                continue; // already refused as administration
            }
            let (field, st) = &located[i];
            let at = if st.get("NotAction").is_some() {
                "NotAction"
            } else {
                "Action"
            };
            let more = match actions.len() {
                1 => String::new(),
                n => format!(" and {} more escalation action(s)", n - 1),
            };
            let pass = if actions[0] == "iam:PassRole" {
                " to a service these statements let it run code in"
            } else {
                ""
            };
            out.push((
                "noEscalationActions",
                format!("{field}.{at}"),
                format!(
                    "grants `{}`{pass}{more} on {}: it {why}, so the role could widen its own access or another's (privilege escalation)",
                    actions[0],
                    if own_role.is_some() { "more than the role itself" } else { "other principals" },
                ),
            ));
        }
    }
    out
}

/// Every violation in the set.
pub fn check(set: &PolicySet, g: &Guardrails, known: &Known) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut push = |kind: &'static str,
                    name: &str,
                    origin: &super::Origin,
                    rule: &'static str,
                    field: String,
                    message: String| {
        let invoker = field
            .strip_prefix("spec.invokers[")
            .and_then(|r| r.split(']').next())
            .and_then(|i| i.parse().ok());
        out.push(Violation {
            kind,
            name: name.to_string(),
            rule,
            invoker,
            diagnostic: origin.diagnostic(field, format!("{message} (guardrails.{rule})")),
        });
    };
    let tenants: Option<BTreeSet<String>> = match (&g.allowed_tenants, &known.tenant) {
        (Some(list), _) => Some(list.iter().map(|t| t.to_ascii_lowercase()).collect()),
        (None, Some(t)) => Some(BTreeSet::from([t.to_ascii_lowercase()])),
        (None, None) => None,
    };
    for p in &set.providers {
        if let Some(allowed) = &tenants {
            if !allowed.contains(&p.spec.tenant_id.to_ascii_lowercase()) {
                push("IdentityProvider", &p.name, &p.origin, "allowedTenants", "spec.tenantId".into(), format!(
                    "tenant `{}` is not one this controller may trust ({}): a provider for another tenant would let its applications in",
                    p.spec.tenant_id,
                    allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    for a in &set.access_assignments {
        let p = &a.spec.permission_set;
        let inline: Vec<(String, &Value)> = p
            .inline_policy
            .iter()
            .map(|d| ("spec.permissionSet.inlinePolicy".to_string(), d))
            .collect();
        let managed = (
            "spec.permissionSet.managedPolicies",
            &p.managed_policies[..],
        );
        for (rule, field, message) in grant_violations(g, managed, &inline, None) {
            push("AccessAssignment", &a.name, &a.origin, rule, field, message);
        }
    }
    for m in &set.role_mappings {
        let r = &m.spec.role;
        let inline: Vec<(String, &Value)> = r
            .inline_policies
            .iter()
            .map(|(name, d)| (format!("spec.role.inlinePolicies.{name}"), d))
            .collect();
        let managed = ("spec.role.managedPolicies", &r.managed_policies[..]);
        for (rule, field, message) in grant_violations(g, managed, &inline, Some(&r.name)) {
            push("RoleMapping", &m.name, &m.origin, rule, field, message);
        }
        for (i, s) in m.spec.trusted_services.iter().enumerate() {
            if !g.trusted_services.iter().any(|t| t.eq_ignore_ascii_case(s)) {
                push(
                    "RoleMapping",
                    &m.name,
                    &m.origin,
                    "trustedServices",
                    format!("spec.trustedServices[{i}]"),
                    format!(
                        "`{s}` may not assume roles trustsync manages (allowed: {})",
                        g.trusted_services.join(", ")
                    ),
                );
            }
        }
    }
    let accounts: Option<BTreeSet<String>> = match (&g.invoker_accounts, &known.accounts) {
        (Some(list), _) => Some(list.iter().cloned().collect()),
        (None, Some(a)) => Some(a.clone()),
        (None, None) => None,
    };
    // Whether an invoker's account is one that may invoke; failing closed when the
    // managed accounts are not known (`validate` without listed accounts).
    let outside = |account: Option<&str>, what: &str| -> Option<String> {
        match (&accounts, account) {
            (Some(allowed), Some(a)) if allowed.contains(a) => None,
            (Some(allowed), a) => Some(format!(
                "{what} is {} outside the accounts that may invoke ({})",
                a.map_or("a principal".to_string(), |a| format!("in account {a},")),
                allowed.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            (None, _) => Some(format!(
                "{what} cannot be judged: the accounts that may invoke are not known here (list them in the config's `accounts.targets` or `guardrails.invokerAccounts`); refused until they are"
            )),
        }
    };
    for f in &set.functions {
        for (i, inv) in f.spec.invokers.iter().enumerate() {
            let field = |part: &str| format!("spec.invokers[{i}]{part}");
            if let Some(s) = &inv.service {
                if !g.invoker_services.iter().any(|t| t.eq_ignore_ascii_case(s)) {
                    push(
                        "FunctionAccess",
                        &f.name,
                        &f.origin,
                        "invokerServices",
                        field(".service"),
                        format!(
                            "`{s}` may not invoke functions trustsync manages (allowed: {})",
                            g.invoker_services.join(", ")
                        ),
                    );
                }
                if g.service_invokers_need_source
                    && inv.source_arn.is_none()
                    && inv.source_account.is_none()
                {
                    push("FunctionAccess", &f.name, &f.origin, "serviceInvokersNeedSource", field(".service"), format!(
                        "`{s}` with neither sourceArn nor sourceAccount lets any resource of that service, in any account, invoke the function (a confused deputy)"
                    ));
                }
            }
            if let Some(p) = &inv.principal {
                if let Some(why) = outside(account_of(p), &format!("`{p}`")) {
                    push(
                        "FunctionAccess",
                        &f.name,
                        &f.origin,
                        "invokerAccounts",
                        field(".principal"),
                        why,
                    );
                }
            }
            if let Some(a) = &inv.source_account {
                if let Some(why) = outside(Some(a), &format!("sourceAccount `{a}`")) {
                    push(
                        "FunctionAccess",
                        &f.name,
                        &f.origin,
                        "invokerAccounts",
                        field(".sourceAccount"),
                        format!(
                            "{why}: the service would invoke on behalf of that account's resources"
                        ),
                    );
                }
            }
            // A source ARN that names an account (an SNS topic, a rule; an S3 bucket's names
            // none) names one resource, which a review saw: judged when the accounts are
            // known (every plan), not refused when they are not.
            if let (Some(arn), Some(_)) = (&inv.source_arn, &accounts) {
                if let Some(a) = crate::model::arn::account_of(arn) {
                    if let Some(why) = outside(Some(a), &format!("sourceArn `{arn}`")) {
                        push(
                            "FunctionAccess",
                            &f.name,
                            &f.origin,
                            "invokerAccounts",
                            field(".sourceArn"),
                            why,
                        );
                    }
                }
            }
            let action = inv.action.as_deref().unwrap_or("lambda:InvokeFunction");
            if !g
                .invoker_actions
                .iter()
                .any(|a| a.eq_ignore_ascii_case(action))
            {
                push(
                    "FunctionAccess",
                    &f.name,
                    &f.origin,
                    "invokerActions",
                    field(".action"),
                    format!(
                        "`{action}` is more than invoking (allowed: {}): an invoker with `lambda:*` or `lambda:UpdateFunctionCode` could replace the function's code and run as its role",
                        g.invoker_actions.join(", ")
                    ),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_actions_are_wildcards_over_everything_or_iam_sts_organizations() {
        for a in [
            "*",
            "*:*",
            "iam:*",
            "IAM:Put*",
            "sts:Assume*",
            "organizations:*",
            "*:Get*",
        ] {
            assert!(is_admin_action(a), "{a}");
        }
        for a in ["s3:GetObject", "s3:*", "iam:PassRole", "lambda:Invoke*"] {
            assert!(!is_admin_action(a), "{a}");
        }
        assert_eq!(
            account_of("arn:aws:iam::111122223333:role/x"),
            Some("111122223333")
        );
        assert_eq!(account_of("111122223333"), Some("111122223333"));
        assert_eq!(account_of("*"), None);
    }

    /// The role's inline statements, as YAML (flow style), judged as `deployer`'s.
    fn refused(statements: &[&str], g: &Guardrails) -> Vec<(&'static str, String, String)> {
        let docs: Vec<Value> = statements
            .iter()
            .map(|st| {
                let st: Value = serde_yaml::from_str(st).unwrap();
                serde_json::json!({"Version": "2012-10-17", "Statement": [st]})
            })
            .collect();
        let inline: Vec<(String, &Value)> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("p{i}"), d))
            .collect();
        grant_violations(g, ("m", &[]), &inline, Some("deployer"))
    }

    /// Every escalation the issue lists, and its variants through wildcards, case and
    /// `NotAction`: each refused by the escalation rule alone (the admin rule off), and
    /// what stays within the role, or grants no escalation, passes.
    #[test]
    fn escalation_actions_are_refused_by_meaning_not_spelling() {
        let g = Guardrails {
            no_admin_statements: false,
            ..Guardrails::default()
        };
        let escalations: &[&[&str]] = &[
            &["{Effect: Allow, Action: iam:PutRolePolicy, Resource: '*'}"],
            &["{Effect: Allow, Action: iam:UpdateAssumeRolePolicy, Resource: 'arn:aws:iam::*:role/*'}"],
            &["{Effect: Allow, Action: sts:AssumeRole, Resource: '*'}"],
            &["{Effect: Allow, Action: [iam:PassRole, lambda:CreateFunction], Resource: '*'}"],
            // The pair across two policies of the role.
            &[
                "{Effect: Allow, Action: iam:PassRole, Resource: 'arn:aws:iam::111122223333:role/*'}",
                "{Effect: Allow, Action: lambda:Create*, Resource: '*'}",
            ],
            &["{Effect: Allow, Action: 'iam:*', Resource: '*'}"],
            &["{Effect: Allow, Action: 'iam:Put*', Resource: 'arn:aws:iam::111122223333:role/*'}"],
            &["{Effect: Allow, Action: 'iam:?ut*', Resource: 'arn:aws:iam::111122223333:role/*'}"],
            &["{Effect: Allow, Action: '*', Resource: 'arn:aws:iam::111122223333:user/*'}"],
            &["{Effect: Allow, Action: IAM:PUTROLEPOLICY, Resource: 'arn:aws:iam::111122223333:role/other'}"],
            &["{Effect: Allow, Action: iam:attachrolepolicy, Resource: '*'}"],
            &["{Effect: Allow, Action: iam:CreatePolicyVersion, Resource: '*'}"],
            &["{Effect: Allow, Action: iam:SetDefaultPolicyVersion, Resource: '*'}"],
            &["{Effect: Allow, Action: iam:CreateAccessKey, Resource: '*'}"],
            &["{Effect: Allow, Action: iam:CreateLoginProfile, Resource: '*'}"],
            &["{Effect: Allow, Action: iam:AddUserToGroup, Resource: '*'}"],
            &["{Effect: Allow, Action: iam:DeleteRolePermissionsBoundary, Resource: '*'}"],
            &["{Effect: Allow, Action: 'organizations:*', Resource: '*'}"],
            &["{Effect: Allow, Action: 'sso:*', Resource: '*'}"],
            &["{Effect: Allow, Action: identitystore:CreateGroupMembership, Resource: '*'}"],
            // NotAction: everything but S3, on IAM roles.
            &["{Effect: Allow, NotAction: 's3:*', Resource: 'arn:aws:iam::111122223333:role/*'}"],
            // NotAction that leaves one escalation out of its list.
            &["{Effect: Allow, NotAction: ['iam:Put*', 'iam:Attach*', 'iam:Create*', 'iam:Delete*', 'iam:Update*', 'iam:Set*', 'iam:Add*', 'iam:PassRole', 'sts:*', 'organizations:*', 'sso:*', 'identitystore:*'], Resource: '*'}"],
            &["{Effect: Allow, Action: iam:PutRolePolicy, NotResource: 'arn:aws:iam::111122223333:role/trustsync/deployer'}"],
            // The role's own ARN, and another beside it.
            &["{Effect: Allow, Action: iam:PutRolePolicy, Resource: ['arn:aws:iam::111122223333:role/trustsync/deployer', 'arn:aws:iam::111122223333:role/trustsync/admin']}"],
            &["{Effect: Allow, Action: iam:PutRolePolicy, Resource: 'arn:aws:iam::111122223333:role/trustsync/deployer*'}"],
        ];
        let mut caught = 0;
        for (n, case) in escalations.iter().enumerate() {
            let v = refused(case, &g);
            if v.iter().any(|(rule, _, _)| *rule == "noEscalationActions") {
                caught += 1;
            } else {
                println!("not refused: case {n}: {case:?}");
            }
        }
        println!(
            "independent checks: {caught} of {} escalation cases refused",
            escalations.len()
        );
        assert_eq!(caught, escalations.len());

        let fine: &[&[&str]] = &[
            &["{Effect: Allow, Action: [s3:GetObject, 's3:List*'], Resource: '*'}"],
            // Its own ARN, in any account.
            &["{Effect: Allow, Action: [iam:PutRolePolicy, iam:UpdateAssumeRolePolicy], Resource: 'arn:aws:iam::*:role/trustsync/deployer'}"],
            // One named role to assume or pass (a reviewed decision).
            &["{Effect: Allow, Action: sts:AssumeRole, Resource: 'arn:aws:iam::111122223333:role/reporting-reader'}"],
            &["{Effect: Allow, Action: [iam:PassRole, lambda:CreateFunction, lambda:UpdateFunctionConfiguration], Resource: ['arn:aws:iam::111122223333:role/payments-runtime', 'arn:aws:lambda:*:111122223333:function:payments-*']}"],
            // PassRole on any role, but no service to pass it to.
            &["{Effect: Allow, Action: iam:PassRole, Resource: '*'}"],
            // Everything, but only on a bucket: no IAM write reaches it.
            &["{Effect: Allow, Action: '*', Resource: 'arn:aws:s3:::payments-data/*'}"],
            // Read-only IAM.
            &["{Effect: Allow, Action: ['iam:Get*', 'iam:List*'], Resource: '*'}"],
            // An escalation taken away by an unconditional Deny.
            &[
                "{Effect: Allow, Action: 'iam:Put*', Resource: 'arn:aws:iam::111122223333:role/*'}",
                "{Effect: Deny, Action: 'iam:*', Resource: '*'}",
            ],
            &["{Effect: Deny, Action: '*', Resource: '*'}"],
        ];
        for case in fine {
            let v = refused(case, &g);
            assert!(v.is_empty(), "{case:?}: {v:?}");
        }
        // One escalation allowed by the config.
        let allowing = Guardrails {
            allowed_escalation_actions: vec!["iam:CreateAccessKey".into()],
            ..g.clone()
        };
        assert!(refused(
            &["{Effect: Allow, Action: iam:CreateAccessKey, Resource: '*'}"],
            &allowing
        )
        .is_empty());
        // The rule off.
        let off = Guardrails {
            no_escalation_actions: false,
            ..g.clone()
        };
        assert!(refused(
            &["{Effect: Allow, Action: iam:PutRolePolicy, Resource: '*'}"],
            &off
        )
        .is_empty());
    }

    #[test]
    fn action_patterns_match_as_iam_does() {
        assert!(action_matches("iam:*", "iam:PutRolePolicy"));
        assert!(action_matches("IAM:put*POLICY", "iam:PutRolePolicy"));
        assert!(action_matches("iam:?ut*", "iam:PutUserPolicy"));
        assert!(action_matches("*", "sts:AssumeRole"));
        assert!(action_matches("*:*Role", "sts:AssumeRole"));
        assert!(!action_matches("iam:Put", "iam:PutRolePolicy"));
        assert!(!action_matches("iam:?ut", "iam:PutRolePolicy"));
        assert!(!action_matches("s3:*", "iam:PutRolePolicy"));
    }
}
