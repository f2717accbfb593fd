#!/usr/bin/env bash
# Runs `make test` on two fresh clones of HEAD at once, each loop the other's
# load, until RUNS runs have passed in a row, and stops at the first failure:
# every counted run had another `make test` running beside it for its whole
# length. A red run keeps its log. Usage: test/repeat.sh [RUNS]
# (make test-repeat RUNS=20).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
rev=$(git rev-parse HEAD)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
# As in CI: the design documents and fixtures beside the clones.
if [ -d ../shared ]; then ln -s "$(cd ../shared && pwd)" "$work/shared"; fi
for d in a b; do
  git clone -q --no-local . "$work/$d"
  git -C "$work/$d" checkout -q "$rev"
done
echo "fresh clones of $rev in $work; logs in $work/{a,b}-N.log"
# Each loop appends "green" or "red" lines to one results file; appends of
# one short line are atomic, so the order of lines is the order runs ended.
results="$work/results"
: >"$results"
loop() {
  local d=$1 i=0 start
  while true; do
    i=$((i + 1))
    start=$(date +%s)
    if (cd "$work/$d" && make test >"$work/$d-$i.log" 2>&1); then
      echo "green $d-$i $(( $(date +%s) - start ))s" >>"$results"
    else
      echo "red $d-$i $(( $(date +%s) - start ))s" >>"$results"
    fi
  done
}
set -m
for d in a b; do
  loop "$d" &
  pids+=($!)
done
set +m
seen=0
while true; do
  sleep 5
  mapfile -t lines <"$results"
  while [ "$seen" -lt "${#lines[@]}" ]; do
    read -r verdict run secs <<<"${lines[$seen]}"
    seen=$((seen + 1))
    if [ "$verdict" = red ]; then
      echo "run $seen ($run): RED after $secs; log: $work/$run.log"
      grep -E '^(--- FAIL|FAIL|panic:)' "$work/$run.log" | head -20 || true
      echo "$((seen - 1)) of $RUNS runs green before the first red one"
      exit 1
    fi
    echo "run $seen/$RUNS ($run): green in $secs"
    if [ "$seen" -ge "$RUNS" ]; then
      echo "$seen of $RUNS runs green in a row, each beside another make test"
      exit 0
    fi
  done
done
