use super::*;
use crate::model::call::Written;
use crate::model::call::{Actor, Outcome};
use crate::plan::{Action, Change, EntraAction, IamAction};

fn actor() -> Actor {
    Actor {
        instance: "test/1".into(),
        aws_caller: "arn:aws:iam::1:user/t".into(),
        entra_app_id: None,
    }
}

fn pass(applied: usize) -> Record {
    Record::Pass(PassRecord {
        actor: actor(),
        trigger: None,
        policy_revision: None,
        policy_author: None,
        outcome: crate::model::call::PassOutcome::Success,
        applied,
        failed: 0,
        skipped: 0,
        held: Vec::new(),
        problems: 0,
        error: None,
    })
}

fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    for i in 0..n {
        log.append(&pass(i)).unwrap();
    }
    (dir, path)
}

#[test]
fn chain_verifies_and_reopens() {
    let (_d, path) = log_with(3);
    assert_eq!(verify(&path).unwrap(), 3);
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log.append(&pass(9)).unwrap(), 4);
    assert_eq!(verify(&path).unwrap(), 4);
    // Every line reads back as a record.
    for line in std::fs::read_to_string(&path).unwrap().lines() {
        serde_json::from_str::<Record>(line).unwrap();
    }
}

#[test]
fn edited_deleted_and_torn_lines_are_named() {
    let (_d, path) = log_with(4);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    let edited = text.replacen("\"applied\":1", "\"applied\":7", 1);
    std::fs::write(&path, &edited).unwrap();
    let err = verify(&path).unwrap_err().to_string();
    assert!(err.contains("line 3:"), "{err}");

    let deleted = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]);
    std::fs::write(&path, deleted).unwrap();
    assert!(verify(&path).unwrap_err().to_string().contains("line 2:"));

    std::fs::write(&path, &text[..text.len() - 5]).unwrap();
    let err = verify(&path).unwrap_err().to_string();
    assert!(err.contains("line 4: last line is torn"), "{err}");

    // A torn line in the middle's company (a broken chain before it) is not repaired in
    // place: verification names the break, and opening keeps the file whole as the
    // previous segment and begins a new one after its last good line.
    let broken_then_torn = format!("{}\n{}\n{}", lines[0], lines[2], &lines[3][..10]);
    std::fs::write(&path, &broken_then_torn).unwrap();
    assert!(verify(&path).is_err());
    let log = AuditLog::open(&path).unwrap();
    let r = log.unacknowledged_rotation().unwrap();
    assert_eq!(r.previous_good_lines, 0, "line 2 says line 1 changed");
    assert_eq!(
        std::fs::read_to_string(&r.previous_segment).unwrap(),
        broken_then_torn
    );
}

#[test]
fn a_torn_last_line_is_moved_aside_and_recorded_and_the_log_goes_on() {
    let (dir, path) = log_with(3);
    let text = std::fs::read_to_string(&path).unwrap();
    let torn = "{\"time\":\"2026-12-04T03:00:00Z\",\"type\":\"intent\",\"act";
    std::fs::write(&path, format!("{text}{torn}")).unwrap();
    let mut log = AuditLog::open(&path).expect("a torn tail never blocks the log");
    assert_eq!(log.len(), 4, "three lines and the repaired record");
    log.append(&pass(9)).unwrap();
    drop(log);
    assert_eq!(verify(&path).unwrap(), 5);
    let last_but_one = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .nth(3)
        .unwrap()
        .to_string();
    let Record::Repaired(r) = serde_json::from_str::<Record>(&last_but_one).unwrap() else {
        panic!("{last_but_one}");
    };
    assert_eq!(r.removed_bytes, torn.len());
    assert_eq!(r.removed_sha256, hash(torn.as_bytes()));
    let side: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("audit.jsonl.torn-")
        })
        .collect();
    assert_eq!(side.len(), 1);
    assert_eq!(
        std::fs::read_to_string(side[0].path()).unwrap(),
        torn,
        "kept, never deleted"
    );
    assert_eq!(side[0].path().display().to_string(), r.side_file);
}

#[test]
fn a_garbled_line_rotates_and_the_controller_records_an_acknowledgement_left_for_it() {
    let (_dir, path) = log_with(4);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "not json";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (_keys, config) = with_auditor(&path);
    assert!(needs_attention(&config).unwrap().contains("line 3"));
    let trust = Trust::of_config(&config).unwrap();
    let mut log = AuditLog::open_with(&path, trust.clone(), None)
        .expect("a broken chain never blocks the log");
    let r = log.unacknowledged_rotation().cloned().unwrap();
    assert_eq!(
        r.previous_good_lines, 2,
        "the garbled line itself is the first bad one"
    );
    log.append(&pass(9)).unwrap();
    let v = verify_with(&path, None, &trust.auditors).unwrap();
    assert_eq!(v.previous.len(), 1);
    assert_eq!(v.unacknowledged.as_ref(), Some(&r));
    assert!(needs_attention(&config)
        .unwrap()
        .contains(&r.previous_segment));
    assert!(matches!(AuditLog::open(&path), Err(Error::Locked { .. })));
    // Whoever can write the volume leaves an unsigned request, or one signed with a key
    // of their own: ignored, and named with the rotation's report.
    let unsigned = Acknowledged {
        by: "mallory".into(),
        previous_segment: r.previous_segment.clone(),
        note: None,
        previous_last_hash: Some(r.previous_last_hash.clone()),
        signed_at: None,
        key_id: None,
        signature: None,
    };
    request_acknowledgement(&path, &unsigned).unwrap();
    assert_eq!(log.take_acknowledgement(), None);
    let attention = log.attention().unwrap();
    assert!(attention.contains("not signed"), "{attention}");
    let theirs = Acknowledged::signed(&r, "mallory", None, &Signer::new(key(66)));
    request_acknowledgement(&path, &theirs).unwrap();
    assert_eq!(log.take_acknowledgement(), None);
    assert!(log
        .attention()
        .unwrap()
        .contains("not a configured auditor key"));
    // An auditor's acknowledgement of another rotation does not count either.
    let mut other = r.clone();
    other.previous_last_hash = GENESIS.into();
    let elsewhere = Acknowledged::signed(&other, "alice", None, &Signer::new(key(55)));
    request_acknowledgement(&path, &elsewhere).unwrap();
    assert_eq!(log.take_acknowledgement(), None);
    assert!(log.attention().unwrap().contains("another rotation"));
    // Signed with the auditor's key: left next to the log while this writer holds it,
    // recorded at its next pass.
    let signed = Acknowledged::signed(&r, "alice", Some("looked".into()), &Signer::new(key(55)));
    request_acknowledgement(&path, &signed).unwrap();
    assert_eq!(log.take_acknowledgement().as_deref(), Some("alice"));
    assert!(log.unacknowledged_rotation().is_none());
    assert_eq!(log.attention(), None);
    assert_eq!(log.take_acknowledgement(), None, "the request is used once");
    drop(log);
    assert_eq!(needs_attention(&config), None);
    let v = verify_with(&path, None, &trust.auditors).unwrap();
    assert_eq!(v.unacknowledged, None);
    // The same file judged without the auditor key: nothing clears the rotation.
    assert_eq!(
        verify_with(&path, None, &[]).unwrap().unacknowledged,
        Some(r.clone())
    );
    // An edited note breaks the auditor's signature: no longer acknowledged.
    let text = std::fs::read_to_string(&path).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|l| l.replacen("\"looked\"", "\"looked twice\"", 1))
        .collect();
    std::fs::write(&path, rechain(&edited)).unwrap();
    let v = verify_with(&path, None, &trust.auditors).unwrap();
    assert_eq!(v.unacknowledged, Some(r.clone()));
    assert!(
        v.ignored_acknowledgements[0].contains("does not verify"),
        "{v:?}"
    );
    std::fs::write(&path, text).unwrap();
    // A second break rotates again: verify follows both segments back.
    let mut log = AuditLog::open(&path).unwrap();
    log.append(&pass(10)).unwrap();
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("alice", "mallory", 1)).unwrap();
    AuditLog::open(&path).unwrap();
    assert_eq!(verify_with(&path, None, &[]).unwrap().previous.len(), 2);
}

/// A config of the log at `path` with the auditor key of seed 55 (its public half written
/// to a file in the returned directory).
fn with_auditor(path: &Path) -> (tempfile::TempDir, crate::config::AuditConfig) {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("auditor.pub");
    let pem = key(55)
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    std::fs::write(&public, pem).unwrap();
    let config = crate::config::AuditConfig {
        path: path.to_path_buf(),
        auditor_public_key_files: vec![public],
        ..crate::config::AuditConfig::default()
    };
    (dir, config)
}

#[test]
fn one_writer_at_a_time() {
    let (_d, path) = log_with(1);
    let first = AuditLog::open(&path).unwrap();
    let err = AuditLog::open(&path).unwrap_err().to_string();
    assert!(err.contains("in use by another trustsync writer"), "{err}");
    drop(first);
    AuditLog::open(&path).expect("free again once the first writer is gone");
}

#[test]
fn an_entra_write_left_open_is_recovered_as_not_known() {
    let (_d, path) = log_with(0);
    let action = Action::Entra(EntraAction::DeleteFederatedCredential {
        application_id: "obj".into(),
        app_id: "app".into(),
        credential_id: "c".into(),
        name: "trustsync-x-123456789012-r".into(),
    });
    {
        let mut log = AuditLog::open(&path).unwrap();
        log.append(&Record::Intent(Intent {
            actor: actor(),
            intent: action,
            target: "entra:application/app/federatedIdentityCredentials/n".into(),
            mapping: None,
        }))
        .unwrap();
    }
    let mut log = AuditLog::open(&path).unwrap();
    let observed = crate::observed::Observations::single(
        "1",
        "eu-west-1",
        crate::observed::Observed::default(),
    );
    assert_eq!(log.recover(&observed, &actor()).unwrap(), 1);
    assert!(log.pending().is_empty());
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    match serde_json::from_str(text.lines().last().unwrap()).unwrap() {
        Record::Recovered(r) => assert_eq!(r.landed, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_intent_without_an_outcome_is_recovered_once_from_what_aws_shows() {
    let (_d, path) = log_with(0);
    let action = Action::Iam(IamAction::DeleteRole {
        role_name: "gone".into(),
    });
    let change = Change::new(action.clone(), "arn:aws:iam::1:role/gone", None, "prune");
    let intent = |log: &mut AuditLog| {
        log.append(&Record::Intent(Intent {
            actor: actor(),
            intent: action.clone(),
            target: change.resource.clone(),
            mapping: None,
        }))
        .unwrap()
    };
    {
        let mut log = AuditLog::open(&path).unwrap();
        // One write answered, one left open (the process "dies" here).
        let line = intent(&mut log);
        let done = ChangeRecord::of(
            &change,
            &actor(),
            None,
            Some(line),
            Outcome::Ok(Written::default()),
        );
        log.append(&Record::Change(Box::new(done))).unwrap();
        intent(&mut log);
        assert_eq!(log.pending().keys().collect::<Vec<_>>(), [&3]);
    }
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.pending().keys().collect::<Vec<_>>(), [&3]);
    // An account this pass could not read says nothing: the intent stays pending.
    let elsewhere = crate::observed::Observations::single(
        "2",
        "eu-west-1",
        crate::observed::Observed::default(),
    );
    assert_eq!(log.recover(&elsewhere, &actor()).unwrap(), 0);
    assert_eq!(log.pending().keys().collect::<Vec<_>>(), [&3]);
    let observed = crate::observed::Observations::single(
        "1",
        "eu-west-1",
        crate::observed::Observed::default(),
    );
    assert_eq!(log.recover(&observed, &actor()).unwrap(), 1);
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    let last: Record = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    match last {
        Record::Recovered(r) => {
            assert_eq!(
                (r.intent_line, r.landed),
                (3, Some(true)),
                "the role is gone"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut log = AuditLog::open(&path).unwrap();
    assert!(log.pending().is_empty(), "recovered once");
    assert_eq!(log.recover(&observed, &actor()).unwrap(), 0);
    assert_eq!(verify(&path).unwrap(), 4);
}

fn key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

/// A log of `passes` signed passes (each record followed by its checkpoint).
fn signed_log(passes: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    log.sign_with(Signer::new(key(7)), 100);
    for i in 0..passes {
        log.append(&pass(i)).unwrap();
    }
    (dir, path)
}

/// The lines with every prevHash recomputed, as someone who can write the file can.
fn rechain(lines: &[String]) -> String {
    let mut prev = GENESIS.to_string();
    let mut out = String::new();
    for l in lines {
        let mut v: Value = serde_json::from_str(l).unwrap();
        v["prevHash"] = Value::String(prev.clone());
        let text = serde_json::to_string(&v).unwrap();
        prev = hash(text.as_bytes());
        out.push_str(&text);
        out.push('\n');
    }
    out
}

#[test]
fn signed_checkpoints_find_a_rewritten_rerooted_or_reordered_log() {
    let (_d, path) = signed_log(4);
    let public = PublicKey::Ed25519(key(7).verifying_key());
    let ok = verify_with(&path, Some(&public), &[]).unwrap();
    assert_eq!((ok.lines, ok.checkpoints, ok.signed_through), (8, 4, 8));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<String> = text.lines().map(String::from).collect();
    let fails = |tampered: &str, line: usize, why: &str| {
        std::fs::write(&path, tampered).unwrap();
        let err = verify_with(&path, Some(&public), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("line {line}:")), "{err}");
        assert!(err.contains(why), "{err}");
    };
    let joined = |ls: &[String]| ls.iter().map(|l| format!("{l}\n")).collect::<String>();

    // Without recomputing the chain: the chain itself names the line.
    fails(
        &text.replacen("\"applied\":1", "\"applied\":9", 1),
        4,
        "prevHash",
    );
    let mut swapped = lines.clone();
    swapped.swap(2, 4);
    fails(&joined(&swapped), 3, "prevHash");
    let mut middle = lines.clone();
    middle.remove(3);
    fails(&joined(&middle), 4, "prevHash");

    // With every prevHash recomputed: the signed checkpoints do not follow.
    let mut edited = lines.clone();
    edited[2] = edited[2].replacen("\"applied\":1", "\"applied\":9", 1);
    fails(&rechain(&edited), 4, "rewritten");
    fails(&rechain(&lines[2..]), 2, "rewritten");
    let mut reordered = lines.clone();
    reordered.swap(0, 2);
    fails(&rechain(&reordered), 2, "rewritten");
    let unsigned: Vec<String> = lines
        .iter()
        .filter(|l| !l.contains("\"checkpoint\""))
        .cloned()
        .collect();
    fails(&rechain(&unsigned), 4, "no signed checkpoint");
    // A checkpoint made with another key does not verify.
    let forged = {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.jsonl");
        let mut log = AuditLog::open(&p).unwrap();
        log.sign_with(Signer::new(key(9)), 100);
        log.append(&pass(0)).unwrap();
        std::fs::read_to_string(&p).unwrap()
    };
    fails(&forged, 2, "does not verify");
    // Without the key, only the chain is checked.
    std::fs::write(&path, rechain(&unsigned)).unwrap();
    assert_eq!(verify(&path).unwrap(), 4);
}

#[test]
fn a_revocations_removal_baseline_is_recorded_once_it_lands_and_survives_reopening() {
    let (_d, path) = log_with(0);
    let role = "arn:aws:iam::1:role/trustsync/r";
    let revoke = |baseline: &str| {
        Change::new(
            Action::Iam(IamAction::RevokeTrust {
                role_name: "r".into(),
                trust_policy: serde_json::json!({}),
                baseline: Some(baseline.into()),
            }),
            role,
            None,
            "test",
        )
    };
    let mut log = AuditLog::open(&path).unwrap();
    for (change, outcome) in [
        (revoke("3@100"), Outcome::Ok(Written::default())),
        (
            revoke("9@200"),
            Outcome::Failed(crate::model::call::Failure::permanent("x", "refused")),
        ),
    ] {
        let line = log
            .append(&Record::Intent(Intent {
                actor: actor(),
                intent: change.action.clone(),
                target: change.resource.clone(),
                mapping: None,
            }))
            .unwrap();
        log.append(&Record::Change(Box::new(ChangeRecord::of(
            &change,
            &actor(),
            None,
            Some(line),
            outcome,
        ))))
        .unwrap();
    }
    assert_eq!(
        log.baselines()[role],
        "3@100",
        "the failed write records nothing"
    );
    drop(log);
    assert_eq!(AuditLog::open(&path).unwrap().baselines()[role], "3@100");
    let config = crate::config::AuditConfig {
        path: path.clone(),
        ..crate::config::AuditConfig::default()
    };
    assert_eq!(recorded(&config).baselines[role], "3@100");
}

/// A correctly chained intent and outcome that write a group pin, as whoever can write the
/// volume appends them (every hash is public).
fn forged_pin_lines(path: &Path, role: &str, pin: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let n = lines.len();
    let change = Change::new(
        Action::Iam(IamAction::TagRole {
            role_name: "r".into(),
            tags: [(
                crate::sources::directory::PIN_TAG.to_string(),
                pin.to_string(),
            )]
            .into(),
        }),
        role,
        None,
        "test",
    );
    let intent = Record::Intent(Intent {
        actor: actor(),
        intent: change.action.clone(),
        target: change.resource.clone(),
        mapping: None,
    });
    let outcome = Record::Change(Box::new(ChangeRecord::of(
        &change,
        &actor(),
        None,
        Some(n + 1),
        Outcome::Ok(Written::default()),
    )));
    for r in [intent, outcome] {
        let mut v = serde_json::to_value(&r).unwrap();
        v["time"] = Value::String(now_rfc3339());
        lines.push(serde_json::to_string(&v).unwrap());
    }
    rechain(&lines)
}

#[test]
fn a_forged_pin_after_the_last_signed_checkpoint_is_never_taken() {
    let (dir, path) = signed_log(2);
    let role = "arn:aws:iam::1:role/trustsync/r";
    let mine = Trust {
        checkpoints: Some(PublicKey::Ed25519(key(7).verifying_key())),
        auditors: Vec::new(),
    };
    let signer = || Some((CheckpointSigner::Local(Signer::new(key(7))), 100));
    // Someone who can write the volume appends lines while the controller is stopped.
    std::fs::write(&path, forged_pin_lines(&path, role, "theirs/0000")).unwrap();
    let mut log = AuditLog::open_with(&path, mine.clone(), signer()).unwrap();
    assert!(log.pins().is_empty(), "appended by hand: not vouched for");
    log.append(&pass(5)).unwrap();
    drop(log);
    // The writer recorded them as unvouched, and what it did not take from them.
    let unvouched: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "unvouched")
        .collect();
    assert_eq!(unvouched.len(), 1);
    assert!(
        unvouched[0]["reason"]
            .as_str()
            .unwrap()
            .contains("the group pin theirs/0000"),
        "{unvouched:?}"
    );
    // Later checkpoints cover the forged lines, and the record keeps them unvouched.
    let log = AuditLog::open_with(&path, mine.clone(), None).unwrap();
    assert!(log.pins().is_empty());
    drop(log);
    let public = dir.path().join("signing.pub");
    {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        let pem = key(7)
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .unwrap();
        std::fs::write(&public, pem).unwrap();
    }
    let config = crate::config::AuditConfig {
        path: path.clone(),
        public_key_file: Some(public),
        ..crate::config::AuditConfig::default()
    };
    assert!(
        recorded(&config).pins.is_empty(),
        "plan reads it the same way"
    );
    assert_eq!(needs_attention(&config), None);
    verify_with(&path, mine.checkpoints.as_ref(), &[]).expect("the log itself verifies");

    // A pin the writer wrote and a checkpoint covered is taken after a restart.
    let mut log = AuditLog::open_with(&path, mine.clone(), signer()).unwrap();
    let n = log.len();
    let change = Change::new(
        Action::Iam(IamAction::TagRole {
            role_name: "r".into(),
            tags: [(
                crate::sources::directory::PIN_TAG.to_string(),
                "ours/1111".to_string(),
            )]
            .into(),
        }),
        role,
        None,
        "test",
    );
    let line = log
        .append(&Record::Intent(Intent {
            actor: actor(),
            intent: change.action.clone(),
            target: change.resource.clone(),
            mapping: None,
        }))
        .unwrap();
    assert_eq!(line, n + 1);
    log.append(&Record::Change(Box::new(ChangeRecord::of(
        &change,
        &actor(),
        None,
        Some(line),
        Outcome::Ok(Written::default()),
    ))))
    .unwrap();
    assert_eq!(
        log.pins()[role],
        "ours/1111",
        "its own write counts at once"
    );
    log.append(&pass(6)).unwrap();
    drop(log);
    let log = AuditLog::open_with(&path, mine.clone(), None).unwrap();
    assert_eq!(log.pins()[role], "ours/1111");
    assert_eq!(recorded(&config).pins[role], "ours/1111");

    // Without a signing key nothing can be told apart: the chain is believed (documented).
    drop(log);
    let (_d2, plain) = log_with(1);
    std::fs::write(&plain, forged_pin_lines(&plain, role, "theirs/2222")).unwrap();
    assert_eq!(AuditLog::open(&plain).unwrap().pins()[role], "theirs/2222");
}

#[test]
fn a_checkpoint_signed_with_another_key_rotates_the_log_on_opening() {
    let (_d, path) = signed_log(2);
    let trust = Trust {
        checkpoints: Some(PublicKey::Ed25519(key(8).verifying_key())),
        auditors: Vec::new(),
    };
    let log = AuditLog::open_with(&path, trust, None).unwrap();
    let r = log.unacknowledged_rotation().expect("rotated");
    assert!(r.reason.contains("does not verify"), "{r:?}");
}

#[test]
fn a_previous_segment_changed_since_its_rotation_needs_a_person_and_gives_nothing() {
    let (_d, path) = log_with(3);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"applied\":1", "\"applied\":7", 1)).unwrap();
    let log = AuditLog::open(&path).unwrap();
    let previous = log
        .unacknowledged_rotation()
        .unwrap()
        .previous_segment
        .clone();
    drop(log);
    std::fs::write(&previous, "{}\n").unwrap();
    let log = AuditLog::open(&path).unwrap();
    let attention = log.attention().unwrap();
    assert!(attention.contains("changed since"), "{attention}");
}

#[test]
fn a_published_checkpoint_after_a_break_no_longer_matches() {
    let (_d, path) = signed_log(3);
    let published = repair::checkpoints_in(&std::fs::read(&path).unwrap());
    let segments = segments_holding(&path, &published).unwrap();
    assert_eq!(
        published_no_longer_matching(&path, &published, &segments).unwrap(),
        None
    );
    // Line 3 edited: the log rotates; the checkpoints on lines 2 (signing line 1) still
    // stand, those after the break do not, whatever a person acknowledges.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"applied\":1", "\"applied\":7", 1)).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    log.append(&pass(9)).unwrap();
    drop(log);
    let segments = segments_holding(&path, &published).unwrap();
    assert_eq!(segments, [Some(1), Some(1), Some(1)]);
    let (i, why) = published_no_longer_matching(&path, &published, &segments)
        .unwrap()
        .expect("found");
    assert_eq!(i, 1, "{why}");
    assert!(why.contains("no acknowledgement clears this"), "{why}");
    assert_eq!(
        published_no_longer_matching(&path, &published[..1], &segments[..1]).unwrap(),
        None
    );
}

#[test]
fn an_ecdsa_p256_key_in_spki_pem_verifies_its_der_signatures() {
    use ring::signature::KeyPair;
    let rng = ring::rand::SystemRandom::new();
    let alg = &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    // SubjectPublicKeyInfo: id-ecPublicKey, secp256r1, then the uncompressed point.
    let mut der = keys::hex_decode("3059301306072a8648ce3d020106082a8648ce3d030107034200").unwrap();
    der.extend_from_slice(pair.public_key().as_ref());
    use base64::Engine;
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let key = PublicKey::from_pem(&pem).unwrap();
    assert_eq!(key, PublicKey::from_spki_der(&der).unwrap());
    assert_eq!(key.algorithm(), "ECDSA_SHA_256");
    let msg = Checkpoint::message(3, GENESIS, "2026-01-01T00:00:00Z");
    let sig = pair.sign(&rng, msg.as_bytes()).unwrap();
    let cp = Checkpoint {
        lines: 3,
        head: GENESIS.into(),
        signed_at: "2026-01-01T00:00:00Z".into(),
        key_id: key.key_id(),
        algorithm: Some("ECDSA_SHA_256".into()),
        signature: keys::hex(sig.as_ref()),
    };
    assert!(cp.verifies(&key));
    let mut later = cp.clone();
    later.lines = 4;
    assert!(!later.verifies(&key), "another line count");
    let mut as_ed25519 = cp.clone();
    as_ed25519.algorithm = None;
    assert!(
        !as_ed25519.verifies(&key),
        "the algorithm is part of the claim"
    );
    assert!(!cp.verifies(&PublicKey::Ed25519(key_of(7))));
    // An Ed25519 key and anything else are told apart by name.
    assert!(PublicKey::from_pem(
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
    )
    .unwrap_err()
    .contains("PUBLIC KEY"));
}

fn key_of(seed: u8) -> ed25519_dalek::VerifyingKey {
    key(seed).verifying_key()
}
