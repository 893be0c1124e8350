# Sourced by the bench scripts: builds the release binaries, and gives each
# run a scratch folder (its runtime directory inside) that is removed, with
# every child left, on exit.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet --bin prodserver --example bench-child --example bench-memory
PS=$PWD/target/release/prodserver
CHILD=$PWD/target/release/examples/bench-child
WORK=$(mktemp -d)
export XDG_RUNTIME_DIR=$WORK/rt NO_COLOR=1
mkdir -p "$XDG_RUNTIME_DIR"
trap 'pkill -KILL -P $$ 2>/dev/null || true; rm -rf "$WORK"' EXIT
# Lines of FILE matching PATTERN; 0 while FILE does not exist yet.
count() { local n; n=$(grep -c -- "$1" "$2" 2>/dev/null) || true; echo "${n:-0}"; }
