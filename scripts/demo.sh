#!/usr/bin/env bash
# The main job on built-in defaults: installs dependencies, builds, generates a small synthetic
# model and inspects it.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/install-deps.sh"
"$here/scripts/build.sh" -DEDGELLM_BUILD_TESTS=OFF -DEDGELLM_BUILD_BENCH=OFF
bin="${BUILD_DIR:-$here/build}/bin/edgellm"
mkdir -p "$here/out"
"$bin" synth --shape tiny -o "$here/out/tiny-f32.gguf"
"$bin" inspect "$here/out/tiny-f32.gguf"
