"""The authorization judge of the end-to-end tests: decides what real AWS would decide,
from the state moto holds (moto stores IAM documents and never evaluates them).

Three questions, each answered with the decision and its reasons:
- "assume": may this token assume this role (sts:AssumeRoleWithWebIdentity)? The STS rules
  (provider, signature, lifetime, audience) are in sts_rules.py with their documentation;
  the trust policy's conditions and Deny/Allow are evaluated by principalmapper.
- "request": may this session (what "assume" returned) make this request now? The role's
  inline and managed policies and its permissions boundary, with the session's request
  context, evaluated by principalmapper's local policy simulation.
- "identity": may a principal holding these identity policies (the controller's own, as
  `trustsync iam-policy` prints them) make this request with this context?

Reads JSON from stdin: {"aws": endpoint, "hosts": {issuer host: local server}, "now": unix
seconds, "checks": [{"op": "assume", "role": name, "token": jwt, "session": name} |
{"op": "request", "session": {...}, "action": a, "resource": arn}]}; writes one answer per
check, in order, as a JSON list: {"allowed": bool, "reasons": [...], "session": {...}}.
"""

import collections
import collections.abc
import json
import sys

# principalmapper 1.1.5 imports collections.Mapping, which Python 3.10 removed.
collections.Mapping = collections.abc.Mapping
collections.MutableMapping = collections.abc.MutableMapping

import boto3  # noqa: E402
from principalmapper.common import Node, Policy  # noqa: E402
from principalmapper.querying.local_policy_simulation import policy_has_matching_statement  # noqa: E402
from principalmapper.querying.query_interface import local_check_authorization_full  # noqa: E402
from principalmapper.util.case_insensitive_dict import CaseInsensitiveDict  # noqa: E402

import sts_rules  # noqa: E402


class Aws:
    def __init__(self, endpoint):
        self.iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def provider(self, issuer):
        """The account's OIDC provider for the token's issuer ([OIDC-CREATE])."""
        url = issuer.split("://", 1)[-1]
        for p in self.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
            arn = p["Arn"]
            if arn.split(":oidc-provider/", 1)[1] == url:
                got = self.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
                return {"arn": arn, "client_ids": got.get("ClientIDList", [])}
        return None

    def role(self, name):
        r = self.iam.get_role(RoleName=name)["Role"]
        return r

    def node(self, name):
        """The role as principalmapper sees a principal: its policies and boundary."""
        r = self.role(name)
        policies = []
        for pname in self.iam.list_role_policies(RoleName=name)["PolicyNames"]:
            doc = self.iam.get_role_policy(RoleName=name, PolicyName=pname)["PolicyDocument"]
            policies.append(Policy(r["Arn"], pname, doc))
        for ap in self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            policies.append(Policy(ap["PolicyArn"], ap["PolicyName"], self.managed(ap["PolicyArn"])))
        boundary = None
        b = r.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
        if b:
            boundary = Policy(b, b.rsplit("/", 1)[-1], self.managed(b))
        tags = {t["Key"]: t["Value"] for t in r.get("Tags", [])}
        node = Node(r["Arn"], r["RoleId"], policies, [], r["AssumeRolePolicyDocument"], None, 0, False, False, boundary, False, tags)
        return node, r

    def managed(self, arn):
        version = self.iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        return self.iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def assume(aws, hosts, now, check):
    token = check["token"]
    try:
        _, claims, _ = sts_rules.decode(token)
    except Exception as e:  # not a JWT at all
        return {"allowed": False, "reasons": ["token: {}".format(e)]}
    issuer = claims.get("iss", "")
    provider = aws.provider(issuer)
    reasons = sts_rules.token_checks(claims, provider, now)
    if provider is not None:
        bad = sts_rules.verify_signature(token, issuer, hosts)
        if bad:
            reasons.append(bad)
    try:
        role = aws.role(check["role"])
    except aws.iam.exceptions.NoSuchEntityException:
        return {"allowed": False, "reasons": reasons + ["role: no such role"]}
    if reasons:
        return {"allowed": False, "reasons": reasons}
    issuer_key = issuer.split("://", 1)[-1]
    session_name = check.get("session", "judge")
    ctx = sts_rules.context(claims, issuer_key, provider["arn"], now, role["RoleId"], session_name, role["Arn"])
    trust = {"Statement": sts_rules.trust_statements_for(role["AssumeRolePolicyDocument"], provider["arn"])}
    keys = CaseInsensitiveDict(ctx)
    action = "sts:AssumeRoleWithWebIdentity"
    if policy_has_matching_statement(trust, "Deny", action, role["Arn"], keys):
        return {"allowed": False, "reasons": ["trust: an explicit Deny matches"]}
    if not policy_has_matching_statement(trust, "Allow", action, role["Arn"], keys):
        return {"allowed": False, "reasons": ["trust: no statement allows this token (sub or aud not matched)"]}
    session = {
        "role": check["role"],
        "issued": now,
        "expires": now + min(check.get("duration", 3600), role.get("MaxSessionDuration", 3600)),
        "context": ctx,
    }
    return {"allowed": True, "reasons": [], "session": session}


def request(aws, now, check):
    s = check["session"]
    if now >= s["expires"]:
        return {"allowed": False, "reasons": ["session: expired"]}
    node, _ = aws.node(s["role"])
    ctx = dict(s["context"])
    ctx["aws:CurrentTime"] = sts_rules.iso(now)
    ctx["aws:EpochTime"] = str(now)
    allowed = local_check_authorization_full(node, check["action"], check["resource"], ctx)
    if allowed:
        return {"allowed": True, "reasons": []}
    deny = [p.name for p in node.attached_policies if policy_has_matching_statement(p, "Deny", check["action"], check["resource"], CaseInsensitiveDict(ctx))]
    return {"allowed": False, "reasons": ["explicit Deny in {}".format(", ".join(deny))] if deny else ["no policy allows it"]}


def identity(check):
    """May a principal holding these identity policies (the controller's, as `trustsync
    iam-policy` prints them) make this request, with this request context?"""
    arn = check.get("principal", "arn:aws:iam::123456789012:role/trustsync-controller")
    policies = [Policy(arn, "policy{}".format(i), doc) for i, doc in enumerate(check["policies"])]
    node = Node(arn, "AROACONTROLLER0000000", policies, [], {"Version": "2012-10-17", "Statement": []}, None, 0, False, False, None, False, {})
    ctx = dict(check.get("context", {}))
    allowed = local_check_authorization_full(node, check["action"], check["resource"], ctx)
    return {"allowed": bool(allowed), "reasons": []}


def main():
    req = json.load(sys.stdin)
    aws = Aws(req["aws"]) if req.get("aws") else None
    out = []
    for check in req["checks"]:
        now = int(check.get("now", req["now"]))
        if check["op"] == "identity":
            out.append(identity(check))
        elif check["op"] == "assume":
            out.append(assume(aws, req.get("hosts", {}), now, check))
        elif check["op"] == "request":
            out.append(request(aws, now, check))
        else:
            out.append({"allowed": False, "reasons": ["unknown op {}".format(check["op"])]})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
