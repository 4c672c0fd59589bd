#!/usr/bin/env bash
# Installs what the tests need beyond cargo, and does nothing for what is already there,
# so that every make target can call it:
# - the pinned test servers and tools (scripts/requirements-test.txt: moto, the Helm SDK)
#   in a virtual environment, .venv by default (TRUSTSYNC_VENV overrides);
# - the chart scanners (scripts/requirements-scan.txt: kubernetes-validate, checkov) in a
#   second one beside it, <venv>-scan;
# - podman and runc for the image test (tests/image.rs), from Debian when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TRUSTSYNC_VENV:-.venv}

# install_venv DIR REQUIREMENTS [CHECK]: DIR holds exactly REQUIREMENTS afterwards.
install_venv() {
  local dir=$1 req=$2 check=$3 stamp="$1/.requirements-installed"
  if [ -x "$dir/bin/$check" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
    return 0
  fi
  command -v python3 >/dev/null || { echo "setup-test-env: python3 is needed for the test servers" >&2; exit 1; }
  echo "setup-test-env: installing $(grep -v '^#' "$req" | tr '\n' ' ')into $dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
}
install_venv "$venv" scripts/requirements-test.txt moto_server
install_venv "$venv-scan" scripts/requirements-scan.txt checkov

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup-test-env: installing podman and runc from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null
  else
    echo "setup-test-env: the image test needs podman and runc; install them (Debian: apt-get install podman runc)" >&2
    exit 1
  fi
fi
