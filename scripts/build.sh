#!/usr/bin/env bash
# Configures and builds edgellm into ${BUILD_DIR:-build} (Release). Extra args go to cmake: they
# configure a new build directory, and re-configure an existing one (so `test.sh` can turn tests
# back on in a directory that was configured without them).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$here/build}"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$here" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "$@"
elif [ "$#" -gt 0 ]; then
  cmake -S "$here" -B "$build" "$@" >/dev/null
fi
# BUILD_TARGETS="a b" limits the build to those targets.
cmake --build "$build" -j "$(nproc)" ${BUILD_TARGETS:+--target $BUILD_TARGETS}
