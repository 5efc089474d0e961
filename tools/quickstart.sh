#!/bin/sh
# Fresh Debian 12 to a running rtlog: install packages, build (Release), start the server on
# its embedded default data directory ./rtlog-data (listening on 127.0.0.1:8080).
# Extra arguments are passed to `rtlog serve` (e.g. --listen 127.0.0.1:9090).
set -eu
cd "$(dirname "$0")/.."
sh tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
exec ./build/tools/rtlog serve "$@"
