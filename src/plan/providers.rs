//! OpenID Connect providers: create, tag, add audiences (recorded as tags, so only those
//! are ever removed), and the unwanted owned provider.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, IamAction, NoticeKind, Planner, ProblemKind};
use crate::desired::DesiredProvider;
use crate::observed::ObservedProvider;

/// The provider tag prefix recording an audience trustsync added (one tag per audience,
/// keyed by a hash of it): only these are ever removed.
pub const AUDIENCE_TAG_PREFIX: &str = "trustsync.dev/audience-";

/// The tag recording that trustsync added `audience` to a provider, and its value.
pub fn audience_tag(audience: &str) -> (String, String) {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(audience.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    // IAM tag values allow letters, digits, white space and `_.:/=+-@`; an audience with
    // other characters is recorded by its hash alone.
    let tag_safe = audience.len() <= 256
        && audience
            .chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c));
    (
        format!("{AUDIENCE_TAG_PREFIX}{hash}"),
        if tag_safe {
            audience.to_string()
        } else {
            String::new()
        },
    )
}

impl Planner<'_> {
    pub(super) fn provider(&mut self, dp: &DesiredProvider) {
        let owner = &self.s.owner_tag;
        let m = Some(dp.mapping.as_str());
        // The provider records each audience trustsync adds, so that it only ever removes
        // its own: IAM allows one provider per issuer, so others may share it.
        let mut tags = dp.tags.clone();
        tags.extend(dp.client_ids.iter().map(|aud| audience_tag(aud)));
        let Some(op) = self
            .observed
            .providers
            .iter()
            .find(|o| o.url.eq_ignore_ascii_case(&dp.url))
        else {
            self.push(
                Action::Iam(IamAction::CreateOidcProvider {
                    url: format!("https://{}", dp.url),
                    client_ids: dp.client_ids.iter().cloned().collect(),
                    thumbprints: dp.thumbprints.clone(),
                    tags,
                }),
                &dp.arn,
                m,
                "provider for the tenant's issuer does not exist",
            );
            return;
        };
        let tag = op.tags.get(&owner.key);
        if !self.may_own(dp, op) {
            return;
        }
        let missing: BTreeMap<String, String> = tags
            .iter()
            .filter(|(k, v)| op.tags.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !missing.is_empty() {
            let reason = if tag.is_none() {
                "adopting the provider (owner tag); audiences already there stay, as they may serve others"
            } else {
                "tags drifted or audiences to record"
            };
            self.push(
                Action::Iam(IamAction::TagOidcProvider {
                    provider_arn: op.arn.clone(),
                    tags: missing,
                }),
                &op.arn,
                m,
                reason,
            );
        }
        for aud in dp.client_ids.difference(&op.client_ids) {
            self.push(
                Action::Iam(IamAction::AddProviderAudience {
                    provider_arn: op.arn.clone(),
                    audience: aud.clone(),
                }),
                &op.arn,
                m,
                format!("audience `{aud}` missing"),
            );
        }
        self.unrecorded_audiences(op, &dp.client_ids, m);
    }

    /// Whether trustsync may write to the provider: its own, or one without an owner tag
    /// the IdentityProvider adopts; else a conflict.
    fn may_own(&mut self, dp: &DesiredProvider, op: &ObservedProvider) -> bool {
        let owner = &self.s.owner_tag;
        let tag = op.tags.get(&owner.key);
        if tag == Some(&owner.value) {
            return true;
        }
        if let Some(other) = tag {
            self.problem(
                ProblemKind::Conflict,
                &dp.mapping,
                &op.arn,
                format!(
                    "provider is owned by another trustsync instance (`{}={other}`)",
                    owner.key
                ),
            );
            return false;
        }
        if !dp.adopt {
            self.problem(
                ProblemKind::Conflict,
                &dp.mapping,
                &op.arn,
                "a provider for this issuer exists and is not owned by trustsync; set `adopt: true` on the IdentityProvider to take it over (roles still refer to it)".into(),
            );
            return false;
        }
        true
    }

    /// Removes (with prune) the audiences trustsync recorded as its own that no policy
    /// wants any more, and forgets records of audiences already gone. Audiences it did not
    /// add are never touched.
    fn unrecorded_audiences(
        &mut self,
        op: &ObservedProvider,
        wanted: &BTreeSet<String>,
        m: Option<&str>,
    ) {
        let mut forget = Vec::new();
        for aud in op.client_ids.difference(wanted) {
            let (key, _) = audience_tag(aud);
            if !op.tags.contains_key(&key) {
                continue;
            }
            if self.s.prune {
                self.push(
                    Action::Iam(IamAction::RemoveProviderAudience {
                        provider_arn: op.arn.clone(),
                        audience: aud.clone(),
                    }),
                    &op.arn,
                    m,
                    format!("audience `{aud}` was added by trustsync and is no longer in any policy (prune)"),
                );
                forget.push(key);
            } else {
                self.notice(
                    NoticeKind::Orphan,
                    &op.arn,
                    format!("audience `{aud}` was added by trustsync and is no longer in any policy; enable prune to remove it"),
                );
            }
        }
        let present: BTreeSet<String> = op.client_ids.iter().map(|a| audience_tag(a).0).collect();
        forget.extend(
            op.tags
                .keys()
                .filter(|k| k.starts_with(AUDIENCE_TAG_PREFIX) && !present.contains(*k))
                .cloned(),
        );
        if !forget.is_empty() {
            self.push(
                Action::Iam(IamAction::UntagOidcProvider {
                    provider_arn: op.arn.clone(),
                    keys: forget,
                }),
                &op.arn,
                m,
                "records of audiences trustsync no longer has on the provider",
            );
        }
    }

    /// An owned provider no longer in any policy: with prune, trustsync takes away what it
    /// added, and deletes the provider only when nothing else remains on it.
    pub(super) fn unwanted_provider(&mut self, op: &ObservedProvider) {
        if !self.s.prune {
            self.notice(
                NoticeKind::Orphan,
                &op.arn,
                "owned provider no longer in any policy; enable prune to delete it",
            );
            return;
        }
        let foreign: Vec<&String> = op
            .client_ids
            .iter()
            .filter(|aud| !op.tags.contains_key(&audience_tag(aud).0))
            .collect();
        if foreign.is_empty() {
            self.push(
                Action::Iam(IamAction::DeleteOidcProvider {
                    provider_arn: op.arn.clone(),
                }),
                &op.arn,
                None,
                "owned provider no longer in any policy (prune)",
            );
        } else {
            self.unrecorded_audiences(op, &BTreeSet::new(), None);
            self.notice(
                NoticeKind::SharedProvider,
                &op.arn,
                format!(
                    "owned provider no longer in any policy is kept: audiences trustsync did not add remain on it ({})",
                    foreign.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
}
