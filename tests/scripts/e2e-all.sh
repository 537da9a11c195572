#!/usr/bin/env bash
# Replays all 48 MIT-BIH records through Mosquitto and holterd into Postgres as
# fast as they go, then checks that the stored beats equal the offline analysis
# once the compactor has packed them (their times are in the past).
source "$(dirname "$0")/lib.sh"
trap 'stop_daemon; stop_mosquitto' EXIT
fresh_database
start_mosquitto
start_daemon
T0=1764000000000000
log "replaying all records"
start=$(date +%s.%N)
"$BIN" replay --broker 127.0.0.1:$MQTT_PORT --records all --device-prefix record --speed 0 --end --t0-us $T0
wait_closed 48
end=$(date +%s.%N)
log "all 48 segments closed after $(echo "$end - $start" | bc) s"
metric holterd_messages_total | sed 's/^/messages: /'
metric holterd_duplicate_messages_total | sed 's/^/duplicates: /'
sleep 1
echo "messages the broker still holds: $(broker_backlog)"
wait_beats_packed
"$BIN" check --records all --device-prefix record --t0-us $T0 --set "store.url=$URL"
