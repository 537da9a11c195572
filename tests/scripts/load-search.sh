#!/usr/bin/env bash
# The ceiling: the most live 360 Hz patients the daemon holds on this machine,
# found by bisection over runs of tests/scripts/load.sh. A count holds when the
# run's p99 end-to-end latency is at most 1 s (a histogram bucket bound), the
# broker holds at most 1 s of messages the daemon has not received when the
# fleet stops, the fleet kept time, and memory is flat (the last third's RSS within 5 % + 8 MB
# of the middle third's).
#   tests/scripts/load-search.sh [lo=1000] [hi=16000] [seconds=600] [chunk_ms=250] [step=500]
# EMBEDDED=1 searches the embedded default (SQLite, the daemon's own broker).
# Prints one line per probe and the ceiling; each probe's log is kept in $WORK.
set -euo pipefail
cd "$(dirname "$0")/../.."
LO=${1:-1000}; HI=${2:-16000}; S=${3:-600}; CHUNK=${4:-250}; STEP=${5:-500}
WORK=${WORK:-/tmp/holterd-e2e}
mkdir -p "$WORK"

# Prints "holds" or "fails: <why>" for one load.sh log.
verdict() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
why = []
m = re.search(r'p99 <= (\S+) s', text)
p99 = float(m.group(1)) if m else float('inf')
if p99 > 1.0:  # histogram bucket bounds: ..., 0.75, 1.0, 1.5, ...
    why.append(f'p99 <= {p99} s')
rss = [int(v) for v in re.findall(r'RSS\s+(\d+) KiB\s+streams', text)]
if len(rss) >= 3:
    third = len(rss) // 3
    middle = sum(rss[third:2 * third]) / max(1, third)
    last = sum(rss[2 * third:]) / max(1, len(rss) - 2 * third)
    if last > middle * 1.05 + 8192:
        why.append(f'memory grows ({middle / 1024:.0f} -> {last / 1024:.0f} MB)')
else:
    why.append('too short to judge memory')
# The compactor must keep pace: every chunk older than 240 s at the end of the
# run (120 s until it is due, one minute between passes, one more pass of lag) packed.
seconds = re.search(r'messages, \d+ samples in (\S+) s', text)
messages = re.search(r'beats stored: \d+, messages (\d+)', text)
packed = re.search(r'compactor: packed (\d+) chunks', text)
if seconds and messages and packed and float(seconds.group(1)) > 240:
    s = float(seconds.group(1))
    due = int(messages.group(1)) * (s - 240) / s
    if int(packed.group(1)) < due:
        why.append(f'the compactor fell behind ({packed.group(1)} of {due:.0f} chunks due packed)')
# Messages still in the broker after the fleet stopped: latency from arrival
# leaves that queue out, so a daemon falling behind shows here.
backlog = re.search(r'broker backlog 3 s after the fleet stopped: \d+ messages, (\S+) s', text)
if backlog and float(backlog.group(1)) > 1.0:
    why.append(f'the broker holds {backlog.group(1)} s of messages not yet received')
if 'late ticks' in text:
    late = re.search(r'(\d+) late ticks', text)
    if late and int(late.group(1)) > 0:
        why.append(f'the fleet fell behind ({late.group(1)} late ticks)')
print('holds' if not why else 'fails: ' + '; '.join(why))
PY
}

probe() {
  local n=$1 log="$WORK/search-$1.log"
  timeout $((S + 300)) tests/scripts/load.sh "$n" "$S" "$CHUNK" > "$log" 2>&1 || true
  local v; v=$(verdict "$log")
  echo "$(date +%H:%M:%S) $n patients: $v ($(grep -o 'p99 <= [^,]*' "$log" | head -1))" >&2
  [ "$v" = holds ]
}

best=0
if ! probe "$LO"; then echo "ceiling: below $LO patients"; exit 0; fi
best=$LO
while [ $((HI - best)) -gt "$STEP" ]; do
  mid=$(( (best + HI) / 2 / STEP * STEP ))
  [ "$mid" -le "$best" ] && mid=$((best + STEP))
  if probe "$mid"; then best=$mid; else HI=$mid; fi
done
echo "ceiling: $best patients hold (p99 <= 1 s, memory flat, compactor on pace, ${S} s runs, ${CHUNK} ms messages); $HI do not or were not tried"
