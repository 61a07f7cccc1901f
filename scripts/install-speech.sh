#!/usr/bin/env bash
# Install the offline speech engines on Debian: espeak-ng (text to speech) and sox (the tests
# convert sample rates with it). pocketsphinx (speech to text) is a Python dependency in
# setup.cfg, not a system package. Quick no-op when both are already there.
set -euo pipefail

PACKAGES=(espeak-ng sox)
say() { echo "install-speech: $*"; }
die() { echo "install-speech: error: $*" >&2; exit 1; }

missing=()
for pkg in "${PACKAGES[@]}"; do
    command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if (( ${#missing[@]} == 0 )); then
    say "espeak-ng and sox already installed"
    exit 0
fi

say "missing: ${missing[*]}"
APT_LINE="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install these packages by hand: ${missing[*]}"
if [[ "$(id -u)" != 0 ]]; then
    echo "install-speech: not running as root; run: sudo sh -c '$APT_LINE'" >&2
    exit 1
fi

start=$SECONDS
# Another installer (scripts/install-podman.sh) may hold the dpkg lock: wait for it.
APT_OPTS=(-o DPkg::Lock::Timeout=300)
say "apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update -qq
say "apt-get install ${missing[*]}"
DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for cmd in "${missing[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after apt-get install"
done
say "done in $((SECONDS - start))s: $(espeak-ng --version | head -n1); $(sox --version)"
