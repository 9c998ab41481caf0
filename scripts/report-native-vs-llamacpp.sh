#!/usr/bin/env bash
# Native engine vs llama.cpp on the same synthetic model: llama.cpp through llama-cpp-python's
# OpenAI-compatible server (`python3 -m llama_cpp.server`, the `openai` backend) and through the
# in-process `llama_cpp_python` worker. Writes out/cmp.{txt,json,html} and a headless-Chromium
# screenshot out/cmp.png. Needs a built edgellm (EDGELLM_BIN or build/bin/edgellm),
# llama-cpp-python[server] and chromium.
# Settings (environment): SYNTH_SHAPE (small) SYNTH_TYPE (q4_0) RUNS (3) N_GEN (32)
# THREADS (nproc) N_CTX (2048) OUT_DIR (out) BACKENDS ("native openai llama_cpp_python").
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${EDGELLM_BIN:-${BUILD_DIR:-$here/build}/bin/edgellm}"
out="${OUT_DIR:-$here/out}"
shape="${SYNTH_SHAPE:-small}"
type="${SYNTH_TYPE:-q4_0}"
runs="${RUNS:-3}"
n_gen="${N_GEN:-32}"
threads="${THREADS:-$(nproc)}"
n_ctx="${N_CTX:-2048}"
read -r -a backends <<<"${BACKENDS:-native openai llama_cpp_python}"
python="${EDGELLM_PYTHON:-python3}"
chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"

[ -x "$bin" ] || { echo "edgellm not found at $bin (build it, or set EDGELLM_BIN)" >&2; exit 1; }
"$python" -c "import llama_cpp.server" 2>/dev/null ||
    { echo "llama-cpp-python[server] missing: pip install 'llama-cpp-python[server]'" >&2; exit 1; }
mkdir -p "$out/cache"

# The model, generated once: same bytes for both engines.
model="$out/cache/synth-$shape-$type.gguf"
if [ ! -f "$model" ]; then
    echo "generating $model" >&2
    "$bin" synth --shape "$shape" --type "$type" -o "$model.tmp" -q
    mv "$model.tmp" "$model"
fi

# llama-cpp-python's server on a free local port, with the same threads and context as native.
port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port/v1"
"$python" -m llama_cpp.server --model "$model" --host 127.0.0.1 --port "$port" --n_ctx "$n_ctx" \
    --n_threads "$threads" --n_threads_batch "$threads" --model_alias synth >"$out/llama-cpp-server.log" 2>&1 &
server=$!
stop_server() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}
trap stop_server EXIT
for _ in $(seq 1 240); do
    if ! kill -0 "$server" 2>/dev/null; then
        echo "llama_cpp.server exited; its log:" >&2
        tail -20 "$out/llama-cpp-server.log" >&2
        exit 1
    fi
    "$python" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1] + '/models', timeout=2)" "$url" \
        2>/dev/null && break
    sleep 0.5
done

# The bench finds the server's process through its port, so its memory and CPU are the server's.
"$bin" bench --backends "${backends[@]}" --url "$url" --served-model openai=synth -m "$model" \
    --runs "$runs" -n "$n_gen" -t "$threads" -c "$n_ctx" \
    --json "$out/cmp.json" --html "$out/cmp.html" | tee "$out/cmp.txt"
stop_server
trap - EXIT

if [ -n "$chromium" ]; then
    "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
        --user-data-dir="$out/.chromium-profile" --window-size=1280,4300 \
        --screenshot="$out/cmp.png" "file://$out/cmp.html" 2>/dev/null
    echo "screenshot: $out/cmp.png"
else
    echo "chromium not found: no screenshot (apt-get install chromium)" >&2
fi
echo "report: $out/cmp.html"
