#!/usr/bin/env bash
# `prodserver status` latency with 50 and 1,000 instances: the whole CLI
# (process start, config read, connect, reply, table) and, with python3,
# the bare socket round trip of a status request on an open connection.
# Prints a Markdown table for the README's Performance section.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
RUNS=${RUNS:-200}
now_ns() { date +%s%N; }
pct() { sort -n | awk '{a[NR]=$1} END {printf "p50 %.2f ms, p90 %.2f ms", a[int(NR*0.5)], a[int(NR*0.9)]}'; }

measure() { # N -> two cells: CLI, raw socket
  local n=$1
  local dir=$WORK/status$n
  mkdir -p "$dir"
  cat > "$dir/prodserver.toml" <<TOML
[prodserver]
name = "status$n"

[processes.sleeper]
backend = "command"
command = ["$CHILD", "sleep"]
instances = $n
TOML
  "$PS" start -c "$dir/prodserver.toml" > /dev/null 2>&1 &
  local pid=$!
  # Every instance ready: status exits 0.
  until "$PS" status -c "$dir/prodserver.toml" > /dev/null 2>&1; do sleep 0.1; done
  local cli raw="(python3 missing)"
  cli=$(for _ in $(seq "$RUNS"); do
    t0=$(now_ns); "$PS" status -c "$dir/prodserver.toml" > /dev/null; t1=$(now_ns)
    echo "$(( (t1 - t0) / 1000 ))" | awk '{print $1/1000}'
  done | pct)
  if command -v python3 > /dev/null; then
    raw=$(python3 - "$XDG_RUNTIME_DIR/prodserver/ctl/status$n.sock" "$RUNS" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rb")
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter(); s.sendall(b'{"v":1,"cmd":"status"}\n'); line = f.readline()
    print((time.perf_counter() - t0) * 1000)
    assert b'"ok":true' in line
PY
    )
    raw=$(echo "$raw" | pct)
  fi
  kill -TERM "$pid"; wait "$pid" || true
  echo "| status, $n instances: CLI / socket round trip | $cli / $raw | < 10 ms at 1,000 |"
}

echo "| measure | result | target |"
echo "|---|---|---|"
measure 50
measure 1000
