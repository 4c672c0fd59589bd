//! Semantic comparison of IAM policy documents.
//!
//! AWS hands policy documents back in a different shape from the one written: URL-encoded
//! (IAM), a one-element list collapsed to its scalar, statements and values reordered,
//! `Statement` as an object instead of a list, a principal ARN string instead of
//! `{"AWS": arn}`, `true` instead of `"true"`, action names and condition keys in another
//! case. Comparing the raw JSON reports all of that as drift, and a controller that acts on
//! false drift rewrites every role on every pass. This module turns a document into a
//! canonical form in which those differences vanish and real ones stay: a different ARN,
//! a principal that came back as a unique id (`AROA...`) because its role was deleted, a
//! changed condition value.
//!
//! Pure functions only; no I/O, no SDK types.

use serde_json::{Map, Value};

/// Why a policy document could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Not JSON, neither as given nor after URL-decoding.
    #[error("policy document is not valid JSON: {0}")]
    NotJson(String),
    /// JSON, but not shaped like a policy document.
    #[error("{0}")]
    Shape(String),
}

/// Parses a policy document as AWS returns it: plain JSON or URL-encoded JSON.
pub fn parse_document(text: &str) -> Result<Value, Error> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(first) => {
            let decoded = percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map_err(|_| Error::NotJson(first.to_string()))?;
            serde_json::from_str::<Value>(&decoded).map_err(|e| Error::NotJson(e.to_string()))
        }
    }
}

/// True when two policy documents grant the same thing, ignoring representation.
pub fn equivalent(a: &Value, b: &Value) -> bool {
    canonical(a) == canonical(b)
}

/// True when two trust policies let in the same principals on the same conditions:
/// [`equivalent`] with statement ids left out, since a `Sid` labels a statement and grants
/// nothing. For the trust policies of roles, whose statements trustsync never addresses by
/// id (a role adopted with a hand-written trust keeps it until who is trusted changes);
/// Lambda statements are addressed by their ids, and keep them in the comparison.
pub fn equivalent_grants(a: &Value, b: &Value) -> bool {
    fn without_sids(doc: &Value) -> Value {
        let mut doc = canonical(doc);
        if let Some(Value::Array(statements)) = doc.get_mut("Statement") {
            for st in statements.iter_mut() {
                if let Value::Object(m) = st {
                    m.remove("Sid");
                }
            }
            statements.sort_by_cached_key(|s| s.to_string());
            statements.dedup();
        }
        doc
    }
    without_sids(a) == without_sids(b)
}

/// True when two single statements are the same, ignoring representation.
pub fn statements_equivalent(a: &Value, b: &Value) -> bool {
    canonical_statement(a) == canonical_statement(b)
}

/// The canonical form of a whole policy document.
///
/// Keys are sorted, `Statement` is always a list sorted by the canonical text of each
/// statement, and every statement is canonical (see [`canonical_statement`]). A value that
/// is not an object is returned unchanged, so that it compares unequal to any real policy.
pub fn canonical(doc: &Value) -> Value {
    let Value::Object(map) = doc else {
        return doc.clone();
    };
    let mut out = Map::new();
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let value = &map[key];
        if key == "Statement" {
            let mut statements: Vec<Value> =
                as_list(value).iter().map(canonical_statement).collect();
            statements.sort_by_cached_key(|s| s.to_string());
            statements.dedup();
            out.insert(key.clone(), Value::Array(statements));
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// The canonical form of one statement.
///
/// - `Action` / `NotAction`: a sorted set of lower-case strings.
/// - `Resource` / `NotResource`: a sorted set of strings (ARNs are case-sensitive).
/// - `Principal` / `NotPrincipal`: an object of principal type to a sorted set; a bare
///   string becomes `{"AWS": [..]}` (or `{"Service": [..]}` for `*.amazonaws.com`).
/// - `Condition`: operator to (lower-case key to a sorted set of strings); `true`
///   becomes `"true"`, numbers their decimal text.
/// - An empty `Sid` is dropped, as AWS does.
pub fn canonical_statement(statement: &Value) -> Value {
    let Value::Object(map) = statement else {
        return statement.clone();
    };
    let mut out = Map::new();
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let value = &map[key];
        let canon = match key.as_str() {
            "Action" | "NotAction" => string_set(value, true),
            "Resource" | "NotResource" => string_set(value, false),
            "Principal" | "NotPrincipal" => canonical_principal(value),
            "Condition" => canonical_condition(value),
            "Sid" if value.as_str() == Some("") => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), canon);
    }
    Value::Object(out)
}

fn canonical_principal(value: &Value) -> Value {
    match value {
        Value::String(s) => {
            let kind = if s.ends_with(".amazonaws.com") {
                "Service"
            } else {
                "AWS"
            };
            let mut m = Map::new();
            m.insert(
                kind.to_string(),
                Value::Array(vec![Value::String(s.clone())]),
            );
            Value::Object(m)
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut m = Map::new();
            for k in keys {
                m.insert(k.clone(), string_set(&map[k], false));
            }
            Value::Object(m)
        }
        other => other.clone(),
    }
}

fn canonical_condition(value: &Value) -> Value {
    let Value::Object(ops) = value else {
        return value.clone();
    };
    let mut op_keys: Vec<&String> = ops.keys().collect();
    op_keys.sort();
    let mut out = Map::new();
    for op in op_keys {
        let Value::Object(entries) = &ops[op] else {
            out.insert(op.clone(), ops[op].clone());
            continue;
        };
        // Condition keys are case-insensitive: merge keys that differ only by case.
        let mut merged: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        for (k, v) in entries {
            let slot = merged.entry(k.to_ascii_lowercase()).or_default();
            slot.extend(as_list(v).iter().cloned());
        }
        let mut inner = Map::new();
        for (k, values) in merged {
            inner.insert(k, string_set(&Value::Array(values), false));
        }
        out.insert(op.clone(), Value::Object(inner));
    }
    Value::Object(out)
}

/// A scalar or list of scalars as a sorted, de-duplicated list of strings.
fn string_set(value: &Value, lowercase: bool) -> Value {
    let mut items: Vec<String> = as_list(value)
        .iter()
        .map(|v| {
            let s = scalar_text(v);
            if lowercase {
                s.to_ascii_lowercase()
            } else {
                s
            }
        })
        .collect();
    items.sort();
    items.dedup();
    Value::Array(items.into_iter().map(Value::String).collect())
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A policy element that is a string or a list of strings (`Action`, `Resource`, a
/// condition's values), as a list; anything else is empty.
pub fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

/// A document's statements, whether `Statement` is one object or a list.
pub fn statements(doc: &Value) -> Vec<Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        s @ Value::Object(_) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

/// Length of a document as IAM counts it against its size quotas: the minified JSON,
/// without white space outside strings.
pub fn iam_length(doc: &Value) -> usize {
    serde_json::to_string(doc)
        .map(|s| s.len())
        .unwrap_or(usize::MAX)
}

/// Checks that a document is a structurally valid identity-based IAM policy (an inline
/// role policy, or trustsync's own): no `Principal`, and a `Resource`.
///
/// Returns every problem found, each as `(field path within the document, message)`.
pub fn check_document(doc: &Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let Value::Object(map) = doc else {
        problems.push((
            String::new(),
            "a policy document must be a JSON object".to_string(),
        ));
        return problems;
    };
    for key in map.keys() {
        if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
            problems.push((key.clone(), format!("unknown policy element `{key}`")));
        }
    }
    match map.get("Version").and_then(Value::as_str) {
        Some("2012-10-17") | Some("2008-10-17") => {}
        Some(other) => problems.push((
            "Version".into(),
            format!("`{other}` is not a policy language version; use \"2012-10-17\""),
        )),
        None => problems.push(("Version".into(), "missing; use \"2012-10-17\"".into())),
    }
    let statements = match map.get("Statement") {
        None => {
            problems.push(("Statement".into(), "missing".into()));
            return problems;
        }
        Some(Value::Array(items)) if items.is_empty() => {
            problems.push((
                "Statement".into(),
                "must hold at least one statement".into(),
            ));
            return problems;
        }
        Some(v) => as_list(v),
    };
    let mut sids = std::collections::BTreeSet::new();
    for (i, st) in statements.iter().enumerate() {
        check_statement(i, st, &mut sids, &mut problems);
    }
    problems
}

/// One statement of an identity policy: known elements, a unique alphanumeric `Sid`, an
/// `Effect`, actions, no principal, resources, conditions that map keys to values.
fn check_statement(
    i: usize,
    st: &Value,
    sids: &mut std::collections::BTreeSet<String>,
    problems: &mut Vec<(String, String)>,
) {
    let at = |f: &str| format!("Statement[{i}]{}{f}", if f.is_empty() { "" } else { "." });
    let Value::Object(s) = st else {
        problems.push((at(""), "a statement must be an object".into()));
        return;
    };
    for key in s.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            problems.push((at(key), format!("unknown statement element `{key}`")));
        }
    }
    if let Some(sid) = s.get("Sid") {
        match sid.as_str() {
            Some(text) if text.chars().all(|c| c.is_ascii_alphanumeric()) => {
                if !text.is_empty() && !sids.insert(text.to_string()) {
                    problems.push((at("Sid"), format!("duplicate Sid `{text}`")));
                }
            }
            _ => problems.push((at("Sid"), "must be a string of letters and digits".into())),
        }
    }
    match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") | Some("Deny") => {}
        _ => problems.push((at("Effect"), "must be \"Allow\" or \"Deny\"".into())),
    }
    check_listed(
        s,
        "Action",
        &at("Action"),
        valid_action,
        "an action (service:Action)",
        problems,
    );
    if s.contains_key("Principal") || s.contains_key("NotPrincipal") {
        problems.push((
            at("Principal"),
            "an identity policy cannot name a Principal".into(),
        ));
    }
    let arn = |text: &str| text.starts_with("arn:");
    check_listed(
        s,
        "Resource",
        &at("Resource"),
        arn,
        "an ARN or \"*\"",
        problems,
    );
    if let Some(cond) = s.get("Condition") {
        match cond {
            Value::Object(ops) => {
                for (op, entries) in ops {
                    if !entries.is_object() {
                        problems.push((
                            at(&format!("Condition.{op}")),
                            "must map condition keys to values".into(),
                        ));
                    }
                }
            }
            _ => problems.push((at("Condition"), "must be an object".into())),
        }
    }
}

/// `key` or `Not{key}`, exactly one, each value `*` or one `valid` accepts.
fn check_listed(
    s: &serde_json::Map<String, Value>,
    key: &str,
    at: &str,
    valid: impl Fn(&str) -> bool,
    what: &str,
    problems: &mut Vec<(String, String)>,
) {
    match (s.get(key), s.get(&format!("Not{key}"))) {
        (None, None) => problems.push((at.into(), format!("missing ({key} or Not{key})"))),
        (Some(_), Some(_)) => {
            problems.push((at.into(), format!("{key} and Not{key} are exclusive")))
        }
        (Some(v), None) | (None, Some(v)) => {
            for item in as_list(v) {
                match item.as_str() {
                    Some("*") => {}
                    Some(text) if valid(text) => {}
                    _ => problems
                        .push((at.into(), format!("`{}` is not {what}", scalar_text(&item)))),
                }
            }
        }
    }
}

fn valid_action(text: &str) -> bool {
    let Some((service, action)) = text.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !action.is_empty()
        && action
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eq(a: Value, b: Value) {
        assert!(equivalent(&a, &b), "expected equivalent:\n{a}\n{b}");
    }
    fn ne(a: Value, b: Value) {
        assert!(!equivalent(&a, &b), "expected different:\n{a}\n{b}");
    }

    #[test]
    fn trust_grants_compare_without_statement_ids() {
        let mut labelled = trust(json!(["a", "b"]));
        labelled["Statement"][0]["Sid"] = json!("EntraGroupMembers");
        let plain = trust(json!(["b", "a"]));
        assert!(equivalent_grants(&labelled, &plain));
        assert!(
            !equivalent(&labelled, &plain),
            "statement ids still count elsewhere"
        );
        assert!(!equivalent_grants(&labelled, &trust(json!(["a"]))));
        let mut wider = plain.clone();
        wider["Statement"][0]["Condition"]["StringEquals"]
            .as_object_mut()
            .unwrap()
            .remove("x:aud");
        assert!(
            !equivalent_grants(&plain, &wider),
            "a dropped condition is drift"
        );
    }

    fn trust(sub: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/x"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {"x:sub": sub, "x:aud": "api://a"}}
        }]})
    }

    #[test]
    fn url_encoded_documents_parse() {
        let doc =
            parse_document("%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D")
                .unwrap();
        assert_eq!(doc, json!({"Version": "2012-10-17", "Statement": []}));
        assert_eq!(parse_document("{\"a\":1}").unwrap(), json!({"a": 1}));
        assert!(matches!(parse_document("%7Bnot"), Err(Error::NotJson(_))));
    }

    #[test]
    fn scalar_equals_one_element_list() {
        eq(trust(json!("a")), trust(json!(["a"])));
    }

    #[test]
    fn value_order_is_irrelevant() {
        eq(trust(json!(["a", "b", "c"])), trust(json!(["c", "a", "b"])));
    }

    #[test]
    fn different_values_differ() {
        ne(trust(json!(["a", "b"])), trust(json!(["a"])));
        ne(trust(json!("a")), trust(json!("A")));
    }

    #[test]
    fn statement_object_equals_list() {
        let st = json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
        eq(
            json!({"Version": "2012-10-17", "Statement": st.clone()}),
            json!({"Version": "2012-10-17", "Statement": [st]}),
        );
    }

    #[test]
    fn statement_order_is_irrelevant() {
        let a = json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"});
        let b = json!({"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"});
        eq(
            json!({"Version": "2012-10-17", "Statement": [a.clone(), b.clone()]}),
            json!({"Version": "2012-10-17", "Statement": [b, a]}),
        );
    }

    #[test]
    fn principal_string_equals_aws_object() {
        let arn = "arn:aws:iam::123456789012:role/r";
        assert!(statements_equivalent(
            &json!({"Effect": "Allow", "Principal": arn, "Action": "lambda:InvokeFunction"}),
            &json!({"Effect": "Allow", "Principal": {"AWS": [arn]}, "Action": "lambda:InvokeFunction"}),
        ));
        assert!(statements_equivalent(
            &json!({"Effect": "Allow", "Principal": "events.amazonaws.com", "Action": "lambda:InvokeFunction"}),
            &json!({"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "lambda:InvokeFunction"}),
        ));
    }

    #[test]
    fn deleted_role_unique_id_is_drift() {
        let a = json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/r"}, "Action": "lambda:InvokeFunction"});
        let b = json!({"Effect": "Allow", "Principal": {"AWS": "AROAEXAMPLEID12345678"}, "Action": "lambda:InvokeFunction"});
        assert!(!statements_equivalent(&a, &b));
    }

    #[test]
    fn bool_and_string_conditions_are_equal() {
        let mk = |v: Value| {
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                "Condition": {"Bool": {"aws:SecureTransport": v}}}]})
        };
        eq(mk(json!(false)), mk(json!("false")));
        eq(mk(json!([false])), mk(json!("false")));
        ne(mk(json!(true)), mk(json!("false")));
    }

    #[test]
    fn action_and_condition_key_case_is_irrelevant_but_values_are_not() {
        let mk = |action: &str, key: &str, value: &str| {
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*",
                "Condition": {"StringEquals": {key: value}}}]})
        };
        eq(
            mk("s3:GetObject", "aws:PrincipalTag/team", "x"),
            mk("S3:getobject", "AWS:principaltag/TEAM", "x"),
        );
        ne(mk("s3:GetObject", "k", "x"), mk("s3:GetObject", "k", "X"));
    }

    #[test]
    fn resources_are_case_sensitive() {
        let mk = |r: &str| json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": r}]});
        ne(mk("arn:aws:s3:::Bucket"), mk("arn:aws:s3:::bucket"));
    }

    #[test]
    fn empty_sid_equals_missing_sid() {
        let a = json!({"Sid": "", "Effect": "Allow", "Action": "s3:*", "Resource": "*"});
        let b = json!({"Effect": "Allow", "Action": "s3:*", "Resource": "*"});
        assert!(statements_equivalent(&a, &b));
    }

    #[test]
    fn check_document_reports_each_problem_with_its_path() {
        let doc = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "Maybe", "Action": "nocolon", "Principal": "*", "Resource": "bucket"}
        ]});
        let problems = check_document(&doc);
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Statement[1].Effect",
                "Statement[1].Action",
                "Statement[1].Principal",
                "Statement[1].Resource"
            ]
        );
        assert!(check_document(&json!({"Statement": []})).len() == 2);
        assert!(check_document(
            &json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}})
        )
        .is_empty());
    }

    #[test]
    fn iam_length_ignores_white_space() {
        let doc = json!({"Version": "2012-10-17"});
        assert_eq!(iam_length(&doc), r#"{"Version":"2012-10-17"}"#.len());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn arb_arn() -> impl Strategy<Value = String> {
            "[a-z]{1,6}".prop_map(|s| format!("arn:aws:iam::123456789012:role/{s}"))
        }
        fn arb_statement() -> impl Strategy<Value = Value> {
            (
                prop::bool::ANY,
                prop::collection::vec("[a-z]{2,5}:[A-Z][a-z]{1,6}", 1..4),
                prop::collection::vec(arb_arn(), 1..4),
                prop::collection::vec("[a-z0-9]{1,8}", 1..5),
            )
                .prop_map(|(allow, actions, resources, values)| {
                    json!({
                        "Effect": if allow { "Allow" } else { "Deny" },
                        "Action": actions,
                        "Resource": resources,
                        "Condition": {"StringEquals": {"aws:PrincipalTag/team": values}},
                    })
                })
        }
        fn arb_policy() -> impl Strategy<Value = Value> {
            prop::collection::vec(arb_statement(), 1..4)
                .prop_map(|st| json!({"Version": "2012-10-17", "Statement": st}))
        }

        /// Rewrites a document the ways AWS may: reversed lists, singletons collapsed,
        /// action and key case changed, Statement object when alone.
        fn aws_rewrite(doc: &Value, seed: u64) -> Value {
            fn walk(v: &Value, seed: u64, depth: u32, key: &str) -> Value {
                match v {
                    Value::Array(items) => {
                        let mut items: Vec<Value> = items
                            .iter()
                            .map(|i| walk(i, seed, depth + 1, key))
                            .collect();
                        if seed & 1 == 1 {
                            items.reverse();
                        }
                        if items.len() == 1 && seed & 2 == 2 {
                            items.pop().unwrap()
                        } else {
                            Value::Array(items)
                        }
                    }
                    Value::Object(map) => {
                        let mut out = Map::new();
                        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                        if seed & 4 == 4 {
                            entries.reverse();
                        }
                        for (k, v) in entries {
                            let nk = if k.contains("PrincipalTag") && seed & 8 == 8 {
                                k.to_ascii_uppercase()
                            } else {
                                k.clone()
                            };
                            out.insert(nk, walk(v, seed.rotate_left(depth + 1), depth + 1, k));
                        }
                        Value::Object(out)
                    }
                    Value::String(s) if key == "Action" && seed & 16 == 16 => {
                        Value::String(s.to_ascii_uppercase())
                    }
                    other => other.clone(),
                }
            }
            walk(doc, seed, 0, "")
        }

        proptest! {
            #[test]
            fn aws_rewrites_are_not_drift(doc in arb_policy(), seed in any::<u64>()) {
                let rewritten = aws_rewrite(&doc, seed);
                prop_assert!(equivalent(&doc, &rewritten), "{doc}\n{rewritten}");
                let encoded = percent_encoding::utf8_percent_encode(
                    &rewritten.to_string(), percent_encoding::NON_ALPHANUMERIC).to_string();
                prop_assert!(equivalent(&doc, &parse_document(&encoded).unwrap()));
            }

            #[test]
            fn a_changed_value_is_drift(doc in arb_policy(), extra in "[A-Z]{1,4}") {
                let mut changed = doc.clone();
                let st = &mut changed["Statement"][0]["Condition"]["StringEquals"]["aws:PrincipalTag/team"];
                st.as_array_mut().unwrap().push(Value::String(extra));
                prop_assert!(!equivalent(&doc, &changed));
                let mut arn_changed = doc.clone();
                let r = &mut arn_changed["Statement"][0]["Resource"][0];
                *r = Value::String(r.as_str().unwrap().to_ascii_uppercase());
                prop_assert!(!equivalent(&doc, &arn_changed));
            }
        }
    }
}
