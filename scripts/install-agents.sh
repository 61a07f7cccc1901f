#!/usr/bin/env bash
# Install the claude-flow MCP server (npm) into <repo>/.agents/ for the real-peer tests.
#
# Idempotent and cached: a stamp file records the installed version, and when it matches
# and the CLI answers --version the script returns in well under a second. The first run
# takes about 3 minutes because better-sqlite3 is compiled from source (no prebuilt
# binaries can be downloaded here).
#
# The whole dependency tree is pinned by scripts/agents-package-lock.json: claude-flow's
# own dependencies float, and on 2026-12-06 a fresh install pulled @claude-flow/security 3.0.7, whose input validation refuses agent types the tests and
# users spawn ("coordinator", "analyst", "architect", "optimizer"). The lock is the tree the
# tests were verified against; regenerate it only with a version that passes `make test`.
#
# Environment:
#   CLAUDE_FLOW_VERSION   version to install (default below; known to work on Node 20;
#                         another version is resolved afresh, without the lock)
#   BETTER_SQLITE3_VERSION  forced for every copy in the tree (13.x needs Node >= 22 and
#                           segfaults on Node 20; one forced version also means one compile)
#   FORCE=1               reinstall even when the stamp matches
set -euo pipefail

CLAUDE_FLOW_VERSION="${CLAUDE_FLOW_VERSION:-3.43.0}"
BETTER_SQLITE3_VERSION="${BETTER_SQLITE3_VERSION:-12.9.0}"

# Locate the repository from this script's own path so any cwd works.
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
AGENTS_DIR="$REPO_ROOT/.agents"
CLI="$AGENTS_DIR/node_modules/claude-flow/bin/cli.js"
STAMP="$AGENTS_DIR/.stamp-claude-flow"
LOCK="$SCRIPT_DIR/agents-package-lock.json"
PINNED_VERSION=3.43.0  # the claude-flow version the lock was made with
if [[ "$CLAUDE_FLOW_VERSION" == "$PINNED_VERSION" ]]; then
    WANT="$CLAUDE_FLOW_VERSION+lock-$(sha256sum "$LOCK" | cut -c1-12)"  # a new lock reinstalls
else
    WANT="$CLAUDE_FLOW_VERSION"
fi
LOG="$AGENTS_DIR/install.log"

die() { echo "install-agents: error: $*" >&2; exit 1; }
say() { echo "install-agents: $*"; }

# Fast path first: nothing but a file read and one `node --version` of the CLI.
if [[ "${FORCE:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP" 2>/dev/null)" == "$WANT" ]] \
    && command -v node >/dev/null 2>&1 \
    && node "$CLI" --version >/dev/null 2>&1; then
    say "claude-flow $CLAUDE_FLOW_VERSION already installed in $AGENTS_DIR (cached)"
    exit 0
fi

command -v node >/dev/null 2>&1 || die "node is missing; install it with: apt-get install nodejs npm"
command -v npm >/dev/null 2>&1 || die "npm is missing; install it with: apt-get install nodejs npm"

node_major="$(node -p 'process.versions.node.split(".")[0]')"
(( node_major >= 18 )) || die "node $(node --version) is too old (need >= 18); install a newer nodejs"

if [[ "$(id -u)" != 0 ]]; then
    # npm itself does not need root here, but the folder and the compiler toolchain might.
    mkdir -p "$AGENTS_DIR" 2>/dev/null && [[ -w "$AGENTS_DIR" ]] \
        || die "not running as root and $AGENTS_DIR is not writable; run as root or fix its owner"
    say "note: not running as root; installing as $(id -un)"
fi

for tool in make g++ python3; do
    command -v "$tool" >/dev/null 2>&1 \
        || die "$tool is missing (better-sqlite3 compiles from source); install with: apt-get install build-essential python3"
done

mkdir -p "$AGENTS_DIR"

# Serialise concurrent runs (two CI jobs or two shells) on one lock file.
exec 9>"$AGENTS_DIR/.install.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
    # Another run may have finished while we waited.
    if [[ "${FORCE:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] \
        && node "$CLI" --version >/dev/null 2>&1; then
        say "claude-flow $CLAUDE_FLOW_VERSION installed by a concurrent run"
        exit 0
    fi
fi
rm -f "$STAMP"

# Our own package.json: the `overrides` field only applies at the root of an install.
cat >"$AGENTS_DIR/package.json" <<JSON
{
  "name": "hive-supervisor-agents",
  "private": true,
  "description": "Real peers for hive-supervisor tests; written by scripts/install-agents.sh",
  "dependencies": {
    "claude-flow": "$CLAUDE_FLOW_VERSION"
  },
  "overrides": {
    "better-sqlite3": "$BETTER_SQLITE3_VERSION"
  }
}
JSON

say "installing claude-flow $CLAUDE_FLOW_VERSION with node $(node --version), npm $(npm --version)"
say "better-sqlite3 is compiled from source: expect about 3 minutes; log: $LOG"

start=$SECONDS
if [[ "$CLAUDE_FLOW_VERSION" == "$PINNED_VERSION" ]]; then
    cp "$LOCK" "$AGENTS_DIR/package-lock.json"
    # npm install, not npm ci: the lock has no entries for other platforms' optional
    # binaries, which npm ci counts as out of sync; install keeps every locked version
    install=(npm install --no-audit --no-fund --loglevel=http)
else
    rm -f "$AGENTS_DIR/package-lock.json"
    install=(npm install --no-audit --no-fund --loglevel=http)
fi
(cd "$AGENTS_DIR" && "${install[@]}") >"$LOG" 2>&1 &
npm_pid=$!

# Heartbeat so a CI log shows the install is alive, with the newest log line as a hint.
while kill -0 "$npm_pid" 2>/dev/null; do
    sleep 10
    kill -0 "$npm_pid" 2>/dev/null || break
    last="$(tail -n 1 "$LOG" 2>/dev/null | cut -c1-100 || true)"
    say "  ... $((SECONDS - start))s: ${last:-working}"
done
if ! wait "$npm_pid"; then
    echo "---- last lines of $LOG ----" >&2
    tail -n 30 "$LOG" >&2
    die "${install[*]} failed after $((SECONDS - start))s (full log: $LOG)"
fi

installed="$(node "$CLI" --version 2>/dev/null | tr -d '\r' | tail -n 1 || true)"
[[ -n "$installed" ]] || die "claude-flow installed but '$CLI --version' does not run; see $LOG"

# The MCP server needs better-sqlite3 to load on this node; check it now, not in a test.
(cd "$AGENTS_DIR" && node -e 'const D=require("better-sqlite3"); new D(":memory:").prepare("select 1").get()') \
    || die "better-sqlite3 does not load under node $(node --version); see $LOG"

echo "$WANT" >"$STAMP"
say "done in $((SECONDS - start))s: claude-flow $installed, better-sqlite3 $(cd "$AGENTS_DIR" && node -p 'require("better-sqlite3/package.json").version')"
