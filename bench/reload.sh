#!/usr/bin/env bash
# `prodserver dev` reload latency: from a file's save to the restarted
# instance spawned, and to it being ready, with inotify and with --poll.
# The child is `sh` (ready when it prints "up"), so the figures are
# prodserver's own: debounce, stop, spawn. Prints markdown table rows.
#   bash bench/reload.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
ROUNDS=${ROUNDS:-20}

# Epoch milliseconds of the Nth line (1-based) matching PATTERN in FILE,
# from its --timestamps prefix.
at() {
  local ts
  ts=$(grep -- "$1" "$2" | sed -n "$3p" | cut -d' ' -f1)
  date -d "$ts" +%s%3N
}

measure() { # MODE (native|poll)
  local dir=$WORK/$1 flag=() out
  [ "$1" = poll ] && flag=(--poll)
  mkdir -p "$dir"
  cat > "$dir/prodserver.toml" <<TOML
[processes.app]
backend = "command"
command = ["sh", "-c", "echo up; exec sleep 600"]
watch = ["**/*.py"]
health = { log = "up" }
TOML
  echo "x = 0" > "$dir/app.py"
  out=$dir/out
  (cd "$dir" && exec "$PS" dev --timestamps "${flag[@]}") > "$out" 2>&1 &
  local pid=$! saves=()
  while [ "$(count 'app.1 *| ready' "$out")" -lt 1 ]; do sleep 0.01; done
  for i in $(seq 1 "$ROUNDS"); do
    saves+=("$(date +%s%3N)")
    echo "x = $i" > "$dir/app.py.tmp" && mv "$dir/app.py.tmp" "$dir/app.py"
    while [ "$(count 'app.1 *| ready' "$out")" -le "$i" ]; do sleep 0.01; done
  done
  kill -TERM $pid; wait $pid || true
  local spawned=() ready=()
  for i in $(seq 1 "$ROUNDS"); do
    spawned+=($(( $(at 'app.1 *| spawned' "$out" $((i + 1))) - ${saves[$((i - 1))]} )))
    ready+=($(( $(at 'app.1 *| ready' "$out" $((i + 1))) - ${saves[$((i - 1))]} )))
  done
  summary() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "p50 %d ms, max %d ms", a[int((NR+1)/2)], a[NR]}'; }
  local label="inotify"
  [ "$1" = poll ] && label="--poll (250 ms)"
  echo "| dev: save → spawned, $label ($ROUNDS saves) | $(summary "${spawned[@]}") | ≤ debounce + 50 ms (100 ms) |"
  echo "| dev: save → ready, $label | $(summary "${ready[@]}") | |"
}

measure native
measure poll
