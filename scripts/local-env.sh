#!/usr/bin/env bash
# A local environment that stays up, for trying the README's tour (`make local`).
#
#   scripts/local-env.sh start    start moto and the local Graph server with the demo's data;
#                                 print the environment to use (export lines) and how to stop
#   scripts/local-env.sh env      print the export lines again (for `eval "$(...)"`)
#   scripts/local-env.sh status   say whether it is running, and where
#   scripts/local-env.sh stop     stop both servers and remove the state
#
# The same servers and data as `make demo` (scripts/demo.sh): moto (tests/moto_server.py) on
# a free loopback port, seeded by scripts/seed_demo.py with the function the sample policies
# refer to and the permissions boundary, in moto's default account and in two more
# (111111111111 "prod" and 222222222222 "dev", each with the spoke role a hub assumes), and
# trustsync-graph-server serving examples/tenant.json plus the demo's people
# (scripts/demo_people.py). It adds what the tour's other commands need: a role made by
# hand in 111111111111 that trusts the tenant (for `trustsync export`) and a workload's
# Entra access token (for `trustsync check-token`). Nothing outside this machine is touched.
#
# It expects the binaries built (`make local` builds them first) and the test servers
# installed in .venv (scripts/setup-test-env.sh). The state (config, audit log, logs, pids,
# the token) lives in $TRUSTSYNC_LOCAL_DIR, by default target/local-env.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=${TRUSTSYNC_VENV:-$root/.venv}
state=${TRUSTSYNC_LOCAL_DIR:-$root/target/local-env}
bin_dir=$root/target/debug
tenant_id=7f3c2a10-4b5e-4c1d-9a8e-2d6f0b1c3e45

die() { echo "local-env: $*" >&2; exit 1; }

# The pid in FILE, when that process is still alive.
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

running() { alive "$state/moto.pid" && alive "$state/graph.pid"; }

# Stops the process group led by the pid in FILE (each server runs in its own session).
stop_one() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop() {
  stop_one "$state/graph.pid"
  stop_one "$state/moto.pid"
  rm -rf "$state"
}

# What follows PREFIX on the first line of FILE that has it, once a started server wrote it.
first_line() {
  local value=
  for _ in $(seq 1 150); do
    value=$(sed -n "s|^$1||p" "$2" 2>/dev/null | head -1)
    [ -n "$value" ] && break
    sleep 0.1
  done
  printf '%s' "$value"
}

print_env() {
  cat "$state/env"
  cat <<EOF
# trustsync's state: $state (config, audit log, token.jwt, server logs)
# stop both servers with: make local-stop   (or scripts/local-env.sh stop)
EOF
}

start() {
  if running; then
    echo "# the local environment is already running" >&2
    print_env
    return 0
  fi
  # A previous start that half failed, or servers that died: start clean.
  stop
  for b in trustsync trustsync-graph-server; do
    [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing: run \`make local\` (it builds it first)"
  done
  [ -x "$venv/bin/python" ] || die "$venv/bin/python is missing: run scripts/setup-test-env.sh (make local does)"
  mkdir -p "$state"
  # Whatever fails from here on leaves nothing running.
  trap 'status=$?; [ "$status" -eq 0 ] || { echo "local-env: start failed; logs were in $state" >&2; stop; }' EXIT

  local port
  port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  MOTO_IAM_LOAD_MANAGED_POLICIES=true setsid "$venv/bin/python" tests/moto_server.py -H 127.0.0.1 -p "$port" \
    </dev/null >"$state/moto.log" 2>&1 &
  echo $! >"$state/moto.pid"
  local up=
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
    alive "$state/moto.pid" || break
    sleep 0.2
  done
  [ -n "$up" ] || die "moto did not start on 127.0.0.1:$port (see $state/moto.log)"
  local aws=http://127.0.0.1:$port

  "$venv/bin/python" scripts/demo_people.py tenant examples/tenant.json "$state/tenant.json"
  # --resource-units 0: no resource-unit throttling, as in the demo.
  setsid "$bin_dir/trustsync-graph-server" --tenant "$state/tenant.json" --resource-units 0 \
    </dev/null >"$state/graph.out" 2>"$state/graph.log" &
  echo $! >"$state/graph.pid"
  local graph
  graph=$(first_line 'listening on ' "$state/graph.out")
  [ -n "$graph" ] || die "the local Graph server did not start (see $state/graph.log)"

  # The functions and the boundary in moto's default account, and in the two accounts of
  # `trustsync plan --account` (with the spoke role there).
  "$venv/bin/python" scripts/seed_demo.py "$aws" >"$state/seed.log"
  "$venv/bin/python" scripts/seed_demo.py "$aws" --account 111111111111 --account 222222222222 >>"$state/seed.log"
  "$venv/bin/python" - "$aws" "$tenant_id" >>"$state/seed.log" <<'PY'
# A role made by hand in 111111111111 that trusts the tenant's provider (reporting-etl may
# assume it): what `trustsync export` offers to adopt.
import json, sys, boto3
aws, tenant = sys.argv[1:3]
hub = boto3.session.Session(aws_access_key_id="demo", aws_secret_access_key="demo", region_name="us-east-1")
c = hub.client("sts", endpoint_url=aws).assume_role(
    RoleArn="arn:aws:iam::111111111111:role/trustsync-spoke", RoleSessionName="seed")["Credentials"]
iam = boto3.client("iam", endpoint_url=aws, region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                   aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
issuer = f"sts.windows.net/{tenant}/"
trust = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
    "Principal": {"Federated": f"arn:aws:iam::111111111111:oidc-provider/{issuer}"},
    "Condition": {"StringEquals": {f"{issuer}:aud": "api://aws-federation",
                                   f"{issuer}:sub": "5e1f0a2b-1111-4111-8111-000000000003"}}}]}
iam.create_role(RoleName="legacy-reports-export", Path="/trustsync/", AssumeRolePolicyDocument=json.dumps(trust),
                Description="made by hand, before trustsync")
print("created the hand-made role legacy-reports-export in 111111111111")
PY

  # The controller runs as a hub role (trustsync-hub in moto's default account,
  # 123456789012), as in production: its session's credentials are the environment's.
  local hub_creds
  hub_creds=$("$venv/bin/python" - "$aws" <<'PY'
import json, shlex, sys, boto3
aws = sys.argv[1]
s = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]}
s.client("iam", endpoint_url=aws).create_role(RoleName="trustsync-hub", AssumeRolePolicyDocument=json.dumps(trust))
c = s.client("sts", endpoint_url=aws).assume_role(RoleArn="arn:aws:iam::123456789012:role/trustsync-hub",
                                                  RoleSessionName="local", DurationSeconds=43200)["Credentials"]
print(" ".join(f"{k}={shlex.quote(c[v])}" for k, v in [("AWS_ACCESS_KEY_ID", "AccessKeyId"),
      ("AWS_SECRET_ACCESS_KEY", "SecretAccessKey"), ("AWS_SESSION_TOKEN", "SessionToken")]))
PY
)

  # A workload's access token (reporting-etl, for the federation audience), as
  # `trustsync check-token` reads one.
  "$venv/bin/python" - "$graph" "$tenant_id" "$state/token.jwt" <<'PY'
import json, pathlib, sys, urllib.parse, urllib.request
graph, tenant, out = sys.argv[1:4]
form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "9d0e1f2a-aaaa-4aaa-8aaa-000000000003",
                               "client_secret": "local-workload-secret-3", "scope": "api://aws-federation/.default"}).encode()
token = json.load(urllib.request.urlopen(f"{graph}/{tenant}/oauth2/v2.0/token", data=form))["access_token"]
pathlib.Path(out).write_text(token + "\n")
PY

  # The controller's config: the hub managing two accounts through their spoke roles.
  cat >"$state/trustsync.yaml" <<YAML
# Written by scripts/local-env.sh for the local environment.
audit: {path: $state/audit.jsonl}
permissionsBoundaries: [trustsync-workload-boundary]
accounts:
  targets:
    - {id: "111111111111", labels: {env: prod}}
    - {id: "222222222222", labels: {env: dev}}
guardrails:
  # The sample policies' EventBridge rule lives in the hub's account.
  invokerAccounts: ["123456789012", "111111111111", "222222222222"]
YAML

  cat >"$state/env" <<EOF
export AWS_ENDPOINT_URL=$aws AWS_REGION=us-east-1 $hub_creds
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export AZURE_TENANT_ID=$tenant_id AZURE_CLIENT_ID=3f0e8a52-7c1d-4b8e-9f6a-1c2d3e4f5a6b
export AZURE_CLIENT_SECRET=local-demo-secret-for-the-graph-server-only AZURE_AUTHORITY_HOST=$graph
export TRUSTSYNC_GRAPH_ENDPOINT=$graph/v1.0 TRUSTSYNC_CONFIG=$state/trustsync.yaml
export TRUSTSYNC_LOCAL=$state PATH="$bin_dir:\$PATH"
EOF
  echo "# moto (local AWS) at $aws and the local Graph server at $graph are running" >&2
  print_env
}

case "${1:-}" in
  start) start ;;
  env)
    running || die "not running: start it with \`make local\`"
    print_env
    ;;
  status)
    if running; then
      echo "running: moto pid $(cat "$state/moto.pid"), Graph server pid $(cat "$state/graph.pid"); state in $state"
    else
      echo "not running"
      exit 1
    fi
    ;;
  stop)
    stop
    echo "# the local environment is stopped" >&2
    ;;
  *)
    echo "usage: scripts/local-env.sh start|env|status|stop" >&2
    exit 1
    ;;
esac
