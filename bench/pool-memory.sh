#!/usr/bin/env bash
# How RSS over-counts a prefork pool: gunicorn --workers 4 --preload on
# examples/django-celery, measured by prodserver's own code (os::memory, via
# `bench-memory tree PID`) in RSS, PSS and USS, for the tree and each worker.
#   bash bench/pool-memory.sh [PATH/TO/gunicorn]
# gunicorn defaults to the test venv's (target/tmp/e2e-venv), else the
# example's own .venv; to make one:
#   python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -r examples/django-celery/requirements.txt
set -euo pipefail
cd "$(dirname "$0")/.."
GUNICORN=${1:-}
for g in "$GUNICORN" target/tmp/e2e-venv/bin/gunicorn examples/django-celery/.venv/bin/gunicorn; do
  if [ -n "$g" ] && [ -x "$g" ]; then GUNICORN=$(realpath "$g"); break; fi
done
[ -x "$GUNICORN" ] || { echo "no gunicorn: pass its path (see the comment above)" >&2; exit 1; }
cargo build --release --quiet --example bench-memory
WORK=$(mktemp -d)
pid=
cleanup() { if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT

WORKERS=4
(cd examples/django-celery && exec env DJANGO_SETTINGS_MODULE=shop.settings SHOP_VAR_DIR="$WORK" \
  "$GUNICORN" --workers $WORKERS --preload --bind 127.0.0.1:0 shop.wsgi:application) 2> "$WORK/gunicorn.log" &
pid=$!
# Ready once every worker has said it booted (with --preload the app is
# loaded in the master before the forks).
for _ in $(seq 600); do
  [ "$(grep -c 'Booting worker' "$WORK/gunicorn.log" 2>/dev/null || true)" -ge $WORKERS ] && break
  kill -0 $pid 2>/dev/null || { cat "$WORK/gunicorn.log" >&2; exit 1; }
  sleep 0.1
done
[ "$(grep -c 'Booting worker' "$WORK/gunicorn.log")" -ge $WORKERS ] || { echo "gunicorn did not boot $WORKERS workers" >&2; exit 1; }
echo "gunicorn $("$GUNICORN" --version 2>&1 | sed 's/.*version //; s/)//'), --workers $WORKERS --preload, shop.wsgi:application, master pid $pid"
echo
target/release/examples/bench-memory tree $pid
