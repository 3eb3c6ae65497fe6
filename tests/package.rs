//! The Debian package. `scripts/build-deb.sh` packages this test's own binary; the .deb holds
//! every file with its mode and the right control fields; the unit passes `systemd-analyze
//! verify` and `security`; the installed binary, run with the installed config, serves
//! /metrics, survives SIGHUP (`systemctl reload`), exits 0 on SIGTERM, and makes no system
//! call that the unit's SystemCallFilter= forbids.
//!
//! Installing: as root on a machine where systemd is not running (CI), the package is
//! installed for real with `dpkg -i`, so the maintainer scripts run; then upgraded, removed
//! and purged, and purged on drop if the test fails half way. Otherwise (not root, or a
//! booted systemd host, where postinst would start the real service on its public port), or
//! with `PACKAGE_TEST_EXTRACT=1`, it is unpacked into a temp root with `dpkg-deb -x`.
//!
//! Needs dpkg-deb and dpkg-shlibdeps (dpkg-dev), strip (binutils), systemd-analyze (systemd)
//! and strace: it fails, never skips, without them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cdr_exporter::config::{Config, Overrides};
use common::{fixture, Reaped};

const UNIT: &str = "lib/systemd/system/cdr-exporter.service";
const CONFIG: &str = "etc/cdr-exporter/cdr-exporter.toml";
const DEFAULTS: &str = "etc/default/cdr-exporter";
const STATE: &str = "/var/lib/cdr-exporter";
const PRIVATE_STATE: &str = "/var/lib/private/cdr-exporter";
const WANTS_LINK: &str = "/etc/systemd/system/multi-user.target.wants/cdr-exporter.service";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails loudly when a tool is missing, naming the Debian package that has it.
fn need(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(found, "{tool} not found: apt-get install {package}");
}

fn need_all() {
    need("dpkg-deb", "dpkg");
    need("dpkg-shlibdeps", "dpkg-dev");
    need("strip", "binutils");
    need("systemd-analyze", "systemd");
    need("strace", "strace");
}

fn report(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs to completion; panics with the output unless it succeeded. Returns stdout.
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(out.status.success(), "{}", report(what, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn arch() -> String {
    run(
        "dpkg --print-architecture",
        Command::new("dpkg").arg("--print-architecture"),
    )
    .trim()
    .to_owned()
}

/// `scripts/build-deb.sh` on this test's binary; returns the .deb's path. gzip instead of
/// the default xz: the contents are the same, and xz of the debug binary takes 15 s here.
fn build_deb(out: &Path, revision: u32) -> PathBuf {
    let stdout = run(
        "scripts/build-deb.sh",
        Command::new("bash")
            .arg(repo().join("scripts/build-deb.sh"))
            .args(["--binary", env!("CARGO_BIN_EXE_cdr-exporter")])
            .arg("--out")
            .arg(out)
            .args(["--compress", "gzip", "--revision", &revision.to_string()]),
    );
    let deb = PathBuf::from(stdout.lines().last().expect("build-deb.sh printed nothing"));
    let want = format!(
        "cdr-exporter_{}-{revision}_{}.deb",
        env!("CARGO_PKG_VERSION").replace('-', "~"),
        arch()
    );
    assert_eq!(deb.file_name().unwrap().to_str().unwrap(), want);
    assert!(deb.is_file(), "{} missing", deb.display());
    deb
}

/// The package, built once for all tests of this file (revision 1).
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        need_all();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        build_deb(&dir, 1)
    })
}

/// Files the package must hold besides the fixed ones: everything under alerts/ (except its
/// README, which goes to the docs) and grafana/, and examples/ under the docs, so a new rules
/// test, dashboard or example that is not packaged fails here.
fn shipped_from_repo() -> Vec<String> {
    let mut v = Vec::new();
    fn walk(dir: &Path, rel: &str, v: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let rel = format!("{rel}/{name}");
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &rel, v);
            } else if rel != "alerts/README.md" {
                v.push(format!("/usr/share/cdr-exporter/{rel}"));
            }
        }
    }
    walk(&repo().join("alerts"), "alerts", &mut v);
    walk(&repo().join("grafana"), "grafana", &mut v);
    // The sender-side examples go with the docs.
    let mut examples = Vec::new();
    for sender in ["freeswitch", "kamailio"] {
        let rel = format!("examples/{sender}");
        walk(&repo().join(&rel), &rel, &mut examples);
    }
    v.extend(
        examples
            .into_iter()
            .map(|p| p.replace("/usr/share/cdr-exporter/", "/usr/share/doc/cdr-exporter/")),
    );
    v
}

fn field(deb: &Path, name: &str) -> String {
    run(
        "dpkg-deb -f",
        Command::new("dpkg-deb").arg("-f").arg(deb).arg(name),
    )
    .trim()
    .to_owned()
}

fn gunzip(path: &Path) -> String {
    run("gzip -dc", Command::new("gzip").arg("-dc").arg(path))
}

#[test]
fn deb_holds_every_file_with_its_mode_and_the_control_fields() {
    let deb = deb();

    // (b) Contents: exactly these files, root-owned, with these modes; directories 0755.
    let listing = run("dpkg-deb -c", Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut files = BTreeMap::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.len(), 6, "unexpected entry (a link?): {line}");
        assert_eq!(cols[1], "root/root", "{line}");
        let path = cols[5].trim_start_matches('.').trim_end_matches('/');
        if cols[0].starts_with('d') {
            assert_eq!(cols[0], "drwxr-xr-x", "{line}");
        } else {
            files.insert(path.to_owned(), cols[0].to_owned());
        }
    }
    let mut want: BTreeMap<String, &str> = [
        "/lib/systemd/system/cdr-exporter.service",
        "/etc/default/cdr-exporter",
        "/etc/cdr-exporter/cdr-exporter.toml",
        "/usr/share/doc/cdr-exporter/README.md.gz",
        "/usr/share/doc/cdr-exporter/runbooks.md.gz",
        "/usr/share/doc/cdr-exporter/alerts-README.md.gz",
        "/usr/share/doc/cdr-exporter/changelog.gz",
        "/usr/share/doc/cdr-exporter/changelog.Debian.gz",
        "/usr/share/doc/cdr-exporter/copyright",
        "/usr/share/man/man1/cdr-exporter.1.gz",
        "/usr/share/lintian/overrides/cdr-exporter",
    ]
    .into_iter()
    .map(String::from)
    .chain(shipped_from_repo())
    .map(|p| (p, "-rw-r--r--"))
    .collect();
    want.insert("/usr/bin/cdr-exporter".into(), "-rwxr-xr-x");
    for must in [
        "/usr/share/cdr-exporter/alerts/cdr-exporter.rules.yml",
        "/usr/share/cdr-exporter/alerts/cdr-exporter.rules.yml.tmpl",
        "/usr/share/cdr-exporter/alerts/alertmanager.example.yml",
        "/usr/share/cdr-exporter/alerts/tests/receiver.test.yml",
        "/usr/share/cdr-exporter/grafana/dashboards/cms-overview.json",
        "/usr/share/cdr-exporter/grafana/provisioning/dashboards/cdr-exporter.yml",
    ] {
        assert!(
            want.contains_key(must),
            "{must} not in the repository any more?"
        );
    }
    let got: BTreeMap<String, &str> = files.iter().map(|(k, v)| (k.clone(), &v[..])).collect();
    assert_eq!(got, want, "package contents");

    // Control fields.
    let version = format!("{}-1", env!("CARGO_PKG_VERSION").replace('-', "~"));
    assert_eq!(field(deb, "Package"), "cdr-exporter");
    assert_eq!(field(deb, "Version"), version);
    assert_eq!(field(deb, "Architecture"), arch());
    assert_eq!(field(deb, "Section"), "net");
    assert_eq!(field(deb, "Priority"), "optional");
    assert!(
        field(deb, "Maintainer").contains('<'),
        "Maintainer: Name <email>"
    );
    let depends = field(deb, "Depends");
    assert!(depends.contains("libc6 (>= "), "Depends: {depends}");
    assert_eq!(
        field(deb, "Pre-Depends"),
        "init-system-helpers (>= 1.54~)",
        "deb-systemd-helper in the maintainer scripts"
    );
    let size: u64 = field(deb, "Installed-Size").parse().unwrap();
    assert!(size > 1000, "Installed-Size {size} KiB");
    assert!(field(deb, "Description").starts_with("Prometheus exporter and CDR receiver"));

    // Control archive: conffiles, executable maintainer scripts that parse.
    let ctl = tempfile::tempdir().unwrap();
    run(
        "dpkg-deb -e",
        Command::new("dpkg-deb").arg("-e").arg(deb).arg(ctl.path()),
    );
    let conffiles = std::fs::read_to_string(ctl.path().join("conffiles")).unwrap();
    assert_eq!(
        conffiles.lines().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "/etc/cdr-exporter/cdr-exporter.toml",
            "/etc/default/cdr-exporter"
        ])
    );
    for s in ["postinst", "prerm", "postrm"] {
        let p = ctl.path().join(s);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&p).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o755, "{s}");
        run(s, Command::new("sh").arg("-n").arg(&p));
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{s}");
        assert!(
            text.contains("deb-systemd-"),
            "{s} does not use deb-systemd-helper/invoke"
        );
    }
    assert!(std::fs::read_to_string(ctl.path().join("md5sums"))
        .unwrap()
        .contains("  usr/bin/cdr-exporter\n"));

    // Files that are generated or must say particular things.
    let root = tempfile::tempdir().unwrap();
    run(
        "dpkg-deb -x",
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()),
    );
    let r = root.path();

    // The config is the example with data_dir in the state directory, nothing else changed.
    let packaged = std::fs::read_to_string(r.join(CONFIG)).unwrap();
    let example = std::fs::read_to_string(repo().join("config/cdr-exporter.toml")).unwrap();
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with("data_dir = ") && !l.starts_with("# Debian package:"))
            .map(String::from)
            .collect()
    };
    assert_eq!(
        strip(&packaged),
        strip(&example),
        "only data_dir may differ"
    );
    let loaded = Config::load(Some(&r.join(CONFIG)), &Overrides::default()).unwrap();
    assert_eq!(
        loaded,
        Config {
            data_dir: STATE.into(),
            ..Config::default()
        }
    );

    let unit = std::fs::read_to_string(r.join(UNIT)).unwrap();
    for line in [
        "Type=simple",
        "EnvironmentFile=-/etc/default/cdr-exporter",
        "ExecStart=/usr/bin/cdr-exporter --config /etc/cdr-exporter/cdr-exporter.toml $ARGS",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=cdr-exporter",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "NoNewPrivileges=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "UMask=0077",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
    // Longer than the exporter's 30 s drain plus its final snapshot.
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(stop > 30, "TimeoutStopSec={stop}");
    let nofile: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE")
        .parse()
        .unwrap();
    let conns = Config::default().server.max_connections as u64;
    assert!(nofile > 2 * conns, "LimitNOFILE={nofile}");

    let defaults = std::fs::read_to_string(r.join(DEFAULTS)).unwrap();
    assert!(defaults.lines().any(|l| l == "ARGS=\"\""), "{defaults}");

    let doc = r.join("usr/share/doc/cdr-exporter");
    let changelog = std::fs::read_to_string(repo().join("CHANGELOG.md")).unwrap();
    assert_eq!(gunzip(&doc.join("changelog.gz")), changelog);
    assert!(changelog.contains("## Unreleased") && changelog.contains("## 0.1.0"));
    assert!(
        gunzip(&doc.join("changelog.Debian.gz")).starts_with(&format!(
            "cdr-exporter ({version}) unstable; urgency=medium\n"
        ))
    );
    assert_eq!(
        gunzip(&doc.join("README.md.gz")),
        std::fs::read_to_string(repo().join("README.md")).unwrap()
    );
    let copyright = std::fs::read_to_string(doc.join("copyright")).unwrap();
    assert!(copyright.starts_with(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
    ));
    assert!(copyright.contains("\nLicense: Apache-2.0\n"));
    assert!(copyright.contains("\n tokio v"), "crates listed");
    assert!(!copyright.contains("@CRATES@"));
    // The manual page is made from --help.
    let man = gunzip(&r.join("usr/share/man/man1/cdr-exporter.1.gz"));
    assert!(man.starts_with(".TH CDR-EXPORTER 1 ") && man.contains("--data-dir"));
}

// ---------------------------------------------------------------------------------------
// Installed.

/// Where the package's files are: `/` after `dpkg -i`, a temp dir after `dpkg-deb -x`.
enum Installed {
    System,
    Extracted(tempfile::TempDir),
}

impl Installed {
    fn root(&self) -> &Path {
        match self {
            Installed::System => Path::new("/"),
            Installed::Extracted(d) => d.path(),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel.trim_start_matches('/'))
    }
}

/// Purges the package if a test fails while it is installed system-wide.
struct PurgeOnDrop(bool);

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        if self.0 {
            let _ = Command::new("dpkg")
                .args(["--purge", "cdr-exporter"])
                .output();
        }
    }
}

fn is_root() -> bool {
    run("id -u", Command::new("id").arg("-u")).trim() == "0"
}

/// dpkg status of the package: "installed", "config-files", or "" when unknown to dpkg.
fn dpkg_status() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", "cdr-exporter"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// dpkg, waiting for the lock if another install (a parallel test suite's apt-get) holds it.
fn dpkg(args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let out = Command::new("dpkg").args(args).output().unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let locked = err.contains("lock");
        if !locked || Instant::now() > deadline {
            panic!("{}", report(&format!("dpkg {args:?}"), &out));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Marks the stand-in state this test makes, so a later run may purge it.
const TEST_MARKER: &str = "journal/made-by-tests-package.rs";

fn has_state(dir: &str) -> bool {
    ["journal", "snapshots"]
        .iter()
        .any(|d| Path::new(dir).join(d).exists())
}

/// State that this test did not make: someone's real data.
fn real_state(dir: &str) -> bool {
    has_state(dir) && !Path::new(dir).join(TEST_MARKER).exists()
}

fn install(deb: &Path) -> (Installed, PurgeOnDrop) {
    let extract = std::env::var("PACKAGE_TEST_EXTRACT").is_ok_and(|v| v == "1")
        || !is_root()
        || Path::new("/run/systemd/system").exists();
    if extract {
        let root = tempfile::tempdir().unwrap();
        run(
            "dpkg-deb -x",
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()),
        );
        return (Installed::Extracted(root), PurgeOnDrop(false));
    }
    // A previous run's leftover is purged; a real installation with data is not ours to purge.
    if !dpkg_status().is_empty() {
        assert!(
            !real_state(STATE) && !real_state(PRIVATE_STATE),
            "cdr-exporter is installed here with state in {STATE}: not purging it for a test \
             (run with PACKAGE_TEST_EXTRACT=1, or purge it yourself)"
        );
        dpkg(&["--purge", "cdr-exporter"]);
    }
    let guard = PurgeOnDrop(true);
    dpkg(&["-i", deb.to_str().unwrap()]);
    assert_eq!(dpkg_status(), "installed");
    // Every file as packaged (md5sums).
    let verify = Command::new("dpkg")
        .args(["--verify", "cdr-exporter"])
        .output()
        .unwrap();
    assert!(
        verify.status.success() && verify.stdout.is_empty(),
        "{}",
        report("dpkg --verify", &verify)
    );
    // postinst enabled the unit although systemd is not running (as dh_installsystemd does).
    assert_eq!(
        std::fs::read_link(WANTS_LINK).expect("unit not enabled"),
        Path::new("/lib/systemd/system/cdr-exporter.service")
    );
    (Installed::System, guard)
}

/// `systemd-analyze verify` prints unknown keys and bad values but still exits 0: any output
/// is a failure. It checks that ExecStart's binary is executable and that the man page in
/// Documentation= exists, so it runs on the installed unit; `--root` does not help (it then
/// wants the whole system, sysinit.target and /bin/kill included, under that root). For an
/// extracted tree it runs on a copy whose binary path points into the tree, with MANPATH.
fn verify_unit(inst: &Installed) -> PathBuf {
    let unit = inst.path(UNIT);
    let (path, manpath) = match inst {
        Installed::System => (unit, None),
        Installed::Extracted(d) => {
            let text = std::fs::read_to_string(&unit).unwrap().replace(
                "/usr/bin/cdr-exporter",
                d.path().join("usr/bin/cdr-exporter").to_str().unwrap(),
            );
            let copy = d.path().join("cdr-exporter.service");
            std::fs::write(&copy, text).unwrap();
            (copy, Some(d.path().join("usr/share/man")))
        }
    };
    let mut cmd = Command::new("systemd-analyze");
    cmd.arg("verify").arg(&path);
    if let Some(m) = &manpath {
        cmd.env("MANPATH", m);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        report("systemd-analyze verify", &out)
    );

    // Exposure score ("1.2 OK" today); 2.0 fails on a lost hardening option or two.
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Overall exposure level for cdr-exporter.service"),
        "{}",
        report("systemd-analyze security", &out)
    );
    path
}

/// The installed binary with the installed config; only `listen` (loopback, port 0) and
/// `data_dir` overridden through the environment, as the unit's environment file could.
fn command(inst: &Installed, data_dir: &Path) -> Command {
    let mut cmd = Command::new(inst.path("/usr/bin/cdr-exporter"));
    cmd.arg("--config").arg(inst.path(CONFIG));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CDR_EXPORTER_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CDR_EXPORTER_LISTEN", "127.0.0.1:0")
        .env("CDR_EXPORTER_DATA_DIR", data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn log_lines(child: &mut Reaped) -> Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn wait_log(logs: &Receiver<String>, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match logs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(what) => return line,
            Ok(_) => {}
            Err(e) => panic!("no log line with {what:?}: {e}"),
        }
    }
}

fn listening_addr(logs: &Receiver<String>) -> SocketAddr {
    let line = wait_log(logs, "cdr-exporter listening");
    let addr = line
        .split("addr=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no addr= in {line}"));
    addr.parse().unwrap()
}

/// One HTTP/1.1 request on its own connection: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/xml\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {text:.80}")))?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Ok((status, body.to_owned()))
}

/// Polls until /metrics answers 200 with the build info.
fn wait_metrics(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match http(addr, "GET", "/metrics", b"") {
            Ok((200, body)) if body.contains("cdr_exporter_build_info") => return body,
            r => assert!(Instant::now() < deadline, "/metrics never ready: {r:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill(signal: &str, pid: u32) {
    run(
        "kill",
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string()),
    );
}

fn wait_exit(child: &mut Reaped) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a service sees in its life: start, a scrape, a batch (journal, fsync), SIGHUP,
/// SIGTERM (drain, final snapshot). `pid` is the exporter's (under strace, not the child's).
fn exercise(logs: &Receiver<String>, pid: u32, alive: &mut dyn FnMut() -> bool) {
    let addr = listening_addr(logs);
    wait_metrics(addr);
    let (status, _) = http(addr, "POST", "/cdr", &fixture("clustered-batch.xml")).unwrap();
    assert_eq!(status, 200);
    assert!(wait_metrics(addr).contains("cdr_exporter_records_total{"));
    kill("HUP", pid);
    wait_log(logs, "SIGHUP received");
    assert!(alive(), "SIGHUP ended the exporter");
    wait_metrics(addr);
    kill("TERM", pid);
    wait_log(logs, "cdr-exporter stopped");
}

/// SIGKILLs a process that is not our child (the exporter under strace) if the test fails:
/// strace killed on drop would only detach from it.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .output();
    }
}

/// Every system call in `group`, nested groups expanded, as `systemd-analyze` knows them.
fn syscalls(group: &str, out: &mut BTreeSet<String>) {
    let text = run(
        "systemd-analyze syscall-filter",
        Command::new("systemd-analyze").args(["syscall-filter", group]),
    );
    for line in text.lines().skip(1) {
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if name.starts_with('@') {
            syscalls(name, out);
        } else {
            out.insert(name.to_owned());
        }
    }
}

/// The exporter under strace through the same life; every call it made must pass the unit's
/// SystemCallFilter= (allow-list, then deny-list), or systemd would fail it with EPERM.
fn check_syscalls(inst: &Installed, unit: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let summary = tmp.path().join("strace.txt");
    let cmd = command(inst, &tmp.path().join("data"));
    let exe = cmd.get_program().to_owned();
    let exe_name = Path::new(&exe).file_name().unwrap().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-qq", "-c", "-U", "name,calls", "-o"])
        .arg(&summary)
        .arg(exe)
        .args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => strace.env(k, v),
            None => strace.env_remove(k),
        };
    }
    strace
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Reaped(strace.spawn().expect("spawn strace"));
    let logs = log_lines(&mut child);
    // The exporter is strace's child once it has exec'd the binary; before that strace forks
    // short-lived children of its own to probe ptrace features (a signal sent to one of
    // those finds no process).
    let children = format!("/proc/{0}/task/{0}/children", child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    let pid: u32 = loop {
        let c = std::fs::read_to_string(&children).unwrap_or_default();
        let exporter = c.split_whitespace().find(|p| {
            std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| exe.ends_with(&exe_name))
        });
        if let Some(p) = exporter {
            break p.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "strace started no exporter");
        std::thread::sleep(Duration::from_millis(10));
    };
    let _kill = KillOnDrop(pid);
    let stat = format!("/proc/{pid}");
    exercise(&logs, pid, &mut || Path::new(&stat).exists());
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), Some(0), "under strace: {st:?}");

    let text = std::fs::read_to_string(&summary).unwrap();
    let used: BTreeSet<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("---"))
        .skip(1)
        .take_while(|l| !l.starts_with("---"))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    assert!(
        used.contains("fsync") || used.contains("fdatasync"),
        "{text}"
    );

    // The filter as the unit states it.
    let unit_text = std::fs::read_to_string(unit).unwrap();
    let mut allowed = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for v in unit_text
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        let (deny, list) = match v.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, v),
        };
        for item in list.split_whitespace() {
            let mut set = BTreeSet::new();
            if item.starts_with('@') {
                syscalls(item, &mut set);
            } else {
                set.insert(item.to_owned());
            }
            if deny {
                denied.extend(set);
            } else {
                allowed.extend(set);
            }
        }
    }
    assert!(
        allowed.len() > 100 && denied.contains("setuid"),
        "filter not parsed"
    );
    let refused: Vec<_> = used
        .iter()
        .filter(|s| !allowed.contains(*s) || denied.contains(*s))
        .collect();
    assert!(
        refused.is_empty(),
        "the unit's SystemCallFilter= refuses system calls the exporter makes: {refused:?}"
    );
}

#[test]
fn installed_package_verifies_runs_and_purges() {
    let deb = deb();
    // (d) Installed for real, or unpacked: see the file's doc comment.
    let (inst, mut guard) = install(deb);

    // (c) The unit as installed.
    let unit = verify_unit(&inst);

    // The installed config, unchanged, puts the state where the unit allows writing.
    let printed = run(
        "cdr-exporter --print-config",
        Command::new(inst.path("/usr/bin/cdr-exporter"))
            .arg("--config")
            .arg(inst.path(CONFIG))
            .arg("--print-config")
            .env_remove("CDR_EXPORTER_DATA_DIR"),
    );
    assert!(
        printed.contains("data_dir = \"/var/lib/cdr-exporter\""),
        "{printed}"
    );

    // (e) The installed binary serves, survives SIGHUP, exits 0 on SIGTERM.
    let data = tempfile::tempdir().unwrap();
    let mut child = Reaped(
        command(&inst, data.path())
            .spawn()
            .expect("spawn installed cdr-exporter"),
    );
    let logs = log_lines(&mut child);
    let pid = child.id();
    {
        let child = &mut child;
        exercise(&logs, pid, &mut || child.try_wait().unwrap().is_none());
    }
    let st = wait_exit(&mut child);
    assert_eq!(st.code(), Some(0), "{st:?}");
    let snapshots = std::fs::read_dir(data.path().join("snapshots"))
        .unwrap()
        .count();
    assert!(
        snapshots > 0,
        "no final snapshot in {}",
        data.path().display()
    );

    check_syscalls(&inst, &unit);

    if let Installed::System = inst {
        upgrade_remove_purge(deb);
        guard.0 = false;
    }
}

/// Upgrade keeps an edited conffile and the state; remove keeps both; purge removes both and
/// the enablement link.
fn upgrade_remove_purge(deb: &Path) {
    // What systemd would have made on a first start (DynamicUser= StateDirectory=).
    assert!(
        std::fs::symlink_metadata(STATE).is_err() && !Path::new(PRIVATE_STATE).exists(),
        "{STATE} exists although the package was purged"
    );
    // systemd makes /var/lib/private (0700) on a first start; remove it after if we made it.
    let made_private = !Path::new(PRIVATE_STATE).parent().unwrap().exists();
    std::fs::create_dir_all(Path::new(PRIVATE_STATE).join("journal")).unwrap();
    std::fs::write(Path::new(PRIVATE_STATE).join(TEST_MARKER), "").unwrap();
    std::os::unix::fs::symlink("private/cdr-exporter", STATE).unwrap();
    let config = Path::new("/").join(CONFIG);
    let edited = std::fs::read_to_string(&config).unwrap() + "# a local edit\n";
    std::fs::write(&config, &edited).unwrap();

    let dir = deb.parent().unwrap().join("revision-2");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let deb2 = build_deb(&dir, 2);
    dpkg(&["-i", deb2.to_str().unwrap()]);
    let version = run(
        "dpkg-query",
        Command::new("dpkg-query").args(["-W", "-f=${Version}", "cdr-exporter"]),
    );
    assert!(version.ends_with("-2"), "{version}");
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        edited,
        "conffile kept"
    );
    assert!(has_state(STATE), "state kept on upgrade");

    dpkg(&["--remove", "cdr-exporter"]);
    assert_eq!(dpkg_status(), "config-files");
    assert!(!Path::new("/usr/bin/cdr-exporter").exists());
    assert!(config.exists(), "remove keeps conffiles");
    assert!(has_state(STATE), "remove keeps the state");

    dpkg(&["--purge", "cdr-exporter"]);
    assert_eq!(dpkg_status(), "");
    for gone in [
        config.as_path(),
        Path::new("/etc/default/cdr-exporter"),
        Path::new(STATE),
        Path::new(PRIVATE_STATE),
        Path::new(WANTS_LINK),
    ] {
        assert!(
            std::fs::symlink_metadata(gone).is_err(),
            "{} left after purge",
            gone.display()
        );
    }
    if made_private {
        std::fs::remove_dir(Path::new(PRIVATE_STATE).parent().unwrap()).unwrap();
    }
}
