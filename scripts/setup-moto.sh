#!/usr/bin/env bash
# Installs the pinned moto server (scripts/requirements-moto.txt) into a virtual
# environment, .venv by default (TRUSTSYNC_VENV overrides). Does nothing when the
# pinned version is already installed, so every make target can call it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TRUSTSYNC_VENV:-.venv}
req=scripts/requirements-moto.txt
stamp="$venv/.requirements-installed"
if [ -x "$venv/bin/moto_server" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  exit 0
fi
command -v python3 >/dev/null || { echo "setup-moto: python3 is needed for the moto test server" >&2; exit 1; }
echo "setup-moto: installing $(grep -v '^#' "$req" | tr '\n' ' ')into $venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
cp "$req" "$stamp"
