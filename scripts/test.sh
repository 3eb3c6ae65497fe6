#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs
# formatting, lints and every test. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests need from Debian; each test fails loudly, never skips, when it is missing:
# - promtool and prometheus (prometheus), amtool and the Alertmanager (prometheus-alertmanager):
#   exposition, rule and end-to-end tests;
# - Kamailio with http_client (kamailio-utils-modules), jansson/acc_json (kamailio-extra-modules)
#   and KEMI Lua (kamailio-lua-modules), rtpengine (rtpengine-daemon), SIPp (sip-tester): the
#   real Kamailio + rtpengine test;
# - dpkg-shlibdeps (dpkg-dev), strip (binutils), systemd-analyze (systemd), deb-systemd-helper
#   (init-system-helpers), strace: the Debian package test.
need=()
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)
{ command -v amtool && command -v prometheus-alertmanager; } >/dev/null 2>&1 || need+=(prometheus-alertmanager)
pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || need+=("$1"); }
for p in kamailio kamailio-utils-modules kamailio-extra-modules kamailio-lua-modules \
  rtpengine-daemon sip-tester dpkg-dev binutils systemd init-system-helpers strace; do
  pkg "$p"
done
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

# Every target, then one closing line with the totals over all test binaries.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$log" | awk '{s += $6} END {print s + 0}')
echo
echo "tests: ${passed} passed, ${failed} failed"
exit "$status"
