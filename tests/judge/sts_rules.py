"""What AWS STS checks before it issues web-identity credentials, and the request context
a session's later requests carry: the rules the judge applies around the policy evaluator.

Every rule names the documentation it comes from; where the documentation is silent and
the rule is inferred from field reports, it says so. The policy logic itself (conditions,
actions, Deny over Allow) is not here: it is principalmapper's (judge.py).

Sources:
[OIDC-CREATE]  IAM User Guide, "Create an OpenID Connect (OIDC) identity provider in IAM":
               the provider URL is the token's `iss` without the scheme; the audience
               (client ID) list holds the values the token's audience must match.
[ARWWI]        STS API Reference, AssumeRoleWithWebIdentity: the token must be signed by
               the provider's keys (published at `<iss>/.well-known/openid-configuration`
               -> `jwks_uri`), unexpired, and the role's trust policy must allow
               `sts:AssumeRoleWithWebIdentity` for the provider; DurationSeconds defaults
               to 3,600 and is at most the role's MaxSessionDuration.
[WIF-KEYS]     IAM User Guide, "Available keys for AWS OIDC federation": `<issuer>:aud`,
               `<issuer>:sub`, `<issuer>:amr`, `<issuer>:oaud`; when the token carries
               `azp`, `<issuer>:aud` holds `azp` and `<issuer>:oaud` holds `aud` (stated
               for Google). The keys stay in the request context of every request made with
               the resulting session.
[GLOBAL-KEYS]  IAM User Guide, "AWS global condition context keys": `aws:TokenIssueTime`
               is present for temporary credentials; `aws:userid` of a role session is
               `<role id>:<session name>`; `aws:FederatedProvider`.
[FIELD-AZP]    Inferred, not documented: for Entra v2 tokens (which carry `azp`), the
               provider's client-ID check compares `azp` as well: "Incorrect token
               audience" when azp differs although aud is listed (aws/aws-sdk-net issues
               3071 and 3100); v1 tokens (no azp) are accepted. DESIGN.md 2a.
"""

import base64
import json
import urllib.request
from datetime import datetime, timezone

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode(token):
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWS compact token")
    return json.loads(b64url(parts[0])), json.loads(b64url(parts[1])), parts


def fetch_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def verify_signature(token, issuer, hosts):
    """[ARWWI]: the signature must verify with a key the issuer publishes. `hosts` maps the
    issuer's host to the local server that serves its documents (the issuer string itself
    stays Microsoft's, as in the token)."""
    header, _, parts = decode(token)
    if header.get("alg") != "RS256":
        return "signature: alg {} is not RS256".format(header.get("alg"))
    scheme_host = issuer.split("/", 3)
    host = scheme_host[2] if len(scheme_host) > 2 else ""
    if host not in hosts:
        return "signature: no keys reachable for issuer {}".format(issuer)
    path = "/" + (scheme_host[3] if len(scheme_host) > 3 else "")
    discovery = fetch_json(hosts[host].rstrip("/") + path.rstrip("/") + "/.well-known/openid-configuration")
    if discovery.get("issuer") != issuer:
        return "signature: the discovery document names issuer {}, not {}".format(discovery.get("issuer"), issuer)
    jwks = fetch_json(discovery["jwks_uri"])
    keys = [k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")]
    if not keys:
        return "signature: no published key has kid {}".format(header.get("kid"))
    k = keys[0]
    pub = rsa.RSAPublicNumbers(int.from_bytes(b64url(k["e"]), "big"), int.from_bytes(b64url(k["n"]), "big")).public_key()
    try:
        pub.verify(b64url(parts[2]), (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return "signature: does not verify with the issuer's key"
    return None


def audience_values(claims):
    """[WIF-KEYS] and [FIELD-AZP]: what the client-ID list and `<issuer>:aud` are compared
    with (azp when the token has one, else aud), and `<issuer>:oaud` (aud, only with azp)."""
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else ([aud] if aud else [])
    if claims.get("azp"):
        return [claims["azp"]], auds
    return auds, None


def token_checks(claims, provider, now):
    """[OIDC-CREATE], [ARWWI], [FIELD-AZP]: the provider and the token, before any policy.
    Returns the reasons for refusal (empty: the token is acceptable)."""
    reasons = []
    if provider is None:
        return ["issuer: no OIDC provider in the account for {}".format(claims.get("iss"))]
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or exp <= now:
        reasons.append("lifetime: expired or no exp")
    if isinstance(nbf, (int, float)) and nbf > now:
        reasons.append("lifetime: not yet valid")
    matched, _ = audience_values(claims)
    if not any(v in provider["client_ids"] for v in matched):
        reasons.append(
            "audience: Incorrect token audience ({} {} not among the provider's client ids {})".format(
                "azp" if claims.get("azp") else "aud", matched, provider["client_ids"]
            )
        )
    if not claims.get("sub"):
        reasons.append("subject: no sub")
    return reasons


def context(claims, issuer_key, provider_arn, issued, role_id, session_name, role_arn):
    """[WIF-KEYS], [GLOBAL-KEYS]: the request context of AssumeRoleWithWebIdentity and of
    every later request of the session."""
    matched, oaud = audience_values(claims)
    ctx = {
        issuer_key + ":sub": claims.get("sub"),
        issuer_key + ":aud": matched if len(matched) != 1 else matched[0],
        "aws:FederatedProvider": provider_arn,
        "aws:TokenIssueTime": iso(issued),
        "aws:userid": "{}:{}".format(role_id, session_name),
        "aws:PrincipalArn": role_arn,
    }
    if oaud is not None:
        ctx[issuer_key + ":oaud"] = oaud if len(oaud) != 1 else oaud[0]
    if claims.get("amr"):
        ctx[issuer_key + ":amr"] = claims["amr"]
    return ctx


def trust_statements_for(trust, provider_arn):
    """[ARWWI]: the trust statements that concern this provider and action; their
    Principal is matched here (principalmapper evaluates AWS and Service principals only),
    everything else is left to the evaluator."""
    out = []
    statements = trust.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements:
        principal = st.get("Principal", {})
        federated = principal.get("Federated", []) if isinstance(principal, dict) else []
        federated = federated if isinstance(federated, list) else [federated]
        if principal == "*" or provider_arn in federated:
            s = {k: v for k, v in st.items() if k != "Principal"}
            out.append(s)
    return out
