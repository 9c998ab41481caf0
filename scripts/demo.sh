#!/usr/bin/env bash
# The main job on built-in defaults: installs dependencies, builds, and benchmarks the native
# engine on a synthetic model it generates (cached in ~/.cache/edgellm), writing the console
# table and an HTML dashboard to out/edgellm-bench.html.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/install-deps.sh"
"$here/scripts/build.sh" -DEDGELLM_BUILD_TESTS=OFF -DEDGELLM_BUILD_BENCH=OFF
bin="${BUILD_DIR:-$here/build}/bin/edgellm"
mkdir -p "$here/out"
cd "$here/out"
"$bin" bench "$@"
echo "report: $here/out/edgellm-bench.html"
