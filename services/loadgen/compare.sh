#!/usr/bin/env bash
# The load test (make bench-load): every row of issue 8's table measured in
# one run, on a nats-server process of its own, and the ratios between them.
#
# Rows, each with two bodies (a Whapi message, which has a provider id, and
# a 1.9 KB Whapi chats.patch about a chat of its own, which has none):
#   reference          bare handler: read the body, publish, wait for the ack
#   reference+headers  the same with the contract's headers and a unique
#                      Nats-Msg-Id: the yardstick of the ratios
#   ingress            services/ingress alone (WAHOOK_DERIVE=)
#   pipeline           services/ingress with the four consumers in the
#                      process, as make run starts it: accepted deliveries
#                      over the time until the consumers processed them all
#
# Usage: services/loadgen/compare.sh [duration]
# Settings (environment):
#   DURATION (10s)  measured load of each row, after WARMUP (2s) of warm-up
#   CONNS (64)      concurrent connections
#   BROKER (nats)   whose ingress and pipeline rows: nats, kafka (on kfake,
#                   served by loadgen kafka) or all (both, and their ratio)
#   PROFILE         directory for the CPU profile of each row's target (the
#                   reference handler or the ingress), <row>-<body>.cpu.pprof
#                   (<row>-kafka-<body> on Kafka)
#   NATS_URL        an external server instead of our own; wahook's streams
#                   on it are deleted before each row (loadgen reset)
#   NATS_SYNC       "always": our server fsyncs before every ack
#   DRAIN_TIMEOUT (5m), LOG_LEVEL (warn), BIN (bin), INGRESS_GOGC (the
#                   ingress's GOGC; unset: its own default, pkg/gctune)
set -euo pipefail
if [ -n "${PROFILE:-}" ]; then mkdir -p "$PROFILE" && PROFILE=$(cd "$PROFILE" && pwd); fi
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-${1:-10s}}
WARMUP=${WARMUP:-2s}
. services/loadgen/lib.sh

# row measures one row with one body on broker, each on a fresh broker.
row() {
  local broker=$1 row=$2 body=$3 tag=$2-$3 target warmup=$WARMUP
  [ "$broker" = kafka ] && tag=$row-kafka-$body
  if [ "$broker" = kafka ]; then fresh_kafka; else fresh_nats; fi
  case $row in
  reference*)
    "$BIN/loadgen" reference -addr "$REF" -nats-url "$url" $([ "$row" = reference+headers ] && echo -headers) \
      ${PROFILE:+-cpuprofile "$PROFILE/$tag.cpu.pprof"} >"$work/$tag.log" 2>&1 &
    target_pid=$!
    target=http://$REF/
    wait_tcp "$REF"
    ;;
  *)
    rm -rf "$work/data"
    WAHOOK_BROKER=$broker WAHOOK_NATS_URL=${url:-} WAHOOK_KAFKA_BROKERS=$KAFKA WAHOOK_DATA_DIR="$work/data" \
      WAHOOK_DERIVE=$([ "$row" = pipeline ] && echo all) WAHOOK_AUTH_DISABLED=true \
      WAHOOK_HTTP_ADDR=$HTTP WAHOOK_ADMIN_ADDR=$ADMIN WAHOOK_LOG_LEVEL=${LOG_LEVEL:-warn} \
      WAHOOK_CPUPROFILE=${PROFILE:+$PROFILE/$tag.cpu.pprof} GOGC=${INGRESS_GOGC:-} "$BIN/ingress" >"$work/$tag.log" 2>&1 &
    target_pid=$!
    target=http://$HTTP/v1/webhooks/whapi
    wait_ok "http://$HTTP/readyz"
    ;;
  esac
  local drain=("$BIN/loadgen" drain -broker "$broker" -nats-url "${url:-}" -kafka-brokers "$KAFKA" -timeout "${DRAIN_TIMEOUT:-5m}")
  if [ "$row" = pipeline ]; then
    # The warm-up's backlog is processed before the measured load starts.
    "$BIN/loadgen" hit -url "$target" -c "$CONNS" -d "$WARMUP" -warmup 0 -body-kind "$body" >/dev/null
    "${drain[@]}" >/dev/null
    warmup=0
  fi
  # The CPU time of the broker process (ours, not an external one) and of
  # the target, per delivery in the report.
  local pids=target=$target_pid bpid=$nats_pid
  [ "$broker" = kafka ] && bpid=$kafka_pid
  [ -n "$bpid" ] && pids=broker=$bpid,$pids
  "$BIN/loadgen" hit -url "$target" -c "$CONNS" -d "$DURATION" -warmup "$warmup" -body-kind "$body" \
    -label "$row" -broker "$broker" -results "$results" -pids "$pids"
  [ "$row" != pipeline ] || "${drain[@]}" -results "$results" -pids "$pids"
  stop "$target_pid"; target_pid=''
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)," \
  "$CONNS connections, $DURATION per row, nats-server ${NATS_URL:-$("$BIN/nats-server" --version | cut -d' ' -f2) on a fresh store${NATS_SYNC:+, sync $NATS_SYNC}}"
for body in message chats.patch; do
  row nats reference "$body"
  row nats reference+headers "$body"
  for b in "${brokers[@]}"; do
    row "$b" ingress "$body"
    row "$b" pipeline "$body"
  done
done
"$BIN/loadgen" report -results "$results"
