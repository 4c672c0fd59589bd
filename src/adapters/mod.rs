//! The edges: the only code that speaks to AWS ([`aws`]) or to Microsoft Graph ([`entra`]).
//!
//! Each adapter converts wire and SDK types into trustsync's own ([`crate::observed`],
//! [`crate::sources::directory::DirectorySnapshot`]) and classifies every failure once for
//! [`crate::ports::retry`]. Nothing outside this folder names an SDK type.

pub mod aws;
pub mod entra;
