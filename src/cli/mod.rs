//! Command-line wiring: reads flags, runs one stage after another, sets the exit code.
//!
//! Exit codes: 0 success (and, with `--detailed-exitcode`, no changes); 2 changes pending
//! (`plan --detailed-exitcode` only); 1 any error: a usage error, invalid input, a failed read, a problem
//! that kept a mapping from being planned, a change held by a safety limit, a failed
//! change. Output goes through [`output`], so a reader that closes it early ends a
//! command quietly with the same code. The pass itself lives in [`crate::runtime::pass`];
//! this module keeps flags and exit codes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::audit;
use crate::config::Config;
use crate::render::Format;
use output::{out, outln};

mod audit_cmd;
mod lease;
pub(crate) mod output;
mod passes;
mod permissions;
mod read;
mod reports;
use audit_cmd::*;
use passes::*;
pub use permissions::schema_json;
use permissions::*;
use read::*;
use reports::*;

/// Keeps AWS access in step with Entra ID groups: workloads (service principals) get IAM
/// roles and Lambda permissions, people get IAM Identity Center permission sets.
#[derive(Debug, Parser)]
#[command(name = "trustsync", version, long_about = None)]
pub struct Cli {
    /// Controller config file (YAML). Without it every setting takes its default.
    #[arg(long, global = true, env = "TRUSTSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "TRUSTSYNC_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,
    /// More log lines on stderr: `-v` info, `-vv` debug. Without it a one-shot command
    /// logs warnings only and `run` info; `TRUSTSYNC_LOG` (a tracing filter) wins over both.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// After a pass, print the requests it sent (AWS by operation, Microsoft Graph) to
    /// stderr.
    #[arg(long, global = true)]
    pub stats: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per event (for a cluster's log pipeline).
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the policy repository; report every problem with file, line and field.
    Validate(PolicyArgs),
    /// Print the JSON Schema of policy documents (for editors and yaml-language-server).
    Schema,
    /// Show what apply would change, without changing anything: IAM roles and Lambda
    /// permissions for workloads, IAM Identity Center users, groups, permission sets and
    /// assignments for people (AccessAssignment), Entra federated credentials.
    Plan(PlanArgs),
    /// Change AWS (and Entra's federated credentials) to match the policies, recording each
    /// change in the audit log.
    Apply(ApplyArgs),
    /// Reconcile for ever, workloads and people alike: on a timer, on directory changes
    /// (groups and users) and on policy changes; serve /healthz, /readyz, /metrics and
    /// /status.
    Run(RunArgs),
    /// Print the least-privilege IAM policy trustsync itself needs, for the configured role
    /// path and owner tag (Lambda access scoped to the functions of the policy repository).
    /// With `accounts` configured: the hub's policy, and the spoke role's policy and trust
    /// policy.
    IamPolicy(IamPolicyArgs),
    /// Print the Microsoft Graph application permissions trustsync's own app registration
    /// needs for the policies (GroupMember.Read.All, AuditLog.Read.All,
    /// Application.ReadWrite.OwnedBy), with why, the applications its service principal
    /// must own, and the Azure CLI commands that grant them.
    EntraPermissions(EntraPermissionsArgs),
    /// Who can assume each role that trusts the tenant's provider, through which (nested)
    /// groups and since when; with --principal, every role and function one workload
    /// reaches. Also lists such roles trustsync does not manage (access outside the policy
    /// repository). With --people: each person's IAM Identity Center permission sets per
    /// account, and who is disabled in Entra but still holds them. Reads live AWS, the
    /// directory and the audit log; changes nothing.
    Access(AccessArgs),
    /// Print policy YAML (RoleMapping, and IdentityProvider when missing, with `adopt:
    /// true`) for the roles that trust the tenant's provider but trustsync does not manage
    /// yet, and an AccessAssignment for each IAM Identity Center permission set a group
    /// holds that trustsync does not own. Changes nothing.
    Export(ReadArgs),
    /// Explain whether each role trusting the tenant's provider would accept an Entra
    /// access token, and why not: issuer form, audience, subject, lifetime. Reads the token
    /// from a file or stdin and never prints or sends it; its signature is not checked.
    CheckToken(CheckTokenArgs),
    /// Let the removals a safety limit holds for one document (RoleMapping or
    /// AccessAssignment) through, once, while `trustsync run` holds the audit log: during
    /// an incident, without stopping the controller. Leaves the request next to the audit
    /// log; the controller takes it at its next directory poll, records who released it
    /// and why, and starts a pass over that document at once.
    Release(ReleaseArgs),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a shell completion script (e.g. `trustsync completions bash >
    /// /etc/bash_completion.d/trustsync`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), generated from the same definitions as `--help`
    /// (e.g. `trustsync man > /usr/local/share/man/man1/trustsync.1`).
    Man,
}

/// `run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pass: PassArgs,
    /// Address for /healthz, /readyz, /metrics and /status (overrides run.listen).
    #[arg(long, env = "TRUSTSYNC_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Seconds between full passes (overrides run.intervalSeconds).
    #[arg(long, env = "TRUSTSYNC_INTERVAL_SECONDS")]
    interval_seconds: Option<u64>,
}

/// Audit log tools.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check an audit log: its hash chain and, with the public key, its signed
    /// checkpoints; names the first bad line.
    Verify {
        /// The log file.
        file: PathBuf,
        /// The checkpoint key's public half (SPKI PEM): of `audit.signingKeyFile` (Ed25519),
        /// or of `audit.kmsKeyId` (ECDSA P-256, as `aws kms get-public-key` exports it):
        /// also check every checkpoint's signature, and that there is one.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// An auditor's Ed25519 public key (PEM), repeatable: an acknowledgement of a
        /// rotation counts only when signed by one (default: the config's
        /// `audit.auditorPublicKeyFiles`).
        #[arg(long = "auditor-key")]
        auditor_keys: Vec<PathBuf>,
        /// Also check that the file still holds the latest checkpoint published to the
        /// anchor (`audit.anchor` of the config: a CloudWatch Logs stream): a cut tail or
        /// a rewrite does not. Needs AWS credentials that may read the stream.
        #[arg(long, requires = "public_key")]
        anchor: bool,
    },
    /// Record that an auditor has looked at the rotation the audit log's current segment
    /// began with (the previous file could not be extended and was kept aside), signed
    /// with the auditor's Ed25519 key, whose public half the config lists in
    /// `audit.auditorPublicKeyFiles`. Until then the rotation is reported on /status, in a
    /// metric and in every plan; an unsigned or wrongly signed acknowledgement clears
    /// nothing. With a controller holding the log, the request is left next to the log
    /// (`<log>.acknowledge`) and the controller records it at its next pass.
    Acknowledge {
        /// The log file (default: audit.path of the config).
        file: Option<PathBuf>,
        /// Who is acknowledging (a name or an email address).
        #[arg(long)]
        by: String,
        /// The auditor's Ed25519 private key (PKCS#8 PEM) that signs the acknowledgement;
        /// never the controller's signing key.
        #[arg(long)]
        key: PathBuf,
        /// What was found or done.
        #[arg(long)]
        note: Option<String>,
    },
    /// Every grant and revocation recorded, with who made it and why; filtered.
    Show {
        /// The log file (default: audit.path of the config).
        file: Option<PathBuf>,
        /// Only changes that granted or revoked this Entra object id.
        #[arg(long)]
        principal: Option<String>,
        /// Only changes to this role (name or ARN).
        #[arg(long)]
        role: Option<String>,
        /// Only changes since this time: RFC 3339 (`2026-11-23T08:00:00Z`), a date, or
        /// a duration back from now (`30m`, `24h`, `7d`).
        #[arg(long)]
        since: Option<String>,
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: ShowFormat,
    },
}

/// Text or JSON (`audit show`, `check-token`, `entra-permissions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    /// For people.
    Text,
    /// JSON, for machines (for `audit show`: an array of the change records, each with
    /// its time and line).
    Json,
}

/// Where the policies are.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Policy repository directory (every *.yaml / *.yml below it).
    #[arg(long, env = "TRUSTSYNC_POLICIES", default_value = "policies")]
    pub policies: PathBuf,
}

/// `release` flags.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The document whose held removals go through (its metadata.name).
    pub name: String,
    /// Who releases it (a name or an email address), for the audit log.
    #[arg(long)]
    pub by: String,
    /// Why (an incident id, say), for the audit log.
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub policies: PolicyArgs,
}

/// What every command that reads live state reads: the policies, the directory, the
/// accounts.
#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    policies: PolicyArgs,
    /// Tenant file to read the directory from instead of Microsoft Graph.
    #[arg(long, env = "TRUSTSYNC_TENANT_FILE")]
    tenant_file: Option<PathBuf>,
    /// Microsoft Graph base URL (overrides directory.graph.endpoint).
    #[arg(long, env = "TRUSTSYNC_GRAPH_ENDPOINT")]
    graph_endpoint: Option<String>,
    /// Only this AWS account (of those in scope). Repeat for several.
    #[arg(long = "account", value_name = "ID")]
    accounts: Vec<String>,
}

impl ReadArgs {
    /// Applies `--graph-endpoint` to the config; the tenant file to read the directory
    /// from (`--tenant-file`, else the config's), `None` for Microsoft Graph.
    fn directory(&mut self, config: &mut Config) -> Option<PathBuf> {
        if let Some(e) = self.graph_endpoint.take() {
            config.directory.graph.endpoint = e;
        }
        self.tenant_file
            .take()
            .or_else(|| config.directory.tenant_file.clone())
    }
}

/// Inputs shared by plan, apply and run.
#[derive(Debug, Clone, Args)]
pub struct PassArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// Delete owned resources no longer in any policy (overrides `prune` in the config).
    #[arg(long, env = "TRUSTSYNC_PRUNE")]
    prune: Option<bool>,
    /// Release the safety holds of this mapping (or orphan role): its removals go ahead
    /// this once. Repeat for several.
    #[arg(long, value_name = "NAME")]
    release: Vec<String>,
}

/// `access` flags.
#[derive(Debug, Args)]
pub struct AccessArgs {
    #[command(flatten)]
    read: ReadArgs,
    /// One workload (service principal object id): the roles it may assume and the
    /// functions they may invoke.
    #[arg(long, value_name = "OBJECT_ID", conflicts_with_all = ["people", "person"])]
    principal: Option<String>,
    /// People instead of workloads: who has which IAM Identity Center permission set in
    /// which account, directly or through which group (`identityCenter` in the config
    /// says where; read with the credentials of its administering account).
    #[arg(long)]
    people: bool,
    /// One person (identity store user name); implies `--people`.
    #[arg(long, value_name = "USER_NAME")]
    person: Option<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    output: Format,
}

/// `check-token` flags.
#[derive(Debug, Args)]
pub struct CheckTokenArgs {
    #[command(flatten)]
    policies: PolicyArgs,
    /// The file holding the token; `-` (the default) reads stdin.
    #[arg(default_value = "-")]
    token: PathBuf,
    /// Only this role (name or ARN).
    #[arg(long)]
    role: Option<String>,
    /// Only this AWS account (of those in scope). Repeat for several.
    #[arg(long = "account", value_name = "ID")]
    accounts: Vec<String>,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    output: ShowFormat,
}

/// `iam-policy` flags.
#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    #[command(flatten)]
    policies: PolicyArgs,
    /// The hub's role ARN, which the spoke role's trust policy names (many accounts only).
    /// Default: the role of the current AWS credentials (asks STS).
    #[arg(long, value_name = "ARN")]
    hub_role_arn: Option<String>,
}

/// `entra-permissions` flags.
#[derive(Debug, Args)]
pub struct EntraPermissionsArgs {
    #[command(flatten)]
    policies: PolicyArgs,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    output: ShowFormat,
}

/// `plan` flags.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pass: PassArgs,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    output: Format,
    /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
}

/// `apply` flags.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pass: PassArgs,
    /// Apply without asking (required when stdin is not a terminal).
    #[arg(long)]
    auto_approve: bool,
    /// With the S3 audit store: wait this long for the writers' lease another writer (the
    /// controller, another apply) holds; 0, the default, refuses at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    wait_for_lease: u64,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(e),
    };
    init_logging(
        cli.log_format,
        cli.verbose,
        matches!(cli.command, Command::Run(_)),
    );
    STATS.set(cli.stats).ok();
    PROGRESS
        .set(
            cli.log_format == LogFormat::Human
                && std::io::stderr().is_terminal()
                && std::env::var("TERM").map_or(true, |t| t != "dumb"),
        )
        .ok();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            Progress::new(false).clear();
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `--help` and `--version` print on stdout and exit 0; a usage error (an unknown flag, a
/// missing argument, a bad value) prints on stderr and exits 1, like every other error:
/// 2 is only ever `plan --detailed-exitcode`'s "changes pending", so a mistyped flag in CI
/// never reads as drift.
fn usage(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    // clap writes help to stdout and errors to stderr, and returns (not panics on) a
    // closed pipe.
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
        // `trustsync` alone, or `trustsync audit`: the help, on stderr, and an error.
        _ => ExitCode::from(1),
    }
}

/// Whether a progress line may be drawn: human logs on a terminal (set once in `main`;
/// unset, as in tests and library use, means no).
static PROGRESS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// One line of progress on stderr, rewritten in place during a long pass and cleared
/// after it: only on a terminal, never in pipes, JSON logs or JSON output.
#[derive(Clone, Copy)]
struct Progress {
    on: bool,
}

impl Progress {
    fn new(json_output: bool) -> Progress {
        Progress {
            on: !json_output && PROGRESS.get().copied().unwrap_or(false),
        }
    }

    fn show(&self, message: &str) {
        if self.on {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{message}");
            let _ = err.flush();
        }
    }

    fn clear(&self) {
        self.show("");
    }
}

/// Whether `--stats` was given.
pub(crate) static STATS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Logs on stderr: warnings only for a one-shot command (its output is what a person
/// reads), info for the controller; `-v`/`-vv` raise it, `TRUSTSYNC_LOG` sets it outright.
fn init_logging(format: LogFormat, verbose: u8, controller: bool) {
    let default = match (verbose, controller) {
        // The AWS config chain warns once per provider it tries (the instance metadata
        // service, over and over): a one-shot command says in one line what to set instead
        // (`aws_ready`); `-v` shows them.
        (0, false) => "warn,aws_config=error",
        (0, true) | (1, _) => "warn,trustsync=info",
        _ => "info,trustsync=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRUSTSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

impl Cli {
    /// Runs the command; returns the exit code.
    pub async fn run(self) -> anyhow::Result<u8> {
        let Cli {
            config,
            log_format: _,
            verbose: _,
            stats: _,
            command,
        } = self;
        let load_config = || Config::load(config.as_deref()).context("loading the config");
        match command {
            Command::Schema => {
                outln!("{}", schema_json())?;
                Ok(0)
            }
            Command::Completions { shell } => completions(shell),
            Command::Man => man_page(),
            Command::Validate(PolicyArgs { policies }) => validate(&load_config()?, &policies),
            Command::Release(args) => release(&load_config()?, args),
            Command::Plan(args) => plan(args, load_config()?).await,
            Command::Apply(args) => apply(args, load_config()?).await,
            Command::Run(args) => run(args, load_config()?).await,
            Command::IamPolicy(IamPolicyArgs {
                policies: PolicyArgs { policies },
                hub_role_arn,
            }) => iam_policy(&load_config()?, &policies, hub_role_arn).await,
            Command::EntraPermissions(EntraPermissionsArgs {
                policies: PolicyArgs { policies },
                output,
            }) => entra_permissions(&load_config()?, &policies, output),
            Command::Access(args) => access(args, load_config()?).await,
            Command::Export(args) => export(args, load_config()?).await,
            Command::CheckToken(args) => check_token(args, load_config()?).await,
            Command::Audit(cmd) => run_audit(cmd, load_config).await,
        }
    }
}

/// `trustsync completions`: the shell's completion script.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<u8> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "trustsync", &mut script);
    output::write_bytes(&script)?;
    Ok(0)
}

/// `trustsync man`: the manual page.
fn man_page() -> anyhow::Result<u8> {
    use clap::CommandFactory;
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    output::write_bytes(&page)?;
    Ok(0)
}

/// `trustsync audit verify FILE|s3://bucket/prefix/`: a log in S3 is read into a copy of
/// this process's own first, and what the bucket holds besides its records fails it.
async fn verify_command(
    file: &std::path::Path,
    public_key: Option<&std::path::Path>,
    auditor_keys: &[PathBuf],
    anchor: bool,
    load_config: &impl Fn() -> anyhow::Result<Config>,
) -> anyhow::Result<u8> {
    // `s3://bucket/prefix/`: the log in S3, read into a copy of this process's own.
    let aws = || load_config().map(|c| c.aws).unwrap_or_default();
    let given = file.to_path_buf();
    let readable = tokio::task::block_in_place(|| audit::readable_location(file, &aws()))
        .map_err(|e| anyhow::anyhow!("{}: {e}", given.display()))?;
    if readable.path != given {
        eprintln!("{}: read into {}", given.display(), readable.path.display());
    }
    let file = readable.path.clone();
    let mut code = audit_verify(&file, public_key, auditor_keys, load_config)?;
    for t in &readable.tampering {
        eprintln!("{t}");
        code = 1;
    }
    if code != 0 || !anchor {
        return Ok(code);
    }
    audit_verify_anchor(&file, &load_config()?).await
}

/// The log `audit show` reads: FILE (or `s3://bucket/prefix/`), else the configured one; what
/// the bucket holds besides its records is said on stderr.
fn show_source(
    file: Option<PathBuf>,
    load_config: &impl Fn() -> anyhow::Result<Config>,
) -> anyhow::Result<audit::Readable> {
    let readable = match file {
        Some(f) => {
            let aws = load_config().map(|c| c.aws).unwrap_or_default();
            tokio::task::block_in_place(|| audit::readable_location(&f, &aws))
        }
        None => {
            let config = load_config()?;
            tokio::task::block_in_place(|| audit::readable_copy(&config.audit, &config.aws))
        }
    }
    .map_err(|e| anyhow::anyhow!("the audit log: {e}"))?;
    for t in &readable.tampering {
        eprintln!("{t}");
    }
    Ok(readable)
}

/// `trustsync audit ...`; the config is loaded only where the command needs it.
async fn run_audit(
    command: AuditCommand,
    load_config: impl Fn() -> anyhow::Result<Config>,
) -> anyhow::Result<u8> {
    match command {
        AuditCommand::Verify {
            file,
            public_key,
            auditor_keys,
            anchor,
        } => {
            verify_command(
                &file,
                public_key.as_deref(),
                &auditor_keys,
                anchor,
                &load_config,
            )
            .await
        }
        AuditCommand::Acknowledge {
            file,
            by,
            key,
            note,
        } => {
            let config = load_config()?;
            match (&config.audit.s3, file) {
                // The log in the bucket: the rotation read from a copy, the signed
                // acknowledgement left in the bucket for the writer that leads.
                (Some(s3), None) => {
                    let store =
                        tokio::task::block_in_place(|| audit::s3::S3Log::connect(s3, &config.aws))
                            .map_err(|e| anyhow::anyhow!(e))?;
                    let readable = tokio::task::block_in_place(|| {
                        audit::readable_copy(&config.audit, &config.aws)
                    })
                    .map_err(|e| anyhow::anyhow!("the audit log: {e}"))?;
                    audit_acknowledge(&readable.path, &config, (&by, &key, note), Some(&store))
                }
                (_, file) => {
                    let file = file.unwrap_or_else(|| config.audit.path.clone());
                    audit_acknowledge(&file, &config, (&by, &key, note), None)
                }
            }
        }
        AuditCommand::Show {
            file,
            principal,
            role,
            since,
            output,
        } => {
            let readable = show_source(file, &load_config)?;
            let file = readable.path.clone();
            let since = since.map(|s| since_time(&s)).transpose()?;
            let query = audit::Query {
                principal,
                role,
                since,
            };
            let entries = audit::show(&file, &query)?;
            match output {
                ShowFormat::Text => out!(
                    "{}",
                    audit::render_text(&entries, query.principal.as_deref())
                )?,
                ShowFormat::Json => outln!("{}", serde_json::to_string_pretty(&entries)?)?,
            }
            Ok(0)
        }
    }
}
