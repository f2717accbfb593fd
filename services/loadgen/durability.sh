#!/usr/bin/env bash
# The cost of durable acknowledgements: the ingress load test (compare.sh)
# against a separate nats-server process, with its default sync interval
# (fsync every 2 minutes) and with sync_interval: always (fsync before every
# ack), each on a fresh store.
# Usage: services/loadgen/durability.sh [duration]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10s}
NATS_SERVER=${NATS_SERVER:-/tmp/nats-server}
PORT=14322
[ -x "$NATS_SERVER" ] || go build -o "$NATS_SERVER" github.com/nats-io/nats-server/v2
"$NATS_SERVER" --version

for sync in default always; do
  dir=$(mktemp -d)
  {
    echo "listen: 127.0.0.1:$PORT"
    echo "max_payload: 8MB"
    echo "jetstream { store_dir: \"$dir\", max_file_store: 16GB"
    [ "$sync" = always ] && echo "  sync_interval: always"
    echo "}"
  } >"$dir/nats.conf"
  "$NATS_SERVER" -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  echo "## nats-server, sync $sync"
  NATS_URL=nats://127.0.0.1:$PORT services/loadgen/compare.sh "$DURATION" || { kill "$pid"; wait "$pid" 2>/dev/null; rm -rf "$dir"; exit 1; }
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
done
