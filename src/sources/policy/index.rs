//! The event-parser layer of loading: a file split into documents, with the line and
//! column of every field path and the limits a document breaks.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::quote::QUOTE_CHARS;

/// A document may hold at most this many YAML nodes once its aliases are expanded (a
/// "billion laughs" document is a few lines that expand to billions). Anchors and aliases
/// that share a statement or a list of accounts stay far below it.
pub const MAX_EXPANDED_NODES: usize = 100_000;

/// Collections may nest at most this deep in a document (a role's inline policy is about
/// eight levels down).
pub const MAX_DEPTH: usize = 64;
/// One YAML document's text and the location of every field path in it.
pub(super) struct IndexedDocument {
    pub(super) text: String,
    pub(super) start: (usize, usize),
    pub(super) positions: HashMap<String, (usize, usize)>,
    /// `kind` and `metadata.name`, when they are plain values.
    pub(super) kind: Option<String>,
    pub(super) name: Option<String>,
    /// Its scalars (keys too) longer than [`QUOTE_CHARS`].
    pub(super) long_scalars: Vec<String>,
    /// A limit it breaks ([`MAX_EXPANDED_NODES`], [`MAX_DEPTH`]): where, and what.
    pub(super) limit: Option<((usize, usize), String)>,
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

pub(super) fn join(parent: &str, key: &str) -> String {
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

impl Indexer {
    /// Counts the nodes an event adds (an alias as the nodes it stands for), noting its
    /// long scalars and the expanded size of each anchored node.
    fn measure(&mut self, ev: &Event, pos: (usize, usize)) {
        match ev {
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
    }

    /// Records where the node an event begins sits: its document, its field path.
    fn locate(&mut self, ev: Event, mark: Marker, pos: (usize, usize)) {
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

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = (mark.line(), mark.col() + 1);
        self.measure(&ev, pos);
        self.locate(ev, mark, pos);
    }
}

/// Splits a file into documents, indexing field positions. Errors are `(line, column, message)`.
pub(super) fn index_documents(text: &str) -> Result<Vec<IndexedDocument>, (usize, usize, String)> {
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
