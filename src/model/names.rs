//! Names that must not be mixed up, as types: a role name is not an ARN, a mapping's name
//! is not a role's, an Entra object id is not a display name. Each wraps a `String`,
//! serializes as one, and reads as a `&str` where one is wanted.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

macro_rules! names {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                $name(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl From<&$name> for String {
            fn from(n: &$name) -> String {
                n.0.clone()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    )+};
}

names! {
    /// An IAM role name (1 to 64 characters; compared case-insensitively by IAM).
    RoleName;
    /// An Amazon Resource Name.
    Arn;
    /// The `metadata.name` of a policy document: what a change is for, what `--release`
    /// names.
    MappingName;
    /// An Entra ID object id (a GUID): a group, service principal, user or device.
    ObjectId;
    /// The `Sid` of a statement in a Lambda function's resource policy.
    StatementId;
}

/// The inline policy trustsync writes on a role to deny departed principals' sessions
/// (reserved: no mapping may name an inline policy so).
pub const SESSIONS_POLICY: &str = "trustsync-revoked-sessions";

/// The issuer of an IAM OIDC provider ARN (`arn:aws:iam::<account>:oidc-provider/<issuer
/// without https://>`): the one place such an ARN is taken apart. `None` for another ARN.
pub fn provider_issuer(arn: &str) -> Option<&str> {
    arn.split_once(":oidc-provider/").map(|(_, issuer)| issuer)
}
