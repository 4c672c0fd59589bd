#!/usr/bin/env bash
# Builds trustsync's container image with podman from the Containerfile.
#
#   scripts/build-image.sh [--binary PATH] [--base IMAGE | --local-base] [--tag TAG]
#
# --binary      the trustsync binary to package (default: a release build, made now)
# --base        the base image (default: the Containerfile's, distroless cc, from a registry)
# --local-base  no registry: assemble the base from this machine's files instead (the
#               libraries the binary links, CA certificates, a user 65532) and use it
# --tag         the image's name (default: localhost/trustsync:<version>)
#
# PODMAN_RUNTIME picks podman's OCI runtime (default runc: crun does not start on every
# machine this runs on). Prints the image id on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

binary="" base="" local_base=false tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --base) base=$2; shift 2 ;;
    --local-base) local_base=true; shift ;;
    --tag) tag=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v podman >/dev/null || { echo "build-image: podman is needed (Debian: apt-get install podman runc)" >&2; exit 1; }
runtime=(--runtime "${PODMAN_RUNTIME:-runc}")

if [ -z "$binary" ]; then
  cargo build --locked --release --bin trustsync
  binary=target/release/trustsync
fi
[ -x "$binary" ] || { echo "build-image: $binary is not an executable" >&2; exit 1; }
version=$("$binary" --version | awk '{print $2}')
tag=${tag:-localhost/trustsync:$version}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if $local_base; then
  # The base, from this machine: the dynamic loader and the libraries the binary links
  # (glibc, libgcc), the CA bundle, and the same users as distroless (root, nonroot 65532).
  root=$work/base
  mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
  ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
    while read -r lib; do cp --parents -L "$lib" "$root"; done
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  chown 65532:65532 "$root/home/nonroot" 2>/dev/null || true
  base=localhost/trustsync-base:local
  tar --numeric-owner -C "$root" -c . | podman import --quiet - "$base" >/dev/null
fi

# The context is the binary alone.
mkdir "$work/context"
install -m 0555 "$binary" "$work/context/trustsync"
build_args=()
[ -n "$base" ] && build_args=(--build-arg "BASE=$base")
podman build "${runtime[@]}" --quiet --file Containerfile "${build_args[@]}" --tag "$tag" "$work/context" >/dev/null
echo "build-image: $tag ($(podman image inspect --format '{{.Size}}' "$tag") bytes)" >&2
podman image inspect --format '{{.Id}}' "$tag"
