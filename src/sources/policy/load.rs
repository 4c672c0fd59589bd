//! Reading one file's documents into the typed model, every problem of each reported.

use std::path::Path;

use serde::Deserialize;

use super::index::{index_documents, join, IndexedDocument};
use super::quote::clean;
use super::{Diagnostic, Metadata, Named, Origin, PolicySet, Unreadable, API_VERSION};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Envelope {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: serde_yaml::Value,
}
#[cfg(test)]
/// Loads the documents of one file's text into `set`, adding problems to `diags`.
pub fn load_text(file: &Path, text: &str, set: &mut PolicySet, diags: &mut Vec<Diagnostic>) {
    load_documents(file, text, set, diags, &mut Unreadable::new());
}
/// Loads the documents of one file's text into `set`, adding problems to `diags`, also
/// noting the documents whose kind and name were read but whose body could not be.
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
    for (n, mut doc) in docs.into_iter().enumerate() {
        let mut origin = origin_of(file, n + 1, &mut doc);
        let Some(value) = document_value(doc, &origin, diags, unreadable) else {
            continue;
        };
        let Some(envelope) = envelope_of(value, &mut origin, diags, unreadable) else {
            continue;
        };
        add_document(envelope, origin, set, diags, unreadable);
    }
}

/// The origin of the `document`th document of `file`: its field positions and its long
/// scalars (taken from `doc`), longest first, and its kind and name when the event parser
/// saw them.
fn origin_of(file: &Path, document: usize, doc: &mut IndexedDocument) -> Origin {
    let mut long_scalars = std::mem::take(&mut doc.long_scalars);
    long_scalars.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut origin = Origin {
        file: file.to_path_buf(),
        document,
        subject: String::new(),
        positions: std::mem::take(&mut doc.positions),
        start: doc.start,
        long_scalars,
    };
    if let (Some(kind), Some(name)) = (&doc.kind, &doc.name) {
        origin.set_subject(kind, name);
    }
    origin
}

/// The document as a YAML mapping, or `None` when it is not one (a limit broken, invalid
/// YAML, another kind of value: reported) or is empty.
fn document_value(
    doc: IndexedDocument,
    origin: &Origin,
    diags: &mut Vec<Diagnostic>,
    unreadable: &mut Unreadable,
) -> Option<serde_yaml::Value> {
    if let Some(((line, column), message)) = doc.limit {
        if let (Some(kind), Some(name)) = (doc.kind, doc.name) {
            unreadable.insert((kind, name));
        }
        diags.push(Diagnostic {
            line,
            column,
            ..origin.diagnostic("", message)
        });
        return None;
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
            return None;
        }
    };
    if value.is_null() {
        return None; // an empty document, e.g. after a trailing `---`
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
        return None;
    }
    Some(value)
}

/// The document's envelope (apiVersion, kind, metadata, its spec untyped), or `None` when
/// it cannot be read or names another apiVersion (reported). The origin's subject is the
/// document's kind and name from here on.
fn envelope_of(
    value: serde_yaml::Value,
    origin: &mut Origin,
    diags: &mut Vec<Diagnostic>,
    unreadable: &mut Unreadable,
) -> Option<Envelope> {
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
        return None;
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
        return None;
    }
    Some(envelope)
}

/// Reads the spec into the document's kind and adds it to `set`; a spec that cannot be
/// read is reported and noted in `unreadable`, an unknown kind reported.
fn add_document(
    envelope: Envelope,
    origin: Origin,
    set: &mut PolicySet,
    diags: &mut Vec<Diagnostic>,
    unreadable: &mut Unreadable,
) {
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
