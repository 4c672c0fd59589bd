//! Command-line wiring: reads flags, runs one stage after another, sets the exit code.
//!
//! Exit codes: 0 success (and, with `--detailed-exitcode`, no changes); 2 changes pending
//! (`plan --detailed-exitcode` only); 1 any error: invalid input, a failed read, a problem
//! that kept a mapping from being planned, a change held by a safety limit, a failed
//! change. The pass itself lives in [`crate::runtime::pass`]; this module keeps flags and exit codes.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::adapters::aws::AwsClients;
use crate::apply::{self, Actor};
use crate::audit;
use crate::config::Config;
use crate::render::{self, Format};
use crate::runtime::controller::{self, RunSettings};
use crate::runtime::fleet::{self, Fleet};
use crate::runtime::pass::{self, DirectorySource, Planned};
use crate::sources::policy::{self, PolicySet};

/// Keeps AWS IAM roles and Lambda permissions in step with Entra ID groups.
#[derive(Debug, Parser)]
#[command(name = "trustsync", version, about, long_about = None)]
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
    /// Show what apply would change, without changing anything.
    Plan(PlanArgs),
    /// Change AWS to match the policies, recording each change in the audit log.
    Apply(ApplyArgs),
    /// Reconcile for ever: on a timer, on directory changes and on policy changes; serve
    /// /healthz, /readyz, /metrics and /status.
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
    /// repository). Reads live AWS, the directory and the audit log; changes nothing.
    Access(AccessArgs),
    /// Print policy YAML (RoleMapping, and IdentityProvider when missing, with `adopt:
    /// true`) for the roles that trust the tenant's provider but trustsync does not manage
    /// yet. Changes nothing.
    Export(ReadArgs),
    /// Explain whether each role trusting the tenant's provider would accept an Entra
    /// access token, and why not: issuer form, audience, subject, lifetime. Reads the token
    /// from a file or stdin and never prints or sends it; its signature is not checked.
    CheckToken(CheckTokenArgs),
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
        /// The Ed25519 public key (PEM) of `audit.signingKeyFile`: also check every
        /// checkpoint's signature, and that there is one.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Also check that the file still holds the latest checkpoint published to the
        /// anchor (`audit.anchor` of the config: a CloudWatch Logs stream): a cut tail or
        /// a rewrite does not. Needs AWS credentials that may read the stream.
        #[arg(long, requires = "public_key")]
        anchor: bool,
    },
    /// Record that a person has looked at the rotation the audit log's current segment
    /// began with (the previous file could not be extended and was kept aside). Until
    /// then the rotation is reported on /status, in a metric and in every plan. With a
    /// controller holding the log, the request is left next to the log
    /// (`<log>.acknowledge`) and the controller records it at its next pass.
    Acknowledge {
        /// The log file (default: audit.path of the config).
        file: Option<PathBuf>,
        /// Who is acknowledging (a name or an email address).
        #[arg(long)]
        by: String,
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
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Policy repository directory (every *.yaml / *.yml below it).
    #[arg(long, env = "TRUSTSYNC_POLICIES", default_value = "policies")]
    pub policies: PathBuf,
}

/// What every command that reads live state reads: the policies, the directory, the
/// accounts.
#[derive(Debug, Args)]
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
#[derive(Debug, Args)]
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
    #[arg(long, value_name = "OBJECT_ID")]
    principal: Option<String>,
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
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRUSTSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,trustsync=info"));
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
            command,
        } = self;
        let load_config = || Config::load(config.as_deref()).context("loading the config");
        match command {
            Command::Schema => {
                println!("{}", schema_json());
                Ok(0)
            }
            Command::Completions { shell } => {
                use clap::CommandFactory;
                let mut cmd = Cli::command();
                clap_complete::generate(shell, &mut cmd, "trustsync", &mut std::io::stdout());
                Ok(0)
            }
            Command::Man => {
                use clap::CommandFactory;
                clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
                Ok(0)
            }
            Command::Validate(PolicyArgs { policies }) => validate(&load_config()?, &policies),
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
            Command::Audit(AuditCommand::Verify {
                file,
                public_key,
                anchor,
            }) => {
                let code = audit_verify(&file, public_key.as_deref())?;
                if code != 0 || !anchor {
                    return Ok(code);
                }
                audit_verify_anchor(&file, &load_config()?).await
            }
            Command::Audit(AuditCommand::Acknowledge { file, by, note }) => {
                let file = match file {
                    Some(f) => f,
                    None => load_config()?.audit.path,
                };
                audit_acknowledge(&file, &by, note)
            }
            Command::Audit(AuditCommand::Show {
                file,
                principal,
                role,
                since,
                output,
            }) => {
                let file = match file {
                    Some(f) => f,
                    None => load_config()?.audit.path,
                };
                let since = since.map(|s| since_time(&s)).transpose()?;
                let query = audit::Query {
                    principal,
                    role,
                    since,
                };
                let entries = audit::show(&file, &query)?;
                match output {
                    ShowFormat::Text => print!(
                        "{}",
                        audit::render_text(&entries, query.principal.as_deref())
                    ),
                    ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&entries)?),
                }
                Ok(0)
            }
        }
    }
}

/// `trustsync validate`: 0 when every document is valid, else 1 with every problem.
fn validate(config: &Config, policies: &Path) -> anyhow::Result<u8> {
    match policy::load_dir(policies, &config.limits) {
        Ok(set) => {
            // Accounts listed in the config are known without AWS: check the selectors
            // against them (discovered accounts are checked by every plan).
            let a = &config.accounts;
            if !a.targets.is_empty() && a.organization.is_none() {
                let regions: Vec<String> = config.aws.region.iter().cloned().collect();
                let accounts: Vec<_> = a
                    .targets
                    .iter()
                    .map(|t| a.target_account(t, &regions, config.partition()))
                    .collect();
                let problems = policy::scope::scope_problems(&set, &accounts);
                if !problems.is_empty() {
                    for (_, d) in &problems {
                        eprintln!("{d}");
                    }
                    eprintln!(
                        "{} problem(s) with the accounts in the config ({} account(s))",
                        problems.len(),
                        accounts.len()
                    );
                    return Ok(1);
                }
            }
            // The guardrails, with what is known without AWS: the accounts the config
            // lists, the tenant of the directory the config names.
            let listed = (!a.targets.is_empty() && a.organization.is_none())
                .then(|| a.targets.iter().map(|t| t.id.clone()).collect());
            let tenant =
                crate::sources::directory::tenant_of(config.directory.tenant_file.as_deref());
            let violations = policy::guardrails::check(
                &set,
                &config.guardrails,
                &policy::guardrails::Known {
                    accounts: listed,
                    tenant,
                },
            );
            if !violations.is_empty() {
                for v in &violations {
                    eprintln!("{}", v.diagnostic);
                }
                eprintln!(
                    "{} guardrail violation(s): the controller would change nothing for these documents but their revocations (docs/policy-reference.md, \"Guardrails\")",
                    violations.len()
                );
                return Ok(1);
            }
            println!(
                "{}: {} document(s) valid ({} identity provider(s), {} role mapping(s), {} function access)",
                policies.display(),
                set.len(),
                set.providers.len(),
                set.role_mappings.len(),
                set.functions.len()
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}

fn color_for(stdout_format: Format) -> bool {
    stdout_format == Format::Text
        && std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none()
}

/// `trustsync plan`: 1 when something needs a person, 2 (with `--detailed-exitcode`) when
/// changes are pending, else 0.
async fn plan(args: PlanArgs, config: Config) -> anyhow::Result<u8> {
    let PlanArgs {
        pass,
        output,
        detailed_exitcode,
    } = args;
    let Some(ctx) = Pass::prepare(pass, config, Progress::new(output == Format::Json)).await?
    else {
        return Ok(1);
    };
    let plan = &ctx.planned.plan;
    print!("{}", render::render(plan, output, color_for(output)));
    ctx.log_stats();
    Ok(if plan.needs_attention() {
        1
    } else if detailed_exitcode && !plan.is_empty() {
        2
    } else {
        0
    })
}

/// `trustsync apply`: the plan, a confirmation unless `--auto-approve`, the changes; 0
/// only when everything was applied and nothing needs a person.
async fn apply(args: ApplyArgs, config: Config) -> anyhow::Result<u8> {
    let ApplyArgs { pass, auto_approve } = args;
    let audit_config = config.audit.clone();
    let audit_path = config.audit.path.clone();
    let progress = Progress::new(false);
    let Some(ctx) = Pass::prepare(pass, config, progress).await? else {
        return Ok(1);
    };
    // One writer at a time; writes a crash left without an outcome are recorded first.
    let mut log = audit::open_configured(&audit_config)?;
    log.recover(&ctx.planned.observed, &ctx.actor)?;
    let plan = &ctx.planned.plan;
    print!(
        "{}",
        render::render(plan, Format::Text, color_for(Format::Text))
    );
    if plan.is_empty() && plan.held.is_empty() {
        ctx.log_stats();
        return Ok(if plan.needs_attention() { 1 } else { 0 });
    }
    // With only held changes nothing is asked: the pass is still recorded, so the audit
    // log shows what was held and why.
    if !plan.is_empty() && !auto_approve && !confirm(plan.changes.len())? {
        println!("Apply cancelled; nothing was changed.");
        return Ok(1);
    }
    let report = ctx
        .planned
        .apply(
            &ctx.fleet,
            &mut log,
            &ctx.actor,
            ctx.policies.revision.as_ref(),
            apply::Control {
                stop: &|| false,
                progress: &|done, total| progress.show(&format!("applying {done} of {total}")),
            },
        )
        .await?;
    progress.clear();
    crate::runtime::pass::anchor(&mut log, audit_config.anchor.as_ref(), ctx.fleet.hub()).await;
    println!(
        "\nApply: {} applied, {} failed, {} skipped, {} held. Audit log: {}",
        report.applied,
        report.failed,
        report.skipped,
        plan.held.len(),
        audit_path.display()
    );
    for done in &report.outcomes {
        if let apply::Outcome::Failed(f) = &done.outcome {
            println!("  failed  {} {}: {f}", done.action, done.resource);
        }
    }
    ctx.log_stats();
    Ok(if report.success() && !plan.needs_attention() {
        0
    } else {
        1
    })
}

/// `trustsync run`: the controller, until SIGTERM or SIGINT.
async fn run(args: RunArgs, mut config: Config) -> anyhow::Result<u8> {
    let RunArgs {
        pass,
        listen,
        interval_seconds,
    } = args;
    let (dir, source, released) = pass.resolve(&mut config, true)?;
    if !released.is_empty() {
        bail!("--release is for plan and apply: a person releases a hold once, not the controller for ever");
    }
    let run = &config.run;
    let settings = RunSettings {
        interval: std::time::Duration::from_secs(
            interval_seconds.unwrap_or(run.interval_seconds).max(1),
        ),
        directory_poll: std::time::Duration::from_secs(run.directory_poll_seconds.max(1)),
        policy_poll: std::time::Duration::from_secs(run.policy_poll_seconds.max(1)),
        listen: listen.unwrap_or(run.listen),
        shutdown: std::time::Duration::from_secs(run.shutdown_seconds),
    };
    controller::run(config, dir, source, settings).await
}

/// Live state for the reports: the policies, what AWS shows in every account in scope,
/// and the planner's settings. `None` when the policies are invalid (already reported).
async fn read_aws(
    dir: &Path,
    only: &[String],
    config: &Config,
) -> anyhow::Result<Option<(PolicySet, crate::observed::Observations, bool)>> {
    if let Some(bad) = only.iter().find(|a| !crate::config::is_account_id(a)) {
        bail!("--account {bad}: not a 12-digit account id; nothing was read");
    }
    let policies = match policy::load_dir(dir, &config.limits) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(None);
        }
    };
    let (mut fleet, _caller) = fleet::connect(config, None, Default::default())
        .await
        .context("reading the AWS caller identity and the accounts in scope")?;
    fleet.narrow(only)?;
    let (observed, unreachable) = pass::observe(&fleet, &policies, config).await?;
    for p in &unreachable {
        eprintln!("warning: {}", p.message);
    }
    let many = fleet.members().len() > 1;
    Ok(Some((policies, observed, many)))
}

/// Where the reports read Entra: the tenant file, loaded once, or one Graph reader (one
/// token) for the groups and the applications alike. Opened by the first read that needs
/// it, so a report that needs neither asks for no Entra credential.
struct EntraSource<'a> {
    tenant: Option<PathBuf>,
    config: &'a Config,
    opened: Option<Opened>,
}

enum Opened {
    File(crate::sources::directory::TenantFile),
    Graph(crate::adapters::entra::GraphReader),
}

impl<'a> EntraSource<'a> {
    /// The tenant file when one is given (`ReadArgs::directory`), else Microsoft Graph.
    fn new(tenant: Option<PathBuf>, config: &'a Config) -> EntraSource<'a> {
        EntraSource {
            tenant,
            config,
            opened: None,
        }
    }

    fn open(&mut self) -> anyhow::Result<&Opened> {
        if self.opened.is_none() {
            self.opened = Some(match &self.tenant {
                Some(path) => Opened::File(crate::sources::directory::TenantFile::load(path)?),
                None => Opened::Graph(
                    crate::adapters::entra::reader_from_env(&self.config.directory.graph)
                        .context("the directory is read from Microsoft Graph")?,
                ),
            });
        }
        Ok(self.opened.as_ref().expect("opened above"))
    }

    /// The whole directory: every group with its direct members (a delta read of Graph,
    /// or the tenant file).
    async fn directory(&mut self) -> anyhow::Result<crate::inventory::Directory> {
        use crate::inventory::Directory;
        Ok(match self.open()? {
            Opened::File(tenant) => Directory::from_tenant_file(tenant),
            Opened::Graph(reader) => {
                let mut cache = crate::adapters::entra::DeltaCache::new(reader.clone());
                cache
                    .sync()
                    .await
                    .context("reading the directory's groups from Microsoft Graph")?;
                Directory::from_groups(cache.groups())
            }
        })
    }

    /// The Entra applications trustsync owns, with their federated credentials; why not,
    /// when they cannot be read.
    async fn applications(&mut self) -> Result<Vec<crate::observed::ObservedApplication>, String> {
        match self.open().map_err(|e| format!("{e:#}"))? {
            Opened::File(tenant) => Ok(tenant.observed_applications()),
            Opened::Graph(reader) => reader.owned_applications().await.map_err(|e| e.to_string()),
        }
    }
}

/// `trustsync access`.
async fn access(args: AccessArgs, mut config: Config) -> anyhow::Result<u8> {
    let AccessArgs {
        mut read,
        principal,
        output,
    } = args;
    let Some((policies, observed, _)) =
        read_aws(&read.policies.policies, &read.accounts, &config).await?
    else {
        return Ok(1);
    };
    let settings = crate::plan::Settings::from_config(&config);
    let roles = crate::inventory::entra_roles(&observed, &policies, &settings);
    let tenant = read.directory(&mut config);
    let mut entra = EntraSource::new(tenant, &config);
    // No role trusts the tenant: nothing to explain, and no Entra credential asked for.
    let directory = if roles.is_empty() {
        crate::inventory::Directory::default()
    } else {
        entra.directory().await?
    };
    let since = match audit::show(&config.audit.path, &audit::Query::default()) {
        Ok(entries) => crate::inventory::grants_since(&entries),
        Err(e) => {
            tracing::info!(error = %e, "no audit log to say since when; left out");
            Default::default()
        }
    };
    let mut report = crate::inventory::access(
        &roles,
        &policies,
        &directory,
        &observed,
        &since,
        principal.as_deref(),
    );
    // The Entra half of the outbound direction: which credential trusts each role.
    if !report.outbound.is_empty() {
        let apps = entra.applications().await;
        crate::inventory::entra_trust(&mut report.outbound, &apps);
    }
    match output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Markdown => print!("{}", report.markdown()),
        Format::Text => print!("{}", report.text()),
    }
    Ok(0)
}

/// `trustsync export`.
async fn export(mut args: ReadArgs, mut config: Config) -> anyhow::Result<u8> {
    let Some((policies, observed, many)) =
        read_aws(&args.policies.policies, &args.accounts, &config).await?
    else {
        return Ok(1);
    };
    let settings = crate::plan::Settings::from_config(&config);
    let roles = crate::inventory::entra_roles(&observed, &policies, &settings);
    let directory = if roles.iter().all(|r| r.managed) {
        crate::inventory::Directory::default()
    } else {
        let tenant = args.directory(&mut config);
        EntraSource::new(tenant, &config).directory().await?
    };
    let out = crate::inventory::export(&roles, &policies, &directory, &observed, &settings, many);
    print!("{}", out.yaml);
    for s in &out.skipped {
        eprintln!("not exported: {s}");
    }
    eprintln!(
        "{} mapping(s) exported, {} role(s) not exported",
        out.mappings,
        out.skipped.len()
    );
    Ok(if out.skipped.is_empty() { 0 } else { 1 })
}

/// `trustsync check-token`.
async fn check_token(args: CheckTokenArgs, config: Config) -> anyhow::Result<u8> {
    let text = if args.token == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading the token from stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.token)
            .with_context(|| format!("reading the token from {}", args.token.display()))?
    };
    let claims =
        crate::inventory::decode_claims(&text).map_err(|e| anyhow::anyhow!("the token: {e}"))?;
    let Some((policies, observed, _)) =
        read_aws(&args.policies.policies, &args.accounts, &config).await?
    else {
        return Ok(1);
    };
    let settings = crate::plan::Settings::from_config(&config);
    let mut roles = crate::inventory::entra_roles(&observed, &policies, &settings);
    if let Some(r) = &args.role {
        roles.retain(|x| &x.role.arn == r || x.role.name.as_str().eq_ignore_ascii_case(r));
        if roles.is_empty() {
            bail!("--role {r}: no role of that name trusts the tenant's provider");
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let verdicts = crate::inventory::check_token(&claims, &roles, &observed, now);
    match args.output {
        ShowFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"claims": claims, "roles": verdicts})
            )?
        ),
        ShowFormat::Text => {
            println!("The token's signature is not checked here; STS checks it against the issuer's keys.");
            println!(
                "Token: iss {}, aud {}, azp {}, sub {}, expires {}",
                claims.iss.as_deref().unwrap_or("(none)"),
                claims.aud.join(","),
                claims
                    .azp
                    .as_deref()
                    .or(claims.appid.as_deref())
                    .unwrap_or("(none)"),
                claims.sub.as_deref().unwrap_or("(none)"),
                claims.exp.map_or("(never)".to_string(), |e| e.to_string())
            );
            for v in &verdicts {
                let managed = if v.managed {
                    ""
                } else {
                    " (not managed by trustsync)"
                };
                if v.accepts {
                    println!("ACCEPTS  {}{managed}", v.role);
                } else {
                    println!("REFUSES  {}{managed}", v.role);
                    for r in &v.reasons {
                        println!("  - {r}");
                    }
                }
            }
            if verdicts.is_empty() {
                println!("No role trusts the tenant's provider.");
            }
        }
    }
    Ok(if verdicts.iter().any(|v| v.accepts) {
        0
    } else {
        1
    })
}

/// `--since`: an RFC 3339 time or date as given, or a duration (`30m`, `24h`, `7d`) back
/// from now, as RFC 3339 in UTC.
fn since_time(s: &str) -> anyhow::Result<String> {
    let unit = |u: char| match u {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3600),
        'd' => Some(86_400),
        _ => None,
    };
    let duration = s
        .char_indices()
        .last()
        .and_then(|(i, u)| Some(s[..i].parse::<i64>().ok()? * unit(u)?));
    if let Some(secs) = duration {
        let at = time::OffsetDateTime::now_utc() - time::Duration::seconds(secs);
        return Ok(at.format(&time::format_description::well_known::Rfc3339)?);
    }
    let date = s.len() >= 10
        && s.as_bytes()[..10].iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if date {
        return Ok(s.to_string());
    }
    bail!("--since `{s}`: give an RFC 3339 time (2026-11-23T08:00:00Z), a date (2026-11-23) or a duration (30m, 24h, 7d)")
}

/// `trustsync audit acknowledge`: appends the acknowledgement, or leaves it for the
/// controller that holds the log.
fn audit_acknowledge(file: &Path, by: &str, note: Option<String>) -> anyhow::Result<u8> {
    if by.trim().is_empty() {
        bail!("--by: say who is acknowledging");
    }
    match audit::AuditLog::open(file) {
        Ok(mut log) => match log.acknowledge(by, note) {
            Ok(r) => {
                println!(
                    "{}: acknowledged by {by} the rotation away from {} ({})",
                    file.display(),
                    r.previous_segment,
                    r.reason
                );
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(1)
            }
        },
        Err(audit::Error::Locked { .. }) => {
            let request = audit::request_acknowledgement(file, by, note)?;
            println!(
                "{}: held by a running controller; left the acknowledgement in {} for it to record at its next pass",
                file.display(),
                request.display()
            );
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

/// `trustsync audit verify`: 0 when the chain (and with a key, every checkpoint) holds,
/// across the segments, and no rotation waits for a person.
fn audit_verify(file: &Path, public_key: Option<&Path>) -> anyhow::Result<u8> {
    let key = public_key
        .map(audit::public_key_from_pem_file)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let verified = audit::verify_with(file, key.as_ref());
    if let Ok(v) = &verified {
        for p in &v.previous {
            println!(
                "previous segment {}: its first {} line(s) verify and the next segment carries on from them; set aside because {}",
                p.path.display(),
                p.good_lines,
                p.reason
            );
        }
        if let Some(r) = &v.unacknowledged {
            eprintln!("{}", audit::rotation_notice(file, r));
            return Ok(1);
        }
    }
    match verified {
        Ok(v) if key.is_some() => {
            println!(
                "{}: {} line(s), hash chain intact; {} signed checkpoint(s) verify, the last on line {}{}",
                file.display(),
                v.lines,
                v.checkpoints,
                v.signed_through,
                match v.lines - v.signed_through {
                    0 => String::new(),
                    n => format!(" ({n} line(s) after it not signed yet)"),
                }
            );
            Ok(0)
        }
        Ok(v) => {
            println!("{}: {} line(s), hash chain intact", file.display(), v.lines);
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}

/// `trustsync audit verify --anchor`: the checkpoints published to the anchor move forward
/// and every one is among the file's (or its previous segments') checkpoints.
async fn audit_verify_anchor(file: &Path, config: &Config) -> anyhow::Result<u8> {
    let Some(anchor) = &config.audit.anchor else {
        bail!("--anchor: the config has no audit.anchor");
    };
    let aws = AwsClients::connect(&config.aws).await?;
    let published = aws.published_checkpoints(anchor).await?;
    let Some(latest) = published.last().cloned() else {
        eprintln!(
            "{}/{}: no checkpoint published yet",
            anchor.log_group, anchor.log_stream
        );
        return Ok(1);
    };
    // The checkpoints only move forward: a checkpoint published again later (a replay, to
    // make an older, cut log look current) goes back in lines or in time.
    let segments = audit::segments_holding(file, &published)?;
    if let Some((n, (a, b))) = audit::checkpoints_out_of_order(&published, &segments) {
        eprintln!(
            "{}/{}: checkpoint {} of {} goes back ({} lines signed {}, after {} lines signed {}): an old checkpoint was published again; the log cannot be trusted to end where the anchor says",
            anchor.log_group,
            anchor.log_stream,
            n + 1,
            published.len(),
            b.lines,
            b.signed_at,
            a.lines,
            a.signed_at
        );
        return Ok(1);
    }
    // Every checkpoint ever published must still be in the file (in some segment): the
    // stream cannot be edited by the controller's identity, so a rewrite of anything
    // published, signing key or not, is found; only lines after the last publication are
    // vouched for by the chain alone.
    if let Some(i) = segments.iter().position(Option::is_none) {
        let cp = &published[i];
        eprintln!(
            "{}: checkpoint {} of {} published to {}/{} ({} lines, signed {}) is not in the file or its previous segments: {}",
            file.display(),
            i + 1,
            published.len(),
            anchor.log_group,
            anchor.log_stream,
            cp.lines,
            cp.signed_at,
            if i + 1 == published.len() {
                "lines were cut from its end, or it was rewritten"
            } else {
                "the lines before it were rewritten, or the file was replaced"
            }
        );
        return Ok(1);
    }
    let segment = segments.last().copied().flatten().unwrap_or(0);
    println!(
        "{}: holds all {} checkpoint(s) published to {}/{}, the latest {} lines signed {}{}",
        file.display(),
        published.len(),
        anchor.log_group,
        anchor.log_stream,
        latest.lines,
        latest.signed_at,
        match segment {
            0 => String::new(),
            n => format!(" in the segment {n} rotation(s) back: none published since the rotation"),
        }
    );
    Ok(0)
}

/// `trustsync iam-policy`: the least-privilege policy, scoped to the policies' functions
/// when the directory exists; with many accounts, the hub's and the spoke role's.
async fn iam_policy(
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
    println!("{}", serde_json::to_string_pretty(&doc)?);
    if config.permissions_boundaries.is_empty() {
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
fn entra_permissions(config: &Config, policies: &Path, output: ShowFormat) -> anyhow::Result<u8> {
    let set = if policies.exists() {
        Some(policy::load_dir(policies, &config.limits).map_err(|e| anyhow::anyhow!("{e}"))?)
    } else {
        None
    };
    let p = crate::adapters::entra::permissions::entra_permissions(config, set.as_ref());
    match output {
        ShowFormat::Text => print!("{}", p.to_text()),
        ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&p)?),
    }
    Ok(0)
}

/// The role of an assumed-role session ARN (`arn:aws:sts::ACCT:assumed-role/NAME/SESSION`
/// → `arn:aws:iam::ACCT:role/NAME`); a role ARN as it is.
fn role_arn_of_caller(arn: &str) -> Option<String> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    if fields.len() != 6 {
        return None;
    }
    if fields[2] == "iam" && fields[5].starts_with("role/") {
        return Some(arn.to_string());
    }
    let name = fields[5].strip_prefix("assumed-role/")?.split('/').next()?;
    Some(format!("arn:{}:iam::{}:role/{name}", fields[1], fields[4]))
}

/// The JSON Schema of policy documents, as `trustsync schema` prints it.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(policy::PolicyDocument);
    serde_json::to_string_pretty(&schema).expect("schemas serialize")
}

fn confirm(n: usize) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal: pass --auto-approve to apply without confirmation; nothing was changed");
    }
    print!("\nApply these {n} change(s)? Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// Everything one plan or apply pass reads, and the checked plan.
struct Pass {
    policies: PolicySet,
    fleet: Fleet,
    actor: Actor,
    planned: Planned,
}

impl PassArgs {
    /// Applies the flag overrides to the config; returns the policy directory, the
    /// directory source and the released holds.
    fn resolve(
        self,
        config: &mut Config,
        delta: bool,
    ) -> anyhow::Result<(PathBuf, DirectorySource, BTreeSet<String>)> {
        let PassArgs {
            mut read,
            prune,
            release,
        } = self;
        if !read.accounts.is_empty() {
            bail!("--account is for plan and apply: the controller manages every account in scope");
        }
        if let Some(p) = prune {
            config.prune = p;
        }
        let source = match read.directory(config) {
            Some(path) => DirectorySource::File(path),
            None => DirectorySource::graph(
                config.directory.graph.clone(),
                delta.then(|| {
                    std::time::Duration::from_secs(config.directory.full_read_seconds.max(1))
                }),
            ),
        };
        Ok((
            read.policies.policies,
            source,
            release.into_iter().collect(),
        ))
    }
}

impl Pass {
    /// Reads policies, AWS and the directory, and plans. `None` when the policies are
    /// invalid (already reported; no AWS or directory request was made).
    async fn prepare(
        mut args: PassArgs,
        mut config: Config,
        progress: Progress,
    ) -> anyhow::Result<Option<Pass>> {
        let only = std::mem::take(&mut args.read.accounts);
        if let Some(bad) = only.iter().find(|a| !crate::config::is_account_id(a)) {
            bail!("--account {bad}: not a 12-digit account id; nothing was read or changed");
        }
        let (dir, mut source, released) = args.resolve(&mut config, false)?;
        let policies = match policy::load_dir(&dir, &config.limits) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}\nNothing was read from or changed in AWS.");
                return Ok(None);
            }
        };
        progress.show("reading AWS and the directory…");
        let (mut fleet, caller) = fleet::connect(&config, None, Default::default())
            .await
            .context("reading the AWS caller identity and the accounts in scope")?;
        fleet.narrow(&only)?;
        // The pins the audit log says were written (read without the writer's lock).
        let recorded_pins = crate::audit::recorded_pins(&config.audit.path);
        let planned = pass::plan(
            &pass::Inputs {
                config: &config,
                policies: &policies,
                fleet: &fleet,
                deferred: &|_| None,
                released: &released,
                recorded_pins: &recorded_pins,
                audit_attention: crate::audit::needs_attention(&config.audit.path),
            },
            &mut source,
        )
        .await;
        progress.clear();
        let planned = planned?;
        let (requests, retries, throttled) = source.graph_stats();
        if requests > 0 {
            tracing::info!(requests, retries, throttled, "Microsoft Graph requests");
        }
        Ok(Some(Pass {
            policies,
            fleet,
            actor: Actor::new(&caller.arn),
            planned,
        }))
    }

    fn log_stats(&self) {
        let stats = self.fleet.stats();
        tracing::info!(
            requests = stats.total(),
            retries = stats.retries,
            throttled = stats.throttled,
            by_operation = ?stats.requests,
            "AWS requests"
        );
    }
}
