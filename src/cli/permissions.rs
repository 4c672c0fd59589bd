//! What trustsync needs: `iam-policy`, `entra-permissions`, `schema`.

use std::path::Path;

use anyhow::Context;

use super::{out, outln, ShowFormat};
use crate::adapters::aws::AwsClients;
use crate::config::Config;
use crate::sources::policy::{self};

/// `trustsync iam-policy`: the least-privilege policy, scoped to the policies' functions
/// when the directory exists; with many accounts, the hub's and the spoke role's.
pub(super) async fn iam_policy(
    config: &Config,
    policies: &Path,
    hub_role_arn: Option<String>,
) -> anyhow::Result<u8> {
    let set = if policies.exists() {
        Some(policy::load_dir(policies, &config.limits).map_err(|e| anyhow::anyhow!("{e}"))?)
    } else {
        None
    };
    let hub = match hub_role_arn {
        Some(arn) => arn,
        None if config.accounts.is_hub() => {
            let aws = AwsClients::connect(&config.aws).await?;
            let caller = aws.caller_identity().await.context(
                "reading the hub's identity for the spoke trust policy (or pass --hub-role-arn)",
            )?;
            role_arn_of_caller(&caller.arn).with_context(|| {
                format!("{} is not a role session; pass --hub-role-arn", caller.arn)
            })?
        }
        None => String::new(),
    };
    let doc = crate::adapters::aws::permissions::iam_policies(config, set.as_ref(), &hub);
    outln!("{}", serde_json::to_string_pretty(&doc)?)?;
    if config.permissions_boundaries.is_empty() && !config.allow_unbounded_roles {
        eprintln!(
            "warning: no permissionsBoundaries in the config: trustsync creates and adopts no role (the secure default), and this policy lets the controller create none. Create a boundary policy in each account, name it in permissionsBoundaries, and print this policy again (docs/operations.md, \"The controller's own permissions\"); allowUnboundedRoles: true lifts this, at the cost it documents."
        );
    } else if config.permissions_boundaries.is_empty() {
        eprintln!(
            "warning: no permissionsBoundaries in the config. With this policy the controller's credentials can create a role under {path} carrying its owner tag, with no boundary and AdministratorAccess attached, then assume it; tag any role under {path} as its own and rewrite its trust; and remove a role's boundary: they are as strong as an account admin{hub}. Create a boundary policy in each account, name it in permissionsBoundaries, and print this policy again (docs/operations.md, \"The controller's own permissions\").",
            path = config.role_path,
            hub = if config.accounts.is_hub() { ", in every spoke account" } else { "" }
        );
    }
    Ok(0)
}

/// `trustsync entra-permissions`: the Graph permissions for the policies (all of them when
/// the directory does not exist).
pub(super) fn entra_permissions(
    config: &Config,
    policies: &Path,
    output: ShowFormat,
) -> anyhow::Result<u8> {
    let set = if policies.exists() {
        Some(policy::load_dir(policies, &config.limits).map_err(|e| anyhow::anyhow!("{e}"))?)
    } else {
        None
    };
    let p = crate::adapters::entra::permissions::entra_permissions(config, set.as_ref());
    match output {
        ShowFormat::Text => out!("{}", p.to_text())?,
        ShowFormat::Json => outln!("{}", serde_json::to_string_pretty(&p)?)?,
    }
    Ok(0)
}

/// The role of an assumed-role session ARN (`arn:aws:sts::ACCT:assumed-role/NAME/SESSION`
/// → `arn:aws:iam::ACCT:role/NAME`); a role ARN as it is.
pub(super) fn role_arn_of_caller(arn: &str) -> Option<String> {
    let a = crate::model::arn::ArnParts::parse(arn)?;
    if a.role_name().is_some() {
        return Some(arn.to_string());
    }
    if a.service != "sts" {
        return None;
    }
    let name = a
        .resource
        .strip_prefix("assumed-role/")?
        .split('/')
        .next()?;
    Some(format!(
        "arn:{}:iam::{}:role/{name}",
        a.partition, a.account
    ))
}

/// The JSON Schema of policy documents, as `trustsync schema` prints it.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(policy::PolicyDocument);
    serde_json::to_string_pretty(&schema).expect("schemas serialize")
}
