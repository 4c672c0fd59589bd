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
    assert!(needs_attention(&path).unwrap().contains("line 3"));
    let mut log = AuditLog::open(&path).expect("a broken chain never blocks the log");
    let r = log.unacknowledged_rotation().cloned().unwrap();
    assert_eq!(
        r.previous_good_lines, 2,
        "the garbled line itself is the first bad one"
    );
    log.append(&pass(9)).unwrap();
    let v = verify_with(&path, None).unwrap();
    assert_eq!(v.previous.len(), 1);
    assert_eq!(v.unacknowledged.as_ref(), Some(&r));
    assert!(needs_attention(&path)
        .unwrap()
        .contains(&r.previous_segment));
    // Left next to the log while this writer holds it, recorded at its next pass.
    assert!(matches!(AuditLog::open(&path), Err(Error::Locked { .. })));
    request_acknowledgement(&path, "alice", None).unwrap();
    assert_eq!(log.take_acknowledgement().as_deref(), Some("alice"));
    assert!(log.unacknowledged_rotation().is_none());
    assert_eq!(log.take_acknowledgement(), None, "the request is used once");
    drop(log);
    assert_eq!(needs_attention(&path), None);
    assert_eq!(verify_with(&path, None).unwrap().unacknowledged, None);
    // A second break rotates again: verify follows both segments back.
    let mut log = AuditLog::open(&path).unwrap();
    log.append(&pass(10)).unwrap();
    drop(log);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("alice", "mallory", 1)).unwrap();
    AuditLog::open(&path).unwrap();
    assert_eq!(verify_with(&path, None).unwrap().previous.len(), 2);
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
    let public = key(7).verifying_key();
    let ok = verify_with(&path, Some(&public)).unwrap();
    assert_eq!((ok.lines, ok.checkpoints, ok.signed_through), (8, 4, 8));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<String> = text.lines().map(String::from).collect();
    let fails = |tampered: &str, line: usize, why: &str| {
        std::fs::write(&path, tampered).unwrap();
        let err = verify_with(&path, Some(&public)).unwrap_err().to_string();
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
    assert_eq!(recorded(&path).baselines[role], "3@100");
}
