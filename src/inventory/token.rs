//! `trustsync check-token`: a token's claims, and whether each role would take it.

use serde::Serialize;
use serde_json::Value;

use super::EntraRole;
use crate::observed::{condition_values, Observations};

/// What `trustsync check-token` read of a token: its claims, never the token itself.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub iss: Option<String>,
    pub aud: Vec<String>,
    pub azp: Option<String>,
    pub appid: Option<String>,
    pub sub: Option<String>,
    pub oid: Option<String>,
    pub ver: Option<String>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
}

/// Decodes the claims of a JWT (header.payload.signature, base64url). The signature is
/// not checked: STS does that against the issuer's keys. Each way the input can fail to
/// be one is named in words, with what to give instead; the token is never echoed.
pub fn decode_claims(token: &str) -> Result<Claims, String> {
    let token = token.trim();
    // Copied from an Authorization header.
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .map_or(token, str::trim);
    if token.is_empty() {
        return Err("the input is empty: give an Entra access token (a JWT: header.payload.signature) in the file, or on stdin".into());
    }
    if token.starts_with('{') {
        return Err("the input is JSON, not a token: from a token endpoint's answer, give the value of its access_token".into());
    }
    if token.contains(char::is_whitespace) {
        return Err("the input has spaces or line breaks inside it: a token is one word (header.payload.signature); give one token, whole".into());
    }
    let parts: Vec<&str> = token.split('.').collect();
    match parts.len() {
        3 => {}
        5 => return Err("the input has 5 parts: an encrypted token (JWE), which only its audience can read; STS needs a signed access token (3 parts: header.payload.signature)".into()),
        1 => return Err("not a JWT: the input has no dots; a JWT is three base64url parts separated by dots (header.payload.signature)".into()),
        n => return Err(format!("not a JWT: the input has {n} dot-separated parts, a JWT has 3 (header.payload.signature); was it cut short or joined to something when copied?")),
    }
    let header = json_part(parts[0], "first part (the header)")?;
    if header.get("alg").and_then(Value::as_str).is_none() {
        return Err(
            "the first part (the header) names no signing algorithm (`alg`): not a JWT".into(),
        );
    }
    let v = json_part(parts[1], "second part (the claims)")?;
    if parts[2].is_empty() {
        return Err(
            "the third part (the signature) is empty: an unsigned token, which STS refuses".into(),
        );
    }
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    let n = |k: &str| v.get(k).and_then(Value::as_i64);
    Ok(Claims {
        iss: s("iss"),
        aud: match v.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        },
        azp: s("azp"),
        appid: s("appid"),
        sub: s("sub"),
        oid: s("oid"),
        ver: s("ver"),
        exp: n("exp"),
        nbf: n("nbf"),
    })
}

/// One part of a JWT: base64url (no padding) of a JSON object; what is wrong, in words.
fn json_part(part: &str, which: &str) -> Result<serde_json::Map<String, Value>, String> {
    use base64::{DecodeError, Engine};
    if part.is_empty() {
        return Err(format!("the {which} is empty: not a JWT"));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| {
            let why = match e {
                DecodeError::InvalidByte(at, b) if b == b'+' || b == b'/' => format!(
                    "character {} is `{}`, of standard base64; a JWT uses base64url (`-` and `_`): was it re-encoded?",
                    at + 1,
                    b as char
                ),
                DecodeError::InvalidByte(at, b) => format!(
                    "character {} ({}) is not a base64url character (A-Z, a-z, 0-9, `-`, `_`)",
                    at + 1,
                    if b.is_ascii_graphic() { format!("`{}`", b as char) } else { format!("byte {b:#04x}") }
                ),
                DecodeError::InvalidLength(_) | DecodeError::InvalidLastSymbol(..) => {
                    "its length or last character cannot end base64url: it was cut short or changed when copied".to_string()
                }
                DecodeError::InvalidPadding => "its padding is wrong".to_string(),
            };
            format!("the {which} is not base64url: {why}")
        })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!(
            "the {which} decodes to JSON, but not to an object: not a JWT"
        )),
        Err(_) => Err(format!("the {which} decodes, but not to JSON: not a JWT")),
    }
}

/// Whether one role would accept the token, and every reason it would not.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub role: String,
    pub managed: bool,
    pub accepts: bool,
    pub reasons: Vec<String>,
}

/// Checks the token's claims against each role's trust as STS would (issuer, audience,
/// subject, lifetime), at `now` (seconds since the epoch).
pub fn check_token(
    claims: &Claims,
    roles: &[EntraRole<'_>],
    observed: &Observations,
    now: i64,
) -> Vec<Verdict> {
    let mut out = Vec::new();
    let iss = claims.iss.clone().unwrap_or_default();
    let token_form = if iss.starts_with("https://sts.windows.net/") {
        "v1 (https://sts.windows.net/<tenant>/)"
    } else if iss.starts_with("https://login.microsoftonline.com/") {
        "v2 (https://login.microsoftonline.com/<tenant>/v2.0)"
    } else {
        "not an Entra issuer"
    };
    for r in roles {
        let mut reasons = Vec::new();
        let issuer = r
            .providers
            .iter()
            .map(|p| {
                crate::model::names::provider_issuer(p)
                    .unwrap_or_default()
                    .to_string()
            })
            .find(|i| iss == format!("https://{i}"));
        match &issuer {
            None => reasons.push(format!(
                "issuer: the token's iss `{iss}` is the {token_form} form; the role trusts {}",
                r.providers
                    .iter()
                    .map(|p| format!(
                        "https://{}",
                        crate::model::names::provider_issuer(p).unwrap_or_default()
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(issuer) => audience_reasons(claims, r, issuer, observed, &mut reasons),
        }
        subject_reasons(claims, r, &mut reasons);
        lifetime_reasons(claims, now, &mut reasons);
        out.push(Verdict {
            role: r.role.arn.clone(),
            managed: r.managed,
            accepts: reasons.is_empty(),
            reasons,
        });
    }
    out
}

/// Why the role's trust refuses the token's audience (its issuer trusted): the trust's
/// audience keys, then the provider's client ids.
fn audience_reasons(
    claims: &Claims,
    r: &EntraRole<'_>,
    issuer: &str,
    observed: &Observations,
    reasons: &mut Vec<String>,
) {
    // STS's audience rule (docs/entra-setup.md, "Why v1 tokens"): a token that
    // carries azp (every v2 token) is matched by azp, the caller's client id,
    // against the provider's client ids and `<issuer>:aud`, and by aud against
    // `<issuer>:oaud`; a token without azp (v1) by aud against both, and has no
    // oaud. `<issuer>:azp` is no key IAM fills for a generic OIDC issuer.
    let (by, matched): (&str, Vec<String>) = match &claims.azp {
        Some(azp) => ("azp", vec![azp.clone()]),
        None => ("aud", claims.aud.clone()),
    };
    let oaud: Vec<String> = if claims.azp.is_some() {
        claims.aud.clone()
    } else {
        Vec::new()
    };
    for (key, values, claim) in [
        ("aud", &matched, by),
        ("oaud", &oaud, "aud"),
        ("azp", &Vec::new(), "azp"),
    ] {
        let wanted = format!("{issuer}:{key}").to_ascii_lowercase();
        let Some(allowed) = condition_values(&r.role.trust, |k| k == wanted) else {
            continue;
        };
        if !values.iter().any(|v| allowed.contains(v)) {
            let have = match (key, values.is_empty()) {
                ("azp", _) => {
                    "cannot match it: IAM fills no azp key for an OIDC issuer".to_string()
                }
                ("oaud", true) => "has no azp, so IAM sets no oaud for it (a v1 token)".to_string(),
                (_, true) => format!("has no {claim}"),
                _ => format!("is matched by its {claim} {}", values.join(", ")),
            };
            reasons.push(format!(
                "audience: the trust's {issuer}:{key} allows {}; the token {have}",
                allowed.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let client_ids = observed
        .iam()
        .filter(|(a, _)| *a == r.account)
        .flat_map(|(_, o)| &o.providers)
        .find(|p| r.providers.contains(&p.arn))
        .map(|p| p.client_ids.clone());
    if let Some(ids) = client_ids {
        if !matched.iter().any(|a| ids.contains(a)) {
            let note = if by == "azp" {
                " (STS compares a token's azp, the calling application, when it has one: a v2 token is refused unless its caller's client id is listed)"
            } else {
                ""
            };
            reasons.push(format!(
                "audience: the provider's client ids are {} and the token's {by} is {}{note}",
                ids.iter().cloned().collect::<Vec<_>>().join(", "),
                matched.join(", ")
            ));
        }
    }
}

/// Why the role's trust refuses the token's subject.
fn subject_reasons(claims: &Claims, r: &EntraRole<'_>, reasons: &mut Vec<String>) {
    match &claims.sub {
        None => reasons.push("subject: the token has no sub".into()),
        Some(sub) if !r.subjects.iter().any(|s| s.eq_ignore_ascii_case(sub)) => {
            let hint = match &claims.oid {
                Some(oid) if oid != sub => " (its sub differs from its oid: a user's pairwise sub, which no trust policy can name)",
                _ => "",
            };
            reasons.push(format!(
                "subject: sub {sub} is not among the {} principal(s) the role trusts{hint}",
                r.subjects.len()
            ));
        }
        Some(_) => {}
    }
}

/// Why STS refuses the token's lifetime at `now`: no exp, expired, not yet valid.
fn lifetime_reasons(claims: &Claims, now: i64, reasons: &mut Vec<String>) {
    match claims.exp {
        None => reasons.push("lifetime: the token has no exp".into()),
        Some(exp) if exp <= now => reasons.push(format!("lifetime: expired {} s ago", now - exp)),
        Some(_) => {}
    }
    if let Some(nbf) = claims.nbf.filter(|nbf| *nbf > now) {
        reasons.push(format!(
            "lifetime: not valid for another {} s (nbf)",
            nbf - now
        ));
    }
}
