#!/usr/bin/env bash
# Checks what an SRE runs holterd with against a live daemon:
#   tests/scripts/monitoring-check.sh [target/release/holterd]
# - runs `holterd demo` (embedded broker, SQLite, simulated patients) for a few seconds;
# - `promtool check metrics` on its /metrics (exposition format and naming);
# - `promtool check rules` and `promtool test rules` on config/prometheus/holterd-rules.yml;
# - every metric the Grafana dashboard and the rules read is exported, and every
#   dashboard query parses (tests/scripts/monitoring-check.py).
# Needs promtool (Debian: apt-get install prometheus).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${1:-target/release/holterd}"
command -v promtool >/dev/null || { echo "promtool not found: apt-get install prometheus" >&2; exit 2; }

work="$(mktemp -d)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port="$(port)"; broker_port="$(port)"
cat > "$work/holterd.toml" <<TOML
[store]
sqlite_path = "$work/holterd.sqlite"
[embedded_broker]
listen = "127.0.0.1:$broker_port"
[http]
listen = "127.0.0.1:$http_port"
TOML
"$bin" demo --config "$work/holterd.toml" --records 100,119 --speed 10 >"$work/log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null || true; wait $daemon 2>/dev/null || true; rm -rf "$work"' EXIT

metrics="$work/metrics.txt"
for _ in $(seq 1 300); do
  if curl -sf "http://127.0.0.1:$http_port/metrics" -o "$metrics" \
     && grep -Eq '^holterd_beats_stored_total\{verdict="normal"\} [1-9]' "$metrics"; then
    break
  fi
  sleep 0.1
done
grep -Eq '^holterd_beats_stored_total\{verdict="normal"\} [1-9]' "$metrics" \
  || { echo "the demo stored no beats in 30 s; its log:" >&2; cat "$work/log" >&2; exit 1; }

echo "== promtool check metrics (live /metrics of holterd demo)"
promtool check metrics < "$metrics"
echo "== promtool check rules / test rules"
promtool check rules config/prometheus/holterd-rules.yml
promtool test rules tests/prometheus/holterd-rules.test.yml
echo "== dashboard and rules against the exported metrics"
python3 tests/scripts/monitoring-check.py "$metrics" config/grafana/holterd.json config/prometheus/holterd-rules.yml
