#!/usr/bin/env bash
# Scale-out and memory (make bench-scale), each measurement on a broker of
# its own (a nats-server process, or kfake served by loadgen kafka):
#   scale   the ingress alone fills the raw stream with FILL of chats.patch
#           load (each delivery about a chat of its own, read by the
#           label-changed derivation), then 1, 2 and 4 services/deriver
#           processes start at once; the row is the raw events they had
#           left when all were ready over the time until none was left.
#           On NATS instance i runs with WAHOOK_DERIVE_PARTITIONS=n and
#           WAHOOK_DERIVE_PARTITION=i (each partition's consumer receives
#           every raw event and passes over other partitions' chats); on
#           Kafka the instances share one consumer group, over
#           KAFKA_PARTITIONS topic partitions.
#   memory  the ingress and one deriver, separate processes, under
#           MEMORY_DURATION of chats.patch load: their peak resident memory
#           and the broker's, and the time until the deriver caught up
#           (MEMORY_DURATION=0: not measured).
#
# Usage: services/loadgen/scale.sh
# Settings (environment): FILL (10s), INSTANCES ("1 2 4"), MEMORY_DURATION
# (60s), KAFKA_PARTITIONS (12), PROFILE (a directory for each scale
# deriver's CPU profile, scale-<broker>-<n>-deriver<i>.cpu.pprof),
# DERIVER_GOGC (the scale derivers' GOGC; unset: their own default,
# pkg/gctune), and compare.sh's CONNS, BROKER (all here), NATS_URL,
# LOG_LEVEL, DRAIN_TIMEOUT, BIN.
set -euo pipefail
if [ -n "${PROFILE:-}" ]; then mkdir -p "$PROFILE" && PROFILE=$(cd "$PROFILE" && pwd); fi
cd "$(dirname "$0")/../.."
BROKER=${BROKER:-all}
FILL=${FILL:-10s}
INSTANCES=${INSTANCES:-1 2 4}
MEMORY_DURATION=${MEMORY_DURATION:-60s}
KAFKA_PARTITIONS=${KAFKA_PARTITIONS:-12}
. services/loadgen/lib.sh
body=chats.patch

# wahook runs one of wahook's services (ingress or deriver) on broker, with
# the rest of its settings from the environment, logging to $work/$2.log.
wahook() {
  local broker=$1 log=$2 service=$3
  WAHOOK_BROKER=$broker WAHOOK_NATS_URL=${url:-} WAHOOK_KAFKA_BROKERS=$KAFKA WAHOOK_KAFKA_PARTITIONS=$KAFKA_PARTITIONS \
    WAHOOK_DATA_DIR="$work/data" WAHOOK_AUTH_DISABLED=true WAHOOK_LOG_LEVEL=${LOG_LEVEL:-warn} \
    "$BIN/$service" >"$work/$log.log" 2>&1 &
}

fresh() { if [ "$1" = kafka ]; then fresh_kafka; else fresh_nats; fi; }
broker_pid() { if [ "$1" = kafka ]; then echo "$kafka_pid"; else echo "$nats_pid"; fi; }
drained() { "$BIN/loadgen" drain -broker "$1" -nats-url "${url:-}" -kafka-brokers "$KAFKA" -timeout "${DRAIN_TIMEOUT:-5m}" "${@:2}"; }

# scale fills a fresh broker's raw stream, then lets n derivers finish it.
scale() {
  local broker=$1 n=$2 i ready='' pids partitions=1
  fresh "$broker"
  rm -rf "$work/data"
  WAHOOK_DERIVE='' WAHOOK_HTTP_ADDR=$HTTP WAHOOK_ADMIN_ADDR=$ADMIN wahook "$broker" "fill-$broker-$n" ingress
  target_pid=$!
  wait_ok "http://$HTTP/readyz"
  "$BIN/loadgen" hit -url "http://$HTTP/v1/webhooks/whapi" -c "$CONNS" -d "$FILL" -warmup 0 -body-kind "$body" -label fill -broker "$broker"
  stop "$target_pid"; target_pid=''
  [ "$broker" = nats ] && partitions=$n
  pids=broker=$(broker_pid "$broker")
  more_pids=()
  for ((i = 0; i < n; i++)); do
    WAHOOK_DERIVE_PARTITIONS=$partitions WAHOOK_DERIVE_PARTITION=$((partitions > 1 ? i : 0)) \
      WAHOOK_ADMIN_ADDR=127.0.0.1:$((19100 + i)) WAHOOK_CPUPROFILE=${PROFILE:+$PROFILE/scale-$broker-$n-deriver$i.cpu.pprof} \
      GOGC=${DERIVER_GOGC:-} wahook "$broker" "deriver-$broker-$n-$i" deriver
    more_pids+=($!)
    pids+=,deriver$i=$!
    ready+=${ready:+,}http://127.0.0.1:$((19100 + i))/readyz
  done
  drained "$broker" -partitions "$partitions" -ready "$ready" -pids "$pids" -results "$results" \
    -row scale -body-kind "$body" -instances "$n"
  for i in "${more_pids[@]}"; do stop "$i"; done
  more_pids=()
}

# memory runs the ingress and one deriver under load and records their
# peak memory.
memory() {
  local broker=$1 deriver
  fresh "$broker"
  rm -rf "$work/data"
  WAHOOK_DERIVE='' WAHOOK_HTTP_ADDR=$HTTP WAHOOK_ADMIN_ADDR=$ADMIN wahook "$broker" "memory-ingress-$broker" ingress
  target_pid=$!
  WAHOOK_ADMIN_ADDR=127.0.0.1:19100 wahook "$broker" "memory-deriver-$broker" deriver
  deriver=$!
  more_pids=("$deriver")
  wait_ok "http://$HTTP/readyz"
  wait_ok "http://127.0.0.1:19100/readyz"
  local pids=broker=$(broker_pid "$broker"),ingress=$target_pid,deriver=$deriver
  "$BIN/loadgen" hit -url "http://$HTTP/v1/webhooks/whapi" -c "$CONNS" -d "$MEMORY_DURATION" -warmup 0 \
    -body-kind "$body" -label memory -broker "$broker" -results "$results" -pids "$pids"
  drained "$broker" -results "$results" -pids "$pids"
  stop "$deriver"; stop "$target_pid"; target_pid='' more_pids=()
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3)," \
  "$CONNS connections, fill $FILL, memory load $MEMORY_DURATION, Kafka $KAFKA_PARTITIONS partitions," \
  "nats-server ${NATS_URL:-$("$BIN/nats-server" --version | cut -d' ' -f2) on a fresh store}"
for b in "${brokers[@]}"; do
  for n in $INSTANCES; do scale "$b" "$n"; done
done
if [ "$MEMORY_DURATION" != 0 ]; then
  for b in "${brokers[@]}"; do memory "$b"; done
fi
"$BIN/loadgen" report -results "$results"
