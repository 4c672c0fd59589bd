#!/usr/bin/env bash
# The README's first command (`make demo`): a local run of the whole pipeline.
# Starts moto (a local AWS-compatible server) and trustsync's local Microsoft Graph server
# (serving examples/tenant.json) on free loopback ports, creates the Lambda function the
# example policies refer to, and runs trustsync with the sample policies (policies/):
# validate, plan, apply, plan again (no changes), then `trustsync run` repairing a
# membership change made through the Graph server's admin API (the departed workload's
# new token refused and the session it held denied, as the tests' IAM judge decides them),
# an audit log check, and
# `audit show` naming who made the change in Entra; a Lambda function acting as an Entra
# application (outbound federation: the role's token policy, the application's federated
# credential, a token exchanged with no secret); people through IAM Identity Center (a
# person onboarded through a nested group, then disabled in Entra: out of the group, the
# session they held denied); then one controller for two AWS accounts (hub and spoke),
# with the plan grouped by account.
# Everything it starts is stopped on exit; no real account or tenant is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TRUSTSYNC_VENV:-.venv}
bin=target/debug/trustsync
work=$(mktemp -d)
moto_pid=
graph_pid=
run_pid=
issuer_pid=
cleanup() {
  for pid in $run_pid $issuer_pid $moto_pid $graph_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Headings in bold on a terminal only (a pipe or a log file gets plain text), as NO_COLOR
# asks too.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi
# What follows PREFIX on the first line of FILE that has it, once a started server wrote it.
first_line() {
  local value=
  for _ in $(seq 1 100); do
    value=$(sed -n "s|^$1||p" "$2")
    [ -n "$value" ] && break
    sleep 0.1
  done
  printf '%s' "$value"
}

port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "Starting moto (local AWS) on 127.0.0.1:$port"
# tests/moto_server.py: moto, with the IAM Identity Center calls it lacks answered as AWS
# documents them.
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$venv/bin/python" tests/moto_server.py -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done

say "Starting the local Microsoft Graph server with the example tenant"
# --resource-units 0: no resource-unit throttling in the demo (the tests and the benchmark
# keep Microsoft's per-tenant-size limit on).
# The example tenant, plus the people of the IAM Identity Center step at the end.
"$venv/bin/python" scripts/demo_people.py tenant examples/tenant.json "$work/tenant.json"
target/debug/trustsync-graph-server --tenant "$work/tenant.json" --resource-units 0 >"$work/graph.out" 2>"$work/graph.log" &
graph_pid=$!
graph=$(first_line 'listening on ' "$work/graph.out")
echo "Graph at $graph"

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
  AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
# The Azure SDK variables; the secret belongs to the example tenant's local app registration.
export AZURE_TENANT_ID=7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45 AZURE_CLIENT_ID=3f0e8a52-7c1d-4b8e-9f6a-1c2d3e4f5a6b \
  AZURE_CLIENT_SECRET=local-demo-secret-for-the-graph-server-only AZURE_AUTHORITY_HOST="$graph" \
  TRUSTSYNC_GRAPH_ENDPOINT="$graph/v1.0"
cat >"$work/trustsync.yaml" <<YAML
audit: {path: $work/audit.jsonl}
permissionsBoundaries: [trustsync-workload-boundary]
YAML
ts() { "$bin" --config "$work/trustsync.yaml" "$@"; }

say "Creating the Lambda function the policies refer to (trustsync never creates functions)"
"$venv/bin/python" scripts/seed_demo.py "$AWS_ENDPOINT_URL"

say "trustsync validate: the policy repository is checked before anything else"
ts validate

say "trustsync plan: what would change (nothing is written)"
ts plan || true

say "trustsync apply: make AWS match, recording every change in the audit log"
ts apply --auto-approve
echo "  every role carries the configured permissions boundary, which the controller cannot lift:"
"$venv/bin/python" - "$AWS_ENDPOINT_URL" <<'PY'
import sys, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1")
for r in iam.list_roles(PathPrefix="/trustsync/")["Roles"]:
    b = iam.get_role(RoleName=r["RoleName"])["Role"].get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
    print(f"    {r['RoleName']:20} boundary {b}")
PY

say "trustsync plan --detailed-exitcode: a second pass finds nothing to do (exit 0)"
ts plan --detailed-exitcode

say "trustsync run: the controller starts (Graph delta poll every second for the demo)"
cat >>"$work/trustsync.yaml" <<YAML
run: {intervalSeconds: 60, directoryPollSeconds: 1, policyPollSeconds: 1}
YAML
"$bin" --config "$work/trustsync.yaml" run --listen 127.0.0.1:0 >"$work/run.out" 2>"$work/run.log" &
run_pid=$!
for _ in $(seq 1 100); do
  status_url=$(sed -n 's|.* on \(http://[^ ]*\)$|\1|p' "$work/run.out")
  [ -n "$status_url" ] && curl -sf "$status_url/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
echo "controller ready at $status_url"

say "Two workloads get Entra tokens (v1, aud api://aws-federation) and assume payments-deployer"
echo "  (decided by the tests' IAM judge: moto stores policies but never enforces them)"
sessions() { "$venv/bin/python" scripts/demo_sessions.py "$@"; }
fn=arn:aws:lambda:us-east-1:123456789012:function:payments-api
sessions assume "$AWS_ENDPOINT_URL" "$graph" "$AZURE_TENANT_ID" 9d0e1f2a-aaaa-4aaa-8aaa-000000000002 local-workload-secret-2 payments-deployer "$work/bot.session"
sessions assume "$AWS_ENDPOINT_URL" "$graph" "$AZURE_TENANT_ID" 9d0e1f2a-aaaa-4aaa-8aaa-000000000001 local-workload-secret-1 payments-deployer "$work/pipeline.session"
sessions request "$AWS_ENDPOINT_URL" "$graph" "$work/bot.session" lambda:UpdateFunctionCode "$fn"

say "A service principal (payments-release-bot) leaves sg-aws-payments-deployers in Entra"
"$venv/bin/python" - "$graph" <<'PY'
import sys, urllib.request
import json
who = {"initiatedBy": {"user": {"id": "c0ffee00-2222-4222-8222-000000000001", "displayName": "Dana Ops", "userPrincipalName": "dana@example.com"}}}
req = urllib.request.Request(sys.argv[1] + "/admin/groups/a1b2c3d4-0001-4000-8000-000000000001/members/5e1f0a2b-1111-4111-8111-000000000002",
                             method="DELETE", data=json.dumps(who).encode(), headers={"Content-Type": "application/json"})
print("Graph admin API:", urllib.request.urlopen(req).status)
PY

say "The controller sees the change through Graph delta and takes the access away"
for _ in $(seq 1 100); do
  grep -q 'trigger=Directory.*pass finished' "$work/run.log" && break
  sleep 0.2
done
grep -E 'directory change|pass finished' "$work/run.log" | sed 's/^/  /'
"$venv/bin/python" - "$status_url" <<'PY'
import json, sys, urllib.request
s = json.load(urllib.request.urlopen(sys.argv[1] + "/status"))
p = s["lastPass"]
print(f"  /status: last pass {p['trigger']}, {p['outcome']}, {p['applied']} change(s) applied")
for name, m in s["mappings"].items():
    print(f"  {name:20} {m['state']:8} {m['reason']}")
PY
ts plan --detailed-exitcode >/dev/null && echo "  trustsync plan: no changes left"

say "payments-release-bot's new token is refused, and the session it already held is denied"
sessions assume "$AWS_ENDPOINT_URL" "$graph" "$AZURE_TENANT_ID" 9d0e1f2a-aaaa-4aaa-8aaa-000000000002 local-workload-secret-2 payments-deployer "$work/bot2.session"
sessions request "$AWS_ENDPOINT_URL" "$graph" "$work/bot.session" lambda:UpdateFunctionCode "$fn"
echo "  while payments-deploy-pipeline's session keeps working:"
sessions request "$AWS_ENDPOINT_URL" "$graph" "$work/pipeline.session" lambda:UpdateFunctionCode "$fn"
ts access --principal 5e1f0a2b-1111-4111-8111-000000000002 | sed 's/^/  /'

say "SIGTERM: the controller stops cleanly"
kill -TERM "$run_pid"
wait "$run_pid" && echo "  exit status 0"

say "trustsync audit verify: the hash-chained audit log is intact"
ts audit verify "$work/audit.jsonl"

say "trustsync audit show: who gave payments-release-bot access, and who took it away"
ts audit show "$work/audit.jsonl" --principal 5e1f0a2b-1111-4111-8111-000000000002
say "The other direction: payments-api acts as an Entra application, with no secret"
# moto has no outbound identity federation: a stand-in issuer plays the account's (the
# documented outboundFederation.issuerUrls override), signing as AWS would.
"$venv/bin/python" scripts/outbound_issuer.py serve >"$work/issuer.out" 2>"$work/issuer.log" &
issuer_pid=$!
issuer=$(first_line 'issuer at ' "$work/issuer.out")
cp -r policies "$work/policies"
sed -i 's|^  executionRole: {roleMapping: payments-runtime}$|&\n  entraApplication: {appId: 9e8d7c6b-0000-4000-8000-00000000a001, maxTokenSeconds: 300}|' \
  "$work/policies/payments.yaml"
cat >>"$work/trustsync.yaml" <<YAML
outboundFederation: {issuerUrls: {"123456789012": "$issuer"}}
YAML
echo "  FunctionAccess payments-api now says: entraApplication: {appId: 9e8d7c6b-..., maxTokenSeconds: 300}"
ts entra-permissions --policies "$work/policies" | sed '/^With the Azure CLI/,$d'
ts apply --policies "$work/policies" --auto-approve 2>/dev/null | grep -E '^ *[-+~] |^Apply:'
say "The function's token, signed by the account's issuer, is exchanged for an Entra token"
"$venv/bin/python" scripts/outbound_issuer.py exchange "$issuer" "$graph" "$AZURE_TENANT_ID" \
  9e8d7c6b-0000-4000-8000-00000000a001 arn:aws:iam::123456789012:role/trustsync/payments-runtime
echo "  and another role's token is refused:"
"$venv/bin/python" scripts/outbound_issuer.py exchange "$issuer" "$graph" "$AZURE_TENANT_ID" \
  9e8d7c6b-0000-4000-8000-00000000a001 arn:aws:iam::123456789012:role/trustsync/payments-deployer || true

say "People: an AccessAssignment gives sg-aws-payments-people the PaymentsOps permission set"
echo "  (IAM Identity Center: Dana is a member, Lee is one through the nested sg-payments-oncall)"
cat >"$work/policies/people.yaml" <<'YAML'
apiVersion: trustsync.dev/v1alpha1
kind: AccessAssignment
metadata: {name: payments-people}
spec:
  group: {displayName: sg-aws-payments-people}
  members: {transitive: true}
  permissionSet:
    name: PaymentsOps
    description: Payments engineers in production
    sessionDuration: PT8H
    inlinePolicy:
      Version: "2012-10-17"
      Statement:
        - {Effect: Allow, Action: "s3:GetObject", Resource: "arn:aws:s3:::payments-reports/*"}
  accounts: {ids: ["123456789012"]}
YAML
ts apply --policies "$work/policies" --auto-approve 2>/dev/null | grep -E 'identity-store|group-members|permission-set|account-assignment|^Apply:'
"$venv/bin/python" scripts/demo_people.py show "$AWS_ENDPOINT_URL"
"$venv/bin/python" scripts/demo_people.py session "$AWS_ENDPOINT_URL" lee@example.com 600

say "Lee's Entra account is disabled: the next pass takes Lee out and denies the session Lee holds"
"$venv/bin/python" - "$graph" <<'PY'
import sys, json, urllib.request
req = urllib.request.Request(sys.argv[1] + "/admin/users/c0ffee00-2222-4222-8222-000000000003", method="PATCH",
                             data=json.dumps({"accountEnabled": False}).encode(), headers={"Content-Type": "application/json"})
print("  Graph admin API: PATCH accountEnabled=false:", urllib.request.urlopen(req).status)
PY
ts apply --policies "$work/policies" --auto-approve 2>/dev/null | grep -E 'group-members|permission-set|^Apply:'
"$venv/bin/python" scripts/demo_people.py show "$AWS_ENDPOINT_URL"
"$venv/bin/python" scripts/demo_people.py session "$AWS_ENDPOINT_URL" lee@example.com 600
"$venv/bin/python" scripts/demo_people.py session "$AWS_ENDPOINT_URL" dana@example.com 600

say "Many accounts: the same policies in two AWS accounts, reached through a spoke role in each"
for account in 111111111111 222222222222; do
  "$venv/bin/python" scripts/seed_demo.py "$AWS_ENDPOINT_URL" --account "$account"
done
cat >"$work/accounts.yaml" <<YAML
audit: {path: $work/accounts-audit.jsonl}
permissionsBoundaries: [trustsync-workload-boundary]
accounts:
  targets:
    - {id: "111111111111", labels: {env: prod}}
    - {id: "222222222222", labels: {env: dev}}
YAML
# The EventBridge rule that invokes payments-api lives in a managed account (an invoker
# source in any other account is refused by the guardrails).
mkdir -p "$work/accounts-policies"
cp policies/*.yaml "$work/accounts-policies/"
sed -i 's|arn:aws:events:us-east-1:123456789012:|arn:aws:events:us-east-1:111111111111:|' \
  "$work/accounts-policies/payments.yaml"
export TRUSTSYNC_POLICIES="$work/accounts-policies"
tsa() { "$bin" --config "$work/accounts.yaml" "$@"; }
echo "  the hub may assume:"
tsa iam-policy --hub-role-arn arn:aws:iam::123456789012:role/trustsync-hub \
  | "$venv/bin/python" -c 'import json,sys; d=json.load(sys.stdin); [print("   ", r) for r in d["hub"]["policy"]["Statement"][0]["Resource"]]'
say "trustsync plan across both accounts, grouped by account"
tsa plan | grep -E '^(Account|Plan:)' || true
say "trustsync apply across both accounts (each in its own lane), then a plan finds nothing"
tsa apply --auto-approve | grep -E '^Apply:'
tsa plan --detailed-exitcode >/dev/null && echo "  trustsync plan: no changes in either account"
say "Done. moto and the Graph server are stopped; nothing outside this machine was touched."
