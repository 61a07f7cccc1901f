#!/usr/bin/env bash
# Install podman and what its Docker-compatible API needs on Debian 12, for the real-peer
# tests (tests/peers/). Quick no-op when everything is already there.
#
# runc: crun fails here with "cgroups in hybrid mode not supported".
# busybox-static: images are built locally from a busybox rootfs (no registry is reachable).
# catatonit/conmon/uidmap/fuse-overlayfs/slirp4netns: podman's runtime helpers.
set -euo pipefail

PACKAGES=(podman runc conmon catatonit uidmap fuse-overlayfs slirp4netns busybox-static)
say() { echo "install-podman: $*"; }
die() { echo "install-podman: error: $*" >&2; exit 1; }

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
else
    command -v podman >/dev/null 2>&1 || missing+=(podman)
fi
for cmd in unshare setsid; do  # util-linux; the service is started inside a PID namespace
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd (util-linux)")
done
if (( ${#missing[@]} == 0 )); then
    say "podman $(dpkg-query -W -f='${Version}' podman 2>/dev/null || echo '(version unknown)') already installed"
    exit 0
fi

say "missing: ${missing[*]}"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install these packages by hand: ${PACKAGES[*]}"
[[ "$(id -u)" == 0 ]] || die "not running as root; run: sudo apt-get update && sudo apt-get install -y ${PACKAGES[*]}"

start=$SECONDS
say "apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get update -qq
say "apt-get install ${PACKAGES[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
command -v podman >/dev/null 2>&1 || die "podman still missing after apt-get install"
say "done in $((SECONDS - start))s: $(podman --version)"
