#!/usr/bin/env bash
# Install graphviz (Debian's): its sfdp is one of the reference layouts the live layout is judged
# against, in the quality tests and the bench (bench/layouts.py). Quick no-op when present.
set -euo pipefail

say() { echo "install-graphviz: $*"; }
die() { echo "install-graphviz: error: $*" >&2; exit 1; }

if command -v sfdp >/dev/null 2>&1; then
    say "sfdp already installed: $(sfdp -V 2>&1 | head -n1)"
    exit 0
fi
APT_LINE="apt-get update && apt-get install -y --no-install-recommends graphviz"
command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install graphviz by hand"
if [[ "$(id -u)" != 0 ]]; then
    echo "install-graphviz: not running as root; run: sudo sh -c '$APT_LINE'" >&2
    exit 1
fi
start=$SECONDS
APT_OPTS=(-o DPkg::Lock::Timeout=300)
say "apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update -qq
say "apt-get install graphviz"
DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends graphviz >/dev/null
command -v sfdp >/dev/null 2>&1 || die "sfdp still missing after apt-get install"
say "done in $((SECONDS - start))s: $(sfdp -V 2>&1 | head -n1)"
