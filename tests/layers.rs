//! The layers point one way: a module may name (`crate::…`) only modules of its own layer
//! or below, in the order `src/lib.rs` writes down. Comments and unit-test modules are not
//! looked at: tests may reach anywhere.

mod support;

use std::path::Path;

/// The layer order from lib.rs's `Layers, lowest first:` line.
fn layers() -> Vec<String> {
    let lib = std::fs::read_to_string(support::repo().join("src/lib.rs")).unwrap();
    let line = lib
        .lines()
        .find_map(|l| {
            l.trim_start_matches("//!")
                .trim()
                .strip_prefix("Layers, lowest first:")
        })
        .expect("src/lib.rs writes the layer order down");
    line.split('<')
        .map(|s| s.trim().trim_end_matches('.').trim_matches('`').to_string())
        .collect()
}

/// The code of a file that is not a comment or a unit-test module.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break; // unit-test modules sit at the end of a file here
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap());
        out.push('\n');
    }
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_names_one_above_its_layer() {
    let order = layers();
    assert!(order.len() >= 10, "{order:?}");
    let rank = |m: &str| order.iter().position(|l| l == m);
    let src = support::repo().join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for path in all {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let top = rel.split(['/', '.']).next().unwrap().to_string();
        if matches!(top.as_str(), "lib" | "main") || rel.ends_with("/tests.rs") {
            continue;
        }
        let own = rank(&top)
            .unwrap_or_else(|| panic!("src/{rel}: module `{top}` is in no layer of src/lib.rs"));
        let text = code(&std::fs::read_to_string(&path).unwrap());
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(r) = rank(&name) {
                if r > own {
                    wrong.push(format!(
                        "src/{rel} ({top}) names crate::{name}, a layer above it"
                    ));
                }
            }
        }
        // `use crate::{a, b}` groups.
        for (i, _) in text.match_indices("use crate::{") {
            let group: String = text[i + 12..].chars().take_while(|c| *c != '}').collect();
            for name in group
                .split(',')
                .map(|s| s.trim().split("::").next().unwrap().to_string())
            {
                if rank(&name).is_some_and(|r| r > own) {
                    wrong.push(format!(
                        "src/{rel} ({top}) names crate::{name}, a layer above it"
                    ));
                }
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
