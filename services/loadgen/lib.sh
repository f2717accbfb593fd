# Shared by the load tests (compare.sh, scale.sh), sourced from the
# repository's root: settings, a work directory removed at exit, the
# processes they start, and a fresh broker for each measurement.
CONNS=${CONNS:-64}
BROKER=${BROKER:-nats}
NATS_URL=${NATS_URL:-}
BIN=${BIN:-bin}
HTTP=127.0.0.1:18080 REF=127.0.0.1:18081 ADMIN=127.0.0.1:19090 NATSADDR=127.0.0.1:14222 KAFKA=127.0.0.1:19092
case $BROKER in
  nats) brokers=(nats) ;;
  kafka) brokers=(kafka) ;;
  all) brokers=(nats kafka) ;;
  *) echo "BROKER=$BROKER: want nats, kafka or all" >&2; exit 2 ;;
esac

work=$(mktemp -d)
results=$work/results.jsonl
# more_pids are other processes a script started, stopped at exit too.
nats_pid='' kafka_pid='' target_pid='' url='' more_pids=()
# stop ends one process this script started and waits for it.
stop() { if [ -n "$1" ]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi; }
# cleanup stops what is left and, after a failure, shows the end of the logs.
cleanup() {
  local status=$? p
  for p in "${more_pids[@]}"; do stop "$p"; done
  stop "$target_pid"; stop "$kafka_pid"; stop "$nats_pid"
  if [ "$status" != 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "== ${f##*/}"; tail -n 20 "$f"; } >&2; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$BIN/" ./services/ingress ./services/deriver ./services/loadgen
[ -n "$NATS_URL" ] || go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2

wait_tcp() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null && return; sleep 0.1; done; echo "nothing listens on $1" >&2; exit 1; }
wait_ok() { for _ in $(seq 600); do curl -fsS -o /dev/null "$1" 2>/dev/null && return; sleep 0.1; done; echo "$1 never answered 200" >&2; exit 1; }

# fresh_nats starts a nats-server on a new store, or empties the external one.
fresh_nats() {
  if [ -n "$NATS_URL" ]; then url=$NATS_URL; "$BIN/loadgen" reset -nats-url "$url"; return; fi
  stop "$nats_pid"; nats_pid=''
  rm -rf "$work/nats"; mkdir "$work/nats"
  {
    echo "listen: $NATSADDR"
    echo "max_payload: 8MB"
    # Streams reserve their byte limits at creation: room for them
    # whatever the disk's free space.
    echo "jetstream { store_dir: \"$work/nats\", max_file_store: 16GB"
    [ "${NATS_SYNC:-}" = always ] && echo "  sync_interval: always"
    echo "}"
  } >"$work/nats.conf"
  "$BIN/nats-server" -c "$work/nats.conf" >"$work/nats.log" 2>&1 &
  nats_pid=$!
  url=nats://$NATSADDR
  wait_tcp "$NATSADDR"
}

# fresh_kafka starts a kfake broker with nothing in it.
fresh_kafka() {
  stop "$kafka_pid"
  "$BIN/loadgen" kafka -addr "$KAFKA" >"$work/kafka.log" 2>&1 &
  kafka_pid=$!
  wait_tcp "$KAFKA"
}
