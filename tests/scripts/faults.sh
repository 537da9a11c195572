#!/usr/bin/env bash
# Fault runs: all 48 MIT-BIH records replayed at 20x real time through Mosquitto
# and holterd into Postgres while (1) the daemon is killed with SIGKILL and
# restarted, (2) Mosquitto is restarted, (3) Postgres is stopped for 30 s.
# Then the stored beats must equal the offline analysis: nothing lost, nothing doubled.
#   tests/scripts/faults.sh [kill|broker|postgres|all]
source "$(dirname "$0")/lib.sh"
WHICH=${1:-all}
trap 'stop_daemon; stop_mosquitto' EXIT
fresh_database
start_mosquitto
start_daemon
T0=1764000000000000
PGVER=$(ls /etc/postgresql)
"$BIN" replay --broker 127.0.0.1:$MQTT_PORT --records all --device-prefix record --speed 20 --end \
  --t0-us $T0 > "$WORK/replay.log" 2>&1 &
replay=$!
if [[ $WHICH == kill || $WHICH == all ]]; then
  sleep 15
  stored=$(sql "SELECT count(*) FROM beats")
  log "SIGKILL daemon ($stored beats stored so far)"
  kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=
  sleep 3
  start_daemon
  log "daemon restarted"
fi
if [[ $WHICH == broker || $WHICH == all ]]; then
  sleep 15
  log "restarting Mosquitto"
  stop_mosquitto
  sleep 2
  start_mosquitto
  log "Mosquitto back"
fi
if [[ $WHICH == postgres || $WHICH == all ]]; then
  sleep 10
  log "stopping Postgres for 30 s"
  pg_ctlcluster --skip-systemctl-redirect "$PGVER" main stop -m fast
  sleep 10
  log "readyz while Postgres is down: $(curl -s "http://$HTTP/readyz")"
  sleep 20
  pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start
  log "Postgres back"
fi
wait $replay
tail -1 "$WORK/replay.log"
wait_closed 48
log "all segments closed"
for m in holterd_messages_total holterd_duplicate_messages_total holterd_gaps_total holterd_mqtt_reconnects_total \
         'holterd_store_errors_total{what="chunks"}' 'holterd_store_errors_total{what="beats"}' holterd_recovered_segments_total; do
  echo "$m $(metric "$m")"
done
wait_beats_packed
"$BIN" check --records all --device-prefix record --t0-us $T0 --set "store.url=$URL" | tail -1
rows=$(sql "SELECT count(*) FROM beats"); packed=$(sql "SELECT coalesce(sum(beats), 0) FROM beat_blocks")
counted=$(sql "SELECT coalesce(sum(beats), 0) FROM beat_minutes")
echo "beats in the database: $rows rows + $packed packed; the per-minute rollups count $counted"
[ "$((rows + packed))" = "$counted" ] || { echo "rows and blocks do not add up to the rollups: a beat stored twice or lost" >&2; exit 1; }
