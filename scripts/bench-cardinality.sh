#!/usr/bin/env bash
# Series and scrape size at the README's "Cardinality" sizes (BENCHMARKS.md "/metrics size",
# issue 10): for each Call Bridges x tenants, a fresh release exporter with the default
# configuration, fed by the simulator for CARD_SECONDS (90) at CARD_CPS (200) calls/s,
#   cdr-exporter simulate --call-bridges B --tenants T --calls-per-second 200 --duration 90s
# then: series (sample lines), text 0.0.4 and OpenMetrics bytes, gzip bytes (as Prometheus asks:
# Accept-Encoding: gzip), the median and max of 20 scrapes (curl's total time, loopback), and
# the exporter's RSS. Not run in CI.
#
#   scripts/bench-cardinality.sh [BxT ...]      (default: 3x4 24x300 24x2000)
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${CARD_SECONDS:-90}
CPS=${CARD_CPS:-200}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(3x4 24x300 24x2000)

cargo build --release --quiet --bin cdr-exporter
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/cdr-exporter

work=$(mktemp -d /tmp/cdr-card.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

printf '%-9s %8s %11s %11s %10s %6s %12s %12s %8s\n' size series text_bytes om_bytes gzip_bytes ratio scrape_p50 scrape_max rss_mb
for size in "${sizes[@]}"; do
  b=${size%x*}
  t=${size#*x}
  rm -rf "$work/data"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$BIN" --listen "127.0.0.1:$port" --data-dir "$work/data" --log-level warn 2>"$work/stderr" &
  pid=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/-/ready" >/dev/null && break; sleep 0.1; done
  "$BIN" simulate --target "http://127.0.0.1:$port/cdr" --call-bridges "$b" --tenants "$t" \
    --calls-per-second "$CPS" --duration "${SECS}s" --seed 10 --quiet >"$work/sim.txt"
  url="http://127.0.0.1:$port/metrics"
  curl -sf "$url" -o "$work/m.txt"
  curl -sf -H 'Accept: application/openmetrics-text;version=1.0.0' "$url" -o "$work/om.txt"
  curl -sf -H 'Accept-Encoding: gzip' "$url" -o "$work/m.gz"
  series=$(grep -vc '^#' "$work/m.txt")
  times=$(for _ in $(seq 1 20); do curl -sf -H 'Accept-Encoding: gzip' -o /dev/null -w '%{time_total}\n' "$url"; done | sort -n)
  p50=$(echo "$times" | sed -n '10p')
  max=$(echo "$times" | tail -1)
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")
  tb=$(stat -c %s "$work/m.txt"); ob=$(stat -c %s "$work/om.txt"); gb=$(stat -c %s "$work/m.gz")
  printf '%-9s %8d %11d %11d %10d %6.1f %11.1fms %11.1fms %8s\n' "$size" "$series" "$tb" "$ob" "$gb" \
    "$(echo "$tb / $gb" | bc -l)" "$(echo "$p50 * 1000" | bc -l)" "$(echo "$max * 1000" | bc -l)" "$rss"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
