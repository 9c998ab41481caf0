#!/usr/bin/env bash
# Multi-turn chat TTFT (each request resends the whole history, as chat UIs do) on `edgellm serve`
# with its prefix cache, without it (--no-prefix-cache), and, when a binary is given, on
# llama-server with its slot prompt cache (on by default), all measured by
# `edgellm bench --backends openai --chat-turns TURNS` on the same GGUF, threads and context.
#   scripts/bench-multiturn.sh MODEL.gguf [LLAMA_SERVER_BINARY]
# Env: THREADS (2), TURNS (8), N (48), RUNS (3), CTX (4096), OUT (out/multiturn-bench).
# Run it on an idle machine: llama.cpp's spinning threads collapse when another process runs.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
model="${1:?usage: $0 MODEL.gguf [llama-server]}"
llama_server="${2:-}"
bin="${EDGELLM_BIN:-$here/build/bin/edgellm}"
threads="${THREADS:-2}" turns="${TURNS:-8}" n="${N:-48}" runs="${RUNS:-3}" ctx="${CTX:-4096}"
out="${OUT:-$here/out/multiturn-bench}"
mkdir -p "$out"
name="$(basename "$model" .gguf)"
. "$here/scripts/lib-server.sh"

pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null || true' EXIT
measure() {  # label url
  "$bin" bench --backends openai --url "$2/v1" -m "$name" --chat-turns "$turns" -n "$n" --runs "$runs" \
    --temp 0 -q --md "$out/$1.md" | tee "$out/$1.txt"
}
serve_edgellm() {  # label [extra flags]
  local label="$1"; shift
  local port; port=$(free_port)
  "$bin" serve -m "$model" --port "$port" -t "$threads" --parallel 1 -c "$ctx" "$@" 2>"$out/$label.log" &
  pid=$!
  wait_up "http://127.0.0.1:$port" "$pid"
  echo "== edgellm serve $* (-t $threads --parallel 1 -c $ctx) =="
  measure "$label" "http://127.0.0.1:$port"
  kill "$pid"; wait "$pid" || true; pid=""
}

serve_edgellm edgellm-cache
serve_edgellm edgellm-nocache --no-prefix-cache
if [ -n "$llama_server" ]; then
  port=$(free_port)
  "$llama_server" -m "$model" --port "$port" -t "$threads" -tb "$threads" -np 1 -c "$ctx" --alias "$name" \
    2>"$out/llama-server.log" &
  pid=$!
  wait_up "http://127.0.0.1:$port" "$pid"
  echo "== llama-server (-np 1, -t $threads -c $ctx, slot prompt cache) =="
  measure llama-server "http://127.0.0.1:$port"
  kill "$pid"; wait "$pid" || true; pid=""
fi
