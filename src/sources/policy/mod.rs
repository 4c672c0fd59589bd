//! The policy repository: loading YAML documents from a directory tree, with a location for
//! every field, and validating them into a [`PolicySet`].
//!
//! Loading is two-layered. `yaml-rust2`'s event parser splits each file into documents
//! and records the line and column of every field path (`spec.role.name`,
//! `spec.invokers[1].roleMapping`); `serde_yaml` then reads each document into the typed
//! model, with `serde_path_to_error` naming the field that failed. Any problem found later
//! (a dangling reference, a limit) is reported against the same index, so every
//! diagnostic names file, line, document and field.

mod files;
pub mod guardrails;
mod index;
mod load;
pub mod model;
mod quote;
pub mod scope;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::config::Limits;
#[cfg(test)]
pub use files::yaml_files;
use files::{file_diagnostic, git_revision, list, read_policy_file};
pub use files::{fingerprint, Refused, MAX_FILE_BYTES, MAX_TOTAL_BYTES};
pub use index::{MAX_DEPTH, MAX_EXPANDED_NODES};
pub use load::load_documents;
#[cfg(test)]
pub use load::load_text;
pub use model::*;
use quote::{clean, clean_field};
pub use quote::{short, short_lines, QUOTE_CHARS};
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

/// Documents that are there but could not be read into their kind (their problems are
/// reported), as `(kind, name)`: a reference to one is not reported again as missing.
pub type Unreadable = std::collections::BTreeSet<(String, String)>;

#[cfg(test)]
mod tests {
    use super::index::index_documents;
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
