#!/usr/bin/env bash
# One command for the whole test suite on a fresh machine: installs dependencies and test
# oracles, builds, and runs every test (unit, kernels, model, e2e, fuzz corpus, Python oracles).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/install-deps.sh" --test
"$here/scripts/build.sh"
cd "${BUILD_DIR:-$here/build}"
ctest --output-on-failure -j "$(nproc)" "$@"
