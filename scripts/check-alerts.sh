#!/usr/bin/env bash
# Checks the shipped Prometheus rules and the Alertmanager example with the real tools:
#   promtool check rules --lint=all --lint-fatal alerts/*.rules.yml
#   promtool test rules alerts/tests/*.yml          (unit tests of every alert and recording rule)
#   amtool check-config alerts/alertmanager.example.yml
#   amtool config routes test ...                    (a critical and a warning alert)
# Exits non-zero on any failure. Never skips: without promtool or amtool it fails and says
# how to install them (Debian: apt-get install prometheus prometheus-alertmanager).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v promtool >/dev/null 2>&1 || missing+=("promtool (Debian package: prometheus)")
command -v amtool >/dev/null 2>&1 || missing+=("amtool (Debian package: prometheus-alertmanager)")
if ((${#missing[@]})); then
  printf 'check-alerts: FAILED: missing %s\n' "${missing[@]}" >&2
  echo "check-alerts: install with: apt-get install prometheus prometheus-alertmanager" >&2
  exit 2
fi

shopt -s nullglob
rules=(alerts/*.rules.yml)
tests=(alerts/tests/*.yml)
if ((${#rules[@]} == 0 || ${#tests[@]} == 0)); then
  echo "check-alerts: FAILED: no alerts/*.rules.yml or no alerts/tests/*.yml" >&2
  exit 1
fi

step() { echo "check-alerts: $*" >&2; }

step "promtool check rules --lint=all --lint-fatal ${rules[*]}"
promtool check rules --lint=all --lint-fatal "${rules[@]}"

step "promtool test rules ${tests[*]}"
promtool test rules "${tests[@]}"

am=alerts/alertmanager.example.yml
step "amtool check-config $am"
amtool check-config "$am"

# label set → the receivers it must reach (only those).
route() {
  local want=$1
  shift
  step "amtool config routes test $* → $want"
  amtool config routes test --config.file="$am" --verify.receivers="$want" "$@"
}
route pager alertname=CdrLowMos severity=critical scope=node source=cms job=cdr-exporter node=cms1
route pager alertname=CmsCdrRecordsMissing severity=critical job=cdr-exporter call_bridge=cms1
route pager alertname=CdrExporterDown severity=critical job=cdr-exporter instance=exporter:19477
route chat alertname=CdrLowMos severity=warning scope=tenant source=freeswitch job=cdr-exporter tenant=acme.example
route chat alertname=CdrSourceSilent severity=warning source=kamailio job=cdr-exporter node=kam1 evidence=earlier_traffic
route chat alertname=CdrExporterRejectingBatches severity=warning job=cdr-exporter instance=exporter:19477 reason=wrong_root
route chat alertname=CmsAbnormalLegEnds severity=warning job=cdr-exporter call_bridge=cms1
route chat alertname=SomethingElse severity=info

step "OK"
