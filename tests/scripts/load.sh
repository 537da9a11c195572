#!/usr/bin/env bash
# Load test: N simulated 360 Hz patients in real time (MIT-BIH records in turn)
# through Mosquitto and holterd into Postgres, for S seconds. Reports the
# daemon's end-to-end latency quantiles, CPU, memory over time and throughput.
# Also reports the latency of the episode events and alerts it publishes.
#   tests/scripts/load.sh [devices=1000] [seconds=120] [chunk_ms=250] [from_s=0]
# from_s: where in each record the replay starts (540 takes in record 223's
# 55-second ventricular tachycardia at 578 s).
# EMBEDDED=1: the embedded default instead (SQLite file, the daemon's own broker).
source "$(dirname "$0")/lib.sh"
N=${1:-1000}; S=${2:-120}; CHUNK=${3:-250}; FROM=${4:-0}
trap 'stop_daemon; stop_mosquitto' EXIT
if [ "${EMBEDDED:-0}" = 1 ]; then
  rm -f "$WORK"/load.sqlite*
  DAEMON_ARGS=(--set "mqtt.broker=" --set "store.url=" --set "store.sqlite_path=$WORK/load.sqlite"
               --set "embedded_broker.listen=127.0.0.1:$MQTT_PORT" --set "http.listen=$HTTP")
  log "embedded default: SQLite $WORK/load.sqlite, the daemon's broker on $MQTT_PORT"
else
  fresh_database
  start_mosquitto
fi
start_daemon
pid=$DAEMON_PID
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }   # utime + stime, clock ticks
hz=$(getconf CLK_TCK)
log "daemon idle RSS $(rss) KiB; replaying $N devices for $S s, $CHUNK ms per message"
t_replay=$(date +%s.%N)
"$BIN" replay --broker 127.0.0.1:$MQTT_PORT --records all --devices "$N" --speed 1 \
  --chunk-ms "$CHUNK" --max-seconds "$((FROM + S))" --from-seconds "$FROM" > "$WORK/replay.log" 2>&1 &
replay=$!
# CPU clock ticks of processes (the replayer, Postgres, the broker), summed.
ticks() { local t=0 p; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }
pg_pids() { pgrep -d' ' -x postgres || true; }
mq_pids() { pgrep -d' ' -x mosquitto || true; }
sleep 1
pg0=$(ticks $(pg_pids)); mq0=$(ticks $(mq_pids)); r0=$(ticks $replay); r1=$r0
c0=$(cpu); t0=$(date +%s.%N)
for i in $(seq 1 $((S / 10))); do
  sleep 10
  r=$(ticks $replay); [ "$r" -gt 0 ] && r1=$r   # the last reading while it runs
  # Seconds of the fleet's messages published but not yet received: the
  # broker's backlog, which the end-to-end latency (from arrival) leaves out.
  behind=$(awk -v now="$(date +%s.%N)" -v t="$t_replay" -v n="$N" -v ms="$CHUNK" -v got="$(metric holterd_messages_total)" \
    'BEGIN { rate = n * 1000 / ms; b = (now - t) - got / rate; printf "%.1f", (b > 0 ? b : 0) }')
  printf '%4ds  RSS %7s KiB  streams %5s  source queue %5s  ingest queue %5s  received %5s s behind\n' $((i * 10)) "$(rss)" \
    "$(metric holterd_active_streams)" "$(metric 'holterd_queue_depth{queue="source"}')" \
    "$(metric 'holterd_queue_depth{queue="ingest"}')" "$behind"
done
pg1=$(ticks $(pg_pids)); mq1=$(ticks $(mq_pids))
wait $replay || true
c1=$(cpu); t1=$(date +%s.%N)
cat "$WORK/replay.log" | tail -1
sleep 3
curl -s "http://$HTTP/metrics" > "$WORK/metrics.txt"
published=$(grep -o '[0-9]* messages' "$WORK/replay.log" | tail -1 | cut -d' ' -f1)
PUBLISHED=${published:-0} CHUNK_MS=$CHUNK python3 - "$WORK/metrics.txt" "$c0" "$c1" "$t0" "$t1" "$hz" "$N" "$((r1 - r0))" "$((pg1 - pg0))" "$((mq1 - mq0))" <<'PY'
import sys, re
text = open(sys.argv[1]).read()
c0, c1, t0, t1, hz, n, replay_ticks, pg_ticks, mq_ticks = map(float, sys.argv[2:])
def hist(name):
    b = [(float(le), float(v)) for le, v in re.findall(name + r'_bucket\{le="([^"]+)"\} (\S+)', text.replace('+Inf', 'inf'))]
    return b
def q(b, p):
    total = b[-1][1]
    for le, v in b:
        if v >= p * total:
            return le
    return float('inf')
def val(name):
    m = re.search('^' + re.escape(name) + r' (\S+)$', text, re.M)
    return float(m.group(1)) if m else float('nan')
e2e = hist('holterd_end_to_end_seconds')
print(f"beats stored: {val('holterd_end_to_end_seconds_count'):.0f}, messages {val('holterd_messages_total'):.0f}, samples {val('holterd_samples_total'):.0f}")
import os
published = float(os.environ.get('PUBLISHED', '0'))
backlog = max(0.0, published - val('holterd_messages_total'))
rate = n * 1000 / float(os.environ.get('CHUNK_MS', '250'))
print(f"broker backlog 3 s after the fleet stopped: {backlog:.0f} messages, {backlog / rate if rate else 0:.1f} s of the fleet's")
print(f"end-to-end latency (bucket upper bounds): p50 <= {q(e2e, .5)} s, p99 <= {q(e2e, .99)} s, p99.9 <= {q(e2e, .999)} s, mean {val('holterd_end_to_end_seconds_sum') / max(1, val('holterd_end_to_end_seconds_count')):.3f} s")
inf = hist('holterd_inference_seconds'); bs = hist('holterd_batch_size')
print(f"inference: {val('holterd_inference_seconds_count'):.0f} batches, mean {val('holterd_batch_size_sum') / max(1, val('holterd_batch_size_count')):.1f} beats, {val('holterd_inference_seconds_sum'):.1f} s in total")
for w in ('chunks', 'beats'):
    s = val(f'holterd_store_write_seconds_sum{{what="{w}"}}'); c = val(f'holterd_store_write_seconds_count{{what="{w}"}}')
    print(f"store writes ({w}): {c:.0f} transactions, {s:.1f} s in total, mean {1000 * s / max(1, c):.1f} ms")
print(f"daemon CPU: {(c1 - c0) / hz:.1f} s over {t1 - t0:.1f} s = {100 * (c1 - c0) / hz / (t1 - t0):.0f} % of one core")
for name, ticks in (('replay (the fleet)', replay_ticks), ('Postgres', pg_ticks), ('Mosquitto', mq_ticks)):
    print(f"{name} CPU: {ticks / hz:.1f} s = {100 * ticks / hz / (t1 - t0):.0f} % of one core")
for stage in ('stored', 'published'):
    for tier in ('emergency', 'urgent', 'routine', 'none'):
        b = [(float(le), float(v)) for le, v in re.findall(r'holterd_alert_latency_seconds_bucket\{stage="' + stage + '",tier="' + tier + r'",le="([^"]+)"\} (\S+)', text.replace('+Inf', 'inf'))]
        if b and b[-1][1] > 0:
            print(f"episode events ({tier}), arrival to {stage}: {b[-1][1]:.0f} events, p50 <= {q(b, .5)} s, p99 <= {q(b, .99)} s, max <= {q(b, 1.0)} s")
packed = val('holterd_signal_packed_chunks_total')
b_in = val('holterd_signal_packed_bytes_total{stage="in"}'); b_out = val('holterd_signal_packed_bytes_total{stage="out"}')
print(f"compactor: packed {packed:.0f} chunks, {b_in / 1e6:.1f} MB of samples into {b_out / 1e6:.1f} MB of blocks")
print(f"compactor: packed {val('holterd_beats_packed_total'):.0f} beats into {val('holterd_beats_packed_bytes_total') / 1e6:.1f} MB of beat blocks")
waits = val('holterd_backpressure_waits_total{queue="ingest"}')
print(f"backpressure waits source->ingest {waits:.0f}, duplicates {val('holterd_duplicate_messages_total'):.0f}, gaps {val('holterd_gaps_total'):.0f}")
PY
log "daemon RSS at end $(rss) KiB"
