# Shared by the end-to-end scripts: a private Mosquitto (config/mosquitto-holterd.conf),
# a private Postgres database, and a holterd daemon against both.
# Needs: mosquitto, psql/createdb (Postgres on 127.0.0.1:5432, trust auth), a built
# target/release/holterd, and the MIT-BIH database in $HOLTER_DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/holterd}
WORK=${WORK:-/tmp/holterd-e2e}
MQTT_PORT=${MQTT_PORT:-18830}
HTTP=${HTTP:-127.0.0.1:18081}
DB=${DB:-holterd_e2e}
PG=postgres://postgres@127.0.0.1:5432
URL="$PG/$DB"
mkdir -p "$WORK"
# Mosquitto started as root drops to its own user, which must write here.
chmod 777 "$WORK"
DAEMON_PID=

log() { echo "[$(date +%H:%M:%S)] $*"; }

start_mosquitto() {
  { cat config/mosquitto-holterd.conf
    echo "listener $MQTT_PORT 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence_location $WORK/"
    echo "pid_file $WORK/mosquitto.pid"
    echo "log_dest file $WORK/mosquitto.log"
  } > "$WORK/mosquitto.conf"
  mosquitto -d -c "$WORK/mosquitto.conf"
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$MQTT_PORT) 2>/dev/null && return; sleep 0.1; done
  echo "mosquitto did not start" >&2; exit 1
}

stop_mosquitto() { [ -f "$WORK/mosquitto.pid" ] && kill "$(cat "$WORK/mosquitto.pid")" 2>/dev/null || true; sleep 0.5; }

fresh_database() {
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null
  rm -f "$WORK"/mosquitto.db
}

sql() { psql -h 127.0.0.1 -U postgres -d "$DB" -tAc "$1"; }

DAEMON_ARGS=(--set "mqtt.broker=127.0.0.1:$MQTT_PORT" --set "store.url=$URL" --set "http.listen=$HTTP"
             --set mqtt.client_id=holterd-e2e)

start_daemon() {
  "$BIN" serve "${DAEMON_ARGS[@]}" "$@" >> "$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 100); do curl -sf "http://$HTTP/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "daemon not ready; see $WORK/daemon.log" >&2; exit 1
}

# Waits until every one of $1 segments is closed (all beats stored).
wait_closed() {
  local want=$1
  for _ in $(seq 3000); do
    local closed open
    closed=$(sql "SELECT count(*) FROM segments WHERE closed" 2>/dev/null || echo 0)
    open=$(sql "SELECT count(*) FROM segments WHERE NOT closed" 2>/dev/null || echo 1)
    [ "$closed" = "$want" ] && [ "$open" = 0 ] && return
    sleep 0.2
  done
  echo "segments not closed in time" >&2; exit 1
}

stop_daemon() {
  if [ -n "$DAEMON_PID" ]; then kill -TERM "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null || true; fi
  DAEMON_PID=
}

# QoS 1 messages the broker still holds (unacknowledged or queued), from $SYS.
broker_backlog() {
  mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t '$SYS/broker/store/messages/count' -C 1 -W 15
}

# Waits until the compactor has packed every normal and unreadable beat row
# older than its cutoff (it runs once a minute; replayed beats of past
# times are due at once), so that what is checked next is read from blocks.
wait_beats_packed() {
  for _ in $(seq 100); do
    local loose
    loose=$(sql "SELECT count(*) FROM beats WHERE verdict <> 'abnormal' AND r_time_us < (extract(epoch FROM now()) * 1e6)::bigint - 180000000" 2>/dev/null || echo 1)
    [ "$loose" = 0 ] && { log "beats packed: $(sql "SELECT coalesce(sum(beats), 0) FROM beat_blocks") in $(sql "SELECT count(*) FROM beat_blocks") blocks, $(sql "SELECT count(*) FROM beats") abnormal beats as rows"; return; }
    sleep 1
  done
  echo "the compactor did not pack the beats in 100 s; see $WORK/daemon.log" >&2; exit 1
}

metric() { curl -s "http://$HTTP/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
