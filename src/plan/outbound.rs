//! The outbound direction (AWS → Entra): the federated identity credentials that let a
//! Lambda function's execution role act as an Entra application, and the account setting
//! that makes AWS issue the role's tokens. Pure, like the rest of the planner.
//!
//! One credential per (application, account, execution role): its issuer is the account's
//! outbound federation issuer, its subject the role ARN, its audience Entra's token
//! exchange. Functions sharing a role and an application share the credential (Entra
//! refuses two credentials with one issuer and subject). Its name carries this instance's
//! prefix, the account and the (first) FunctionAccess, so trustsync knows its own
//! credentials and leaves every other one alone, and a function that moves to another
//! execution role keeps its credential, updated in place: the old role loses the
//! application in the same write, prune or not.
//!
//! A wanted credential is matched to one of trustsync's own first by what it trusts
//! (issuer and subject: nothing to change but the description), then by name (the subject
//! or issuer changed: an update); only then is one created. trustsync's credentials left
//! unmatched are orphans.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Action, Change, EntraAction, IamAction, Notice, NoticeKind, Plan, Problem, ProblemKind,
};
use crate::model::names::MappingName;
use crate::observed::{ObservedApplication, ObservedCredential};
use crate::sources::policy::ENTRA_TOKEN_EXCHANGE_AUDIENCE;

/// Entra's limit of federated identity credentials per application.
pub const MAX_CREDENTIALS: usize = 20;

/// Entra's limit on a credential's name.
const MAX_NAME: usize = 120;

/// Entra's limit on a credential's description.
const MAX_DESCRIPTION: usize = 600;

/// A function that acts as an Entra application, in one account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wanted {
    pub account: String,
    /// The application's client id.
    pub app_id: String,
    /// The function's execution role ARN.
    pub role_arn: String,
    /// The FunctionAccess document.
    pub mapping: MappingName,
}

/// What an account says of outbound identity federation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issuer {
    /// On, with this issuer URL (from AWS, or from `outboundFederation.issuerUrls`).
    Url(String),
    /// Off.
    Off,
    /// Could not be read: why.
    Unreadable(String),
}

/// What the outbound planner is given.
pub struct Inputs<'a> {
    /// Every function acting as an application, in every account read.
    pub wanted: &'a [Wanted],
    /// The issuer of each account that has such functions.
    pub issuers: &'a BTreeMap<String, Issuer>,
    /// The applications trustsync's service principal owns, or why they could not be read.
    pub applications: &'a Result<Vec<ObservedApplication>, String>,
    /// The accounts read this pass: only their credentials can be judged orphans.
    pub accounts: &'a BTreeSet<String>,
    /// This instance's credential name prefix.
    pub prefix: &'a str,
    /// `outboundFederation.enable`.
    pub enable: bool,
    /// Delete owned credentials no longer wanted.
    pub prune: bool,
}

/// The credential a set of functions needs on one application.
struct Desired<'a> {
    account: &'a str,
    app_id: &'a str,
    role_arn: &'a str,
    issuer: &'a str,
    mappings: Vec<&'a MappingName>,
}

impl Desired<'_> {
    fn name(&self, prefix: &str) -> String {
        credential_name(prefix, self.account, self.mappings[0].as_str())
    }

    fn description(&self) -> String {
        let functions: Vec<&str> = self.mappings.iter().map(|m| m.as_str()).collect();
        let mut d = format!(
            "Managed by trustsync: FunctionAccess {} in AWS account {} (execution role {}) acts as this application. Edits are reverted.",
            functions.join(", "),
            self.account,
            self.role_arn
        );
        if d.len() > MAX_DESCRIPTION {
            let mut cut = MAX_DESCRIPTION - 3;
            while !d.is_char_boundary(cut) {
                cut -= 1;
            }
            d.truncate(cut);
            d.push_str("...");
        }
        d
    }
}

/// The name of trustsync's credential for FunctionAccess `mapping` in `account`: the
/// prefix, the account, the document's name. Characters Entra does not allow in a name
/// become `_`, and then, as when the name would be too long, a hash of the document's name
/// keeps it unique.
pub fn credential_name(prefix: &str, account: &str, mapping: &str) -> String {
    let clean: String = mapping
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut name = format!("{prefix}{account}-{clean}");
    if clean != mapping || name.len() > MAX_NAME {
        let hash = crate::config::short_hash(mapping, 4);
        name.truncate(MAX_NAME - hash.len() - 1);
        name.push('-');
        name.push_str(&hash);
    }
    name
}

/// The account a credential of this instance was made for, from its name.
fn account_of(name: &str, prefix: &str) -> Option<String> {
    let rest = name.strip_prefix(prefix)?;
    let (account, _) = rest.split_once('-')?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| account.to_string())
}

fn resource(app_id: &str, name: &str) -> String {
    format!("entra:application/{app_id}/federatedIdentityCredentials/{name}")
}

/// Plans the account settings and the credentials. Pure.
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    let mut out = Plan::default();
    account_settings(inputs, &mut out);
    let apps = match inputs.applications {
        Ok(apps) => apps,
        Err(e) => {
            out.problems.push(Problem {
                kind: ProblemKind::ApplicationsUnreadable,
                account: None,
                mapping: None,
                resource: "servicePrincipals/ownedObjects".into(),
                message: format!(
                    "the Entra applications trustsync owns could not be read, so no federated credential was planned or removed: {e}"
                ),
            });
            return out;
        }
    };
    let desired = desired_credentials(inputs);
    let mut by_app: BTreeMap<&str, Vec<&Desired<'_>>> = BTreeMap::new();
    for d in desired.values() {
        by_app.entry(d.app_id).or_default().push(d);
    }
    for (app_id, wanted) in &by_app {
        match apps.iter().find(|a| a.app_id.eq_ignore_ascii_case(app_id)) {
            Some(app) => plan_application(inputs, app, wanted, &mut out),
            None => {
                for d in wanted {
                    out.problems.push(Problem {
                        kind: ProblemKind::ApplicationNotOwned,
                        account: Some(d.account.to_string()),
                        mapping: Some(d.mappings[0].clone()),
                        resource: format!("entra:application/{app_id}"),
                        message: format!(
                            "Entra application {app_id} is not among the applications trustsync's service principal owns (or does not exist): add it as an owner of the application, so that Application.ReadWrite.OwnedBy lets trustsync manage its federated credentials"
                        ),
                    });
                }
            }
        }
    }
    // Owned applications no function wants any more: their credentials are orphans.
    for app in apps {
        if !by_app.keys().any(|a| a.eq_ignore_ascii_case(&app.app_id)) {
            plan_application(inputs, app, &[], &mut out);
        }
    }
    out.summarize();
    out
}

/// Each account whose functions act as Entra applications needs outbound identity
/// federation: turned on (`outboundFederation.enable`), or a problem.
fn account_settings(inputs: &Inputs<'_>, out: &mut Plan) {
    let mut need: BTreeMap<&str, Vec<&Wanted>> = BTreeMap::new();
    for w in inputs.wanted {
        need.entry(w.account.as_str()).or_default().push(w);
    }
    for (account, wanted) in &need {
        let names = || {
            let mut m: Vec<&str> = wanted.iter().map(|w| w.mapping.as_str()).collect();
            m.sort();
            m.dedup();
            m.join(", ")
        };
        match inputs.issuers.get(*account) {
            Some(Issuer::Off) if inputs.enable => {
                let mut c = Change::new(
                    Action::Iam(IamAction::EnableOutboundFederation {}),
                    format!("arn:aws:iam::{account}:root"),
                    Some(wanted[0].mapping.as_str()),
                    format!(
                        "FunctionAccess {} act as Entra applications and outbound identity federation is off (outboundFederation.enable); their credentials follow in the next pass, once AWS has issued the account's issuer URL",
                        names()
                    ),
                );
                c.account = Some(account.to_string());
                out.changes.push(c);
            }
            Some(Issuer::Off) => out.problems.push(Problem {
                kind: ProblemKind::OutboundFederationOff,
                account: Some(account.to_string()),
                mapping: Some(wanted[0].mapping.clone()),
                resource: format!("account {account}"),
                message: format!(
                    "FunctionAccess {} act as Entra applications, but outbound identity federation is off in account {account}: turn it on (aws iam enable-outbound-web-identity-federation) or let trustsync do it (outboundFederation.enable: true)",
                    names()
                ),
            }),
            Some(Issuer::Unreadable(e)) => out.problems.push(Problem {
                kind: ProblemKind::OutboundFederationOff,
                account: Some(account.to_string()),
                mapping: Some(wanted[0].mapping.clone()),
                resource: format!("account {account}"),
                message: format!(
                    "the outbound identity federation issuer of account {account} could not be read, so no credential of FunctionAccess {} was planned: {e}",
                    names()
                ),
            }),
            // Known: its credentials are planned below.
            Some(Issuer::Url(_)) | None => {}
        }
    }
}

/// Desired credentials, one per (application, account, role), for the accounts whose
/// issuer is known.
fn desired_credentials<'a>(
    inputs: &Inputs<'a>,
) -> BTreeMap<(&'a str, &'a str, &'a str), Desired<'a>> {
    let mut desired: BTreeMap<(&str, &str, &str), Desired<'_>> = BTreeMap::new();
    for w in inputs.wanted {
        let Some(Issuer::Url(issuer)) = inputs.issuers.get(&w.account) else {
            continue;
        };
        desired
            .entry((w.app_id.as_str(), w.account.as_str(), w.role_arn.as_str()))
            .or_insert_with(|| Desired {
                account: &w.account,
                app_id: &w.app_id,
                role_arn: &w.role_arn,
                issuer,
                mappings: Vec::new(),
            })
            .mappings
            .push(&w.mapping);
    }
    for d in desired.values_mut() {
        d.mappings.sort();
        d.mappings.dedup();
    }
    desired
}

/// One application's credentials: create what is missing, update what drifted, remove
/// (or report) trustsync's credentials no longer wanted; never touch any other.
fn plan_application(
    inputs: &Inputs<'_>,
    app: &ObservedApplication,
    wanted: &[&Desired<'_>],
    out: &mut Plan,
) {
    let (matched, unclaimed) = claim(inputs, app, wanted);
    let creates: Vec<Change> = matched
        .iter()
        .zip(wanted)
        .filter_map(|(slot, d)| wanted_credential(inputs, app, d, *slot, out))
        .collect();
    let deletes = unwanted_credentials(inputs, app, &unclaimed, out);
    push_creates(app, creates, deletes, out);
}

/// Which of the application's credentials each wanted one is (by index): trustsync's
/// own, first what already trusts the right role from the right issuer, then by name.
/// Returns them and trustsync's credentials nobody claimed.
fn claim(
    inputs: &Inputs<'_>,
    app: &ObservedApplication,
    wanted: &[&Desired<'_>],
) -> (Vec<Option<usize>>, BTreeSet<usize>) {
    // trustsync's own credentials on the application, by index, until one is claimed.
    let mut unclaimed: BTreeSet<usize> = app
        .credentials
        .iter()
        .enumerate()
        .filter(|(_, c)| account_of(&c.name, inputs.prefix).is_some())
        .map(|(i, _)| i)
        .collect();
    // First what already trusts the right role from the right issuer, then by name.
    let mut matched: Vec<Option<usize>> = vec![None; wanted.len()];
    for (slot, d) in matched.iter_mut().zip(wanted) {
        let i = unclaimed.iter().copied().find(|&i| {
            let c = &app.credentials[i];
            c.issuer == d.issuer && c.subject == d.role_arn
        });
        if let Some(i) = i {
            unclaimed.remove(&i);
            *slot = Some(i);
        }
    }
    for (slot, d) in matched.iter_mut().zip(wanted) {
        if slot.is_some() {
            continue;
        }
        let name = d.name(inputs.prefix);
        let i = unclaimed
            .iter()
            .copied()
            .find(|&i| app.credentials[i].name == name);
        if let Some(i) = i {
            unclaimed.remove(&i);
            *slot = Some(i);
        }
    }
    (matched, unclaimed)
}

/// One wanted credential: a conflict when a credential not trustsync's already trusts
/// the role, an update of trustsync's when it drifted, or the create it needs (returned:
/// creates are weighed against Entra's limit together).
fn wanted_credential(
    inputs: &Inputs<'_>,
    app: &ObservedApplication,
    d: &Desired<'_>,
    slot: Option<usize>,
    out: &mut Plan,
) -> Option<Change> {
    let audiences = vec![ENTRA_TOKEN_EXCHANGE_AUDIENCE.to_string()];
    let description = d.description();
    let mine = slot.map(|i| &app.credentials[i]);
    let trusts_role = |c: &ObservedCredential| c.issuer == d.issuer && c.subject == d.role_arn;
    // Another credential (never trustsync's: those were matched first) already trusts
    // the role: Entra allows one per issuer and subject, so creating or moving one
    // onto it would be refused.
    let taken = app
        .credentials
        .iter()
        .enumerate()
        .find(|(j, c)| Some(*j) != slot && trusts_role(c))
        .map(|(_, c)| c);
    if let (Some(other), false) = (taken, mine.is_some_and(trusts_role)) {
        out.problems.push(Problem {
            kind: ProblemKind::Conflict,
            account: Some(d.account.to_string()),
            mapping: Some(d.mappings[0].clone()),
            resource: resource(&app.app_id, &other.name),
            message: format!(
                "credential `{}` on application {}, not trustsync's, already trusts {} from this issuer; trustsync leaves it alone and makes none of its own (Entra allows one per issuer and subject): delete it to let trustsync manage the trust",
                other.name, app.app_id, d.role_arn
            ),
        });
        return None;
    }
    match mine {
        Some(c) => {
            let same = trusts_role(c)
                && c.audiences == audiences
                && c.description.as_deref() == Some(description.as_str());
            if !same {
                out.changes.push(credential_change(
                    app,
                    d,
                    c.name.clone(),
                    description,
                    Some(c),
                ));
            }
            None
        }
        None => Some(credential_change(
            app,
            d,
            d.name(inputs.prefix),
            description,
            None,
        )),
    }
}

/// trustsync's credentials nobody claimed: deleted with prune, else reported. Returns how
/// many are deleted.
fn unwanted_credentials(
    inputs: &Inputs<'_>,
    app: &ObservedApplication,
    unclaimed: &BTreeSet<usize>,
    out: &mut Plan,
) -> usize {
    let mut deletes = 0;
    // Only trustsync's own credentials can be unclaimed: every other is never touched.
    for c in unclaimed.iter().map(|&i| &app.credentials[i]) {
        let Some(account) = account_of(&c.name, inputs.prefix) else {
            continue;
        };
        let issuer_unknown = inputs
            .issuers
            .get(&account)
            .is_some_and(|i| !matches!(i, Issuer::Url(_)));
        if !inputs.accounts.contains(&account) || issuer_unknown {
            // In an account not read this pass, or whose functions still want credentials
            // but whose issuer is off or unknown: nothing to judge it by.
            continue;
        }
        if inputs.prune {
            let mut change = Change::new(
                Action::Entra(EntraAction::DeleteFederatedCredential {
                    application_id: app.id.clone(),
                    app_id: app.app_id.clone(),
                    credential_id: c.id.clone(),
                    name: c.name.clone(),
                }),
                resource(&app.app_id, &c.name),
                None,
                format!(
                    "no FunctionAccess lets {} act as application {} any more",
                    c.subject, app.app_id
                ),
            );
            change.account = Some(account);
            change.before = Some(credential_json(c));
            out.changes.push(change);
            deletes += 1;
        } else {
            out.notices.push(Notice {
                kind: NoticeKind::Orphan,
                account: Some(account),
                resource: resource(&app.app_id, &c.name),
                message: format!(
                    "federated credential `{}` lets {} act as application {}, but no FunctionAccess wants it any more; prune removes it",
                    c.name, c.subject, app.app_id
                ),
            });
        }
    }
    deletes
}

/// The creates, unless they would take the application over Entra's limit of
/// credentials: then none, and a problem.
fn push_creates(app: &ObservedApplication, creates: Vec<Change>, deletes: usize, out: &mut Plan) {
    let after = app.credentials.len() - deletes + creates.len();
    if !creates.is_empty() && after > MAX_CREDENTIALS {
        let names: Vec<String> = creates
            .iter()
            .filter_map(|c| c.mapping.as_ref().map(|m| m.to_string()))
            .collect();
        out.problems.push(Problem {
            kind: ProblemKind::CredentialLimit,
            account: creates.first().and_then(|c| c.account.clone()),
            mapping: creates.first().and_then(|c| c.mapping.clone()),
            resource: format!("entra:application/{}", app.app_id),
            message: format!(
                "application {} ({}) has {} federated credentials; the {} more that FunctionAccess {} need would make {after}, over Entra's limit of {MAX_CREDENTIALS}: none was created. Remove unused credentials, or share execution roles between functions",
                app.app_id,
                app.display_name,
                app.credentials.len() - deletes,
                creates.len(),
                names.join(", ")
            ),
        });
    } else {
        out.changes.extend(creates);
    }
}

/// The change that makes credential `name` of `app` what `d` wants: an update of
/// `existing`, or a create.
fn credential_change(
    app: &ObservedApplication,
    d: &Desired<'_>,
    name: String,
    description: String,
    existing: Option<&ObservedCredential>,
) -> Change {
    let (application_id, app_id) = (app.id.clone(), app.app_id.clone());
    let (issuer, subject) = (d.issuer.to_string(), d.role_arn.to_string());
    let audiences = vec![ENTRA_TOKEN_EXCHANGE_AUDIENCE.to_string()];
    let after = serde_json::json!({"issuer": issuer, "subject": subject, "audiences": audiences});
    let resource = resource(&app.app_id, &name);
    let (action, reason) = match existing {
        Some(c) => (
            Action::Entra(EntraAction::UpdateFederatedCredential {
                application_id,
                app_id,
                credential_id: c.id.clone(),
                name,
                issuer,
                subject,
                audiences,
                description,
            }),
            "the credential differs from what the policy wants (drift or a changed issuer)"
                .to_string(),
        ),
        None => (
            Action::Entra(EntraAction::CreateFederatedCredential {
                application_id,
                app_id,
                name,
                issuer,
                subject,
                audiences,
                description,
            }),
            format!(
                "FunctionAccess {} acts as application {} ({})",
                d.mappings
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                app.app_id,
                app.display_name
            ),
        ),
    };
    let mut change = Change::new(action, resource, Some(d.mappings[0].as_str()), reason);
    change.account = Some(d.account.to_string());
    change.before = existing.map(credential_json);
    change.after = Some(after);
    change
}

fn credential_json(c: &ObservedCredential) -> serde_json::Value {
    serde_json::json!({
        "name": c.name, "issuer": c.issuer, "subject": c.subject, "audiences": c.audiences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "trustsync-abc123-";
    const ACCOUNT: &str = "123456789012";
    const ISSUER: &str = "https://abc.tokens.sts.global.api.aws";
    const APP: &str = "9e8d7c6b-0000-4000-8000-00000000a001";

    fn wanted(mapping: &str, role: &str) -> Wanted {
        Wanted {
            account: ACCOUNT.into(),
            app_id: APP.into(),
            role_arn: format!("arn:aws:iam::{ACCOUNT}:role/trustsync/{role}"),
            mapping: MappingName::from(mapping),
        }
    }

    fn app(credentials: Vec<ObservedCredential>) -> ObservedApplication {
        ObservedApplication {
            id: "obj-1".into(),
            app_id: APP.into(),
            display_name: "payments-api".into(),
            credentials,
        }
    }

    fn credential(name: &str, subject: &str) -> ObservedCredential {
        ObservedCredential {
            id: format!("id-{name}"),
            name: name.into(),
            issuer: ISSUER.into(),
            subject: subject.into(),
            audiences: vec![ENTRA_TOKEN_EXCHANGE_AUDIENCE.into()],
            description: None,
        }
    }

    fn run(
        wanted: &[Wanted],
        issuer: Issuer,
        apps: Result<Vec<ObservedApplication>, String>,
        prune: bool,
    ) -> Plan {
        // As the pass does: an issuer is read only for accounts whose functions need one.
        let issuers = match wanted.is_empty() {
            true => BTreeMap::new(),
            false => BTreeMap::from([(ACCOUNT.to_string(), issuer)]),
        };
        let accounts = BTreeSet::from([ACCOUNT.to_string()]);
        plan(&Inputs {
            wanted,
            issuers: &issuers,
            applications: &apps,
            accounts: &accounts,
            prefix: PREFIX,
            enable: false,
            prune,
        })
    }

    #[test]
    fn functions_sharing_a_role_share_one_credential() {
        let w = [wanted("api", "runtime"), wanted("worker", "runtime")];
        let p = run(&w, Issuer::Url(ISSUER.into()), Ok(vec![app(vec![])]), false);
        assert_eq!(p.changes.len(), 1, "{p:#?}");
        let Action::Entra(EntraAction::CreateFederatedCredential {
            name,
            subject,
            description,
            ..
        }) = &p.changes[0].action
        else {
            panic!("{p:#?}")
        };
        assert_eq!(
            name,
            &format!("{PREFIX}{ACCOUNT}-api"),
            "the first document's name"
        );
        assert!(subject.ends_with(":role/trustsync/runtime"));
        assert!(description.contains("api, worker"), "{description}");
    }

    #[test]
    fn foreign_credentials_are_never_touched_and_orphans_wait_for_prune() {
        let foreign = credential("github-deploy", "repo:acme/payments");
        let mine = credential(&format!("{PREFIX}{ACCOUNT}-old"), "arn:old");
        let other_account = credential(&format!("{PREFIX}210987654321-x"), "arn:x");
        let apps = || {
            Ok(vec![app(vec![
                foreign.clone(),
                mine.clone(),
                other_account.clone(),
            ])])
        };
        let p = run(&[], Issuer::Off, apps(), false);
        assert!(p.changes.is_empty(), "{p:#?}");
        assert_eq!(
            p.notices.len(),
            1,
            "only the read account's own credential: {p:#?}"
        );
        let p = run(&[], Issuer::Off, apps(), true);
        assert_eq!(p.changes.len(), 1, "{p:#?}");
        assert!(matches!(&p.changes[0].action,
            Action::Entra(EntraAction::DeleteFederatedCredential { name, .. }) if name == &mine.name));
    }

    #[test]
    fn the_limit_is_reported_with_numbers_before_entra_refuses() {
        let full: Vec<_> = (0..20)
            .map(|i| credential(&format!("other-{i}"), &format!("s{i}")))
            .collect();
        let p = run(
            &[wanted("api", "runtime")],
            Issuer::Url(ISSUER.into()),
            Ok(vec![app(full)]),
            false,
        );
        assert!(p.changes.is_empty(), "{p:#?}");
        assert_eq!(p.problems[0].kind, ProblemKind::CredentialLimit);
        assert!(
            p.problems[0].message.contains("has 20") && p.problems[0].message.contains("make 21"),
            "{}",
            p.problems[0].message
        );
    }

    #[test]
    fn what_cannot_be_planned_is_a_problem_not_a_change() {
        let w = [wanted("api", "runtime")];
        let p = run(&w, Issuer::Off, Ok(vec![app(vec![])]), true);
        assert_eq!(p.problems[0].kind, ProblemKind::OutboundFederationOff);
        assert!(p.changes.is_empty());
        let p = run(&w, Issuer::Url(ISSUER.into()), Ok(vec![]), true);
        assert_eq!(p.problems[0].kind, ProblemKind::ApplicationNotOwned);
        let p = run(&w, Issuer::Url(ISSUER.into()), Err("403".into()), true);
        assert_eq!(p.problems[0].kind, ProblemKind::ApplicationsUnreadable);
        assert!(p.changes.is_empty());
        // A foreign credential already trusting the role: a conflict, nothing created.
        let taken = credential("hand-made", &w[0].role_arn);
        let p = run(
            &w,
            Issuer::Url(ISSUER.into()),
            Ok(vec![app(vec![taken])]),
            true,
        );
        assert_eq!(p.problems[0].kind, ProblemKind::Conflict, "{p:#?}");
        assert!(p.changes.is_empty());
    }

    #[test]
    fn an_account_with_the_feature_off_is_enabled_only_when_the_config_says_so() {
        let w = [wanted("api", "runtime")];
        let issuers = BTreeMap::from([(ACCOUNT.to_string(), Issuer::Off)]);
        let accounts = BTreeSet::from([ACCOUNT.to_string()]);
        let apps = Ok(vec![app(vec![])]);
        let p = plan(&Inputs {
            wanted: &w,
            issuers: &issuers,
            applications: &apps,
            accounts: &accounts,
            prefix: PREFIX,
            enable: true,
            prune: false,
        });
        assert!(p.problems.is_empty(), "{p:#?}");
        let names: Vec<&str> = p.changes.iter().map(|c| c.action.name()).collect();
        assert_eq!(
            names,
            ["enable-outbound-federation"],
            "credentials wait for the issuer"
        );
        assert_eq!(p.changes[0].account.as_deref(), Some(ACCOUNT));
        assert!(
            p.changes[0].reason.contains("next pass"),
            "{}",
            p.changes[0].reason
        );
    }

    #[test]
    fn a_moved_role_updates_the_credential_in_place_without_prune() {
        let old = credential(
            &format!("{PREFIX}{ACCOUNT}-api"),
            &format!("arn:aws:iam::{ACCOUNT}:role/trustsync/runtime"),
        );
        let p = run(
            &[wanted("api", "runtime-v2")],
            Issuer::Url(ISSUER.into()),
            Ok(vec![app(vec![old])]),
            false,
        );
        assert_eq!(p.changes.len(), 1, "{p:#?}");
        let Action::Entra(EntraAction::UpdateFederatedCredential { subject, name, .. }) =
            &p.changes[0].action
        else {
            panic!("{p:#?}")
        };
        assert!(subject.ends_with("role/trustsync/runtime-v2"), "{subject}");
        assert_eq!(name, &format!("{PREFIX}{ACCOUNT}-api"));
        assert!(p.notices.is_empty(), "{p:#?}");
    }

    #[test]
    fn a_move_onto_a_role_a_foreign_credential_trusts_is_a_conflict_not_a_write() {
        let mine = credential(
            &format!("{PREFIX}{ACCOUNT}-api"),
            &format!("arn:aws:iam::{ACCOUNT}:role/trustsync/runtime"),
        );
        let foreign = credential(
            "hand-made",
            &format!("arn:aws:iam::{ACCOUNT}:role/trustsync/runtime-v2"),
        );
        let p = run(
            &[wanted("api", "runtime-v2")],
            Issuer::Url(ISSUER.into()),
            Ok(vec![app(vec![mine, foreign])]),
            true,
        );
        assert!(p.changes.is_empty(), "{p:#?}");
        assert_eq!(p.problems[0].kind, ProblemKind::Conflict);
        assert!(p.problems[0].resource.ends_with("/hand-made"), "{p:#?}");
    }

    #[test]
    fn a_credential_already_trusting_the_role_is_kept_whatever_its_name() {
        // api and worker share a role; api leaves: worker now names the credential, and
        // the one api's name carries still trusts the same role: kept, not replaced.
        let kept = credential(
            &format!("{PREFIX}{ACCOUNT}-api"),
            &format!("arn:aws:iam::{ACCOUNT}:role/trustsync/runtime"),
        );
        let p = run(
            &[wanted("worker", "runtime")],
            Issuer::Url(ISSUER.into()),
            Ok(vec![app(vec![kept])]),
            true,
        );
        let names: Vec<&str> = p.changes.iter().map(|c| c.action.name()).collect();
        assert_eq!(
            names,
            ["update-federated-credential"],
            "only its description: {p:#?}"
        );
    }

    #[test]
    fn names_stay_within_entras_rules() {
        let n = credential_name(PREFIX, ACCOUNT, "a+b@c");
        assert!(n.starts_with(&format!("{PREFIX}{ACCOUNT}-a_b_c-")), "{n}");
        // A FunctionAccess name may be a long DNS subdomain.
        let n = credential_name(&"p".repeat(40), ACCOUNT, &"payments.".repeat(25));
        assert!(n.len() <= MAX_NAME, "{}", n.len());
        assert_eq!(
            account_of(&format!("{PREFIX}{ACCOUNT}-x"), PREFIX).as_deref(),
            Some(ACCOUNT)
        );
        assert_eq!(account_of("github-deploy", PREFIX), None);
    }
}
