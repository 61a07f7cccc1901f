#!/usr/bin/env bash
# Install the browser the console's tests drive: Debian's chromium (Playwright, from PyPI, drives
# it with executable_path; nothing here downloads a browser build). Quick no-op when present.
set -euo pipefail

say() { echo "install-browser: $*"; }
die() { echo "install-browser: error: $*" >&2; exit 1; }

if command -v chromium >/dev/null 2>&1; then
    say "chromium already installed: $(chromium --version 2>/dev/null | head -n1)"
    exit 0
fi
APT_LINE="apt-get update && apt-get install -y --no-install-recommends chromium"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install chromium by hand"
if [[ "$(id -u)" != 0 ]]; then
    echo "install-browser: not running as root; run: sudo sh -c '$APT_LINE'" >&2
    exit 1
fi
start=$SECONDS
APT_OPTS=(-o DPkg::Lock::Timeout=300)
say "apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update -qq
say "apt-get install chromium (about a minute)"
DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null 2>&1 || die "chromium still missing after apt-get install"
say "done in $((SECONDS - start))s: $(chromium --version 2>/dev/null | head -n1)"
