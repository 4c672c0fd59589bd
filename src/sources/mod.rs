//! Where the desired state comes from: the policy repository ([`policy`], YAML documents
//! loaded with a location for every field and validated) and the directory ([`directory`],
//! group memberships as a snapshot the pure stages read, from a tenant file or Graph).

pub mod directory;
pub mod policy;
