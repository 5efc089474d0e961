#!/bin/sh
# Install every Debian 12 package rtlog needs to build, test and benchmark.
# Run as root (or through sudo). Safe to run again. chromium (+ a font) runs the browser
# tests of the UI headless (tests/integration/browser, npm playwright-core drives it);
# clang + libclang-rt-14-dev build the libFuzzer targets (tests/fuzz/, tools/fuzz.sh); the
# rest of the build uses gcc. iproute2 (`ip`) takes down the loopback of the private network
# namespace the dead-peer test (c09_netns_dead_peers) makes for itself (util-linux: unshare).
# nginx-light: c07_nginx runs the stream through a real nginx that it starts itself (temp
# prefix, loopback port); no nginx service is started by the install (see below).
#   tools/deps.sh          install them
#   tools/deps.sh --list   print the package names (one line), install nothing
set -eu
PACKAGES="build-essential cmake pkg-config ca-certificates \
libwebsockets-dev liblmdb-dev lmdb-utils libmsgpack-dev libjansson-dev \
libjwt-dev libzstd-dev zstd libssl-dev libcmocka-dev \
curl python3 procps util-linux iproute2 \
chromium fonts-dejavu-core \
clang libclang-rt-14-dev \
nginx-light"
if [ "${1:-}" = "--list" ]; then
    echo $PACKAGES
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# nginx's postinst would start Debian's nginx service on port 80 (invoke-rc.d nginx start;
# deb-systemd-invoke on systemd). A policy-rc.d that denies every action (exit 101, see
# invoke-rc.d(8)) stands for this install only, unless the machine has one of its own
# (container images do; then nothing is started either). Without systemd and without a
# readable runlevel invoke-rc.d would not start it anyway; this covers the other machines.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# put here by rtlog tools/deps.sh for one apt-get install\nexit 101\n' |
        $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    trap '$SUDO rm -f "$POLICY"' EXIT
    trap 'exit 130' INT TERM
fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends $PACKAGES
# Integration tests drive the server with Node.js clients (ws, eventsource, jose).
if ! command -v node >/dev/null 2>&1; then
    $SUDO apt-get install -y --no-install-recommends nodejs npm
fi
