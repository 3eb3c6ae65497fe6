#!/usr/bin/env bash
# Builds cdr-exporter_<version>-<revision>_<arch>.deb from a staging tree with dpkg-deb.
#
#   scripts/build-deb.sh [--binary PATH] [--out DIR] [--revision N]
#                        [--compress xz|gzip|zstd|none] [--maintainer "Name <email>"]
#
# The version is Cargo.toml's; the Debian revision (default 1) counts packaging-only changes.
#
# Without --binary it runs `cargo build --release` and packages target/release/cdr-exporter;
# tests pass the binary they already built. Needs dpkg-dev (dpkg-shlibdeps) and binutils
# (strip), both on the CI image: no debhelper and no `cargo install cargo-deb`.
# The packaging sources (unit, defaults file, maintainer scripts, copyright) are in packaging/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
binary=""
out="$root/target/debian"
revision=1
compress=xz
maintainer="cdr-exporter maintainers <maintainers@cdr-exporter.invalid>"

die() {
  echo "build-deb.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,11s/^# \{0,1\}//p' "$0"
}

while (($#)); do
  case "$1" in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --revision) revision=${2:?--revision needs a number}; shift 2 ;;
    --compress) compress=${2:?--compress needs a type}; shift 2 ;;
    --maintainer) maintainer=${2:?--maintainer needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

for tool in dpkg-deb dpkg-shlibdeps dpkg strip gzip; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev binutils gzip)"
done

cd "$root"

# [package] version; a Cargo pre-release (1.0.0-rc.1) sorts before the release in Debian
# only with a tilde (1.0.0~rc.1).
version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || die "no version in Cargo.toml's [package]"
upstream=${version//-/\~}
version="$upstream-$revision"
arch=$(dpkg --print-architecture)

if [ -z "$binary" ]; then
  cargo build --release --locked --bin cdr-exporter
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  binary="$target_dir/release/cdr-exporter"
fi
[ -x "$binary" ] || die "not an executable: $binary"

# Reproducible: dpkg-deb clamps file times to SOURCE_DATE_EPOCH (the last commit's time).
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

umask 022
# dpkg-shlibdeps wants a debian/control and the files under debian/<package>/.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debian/cdr-exporter"
printf 'Source: cdr-exporter\n\nPackage: cdr-exporter\nArchitecture: any\n' >"$work/debian/control"
stage="$work/debian/cdr-exporter"

put() { # put MODE SRC DEST (DEST relative to the package root)
  install -D -m "$1" "$2" "$stage/$3"
}
gz() { # gz SRC DEST: policy 12.3, documentation over 4 KB is compressed
  mkdir -p "$(dirname "$stage/$2")"
  gzip -9nc "$1" >"$stage/$2"
  chmod 0644 "$stage/$2"
}

# Binary. Always stripped (a debug build too): symbols are no use without the sources, and
# the debug build's debug info would make the package ten times larger.
put 0755 "$binary" usr/bin/cdr-exporter
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  "$stage/usr/bin/cdr-exporter"

put 0644 packaging/cdr-exporter.service lib/systemd/system/cdr-exporter.service
put 0644 packaging/cdr-exporter.default etc/default/cdr-exporter
# The lintian tags left, each with its reason.
put 0644 packaging/lintian-overrides usr/share/lintian/overrides/cdr-exporter

# The packaged config is the example with data_dir in the unit's StateDirectory, generated so
# the two never drift.
[ "$(grep -c '^data_dir = ' config/cdr-exporter.toml)" = 1 ] ||
  die "config/cdr-exporter.toml must set data_dir on exactly one line"
mkdir -p "$stage/etc/cdr-exporter"
sed -e '/^data_dir = /i # Debian package: the unit'"'"'s StateDirectory=, the only place it may write.' \
  -e 's|^data_dir = .*|data_dir = "/var/lib/cdr-exporter"|' \
  config/cdr-exporter.toml >"$stage/etc/cdr-exporter/cdr-exporter.toml"
chmod 0644 "$stage/etc/cdr-exporter/cdr-exporter.toml"

share=usr/share/cdr-exporter
for f in cdr-exporter.rules.yml cdr-exporter.rules.yml.tmpl alertmanager.example.yml; do
  put 0644 "alerts/$f" "$share/alerts/$f"
done
# Same layout as the repository, so `promtool test rules .../alerts/tests/*.yml` works there.
for f in alerts/tests/*.yml; do
  put 0644 "$f" "$share/$f"
done
for f in grafana/dashboards/*.json grafana/provisioning/*/*.yml; do
  put 0644 "$f" "$share/$f"
done

doc=usr/share/doc/cdr-exporter
gz README.md "$doc/README.md.gz"
gz docs/runbooks.md "$doc/runbooks.md.gz"
gz alerts/README.md "$doc/alerts-README.md.gz"
# The sender-side configurations (Kamailio, FreeSWITCH), ready to copy.
for f in examples/*/*; do
  put 0644 "$f" "$doc/$f"
done
# Upstream changes as written; the Debian changelog only records this build.
gz CHANGELOG.md "$doc/changelog.gz"
printf 'cdr-exporter (%s) unstable; urgency=medium\n\n  * Built by scripts/build-deb.sh from cdr-exporter %s; upstream changes are\n    in changelog.gz.\n\n -- %s  %s\n' \
  "$version" "$upstream" "$maintainer" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")" \
  >"$work/changelog.Debian"
gz "$work/changelog.Debian" "$doc/changelog.Debian.gz"

# copyright: ours, plus the statically linked crates and their licenses.
crates=$(cargo tree --locked --offline -e normal --prefix none --format '{p}: {l}' |
  sed -e 's/ (proc-macro)//' -e 's/ (\*)$//' -e 's/ (\/[^)]*)//' | grep -v '^cdr-exporter ' |
  LC_ALL=C sort -u | sed 's/^/ /') || die "cargo tree failed (run cargo fetch first)"
[ -n "$crates" ] || die "cargo tree listed no crates"
mkdir -p "$stage/$doc"
while IFS= read -r line; do
  if [ "$line" = "@CRATES@" ]; then printf '%s\n' "$crates"; else printf '%s\n' "$line"; fi
done <packaging/copyright >"$stage/$doc/copyright"
chmod 0644 "$stage/$doc/copyright"

# Manual page from --help, so the options in it are the binary's.
man() {
  local b="$stage/usr/bin/cdr-exporter"
  # roff: backslashes escaped, a leading . or ' kept literal.
  esc() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
  printf '.TH CDR-EXPORTER 1 "%s" "cdr-exporter %s" "User Commands"\n' \
    "$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" "$upstream"
  printf '.SH NAME\ncdr-exporter \\- Prometheus exporter and CDR receiver for Cisco Meeting Server\n'
  printf '.SH SYNOPSIS\n.B cdr-exporter\n[\\fIOPTIONS\\fR] [\\fICOMMAND\\fR]\n'
  printf '.SH DESCRIPTION\n.nf\n'
  "$b" --help | esc
  printf '.fi\n'
  local cmd
  for cmd in $("$b" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' | grep -vx help); do
    printf '.SH "COMMAND: %s"\n.nf\n' "$cmd"
    "$b" "$cmd" --help | esc
    printf '.fi\n'
  done
  printf '.SH FILES\n'
  printf '.TP\n/etc/cdr-exporter/cdr-exporter.toml\nconfiguration (every key, with its default)\n'
  printf '.TP\n/etc/default/cdr-exporter\nARGS and environment for the systemd service\n'
  printf '.TP\n/var/lib/cdr-exporter\nstate: journal, snapshots, quarantine\n'
  printf '.TP\n/usr/share/cdr-exporter\nPrometheus rules and Grafana dashboards\n'
  printf '.SH SEE ALSO\n/usr/share/doc/cdr-exporter/README.md.gz, /usr/share/doc/cdr-exporter/runbooks.md.gz\n'
}
mkdir -p "$stage/usr/share/man/man1"
man | gzip -9n >"$stage/usr/share/man/man1/cdr-exporter.1.gz"
chmod 0644 "$stage/usr/share/man/man1/cdr-exporter.1.gz"

# Shared-library dependencies, as dh_shlibdeps computes them (it finds the package root by
# its DEBIAN directory).
mkdir -p "$stage/DEBIAN"
depends=$(cd "$work" && dpkg-shlibdeps -O -edebian/cdr-exporter/usr/bin/cdr-exporter | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies"

find "$stage" -type d -exec chmod 0755 {} +
installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: cdr-exporter
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Pre-Depends: init-system-helpers (>= 1.54~)
Depends: $depends
Suggests: prometheus, prometheus-alertmanager
Section: net
Priority: optional
Description: Prometheus exporter and CDR receiver for Cisco Meeting Server
 cdr-exporter receives the Call Detail Records that Cisco Meeting Server Call
 Bridges POST over HTTP or HTTPS, checks them for duplicates, gaps and Call
 Bridge restarts, ties call legs to their calls and tenants, and serves active
 calls and legs, starts and ends, leg end reasons, durations, an estimated MOS
 per leg and its own health on /metrics for Prometheus to scrape. Accepted
 records are journaled before they are acknowledged.
 .
 This package runs it as a hardened systemd service and ships Prometheus alert
 and recording rules, an Alertmanager example, Grafana dashboards and runbooks.
EOF
printf '/etc/cdr-exporter/cdr-exporter.toml\n/etc/default/cdr-exporter\n' >"$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do
  install -m 0755 "packaging/$s" "$stage/DEBIAN/$s"
done
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/cdr-exporter_${version}_${arch}.deb"
dpkg-deb --build --root-owner-group -Z"$compress" "$stage" "$deb" >/dev/null
echo "$deb"
