//! The docs stay in step with the code: every schema field and config key is documented,
//! every `trustsync ...` command shown in the docs parses with the real CLI, and every
//! source path the docs name exists.

use clap::Parser;
use serde_json::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + path).unwrap()
}

fn property_names(v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            map.values().for_each(|x| property_names(x, out));
        }
        Value::Array(items) => items.iter().for_each(|x| property_names(x, out)),
        _ => {}
    }
}

fn keys(v: &Value, out: &mut std::collections::BTreeSet<String>) {
    if let Value::Object(map) = v {
        for (k, x) in map {
            out.insert(k.clone());
            keys(x, out);
        }
    }
}

#[test]
fn every_policy_field_is_documented() {
    let schema: Value = serde_json::from_str(&trustsync::cli::schema_json()).unwrap();
    let mut names = Default::default();
    property_names(&schema, &mut names);
    let doc = read("docs/policy-reference.md");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}")) && !doc.contains(&format!(".{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/policy-reference.md does not describe: {missing:?}"
    );
}

#[test]
fn every_config_key_is_documented() {
    let config = serde_json::to_value(trustsync::config::Config::default()).unwrap();
    let mut names = Default::default();
    keys(&config, &mut names);
    let doc = read("docs/configuration.md");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !doc.contains(&format!("{n}:")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not describe: {missing:?}"
    );
}

#[test]
fn every_command_in_the_docs_parses() {
    let mut commands = Vec::new();
    for path in [
        "README.md",
        "docs/concepts.md",
        "docs/configuration.md",
        "docs/entra-setup.md",
        "docs/operations.md",
        "docs/policy-reference.md",
        "examples/gitops/README.md",
    ] {
        let text = read(path);
        let mut in_block = false;
        for line in text.lines() {
            if line.starts_with("```") {
                in_block = !in_block;
                continue;
            }
            let cmd = line
                .split(" #")
                .next()
                .unwrap()
                .split(" >")
                .next()
                .unwrap()
                .trim();
            if in_block && cmd.starts_with("trustsync ") {
                commands.push((path, cmd.to_string()));
            }
        }
    }
    assert!(commands.len() >= 6, "{commands:?}");
    for (path, cmd) in commands {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        if let Err(e) = trustsync::cli::Cli::try_parse_from(&words) {
            panic!("{path}: `{cmd}` does not parse: {e}");
        }
    }
}

/// Shell completions and the manual page come from the same clap definitions as `--help`,
/// so they name every command.
#[test]
fn completions_and_the_man_page_name_every_command() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustsync"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        for command in ["validate", "plan", "apply", "run", "iam-policy", "audit"] {
            assert!(
                script.contains(command),
                "{shell} completions lack {command}"
            );
        }
        assert!(script.contains("detailed-exitcode"), "{shell}: flags too");
    }
    let man = run(&["man"]);
    assert!(man.contains(".TH trustsync 1"), "{man}");
    for command in ["plan", "apply", "iam\\-policy", "completions"] {
        assert!(man.contains(command), "the man page lacks {command}");
    }
}

/// The paths a line of Markdown names under `src/`, `crates/`, `tests/` or `scripts/`: a
/// word starting there (not the tail of a longer path or a URL), up to the first character
/// a path here never has, without the full stop or comma of the sentence around it.
fn source_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for prefix in ["src/", "crates/", "tests/", "scripts/"] {
        let mut from = 0;
        while let Some(i) = line[from..].find(prefix) {
            let at = from + i;
            from = at + prefix.len();
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || "/._-~$".contains(c)) {
                continue;
            }
            let path: String = line[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || "/._-".contains(*c))
                .collect();
            out.push(path.trim_end_matches(['.', ',']).to_string());
        }
    }
    out
}

/// A doc that names a file leads a reader there (issue 38): every `src/…`, `crates/…`,
/// `tests/…` and `scripts/…` path in README.md and docs/*.md exists, so a file that moves
/// takes its mentions with it.
#[test]
fn every_source_path_in_the_docs_exists() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec!["README.md".to_string()];
    for e in std::fs::read_dir(repo.join("docs")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            docs.push(format!("docs/{name}"));
        }
    }
    docs.sort();
    let (mut named, mut missing) = (0, Vec::new());
    for doc in &docs {
        for (n, line) in read(doc).lines().enumerate() {
            for path in source_paths(line) {
                named += 1;
                if !repo.join(&path).exists() {
                    missing.push(format!("{doc}:{}: {path}", n + 1));
                }
            }
        }
    }
    assert!(named >= 20, "too few paths found to mean anything: {named}");
    assert!(
        missing.is_empty(),
        "the docs name paths that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn source_paths_are_read_as_a_reader_would() {
    assert_eq!(
        source_paths("`src/plan/` (one file), `src/lib.rs`'s table; see src/audit/mod.rs."),
        ["src/plan/", "src/lib.rs", "src/audit/mod.rs"]
    );
    assert_eq!(
        source_paths("crates/trustsync-graph-server/src/main.rs and https://x.test/src/a.rs"),
        ["crates/trustsync-graph-server/src/main.rs"]
    );
    assert_eq!(
        source_paths("(`tests/tour.rs`, `scripts/local-env.sh start|stop`)"),
        ["tests/tour.rs", "scripts/local-env.sh"]
    );
}
