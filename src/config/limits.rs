//! The limits and guardrails the policies are checked against, as the config sets them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// AWS quotas and controller rules that policies are checked against. Defaults are AWS's
/// default quotas; raise them in the config when the account's quotas were raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Managed roles must lie under this path (set from the config's `rolePath`).
    #[serde(skip)]
    pub role_path: String,
    /// The boundaries a mapping may name (set from the config's `permissionsBoundaries`).
    #[serde(skip)]
    pub permissions_boundaries: Vec<String>,
    /// Role trust policy length, without white space (2,048; quota up to 4,096).
    pub trust_policy_chars: usize,
    /// Aggregate inline policy length per role, without white space.
    pub inline_policy_chars: usize,
    /// Managed policies attached per role (10; quota up to 20).
    pub managed_policies_per_role: usize,
    /// Tags per role, the owner tag included.
    pub tags_per_role: usize,
    /// Size of a Lambda function's resource-based policy, in bytes.
    pub lambda_policy_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            role_path: "/trustsync/".into(),
            permissions_boundaries: Vec::new(),
            trust_policy_chars: 2048,
            inline_policy_chars: 10240,
            managed_policies_per_role: 10,
            tags_per_role: 50,
            lambda_policy_bytes: 20480,
        }
    }
}

/// The guardrails: rules every document must keep (docs/policy-reference.md,
/// "Guardrails"), as the config sets them; checked in [`crate::sources::policy::guardrails`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Guardrails {
    /// Managed policies no role may have attached (ARNs). Default: AWS's administrator
    /// and IAM-administering policies.
    pub denied_managed_policies: Vec<String>,
    /// When set, the only managed policies a role may have attached (besides the deny
    /// list, which still applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_managed_policies: Option<Vec<String>>,
    /// No Allow statement in an inline policy may grant `*`, `*:*`, any wildcard or
    /// `NotAction` of IAM, STS or Organizations, on `*` (or with `NotResource`).
    pub no_admin_statements: bool,
    /// No Allow statement in an inline policy (a role's or a permission set's) may grant an
    /// escalation action (docs/policy-reference.md, "Escalation actions": writing a
    /// principal's policies or trust, lifting a boundary, making credentials, passing any
    /// role to a service that runs code, assuming any role, Organizations and Identity
    /// Center writes) on more than the role itself: matched through wildcards, case and
    /// `NotAction`.
    pub no_escalation_actions: bool,
    /// Escalation actions a statement may grant anyway (e.g. `iam:CreateAccessKey` for a
    /// team that rotates its own users' keys); each one a decision.
    pub allowed_escalation_actions: Vec<String>,
    /// The AWS services a role may trust (`trustedServices`).
    pub trusted_services: Vec<String>,
    /// The AWS services that may invoke a function (`invokers[].service`).
    pub invoker_services: Vec<String>,
    /// A service invoker needs `sourceArn` or `sourceAccount` (else any resource of that
    /// service, in any account, may invoke: the confused deputy).
    pub service_invokers_need_source: bool,
    /// The accounts an invoker principal (an account id or an ARN) may belong to. Unset:
    /// the managed accounts.
    /// They are also the accounts an invoker's `sourceAccount` (and the account in its
    /// `sourceArn`) may be. When `validate` knows neither these nor the managed accounts
    /// (`accounts.targets`), such invokers are refused: it fails closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoker_accounts: Option<Vec<String>>,
    /// The actions an invoker may be granted (`invokers[].action`).
    pub invoker_actions: Vec<String>,
    /// The Entra tenants an IdentityProvider may name. Unset: the controller's own tenant
    /// (the directory's: `AZURE_TENANT_ID`, or the tenant file's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_tenants: Option<Vec<String>>,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails {
            denied_managed_policies: [
                "AdministratorAccess",
                "PowerUserAccess",
                "IAMFullAccess",
                "AWSOrganizationsFullAccess",
                "job-function/SystemAdministrator",
            ]
            .iter()
            .map(|p| format!("arn:aws:iam::aws:policy/{p}"))
            .collect(),
            allowed_managed_policies: None,
            no_admin_statements: true,
            no_escalation_actions: true,
            allowed_escalation_actions: Vec::new(),
            trusted_services: vec!["lambda.amazonaws.com".into()],
            invoker_services: [
                "apigateway",
                "events",
                "scheduler",
                "s3",
                "sns",
                "sqs",
                "logs",
                "elasticloadbalancing",
                "cognito-idp",
                "iot",
            ]
            .iter()
            .map(|s| format!("{s}.amazonaws.com"))
            .collect(),
            service_invokers_need_source: true,
            invoker_accounts: None,
            invoker_actions: vec!["lambda:InvokeFunction".into()],
            allowed_tenants: None,
        }
    }
}
