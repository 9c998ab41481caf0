#!/usr/bin/env bash
# Installs what edgellm needs on Debian/Ubuntu: build tools and libraries (apt), and with
# --test the Python test oracles (pip). Safe to run again; skips what is already there.
set -euo pipefail
want_test=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
  esac
done

pkgs=(build-essential cmake ninja-build pkg-config git
      libcli11-dev nlohmann-json3-dev libcpp-httplib-dev libfmt-dev libpcre2-dev libutf8proc-dev
      libgtest-dev libgmock-dev libbenchmark-dev libomp-dev ccache)
if [ "$want_test" = 1 ]; then
  pkgs+=(clang-14 libclang-rt-14-dev python3 python3-pip chromium)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "$want_test" = 1 ]; then
  here="$(cd "$(dirname "$0")/.." && pwd)"
  py="${PYTHON:-python3}"
  if ! "$py" -c "import gguf, numpy, pytest, jinja2, llama_cpp, openai, ollama, requests, tokenizers, jsonschema" 2>/dev/null; then
    echo "install-deps: installing Python test oracles (llama-cpp-python builds llama.cpp: several minutes)"
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$py" -m pip install -q -r "$here/tests/python/requirements.txt"
  fi
fi
