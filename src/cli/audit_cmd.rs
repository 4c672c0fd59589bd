//! `trustsync audit`: verify (the chain, the signatures, the anchor), acknowledge, show.

use std::path::Path;

use anyhow::bail;

use super::outln;
use crate::adapters::aws::AwsClients;
use crate::audit;
use crate::config::Config;

/// `--since`: an RFC 3339 time or date as given, or a duration (`30m`, `24h`, `7d`) back
/// from now, as RFC 3339 in UTC.
pub(super) fn since_time(s: &str) -> anyhow::Result<String> {
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

/// The auditor keys of the config (and the checkpoint key where it can be read here: an
/// auditor's machine may hold neither the signing key nor the controller's credentials).
fn trust_here(config: &Config) -> anyhow::Result<audit::Trust> {
    let auditors_only = crate::config::AuditConfig {
        auditor_public_key_files: config.audit.auditor_public_key_files.clone(),
        ..crate::config::AuditConfig::default()
    };
    let auditors = audit::Trust::of_config(&auditors_only).map_err(|e| anyhow::anyhow!(e))?;
    Ok(audit::Trust::of_config(&config.audit).unwrap_or(auditors))
}

/// `trustsync audit acknowledge`: signs the acknowledgement of the rotation the log's
/// current segment began with, with the auditor's key, and appends it, or leaves it for the
/// controller that holds the log. Refused (nothing written) when no auditor key is
/// configured or the key is not one of them: such an acknowledgement would clear nothing.
pub(super) fn audit_acknowledge(
    file: &Path,
    config: &Config,
    (by, key, note): (&str, &Path, Option<String>),
    store: Option<&audit::s3::S3Log>,
) -> anyhow::Result<u8> {
    if by.trim().is_empty() {
        bail!("--by: say who is acknowledging");
    }
    let trust = trust_here(config)?;
    if trust.auditors.is_empty() {
        bail!(
            "the config lists no auditor key (audit.auditorPublicKeyFiles): without one no acknowledgement can clear the rotation alarm, signed or not. Add the public half of the auditor's Ed25519 key there, then acknowledge with its private half (--key)"
        );
    }
    let signer = audit::Signer::from_pem_file(key).map_err(|e| anyhow::anyhow!("--key {e}"))?;
    if !trust.auditors.contains(&signer.public_key()) {
        bail!(
            "--key {}: key {} is not among the auditor keys the config lists (audit.auditorPublicKeyFiles), so its acknowledgement would not count",
            key.display(),
            signer.public_key().key_id()
        );
    }
    let Some(rotated) = audit::unacknowledged(file, &trust)? else {
        eprintln!(
            "{}: no rotation to acknowledge: its current segment did not begin with one, or an auditor acknowledged it already",
            file.display()
        );
        return Ok(1);
    };
    let ack = audit::Acknowledged::signed(&rotated, by, note, &signer);
    if let Some(store) = store {
        let body = serde_json::to_vec(&ack).expect("serializes");
        let request = tokio::task::block_in_place(|| store.put_request("acknowledge", body))
            .map_err(|e| anyhow::anyhow!("the acknowledgement request: {e}"))?;
        outln!(
            "left the signed acknowledgement in {request} for the controller that leads, to record at its next pass"
        )?;
        return Ok(0);
    }
    // An acknowledgement vouches for itself (the auditor's signature): the log is opened
    // without the checkpoint signer, which this machine need not hold.
    match audit::AuditLog::open_with(file, trust, None) {
        Ok(mut log) => match log.acknowledge(ack) {
            Ok(r) => {
                outln!(
                    "{}: acknowledged by {by} (auditor key {}) the rotation away from {} ({})",
                    file.display(),
                    signer.public_key().key_id(),
                    r.previous_segment,
                    r.reason
                )?;
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(1)
            }
        },
        Err(audit::Error::Locked { .. }) => {
            let request = audit::request_acknowledgement(file, &ack)?;
            outln!(
                "{}: held by a running controller; left the signed acknowledgement in {} for it to record at its next pass",
                file.display(),
                request.display()
            )?;
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

/// `trustsync audit verify`: 0 when the chain (and with a key, every checkpoint) holds,
/// across the segments, and no rotation waits for an auditor's acknowledgement.
pub(super) fn audit_verify(
    file: &Path,
    public_key: Option<&Path>,
    auditor_keys: &[std::path::PathBuf],
    config: impl FnOnce() -> anyhow::Result<Config>,
) -> anyhow::Result<u8> {
    let key = public_key
        .map(audit::PublicKey::from_pem_file)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let auditors = if auditor_keys.is_empty() {
        trust_here(&config()?)?.auditors
    } else {
        auditor_keys
            .iter()
            .map(|p| {
                audit::PublicKey::from_pem_file(p)
                    .map_err(|e| anyhow::anyhow!("--auditor-key: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let verified = audit::verify_with(file, key.as_ref(), &auditors);
    if let Ok(v) = &verified {
        for p in &v.previous {
            outln!(
                "previous segment {}: its first {} line(s) verify and the next segment carries on from them; set aside because {}",
                p.path.display(),
                p.good_lines,
                p.reason
            )?;
        }
        if let Some(r) = &v.unacknowledged {
            eprintln!("{}", audit::rotation_notice(file, r));
            for ignored in &v.ignored_acknowledgements {
                eprintln!("{ignored}");
            }
            if auditors.is_empty() {
                eprintln!("no auditor key is configured (audit.auditorPublicKeyFiles, or --auditor-key): no acknowledgement can clear this");
            }
            return Ok(1);
        }
    }
    match verified {
        Ok(v) if key.is_some() => {
            outln!(
                "{}: {} line(s), hash chain intact; {} signed checkpoint(s) verify, the last on line {}{}",
                file.display(),
                v.lines,
                v.checkpoints,
                v.signed_through,
                match v.lines - v.signed_through {
                    0 => String::new(),
                    n => format!(" ({n} line(s) after it not signed yet)"),
                }
            )?;
            Ok(0)
        }
        Ok(v) => {
            outln!("{}: {} line(s), hash chain intact", file.display(), v.lines)?;
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
pub(super) async fn audit_verify_anchor(file: &Path, config: &Config) -> anyhow::Result<u8> {
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
    // And each still vouches for the lines it signed: one published from a segment after
    // that segment's break signed lines that changed since. A rotation keeps the broken
    // file, and an acknowledgement says a person looked; neither makes this evidence whole.
    if let Some((_, why)) = audit::published_no_longer_matching(file, &published, &segments)? {
        let stream = format!("{}/{}", anchor.log_group, anchor.log_stream);
        eprintln!("{}: {why} ({stream})", file.display());
        return Ok(1);
    }
    let segment = segments.last().copied().flatten().unwrap_or(0);
    outln!(
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
    )?;
    Ok(0)
}

/// `trustsync release NAME`: leaves a release of the document's held removals for the
/// controller that holds the audit log; without one, says to use `apply --release`.
pub(super) fn release(config: &Config, args: super::ReleaseArgs) -> anyhow::Result<u8> {
    let super::ReleaseArgs {
        name,
        by,
        note,
        policies,
    } = args;
    if by.trim().is_empty() {
        bail!("--by: say who is releasing the held removals (a name or an email address)");
    }
    let set = crate::sources::policy::load_dir(&policies.policies, &config.limits)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let known = set.holds_members(&name);
    if !known {
        bail!(
            "no RoleMapping or AccessAssignment named `{name}` in {}: a release names the document whose removals are held (as the hold's release hint says)",
            policies.policies.display()
        );
    }
    if let Some(s3) = &config.audit.s3 {
        // The leader takes it from the bucket at its next poll; with no leader, the next
        // one to lead does.
        let store = tokio::task::block_in_place(|| audit::s3::S3Log::connect(s3, &config.aws))
            .map_err(|e| anyhow::anyhow!(e))?;
        let request =
            tokio::task::block_in_place(|| audit::request_release_in(&store, &name, &by, note))
                .map_err(|e| anyhow::anyhow!("the release request: {e}"))?;
        outln!(
            "release of {name} by {by} left in {request} for the controller that leads: it records it and applies the held removals at its next directory poll"
        )?;
        return Ok(0);
    }
    let file = &config.audit.path;
    match audit::AuditLog::open(file) {
        // Nobody holds the log: no controller runs against it.
        Ok(_) => {
            eprintln!(
                "no running controller holds {}: `trustsync apply --release {name}` lets the held removals through now",
                file.display()
            );
            Ok(1)
        }
        Err(audit::Error::Locked { .. }) => {
            let request = audit::request_release(file, &name, &by, note)?;
            outln!(
                "release of {name} by {by} left in {} for the running controller: it records it and applies the held removals at its next directory poll",
                request.display()
            )?;
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}
