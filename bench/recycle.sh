#!/usr/bin/env bash
# Recycling: the time from crossing max_memory_per_child to the recycle
# starting (the child's SIGTERM), with the default memory_interval and
# memory_samples; and the capacity seen while three instances recycle,
# one at a time. Prints markdown table rows. Needs what bench/run.sh needs.
#   bash bench/recycle.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"

# --- crossing -> recycle, defaults (pss, 250ms x 3) -------------------------
ROUNDS=20
cat > "$WORK/grow.toml" <<TOML
[processes.grow]
backend = "command"
command = ["$CHILD", "grow", "64", "$WORK/grow.log"]
max_memory_per_child = "64MiB"
# Every incarnation crosses at once: back off as little as allowed, never
# give up, so the rounds come quickly.
backoff = "10ms"
backoff_max = "10ms"
max_restarts = 0
TOML
"$PS" start -c "$WORK/grow.toml" > "$WORK/grow.out" 2>&1 &
pid=$!
while [ "$(count '^t ' "$WORK/grow.log")" -lt $ROUNDS ]; do sleep 0.1; done
kill -TERM $pid; wait $pid || true
reaction=$(awk '$1=="c"{c=$2} $1=="t"&&c{print ($2-c)/1e6; c=0}' "$WORK/grow.log" | sort -n |
  awk '{a[NR]=$1} END {printf "p50 %.0f ms, max %.0f ms (%d rounds)", a[int((NR+1)/2)], a[NR], NR}')

# --- capacity while 3 instances recycle ---------------------------------------
cat > "$WORK/roll.toml" <<TOML
[processes.w]
backend = "command"
command = ["$CHILD", "grow", "64", "$WORK/roll.log"]
instances = 3
health = { notify = true }
max_memory_per_child = "64MiB"
backoff = "10ms"
backoff_max = "10ms"
max_restarts = 0
TOML
"$PS" start --timestamps -c "$WORK/roll.toml" > "$WORK/roll.out" 2>&1 &
pid=$!
while [ "$(count '| recycled: ' "$WORK/roll.out")" -lt 30 ]; do sleep 0.1; done
kill -TERM $pid; wait $pid || true
# Replay the log: "ready" adds one, "recycled:" (the stop begins) takes one;
# the lowest count once all three had been ready the first time.
capacity=$(awk '
  / \| ready$/ { ready++; if (ready == 3) seen = 1 }
  / \| recycled: / { ready--; recycles++; if (seen && (low == "" || ready < low)) low = ready }
  END { printf "never below %d of 3 ready (%d recycles)", low, recycles }' "$WORK/roll.out")

cat <<TABLE
| memory limit crossed → recycle starts (defaults: pss, 250 ms × 3) | $reaction | ≤ 1 s |
| capacity during rolling recycles, 3 instances | $capacity | ≥ 2 |
TABLE
