//! IAM Identity Center (people): reading the instance, its identity store and permission
//! sets ([`read`]); writing people's changes ([`write`]) and waiting for the asynchronous
//! ones ([`provisioning`]); ids looked up by name once per pass ([`ids`]). Here: trustsync's
//! mark, and the request shapes the reads and writes share.

mod ids;
mod provisioning;
mod read;
mod write;

pub use read::{Adoptable, KnownSets};

use super::Operation;
use crate::model::call::Failure;

/// trustsync's mark (`[trustsync key=value]`) as a description it writes carries it.
fn mark_in(ours: &str) -> Option<&str> {
    let start = ours.find("[trustsync ")?;
    let end = start + ours[start..].find(']')?;
    Some(&ours[start..=end])
}

/// Whether an object found under a name trustsync was creating is its own: its
/// description carries the mark trustsync's own description does.
fn carries_mark(found: Option<&str>, ours: &str) -> bool {
    match (found, mark_in(ours)) {
        (Some(found), Some(mark)) => found.contains(mark),
        _ => false,
    }
}

/// A create that found the name taken by an object that is not trustsync's.
fn not_adopted(operation: Operation, message: String) -> Failure {
    let mut f = Failure::permanent(operation.name(), format!("conflict: {message}"));
    f.code = Some("ConflictException".into());
    f
}

/// Tags as IAM Identity Center takes them.
fn set_tags(
    tags: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<aws_sdk_ssoadmin::types::Tag>, Failure> {
    tags.iter()
        .map(|(k, v)| {
            aws_sdk_ssoadmin::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| Failure::permanent("Tag", e.to_string()))
        })
        .collect()
}

fn customer_policy(
    name: &str,
    path: &str,
) -> Result<aws_sdk_ssoadmin::types::CustomerManagedPolicyReference, Failure> {
    aws_sdk_ssoadmin::types::CustomerManagedPolicyReference::builder()
        .name(name)
        .path(path)
        .build()
        .map_err(|e| Failure::permanent("CustomerManagedPolicyReference", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{carries_mark, mark_in};

    #[test]
    fn only_an_object_carrying_trustsyncs_own_mark_is_taken_over() {
        let set = "Payments engineers [trustsync trustsync.dev/owner=prod]";
        let group = "[trustsync trustsync.dev/owner=prod]: AccessAssignment payments";
        assert_eq!(mark_in(set), Some("[trustsync trustsync.dev/owner=prod]"));
        assert!(
            carries_mark(Some(set), group),
            "a retry after a lost answer"
        );
        assert!(carries_mark(Some(group), set));
        assert!(
            !carries_mark(Some("Payments engineers"), set),
            "made by someone else"
        );
        assert!(!carries_mark(None, set), "no description");
        assert!(
            !carries_mark(Some("x [trustsync trustsync.dev/owner=staging]"), set),
            "another instance's"
        );
        assert!(
            !carries_mark(Some(set), "no mark in ours"),
            "nothing to compare"
        );
    }
}
