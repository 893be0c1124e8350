#!/usr/bin/env bash
# prodserver's benchmark: log throughput, respawn latency, memory with many
# children, spawn time, the CPU cost of a memory sweep, recycling (reaction
# time, capacity while rolling). Needs only cargo, bash, awk, coreutils and
# a Linux /proc.
#   bash bench/run.sh            # all figures, printed as a markdown table
set -euo pipefail
source "$(dirname "$0")/common.sh"

now_ns() { date +%s%N; }
children() { cat /proc/"$1"/task/"$1"/children 2>/dev/null | wc -w; }
rss_kib() { awk '/^VmRSS:/ {print $2}' /proc/"$1"/status; }
cpu_ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }

# --- log throughput -------------------------------------------------------
LINES=5000000
cat > "$WORK/lines.toml" <<TOML
[processes.spam]
backend = "command"
command = ["$CHILD", "lines", "$LINES"]
restart = "never"
TOML
t0=$(now_ns); "$CHILD" lines $LINES > "$WORK/direct.out"; t1=$(now_ns)
direct=$(( LINES * 1000000000 / (t1 - t0) ))
best=0
for _ in 1 2 3; do
  t0=$(now_ns); "$PS" start -c "$WORK/lines.toml" > "$WORK/via.out"; t1=$(now_ns)
  rate=$(( LINES * 1000000000 / (t1 - t0) ))
  if (( rate > best )); then best=$rate; fi
done
got=$(grep -c '^spam.1 *| line ' "$WORK/via.out")
[ "$got" -eq "$LINES" ] || { echo "lost lines: $got of $LINES" >&2; exit 1; }

# --- crash -> respawn latency (backoff 0) ---------------------------------
cat > "$WORK/crash.toml" <<TOML
[processes.crash]
backend = "command"
command = ["$CHILD", "crash", "$WORK/crash.log"]
backoff = "0s"
backoff_max = "0s"
max_restarts = 0
TOML
"$PS" start -c "$WORK/crash.toml" > /dev/null 2>&1 &
pid=$!
while [ "$(count '^s ' "$WORK/crash.log")" -lt 1001 ]; do sleep 0.05; done
kill -TERM $pid; wait $pid || true
latency=$(awk '$1=="e"{e=$2} $1=="s"&&e{print ($2-e)/1000; e=0}' "$WORK/crash.log" | sort -n | awk '{a[NR]=$1} END {printf "%.2f %.2f", a[int(NR*0.5)]/1000, a[int(NR*0.9)]/1000}')
p50=${latency% *}; p90=${latency#* }

# --- memory with many sleeping children, idle CPU, spawn time -------------
measure() { # N -> "rss_kib spawn_ms idle_cpu_pct"
  local n=$1
  cat > "$WORK/sleep$n.toml" <<TOML
[processes.sleeper]
backend = "command"
command = ["$CHILD", "sleep"]
instances = $n
TOML
  local t0 t1 pid
  t0=$(now_ns)
  "$PS" start -c "$WORK/sleep$n.toml" > /dev/null 2>&1 &
  pid=$!
  # The keeper is a child too.
  while [ "$(children $pid)" -lt $((n + 1)) ]; do :; done
  t1=$(now_ns)
  sleep 1
  local c0 c1 ticks
  c0=$(cpu_ticks $pid); sleep 5; c1=$(cpu_ticks $pid)
  ticks=$(getconf CLK_TCK)
  echo "$(rss_kib $pid) $(( (t1 - t0) / 1000000 )) $(awk -v d=$((c1 - c0)) -v t="$ticks" 'BEGIN {printf "%.2f", d / t / 5 * 100}')"
  kill -TERM $pid; wait $pid || true
}
read -r rss50 _ cpu50 <<<"$(measure 50)"
read -r _ spawn200 _ <<<"$(measure 200)"
read -r rss1000 _ cpu1000 <<<"$(measure 1000)"

# --- memory sweep: CPU of one sample of every tree (bench/memory.rs) ------
memory_rows=$("$PWD/target/release/examples/bench-memory" 50 1000 2> "$WORK/memory.details")

# --- recycling: reaction time, capacity while rolling (bench/recycle.sh) --
recycle_rows=$(bash bench/recycle.sh)

cat <<TABLE
| measure | result | target |
|---|---|---|
| log throughput, child → prodserver → file | $best lines/s | ≥ 5,000,000 |
| same child straight to a file | $direct lines/s | (baseline) |
| crash → respawn latency, backoff 0 | p50 ${p50} ms, p90 ${p90} ms | p50 ≤ 5 ms |
| RSS with 50 sleeping children | $((rss50 / 1024)).$(( (rss50 % 1024) * 10 / 1024 )) MiB | ≤ 5 MiB |
| RSS with 1,000 sleeping children | $((rss1000 / 1024)).$(( (rss1000 % 1024) * 10 / 1024 )) MiB | ≤ 20 MiB |
| CPU while idle (50 / 1,000 children) | $cpu50% / $cpu1000% | ≈ 0 |
| time to spawn 200 processes | $spawn200 ms | |
$memory_rows
$recycle_rows
TABLE
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //')"
echo
echo "memory sweep, details (median CPU of one sweep):"
sed 's/^/  /' "$WORK/memory.details"
