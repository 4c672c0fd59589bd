//! The loader against a hostile author of the repository: links out of it, files that are
//! not policies, documents that expand without bound; and no diagnostic that carries more
//! of a file than a short rendering of one scalar.

use std::os::unix::fs::symlink;
use std::path::Path;

use serde::Deserialize;

use super::guardrails::Guardrails;
use super::quote::shorten_debug_strings;
use super::*;

const PROVIDER: &str = "\
apiVersion: trustsync.dev/v1alpha1
kind: IdentityProvider
metadata: {name: entra}
spec:
  tenantId: 00000000-0000-0000-0000-000000000001
  audiences: [api://aws]
";

const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGx0cnVzdHN5bmMtdGVzdC1rZXktbm90LXJlYWwtMDAw\n-----END PRIVATE KEY-----\n";

fn messages(dir: &Path) -> Vec<Diagnostic> {
    match load_dir(dir, &Limits::default()) {
        Ok(_) => Vec::new(),
        Err(Error::Invalid(d)) => d,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_configmap_volume_with_its_data_links_loads() {
    let dir = tempfile::tempdir().unwrap();
    let rev = dir.path().join("..2026_01_02_03_04_05.123456789");
    std::fs::create_dir(&rev).unwrap();
    std::fs::write(rev.join("providers.yaml"), PROVIDER).unwrap();
    symlink("..2026_01_02_03_04_05.123456789", dir.path().join("..data")).unwrap();
    symlink("..data/providers.yaml", dir.path().join("providers.yaml")).unwrap();
    let set = load_dir(dir.path(), &Limits::default()).unwrap();
    assert_eq!(set.providers.len(), 1);
    assert_eq!(
        yaml_files(dir.path()).unwrap(),
        [dir.path().join("providers.yaml")]
    );
    // git-sync: the policy directory reached through the worktree link.
    let outside = tempfile::tempdir().unwrap();
    symlink(dir.path(), outside.path().join("current")).unwrap();
    let set = load_dir(&outside.path().join("current"), &Limits::default()).unwrap();
    assert_eq!(set.providers.len(), 1);
}

#[test]
fn a_link_leaving_the_directory_is_refused_by_name_and_never_read() {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("key.pem"), PEM).unwrap();
    std::fs::write(secrets.path().join("more.yaml"), PEM).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("providers.yaml"), PROVIDER).unwrap();
    symlink(secrets.path().join("key.pem"), dir.path().join("zz.yaml")).unwrap();
    symlink(secrets.path(), dir.path().join("shared")).unwrap();
    symlink(
        dir.path().join("gone.yaml"),
        dir.path().join("dangling.yml"),
    )
    .unwrap();
    // A link to a file inside is fine, and one out through `..` is not.
    std::fs::create_dir(dir.path().join("team")).unwrap();
    symlink("../providers.yaml", dir.path().join("team/alias.yaml")).unwrap();
    symlink("../../", dir.path().join("team/up")).unwrap();
    let d = messages(dir.path());
    let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    let joined = text.join("\n");
    assert!(
        !joined.contains("PRIVATE") && !joined.contains("MC4C"),
        "{joined}"
    );
    let refused = |name: &str, what: &str| {
        let path = dir.path().join(name);
        assert!(
            d.iter().any(|x| x.file == path
                && x.message.starts_with("refused:")
                && x.message.contains(what)),
            "{name}: {joined}"
        );
    };
    refused("zz.yaml", "link to a file outside the policy directory");
    refused("shared", "link to a directory outside the policy directory");
    refused(
        "team/up",
        "link to a directory outside the policy directory",
    );
    refused("dangling.yml", "resolves to nothing");
    // alias.yaml is read: a second provider of the same name.
    assert!(
        d.iter()
            .any(|x| x.file == dir.path().join("team/alias.yaml")),
        "{joined}"
    );
    assert_eq!(d.len(), 6, "{joined}");
    // The watcher's listing leaves them out too, and its fingerprint sees them come.
    let files = yaml_files(dir.path()).unwrap();
    assert!(!files.iter().any(|f| f.ends_with("zz.yaml")), "{files:?}");
    let before = fingerprint(dir.path());
    symlink(secrets.path().join("key.pem"), dir.path().join("zz2.yaml")).unwrap();
    assert_ne!(before, fingerprint(dir.path()));
}

#[test]
fn a_device_or_pipe_is_refused_and_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success(), "mkfifo");
    // Opening a FIFO blocks until a writer comes: refusing it is what keeps this from
    // hanging.
    let d = messages(dir.path());
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.contains("not a regular file"), "{}", d[0]);
}

#[test]
fn a_file_that_is_not_a_mapping_is_named_but_never_quoted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.yaml"), PEM).unwrap();
    std::fs::write(dir.path().join("token.yaml"), "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl\n").unwrap();
    std::fs::write(
        dir.path().join("list.yaml"),
        "- a-secret-value-that-is-long-enough-to-matter\n",
    )
    .unwrap();
    let d = messages(dir.path());
    let joined: String = d.iter().map(|d| format!("{d}\n")).collect();
    assert_eq!(d.len(), 3, "{joined}");
    for x in &d {
        assert!(x.message.contains("not a mapping"), "{x}");
    }
    for leak in ["PRIVATE", "MC4C", "eyJ", "a-secret"] {
        assert!(!joined.contains(leak), "{leak}: {joined}");
    }
}

#[test]
fn files_past_the_size_limit_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!("{PROVIDER}# {}\n", "x".repeat(MAX_FILE_BYTES as usize));
    std::fs::write(dir.path().join("big.yaml"), big).unwrap();
    let d = messages(dir.path());
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].message.contains("at most 1048576 bytes") && d[0].line == 0,
        "{}",
        d[0]
    );
}

#[test]
fn a_billion_laughs_document_is_refused_before_it_expands() {
    let mut text = String::from("apiVersion: trustsync.dev/v1alpha1\nkind: RoleMapping\nmetadata: {name: lol}\nspec:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        text.push_str(&format!("  l{i}: &l{i} [{refs}]\n"));
    }
    let started = std::time::Instant::now();
    let (_, d) = {
        let mut set = PolicySet::default();
        let mut d = Vec::new();
        load_text(Path::new("lol.yaml"), &text, &mut set, &mut d);
        (set, d)
    };
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.contains("billion laughs"), "{}", d[0]);
    assert!(
        d[0].line >= 6,
        "located at the alias that crosses the limit: {}",
        d[0]
    );
    // A few shared anchors are fine.
    let shared = format!("{PROVIDER}---\napiVersion: trustsync.dev/v1alpha1\nkind: IdentityProvider\nmetadata: {{name: other}}\nspec:\n  tenantId: 00000000-0000-0000-0000-000000000002\n  audiences: &aud [api://aws]\n  accounts: {{ids: &ids ['111122223333']}}\n");
    let mut set = PolicySet::default();
    let mut d = Vec::new();
    load_text(Path::new("ok.yaml"), &shared, &mut set, &mut d);
    assert!(d.is_empty(), "{d:?}");
    // Deep nesting.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let mut d = Vec::new();
    load_text(
        Path::new("deep.yaml"),
        &deep,
        &mut PolicySet::default(),
        &mut d,
    );
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.contains("nest more than 64"), "{}", d[0]);
}

#[test]
fn short_renders_a_scalar_on_one_line_in_at_most_forty_characters() {
    assert_eq!(short("deployer"), "deployer");
    let arn = "arn:aws:iam::111122223333:policy/team/VeryLongPolicyNameForTheDeployers";
    let s = short(arn);
    assert!(s.chars().count() <= QUOTE_CHARS, "{s}");
    assert!(
        s.starts_with("arn:aws:iam::11112222333") && s.ends_with("TheDeployers"),
        "{s}"
    );
    assert_eq!(short("a\nb"), "a\\nb");
    assert_eq!(
        shorten_debug_strings(&format!("invalid type: string {:?}, expected u64", PEM)),
        format!(
            "invalid type: string \"{}\", expected u64",
            short(format!("{PEM:?}").trim_matches('"'))
        )
    );
}

/// 80 characters that do not repeat, and whether a text holds more than [`QUOTE_CHARS`]
/// of them in a row.
const MARKER: &str =
    "Kq3ZsX9wLmN2pR7tVbY4cD8fGhJ6kQ1uE5oI0aTzWxCvBnM-SeCrEt-PaYlOaD-dO-nOt-LeAk-0123";

fn leaks(text: &str) -> bool {
    let m: Vec<char> = MARKER.chars().collect();
    m.windows(QUOTE_CHARS + 1)
        .any(|w| text.contains(&w.iter().collect::<String>()))
}

/// Every place of a value a scalar may stand, as a path of keys and indices.
fn scalar_paths(
    v: &serde_yaml::Value,
    at: &mut Vec<serde_yaml::Value>,
    out: &mut Vec<Vec<serde_yaml::Value>>,
) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m {
                at.push(k.clone());
                out.push(at.clone()); // the key itself, renamed
                scalar_paths(v, at, out);
                at.pop();
            }
        }
        serde_yaml::Value::Sequence(s) => {
            for (i, v) in s.iter().enumerate() {
                at.push(serde_yaml::Value::Number(i.into()));
                scalar_paths(v, at, out);
                at.pop();
            }
        }
        _ => out.push(at.clone()),
    }
}

/// Sets the scalar at `path` (or, when `key`, renames the key there) to `to`.
fn replace(v: &mut serde_yaml::Value, path: &[serde_yaml::Value], key: bool, to: &str) {
    let (last, parents) = path.split_last().unwrap();
    let mut at = v;
    for p in parents {
        at = match p {
            serde_yaml::Value::Number(n) if at.is_sequence() => {
                &mut at.as_sequence_mut().unwrap()[n.as_u64().unwrap() as usize]
            }
            k => at.as_mapping_mut().unwrap().get_mut(k).unwrap(),
        };
    }
    match last {
        serde_yaml::Value::Number(n) if at.is_sequence() => {
            at.as_sequence_mut().unwrap()[n.as_u64().unwrap() as usize] = to.into();
        }
        k => {
            let m = at.as_mapping_mut().unwrap();
            if key {
                let val = m.remove(k).unwrap();
                m.insert(to.into(), val);
            } else {
                m.insert(k.clone(), to.into());
            }
        }
    }
}

/// Every scalar and every key of the repository's own policies and the GitOps example, one
/// at a time, replaced by a long secret: no diagnostic of loading, validating or the
/// guardrails carries more than 40 characters of it, and none spans lines.
#[test]
fn no_diagnostic_carries_more_than_a_short_rendering_of_a_scalar() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (mut cases, mut diagnosed) = (0, 0);
    for dir in ["policies", "examples/gitops/policies"] {
        let mut docs: Vec<serde_yaml::Value> = Vec::new();
        for f in yaml_files(&repo.join(dir)).unwrap() {
            let text = std::fs::read_to_string(&f).unwrap();
            for d in serde_yaml::Deserializer::from_str(&text) {
                let v = serde_yaml::Value::deserialize(d).unwrap();
                if !v.is_null() {
                    docs.push(v);
                }
            }
        }
        sweep(&docs, &mut cases, &mut diagnosed);
    }
    // Most replacements are an error (a bad ARN, an unknown field); the sweep is only
    // worth something if they are.
    println!("{cases} replacements, {diagnosed} with a diagnostic");
    assert!(
        cases > 100 && diagnosed * 2 > cases,
        "{diagnosed} of {cases}"
    );
}

fn sweep(docs: &[serde_yaml::Value], cases: &mut usize, diagnosed: &mut usize) {
    let guardrails = Guardrails::default();
    let known = guardrails::Known {
        accounts: Some(["111122223333".to_string()].into()),
        tenant: Some("00000000-0000-0000-0000-000000000001".into()),
    };
    for (i, doc) in docs.iter().enumerate() {
        let mut paths = Vec::new();
        scalar_paths(doc, &mut Vec::new(), &mut paths);
        for path in paths {
            for (key, secret) in [
                (false, MARKER.to_string()),
                (true, MARKER.to_string()),
                (false, format!("a`b\"c\n{MARKER}")),
            ] {
                let mut all = docs.to_vec();
                replace(&mut all[i], &path, key, &secret);
                let text: String = all
                    .iter()
                    .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
                    .collect();
                let mut set = PolicySet::default();
                let mut d = Vec::new();
                let mut unreadable = Unreadable::new();
                load_documents(
                    Path::new("p.yaml"),
                    &text,
                    &mut set,
                    &mut d,
                    &mut unreadable,
                );
                d.extend(validate::validate_with(
                    &set,
                    &Limits::default(),
                    &unreadable,
                ));
                d.extend(
                    guardrails::check(&set, &guardrails, &known)
                        .into_iter()
                        .map(|v| v.diagnostic),
                );
                *cases += 1;
                *diagnosed += usize::from(!d.is_empty());
                let rendered = Error::Invalid(d.clone()).to_string();
                assert!(!leaks(&rendered), "{path:?} (key: {key}):\n{rendered}");
                for x in &d {
                    let line = x.to_string();
                    assert!(!line.contains('\n'), "{line}");
                    let json = serde_json::to_string(x).unwrap();
                    assert!(!leaks(&json), "{json}");
                }
            }
        }
    }
}
