#!/usr/bin/env bash
# Install the browser the console's tests drive: Debian's chromium (Playwright, from PyPI, drives
# it with executable_path; nothing here downloads a browser build). Quick no-op when present.
set -euo pipefail
source "$(dirname "$0")/apt.sh"

say() { echo "install-browser: $*"; }
die() { echo "install-browser: error: $*" >&2; exit 1; }

if command -v chromium >/dev/null 2>&1; then
    say "chromium already installed: $(chromium --version 2>/dev/null | head -n1)"
    exit 0
fi
start=$SECONDS
apt_install install-browser chromium
command -v chromium >/dev/null 2>&1 || die "chromium still missing after apt-get install"
say "done in $((SECONDS - start))s: $(chromium --version 2>/dev/null | head -n1)"
