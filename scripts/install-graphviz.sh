#!/usr/bin/env bash
# Install graphviz (Debian's): its sfdp is one of the reference layouts the live layout is judged
# against, in the quality tests and the bench (bench/layouts.py). Quick no-op when present.
set -euo pipefail
source "$(dirname "$0")/apt.sh"

say() { echo "install-graphviz: $*"; }
die() { echo "install-graphviz: error: $*" >&2; exit 1; }

if command -v sfdp >/dev/null 2>&1; then
    say "sfdp already installed: $(sfdp -V 2>&1 | head -n1)"
    exit 0
fi
start=$SECONDS
apt_install install-graphviz graphviz
command -v sfdp >/dev/null 2>&1 || die "sfdp still missing after apt-get install"
say "done in $((SECONDS - start))s: $(sfdp -V 2>&1 | head -n1)"
