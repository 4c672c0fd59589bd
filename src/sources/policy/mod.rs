//! The policy repository: loading YAML documents from a directory tree, with a location for
//! every field, and validating them into a [`PolicySet`].
//!
//! Loading is two-layered. `yaml-rust2`'s event parser splits each file into documents
//! and records the line and column of every field path (`spec.role.name`,
//! `spec.invokers[1].roleMapping`); `serde_yaml` then reads each document into the typed
//! model, with `serde_path_to_error` naming the field that failed. Any problem found later
//! (a dangling reference, a limit) is reported against the same index, so every
//! diagnostic names file, line, document and field.

pub mod guardrails;
pub mod model;
pub mod scope;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

pub use crate::config::Limits;
pub use model::*;
pub use validate::function_name as function_name_of;

/// A problem with the policy repository, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file, as given (relative to where trustsync was started when the directory was).
    pub file: PathBuf,
    /// 1-based line; 0 when the file could not be read at all.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// 1-based document number within the file.
    pub document: usize,
    /// `Kind name` of the document, when it got that far.
    pub subject: Option<String>,
    /// Dotted field path within the document (`spec.role.name`); empty for the document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            // The file as a whole: refused, unreadable.
            return write!(f, "{}: {}", self.file.display(), self.message);
        }
        write!(
            f,
            "{}:{}:{}: document {}",
            self.file.display(),
            self.line,
            self.column,
            self.document
        )?;
        if let Some(subject) = &self.subject {
            write!(f, " ({subject})")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a policy repository could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory itself could not be read.
    #[error("cannot read policy directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The documents have problems; every one found is listed.
    #[error("{} problem(s) in the policy repository:\n{}", .0.len(), render_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render_diagnostics(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a document came from, with the location of each of its fields.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based document number within the file.
    pub document: usize,
    /// `Kind name`.
    pub subject: String,
    positions: HashMap<String, (usize, usize)>,
    start: (usize, usize),
    /// The document's scalars longer than [`QUOTE_CHARS`], longest first: shortened
    /// wherever a message quotes them.
    long_scalars: Vec<String>,
}

impl Origin {
    /// The line and column of a field, or of its nearest located ancestor.
    pub fn locate(&self, field: &str) -> (usize, usize) {
        let mut path = field;
        loop {
            if let Some(pos) = self.positions.get(path) {
                return *pos;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return self.positions.get("").copied().unwrap_or(self.start),
            }
        }
    }

    /// A diagnostic about `field` of this document. What it quotes of the document is
    /// shortened (see [`short`]): no diagnostic carries more of a file than a short
    /// rendering of a scalar.
    pub fn diagnostic(&self, field: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        let field = field.into();
        let (line, column) = self.locate(&field);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            document: self.document,
            subject: (!self.subject.is_empty()).then(|| self.subject.clone()),
            field: clean_field(&field),
            message: clean(&message.into(), &self.long_scalars),
        }
    }

    /// `Kind name` for the diagnostics, the name shortened.
    fn set_subject(&mut self, kind: &str, name: &str) {
        self.subject = format!("{} {}", short(kind), short(name));
    }
}

/// A document of one kind, with its name and origin.
#[derive(Debug, Clone)]
pub struct Named<S> {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The kind-specific body.
    pub spec: S,
    /// Where it came from.
    pub origin: Origin,
}

/// Every document of the repository, typed and validated.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    /// IdentityProvider documents.
    pub providers: Vec<Named<IdentityProviderSpec>>,
    /// RoleMapping documents.
    pub role_mappings: Vec<Named<RoleMappingSpec>>,
    /// FunctionAccess documents.
    pub functions: Vec<Named<FunctionAccessSpec>>,
    /// AccessAssignment documents (people, through IAM Identity Center).
    pub access_assignments: Vec<Named<AccessAssignmentSpec>>,
    /// The git commit of the policy directory, when it is a git checkout.
    pub revision: Option<Revision>,
}

/// The git commit a policy set was read at, and who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The commit hash.
    pub commit: String,
    /// Its author, `Name <email>`.
    pub author: Option<String>,
}

impl PolicySet {
    /// The `metadata.labels` of the document of this name (names are unique across kinds
    /// that map: providers, role mappings, function access).
    pub fn labels_of(&self, name: &str) -> Option<&std::collections::BTreeMap<String, String>> {
        self.providers
            .iter()
            .map(|d| (&d.name, &d.labels))
            .chain(self.role_mappings.iter().map(|d| (&d.name, &d.labels)))
            .chain(self.functions.iter().map(|d| (&d.name, &d.labels)))
            .chain(self.access_assignments.iter().map(|d| (&d.name, &d.labels)))
            .find(|(n, _)| *n == name)
            .map(|(_, l)| l)
    }

    /// The provider document of this name.
    pub fn provider(&self, name: &str) -> Option<&Named<IdentityProviderSpec>> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The role mapping of this name.
    pub fn role_mapping(&self, name: &str) -> Option<&Named<RoleMappingSpec>> {
        self.role_mappings.iter().find(|m| m.name == name)
    }

    /// Whether `name` is a RoleMapping or an AccessAssignment: a document whose removals a
    /// safety limit may hold (and `trustsync release` may let through).
    pub fn holds_members(&self, name: &str) -> bool {
        self.role_mapping(name).is_some() || self.access_assignments.iter().any(|a| a.name == name)
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.providers.len()
            + self.role_mappings.len()
            + self.functions.len()
            + self.access_assignments.len()
    }

    /// True when the repository holds no document.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads and validates every `*.yaml` / `*.yml` file below `dir` (hidden entries skipped,
/// files in name order). Returns every problem at once. A file that resolves outside `dir`
/// is refused by name and never read (see [`list`]); files past [`MAX_FILE_BYTES`], or
/// past [`MAX_TOTAL_BYTES`] together, are refused unread.
pub fn load_dir(dir: &Path, limits: &Limits) -> Result<PolicySet, Error> {
    let (set, diags) = load_dir_partly(dir, limits)?;
    if diags.is_empty() {
        Ok(set)
    } else {
        Err(Error::Invalid(diags))
    }
}

/// [`load_dir`], returning what could be read along with every problem: the documents
/// that loaded (with the git revision only when there is no problem), for checks that
/// judge each document on its own (the guardrails), so that `validate` reports every
/// problem of every file in one run.
pub fn load_dir_partly(dir: &Path, limits: &Limits) -> Result<(PolicySet, Vec<Diagnostic>), Error> {
    let listing = list(dir).map_err(|source| Error::Directory {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut set = PolicySet::default();
    let mut diags: Vec<Diagnostic> = listing
        .refused
        .iter()
        .map(|r| file_diagnostic(&r.path, format!("refused: {}", r.reason)))
        .collect();
    let mut unreadable = Unreadable::new();
    let mut total: u64 = 0;
    for file in &listing.files {
        total = total.saturating_add(file.len);
        if total > MAX_TOTAL_BYTES {
            diags.push(file_diagnostic(
                &file.path,
                format!("not read: the policy files before it and it exceed {MAX_TOTAL_BYTES} bytes (32 MiB) together"),
            ));
            continue;
        }
        match read_policy_file(file) {
            Ok(text) => load_documents(&file.path, &text, &mut set, &mut diags, &mut unreadable),
            Err(message) => diags.push(file_diagnostic(&file.path, message)),
        }
    }
    diags.extend(validate::validate_with(&set, limits, &unreadable));
    if diags.is_empty() {
        set.revision = git_revision(dir);
    }
    Ok((set, diags))
}

/// The policy files below `dir` that may be read: `*.yaml` and `*.yml` regular files
/// resolving inside `dir`, hidden entries skipped, in name order. Those refused (a link
/// leaving `dir`, a device) are left out: see [`load_dir`], which names them, and
/// [`fingerprint`], which notices them.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(list(dir)?.files.into_iter().map(|f| f.path).collect())
}

/// A fingerprint of the policy directory that changes when a policy file's name or
/// content changes, or a refused one appears or goes: what a watcher compares. Reads only
/// what [`load_dir`] would read, and no more than it would (a refused link is never
/// opened, a file past [`MAX_FILE_BYTES`] is fingerprinted by its size).
pub fn fingerprint(dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    match list(dir) {
        Ok(listing) => {
            for r in &listing.refused {
                h.update(b"refused\0");
                h.update(r.path.to_string_lossy().as_bytes());
                h.update(r.reason.as_bytes());
            }
            for f in &listing.files {
                h.update(b"file\0");
                h.update(f.path.to_string_lossy().as_bytes());
                match read_policy_file(f) {
                    Ok(text) => h.update(text.as_bytes()),
                    Err(e) => h.update(e.as_bytes()),
                }
            }
        }
        Err(e) => h.update(e.to_string().as_bytes()),
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A policy file may hold at most this many bytes. The largest documents a mapping can
/// need (a role's 10,240 characters of inline policy, a permission set's 32,768) fit many
/// times over; a file past it is not a policy but something merged by mistake (or a link
/// to something that grows: `/dev/zero`).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// All policy files together may hold at most this many bytes: the controller reads the
/// whole repository at every change.
pub const MAX_TOTAL_BYTES: u64 = 32 * 1024 * 1024;

/// A document may hold at most this many YAML nodes once its aliases are expanded (a
/// "billion laughs" document is a few lines that expand to billions). Anchors and aliases
/// that share a statement or a list of accounts stay far below it.
pub const MAX_EXPANDED_NODES: usize = 100_000;

/// Collections may nest at most this deep in a document (a role's inline policy is about
/// eight levels down).
pub const MAX_DEPTH: usize = 64;

/// A YAML scalar quoted in a diagnostic is shown with at most this many characters.
pub const QUOTE_CHARS: usize = 40;

/// A short, single-line rendering of a YAML scalar for a diagnostic: control characters
/// escaped, and a value longer than [`QUOTE_CHARS`] elided in the middle (its start and
/// its end, which is where an ARN keeps the name). No diagnostic carries more of a file.
pub fn short(s: &str) -> String {
    let escaped: Vec<String> = s
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if escaped.len() <= QUOTE_CHARS {
        return escaped.concat();
    }
    let (head, tail) = (24, QUOTE_CHARS - 24 - 1);
    format!(
        "{}…{}",
        escaped[..head].concat(),
        escaped[escaped.len() - tail..].concat()
    )
}

/// A message made safe to show: every long scalar of the document it is about is
/// shortened wherever it appears (compared ASCII-case-insensitively, as some checks
/// lower-case what they quote), every double-quoted string serde renders with `{:?}` is
/// shortened, and control characters are escaped, so no message runs over lines of a log
/// or carries more than a short rendering of one scalar.
fn clean(message: &str, long_scalars: &[String]) -> String {
    let mut text = message.to_string();
    for s in long_scalars {
        if s.len() > text.len() {
            continue;
        }
        let lower = text.to_ascii_lowercase();
        let needle = s.to_ascii_lowercase();
        let mut out = String::new();
        let mut at = 0;
        while let Some(i) = lower[at..].find(&needle) {
            out.push_str(&text[at..at + i]);
            out.push_str(&short(&text[at + i..at + i + needle.len()]));
            at += i + needle.len();
        }
        out.push_str(&text[at..]);
        text = out;
    }
    let text = shorten_debug_strings(&text);
    short_lines(&text)
}

/// Control characters escaped, nothing elided.
fn short_lines(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Every `"…"` span as `{:?}` renders a string (serde's `invalid type: string "…"`), with
/// its content shortened when it is long. A backslash escapes the next character, so a
/// quote inside the string does not end the span.
fn shorten_debug_strings(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        let mut inner = String::new();
        let mut closed = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    inner.push(c);
                    if let Some(n) = chars.next() {
                        inner.push(n);
                    }
                }
                '"' => {
                    closed = true;
                    break;
                }
                _ => inner.push(c),
            }
        }
        if inner.chars().count() > QUOTE_CHARS {
            out.push_str(&short(&inner));
        } else {
            out.push_str(&inner);
        }
        if closed {
            out.push('"');
        }
    }
    out
}

/// A dotted field path made safe to show: each key shortened, and the whole at most a few
/// keys long (a path is made of the document's keys, which an author chooses).
fn clean_field(field: &str) -> String {
    let parts: Vec<String> = field.split('.').map(short).collect();
    let joined = parts.join(".");
    if joined.chars().count() <= 4 * QUOTE_CHARS {
        joined
    } else {
        short(&joined)
    }
}

/// Why a policy file is not read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The file or directory, as listed under the policy directory.
    pub path: PathBuf,
    /// Why, in words.
    pub reason: String,
}

/// A policy file that resolves inside the policy directory, and what it resolves to.
#[derive(Debug, Clone)]
struct PolicyFile {
    /// As listed under the policy directory (what diagnostics name).
    path: PathBuf,
    /// Its canonical path, inside the canonical policy directory: what is opened.
    resolved: PathBuf,
    /// Device and inode when listed: the file opened must be that one.
    identity: (u64, u64),
    /// Its size when listed.
    len: u64,
}

/// The policy files below a directory: those that may be read, and those refused by name.
#[derive(Debug, Default)]
struct Listing {
    files: Vec<PolicyFile>,
    refused: Vec<Refused>,
}

fn is_yaml_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Lists the policy files below `dir`: `*.yaml` and `*.yml`, hidden entries skipped, in
/// name order. Every file and directory must resolve inside `dir` (itself resolved first,
/// so a `dir` reached through links, as git-sync's worktree link, is fine). A link inside
/// it is followed (a Kubernetes ConfigMap volume is `x.yaml -> ..data/x.yaml` and
/// `..data -> ..2026_…`); a link that leaves it, a link that resolves to nothing, and
/// anything that is not a regular file are refused by name and never opened.
fn list(dir: &Path) -> std::io::Result<Listing> {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::canonicalize(dir)?;
    if !std::fs::metadata(&root)?.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    let mut listing = Listing::default();
    let mut visited = std::collections::HashSet::from([root.clone()]);
    let mut stack = vec![(dir.to_path_buf(), root.clone())];
    while let Some((listed, real)) = stack.pop() {
        for entry in std::fs::read_dir(&real)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = listed.join(&name);
            let file_type = entry.file_type()?;
            let resolved = if file_type.is_symlink() {
                match std::fs::canonicalize(entry.path()) {
                    Ok(r) => r,
                    Err(_) => {
                        if is_yaml_name(&path) {
                            listing.refused.push(Refused {
                                path,
                                reason: "a symbolic link that resolves to nothing".into(),
                            });
                        }
                        continue;
                    }
                }
            } else {
                real.join(&name)
            };
            let meta = std::fs::metadata(&resolved)?;
            if !resolved.starts_with(&root) {
                if meta.is_dir() || is_yaml_name(&path) {
                    listing.refused.push(Refused {
                        path,
                        reason: format!(
                            "a symbolic link to a {} outside the policy directory: policy files stay in the repository, so it is not read",
                            if meta.is_dir() { "directory" } else { "file" }
                        ),
                    });
                }
                continue;
            }
            if meta.is_dir() {
                if visited.insert(resolved.clone()) {
                    stack.push((path, resolved));
                }
            } else if is_yaml_name(&path) {
                if meta.is_file() {
                    listing.files.push(PolicyFile {
                        path,
                        resolved,
                        identity: (meta.dev(), meta.ino()),
                        len: meta.len(),
                    });
                } else {
                    listing.refused.push(Refused {
                        path,
                        reason: "not a regular file (a device, a pipe or a socket): not read"
                            .into(),
                    });
                }
            }
        }
    }
    listing.files.sort_by(|a, b| a.path.cmp(&b.path));
    listing.refused.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(listing)
}

/// Reads one listed file, at most [`MAX_FILE_BYTES`]: opened at its resolved path, and
/// only if it is still the file that was listed.
fn read_policy_file(f: &PolicyFile) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    if f.len > MAX_FILE_BYTES {
        return Err(too_large(f.len));
    }
    let file = std::fs::File::open(&f.resolved).map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if (meta.dev(), meta.ino()) != f.identity || !meta.is_file() {
        return Err("changed while being read; it is read again at the next change".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| "cannot read: not UTF-8 text".to_string())
}

fn too_large(len: u64) -> String {
    format!(
        "{len} bytes or more; a policy file may have at most {MAX_FILE_BYTES} bytes (1 MiB): not read"
    )
}

/// A diagnostic about a whole file.
fn file_diagnostic(file: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        document: 0,
        subject: None,
        field: String::new(),
        message,
    }
}

/// The commit the policy directory is checked out at, if it is inside a git work tree.
fn git_revision(dir: &Path) -> Option<Revision> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%H%n%an <%ae>"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let commit = lines
        .next()
        .filter(|c| out.status.success() && !c.is_empty())?;
    Some(Revision {
        commit: commit.to_string(),
        author: lines.next().map(String::from),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Envelope {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: serde_yaml::Value,
}

/// Documents that are there but could not be read into their kind (their problems are
/// reported), as `(kind, name)`: a reference to one is not reported again as missing.
pub type Unreadable = std::collections::BTreeSet<(String, String)>;

/// Loads the documents of one file's text into `set`, adding problems to `diags`.
pub fn load_text(file: &Path, text: &str, set: &mut PolicySet, diags: &mut Vec<Diagnostic>) {
    load_documents(file, text, set, diags, &mut Unreadable::new());
}

/// [`load_text`], also noting the documents whose kind and name were read but whose body
/// could not be.
///
/// Every problem of a document is reported, not only the first serde meets: an unknown
/// field (a typo, a field of another kind) is taken out and the document read again, so
/// one typo hides neither the document's other problems nor the document itself (it is
/// then checked like any other, and references to it resolve). A field of the wrong type
/// or value is reported and taken out too, to find the next one; such a document is not
/// loaded (its meaning is unknown), only noted in `unreadable`.
pub fn load_documents(
    file: &Path,
    text: &str,
    set: &mut PolicySet,
    diags: &mut Vec<Diagnostic>,
    unreadable: &mut Unreadable,
) {
    let docs = match index_documents(text) {
        Ok(docs) => docs,
        Err((line, column, message)) => {
            diags.push(Diagnostic {
                file: file.to_path_buf(),
                line,
                column,
                document: 1,
                subject: None,
                field: String::new(),
                message: format!("invalid YAML: {}", clean(&message, &[])),
            });
            return;
        }
    };
    for (n, doc) in docs.into_iter().enumerate() {
        let mut long_scalars = doc.long_scalars;
        long_scalars.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut origin = Origin {
            file: file.to_path_buf(),
            document: n + 1,
            subject: String::new(),
            positions: doc.positions,
            start: doc.start,
            long_scalars,
        };
        if let (Some(kind), Some(name)) = (&doc.kind, &doc.name) {
            origin.set_subject(kind, name);
        }
        if let Some(((line, column), message)) = doc.limit {
            if let (Some(kind), Some(name)) = (doc.kind, doc.name) {
                unreadable.insert((kind, name));
            }
            diags.push(Diagnostic {
                line,
                column,
                ..origin.diagnostic("", message)
            });
            continue;
        }
        let value: serde_yaml::Value = match serde_yaml::from_str(&doc.text) {
            Ok(v) => v,
            Err(e) => {
                // Its kind and name as the event parser saw them (serde_yaml refuses a
                // duplicate key, say), so that references to it are not reported as
                // missing too.
                if let (Some(kind), Some(name)) = (doc.kind.clone(), doc.name.clone()) {
                    unreadable.insert((kind, name));
                }
                let (line, column) = e
                    .location()
                    .map(|l| (doc.start.0 + l.line() - 1, l.column()))
                    .unwrap_or(doc.start);
                diags.push(Diagnostic {
                    line,
                    column,
                    ..origin.diagnostic("", format!("invalid YAML: {e}"))
                });
                continue;
            }
        };
        if value.is_null() {
            continue; // an empty document, e.g. after a trailing `---`
        }
        // Not a mapping: not a policy document, and nothing of it is quoted (a private key
        // or a token merged as a file reads as one long string).
        if !value.is_mapping() {
            let what = match &value {
                serde_yaml::Value::Bool(_) => "a boolean",
                serde_yaml::Value::Number(_) => "a number",
                serde_yaml::Value::String(_) => "a string",
                serde_yaml::Value::Sequence(_) => "a list",
                _ => "a tagged value",
            };
            diags.push(Diagnostic {
                line: doc.start.0,
                column: doc.start.1,
                ..origin.diagnostic(
                    "",
                    format!("the document is {what}, not a mapping of apiVersion, kind, metadata and spec: not a policy document (its content is not shown)"),
                )
            });
            continue;
        }
        // The kind and name, for the diagnostics, even when the rest fails.
        let kind = value
            .get("kind")
            .and_then(serde_yaml::Value::as_str)
            .map(String::from);
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(serde_yaml::Value::as_str)
            .map(String::from);
        if let (Some(k), Some(n)) = (&kind, &name) {
            origin.set_subject(k, n);
        }
        let (envelope, problems) = typed_all::<Envelope>(value, "");
        for (field, msg) in problems {
            diags.push(origin.diagnostic(field, msg));
        }
        let Some(envelope) = envelope else {
            if let (Some(k), Some(n)) = (kind, name) {
                unreadable.insert((k, n));
            }
            continue;
        };
        origin.set_subject(&envelope.kind, &envelope.metadata.name);
        if envelope.api_version != API_VERSION {
            diags.push(origin.diagnostic(
                "apiVersion",
                format!(
                    "`{}` is not supported; use `{API_VERSION}`",
                    envelope.api_version
                ),
            ));
            continue;
        }
        let Metadata { name, labels } = envelope.metadata;
        macro_rules! push {
            ($list:expr) => {{
                let (spec, problems) = typed_all(envelope.spec, "spec");
                for (field, msg) in problems {
                    diags.push(origin.diagnostic(field, msg));
                }
                match spec {
                    Some(spec) => $list.push(Named {
                        name,
                        labels,
                        spec,
                        origin,
                    }),
                    None => {
                        unreadable.insert((envelope.kind.clone(), name));
                    }
                }
            }};
        }
        match envelope.kind.as_str() {
            "IdentityProvider" => push!(set.providers),
            "RoleMapping" => push!(set.role_mappings),
            "FunctionAccess" => push!(set.functions),
            "AccessAssignment" => push!(set.access_assignments),
            other => diags.push(origin.diagnostic(
                "kind",
                format!("unknown kind `{other}`; expected IdentityProvider, RoleMapping, FunctionAccess or AccessAssignment"),
            )),
        }
    }
}

/// Deserializes a YAML value, with every problem found on the way (see
/// [`load_documents`]): the value when none but unknown fields were wrong.
fn typed_all<T: serde::de::DeserializeOwned>(
    mut value: serde_yaml::Value,
    prefix: &str,
) -> (Option<T>, Vec<(String, String)>) {
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut taken_out: Vec<String> = Vec::new();
    let mut only_unknown = true;
    // Each round takes one field out; a document has far fewer.
    for _ in 0..256 {
        let (mut field, msg) = match typed::<T>(value.clone(), prefix) {
            Ok(t) => return (only_unknown.then_some(t), problems),
            Err(e) => e,
        };
        // The path of an unknown field names the field itself.
        if let Some(k) = msg
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            if !field.ends_with(k) {
                field = join(&field, k);
            }
        }
        // A required field this loop took out is now missing: already reported.
        let follow_on = msg
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
            .is_some_and(|k| taken_out.contains(&join(&field, k)));
        if follow_on {
            break;
        }
        only_unknown &= msg.starts_with("unknown field `");
        let removed = remove_field(&mut value, &field, prefix);
        problems.push((field.clone(), msg));
        if !removed {
            break;
        }
        taken_out.push(field);
    }
    (None, problems)
}

/// Takes the field at `path` (`spec.role.name`, `spec.invokers[1].roleMapping`, under
/// `prefix`) out of `value`; false when it is not a mapping key (a list item: taking it out
/// would move the ones after it) or is not there.
fn remove_field(value: &mut serde_yaml::Value, path: &str, prefix: &str) -> bool {
    let rest = match path.strip_prefix(prefix) {
        Some(r) => r.trim_start_matches('.'),
        None => return false,
    };
    if rest.is_empty() {
        return false;
    }
    let (parent, key) = match rest.rfind('.') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => ("", rest),
    };
    if key.contains('[') {
        return false;
    }
    let mut at = value;
    for segment in parent.split('.').filter(|s| !s.is_empty()) {
        let (name, indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        let Some(next) = at.get_mut(name) else {
            return false;
        };
        at = next;
        for index in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let Some(next) = index.parse::<usize>().ok().and_then(|i| at.get_mut(i)) else {
                return false;
            };
            at = next;
        }
    }
    at.as_mapping_mut().and_then(|m| m.remove(key)).is_some()
}

/// Deserializes a YAML value, returning the failing field path (under `prefix`) on error.
fn typed<T: serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
    prefix: &str,
) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut field = prefix.to_string();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => {
                    field.push_str(&format!("[{index}]"))
                }
                serde_path_to_error::Segment::Map { key }
                | serde_path_to_error::Segment::Enum { variant: key } => {
                    if !field.is_empty() {
                        field.push('.');
                    }
                    field.push_str(key);
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        (field, e.into_inner().to_string())
    })
}

/// One YAML document's text and the location of every field path in it.
struct IndexedDocument {
    text: String,
    start: (usize, usize),
    positions: HashMap<String, (usize, usize)>,
    /// `kind` and `metadata.name`, when they are plain values.
    kind: Option<String>,
    name: Option<String>,
    /// Its scalars (keys too) longer than [`QUOTE_CHARS`].
    long_scalars: Vec<String>,
    /// A limit it breaks ([`MAX_EXPANDED_NODES`], [`MAX_DEPTH`]): where, and what.
    limit: Option<((usize, usize), String)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

/// Per document: the character index of its end, where it starts, its field positions.
struct DocIndex {
    end: usize,
    start: (usize, usize),
    positions: HashMap<String, (usize, usize)>,
    kind: Option<String>,
    name: Option<String>,
    long_scalars: Vec<String>,
    limit: Option<((usize, usize), String)>,
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    docs: Vec<DocIndex>,
    /// Nodes of the current document, aliases counted as the nodes they stand for.
    nodes: usize,
    /// The expanded size of each anchored node.
    anchors: HashMap<usize, usize>,
    /// Open collections: their anchor and the node count when they began.
    open: Vec<(usize, usize)>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Indexer {
    /// The path of the node that comes next, recording it; `None` when it is a mapping key.
    fn next_node(&mut self, scalar: Option<&str>, pos: (usize, usize)) -> Option<String> {
        let path = match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    let k = scalar.unwrap_or("?").to_string();
                    let full = join(path, &k);
                    *key = Some(k);
                    if let Some(doc) = self.docs.last_mut() {
                        doc.positions.entry(full).or_insert(pos);
                    }
                    return None;
                }
                Some(k) => join(path, &k),
            },
            Some(Frame::Seq { path, index }) => {
                *index += 1;
                format!("{path}[{}]", *index - 1)
            }
        };
        if let Some(doc) = self.docs.last_mut() {
            doc.positions.entry(path.clone()).or_insert(pos);
        }
        Some(path)
    }
}

impl Indexer {
    /// Counts `n` more nodes, noting the first limit the document breaks.
    fn count(&mut self, n: usize, pos: (usize, usize)) {
        self.nodes = self.nodes.saturating_add(n);
        let depth = self.open.len();
        if let Some(doc) = self.docs.last_mut() {
            if doc.limit.is_some() {
                return;
            }
            if self.nodes > MAX_EXPANDED_NODES {
                doc.limit = Some((pos, format!(
                    "refused: the document expands to more than {MAX_EXPANDED_NODES} YAML nodes through its aliases (`*name`), a document that grows without bound when read (\"billion laughs\"): not read"
                )));
            } else if depth > MAX_DEPTH {
                doc.limit = Some((
                    pos,
                    format!(
                        "refused: lists and mappings nest more than {MAX_DEPTH} deep: not read"
                    ),
                ));
            }
        }
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = (mark.line(), mark.col() + 1);
        match &ev {
            Event::Scalar(value, _, anchor, _) => {
                self.count(1, pos);
                if *anchor > 0 {
                    self.anchors.insert(*anchor, 1);
                }
                if value.chars().count() > QUOTE_CHARS {
                    if let Some(doc) = self.docs.last_mut() {
                        if !doc.long_scalars.contains(value) {
                            doc.long_scalars.push(value.clone());
                        }
                    }
                }
            }
            Event::Alias(anchor) => {
                let n = self.anchors.get(anchor).copied().unwrap_or(1);
                self.count(n, pos);
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                self.open.push((*anchor, self.nodes));
                self.count(1, pos);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some((anchor, from)) = self.open.pop() {
                    if anchor > 0 {
                        self.anchors.insert(anchor, self.nodes.saturating_sub(from));
                    }
                }
            }
            _ => {}
        }
        match ev {
            Event::DocumentStart => {
                self.stack.clear();
                self.open.clear();
                self.nodes = 0;
                self.docs.push(DocIndex {
                    end: usize::MAX,
                    start: pos,
                    positions: HashMap::new(),
                    kind: None,
                    name: None,
                    long_scalars: Vec::new(),
                    limit: None,
                });
            }
            Event::DocumentEnd => {
                if let Some(doc) = self.docs.last_mut() {
                    doc.end = mark.index();
                }
            }
            Event::Scalar(value, ..) => {
                let path = self.next_node(Some(&value), pos);
                if let (Some(path), Some(doc)) = (path, self.docs.last_mut()) {
                    match path.as_str() {
                        "kind" => doc.kind = Some(value),
                        "metadata.name" => doc.name = Some(value),
                        _ => {}
                    }
                }
            }
            Event::Alias(_) => {
                self.next_node(None, pos);
            }
            Event::MappingStart(..) => {
                if let Some(path) = self.next_node(None, pos) {
                    self.stack.push(Frame::Map { path, key: None });
                } else {
                    // A complex mapping key: index it under a placeholder.
                    self.stack.push(Frame::Map {
                        path: "?".into(),
                        key: None,
                    });
                }
            }
            Event::SequenceStart(..) => {
                let path = self.next_node(None, pos).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Splits a file into documents, indexing field positions. Errors are `(line, column, message)`.
fn index_documents(text: &str) -> Result<Vec<IndexedDocument>, (usize, usize, String)> {
    let mut indexer = Indexer::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut indexer, true).map_err(|e| {
        (
            e.marker().line(),
            e.marker().col() + 1,
            e.info().to_string(),
        )
    })?;
    // Marker indices count characters; slice by byte offsets. A document runs from the
    // end of the one before (at its `---`) to its own end; the last one to end of file.
    let byte_at: Vec<usize> = text
        .char_indices()
        .map(|(b, _)| b)
        .chain([text.len()])
        .collect();
    let to_byte = |idx: usize| byte_at[idx.min(byte_at.len() - 1)];
    let mut out = Vec::new();
    let count = indexer.docs.len();
    let mut from = 0;
    for (
        i,
        DocIndex {
            end,
            start,
            positions,
            kind,
            name,
            long_scalars,
            limit,
        },
    ) in indexer.docs.into_iter().enumerate()
    {
        let to = if i + 1 == count {
            text.len()
        } else {
            to_byte(end)
        };
        let line_start = text[..from].rfind('\n').map_or(0, |p| p + 1);
        // Pad with blank lines so that serde_yaml's own line numbers stay file-relative.
        let pad = text[..line_start].matches('\n').count();
        let body = format!(
            "{}{}",
            "\n".repeat(pad),
            &text[line_start..to.max(line_start)]
        );
        out.push(IndexedDocument {
            text: body,
            start,
            positions,
            kind,
            name,
            long_scalars,
            limit,
        });
        from = to;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (PolicySet, Vec<Diagnostic>) {
        let mut set = PolicySet::default();
        let mut diags = Vec::new();
        load_text(Path::new("p.yaml"), text, &mut set, &mut diags);
        (set, diags)
    }

    const TWO_DOCS: &str = "\
apiVersion: trustsync.dev/v1alpha1
kind: IdentityProvider
metadata: {name: entra}
spec:
  tenantId: 00000000-0000-0000-0000-000000000001
  audiences: [api://aws]
---
apiVersion: trustsync.dev/v1alpha1
kind: RoleMapping
metadata:
  name: deployers
spec:
  provider: entra
  group: {id: 00000000-0000-0000-0000-0000000000aa}
  role:
    name: deployer
    maxSessionDuration: lots
";

    #[test]
    fn a_type_error_names_file_line_document_and_field() {
        let (set, diags) = load(TWO_DOCS);
        assert_eq!(set.providers.len(), 1);
        assert_eq!(diags.len(), 1, "{diags:?}");
        let d = &diags[0];
        assert_eq!((d.line, d.document), (17, 2));
        assert_eq!(d.field, "spec.role.maxSessionDuration");
        assert_eq!(d.subject.as_deref(), Some("RoleMapping deployers"));
        assert!(d.to_string().starts_with("p.yaml:17:5: document 2 (RoleMapping deployers): spec.role.maxSessionDuration: invalid type"), "{d}");
    }

    #[test]
    fn an_unknown_field_is_located() {
        let text = TWO_DOCS.replace("maxSessionDuration: lots", "maxSesionDuration: 3600");
        let (_, diags) = load(&text);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(
            diags[0]
                .message
                .contains("unknown field `maxSesionDuration`"),
            "{}",
            diags[0]
        );
        assert_eq!(diags[0].line, 17, "{}", diags[0]);
    }

    #[test]
    fn invalid_yaml_is_located() {
        let (_, diags) = load("apiVersion: x\nkind: [unclosed\n");
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.starts_with("invalid YAML"), "{}", diags[0]);
        assert!(diags[0].line >= 2, "{}", diags[0]);
    }

    #[test]
    fn unknown_kind_and_version_are_reported() {
        let (_, diags) = load("apiVersion: trustsync.dev/v1alpha1\nkind: Nope\nmetadata: {name: a}\nspec: {}\n---\napiVersion: v9\nkind: RoleMapping\nmetadata: {name: b}\nspec: {}\n");
        assert_eq!(diags.len(), 2, "{diags:?}");
        assert_eq!((diags[0].field.as_str(), diags[0].line), ("kind", 2));
        assert_eq!(
            (diags[1].field.as_str(), diags[1].line, diags[1].document),
            ("apiVersion", 6, 2)
        );
    }

    #[test]
    fn sequence_items_are_indexed() {
        let mut ix = index_documents("a:\n  - x: 1\n  - x: 2\n    y: [3, 4]\n").unwrap();
        let pos = ix.remove(0).positions;
        assert_eq!(pos["a[1].x"].0, 3);
        assert_eq!(pos["a[1].y[1]"].0, 4);
    }
}

#[cfg(test)]
mod loader_tests;
