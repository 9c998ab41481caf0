# Helpers shared by the server benchmark scripts (sourced, not run).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() {  # url pid: waits until the server at url answers /health (120 s), or its process exits
  for _ in $(seq 1 600); do
    kill -0 "$2" 2>/dev/null || { echo "server exited" >&2; return 1; }
    curl -sf "$1/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server did not come up" >&2; return 1
}
