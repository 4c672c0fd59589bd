//! What a diagnostic may quote of a policy file: short, single-line renderings.

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
pub(super) fn clean(message: &str, long_scalars: &[String]) -> String {
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

/// Control characters escaped, nothing elided: text from outside (a policy file, a name
/// read from AWS) shown on one line of a terminal, a log or a YAML comment.
pub fn short_lines(s: &str) -> String {
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
pub(super) fn shorten_debug_strings(s: &str) -> String {
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
pub(super) fn clean_field(field: &str) -> String {
    let parts: Vec<String> = field.split('.').map(short).collect();
    let joined = parts.join(".");
    if joined.chars().count() <= 4 * QUOTE_CHARS {
        joined
    } else {
        short(&joined)
    }
}
