#!/usr/bin/env bash
# Zero-downtime restarts under load: the Django example (GET /healthz/,
# which queries its SQLite database) under gunicorn and under uvicorn,
# 2 workers each, loaded by `wrk -t2 -c20` for DURATION seconds:
#   - with the socket held by prodserver, no restart (the baseline);
#   - held, with `prodserver restart web` RESTARTS times during the load
#     (each waits until done; they are spread over the run);
#   - `hold_socket = false` (the server binds its own socket, restarts
#     replace it), with the same restarts;
#   - one more uvicorn run with keep-alive connections (not counted).
# Requests carry `Connection: close`: every request is a new connection,
# so each one goes through the accept queue the switch must not drop.
# Prints markdown table rows. Exits 1 when a held-socket run has any
# failed request (non-2xx, connect/read/write error, timeout) or a restart
# failed.
#   bash bench/zero-downtime.sh
# Environment: VENV (a venv with the example's requirements; default
# examples/django-celery/.venv, built by its bin/setup-venv when missing),
# DURATION (20), RESTARTS (5), PRODSERVER (a prodserver binary to use
# instead of building the release one: prodserver is not on the request
# path, it only holds the socket and runs the restarts).
set -euo pipefail
if ! command -v wrk >/dev/null; then
  echo "zero-downtime: wrk is not installed: apt-get install wrk" >&2
  exit 1
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION=${DURATION:-20}
RESTARTS=${RESTARTS:-5}
EXAMPLE=$PWD/examples/django-celery
LUA=$PWD/bench/zero-downtime.lua
if [ -z "${VENV:-}" ]; then
  VENV=$EXAMPLE/.venv
  python3 "$EXAMPLE/bin/setup-venv"
fi
for tool in gunicorn uvicorn; do
  if [ ! -x "$VENV/bin/$tool" ]; then
    echo "zero-downtime: $VENV has no $tool (pip install -r $EXAMPLE/requirements.txt)" >&2
    exit 1
  fi
done
if [ -n "${PRODSERVER:-}" ]; then
  PS=$PRODSERVER
else
  cargo build --release --quiet --bin prodserver
  PS=$PWD/target/release/prodserver
fi
WORK=$(mktemp -d)
export XDG_RUNTIME_DIR=$WORK/rt NO_COLOR=1
mkdir -p "$XDG_RUNTIME_DIR"
SUPERVISOR=
cleanup() {
  if [ -n "$SUPERVISOR" ]; then kill -TERM "$SUPERVISOR" 2>/dev/null || true; wait "$SUPERVISOR" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

# Waits (up to 120 s) until FILE has a line containing TEXT, while the
# supervisor lives.
wait_line() {
  local deadline=$(($(now_ms) + 120000))
  until grep -qE -- "$2" "$1" 2>/dev/null; do
    if ! kill -0 "$SUPERVISOR" 2>/dev/null || [ "$(now_ms)" -gt "$deadline" ]; then
      echo "zero-downtime: no \"$2\" in $1:" >&2
      cat "$1" >&2
      exit 1
    fi
    sleep 0.05
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

FAILED=0

# SERVER HOLD(true|false) RESTARTS [keep-alive]
run_case() {
  local server=$1 hold=$2 restarts=$3 keepalive=${4:-}
  local dir=$WORK/$server-$hold-$restarts$keepalive port args app
  local header=(-H "Connection: close")
  [ -n "$keepalive" ] && header=()
  port=$(free_port)
  mkdir -p "$dir/var"
  if [ "$server" = gunicorn ]; then
    app=shop.wsgi:application
    args="{ bind = \"127.0.0.1:$port\", workers = 2 }"
  else
    app=shop.asgi:application
    args="{ host = \"127.0.0.1\", port = $port, workers = 2, no-access-log = true }"
  fi
  cat > "$dir/prodserver.toml" <<TOML
[processes.web]
backend = "$server"
app = "$app"
program = "$VENV/bin/$server"
cwd = "$EXAMPLE"
args = $args
env = { SHOP_VAR_DIR = "$dir/var", SHOP_LOG_LEVEL = "WARNING" }
health = { http = "http://127.0.0.1:$port/healthz/", start_timeout = "60s" }
hold_socket = $hold
stop_timeout = "20s"
TOML
  (cd "$dir" && exec "$PS" start) > "$dir/out" 2>&1 &
  SUPERVISOR=$!
  wait_line "$dir/out" '^web\.1 *\| ready'
  local start wrk_pid i due done_at=0 restart_failures=0
  start=$(now_ms)
  wrk -t2 -c20 -d"${DURATION}s" --timeout 5s "${header[@]}" -s "$LUA" "http://127.0.0.1:$port/healthz/" > "$dir/wrk" 2>&1 &
  wrk_pid=$!
  for i in $(seq 1 "$restarts"); do
    # Restart i at i/(restarts+1) of the run, or as soon as the previous
    # one is done.
    due=$((start + i * DURATION * 1000 / (restarts + 1)))
    while [ "$(now_ms)" -lt "$due" ]; do sleep 0.05; done
    if ! (cd "$dir" && "$PS" restart web) >> "$dir/restarts" 2>&1; then
      restart_failures=$((restart_failures + 1))
    fi
    done_at=$(now_ms)
  done
  wait "$wrk_pid"
  local end result
  end=$(now_ms)
  result=$(grep '^RESULT' "$dir/wrk") || { cat "$dir/wrk" >&2; exit 1; }
  kill -TERM "$SUPERVISOR"
  wait "$SUPERVISOR" || true
  SUPERVISOR=
  # RESULT requests=N non2xx=N connect=N read=N write=N timeout=N p50_ms=X p99_ms=Y
  local requests non2xx connect read write timeout p50_ms p99_ms
  eval "$(echo "${result#RESULT }" | tr ' ' '\n' | sed 's/^/local /')"
  # shellcheck disable=SC2154 # set by the eval above
  local errors=$((non2xx + connect + read + write + timeout))
  local label="held"
  [ "$hold" = false ] && label="own (hold_socket = false)"
  [ -n "$keepalive" ] && label="$label, keep-alive"
  local late=""
  if [ "$restarts" -gt 0 ] && [ "$done_at" -gt "$end" ]; then
    late=" (the last restart ended after the load)"
  fi
  printf '| %s | %s | %s | %s | %s | %s/%s/%s/%s | %s | %s | %s |\n' \
    "$server" "$label" "$restarts$late" "$requests" "$non2xx" \
    "$connect" "$read" "$write" "$timeout" "$p50_ms" "$p99_ms" "$errors"
  if [ "$hold" = true ] && [ -z "$keepalive" ] && { [ "$errors" -gt 0 ] || [ "$restart_failures" -gt 0 ] || [ -n "$late" ]; }; then
    echo "zero-downtime: FAILED: $server with a held socket: $errors failed requests, $restart_failures failed restarts$late" >&2
    cat "$dir/restarts" >&2 2>/dev/null || true
    FAILED=1
  fi
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), Linux $(uname -r)"
echo "load: wrk -t2 -c20 -d${DURATION}s GET /healthz/; restarts: prodserver restart web x$RESTARTS"
echo
echo "| server | socket | restarts | requests | non-2xx | socket errors connect/read/write/timeout | p50 ms | p99 ms | failed |"
echo "|---|---|---|---|---|---|---|---|---|"
for server in gunicorn uvicorn; do
  run_case "$server" true 0
  run_case "$server" true "$RESTARTS"
  run_case "$server" false "$RESTARTS"
done
# Informational: with keep-alive, a stopping uvicorn closes its idle
# keep-alive connections, and wrk (unlike browsers and most HTTP clients,
# which retry an idempotent request on a connection closed under it)
# counts the request it had just sent on each as a read error.
run_case uvicorn true "$RESTARTS" keep-alive
exit "$FAILED"
