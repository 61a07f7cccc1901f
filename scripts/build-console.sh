#!/usr/bin/env bash
# Build the web console (console/ -> transport/console_static/) with the npm registry's three and
# esbuild, pinned by console/package-lock.json. Without node and npm it says what to install and
# exits 1: the daemon still runs, and `/` explains how to build the console.
set -euo pipefail
cd "$(dirname "$0")/../console"

say() { echo "build-console: $*"; }
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "build-console: node and npm are needed to build the console: apt-get install nodejs npm" >&2
    exit 1
fi
stamp=node_modules/.installed-$(cksum < package-lock.json | cut -d' ' -f1)
if [[ ! -f "$stamp" ]]; then
    say "npm ci (three, esbuild; first run only)"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    touch "$stamp"
fi
# skip the build when nothing changed since the last one
out=../transport/console_static/index.html
if [[ -f "$out" ]] && [[ -z "$(find src index.html style.css favicon.svg build.mjs package-lock.json -newer "$out" -print -quit)" ]]; then
    say "up to date"
    exit 0
fi
node build.mjs
