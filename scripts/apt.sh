# Sourced by the install-*.sh scripts: install Debian packages the one way they all do.
# apt_install NAME PACKAGE...: NAME prefixes the messages. Not root: print the command to run
# and exit 1. Waits up to 300 s for another installer's dpkg lock.

apt_install() {
    local name=$1
    shift
    local line="apt-get update && apt-get install -y --no-install-recommends $*"
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$name: error: apt-get not found; install $* by hand" >&2
        exit 1
    fi
    if [[ "$(id -u)" != 0 ]]; then
        echo "$name: not running as root; run: sudo sh -c '$line'" >&2
        exit 1
    fi
    local opts=(-o DPkg::Lock::Timeout=300)
    echo "$name: apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" update -qq
    echo "$name: apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}
