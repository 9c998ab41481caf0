#!/usr/bin/env bash
# Builds ik_llama.cpp's llama-bench (the fastest CPU fork of llama.cpp; an extra column of
# bench/compare_llama_bench.py, `--ik-bench PATH`) from a source tree you provide: ik_llama.cpp is
# not on PyPI or in Debian, so unlike scripts/build-llama-cpp.sh this script cannot fetch it.
#   scripts/build-ik-llama-cpp.sh SRC_DIR     (a checkout of github.com/ikawrakow/ik_llama.cpp)
# Same flags as our llama.cpp baseline: its defaults (-march=native), without AMX (see
# scripts/install-deps.sh), static, no server, ccache when present.
#   ${EDGELLM_IK_LLAMA_CPP_DIR:-~/.cache/edgellm/ik_llama.cpp}/bin/llama-bench
# Prints the binary's path on stdout. An existing build is kept.
set -euo pipefail
src="${1:-}"
root="${EDGELLM_IK_LLAMA_CPP_DIR:-$HOME/.cache/edgellm/ik_llama.cpp}"
bin="$root/bin/llama-bench"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
if [ -z "$src" ] || [ ! -f "$src/CMakeLists.txt" ] || [ ! -d "$src/ggml" ]; then
  echo "build-ik-llama-cpp: give the path of an ik_llama.cpp source tree (CMakeLists.txt and ggml/ in it)" >&2
  exit 2
fi
. "$(dirname "$0")/lib-llama-cmake.sh"
echo "build-ik-llama-cpp: building llama-bench (ik_llama.cpp's iqk kernels take a long time on 2 cores)" >&2
cmake -S "$src" -B "$root/build" "${llama_cmake_args[@]}" -DLLAMA_BUILD_SERVER=OFF >&2
cmake --build "$root/build" -j "$(nproc)" --target llama-bench >&2
mkdir -p "$root/bin"
cp "$root/build/bin/llama-bench" "$root/bin/"
echo "$bin"
