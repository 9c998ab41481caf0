#!/usr/bin/env bash
# Concurrency sweep of `edgellm serve` (continuous batching) and, when a llama-server binary is
# given, of llama-server on the same GGUF with the same threads and parallel slots, both measured
# by `edgellm bench --backends openai --concurrency ...` (greedy, fixed output length).
#   scripts/bench-server.sh MODEL.gguf [LLAMA_SERVER_BINARY]
# Env: THREADS (2), PARALLEL (4), CONC (1,2,4,8), N (64), RUNS (2), CTX (4096), OUT (out/server-bench).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:?usage: $0 MODEL.gguf [llama-server]}"
llama_server="${2:-}"
bin="${EDGELLM_BIN:-$here/build/bin/edgellm}"
threads="${THREADS:-2}" parallel="${PARALLEL:-4}" conc="${CONC:-1,2,4,8}" n="${N:-64}" runs="${RUNS:-2}"
ctx="${CTX:-4096}" out="${OUT:-$here/out/server-bench}"
mkdir -p "$out"
name="$(basename "$model" .gguf)"

. "$here/scripts/lib-server.sh"
sweep() {  # label url
  "$bin" bench --backends openai --url "$2/v1" -m "$name" --concurrency "$conc" -n "$n" --runs "$runs" \
    --temp 0 -q --json "$out/$1.json" --md "$out/$1.md" | tee "$out/$1.txt"
}

port=$(free_port)
"$bin" serve -m "$model" --port "$port" -t "$threads" --parallel "$parallel" -c "$ctx" 2>"$out/edgellm-serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_up "http://127.0.0.1:$port" "$pid"
echo "== edgellm serve (--parallel $parallel, -t $threads) =="
sweep edgellm "http://127.0.0.1:$port"
kill "$pid"; wait "$pid" || true

if [ -n "$llama_server" ]; then
  port=$(free_port)
  # -c is split across the slots by llama-server: give each slot the same context as above.
  "$llama_server" -m "$model" --port "$port" -t "$threads" -tb "$threads" --parallel "$parallel" -cb \
    -c $((ctx * parallel)) --alias "$name" 2>"$out/llama-server.log" &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  wait_up "http://127.0.0.1:$port" "$pid"
  echo "== llama-server (--parallel $parallel -cb, -t $threads) =="
  sweep llama-server "http://127.0.0.1:$port"
  kill "$pid"; wait "$pid" || true
fi
