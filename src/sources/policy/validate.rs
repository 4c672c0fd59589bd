//! Semantic checks over a loaded repository: names, references, ARNs, IAM naming rules,
//! policy documents and the AWS limits that would make an apply fail half-way.

use std::collections::{BTreeMap, HashMap};

use super::{Diagnostic, Named, PolicySet, Unreadable};
use crate::config::Limits;
use crate::model::arn::ArnParts;
use crate::model::iam_policy;

/// Every problem in the set, in file order.
#[cfg(test)]
pub fn validate(set: &PolicySet, limits: &Limits) -> Vec<Diagnostic> {
    validate_with(set, limits, &Unreadable::new())
}

/// The documents the checks look up by name: the set's, and those that are there but
/// could not be read (their own problems are reported; a reference to one is not
/// reported again as a missing document).
struct Known<'a> {
    set: &'a PolicySet,
    unreadable: &'a Unreadable,
}

impl Known<'_> {
    fn is_unreadable(&self, kind: &str, name: &str) -> bool {
        self.unreadable
            .contains(&(kind.to_string(), name.to_string()))
    }

    /// No role mapping of this name, readable or not.
    fn lacks_role_mapping(&self, name: &str) -> bool {
        self.set.role_mapping(name).is_none() && !self.is_unreadable("RoleMapping", name)
    }

    /// No identity provider of this name, readable or not.
    fn lacks_provider(&self, name: &str) -> bool {
        self.set.provider(name).is_none() && !self.is_unreadable("IdentityProvider", name)
    }
}

/// Every problem in the set, in file order; references to `unreadable` documents are not
/// reported as missing.
pub fn validate_with(set: &PolicySet, limits: &Limits, unreadable: &Unreadable) -> Vec<Diagnostic> {
    let known = Known { set, unreadable };
    let mut d = Vec::new();
    check_names(&set.providers, &mut d);
    check_names(&set.role_mappings, &mut d);
    check_names(&set.functions, &mut d);

    let mut issuers: HashMap<String, Vec<&Named<super::IdentityProviderSpec>>> = HashMap::new();
    for p in &set.providers {
        check_provider(p, &mut d);
        check_accounts(p.spec.accounts.as_ref(), &p.origin, &mut d);
        let same = issuers.entry(p.spec.issuer_url()).or_default();
        if let Some(other) = same
            .iter()
            .find(|o| may_overlap(o.spec.accounts.as_ref(), p.spec.accounts.as_ref()))
        {
            d.push(p.origin.diagnostic(
                "spec.tenantId",
                format!(
                    "IdentityProvider `{}` already declares issuer {} in the same accounts",
                    super::short(&other.name),
                    p.spec.issuer_url()
                ),
            ));
        }
        same.push(p);
    }

    let mut role_owner: HashMap<String, Vec<&Named<super::RoleMappingSpec>>> = HashMap::new();
    for m in &set.role_mappings {
        check_role_mapping(&known, m, limits, &mut d);
        check_accounts(m.spec.accounts.as_ref(), &m.origin, &mut d);
        // IAM role names are unique per account, case-insensitively.
        let same = role_owner
            .entry(m.spec.role.name.to_ascii_lowercase())
            .or_default();
        if let Some(other) = same
            .iter()
            .find(|o| may_overlap(o.spec.accounts.as_ref(), m.spec.accounts.as_ref()))
        {
            d.push(m.origin.diagnostic(
                "spec.role.name",
                format!(
                    "role `{}` is already claimed by RoleMapping `{}` in the same accounts",
                    m.spec.role.name,
                    super::short(&other.name)
                ),
            ));
        }
        same.push(m);
    }

    let mut functions: HashMap<(String, Option<String>), Vec<&Named<super::FunctionAccessSpec>>> =
        HashMap::new();
    for f in &set.functions {
        check_function(&known, f, limits, &mut d);
        check_accounts(f.spec.accounts.as_ref(), &f.origin, &mut d);
        check_function_place(f, &mut d);
        let key = (
            function_name(&f.spec.function).to_string(),
            f.spec.qualifier.clone(),
        );
        let same = functions.entry(key).or_default();
        if let Some(other) = same.iter().find(|o| same_function_place(&o.spec, &f.spec)) {
            d.push(f.origin.diagnostic(
                "spec.function",
                format!(
                    "function `{}` is already managed by FunctionAccess `{}`",
                    f.spec.function,
                    super::short(&other.name)
                ),
            ));
        }
        same.push(f);
    }
    check_names(&set.access_assignments, &mut d);
    let mut permission_sets: HashMap<String, &Named<super::AccessAssignmentSpec>> = HashMap::new();
    for a in &set.access_assignments {
        if set.role_mappings.iter().any(|m| m.name == a.name)
            || set.functions.iter().any(|f| f.name == a.name)
        {
            d.push(a.origin.diagnostic(
                "metadata.name",
                format!("`{}` is already the name of a RoleMapping or FunctionAccess: the audit log and `--release` name documents by name", a.name),
            ));
        }
        check_group(&a.spec.group, &a.origin, &mut d);
        check_accounts(a.spec.accounts.as_ref(), &a.origin, &mut d);
        check_permission_set(&a.spec.permission_set, &a.origin, &mut d);
        // Permission set names are unique in the instance, case-insensitively; two
        // documents writing one set would undo each other every pass.
        let key = a.spec.permission_set.name.to_ascii_lowercase();
        if let Some(other) = permission_sets.get(&key) {
            d.push(a.origin.diagnostic(
                "spec.permissionSet.name",
                format!(
                    "permission set `{}` is already written by AccessAssignment `{}`",
                    a.spec.permission_set.name,
                    super::short(&other.name)
                ),
            ));
        } else {
            permission_sets.insert(key, a);
        }
    }
    d.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    d
}

/// IAM Identity Center's rules for a permission set (API reference, `CreatePermissionSet`,
/// `AttachManagedPolicyToPermissionSet`, `PutInlinePolicyToPermissionSet`; quotas from the
/// user guide's "IAM Identity Center quotas").
fn check_permission_set(p: &super::PermissionSetSpec, o: &super::Origin, d: &mut Vec<Diagnostic>) {
    if p.name.is_empty() || p.name.len() > 32 || !p.name.chars().all(is_iam_name_char) {
        d.push(o.diagnostic(
            "spec.permissionSet.name",
            format!(
                "`{}` must be 1 to 32 letters, digits or +=,.@_- (permission set name rules)",
                p.name
            ),
        ));
    }
    if let Some(desc) = &p.description {
        let budget = PERMISSION_SET_DESCRIPTION - super::MARK_BUDGET;
        if desc.chars().count() > budget {
            d.push(o.diagnostic(
                "spec.permissionSet.description",
                format!("at most {budget} characters (700, less trustsync's mark)"),
            ));
        }
    }
    match p.session_seconds() {
        Some(s) if (3600..=43200).contains(&s) => {}
        _ => d.push(o.diagnostic(
            "spec.permissionSet.sessionDuration",
            format!(
                "`{}` must be an ISO 8601 duration from PT1H to PT12H (e.g. PT8H)",
                p.session_duration
            ),
        )),
    }
    let attached = p.managed_policies.len() + p.customer_managed_policies.len();
    if attached > PERMISSION_SET_POLICIES {
        d.push(o.diagnostic(
            "spec.permissionSet.managedPolicies",
            format!("{attached} managed and customer-managed policies exceed the limit of {PERMISSION_SET_POLICIES} per permission set"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, arn) in p.managed_policies.iter().enumerate() {
        let field = format!("spec.permissionSet.managedPolicies[{i}]");
        if !matches!(iam_arn_parts(arn), Some(("aws", res)) if res.starts_with("policy/") && res.len() > 7)
        {
            d.push(o.diagnostic(
                field,
                format!("`{arn}` is not an AWS managed policy ARN (arn:aws:iam::aws:policy/...); name a policy of your own under `customerManagedPolicies`"),
            ));
        } else if !seen.insert(arn) {
            d.push(o.diagnostic(field, format!("`{arn}` is listed twice")));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in p.customer_managed_policies.iter().enumerate() {
        let field = format!("spec.permissionSet.customerManagedPolicies[{i}]");
        if c.name.is_empty() || c.name.len() > 128 || !c.name.chars().all(is_iam_name_char) {
            d.push(o.diagnostic(
                format!("{field}.name"),
                format!("`{}` must be 1 to 128 letters, digits or +=,.@_-", c.name),
            ));
        }
        if !valid_path(&c.path) {
            d.push(o.diagnostic(
                format!("{field}.path"),
                format!("`{}` must start and end with `/`", c.path),
            ));
        }
        if !seen.insert((&c.name, &c.path)) {
            d.push(o.diagnostic(field, format!("`{}{}` is listed twice", c.path, c.name)));
        }
    }
    if let Some(b) = &p.permissions_boundary {
        let field = "spec.permissionSet.permissionsBoundary";
        match (&b.managed_policy_arn, &b.customer_managed_policy) {
            (Some(arn), None) => {
                if !matches!(iam_arn_parts(arn), Some(("aws", res)) if res.starts_with("policy/") && res.len() > 7)
                {
                    d.push(o.diagnostic(
                        format!("{field}.managedPolicyArn"),
                        format!("`{arn}` is not an AWS managed policy ARN (arn:aws:iam::aws:policy/...); name a policy of your own as `customerManagedPolicy`"),
                    ));
                }
            }
            (None, Some(c)) => {
                if c.name.is_empty() || c.name.len() > 128 || !c.name.chars().all(is_iam_name_char)
                {
                    d.push(o.diagnostic(
                        format!("{field}.customerManagedPolicy.name"),
                        format!("`{}` must be 1 to 128 letters, digits or +=,.@_-", c.name),
                    ));
                }
                if !valid_path(&c.path) {
                    d.push(o.diagnostic(
                        format!("{field}.customerManagedPolicy.path"),
                        format!("`{}` must start and end with `/`", c.path),
                    ));
                }
            }
            _ => d.push(o.diagnostic(
                field,
                "set exactly one of `managedPolicyArn` and `customerManagedPolicy`",
            )),
        }
    }
    if let Some(doc) = &p.inline_policy {
        let field = "spec.permissionSet.inlinePolicy";
        for (path, msg) in iam_policy::check_document(doc) {
            let f = if path.is_empty() {
                field.to_string()
            } else {
                format!("{field}.{path}")
            };
            d.push(o.diagnostic(f, msg));
        }
        let budget = PERMISSION_SET_INLINE - super::DENIAL_RESERVE;
        let len = iam_policy::iam_length(doc);
        if len > budget {
            d.push(o.diagnostic(
                field,
                format!("{len} characters; a permission set's inline policy may have {PERMISSION_SET_INLINE}, of which trustsync keeps {} for the denials of departed people's sessions", super::DENIAL_RESERVE),
            ));
        }
    }
}

/// A permission set's description, at most (`CreatePermissionSet`).
const PERMISSION_SET_DESCRIPTION: usize = 700;

/// A permission set's inline policy, at most (`PutInlinePolicyToPermissionSet`: 32,768).
const PERMISSION_SET_INLINE: usize = 32_768;

/// AWS managed and customer-managed policies per permission set (the quotas page: 20,
/// counted together here, which is the stricter reading).
const PERMISSION_SET_POLICIES: usize = 20;

/// An account selector's ids are account ids, and it selects something.
fn check_accounts(
    selector: Option<&super::AccountSelector>,
    o: &super::Origin,
    d: &mut Vec<Diagnostic>,
) {
    let Some(sel) = selector else {
        return;
    };
    if sel.ids.is_empty() && sel.labels.is_empty() {
        d.push(o.diagnostic(
            "spec.accounts",
            "an empty selector: name account `ids` or `labels`, or remove it to mean every account",
        ));
    }
    for (i, id) in sel.ids.iter().enumerate() {
        if !is_account(id) {
            d.push(o.diagnostic(
                format!("spec.accounts.ids[{i}]"),
                format!("`{id}` is not a 12-digit account id"),
            ));
        }
    }
}

/// A function by ARN names its account and region; by name, `regions` are region names.
fn check_function_place(f: &Named<super::FunctionAccessSpec>, d: &mut Vec<Diagnostic>) {
    let (o, s) = (&f.origin, &f.spec);
    if s.function.starts_with("arn:") {
        if s.accounts.is_some() {
            d.push(o.diagnostic(
                "spec.accounts",
                "the function ARN already names its account; remove `accounts` or name the function",
            ));
        }
        if !s.regions.is_empty() {
            d.push(o.diagnostic(
                "spec.regions",
                "the function ARN already names its region; remove `regions` or name the function",
            ));
        }
        let named = ArnParts::parse(&s.function).filter(|a| a.function_name().is_some());
        if named
            .is_some_and(|a| !crate::model::account::is_region(a.region) || !is_account(a.account))
        {
            d.push(o.diagnostic(
                "spec.function",
                format!(
                    "`{}` must name a region and a 12-digit account (arn:aws:lambda:REGION:ACCOUNT:function:NAME)",
                    s.function
                ),
            ));
        }
    }
    for (i, r) in s.regions.iter().enumerate() {
        if !crate::model::account::is_region(r) {
            d.push(o.diagnostic(
                format!("spec.regions[{i}]"),
                format!("`{r}` is not an AWS region name"),
            ));
        }
    }
}

/// False only when two selectors provably pick different accounts (both list ids, and
/// none in common); labels cannot be compared without the accounts.
fn may_overlap(a: Option<&super::AccountSelector>, b: Option<&super::AccountSelector>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if !a.ids.is_empty() && !b.ids.is_empty() => {
            a.ids.iter().any(|i| b.ids.contains(i))
        }
        _ => true,
    }
}

/// True when two documents could manage the same function: the same ARN, or names whose
/// accounts and regions may meet.
fn same_function_place(a: &super::FunctionAccessSpec, b: &super::FunctionAccessSpec) -> bool {
    let arn = |s: &super::FunctionAccessSpec| {
        s.function
            .starts_with("arn:")
            .then(|| crate::model::arn::unqualified(&s.function).to_string())
    };
    match (arn(a), arn(b)) {
        (Some(x), Some(y)) => x == y,
        (Some(_), None) | (None, Some(_)) => true,
        (None, None) => {
            may_overlap(a.accounts.as_ref(), b.accounts.as_ref())
                && (a.regions.is_empty()
                    || b.regions.is_empty()
                    || a.regions.iter().any(|r| b.regions.contains(r)))
        }
    }
}

/// A provider's tenant id, audiences, audience condition key and thumbprints.
fn check_provider(p: &Named<super::IdentityProviderSpec>, d: &mut Vec<Diagnostic>) {
    let o = &p.origin;
    if !is_guid(&p.spec.tenant_id) {
        d.push(o.diagnostic(
            "spec.tenantId",
            format!("`{}` is not a GUID", p.spec.tenant_id),
        ));
    }
    if p.spec.audiences.is_empty() {
        d.push(o.diagnostic("spec.audiences", "at least one audience is needed"));
    }
    for (i, a) in p.spec.audiences.iter().enumerate() {
        if a.is_empty() || a.len() > 255 {
            d.push(o.diagnostic(
                format!("spec.audiences[{i}]"),
                "must be 1 to 255 characters",
            ));
        }
    }
    if !matches!(
        p.spec.audience_condition_key.as_str(),
        "aud" | "oaud" | "azp"
    ) {
        d.push(o.diagnostic(
            "spec.audienceConditionKey",
            format!(
                "`{}` is not a condition key IAM supports for OIDC; use aud, oaud or azp",
                p.spec.audience_condition_key
            ),
        ));
    }
    check_token_form(p, d);
    for (i, t) in p.spec.allow_applications_owned_by.iter().enumerate() {
        if !is_guid(t) {
            d.push(o.diagnostic(
                format!("spec.allowApplicationsOwnedBy[{i}]"),
                format!("`{t}` is not a tenant id (GUID)"),
            ));
        }
    }
    for (i, t) in p.spec.thumbprints.iter().enumerate() {
        if t.len() != 40 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
            d.push(o.diagnostic(
                format!("spec.thumbprints[{i}]"),
                "must be 40 hex digits (SHA-1)",
            ));
        }
    }
}

/// Refuses a provider no real Entra app-only token can satisfy (docs/entra-setup.md, "Why
/// v1 tokens"):
///
/// - v2: the token's `aud` is always the resource application's client id and its `azp` the
///   caller's. AWS documents that for a token carrying `azp` the `<issuer>:aud` key is
///   matched against `azp` (and `:oaud` against `aud`), and field reports for Entra v2 show
///   the provider's client-id check using `azp` too (aws/aws-sdk-net 3071, 3100): the
///   resource's id in the list never matches a group member's token.
/// - v1 carries no `azp`, so `oaud` and `azp` have nothing to match: only `aud` can.
fn check_token_form(p: &Named<super::IdentityProviderSpec>, d: &mut Vec<Diagnostic>) {
    let o = &p.origin;
    match p.spec.token_version {
        super::TokenVersion::V2 => {
            d.push(o.diagnostic(
                "spec.tokenVersion",
                "v2 cannot accept a workload's token: an Entra v2 access token carries azp (the calling workload's client id) besides aud (the resource's client id), and STS matches the provider's client ids and <issuer>:aud against azp for such tokens, so no group member's token is accepted. Use `tokenVersion: v1` and leave the resource application's accessTokenAcceptedVersion (requestedAccessTokenVersion) null or 1 (docs/entra-setup.md, \"Why v1 tokens\")",
            ));
            for (i, a) in p.spec.audiences.iter().enumerate() {
                if !is_guid(a) {
                    d.push(o.diagnostic(
                        format!("spec.audiences[{i}]"),
                        format!("`{a}`: the aud of a v2 access token is always the resource application's client id (a GUID), never an Application ID URI"),
                    ));
                }
            }
        }
        super::TokenVersion::V1 if p.spec.audience_condition_key != "aud" => {
            d.push(o.diagnostic(
                "spec.audienceConditionKey",
                format!(
                    "`{}` cannot match a v1 token: v1 access tokens carry no azp, so IAM has only aud to compare; use aud",
                    p.spec.audience_condition_key
                ),
            ));
        }
        super::TokenVersion::V1 => {}
    }
}

fn check_names<S>(docs: &[Named<S>], d: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &Named<S>> = HashMap::new();
    for doc in docs {
        let n = &doc.name;
        let ok = !n.is_empty()
            && n.len() <= 63
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !n.starts_with('-')
            && !n.ends_with('-');
        if !ok {
            d.push(doc.origin.diagnostic(
                "metadata.name",
                format!("`{n}` must be 1 to 63 lower-case letters, digits or `-`, not starting or ending with `-`"),
            ));
        }
        if let Some(first) = seen.insert(n, doc) {
            let (line, _) = first.origin.locate("metadata.name");
            d.push(doc.origin.diagnostic(
                "metadata.name",
                format!(
                    "duplicate name `{n}`; first defined at {}:{line}",
                    first.origin.file.display()
                ),
            ));
        }
    }
}

fn check_role_mapping(
    set: &Known<'_>,
    m: &Named<super::RoleMappingSpec>,
    limits: &Limits,
    d: &mut Vec<Diagnostic>,
) {
    let o = &m.origin;
    check_trust_source(set, &m.spec, o, d);
    check_role(&m.spec.role, limits, o, d);
    check_role_policies(&m.spec.role, limits, o, d);
    check_tags(&m.spec.role.tags, limits, o, d);
}

/// Who may assume the role: a provider with a group (one selector), or AWS services.
fn check_trust_source(
    set: &Known<'_>,
    s: &super::RoleMappingSpec,
    o: &super::Origin,
    d: &mut Vec<Diagnostic>,
) {
    match (&s.provider, &s.group) {
        (None, None) if s.trusted_services.is_empty() => d.push(o.diagnostic(
            "spec",
            "nothing may assume this role: set `provider` and `group`, or `trustedServices`",
        )),
        (Some(_), None) => {
            d.push(o.diagnostic("spec.group", "`provider` is set but `group` is missing"))
        }
        (None, Some(_)) => {
            d.push(o.diagnostic("spec.provider", "`group` is set but `provider` is missing"))
        }
        _ => {}
    }
    if let Some(p) = &s.provider {
        if set.lacks_provider(p) {
            d.push(o.diagnostic("spec.provider", format!("no IdentityProvider named `{p}`")));
        }
    }
    if let Some(g) = &s.group {
        check_group(g, o, d);
    }
    for (i, svc) in s.trusted_services.iter().enumerate() {
        if !is_service_principal(svc) {
            d.push(o.diagnostic(
                format!("spec.trustedServices[{i}]"),
                format!("`{svc}` is not an AWS service principal (like lambda.amazonaws.com)"),
            ));
        }
    }
}

/// A group selector names exactly one group: a GUID, or a display name.
fn check_group(g: &super::GroupSelector, o: &super::Origin, d: &mut Vec<Diagnostic>) {
    match (&g.id, &g.display_name) {
        (Some(id), None) if !is_guid(id) => d.push(o.diagnostic(
            "spec.group.id",
            format!("`{id}` is not a GUID (an Entra object id)"),
        )),
        (Some(_), None) => {}
        (None, Some(name)) if name.trim().is_empty() => {
            d.push(o.diagnostic("spec.group.displayName", "must not be empty"))
        }
        (None, Some(_)) => {}
        _ => d.push(o.diagnostic("spec.group", "set exactly one of `id` and `displayName`")),
    }
}

/// The role's IAM settings: name, path (under the controller's), description, session
/// duration, permissions boundary.
fn check_role(r: &super::RoleSpec, limits: &Limits, o: &super::Origin, d: &mut Vec<Diagnostic>) {
    if r.name.is_empty() || r.name.len() > 64 || !r.name.chars().all(is_iam_name_char) {
        d.push(o.diagnostic(
            "spec.role.name",
            format!(
                "`{}` must be 1 to 64 letters, digits or +=,.@_- (IAM role name rules)",
                r.name
            ),
        ));
    }
    let path = r.path.as_deref().unwrap_or(&limits.role_path);
    if !valid_path(path) {
        d.push(o.diagnostic(
            "spec.role.path",
            format!("`{path}` must start and end with `/`, be at most 512 characters of printable ASCII"),
        ));
    } else if !path.starts_with(&limits.role_path) {
        d.push(o.diagnostic(
            "spec.role.path",
            format!(
                "`{path}` is outside the controller's role path `{}`",
                limits.role_path
            ),
        ));
    }
    if let Some(desc) = &r.description {
        if desc.chars().count() > 1000 {
            d.push(o.diagnostic("spec.role.description", "at most 1,000 characters"));
        }
    }
    if !(3600..=43200).contains(&r.max_session_duration) {
        d.push(o.diagnostic(
            "spec.role.maxSessionDuration",
            format!(
                "{} is outside 3600 to 43200 seconds",
                r.max_session_duration
            ),
        ));
    }
    if let Some(b) = &r.permissions_boundary {
        if !is_managed_policy_arn(b) {
            d.push(o.diagnostic(
                "spec.role.permissionsBoundary",
                format!("`{b}` is not an IAM managed policy ARN"),
            ));
        } else if !limits.permissions_boundaries.is_empty()
            && !limits
                .permissions_boundaries
                .iter()
                .any(|name| b.ends_with(&format!(":policy/{name}")))
        {
            d.push(o.diagnostic(
                "spec.role.permissionsBoundary",
                format!(
                    "`{b}` is not one of the boundaries the config allows (permissionsBoundaries: {}); the controller may set no other",
                    limits.permissions_boundaries.join(", ")
                ),
            ));
        }
    }
}

/// Managed policies (ARNs, no repeats, the per-role limit) and inline policies (names,
/// valid documents, the per-role size).
fn check_role_policies(
    r: &super::RoleSpec,
    limits: &Limits,
    o: &super::Origin,
    d: &mut Vec<Diagnostic>,
) {
    if r.managed_policies.len() > limits.managed_policies_per_role {
        d.push(o.diagnostic(
            "spec.role.managedPolicies",
            format!(
                "{} managed policies exceed the limit of {} per role",
                r.managed_policies.len(),
                limits.managed_policies_per_role
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, arn) in r.managed_policies.iter().enumerate() {
        if !is_managed_policy_arn(arn) {
            d.push(o.diagnostic(
                format!("spec.role.managedPolicies[{i}]"),
                format!("`{arn}` is not an IAM managed policy ARN"),
            ));
        } else if !seen.insert(arn) {
            d.push(o.diagnostic(
                format!("spec.role.managedPolicies[{i}]"),
                format!("`{arn}` is listed twice"),
            ));
        }
    }
    let mut total = 0;
    for (name, doc) in &r.inline_policies {
        let field = format!("spec.role.inlinePolicies.{name}");
        if name == super::OUTBOUND_POLICY_NAME {
            d.push(o.diagnostic(
                &field,
                format!("`{name}` is reserved for the statement trustsync writes for a function's `entraApplication`"),
            ));
        }
        if name == crate::model::names::SESSIONS_POLICY {
            d.push(o.diagnostic(
                &field,
                format!("`{name}` is reserved for the denials trustsync writes for the live sessions of principals that leave the role"),
            ));
        }
        if name.is_empty() || name.len() > 128 || !name.chars().all(is_iam_name_char) {
            d.push(o.diagnostic(
                &field,
                format!("policy name `{name}` must be 1 to 128 letters, digits or +=,.@_-"),
            ));
        }
        for (path, msg) in iam_policy::check_document(doc) {
            let f = if path.is_empty() {
                field.clone()
            } else {
                format!("{field}.{path}")
            };
            d.push(o.diagnostic(f, msg));
        }
        total += iam_policy::iam_length(doc);
    }
    if total > limits.inline_policy_chars {
        d.push(o.diagnostic(
            "spec.role.inlinePolicies",
            format!(
                "inline policies total {total} characters; IAM allows {} per role",
                limits.inline_policy_chars
            ),
        ));
    }
}

fn check_tags(
    tags: &BTreeMap<String, String>,
    limits: &Limits,
    o: &super::Origin,
    d: &mut Vec<Diagnostic>,
) {
    // trustsync's own tags: the owner tag, the group pin and the removal baseline.
    if tags.len() + 3 > limits.tags_per_role {
        d.push(o.diagnostic(
            "spec.role.tags",
            format!(
                "{} tags plus trustsync's three (owner, group pin, removal baseline) exceed {} per role",
                tags.len(),
                limits.tags_per_role
            ),
        ));
    }
    for (k, v) in tags {
        let field = format!("spec.role.tags.{k}");
        if k.is_empty() || k.chars().count() > 128 {
            d.push(o.diagnostic(&field, "tag keys are 1 to 128 characters"));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            d.push(o.diagnostic(&field, "tag keys starting with `aws:` are reserved"));
        }
        if k.to_ascii_lowercase().starts_with("trustsync.dev/") {
            d.push(o.diagnostic(
                &field,
                "tag keys starting with `trustsync.dev/` are reserved for trustsync's own records",
            ));
        }
        if v.chars().count() > 256 {
            d.push(o.diagnostic(&field, "tag values are at most 256 characters"));
        }
    }
}

fn check_function(
    set: &Known<'_>,
    f: &Named<super::FunctionAccessSpec>,
    limits: &Limits,
    d: &mut Vec<Diagnostic>,
) {
    let o = &f.origin;
    let s = &f.spec;
    if !is_function_ref(&s.function) {
        d.push(o.diagnostic(
            "spec.function",
            format!("`{}` is neither a function name (1 to 64 of letters, digits, - and _) nor a Lambda function ARN", s.function),
        ));
    }
    if let Some(q) = &s.qualifier {
        if q.is_empty()
            || q.len() > 128
            || !q
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '$')
        {
            d.push(o.diagnostic(
                "spec.qualifier",
                format!("`{q}` is not an alias or version"),
            ));
        }
    }
    if let Some(er) = &s.execution_role {
        check_role_reference(
            set,
            er.role_mapping.as_deref(),
            er.arn.as_deref(),
            "spec.executionRole",
            o,
            d,
        );
    }
    if let Some(app) = &s.entra_application {
        if !is_guid(&app.app_id) {
            d.push(o.diagnostic(
                "spec.entraApplication.appId",
                format!("`{}` is not an application (client) id: a GUID", app.app_id),
            ));
        }
        if !(60..=3600).contains(&app.max_token_seconds) {
            d.push(o.diagnostic(
                "spec.entraApplication.maxTokenSeconds",
                format!(
                    "{} seconds: STS issues web identity tokens for 60 to 3600 seconds",
                    app.max_token_seconds
                ),
            ));
        }
        if s.execution_role
            .as_ref()
            .and_then(|r| r.role_mapping.as_ref())
            .is_none()
        {
            d.push(o.diagnostic(
                "spec.executionRole",
                "a function with `entraApplication` needs `executionRole.roleMapping`: trustsync grants the token request on the role it manages",
            ));
        }
    }
    let mut size = 120; // the policy envelope
    let mut seen = std::collections::HashSet::new();
    for (i, inv) in s.invokers.iter().enumerate() {
        let at = format!("spec.invokers[{i}]");
        let set_count = [
            inv.role_mapping.is_some(),
            inv.principal.is_some(),
            inv.service.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set_count != 1 {
            d.push(o.diagnostic(
                &at,
                "set exactly one of `roleMapping`, `principal` and `service`",
            ));
            continue;
        }
        check_invoker(set, inv, &at, o, d);
        let key = (
            &inv.role_mapping,
            &inv.principal,
            &inv.service,
            &inv.source_arn,
            &inv.source_account,
            &inv.action,
        );
        if !seen.insert(key) {
            d.push(o.diagnostic(&at, "the same invoker is listed twice"));
        }
        size += 300 + inv.source_arn.as_deref().map_or(0, str::len);
    }
    if size > limits.lambda_policy_bytes {
        d.push(o.diagnostic(
            "spec.invokers",
            format!(
                "about {size} bytes of resource policy; Lambda allows {}",
                limits.lambda_policy_bytes
            ),
        ));
    }
}

/// One invoker's fields: a role mapping that exists, a principal that is an account or an
/// IAM ARN, a service principal (with its optional source), a Lambda action.
fn check_invoker(
    set: &Known<'_>,
    inv: &super::Invoker,
    at: &str,
    o: &super::Origin,
    d: &mut Vec<Diagnostic>,
) {
    if let Some(rm) = &inv.role_mapping {
        if set.lacks_role_mapping(rm) {
            d.push(o.diagnostic(
                format!("{at}.roleMapping"),
                format!("no RoleMapping named `{rm}`"),
            ));
        }
    }
    if let Some(p) = &inv.principal {
        let account = p.len() == 12 && p.chars().all(|c| c.is_ascii_digit());
        if !account && !is_iam_principal_arn(p) {
            d.push(o.diagnostic(
                format!("{at}.principal"),
                format!("`{p}` is neither an account id nor an IAM role, user or root ARN"),
            ));
        }
    }
    if let Some(svc) = &inv.service {
        if !is_service_principal(svc) {
            d.push(o.diagnostic(
                format!("{at}.service"),
                format!("`{svc}` is not an AWS service principal"),
            ));
        }
    } else if inv.source_arn.is_some() || inv.source_account.is_some() {
        d.push(o.diagnostic(at, "`sourceArn` and `sourceAccount` go with `service`"));
    }
    if let Some(arn) = &inv.source_arn {
        if !is_arn(arn) {
            d.push(o.diagnostic(format!("{at}.sourceArn"), format!("`{arn}` is not an ARN")));
        }
    }
    if let Some(acct) = &inv.source_account {
        if acct.len() != 12 || !acct.chars().all(|c| c.is_ascii_digit()) {
            d.push(o.diagnostic(
                format!("{at}.sourceAccount"),
                format!("`{acct}` is not a 12-digit account id"),
            ));
        }
    }
    if let Some(action) = &inv.action {
        if !action.to_ascii_lowercase().starts_with("lambda:") {
            d.push(o.diagnostic(
                format!("{at}.action"),
                format!("`{action}` is not a Lambda action"),
            ));
        }
    }
}

fn check_role_reference(
    set: &Known<'_>,
    mapping: Option<&str>,
    arn: Option<&str>,
    at: &str,
    o: &super::Origin,
    d: &mut Vec<Diagnostic>,
) {
    match (mapping, arn) {
        (Some(m), None) => {
            if set.lacks_role_mapping(m) {
                d.push(o.diagnostic(
                    format!("{at}.roleMapping"),
                    format!("no RoleMapping named `{m}`"),
                ));
            }
        }
        (None, Some(a)) => {
            if !is_role_arn(a) {
                d.push(o.diagnostic(format!("{at}.arn"), format!("`{a}` is not an IAM role ARN")));
            }
        }
        _ => d.push(o.diagnostic(at, "set exactly one of `roleMapping` and `arn`")),
    }
}

/// `8-4-4-4-12` hex digits.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

fn valid_path(p: &str) -> bool {
    p.starts_with('/')
        && p.ends_with('/')
        && p.len() <= 512
        && p.chars().all(|c| ('!'..='~').contains(&c))
}

fn is_service_principal(s: &str) -> bool {
    s.ends_with(".amazonaws.com")
        && s.len() > ".amazonaws.com".len()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
}

/// `arn:partition:service:region:account:resource` with a known partition.
pub fn is_arn(s: &str) -> bool {
    ArnParts::parse_known(s).is_some()
}

fn iam_arn_parts(s: &str) -> Option<(&str, &str)> {
    let a = ArnParts::parse_known(s)?;
    Some((a.account, a.iam_resource()?))
}

fn is_account(s: &str) -> bool {
    crate::model::account::is_account_id(s)
}

fn is_managed_policy_arn(s: &str) -> bool {
    matches!(iam_arn_parts(s), Some((acct, res)) if (acct == "aws" || is_account(acct)) && res.starts_with("policy/") && res.len() > 7)
}

fn is_role_arn(s: &str) -> bool {
    matches!(iam_arn_parts(s), Some((acct, res)) if is_account(acct) && res.starts_with("role/") && res.len() > 5)
}

fn is_iam_principal_arn(s: &str) -> bool {
    matches!(iam_arn_parts(s), Some((acct, res)) if is_account(acct)
        && (res == "root" || (res.starts_with("role/") && res.len() > 5) || (res.starts_with("user/") && res.len() > 5)))
}

fn is_function_ref(s: &str) -> bool {
    if s.starts_with("arn:") {
        return ArnParts::parse_known(s)
            .and_then(|a| a.function_name())
            .is_some_and(is_function_name);
    }
    is_function_name(s)
}

fn is_function_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The function name of a name-or-ARN reference.
pub fn function_name(s: &str) -> &str {
    ArnParts::parse(s)
        .and_then(|a| a.function_name())
        .unwrap_or(s)
}

#[cfg(test)]
mod tests;
