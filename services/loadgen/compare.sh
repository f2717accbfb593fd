#!/usr/bin/env bash
# Load test of the ingress as a separate process, against the reference (a
# bare handler that publishes the body to JetStream and waits for the ack) on
# the same embedded NATS server, at 16 and 64 connections.
# Usage: services/loadgen/compare.sh [duration]   (make bench-load)
# With NATS_URL set, both use that server instead of the ingress's embedded
# one (services/loadgen/durability.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-10s}
BIN=${BIN:-bin}
HTTP=127.0.0.1:18080 REF=127.0.0.1:18081 NATSADDR=127.0.0.1:14222 ADMIN=127.0.0.1:19090
DATA=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

go build -o "$BIN/" ./services/ingress ./services/loadgen
# With NATS_URL unset both use the ingress's embedded server, which wants a
# login: its service user, from the context file.
NATS_URL=${NATS_URL:-}
WAHOOK_AUTH_DISABLED=true WAHOOK_NATS_URL="$NATS_URL" WAHOOK_DATA_DIR="$DATA" WAHOOK_HTTP_ADDR=$HTTP \
  WAHOOK_NATS_EMBEDDED_ADDR=$NATSADDR WAHOOK_ADMIN_ADDR=$ADMIN WAHOOK_LOG_LEVEL=${LOG_LEVEL:-warn} GOGC=${INGRESS_GOGC:-100} "$BIN/ingress" &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://$HTTP/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://$HTTP/readyz" >/dev/null
if [ -n "$NATS_URL" ]; then
  "$BIN/loadgen" reference -addr $REF -nats-url "$NATS_URL" &
else
  "$BIN/loadgen" reference -addr $REF -nats-context "$DATA/nats-context.json" &
fi
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://$REF/" && break; sleep 0.1; done

echo "# $(date -u +%FT%TZ) $(nproc) cores, $(go version | cut -d' ' -f3), duration $DURATION per run, nats ${NATS_URL:-embedded}"
for c in 16 64; do
  "$BIN/loadgen" hit -url "http://$REF/" -c $c -d "$DURATION" -label reference
  "$BIN/loadgen" hit -url "http://$HTTP/v1/webhooks/whapi" -c $c -d "$DURATION" -label ingress
done
