//! The shipped binary and files: it starts without a config, stops cleanly on SIGTERM, its
//! example config loads, and promtool accepts its text exposition.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cdr_exporter::config::{Config, Overrides};
use common::binary::{exe, Exporter};
use common::*;

#[tokio::test]
async fn binary_runs_without_config_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // The address comes from the environment layer, the data dir from a flag.
    let child = Exporter::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    let mut c = Conn::open(child.addr).await;
    assert_eq!(
        c.post("/cdr", fixture("clustered-batch.xml")).await.status,
        200
    );
    let s = c.scrape().await;
    assert_eq!(s.sum("cdr_exporter_records_total", &[]), 4.0);
    drop(c);
    let st = child.sigterm();
    assert_eq!(st.code(), Some(0), "{st:?}");
}

/// `systemctl reload` sends SIGHUP; without TLS it must not end the process (its default
/// action would, and systemd would not restart a clean signal exit).
#[tokio::test]
async fn sighup_without_tls_keeps_the_exporter_running() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Exporter::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    let pid = child.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    child.wait_log(Duration::from_secs(30), |l| l.contains("SIGHUP received"));
    assert!(child.child.try_wait().unwrap().is_none(), "SIGHUP ended it");
    assert_eq!(
        Conn::open(child.addr).await.get("/metrics").await.status,
        200
    );
    let st = child.sigterm();
    assert_eq!(st.code(), Some(0), "{st:?}");
}

#[test]
fn binary_rejects_an_invalid_config_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "[tracking]\nmax_age_seconds = -5\n").unwrap();
    let out = Command::new(exe())
        .args(["--config", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_age_seconds"), "{err}");
}

#[test]
fn example_config_lists_every_key_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cdr-exporter.toml");
    let loaded = Config::load(Some(&path), &Overrides::default()).unwrap();
    assert_eq!(
        loaded,
        Config::default(),
        "config/cdr-exporter.toml must state the defaults"
    );
    // Every key of the struct appears in the file (a new key without documentation fails).
    let text = std::fs::read_to_string(&path).unwrap();
    let value = figment::Figment::from(figment::providers::Serialized::defaults(Config::default()))
        .extract::<figment::value::Dict>()
        .unwrap();
    fn keys(prefix: &str, d: &figment::value::Dict, out: &mut Vec<String>) {
        for (k, v) in d {
            out.push(format!("{prefix}{k}"));
            if let figment::value::Value::Dict(_, sub) = v {
                keys(&format!("{prefix}{k}."), sub, out);
            }
        }
    }
    let mut all = Vec::new();
    keys("", &value, &mut all);
    for k in all {
        let last = k.rsplit('.').next().unwrap();
        let documented = text.lines().any(|l| {
            let l = l.trim();
            l.starts_with(&format!("{last} =")) || l.starts_with(&format!("[{k}"))
        });
        assert!(documented, "key {k} is not in config/cdr-exporter.toml");
    }
}

/// promtool from Debian's `prometheus` package; the README test command installs it.
pub fn promtool() -> Command {
    match Command::new("promtool").arg("--version").output() {
        Ok(o) if o.status.success() => Command::new("promtool"),
        _ => panic!("promtool is not installed: run the README test command (it installs Debian's prometheus package)"),
    }
}

#[tokio::test]
async fn promtool_check_metrics_passes_on_text_exposition() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    // Many series of every family: the chapter 6 flow, tenants, alarms, recordings, errors.
    c.post_ch6(1..=6).await;
    for f in [
        "clustered-batch.xml",
        "invalid-records.xml",
        "gap-jump.xml",
        "record-recordingStart.xml",
        "record-streamingStart.xml",
        "tolerant-forms.xml",
    ] {
        assert_eq!(
            c.post("/cdr?call_bridge=x%22y%5Cz%0A", fixture(f))
                .await
                .status,
            200,
            "{f}"
        );
    }
    assert_eq!(
        c.post("/cdr", fixture("malformed-truncated.xml"))
            .await
            .status,
        400
    );
    let text = c.get("/metrics").await.body;
    assert!(text.contains("cms_call_leg_duration_seconds_bucket"));
    let mut child = promtool()
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed:\n{report}");
    assert!(report.trim().is_empty(), "promtool warnings:\n{report}");
    server.stop().await.unwrap();
}
