#!/usr/bin/env bash
# The README's first command (`make demo`): a local run of the whole pipeline.
# Starts moto (a local AWS-compatible server) on a free loopback port, creates the Lambda
# function the example policies refer to, and runs trustsync against it with the
# sample policies (policies/) and the example tenant (examples/tenant.json):
# validate, plan, apply, plan again (no changes), then a membership change and its repair.
# Everything it starts is stopped on exit; the real account and tenant are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TRUSTSYNC_VENV:-.venv}
bin=target/release/trustsync
work=$(mktemp -d)
moto_pid=
cleanup() {
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "Starting moto (local AWS) on 127.0.0.1:$port"
MOTO_IAM_LOAD_MANAGED_POLICIES=true "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
  AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
cp examples/tenant.json "$work/tenant.json"
cat >"$work/trustsync.yaml" <<YAML
audit: {path: $work/audit.jsonl}
directory: {tenantFile: $work/tenant.json}
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

say "trustsync plan --detailed-exitcode: a second pass finds nothing to do (exit 0)"
ts plan --detailed-exitcode

say "A service principal (payments-release-bot) leaves sg-aws-payments-deployers in Entra"
"$venv/bin/python" - "$work/tenant.json" <<'PY'
import json, sys
path = sys.argv[1]
t = json.load(open(path))
g = next(g for g in t["groups"] if g["displayName"] == "sg-aws-payments-deployers")
g["members"].remove("5e1f0a2b-1111-4111-8111-000000000002")
json.dump(t, open(path, "w"), indent=2)
PY
say "trustsync plan: the trust policy loses that member"
ts plan --detailed-exitcode || [ $? -eq 2 ]
say "trustsync apply: access taken away"
ts apply --auto-approve

say "trustsync audit verify: the hash-chained audit log is intact"
ts audit verify "$work/audit.jsonl"
say "Done. moto is stopped; nothing outside this machine was touched."
