//! Rooms that fit (issue 38): the source stays in pieces a reader can hold. Measured from a
//! real parse of every file under `src/` and `crates/*/src/`:
//! - no file over 900 lines;
//! - no function over 120 lines, and at most 10 over 80 (test code not counted);
//! - no import circle between the files of one folder (`a.rs` naming `super::b` while `b.rs`
//!   names `super::a`, directly or round a longer loop);
//! - no `use super::*` outside test code.
//!
//! `cargo test --test rooms -- --nocapture` prints the numbers.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

const FILE_LINES: usize = 900;
const FN_LINES_MAX: usize = 120;
const FN_LINES_LONG: usize = 80;
const LONG_FNS_ALLOWED: usize = 10;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every source root: the product's `src/` and each workspace crate's.
fn roots() -> Vec<PathBuf> {
    let repo = support::repo();
    let mut roots = vec![repo.join("src")];
    for e in std::fs::read_dir(repo.join("crates")).unwrap() {
        let p = e.unwrap().path().join("src");
        if p.is_dir() {
            roots.push(p);
        }
    }
    roots
}

fn is_test_attr(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let p = a.path();
        if p.is_ident("test") || p.segments.last().is_some_and(|s| s.ident == "test") {
            return true;
        }
        if p.is_ident("cfg") {
            let text = a.meta.require_list().map(|l| l.tokens.to_string());
            return text.is_ok_and(|t| {
                t.split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|w| w == "test")
            });
        }
        false
    })
}

/// A file that is test code as a whole: `tests.rs` or anything under a `tests/` folder.
fn is_test_file(root: &Path, path: &Path) -> bool {
    let rel = path.strip_prefix(root).unwrap();
    rel.file_stem().is_some_and(|s| s == "tests")
        || rel.components().any(|c| c.as_os_str() == "tests")
}

/// The module path of a file below its root: `a/b.rs` → [a, b]; `a/mod.rs` → [a].
fn module_of(root: &Path, path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(root).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

struct Function {
    at: String,
    lines: usize,
}

/// What one file's non-test code holds.
struct Survey<'a> {
    file: String,
    module: &'a [String],
    functions: Vec<Function>,
    /// Absolute module paths named by this file (`crate::a::b::C` → [a, b, C]).
    names: Vec<Vec<String>>,
    globs_of_super: usize,
}

impl Survey<'_> {
    fn function(&mut self, name: &syn::Ident, start: proc_macro2::Span, end: proc_macro2::Span) {
        let lines = end.end().line + 1 - start.start().line;
        self.functions.push(Function {
            at: format!("{}:{} {}", self.file, start.start().line, name),
            lines,
        });
    }

    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let mut out: Vec<String>;
        let mut rest = segments;
        match segments.first().map(String::as_str) {
            Some("crate") => {
                out = Vec::new();
                rest = &segments[1..];
            }
            Some("super") => {
                out = self.module.to_vec();
                while rest.first().is_some_and(|s| s == "super") {
                    out.pop()?;
                    rest = &rest[1..];
                }
            }
            Some("self") => {
                out = self.module.to_vec();
                rest = &segments[1..];
            }
            _ => return None,
        }
        out.extend(rest.iter().cloned());
        Some(out)
    }

    fn name(&mut self, segments: Vec<String>) {
        if let Some(abs) = self.absolute(&segments) {
            self.names.push(abs);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut s = prefix.clone();
                s.push(n.ident.to_string());
                self.name(s);
            }
            syn::UseTree::Rename(r) => {
                let mut s = prefix.clone();
                s.push(r.ident.to_string());
                self.name(s);
            }
            syn::UseTree::Glob(_) => {
                if prefix.iter().all(|s| s == "super") && !prefix.is_empty() {
                    self.globs_of_super += 1;
                }
                self.name(prefix.clone());
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Survey<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test_attr(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if is_test_attr(&f.attrs) {
            return;
        }
        self.function(
            &f.sig.ident,
            f.sig.fn_token.span,
            f.block.brace_token.span.close(),
        );
        syn::visit::visit_item_fn(self, f);
    }
    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !is_test_attr(&i.attrs) {
            syn::visit::visit_item_impl(self, i);
        }
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if is_test_attr(&f.attrs) {
            return;
        }
        self.function(
            &f.sig.ident,
            f.sig.fn_token.span,
            f.block.brace_token.span.close(),
        );
        syn::visit::visit_impl_item_fn(self, f);
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.function(
                &f.sig.ident,
                f.sig.fn_token.span,
                block.brace_token.span.close(),
            );
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if !is_test_attr(&u.attrs) {
            self.use_tree(&mut Vec::new(), &u.tree);
        }
    }
    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.name(segments);
        syn::visit::visit_path(self, p);
    }
}

struct Measure {
    long_files: Vec<(usize, String)>,
    functions: Vec<Function>,
    circles: Vec<String>,
    globs: Vec<String>,
}

fn measure() -> Measure {
    let mut m = Measure {
        long_files: Vec::new(),
        functions: Vec::new(),
        circles: Vec::new(),
        globs: Vec::new(),
    };
    let repo = support::repo();
    for root in roots() {
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        files.sort();
        // Folder (module path) → sibling → siblings it names.
        let mut edges: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        let mut children: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
        for path in &files {
            let module = module_of(&root, path);
            if let Some((last, parent)) = module.split_last() {
                children
                    .entry(parent.to_vec())
                    .or_default()
                    .insert(last.clone());
            }
        }
        // Files a parent declares as test code (`#[cfg(test)] mod loader_tests;`).
        let mut test_modules: BTreeSet<Vec<String>> = BTreeSet::new();
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            let Ok(ast) = syn::parse_file(&text) else {
                continue; // reported below
            };
            for item in &ast.items {
                if let syn::Item::Mod(m) = item {
                    if m.content.is_none() && is_test_attr(&m.attrs) {
                        let mut module = module_of(&root, path);
                        module.push(m.ident.to_string());
                        test_modules.insert(module);
                    }
                }
            }
        }
        for path in &files {
            let rel = path.strip_prefix(&repo).unwrap().display().to_string();
            let text = std::fs::read_to_string(path).unwrap();
            let lines = text.lines().count();
            if lines > FILE_LINES {
                m.long_files.push((lines, rel.clone()));
            }
            if is_test_file(&root, path) || test_modules.contains(&module_of(&root, path)) {
                continue;
            }
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
            let module = module_of(&root, path);
            let mut survey = Survey {
                file: rel.clone(),
                module: &module,
                functions: Vec::new(),
                names: Vec::new(),
                globs_of_super: 0,
            };
            survey.visit_file(&ast);
            if survey.globs_of_super > 0 {
                m.globs.push(format!("{rel} ({})", survey.globs_of_super));
            }
            m.functions.append(&mut survey.functions);
            // Which folder-siblings this file names: for a file at folder F (its module
            // F::x, or F::x::… deeper down), a name F::y… with y ≠ x is an edge x → y.
            for depth in 1..module.len() {
                let folder = &module[..depth];
                let me = &module[depth];
                let Some(kids) = children.get(folder) else {
                    continue;
                };
                for name in &survey.names {
                    if name.len() > depth && name[..depth] == *folder {
                        let other = &name[depth];
                        if other != me && kids.contains(other) {
                            edges
                                .entry(folder.to_vec())
                                .or_default()
                                .entry(me.clone())
                                .or_default()
                                .insert(other.clone());
                        }
                    }
                }
            }
        }
        let crate_name = root
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for (folder, graph) in &edges {
            for cycle in circles(graph) {
                m.circles.push(format!(
                    "{crate_name}::{}: {}",
                    folder.join("::"),
                    cycle.join(" → ")
                ));
            }
        }
    }
    m.long_files.sort_by(|a, b| b.cmp(a));
    m.functions.sort_by_key(|f| std::cmp::Reverse(f.lines));
    m
}

/// The strongly connected groups of more than one file (by mutual reachability: the
/// graphs are a folder's files, a handful each).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = graph.keys().chain(graph.values().flatten()).collect();
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(n) = todo.pop() {
            for next in graph.get(n).into_iter().flatten() {
                if seen.insert(next) {
                    todo.push(next);
                }
            }
        }
        seen
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut placed = BTreeSet::new();
    for n in &nodes {
        if placed.contains(*n) {
            continue;
        }
        let from_n = reach(n);
        let group: Vec<String> = nodes
            .iter()
            .filter(|m| **m == *n || (from_n.contains(**m) && reach(m).contains(*n)))
            .map(|m| (*m).clone())
            .collect();
        if group.len() > 1 {
            placed.extend(group.iter().cloned());
            let mut g = group;
            g.push(g[0].clone());
            out.push(g);
        }
    }
    out
}

fn report(m: &Measure) -> String {
    let long: Vec<&Function> = m
        .functions
        .iter()
        .filter(|f| f.lines > FN_LINES_LONG)
        .collect();
    let over: usize = m
        .functions
        .iter()
        .filter(|f| f.lines > FN_LINES_MAX)
        .count();
    let mut s = format!(
        "files over {FILE_LINES} lines: {}\nfunctions: {} in all, {} over {FN_LINES_LONG} lines, {over} over {FN_LINES_MAX}\nimport circles inside a folder: {}\n`use super::*` outside tests: {} files\n",
        m.long_files.len(),
        m.functions.len(),
        long.len(),
        m.circles.len(),
        m.globs.len()
    );
    for (n, f) in &m.long_files {
        s += &format!("  file {n:>5} {f}\n");
    }
    for f in &long {
        s += &format!("  fn   {:>5} {}\n", f.lines, f.at);
    }
    for c in &m.circles {
        s += &format!("  circle {c}\n");
    }
    for g in &m.globs {
        s += &format!("  glob {g}\n");
    }
    s
}

#[test]
fn rooms_fit() {
    let m = measure();
    let text = report(&m);
    println!("{text}");
    let long = m
        .functions
        .iter()
        .filter(|f| f.lines > FN_LINES_LONG)
        .count();
    let over = m
        .functions
        .iter()
        .filter(|f| f.lines > FN_LINES_MAX)
        .count();
    assert!(
        m.functions.len() > 500,
        "the survey found the functions\n{text}"
    );
    assert!(
        m.long_files.is_empty()
            && over == 0
            && long <= LONG_FNS_ALLOWED
            && m.circles.is_empty()
            && m.globs.is_empty(),
        "rooms that do not fit:\n{text}"
    );
}
