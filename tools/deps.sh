#!/bin/sh
# Install every Debian 12 package rtlog needs to build, test and benchmark.
# Run as root (or through sudo). Safe to run again. chromium (+ a font) runs the browser
# tests of the UI headless (tests/integration/browser, npm playwright-core drives it);
# clang + libclang-rt-14-dev build the libFuzzer targets (tests/fuzz/, tools/fuzz.sh); the
# rest of the build uses gcc. iproute2 (`ip`) takes down the loopback of the private network
# namespace the dead-peer test (c09_netns_dead_peers) makes for itself (util-linux: unshare).
#   tools/deps.sh          install them
#   tools/deps.sh --list   print the package names (one line), install nothing
set -eu
PACKAGES="build-essential cmake pkg-config ca-certificates \
libwebsockets-dev liblmdb-dev lmdb-utils libmsgpack-dev libjansson-dev \
libjwt-dev libzstd-dev zstd libssl-dev libcmocka-dev \
curl python3 procps util-linux iproute2 \
chromium fonts-dejavu-core \
clang libclang-rt-14-dev"
if [ "${1:-}" = "--list" ]; then
    echo $PACKAGES
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends $PACKAGES
# Integration tests drive the server with Node.js clients (ws, eventsource, jose).
if ! command -v node >/dev/null 2>&1; then
    $SUDO apt-get install -y --no-install-recommends nodejs npm
fi
