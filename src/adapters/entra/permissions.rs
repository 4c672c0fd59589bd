//! The Microsoft Graph permissions trustsync's own app registration needs
//! (`trustsync entra-permissions`), from what the policies use: the Entra counterpart of
//! the least-privilege IAM policy. Application permissions (app roles of Microsoft Graph),
//! each with the reason it is needed, and the applications trustsync's service principal
//! must own.

use serde::Serialize;

use crate::config::Config;
use crate::sources::policy::PolicySet;

/// Microsoft Graph's application id, the API the permissions belong to.
pub const MICROSOFT_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// One application permission.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// Its name (`GroupMember.Read.All`).
    pub name: &'static str,
    /// The app role id, as `az ad app permission add` takes it.
    pub id: &'static str,
    /// Needed by what the policies use (else: recommended).
    pub required: bool,
    /// What it is for.
    pub why: &'static str,
}

/// An application trustsync must own, and the documents that name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Owned {
    pub app_id: String,
    pub function_access: Vec<String>,
}

/// What `entra-permissions` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntraPermissions {
    /// The API the permissions are of.
    pub api: &'static str,
    pub permissions: Vec<Permission>,
    /// The applications whose owners must include trustsync's service principal.
    pub owner_of: Vec<Owned>,
}

const GROUP_MEMBERS: Permission = Permission {
    name: "GroupMember.Read.All",
    id: "98830695-27a2-44f7-8c18-0c3ebc9698f6",
    required: true,
    why: "read the members of the groups RoleMappings map (and the delta feed run follows)",
};

const AUDIT_LOG: Permission = Permission {
    name: "AuditLog.Read.All",
    id: "b0afded3-3588-46d8-8b3d-9842eff778da",
    required: false,
    why: "record who changed a group, and when, with each grant and revocation (without it: a notice each pass, nothing held back)",
};

const GROUP_SUBSCRIPTIONS: Permission = Permission {
    name: "Group.Read.All",
    id: "5b567255-7703-4780-807c-7be8301ae99b",
    required: true,
    why: "subscribe to change notifications on groups (directory.graph.notifications), Graph's least privilege for that; without it the subscription fails and polling alone goes on",
};

const OWNED_APPLICATIONS: Permission = Permission {
    name: "Application.ReadWrite.OwnedBy",
    id: "18a4783c-866b-4cc7-a460-3d5e5662c884",
    required: true,
    why: "write the federated identity credentials that let functions act as Entra applications (FunctionAccess entraApplication), on the applications trustsync's service principal owns and no other",
};

const USERS: Permission = Permission {
    name: "User.Read.All",
    id: "df021288-bdef-4463-88db-98f22de89214",
    required: false,
    why: "read users' principal name, enabled state and type, to match IAM Identity Center users to Entra users (access --people); the narrower User.ReadBasic.All does not include accountEnabled",
};

const PEOPLE: Permission = Permission {
    name: "User.Read.All",
    id: "df021288-bdef-4463-88db-98f22de89214",
    required: true,
    why: "read every user's principal name, enabled state, type and names, and follow their changes (/users/delta), to provision and de-provision people (AccessAssignment); the narrower User.ReadBasic.All does not include accountEnabled",
};

/// The permissions for this config and policy set; without a policy set, every
/// permission any policy could need.
pub fn entra_permissions(config: &Config, policies: Option<&PolicySet>) -> EntraPermissions {
    let people = policies.is_none_or(|p| !p.access_assignments.is_empty());
    let groups =
        people || policies.is_none_or(|p| p.role_mappings.iter().any(|m| m.spec.group.is_some()));
    let outbound = policies.is_none_or(|p| {
        p.functions
            .iter()
            .any(|f| f.spec.entra_application.is_some())
    }) || config.outbound_federation.enable
        || !config.outbound_federation.issuer_urls.is_empty();
    let mut permissions = Vec::new();
    if groups {
        permissions.push(GROUP_MEMBERS);
        permissions.push(AUDIT_LOG);
    }
    if groups && config.directory.graph.notifications.is_some() {
        permissions.push(GROUP_SUBSCRIPTIONS);
    }
    if outbound {
        permissions.push(OWNED_APPLICATIONS);
    }
    if people {
        permissions.push(PEOPLE);
    } else if config.identity_center != Default::default() {
        permissions.push(USERS);
    }
    let mut owner_of: Vec<Owned> = Vec::new();
    for f in policies.into_iter().flat_map(|p| &p.functions) {
        let Some(app) = &f.spec.entra_application else {
            continue;
        };
        match owner_of
            .iter_mut()
            .find(|o| o.app_id.eq_ignore_ascii_case(&app.app_id))
        {
            Some(o) => o.function_access.push(f.name.to_string()),
            None => owner_of.push(Owned {
                app_id: app.app_id.clone(),
                function_access: vec![f.name.to_string()],
            }),
        }
    }
    EntraPermissions {
        api: MICROSOFT_GRAPH_APP_ID,
        permissions,
        owner_of,
    }
}

impl EntraPermissions {
    /// For people: the permissions, the applications to own, and the Azure CLI commands
    /// that grant them.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::from(
            "Microsoft Graph application permissions for trustsync's app registration (admin consent needed):\n\n",
        );
        if self.permissions.is_empty() {
            out.push_str("  none: these policies read no group and write no credential\n");
        }
        for p in &self.permissions {
            let need = if p.required { "required" } else { "optional" };
            let _ = writeln!(out, "  {:<30} {}  {need}\n      {}", p.name, p.id, p.why);
        }
        if !self.owner_of.is_empty() {
            out.push_str(
                "\ntrustsync's service principal must be an owner of these applications:\n",
            );
            for o in &self.owner_of {
                let _ = writeln!(
                    out,
                    "  {}  (FunctionAccess {})",
                    o.app_id,
                    o.function_access.join(", ")
                );
            }
        }
        if !self.permissions.is_empty() {
            let roles: Vec<String> = self
                .permissions
                .iter()
                .map(|p| format!("{}=Role", p.id))
                .collect();
            let _ = write!(
                out,
                "\nWith the Azure CLI:\n  az ad app permission add --id \"$AZURE_CLIENT_ID\" --api {} --api-permissions {}\n  az ad app permission admin-consent --id \"$AZURE_CLIENT_ID\"\n",
                self.api,
                roles.join(" ")
            );
        }
        for o in &self.owner_of {
            let _ = writeln!(
                out,
                "  az ad app owner add --id {} --owner-object-id \"$(az ad sp show --id \"$AZURE_CLIENT_ID\" --query id -o tsv)\"",
                o.app_id
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_policies_every_permission_is_listed() {
        let p = entra_permissions(&Config::default(), None);
        let names: Vec<&str> = p.permissions.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "GroupMember.Read.All",
                "AuditLog.Read.All",
                "Application.ReadWrite.OwnedBy",
                "User.Read.All"
            ]
        );
        assert!(p
            .to_text()
            .contains("98830695-27a2-44f7-8c18-0c3ebc9698f6=Role"));
    }

    #[test]
    fn access_assignments_need_the_users_and_their_groups() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.yaml"),
            "apiVersion: trustsync.dev/v1alpha1\nkind: AccessAssignment\nmetadata: {name: ops}\nspec:\n  group: {displayName: g}\n  permissionSet: {name: Ops}\n",
        )
        .unwrap();
        let set = crate::sources::policy::load_dir(dir.path(), &Default::default()).unwrap();
        let p = entra_permissions(&Config::default(), Some(&set));
        let names: Vec<(&str, bool)> = p.permissions.iter().map(|p| (p.name, p.required)).collect();
        assert_eq!(
            names,
            [
                ("GroupMember.Read.All", true),
                ("AuditLog.Read.All", false),
                ("User.Read.All", true)
            ]
        );
    }

    #[test]
    fn the_outbound_permission_only_when_a_function_acts_as_an_application() {
        let set = PolicySet::default();
        let p = entra_permissions(&Config::default(), Some(&set));
        assert!(p.permissions.is_empty(), "{p:?}");
        let mut config = Config::default();
        config.outbound_federation.enable = true;
        let p = entra_permissions(&config, Some(&set));
        assert_eq!(p.permissions[0].name, "Application.ReadWrite.OwnedBy");
    }
}
