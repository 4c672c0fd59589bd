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

mod grants;

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Diagnostic, FunctionAccessSpec, Invoker, Named, Origin, PolicySet, RoleMappingSpec};
pub use grants::action_matches;
use grants::grant_violations;

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
/// Every violation in the set.
pub fn check(set: &PolicySet, g: &Guardrails, known: &Known) -> Vec<Violation> {
    let mut out = Found::default();
    provider_violations(set, g, known, &mut out);
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
            out.push("AccessAssignment", &a.name, &a.origin, rule, field, message);
        }
    }
    for m in &set.role_mappings {
        mapping_violations(m, g, &mut out);
    }
    let accounts = InvokerAccounts {
        allowed: match (&g.invoker_accounts, &known.accounts) {
            (Some(list), _) => Some(list.iter().cloned().collect()),
            (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        },
    };
    for f in &set.functions {
        for (i, inv) in f.spec.invokers.iter().enumerate() {
            invoker_violations(f, i, inv, g, &accounts, &mut out);
        }
    }
    out.0
}

/// The violations found so far, each with its rule named in its message.
#[derive(Default)]
struct Found(Vec<Violation>);

impl Found {
    fn push(
        &mut self,
        kind: &'static str,
        name: &str,
        origin: &Origin,
        rule: &'static str,
        field: String,
        message: String,
    ) {
        let invoker = field
            .strip_prefix("spec.invokers[")
            .and_then(|r| r.split(']').next())
            .and_then(|i| i.parse().ok());
        self.0.push(Violation {
            kind,
            name: name.to_string(),
            rule,
            invoker,
            diagnostic: origin.diagnostic(field, format!("{message} (guardrails.{rule})")),
        });
    }
}

/// `allowedTenants`: each provider's tenant is one this controller may trust.
fn provider_violations(set: &PolicySet, g: &Guardrails, known: &Known, out: &mut Found) {
    let tenants: Option<BTreeSet<String>> = match (&g.allowed_tenants, &known.tenant) {
        (Some(list), _) => Some(list.iter().map(|t| t.to_ascii_lowercase()).collect()),
        (None, Some(t)) => Some(BTreeSet::from([t.to_ascii_lowercase()])),
        (None, None) => None,
    };
    for p in &set.providers {
        if let Some(allowed) = &tenants {
            if !allowed.contains(&p.spec.tenant_id.to_ascii_lowercase()) {
                out.push("IdentityProvider", &p.name, &p.origin, "allowedTenants", "spec.tenantId".into(), format!(
                    "tenant `{}` is not one this controller may trust ({}): a provider for another tenant would let its applications in",
                    p.spec.tenant_id,
                    allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
}

/// A role mapping's grants, then its trusted services (`trustedServices`).
fn mapping_violations(m: &Named<RoleMappingSpec>, g: &Guardrails, out: &mut Found) {
    let r = &m.spec.role;
    let inline: Vec<(String, &Value)> = r
        .inline_policies
        .iter()
        .map(|(name, d)| (format!("spec.role.inlinePolicies.{name}"), d))
        .collect();
    let managed = ("spec.role.managedPolicies", &r.managed_policies[..]);
    for (rule, field, message) in grant_violations(g, managed, &inline, Some(&r.name)) {
        out.push("RoleMapping", &m.name, &m.origin, rule, field, message);
    }
    for (i, s) in m.spec.trusted_services.iter().enumerate() {
        if !g.trusted_services.iter().any(|t| t.eq_ignore_ascii_case(s)) {
            out.push(
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

/// The accounts whose principals and resources may invoke, when known.
struct InvokerAccounts {
    allowed: Option<BTreeSet<String>>,
}

impl InvokerAccounts {
    /// Whether an invoker's account is one that may invoke; failing closed when the
    /// managed accounts are not known (`validate` without listed accounts).
    fn outside(&self, account: Option<&str>, what: &str) -> Option<String> {
        match (&self.allowed, account) {
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
    }
}

/// One invoker of a function: its service, its accounts, its action, in that order.
fn invoker_violations(
    f: &Named<FunctionAccessSpec>,
    i: usize,
    inv: &Invoker,
    g: &Guardrails,
    accounts: &InvokerAccounts,
    out: &mut Found,
) {
    let field = |part: &str| format!("spec.invokers[{i}]{part}");
    if let Some(s) = &inv.service {
        if !g.invoker_services.iter().any(|t| t.eq_ignore_ascii_case(s)) {
            out.push(
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
            out.push("FunctionAccess", &f.name, &f.origin, "serviceInvokersNeedSource", field(".service"), format!(
                "`{s}` with neither sourceArn nor sourceAccount lets any resource of that service, in any account, invoke the function (a confused deputy)"
            ));
        }
    }
    invoker_account_violations(f, inv, accounts, &field, out);
    let action = inv.action.as_deref().unwrap_or("lambda:InvokeFunction");
    if !g
        .invoker_actions
        .iter()
        .any(|a| a.eq_ignore_ascii_case(action))
    {
        out.push(
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

/// `invokerAccounts`: an invoker's principal, its source account and its source ARN's
/// account.
fn invoker_account_violations(
    f: &Named<FunctionAccessSpec>,
    inv: &Invoker,
    accounts: &InvokerAccounts,
    field: &dyn Fn(&str) -> String,
    out: &mut Found,
) {
    if let Some(p) = &inv.principal {
        if let Some(why) = accounts.outside(account_of(p), &format!("`{p}`")) {
            out.push(
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
        if let Some(why) = accounts.outside(Some(a), &format!("sourceAccount `{a}`")) {
            out.push(
                "FunctionAccess",
                &f.name,
                &f.origin,
                "invokerAccounts",
                field(".sourceAccount"),
                format!("{why}: the service would invoke on behalf of that account's resources"),
            );
        }
    }
    // A source ARN that names an account (an SNS topic, a rule; an S3 bucket's names
    // none) names one resource, which a review saw: judged when the accounts are
    // known (every plan), not refused when they are not.
    if let (Some(arn), Some(_)) = (&inv.source_arn, &accounts.allowed) {
        if let Some(a) = crate::model::arn::account_of(arn) {
            if let Some(why) = accounts.outside(Some(a), &format!("sourceArn `{arn}`")) {
                out.push(
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
}

#[cfg(test)]
mod tests;
