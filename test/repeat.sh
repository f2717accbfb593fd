#!/usr/bin/env bash
# Runs `make test` RUNS times in a row on a fresh clone of HEAD, with another
# `make test` looping beside it on a second clone as load, and stops at the
# first failure. A red run keeps its log. Usage: test/repeat.sh [RUNS]
# (make test-repeat RUNS=20).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
rev=$(git rev-parse HEAD)
work=$(mktemp -d)
load_pid=
cleanup() {
  if [ -n "$load_pid" ]; then kill -- -"$load_pid" 2>/dev/null || true; wait "$load_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
# As in CI: the design documents and fixtures beside the clone.
if [ -d ../shared ]; then ln -s "$(cd ../shared && pwd)" "$work/shared"; fi
for d in under-test load; do
  git clone -q --no-local . "$work/$d"
  git -C "$work/$d" checkout -q "$rev"
done
echo "fresh clones of $rev in $work; logs in $work/run-N.log"
# The load: make test again and again in its own process group.
set -m
( cd "$work/load" && while true; do make test >/dev/null 2>&1 || true; done ) &
load_pid=$!
set +m
passed=0
for i in $(seq "$RUNS"); do
  start=$(date +%s)
  if (cd "$work/under-test" && make test >"$work/run-$i.log" 2>&1); then
    passed=$((passed + 1))
    echo "run $i/$RUNS: green in $(( $(date +%s) - start ))s"
  else
    echo "run $i/$RUNS: RED after $(( $(date +%s) - start ))s; log: $work/run-$i.log"
    grep -E '^(--- FAIL|FAIL|panic:)' "$work/run-$i.log" | head -20 || true
    echo "$passed of $RUNS runs green before the first red one"
    exit 1
  fi
done
echo "$passed of $RUNS runs green in a row, each beside another make test"
