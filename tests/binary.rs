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
    // build_info and --version say the same version, revision and compiler.
    let info = s.samples("cdr_exporter_build_info");
    assert_eq!(info.len(), 1, "{info:?}");
    let label = |k: &str| info[0].0.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let (ok, version) = run_briefly(&["--version"], &[]);
    assert!(ok);
    assert_eq!(
        version.trim(),
        format!(
            "cdr-exporter {} (revision {}, rustc {})",
            label("version"),
            label("revision"),
            label("rustc")
        )
    );
    let rev = label("revision");
    assert!(
        rev == "unknown" || (rev.len() == 12 && rev.chars().all(|c| c.is_ascii_hexdigit())),
        "{rev}"
    );
    assert!(label("rustc").starts_with("1."), "{info:?}");
    drop(c);
    let st = child.sigterm();
    assert_eq!(st.code(), Some(0), "{st:?}");
}

/// Two exporters on one data directory would write the same journal: the second exits at
/// once with a clear error and the first keeps serving.
#[tokio::test]
async fn a_second_exporter_on_the_same_data_dir_exits_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let first = Exporter::start(&["--data-dir", data], &[]);
    let mut second = Command::new(exe())
        .args(["--data-dir", data])
        .env("CDR_EXPORTER_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second exporter on the same data dir kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{status:?}");
    assert!(err.contains("another cdr-exporter is using it"), "{err}");
    assert!(err.contains(data), "names the directory: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let mut c = Conn::open(first.addr).await;
    assert_eq!(
        c.post("/cdr", fixture("clustered-batch.xml")).await.status,
        200
    );
    drop(c);
    assert_eq!(first.sigterm().code(), Some(0));
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

/// What the binary prints and returns when started with `args` and `env` (it is expected
/// to exit at once).
fn run_briefly(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(exe());
    cmd.args(args).env_remove("RUST_BACKTRACE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

#[test]
fn config_errors_are_one_line_naming_key_source_and_choices() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("typo.toml");
    std::fs::write(&f, "[tracking]\nmax_age_secnds = 3\n").unwrap();
    // (flags, environment, what the one line must name)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            vec!["--config", f.to_str().unwrap()],
            vec![],
            vec!["`tracking.max_age_secnds`", "typo.toml", "max_age_seconds"],
        ),
        (
            vec!["--print-config"],
            vec![("CDR_EXPORTER_LOG_FORMAT", "verbose")],
            vec!["`log_format`", "CDR_EXPORTER_LOG_FORMAT", "text, json"],
        ),
        // tracing would read `inf` as a target name and log nothing at all.
        (
            vec!["--log-level", "inf", "--print-config"],
            vec![],
            vec!["`log_level`", "\"inf\"", "error, warn, info"],
        ),
        (
            vec!["--print-config"],
            vec![("CDR_EXPORTER_LOG_LEVEL", "verbose")],
            vec!["`log_level`", "verbose"],
        ),
        (
            vec![],
            vec![("CDR_EXPORTER_CONFIG", "/nonexistent/x.toml")],
            vec!["/nonexistent/x.toml"],
        ),
    ];
    for (args, env, want) in cases {
        let (ok, text) = run_briefly(&args, &env);
        assert!(!ok, "{args:?} {env:?} must fail: {text}");
        assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
        assert!(
            !text.contains("Caused by") && !text.contains("default."),
            "{text}"
        );
        for w in want {
            assert!(text.contains(w), "{args:?} {env:?}: {w} missing in {text}");
        }
    }
    // Valid filters still pass.
    let (ok, text) = run_briefly(
        &["--log-level", "cdr_exporter=debug,warn", "--print-config"],
        &[],
    );
    assert!(ok, "{text}");
}

#[test]
fn the_config_file_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    std::fs::write(&f, "cdr_path = \"/from-env-file\"\n").unwrap();
    let (ok, text) = run_briefly(
        &["--print-config"],
        &[("CDR_EXPORTER_CONFIG", f.to_str().unwrap())],
    );
    assert!(ok, "{text}");
    assert!(text.contains("cdr_path = \"/from-env-file\""), "{text}");
}

/// Kubernetes sets CDR_EXPORTER_PORT=tcp://... for a Service named cdr-exporter.
#[tokio::test]
async fn unknown_prefixed_variables_warn_and_never_stop_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Exporter::start(
        &["--data-dir", dir.path().to_str().unwrap()],
        &[
            ("CDR_EXPORTER_PORT", "tcp://10.96.0.12:19477"),
            ("CDR_EXPORTER_PORT_19477_TCP_ADDR", "10.96.0.12"),
            ("CDR_EXPORTER_SERVICE_HOST", "10.96.0.12"),
            // A real key still applies, a map entry too.
            ("CDR_EXPORTER_CDR_PATH", "/k8s"),
            ("CDR_EXPORTER_NAMES__TENANTS__T1", "acme"),
        ],
    );
    for var in [
        "CDR_EXPORTER_PORT",
        "CDR_EXPORTER_PORT_19477_TCP_ADDR",
        "CDR_EXPORTER_SERVICE_HOST",
    ] {
        child.wait_log(Duration::from_secs(10), |l| {
            l.contains("not a configuration key") && l.contains(&format!("variable={var}"))
        });
    }
    assert!(
        !child
            .lines()
            .iter()
            .any(|l| l.contains("CDR_EXPORTER_CDR_PATH") || l.contains("NAMES__TENANTS")),
        "keys are not warned about"
    );
    let mut c = Conn::open(child.addr).await;
    assert_eq!(
        c.post("/k8s", fixture("clustered-batch.xml")).await.status,
        200
    );
    drop(c);
    assert_eq!(child.sigterm().code(), Some(0));
}

#[test]
fn help_names_the_environment_variable_of_each_flag() {
    let (ok, text) = run_briefly(&["--help"], &[]);
    assert!(ok);
    for v in [
        "CDR_EXPORTER_CONFIG",
        "CDR_EXPORTER_LISTEN",
        "CDR_EXPORTER_DATA_DIR",
        "CDR_EXPORTER_LOG_LEVEL",
    ] {
        assert!(
            text.contains(&format!("[env: {v}")),
            "{v} in --help:\n{text}"
        );
    }
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

/// SIGHUP reads the configuration again: a renamed Call Bridge's live calls and legs move
/// to its new label (gauges never split or go negative), a new token applies at once, a
/// key that needs a restart is named, and a broken file keeps what is in force.
#[tokio::test]
async fn sighup_reloads_names_and_token_and_says_what() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let write = |names: &str, token: &str, extra: &str| {
        std::fs::write(
            &file,
            format!(
                "{extra}\n[auth]\ntoken = \"{token}\"\n[names.call_bridges]\n\"158ba4f7-70eb-4a35-982c-71d4f1674277\" = \"{names}\"\n"
            ),
        )
        .unwrap();
    };
    write("london", "one", "");
    let data = dir.path().join("data");
    let mut child = Exporter::start(
        &[
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let hup = |child: &Exporter| {
        assert!(Command::new("kill")
            .args(["-HUP", &child.child.id().to_string()])
            .status()
            .unwrap()
            .success());
    };
    let mut c = Conn::open(child.addr).await;
    let post = |i: u32, token: &str| {
        (
            format!("/cdr?token={token}"),
            fixture(&format!("ch6-post{i}.xml")),
        )
    };
    for i in 1..=3 {
        let (p, b) = post(i, "one");
        assert_eq!(c.post(&p, b).await.status, 200);
    }
    let s = c.scrape().await;
    let active = |s: &Scrape, cb: &str| {
        s.sum("cms_calls_active", &[("call_bridge", cb)])
            + s.sum("cms_call_legs_active", &[("call_bridge", cb)])
    };
    let live = active(&s, "london");
    assert!(live > 0.0, "the call is in progress");

    write("paris", "two", "cdr_path = \"/elsewhere\"");
    hup(&child);
    let line = child.wait_log(Duration::from_secs(20), |l| {
        l.contains("configuration reloaded")
    });
    assert!(
        line.contains("names") && line.contains("auth") && line.contains("relabelled_sessions=1"),
        "{line}"
    );
    let warn = child.wait_log(Duration::from_secs(5), |l| {
        l.contains("applied only at the next start")
    });
    assert!(
        warn.contains("cdr_path") && !warn.contains("names.") && !warn.contains("auth."),
        "{warn}"
    );

    let s = c.scrape().await;
    assert_eq!(active(&s, "london"), 0.0, "nothing left under the old name");
    assert_eq!(
        active(&s, "paris"),
        live,
        "the live call moved with its Call Bridge"
    );
    let (p, b) = post(4, "one");
    assert_eq!(
        c.post(&p, b).await.status,
        401,
        "the old token no longer works"
    );
    for i in 4..=6 {
        let (p, b) = post(i, "two");
        assert_eq!(c.post(&p, b).await.status, 200);
    }
    let s = c.scrape().await;
    assert_eq!(
        active(&s, "paris"),
        0.0,
        "the call ended under its new name"
    );
    assert_eq!(
        active(&s, "london"),
        0.0,
        "and never went negative under the old one"
    );
    for (l, v) in s
        .samples("cms_call_legs_active")
        .into_iter()
        .chain(s.samples("cms_calls_active"))
    {
        assert!(v >= 0.0, "{l:?} = {v}");
    }

    // A broken file: an error, and the token in force still works.
    std::fs::write(&file, "[auth\ntoken = ").unwrap();
    hup(&child);
    child.wait_log(Duration::from_secs(20), |l| {
        l.contains("configuration not reloaded")
    });
    let (p, b) = post(1, "two");
    assert_eq!(c.post(&p, b).await.status, 200);
    drop(c);
    assert_eq!(child.sigterm().code(), Some(0));
}
