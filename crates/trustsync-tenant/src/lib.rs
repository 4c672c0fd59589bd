//! The tenant file: an Entra directory's groups, objects, app registrations and
//! applications in Microsoft Graph's field names. trustsync reads it for offline dry runs
//! and its tests; the local Graph server serves it. Both read it through this one crate,
//! so the server does not depend on the product (or the AWS SDKs) to share the format.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A tenant file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tenant file could not be read.
    #[error("cannot read tenant file {path}: {source}")]
    Read {
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The tenant file is not valid.
    #[error("tenant file {path}: {message}")]
    Invalid {
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
}

/// Display names compare as Microsoft Graph's `$filter=displayName eq '…'` does:
/// case-insensitively.
pub fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// The tenant file: a directory's groups and objects, in Graph's field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantFile {
    pub tenant_id: String,
    /// Groups with their direct member ids.
    #[serde(default)]
    pub groups: Vec<TenantGroup>,
    #[serde(default)]
    pub service_principals: Vec<TenantObject>,
    #[serde(default)]
    pub users: Vec<TenantObject>,
    #[serde(default)]
    pub devices: Vec<TenantObject>,
    /// App registrations the local Graph server's token endpoint accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<TenantClient>,
    /// Applications (app registration objects) the local Graph server serves under
    /// `/applications`, with their owners and federated identity credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<TenantApplication>,
}

/// An application object of the tenant file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantApplication {
    /// Object id.
    pub id: String,
    /// Application (client) id.
    pub app_id: String,
    #[serde(default)]
    pub display_name: String,
    /// Object ids of its owners (service principals of the tenant file): an app granted
    /// `Application.ReadWrite.OwnedBy` may change only the applications it owns.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Its federated identity credentials at start.
    #[serde(default)]
    pub federated_identity_credentials: Vec<TenantFederatedIdentityCredential>,
    /// Application ID URIs (`api://...`): the names a client may ask a token for, besides
    /// the client id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier_uris: Vec<String>,
    /// The API it exposes; decides the version of the access tokens issued for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<TenantApplicationApi>,
}

/// An application's `api` property, as Graph's application resource has it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantApplicationApi {
    /// `requestedAccessTokenVersion` (the manifest's `accessTokenAcceptedVersion`): 2 for
    /// v2.0 access tokens; 1 or absent for v1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_access_token_version: Option<u8>,
}

impl TenantApplication {
    /// The version of the access tokens Entra issues for this application as a resource:
    /// v2 only when `api.requestedAccessTokenVersion` is 2 (Microsoft's access token
    /// claims reference: null or 1 mean v1.0).
    pub fn access_token_version(&self) -> u8 {
        match self
            .api
            .as_ref()
            .and_then(|a| a.requested_access_token_version)
        {
            Some(2) => 2,
            _ => 1,
        }
    }
}

/// A federated identity credential of an application, in Graph's field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantFederatedIdentityCredential {
    pub name: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An app registration's credentials, for the local Graph server's token endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantClient {
    /// Application (client) id.
    pub client_id: String,
    /// A client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// PEM public key of the certificate credential (client assertions signed with RS256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    /// A federated identity credential (Kubernetes workload identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated: Option<FederatedCredential>,
}

/// What a federated token must say to be exchanged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederatedCredential {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `sub`.
    pub subject: String,
}

/// A group of the tenant file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantGroup {
    /// Object id.
    pub id: String,
    pub display_name: String,
    /// Direct member object ids (service principals, users, devices or groups).
    #[serde(default)]
    pub members: Vec<String>,
}

/// A non-group object of the tenant file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantObject {
    /// Object id.
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    /// Application (client) id, for service principals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Sign-in name, for users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    /// For service principals: the tenant that owns the application
    /// (`appOwnerOrganizationId`); absent: this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_owner_organization_id: Option<String>,
    /// For service principals: `Application` (the default) or `ManagedIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal_type: Option<String>,
    /// Whether the account may sign in (users, service principals, devices); absent: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_enabled: Option<bool>,
    /// For users: `Member` (the default) or `Guest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_type: Option<String>,
    /// For users: the SMTP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<String>,
    /// For users: the given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// For users: the family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surname: Option<String>,
}

impl TenantFile {
    /// Reads a tenant file.
    pub fn load(path: &Path) -> Result<TenantFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
        let tenant: TenantFile = serde_json::from_str(&text).map_err(|e| Error::Invalid {
            path: path.into(),
            message: e.to_string(),
        })?;
        tenant.check().map_err(|message| Error::Invalid {
            path: path.into(),
            message,
        })?;
        Ok(tenant)
    }

    /// Object ids unique, every member and application owner an object of the file.
    pub fn check(&self) -> Result<(), String> {
        let mut ids = BTreeSet::new();
        let all = self.groups.iter().map(|g| &g.id).chain(
            self.service_principals
                .iter()
                .chain(&self.users)
                .chain(&self.devices)
                .map(|o| &o.id),
        );
        for id in all {
            if !ids.insert(id) {
                return Err(format!("object id {id} appears twice"));
            }
        }
        for g in &self.groups {
            if let Some(m) = g.members.iter().find(|m| !ids.contains(m)) {
                return Err(format!("group {} lists unknown member {m}", g.display_name));
            }
        }
        let sps: BTreeSet<&String> = self.service_principals.iter().map(|o| &o.id).collect();
        for a in &self.applications {
            if !ids.insert(&a.id) {
                return Err(format!("object id {} appears twice", a.id));
            }
            if let Some(o) = a.owners.iter().find(|o| !sps.contains(o)) {
                return Err(format!(
                    "application {} lists owner {o}, which is not a service principal of the file",
                    a.app_id
                ));
            }
        }
        Ok(())
    }
}
