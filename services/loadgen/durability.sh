#!/usr/bin/env bash
# The cost of durable acknowledgements: the load test (compare.sh) with its
# nats-server's default sync interval (fsync every 2 minutes) and with
# sync_interval: always (fsync before every ack), each row on a fresh store.
# Usage: services/loadgen/durability.sh [duration]   (compare.sh's settings apply)
set -euo pipefail
cd "$(dirname "$0")/../.."
for sync in default always; do
  echo "## nats-server, sync $sync"
  NATS_SYNC=$sync services/loadgen/compare.sh "${1:-10s}"
done
