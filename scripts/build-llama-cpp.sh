#!/usr/bin/env bash
# Builds llama.cpp's own tools — llama-server (a real peer for the llama_cpp backend's tests) and
# llama-bench (the speed baseline) — from the llama.cpp that the pinned llama-cpp-python sdist
# vendors (PyPI is the only source this project reaches), with llama.cpp's default flags
# (-march=native, repacked weights) but without AMX, for the reason scripts/install-deps.sh gives.
# ccache is used when present, so a second build is quick.
#   ${EDGELLM_LLAMA_CPP_DIR:-~/.cache/edgellm/llama.cpp-$VERSION}/bin/{llama-server,llama-bench}
# Prints the bin folder on stdout. Safe to run again: an existing build is kept.
set -euo pipefail
version="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
root="${EDGELLM_LLAMA_CPP_DIR:-$HOME/.cache/edgellm/llama.cpp-$version}"
py="${PYTHON:-python3}"
bin="$root/bin"
if [ -x "$bin/llama-server" ] && [ -x "$bin/llama-bench" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$root"
if [ ! -f "$root/src/CMakeLists.txt" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "build-llama-cpp: downloading the llama-cpp-python $version sdist (it vendors llama.cpp)" >&2
  "$py" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$version" >&2
  tar xzf "$tmp"/llama_cpp_python-"$version".tar.gz -C "$tmp"
  rm -rf "$root/src"
  mv "$tmp/llama_cpp_python-$version/vendor/llama.cpp" "$root/src"
fi
. "$(dirname "$0")/lib-llama-cmake.sh"
echo "build-llama-cpp: building llama-server and llama-bench (several minutes on 2 cores)" >&2
cmake -S "$root/src" -B "$root/build" "${llama_cmake_args[@]}" -DLLAMA_BUILD_EXAMPLES=OFF >&2
cmake --build "$root/build" -j "$(nproc)" --target llama-server llama-bench >&2
mkdir -p "$bin"
cp "$root/build/bin/llama-server" "$root/build/bin/llama-bench" "$bin/"
echo "$bin"
