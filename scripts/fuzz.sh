#!/usr/bin/env bash
# Fuzz cdr::parse and parse + apply for a bounded time (default 300 s) with many more
# property-test cases than the suite's smoke run. Exits non-zero on the first failure and
# prints the minimal failing input.
#   scripts/fuzz.sh [SECONDS] [CASES]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-300}"
cases="${2:-1000000}"
cargo build --release --tests --quiet
start=$(date +%s)
round=0
while (( $(date +%s) - start < secs )); do
  round=$((round + 1))
  left=$(( secs - ($(date +%s) - start) ))
  # Each round uses a fresh random seed; timeout bounds the whole run.
  PROPTEST_CASES="$cases" timeout --signal=INT "${left}s" \
    cargo test --release --quiet --test fuzz -- --test-threads=2 || {
      rc=$?
      if [ "$rc" -eq 124 ] || [ "$rc" -eq 130 ]; then break; fi
      echo "fuzz: FAILED in round $round" >&2
      exit "$rc"
    }
done
echo "fuzz: no failure in $(( $(date +%s) - start )) s ($round round(s))"
