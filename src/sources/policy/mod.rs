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

    /// A diagnostic about `field` of this document.
    pub fn diagnostic(&self, field: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        let field = field.into();
        let (line, column) = self.locate(&field);
        Diagnostic {
            file: self.file.clone(),
            line,
            column,
            document: self.document,
            subject: (!self.subject.is_empty()).then(|| self.subject.clone()),
            field,
            message: message.into(),
        }
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
/// files in name order). Returns every problem at once.
pub fn load_dir(dir: &Path, limits: &Limits) -> Result<PolicySet, Error> {
    let files = yaml_files(dir).map_err(|source| Error::Directory {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut set = PolicySet::default();
    let mut diags = Vec::new();
    let mut unreadable = Unreadable::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => load_documents(&file, &text, &mut set, &mut diags, &mut unreadable),
            Err(e) => diags.push(Diagnostic {
                file: file.clone(),
                line: 0,
                column: 0,
                document: 0,
                subject: None,
                field: String::new(),
                message: format!("cannot read: {e}"),
            }),
        }
    }
    diags.extend(validate::validate_with(&set, limits, &unreadable));
    if diags.is_empty() {
        set.revision = git_revision(dir);
        Ok(set)
    } else {
        Err(Error::Invalid(diags))
    }
}

/// The policy files below `dir`: `*.yaml` and `*.yml`, hidden entries skipped, in name order.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
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
                message: format!("invalid YAML: {message}"),
            });
            return;
        }
    };
    for (n, doc) in docs.into_iter().enumerate() {
        let mut origin = Origin {
            file: file.to_path_buf(),
            document: n + 1,
            subject: String::new(),
            positions: doc.positions,
            start: doc.start,
        };
        let value: serde_yaml::Value = match serde_yaml::from_str(&doc.text) {
            Ok(v) => v,
            Err(e) => {
                // Its kind and name as the event parser saw them (serde_yaml refuses a
                // duplicate key, say), so that references to it are not reported as
                // missing too.
                if let (Some(kind), Some(name)) = (doc.kind.clone(), doc.name.clone()) {
                    origin.subject = format!("{kind} {name}");
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
            origin.subject = format!("{k} {n}");
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
        origin.subject = format!("{} {}", envelope.kind, envelope.metadata.name);
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
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    docs: Vec<DocIndex>,
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

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = (mark.line(), mark.col() + 1);
        match ev {
            Event::DocumentStart => {
                self.stack.clear();
                self.docs.push(DocIndex {
                    end: usize::MAX,
                    start: pos,
                    positions: HashMap::new(),
                    kind: None,
                    name: None,
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
