//! Controller configuration: one YAML file, every setting with a documented default.
//!
//! Credentials never live here: AWS comes from the standard AWS chain (environment,
//! profile, web identity; `AWS_ENDPOINT_URL` overrides the endpoint).

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod accounts;
pub(crate) mod check;
mod limits;
pub use accounts::{AccountTarget, AccountsConfig, OrganizationDiscovery};
pub use limits::{Guardrails, Limits};

/// Why the config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid config.
    #[error("{path}:{line}:{column}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted field path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// The controller's configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// AWS settings beyond the standard credential chain.
    pub aws: AwsConfig,
    /// The AWS accounts to manage (hub and spoke); none: the credentials' own account.
    pub accounts: AccountsConfig,
    /// The tag that marks what trustsync owns.
    pub owner_tag: OwnerTag,
    /// Path prefix of managed roles; every mapped role lies under it.
    pub role_path: String,
    /// The permissions boundaries every role trustsync creates or adopts must carry:
    /// managed policy names, with their path when it is not `/` (`workload-boundary`,
    /// `boundaries/workload`), in each managed account. The first is the default for a
    /// mapping that names none; a mapping may name only these. `iam-policy` lets the
    /// controller create roles and set boundaries with these alone, and never remove one
    /// or edit these policies, so its credentials cannot make a role stronger than them.
    /// Empty (the default): no boundary is required, and `iam-policy` says what the
    /// controller could then do.
    pub permissions_boundaries: Vec<String>,
    /// Let trustsync create and adopt roles with no `permissionsBoundaries` configured
    /// (`TRUSTSYNC_ALLOW_UNBOUNDED_ROLES`).
    /// Off (the default): with no boundary configured, `apply` and `run` create and adopt
    /// no role (a `guardrail` problem naming `permissionsBoundaries`); they still update
    /// and revoke the roles they own. What turning it on costs: the controller's own
    /// policy (`iam-policy`) must then let it create a role with no boundary, so whoever
    /// holds its credentials can create a role under `rolePath` with
    /// AdministratorAccess attached and assume it: they are as strong as an account
    /// administrator, in every managed account.
    pub allow_unbounded_roles: bool,
    /// Prefix of the Lambda policy statement ids trustsync writes (at most 40 characters).
    /// A short hash of the owner tag value follows it, so that two instances never take
    /// each other's statements for their own.
    pub statement_id_prefix: String,
    /// Delete owned roles and statements that no policy wants any more. Off: they are
    /// reported as orphans.
    pub prune: bool,
    /// Limits on what one pass may remove.
    pub safety: Safety,
    /// AWS quotas policies are checked against.
    pub limits: Limits,
    /// What one merged change to the policy repository may grant; each rule on by
    /// default and set one by one.
    pub guardrails: Guardrails,
    /// Where group memberships come from.
    pub directory: DirectoryConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// `trustsync run`.
    pub run: RunConfig,
    /// AWS outbound identity federation (Lambda functions acting as Entra applications).
    pub outbound_federation: OutboundFederationConfig,
    /// IAM Identity Center: where people's access is read (`access --people`).
    pub identity_center: IdentityCenterConfig,
}

/// IAM Identity Center: the instance and its region. Read with the credentials of the
/// account that administers it (the organization's management account or its delegated
/// administrator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IdentityCenterConfig {
    /// The instance ARN (`arn:aws:sso:::instance/ssoins-...`); default: the one instance
    /// `sso:ListInstances` shows.
    pub instance_arn: Option<String>,
    /// The region Identity Center is enabled in; default `aws.region`.
    pub region: Option<String>,
    /// `run` reads each permission set trustsync owns in full (description, session
    /// duration, policies, boundary, tags, assignments) at least this often; between those
    /// reads a full pass takes what the last one showed, unless trustsync wrote the set
    /// since or the pass would change anything of its document. Group memberships are read
    /// every pass. 0: every set in full every pass.
    pub full_read_seconds: u64,
}

impl Default for IdentityCenterConfig {
    fn default() -> Self {
        IdentityCenterConfig {
            instance_arn: None,
            region: None,
            full_read_seconds: 3600,
        }
    }
}

/// AWS outbound identity federation: where each account's token issuer is, and whether
/// trustsync may turn the account-wide feature on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OutboundFederationConfig {
    /// Turn outbound identity federation on (`iam:EnableOutboundWebIdentityFederation`) in
    /// an account whose functions need it and where it is off. Off (the default): such an
    /// account is reported as a problem and a person decides.
    pub enable: bool,
    /// The issuer URL per account id, pinned: what AWS reports for the account
    /// (`iam:GetOutboundWebIdentityFederationInfo`) must be this, or the account's outbound
    /// credentials are refused (a problem; nothing is written). `https`. Builds for the
    /// local test servers (`loopback-graph`) also take a loopback stand-in issuer as the
    /// account's, since moto has no outbound federation; production builds refuse one.
    pub issuer_urls: std::collections::BTreeMap<String, String>,
}

/// A URL on this machine (the local test servers): the only place plain `http` is
/// accepted, for the Graph endpoint, the authority host and an outbound issuer alike.
pub fn is_loopback(url: &url::Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
}

impl OutboundFederationConfig {
    fn check(&self) -> Result<(), (&'static str, String)> {
        for (account, url) in &self.issuer_urls {
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err((
                    "outboundFederation.issuerUrls",
                    format!("`{account}` is not a 12-digit AWS account id"),
                ));
            }
            let parsed = url::Url::parse(url).map_err(|e| {
                (
                    "outboundFederation.issuerUrls",
                    format!("{account}: `{url}` is not a URL: {e}"),
                )
            })?;
            let loopback = is_loopback(&parsed);
            if loopback && !cfg!(feature = "loopback-graph") {
                return Err((
                    "outboundFederation.issuerUrls",
                    format!("{account}: `{url}` is a local stand-in issuer, which only builds for the local test servers accept; an entry pins the issuer AWS reports for the account (https://<id>.tokens.sts.global.api.aws)"),
                ));
            }
            if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
                return Err((
                    "outboundFederation.issuerUrls",
                    format!(
                        "{account}: `{url}`: an issuer is https (http only on a loopback host)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `trustsync run` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RunConfig {
    /// Seconds between full passes (`TRUSTSYNC_INTERVAL_SECONDS`).
    pub interval_seconds: u64,
    /// Seconds between Graph delta polls (or tenant file checks).
    pub directory_poll_seconds: u64,
    /// Seconds between checks of the policy files.
    pub policy_poll_seconds: u64,
    /// Address for /healthz, /readyz, /metrics and /status (`TRUSTSYNC_LISTEN`).
    #[schemars(with = "String")]
    pub listen: std::net::SocketAddr,
    /// After SIGTERM, the longest the controller waits for the pass under way (its retry
    /// waits end at once; a request already sent may take up to its timeout) before it
    /// exits anyway. Writes it leaves without an answer are found again through the audit
    /// log's intents at the next start. Keep it below the pod's termination grace period
    /// (the chart gives 60 s).
    pub shutdown_seconds: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            interval_seconds: 300,
            directory_poll_seconds: 5,
            policy_poll_seconds: 10,
            listen: std::net::SocketAddr::from(([0, 0, 0, 0], 8080)),
            shutdown_seconds: 30,
        }
    }
}

/// AWS settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Region for Lambda; unset: from the AWS chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// Longest time one AWS request may take before it counts as a (transient) timeout.
    pub request_timeout_seconds: u64,
    /// How long one request (a read or a change) may keep being retried on transient
    /// errors. Keep it, plus `requestTimeoutSeconds`, below the pod's termination grace
    /// period (the chart gives 60 s) so that a change under way at SIGTERM finishes or
    /// fails before the pod is killed; shutdown also ends any retry wait at once.
    pub max_retry_seconds: u64,
    /// Client-side request rate limits, so that trustsync stays under the account's API
    /// quotas.
    pub max_requests_per_second: RequestRates,
    /// Writes under way at once, per service.
    pub write_concurrency: WriteConcurrency,
}

/// Requests per second, per AWS service or Lambda operation class; 0 means no limit.
/// Lambda's defaults are its published per-account, per-region quotas, which cannot be
/// raised: `GetFunction`/`GetFunctionConfiguration` about 100/s, `GetPolicy` about 15/s,
/// and every other control-plane request (`GetAlias`, `AddPermission`, `RemovePermission`,
/// `UpdateFunctionConfiguration`, tagging) about 15/s shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RequestRates {
    /// IAM (no published per-API rates; unlimited unless set).
    pub iam: f64,
    /// STS.
    pub sts: f64,
    /// The Resource Groups Tagging API.
    pub tagging: f64,
    /// AWS Organizations (finding accounts), which throttles early.
    pub organizations: f64,
    /// Lambda `GetFunction` and `GetFunctionConfiguration`.
    pub lambda_get_function: f64,
    /// Lambda `GetPolicy`.
    pub lambda_get_policy: f64,
    /// Every other Lambda control-plane request, shared.
    pub lambda_control_plane: f64,
    /// IAM Identity Center administration (`sso:`), across all its APIs: AWS documents 20
    /// requests per second for the SSO admin APIs together.
    pub identity_center: f64,
    /// The identity store (`identitystore:`), per API: AWS documents 20 requests per second
    /// for each.
    pub identity_store_per_api: f64,
}

impl Default for RequestRates {
    fn default() -> Self {
        RequestRates {
            iam: 0.0,
            sts: 0.0,
            tagging: 0.0,
            organizations: 5.0,
            lambda_get_function: 100.0,
            lambda_get_policy: 15.0,
            lambda_control_plane: 15.0,
            identity_center: 20.0,
            identity_store_per_api: 20.0,
        }
    }
}

/// How many writes may be under way at once, per service. Writes to one resource stay in
/// order (one Lambda function's writes one after another), and each phase of the plan
/// finishes before the next starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WriteConcurrency {
    /// IAM writes.
    pub iam: usize,
    /// Lambda writes.
    pub lambda: usize,
    /// IAM Identity Center account assignments being created at once, each until its
    /// status says done: AWS documents 15 outstanding `CreateAccountAssignment` requests.
    pub identity_center_assignments: usize,
    /// Permission sets being provisioned at once, each until done: AWS documents 3
    /// concurrent `ProvisionPermissionSet` requests.
    pub identity_center_provisions: usize,
}

impl Default for WriteConcurrency {
    fn default() -> Self {
        WriteConcurrency {
            iam: 8,
            lambda: 4,
            identity_center_assignments: 15,
            identity_center_provisions: 3,
        }
    }
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            region: None,
            request_timeout_seconds: 10,
            max_retry_seconds: 30,
            max_requests_per_second: RequestRates::default(),
            write_concurrency: WriteConcurrency::default(),
        }
    }
}

/// The owner tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct OwnerTag {
    /// Tag key.
    pub key: String,
    /// Tag value: distinguishes controller instances sharing one account.
    pub value: String,
}

impl Default for OwnerTag {
    fn default() -> Self {
        OwnerTag {
            key: "trustsync.dev/owner".into(),
            value: "trustsync".into(),
        }
    }
}

/// Limits on what one pass may remove; a pass over them stops before changing anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Safety {
    /// Largest share (0 to 1) of the principals trusted by owned roles that one pass may
    /// remove, counted over all roles.
    pub max_principal_removal_share: f64,
    /// Largest share (0 to 1) of owned roles that one pass may delete (with prune on).
    pub max_role_deletion_share: f64,
    /// Removals up to this many principals are always allowed, whatever the share (so a
    /// small tenant can lose its one member).
    pub principal_removal_floor: usize,
    /// Removals are measured against the most principals a role trusted within this many
    /// seconds (recorded in the audit log and on the role), so that several quick passes
    /// cannot together remove more than one pass may.
    pub removal_window_seconds: u64,
    /// How long after trustsync writes a revocation it takes to be in effect everywhere:
    /// a departed principal's sessions issued up to this long after the write are denied
    /// too (the session cut-off is the write's time plus this). AWS documents IAM as
    /// eventually consistent, its changes visible everywhere within "a few minutes" (IAM
    /// User Guide, "Troubleshoot IAM: changes that I make are not always immediately
    /// visible"); the default, 300 seconds, is that few minutes, and also covers a small
    /// skew between this host's clock and AWS's.
    pub propagation_seconds: u64,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            max_principal_removal_share: 0.5,
            max_role_deletion_share: 0.25,
            principal_removal_floor: 1,
            removal_window_seconds: 3600,
            propagation_seconds: 300,
        }
    }
}

/// Where group memberships come from: Microsoft Graph, unless a tenant file is named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// A tenant file (JSON, the format of `examples/tenant.json`) read instead of Graph,
    /// e.g. for an offline dry run.
    pub tenant_file: Option<PathBuf>,
    /// Microsoft Graph.
    pub graph: GraphConfig,
    /// `run` keeps memberships current with Graph delta queries; every this many seconds it
    /// also re-reads the mapped groups in full and corrects the cache where they differ
    /// (a missed or mis-applied delta would otherwise last until the delta token expires).
    pub full_read_seconds: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            tenant_file: None,
            graph: GraphConfig::default(),
            full_read_seconds: 3600,
        }
    }
}

/// Microsoft Graph settings. Credentials come from the Azure SDK environment variables
/// (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, and `AZURE_CLIENT_SECRET`,
/// `AZURE_CLIENT_CERTIFICATE_PATH` or `AZURE_FEDERATED_TOKEN_FILE`; `AZURE_AUTHORITY_HOST`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GraphConfig {
    /// Graph base URL (`TRUSTSYNC_GRAPH_ENDPOINT`); plain http only for loopback.
    pub endpoint: String,
    /// Token scope.
    pub scope: String,
    /// How long one request keeps being retried on throttling and 5xx. Retry waits end
    /// at once on SIGTERM.
    pub max_retry_seconds: u64,
    /// Longest time one Graph request may go unanswered before it counts as a (transient)
    /// timeout. With `aws.requestTimeoutSeconds`, it bounds how long a request already
    /// sent can hold up shutdown.
    pub request_timeout_seconds: u64,
    /// The longest `Retry-After` honoured; a longer one fails the read.
    pub max_retry_after_seconds: u64,
    /// Graph change notifications (`trustsync run`): a change to a group starts a delta
    /// poll at once instead of at the next `run.directoryPollSeconds`. None: polling only.
    pub notifications: Option<NotificationsConfig>,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            endpoint: "https://graph.microsoft.com/v1.0".into(),
            scope: "https://graph.microsoft.com/.default".into(),
            max_retry_seconds: 120,
            request_timeout_seconds: 20,
            max_retry_after_seconds: 120,
            notifications: None,
        }
    }
}

/// Microsoft Graph change notifications on groups. The controller subscribes at start (the
/// app needs `Group.Read.All`), renews before expiry, answers Graph's validation and
/// lifecycle notifications, and unsubscribes on SIGTERM. A notification only starts a
/// delta poll: what changed is read from Graph, never taken from the notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationsConfig {
    /// The public `https` URL Graph posts to, routed to the controller's listener at
    /// `/graph/notifications` (TLS ends at the ingress); `http` only on a loopback host.
    pub url: String,
    /// How long a subscription lives, in minutes (renewed at half): 45 to 41760, Graph's
    /// limit for groups.
    #[serde(default = "default_subscription_minutes")]
    pub expiration_minutes: u64,
}

fn default_subscription_minutes() -> u64 {
    4320
}

/// The path on the controller's listener that Graph's notifications are routed to.
pub const NOTIFICATIONS_PATH: &str = "/graph/notifications";

/// The audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuditConfig {
    /// JSON-lines file every change is appended to.
    pub path: PathBuf,
    /// Ed25519 private key (PKCS#8 PEM) that signs checkpoints; none: no checkpoints
    /// (unless `kmsKeyId`). Mount it from a Secret, never the config's ConfigMap.
    pub signing_key_file: Option<PathBuf>,
    /// An asymmetric AWS KMS key (its key ARN; spec `ECC_NIST_P256`, usage `SIGN_VERIFY`)
    /// that signs checkpoints through `kms:Sign` (`ECDSA_SHA_256`), so that the key never
    /// enters the pod. Needs `publicKeyFile`. Instead of `signingKeyFile`.
    pub kms_key_id: Option<String>,
    /// The checkpoint key's public half (SubjectPublicKeyInfo PEM): required with
    /// `kmsKeyId` (`aws kms get-public-key`, as PEM); with `signingKeyFile` it must be that
    /// key's (derived from it when not set). Opening the log verifies the checkpoints with
    /// it; `plan` reads pins with it where the private key is not mounted.
    pub public_key_file: Option<PathBuf>,
    /// Ed25519 public keys (SPKI PEM) of the auditors: only an acknowledgement of a rotation
    /// signed with one of their private keys clears the alarm (`trustsync audit acknowledge
    /// --key`). None (the default): no acknowledgement can. Never the checkpoint key.
    pub auditor_public_key_files: Vec<PathBuf>,
    /// A signed checkpoint after this many lines (and after every pass).
    pub checkpoint_lines: usize,
    /// Where each checkpoint is also published, outside the file; none: nowhere.
    pub anchor: Option<AnchorConfig>,
    /// Keep the log in S3 instead of on the pod's volume (`path` is then a working copy,
    /// rebuilt from the bucket at every start), and elect one writer with a lease in the
    /// same bucket: replicas stand by, and `apply` takes the same lease. None: the file.
    pub s3: Option<S3AuditConfig>,
}

/// The audit log in S3: records appended as objects at consecutive positions with
/// `If-None-Match: *`, so that two writers never append the same position; the writers'
/// lease beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3AuditConfig {
    /// The bucket; it must have S3 Object Lock enabled (checked at start), so that no
    /// record, once written, can be deleted or overwritten while it is retained.
    pub bucket: String,
    /// The key prefix of this controller's log and lease.
    #[serde(default = "default_s3_prefix")]
    pub prefix: String,
    /// The bucket's region; default `aws.region`.
    pub region: Option<String>,
    /// The retention written on every object; none: the bucket's default retention.
    pub object_lock: Option<ObjectLockConfig>,
    /// The writers' lease.
    #[serde(default)]
    pub lease: LeaseConfig,
}

fn default_s3_prefix() -> String {
    "trustsync/".into()
}

/// S3 Object Lock retention for every object the log writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectLockConfig {
    /// `COMPLIANCE` (nobody, the root user included, can delete a record before its
    /// retention ends) or `GOVERNANCE` (who has `s3:BypassGovernanceRetention` can).
    pub mode: ObjectLockMode,
    /// Days each record is retained.
    pub retention_days: u32,
}

/// The Object Lock retention modes S3 documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ObjectLockMode {
    /// Nobody can shorten or remove the retention.
    #[serde(rename = "COMPLIANCE")]
    Compliance,
    /// Removable with `s3:BypassGovernanceRetention`.
    #[serde(rename = "GOVERNANCE")]
    Governance,
}

/// The lease replicas (and `apply`) contend for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LeaseConfig {
    /// A lease not renewed for this long (as a standby sees it, by its own clock) may be
    /// taken. The leader stops writing `renewSeconds` before its own last renewal is
    /// this old.
    pub duration_seconds: u64,
    /// The leader renews this often.
    pub renew_seconds: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            duration_seconds: 10,
            renew_seconds: 2,
        }
    }
}

/// A CloudWatch Logs stream that receives every signed checkpoint of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnchorConfig {
    /// The log group (it must exist; retention and a resource policy are yours to set).
    pub log_group: String,
    /// The stream in it (created when missing).
    pub log_stream: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: PathBuf::from("trustsync-audit.jsonl"),
            signing_key_file: None,
            kms_key_id: None,
            public_key_file: None,
            auditor_public_key_files: Vec::new(),
            checkpoint_lines: 100,
            anchor: None,
            s3: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            aws: AwsConfig::default(),
            accounts: AccountsConfig::default(),
            owner_tag: OwnerTag::default(),
            role_path: "/trustsync/".into(),
            permissions_boundaries: Vec::new(),
            allow_unbounded_roles: false,
            statement_id_prefix: "trustsync-".into(),
            prune: false,
            safety: Safety::default(),
            limits: Limits::default(),
            guardrails: Default::default(),
            directory: DirectoryConfig::default(),
            audit: AuditConfig::default(),
            run: RunConfig::default(),
            outbound_federation: OutboundFederationConfig::default(),
            identity_center: IdentityCenterConfig::default(),
        }
    }
}

/// The ARN of a configured permissions boundary (`permissionsBoundaries` names) in an
/// account (`*` for any, as the controller's own policy names it).
pub fn boundary_arn(partition: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account}:policy/{name}")
}

/// `aws`, `aws-cn` or `aws-us-gov`, from a region name.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The longest `statementIdPrefix`.
pub const MAX_STATEMENT_ID_PREFIX: usize = 40;

pub(crate) fn short_hash(s: &str, bytes: usize) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Config {
    /// Reads a config file; a missing `path` means all defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, Error> {
        let mut config = match path {
            None => Config::default().finish(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                    path: path.into(),
                    source,
                })?;
                Self::parse(path, &text)?
            }
        };
        // `TRUSTSYNC_ALLOW_UNBOUNDED_ROLES` overrides `allowUnboundedRoles`.
        if let Ok(v) = std::env::var("TRUSTSYNC_ALLOW_UNBOUNDED_ROLES") {
            config.allow_unbounded_roles = match v.trim() {
                "true" | "1" => true,
                "false" | "0" | "" => false,
                other => {
                    return Err(Error::Invalid {
                        path: PathBuf::from("TRUSTSYNC_ALLOW_UNBOUNDED_ROLES"),
                        line: 0,
                        column: 0,
                        field: "allowUnboundedRoles".into(),
                        message: format!("`{other}` is not true or false"),
                    })
                }
            };
        }
        Ok(config)
    }

    /// Parses config text; `path` is used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
        let invalid = |line: usize, column: usize, field: String, message: String| Error::Invalid {
            path: path.into(),
            line,
            column,
            field,
            message,
        };
        let de = serde_yaml::Deserializer::from_str(text);
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_path_to_error::deserialize(de).map_err(|e| {
                let field = e.path().to_string();
                let inner = e.into_inner();
                let (line, column) = inner
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((0, 0));
                invalid(line, column, field, inner.to_string())
            })?
        };
        let config = config.finish();
        config
            .check()
            .map_err(|(field, message)| invalid(0, 0, field.into(), message))?;
        Ok(config)
    }

    /// The partition of the configured region (`aws` when unknown).
    pub fn partition(&self) -> &'static str {
        partition_of(self.aws.region.as_deref().unwrap_or(""))
    }

    /// The statement id prefix of this instance: `statementIdPrefix` and a short hash of
    /// the owner tag value. No instance's prefix is a prefix of another's.
    pub fn instance_statement_prefix(&self) -> String {
        format!(
            "{}{}-",
            self.statement_id_prefix,
            short_hash(&self.owner_tag.value, 3)
        )
    }

    /// The Lambda tag that marks a function whose policy this instance has written to; its
    /// value lists the qualifiers (aliases, versions) it wrote to, space-separated. One
    /// tagging query per pass finds every such function, so statements are found even
    /// after their FunctionAccess document is gone.
    pub fn function_tag_key(&self) -> String {
        format!(
            "trustsync.dev/functions-{}",
            short_hash(&self.owner_tag.value, 3)
        )
    }

    fn finish(mut self) -> Self {
        self.limits.role_path = self.role_path.clone();
        self.limits.permissions_boundaries = self.permissions_boundaries.clone();
        self
    }
}

#[cfg(test)]
mod tests;
