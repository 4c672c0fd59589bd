//! The docs stay in step with the code: every schema field and config key is documented,
//! and every `trustsync ...` command shown in the docs parses with the real CLI.

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
