# Sourced by scripts/serve and scripts/test: installs Debian packages when a command needs them.
# `install PACKAGE…` runs apt-get (through sudo when not root) without questions; the package
# index is refreshed once per run.

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
updated=""
install() {
    echo "installing $* from the system packages" >&2
    [ -n "$updated" ] || $sudo apt-get update -qq
    updated=1
    $sudo env DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y -qq \
        -o Dpkg::Options::=--force-confold "$@" >/dev/null
}
