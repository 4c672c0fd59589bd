#!/usr/bin/env bash
# Installs the pinned test servers and tools (scripts/requirements-test.txt: moto, the
# Helm SDK) into a virtual environment, .venv by default (TRUSTSYNC_VENV overrides).
# Does nothing when the pinned versions are already installed, so every make target can
# call it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TRUSTSYNC_VENV:-.venv}
req=scripts/requirements-test.txt
stamp="$venv/.requirements-installed"
if [ -x "$venv/bin/moto_server" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  exit 0
fi
command -v python3 >/dev/null || { echo "setup-test-env: python3 is needed for the test servers" >&2; exit 1; }
echo "setup-test-env: installing $(grep -v '^#' "$req" | tr '\n' ' ')into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$stamp"
