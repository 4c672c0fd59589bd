//! The reports that read live AWS and the directory: `access`, `export`, `check-token`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{
    aws_ready, check_accounts, open_scope, out, outln, AccessArgs, CheckTokenArgs, Progress,
    ReadArgs, ShowFormat,
};
use crate::audit;
use crate::config::Config;
use crate::render::Format;
use crate::runtime::pass;
use crate::sources::policy::PolicySet;

/// Live state for the reports: the policies, what AWS shows in every account in scope,
/// and the planner's settings. `None` when the policies are invalid (already reported).
pub(super) async fn read_aws(
    dir: &Path,
    only: &[String],
    config: &Config,
) -> anyhow::Result<Option<(PolicySet, crate::observed::Observations, bool)>> {
    let Some((policies, fleet, _caller)) =
        // No progress line: the reports print nothing until their answer.
        open_scope(dir, only, config, &Progress::new(true)).await?
    else {
        return Ok(None);
    };
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
pub(super) struct EntraSource<'a> {
    tenant: Option<PathBuf>,
    config: &'a Config,
    opened: Option<Opened>,
}

pub(super) enum Opened {
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

    /// Every user of the directory (Graph's `/users`, or the tenant file's).
    async fn users(&mut self) -> anyhow::Result<Vec<crate::sources::directory::DirectoryUser>> {
        Ok(match self.open()? {
            Opened::File(tenant) => {
                crate::sources::directory::TenantDirectory::directory_users(tenant)
            }
            Opened::Graph(reader) => reader
                .users()
                .await
                .context("reading the directory's users from Microsoft Graph (User.Read.All)")?,
        })
    }

    /// The Entra applications trustsync owns, with their federated credentials; why not,
    /// when they cannot be read.
    async fn applications(&mut self) -> Result<Vec<crate::observed::ObservedApplication>, String> {
        match self.open().map_err(|e| format!("{e:#}"))? {
            Opened::File(tenant) => {
                Ok(crate::sources::directory::TenantDirectory::observed_applications(tenant))
            }
            Opened::Graph(reader) => reader.owned_applications().await.map_err(|e| e.to_string()),
        }
    }
}

/// `trustsync access`.
pub(super) async fn access(args: AccessArgs, mut config: Config) -> anyhow::Result<u8> {
    let AccessArgs {
        mut read,
        principal,
        people,
        person,
        output,
    } = args;
    if people || person.is_some() {
        let tenant = read.directory(&mut config);
        let mut entra = EntraSource::new(tenant, &config);
        return access_people(
            &read.accounts,
            person.as_deref(),
            output,
            &config,
            &mut entra,
        )
        .await;
    }
    let Some((policies, observed, _)) =
        read_aws(&read.policies.policies, &read.accounts, &config).await?
    else {
        return Ok(1);
    };
    let settings = crate::plan::Settings::new(&config, crate::model::clock::unix_seconds());
    let roles = crate::inventory::entra_roles(&observed, &policies, &settings);
    let tenant = read.directory(&mut config);
    let mut entra = EntraSource::new(tenant, &config);
    // No role trusts the tenant: nothing to explain, and no Entra credential asked for.
    let directory = if roles.is_empty() {
        crate::inventory::Directory::default()
    } else {
        entra.directory().await?
    };
    let readable = tokio::task::block_in_place(|| audit::readable_copy(&config.audit, &config.aws))
        .map_err(|e| anyhow::anyhow!("the audit log: {e}"))?;
    let since = match audit::show(&readable.path, &audit::Query::default()) {
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
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Format::Markdown => out!("{}", report.markdown())?,
        Format::Text => out!("{}", report.text())?,
    }
    Ok(0)
}

/// `trustsync access --people`: the accounts in scope, Identity Center in its region, and
/// the directory's users, matched by user name.
async fn access_people(
    only: &[String],
    person: Option<&str>,
    output: Format,
    config: &Config,
    entra: &mut EntraSource<'_>,
) -> anyhow::Result<u8> {
    check_accounts(only)?;
    aws_ready(config).await?;
    let (mut fleet, _) = crate::runtime::fleet::connect(config, None, Default::default())
        .await
        .context("reading the AWS caller identity and the accounts in scope")?;
    fleet.narrow(only)?;
    let accounts: Vec<String> = fleet.account_ids_in_scope().into_iter().collect();
    let clients = fleet
        .identity_center(config)
        .await
        .context("connecting to IAM Identity Center")?;
    let observed = clients
        .read_identity_center(
            config.identity_center.instance_arn.as_deref(),
            &accounts,
            None,
        )
        .await
        .context("reading IAM Identity Center (nothing was changed)")?;
    let users = entra.users().await?;
    let report = crate::inventory::people_access(&observed, &accounts, person, &users);
    if let Some(p) = person.filter(|_| report.people.is_empty() && report.without_access == 0) {
        bail!("--person {p}: no user of the identity store has this user name");
    }
    match output {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?)?,
        Format::Markdown => out!("{}", report.markdown())?,
        Format::Text => out!("{}", report.text())?,
    }
    Ok(0)
}

/// `trustsync export`: RoleMappings for the roles, AccessAssignments for the permission
/// sets groups hold in IAM Identity Center.
pub(super) async fn export(mut args: ReadArgs, mut config: Config) -> anyhow::Result<u8> {
    let Some((policies, fleet, _caller)) = open_scope(
        &args.policies.policies,
        &args.accounts,
        &config,
        &Progress::new(true),
    )
    .await?
    else {
        return Ok(1);
    };
    let (observed, unreachable) = pass::observe(&fleet, &policies, &config).await?;
    for p in &unreachable {
        eprintln!("warning: {}", p.message);
    }
    let many = fleet.members().len() > 1;
    let settings = crate::plan::Settings::new(&config, crate::model::clock::unix_seconds());
    let roles = crate::inventory::entra_roles(&observed, &policies, &settings);
    let ic = export_identity_center(&fleet, &config).await?;
    let people = ic
        .as_ref()
        .is_some_and(|ic| !crate::inventory::sets_to_read(ic).is_empty());
    let tenant = args.directory(&mut config);
    let mut entra = EntraSource::new(tenant, &config);
    let directory = if roles.iter().all(|r| r.managed) && !people {
        crate::inventory::Directory::default()
    } else {
        entra.directory().await?
    };
    let mut out =
        crate::inventory::export(&roles, &policies, &directory, &observed, &settings, many);
    if let Some(ic) = ic.as_ref().filter(|_| people) {
        let users = entra.users().await?;
        let mark = crate::runtime::people::mark(&config);
        let src = crate::inventory::PeopleSource {
            ic,
            mark: &mark,
            owner_key: &config.owner_tag.key,
            directory: &directory,
            users: &users,
            many_accounts: many,
        };
        crate::inventory::export_people(&src, &policies, &mut out);
    }
    out!("{}", out.yaml)?;
    for s in &out.skipped {
        eprintln!("not exported: {s}");
    }
    eprintln!(
        "{} mapping(s) and {} access assignment(s) exported, {} not exported",
        out.mappings,
        out.assignments,
        out.skipped.len()
    );
    Ok(if out.skipped.is_empty() { 0 } else { 1 })
}

/// IAM Identity Center for `export`: the configured instance, or the one the account has,
/// with the policies and tags of the sets it may export. `None`, with a warning, when no
/// instance is configured and none can be read (an organization without Identity Center).
async fn export_identity_center(
    fleet: &crate::runtime::fleet::Fleet,
    config: &Config,
) -> anyhow::Result<Option<crate::observed::ObservedIdentityCenter>> {
    let want = config.identity_center.instance_arn.as_deref();
    let accounts: Vec<String> = fleet.account_ids_in_scope().into_iter().collect();
    let read = async {
        let clients = fleet.identity_center(config).await?;
        let mut ic = clients.read_identity_center(want, &accounts, None).await?;
        for arn in crate::inventory::sets_to_read(&ic) {
            let mut p = clients
                .permission_set_policies(&ic.instance_arn, &arn)
                .await?;
            p.tags = Some(clients.permission_set_tags(&ic.instance_arn, &arn).await?);
            if let Some(set) = ic.permission_sets.iter_mut().find(|s| s.arn == arn) {
                set.policies = Some(p);
            }
        }
        Ok::<_, crate::model::call::Failure>((clients, ic))
    };
    match read.await {
        Ok((_, ic)) => Ok(Some(ic)),
        Err(e) if want.is_none() => {
            eprintln!(
                "warning: IAM Identity Center not read, so no AccessAssignment exported: {e}"
            );
            Ok(None)
        }
        Err(e) => {
            Err(anyhow::Error::new(e).context("reading IAM Identity Center (nothing was changed)"))
        }
    }
}

/// `trustsync check-token`.
pub(super) async fn check_token(args: CheckTokenArgs, config: Config) -> anyhow::Result<u8> {
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
    let settings = crate::plan::Settings::new(&config, crate::model::clock::unix_seconds());
    let mut roles = crate::inventory::entra_roles(&observed, &policies, &settings);
    if let Some(r) = &args.role {
        roles.retain(|x| &x.role.arn == r || x.role.name.as_str().eq_ignore_ascii_case(r));
        if roles.is_empty() {
            bail!("--role {r}: no role of that name trusts the tenant's provider");
        }
    }
    let now = crate::model::clock::unix_seconds() as i64;
    let verdicts = crate::inventory::check_token(&claims, &roles, &observed, now);
    match args.output {
        ShowFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"claims": claims, "roles": verdicts})
            )?
        )?,
        ShowFormat::Text => {
            outln!("The token's signature is not checked here; STS checks it against the issuer's keys.")?;
            outln!(
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
            )?;
            for v in &verdicts {
                let managed = if v.managed {
                    ""
                } else {
                    " (not managed by trustsync)"
                };
                if v.accepts {
                    outln!("ACCEPTS  {}{managed}", v.role)?;
                } else {
                    outln!("REFUSES  {}{managed}", v.role)?;
                    for r in &v.reasons {
                        outln!("  - {r}")?;
                    }
                }
            }
            if verdicts.is_empty() {
                outln!("No role trusts the tenant's provider.")?;
            }
        }
    }
    Ok(if verdicts.iter().any(|v| v.accepts) {
        0
    } else {
        1
    })
}
