#!/usr/bin/env bash
# One command for the whole test suite on a fresh machine: installs dependencies, test oracles and
# the real test models, builds (with tests and benchmarks on, whatever the build directory was
# configured with before, e.g. by demo.sh), and runs every test (unit, kernels, model, e2e, fuzz
# corpus, Python oracles). Fails when CTest finds no test to run.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/install-deps.sh" --test
"$here/scripts/build.sh" -DEDGELLM_BUILD_TESTS=ON -DEDGELLM_BUILD_BENCH=ON -DEDGELLM_BUILD_TOOLS=ON
cd "${BUILD_DIR:-$here/build}"
ctest --output-on-failure --no-tests=error -j "$(nproc)" "$@"
