//! End to end with a real Prometheus and Alertmanager (Debian packages) on loopback: the
//! exporter is scraped, the bundled rules load and evaluate, every dashboard query runs,
//! nothing fires on clean traffic, and low MOS plus a receiver gap reach Alertmanager.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cdr_exporter::sim::{self, SimConfig};
use common::*;
use serde_json::Value;

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require(bin: &str) {
    let ok = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{bin} is not installed: run the README test command (it installs Debian's prometheus and prometheus-alertmanager)");
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn pct(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

async fn get_json(addr: SocketAddr, path: &str) -> Option<Value> {
    tokio::net::TcpStream::connect(addr).await.ok()?;
    let r = Conn::open(addr).await.get(path).await;
    serde_json::from_str(&r.body).ok()
}

/// Runs an instant query; Err carries Prometheus's error.
async fn query(prom: SocketAddr, q: &str) -> Result<Vec<Value>, String> {
    let v = get_json(prom, &format!("/api/v1/query?query={}", pct(q)))
        .await
        .ok_or("no answer")?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// Grafana variables → values for these queries.
fn grafana_to_promql(expr: &str) -> String {
    let mut e = expr.to_owned();
    for (k, v) in [
        ("${__rate_interval}", "1m"),
        ("$__rate_interval", "1m"),
        ("${__interval}", "5s"),
        ("$__interval", "5s"),
        ("${__range}", "5m"),
        ("$__range_s", "300"),
        ("$__range", "5m"),
        ("${job}", "cdr-exporter"),
        ("$job", "cdr-exporter"),
        ("${instance}", ".*"),
        ("$instance", ".*"),
        ("${call_bridge}", ".*"),
        ("$call_bridge", ".*"),
        ("${tenant}", ".*"),
        ("$tenant", ".*"),
    ] {
        e = e.replace(k, v);
    }
    e
}

/// Every (dashboard, panel title, expression) of the shipped dashboards.
fn dashboard_queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    fn walk(file: &str, panels: &[Value], out: &mut Vec<(String, String, String)>) {
        for p in panels {
            if let Some(sub) = p["panels"].as_array() {
                walk(file, sub, out);
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((
                        file.to_owned(),
                        p["title"].as_str().unwrap_or("").to_owned(),
                        e.to_owned(),
                    ));
                }
            }
        }
    }
    for f in files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        walk(&name, d["panels"].as_array().unwrap(), &mut out);
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] == "query" {
                let q = v["query"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| v["query"]["query"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                // label_values(metric, label) is Grafana's: check the metric selector part.
                if let Some(inner) = q
                    .strip_prefix("label_values(")
                    .and_then(|s| s.strip_suffix(')'))
                {
                    let sel = inner.rsplit_once(',').map(|x| x.0).unwrap_or(inner);
                    out.push((
                        name.clone(),
                        format!("variable {}", v["name"]),
                        sel.trim().to_owned(),
                    ));
                }
            }
        }
    }
    out
}

async fn firing(am: SocketAddr) -> BTreeSet<String> {
    let v = get_json(
        am,
        "/api/v2/alerts?active=true&silenced=false&inhibited=false",
    )
    .await
    .unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alertmanager_dashboards_and_alerts() {
    require("prometheus");
    require("prometheus-alertmanager");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(&dir.path().join("exporter"))).await;

    // The shipped rules, with short windows and `for` through the documented override.
    let overrides: Vec<(String, String)> = [
        ("low_mos_window", "1m"),
        ("low_mos_for", "0s"),
        ("low_mos_min_legs", "5"),
        ("records_missing_window", "1m"),
        ("records_missing_for", "0s"),
        ("restarted_for", "0s"),
        ("rejecting_for", "0s"),
        ("abnormal_ends_for", "0s"),
        ("packet_loss_for", "0s"),
        ("exporter_down_for", "0s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let rules = cdr_exporter::rules::render(&overrides).unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();

    let am_addr = free_addr();
    std::fs::write(
        dir.path().join("am.yml"),
        "route:\n  receiver: blackhole\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let _am = Proc(
        Command::new("prometheus-alertmanager")
            .args([
                &format!("--config.file={}", dir.path().join("am.yml").display()),
                &format!("--storage.path={}", dir.path().join("am-data").display()),
                &format!("--web.listen-address={am_addr}"),
                "--cluster.listen-address=",
                "--log.level=warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prom_addr = free_addr();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\nscrape_configs:\n  - job_name: cdr-exporter\n    static_configs:\n      - targets: ['{}']\n",
            dir.path().join("rules.yml").display(),
            server.addr
        ),
    )
    .unwrap();
    let _prom = Proc(
        Command::new("prometheus")
            .args([
                &format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ),
                &format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("prom-data").display()
                ),
                &format!("--web.listen-address={prom_addr}"),
                "--log.level=warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The target is up and the rules loaded.
    eventually(
        Duration::from_secs(60),
        "the exporter target up in Prometheus",
        || async move {
            let r = query(prom_addr, "up{job=\"cdr-exporter\"} == 1")
                .await
                .ok()?;
            (!r.is_empty()).then_some(())
        },
    )
    .await;
    let groups = get_json(prom_addr, "/api/v1/rules").await.unwrap();
    let loaded: usize = groups["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    assert!(loaded >= 8, "rules loaded: {loaded}");

    // Phase 1: clean traffic (no heavy loss, no drops, no restarts).
    let target = format!("http://{}/cdr", server.addr);
    let clean = SimConfig {
        target: target.clone(),
        call_bridges: 3,
        unclustered: 1,
        tenants: 3,
        calls_per_second: 12.0,
        duration: Some(Duration::from_secs(12)),
        seed: 101,
        bad_tail: 0.0,
        ..SimConfig::default()
    };
    let sim1 = tokio::spawn(sim::run(clean, std::future::pending()));
    // While it runs: every dashboard query is valid, and the key panels have data.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut errors = Vec::new();
    let mut empty = BTreeSet::new();
    for (file, title, expr) in dashboard_queries() {
        match query(prom_addr, &grafana_to_promql(&expr)).await {
            Ok(r) if r.is_empty() => {
                empty.insert(format!("{file}: {title}"));
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("{file}: {title}: {e}\n    {expr}")),
        }
    }
    assert!(
        errors.is_empty(),
        "dashboard queries failed in Prometheus:\n{}",
        errors.join("\n")
    );
    let key = [
        "cms-overview.json: Active calls",
        "cms-overview.json: Active call legs",
        "cms-overview.json: Call starts / min",
        "cms-overview.json: Active legs by tenant",
        "cms-overview.json: Leg duration",
        "cms-call-quality.json: Mean MOS",
        "cms-call-quality.json: MOS distribution",
        "cms-call-quality.json: Received audio packet loss",
        "cms-call-quality.json: Audio codec mix (streams)",
        "cms-call-quality.json: Leg ends by reason",
        "cdr-receiver-health.json: Exporter up",
        "cdr-receiver-health.json: Records / s",
        "cdr-receiver-health.json: Records applied by type",
        "cdr-receiver-health.json: Age of the last batch per Call Bridge",
        "cdr-receiver-health.json: Tracked objects",
        "cdr-receiver-health.json: Memory",
    ];
    for k in key {
        assert!(!empty.contains(k), "key panel without data: {k}");
    }
    let s1 = tokio::time::timeout(Duration::from_secs(90), sim1)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(s1.records_unsent, 0);
    // Let the rules evaluate over the clean traffic: nothing fires.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let alerts = query(prom_addr, "ALERTS").await.unwrap();
    assert!(alerts.is_empty(), "alerts on clean traffic: {alerts:?}");
    assert!(firing(am_addr).await.is_empty());

    // Phase 2: every leg with heavy loss, and records lost before they reach us.
    let bad = SimConfig {
        target,
        call_bridges: 2,
        tenants: 2,
        calls_per_second: 12.0,
        duration: Some(Duration::from_secs(10)),
        seed: 202,
        bad_tail: 1.0,
        drop_rate: 0.05,
        ..SimConfig::default()
    };
    let sim2 = tokio::spawn(sim::run(bad, std::future::pending()));
    let got = eventually(
        Duration::from_secs(90),
        "CmsLowMos and CmsCdrRecordsMissing in Alertmanager",
        || async move {
            let f = firing(am_addr).await;
            (f.contains("CmsLowMos") && f.contains("CmsCdrRecordsMissing")).then_some(f)
        },
    )
    .await;
    assert!(!got.contains("CdrExporterDown"), "{got:?}");
    // The alert carries its labels and annotations through to Alertmanager.
    let v = get_json(am_addr, "/api/v2/alerts?filter=alertname%3D%22CmsLowMos%22")
        .await
        .unwrap();
    let a = &v.as_array().unwrap()[0];
    assert!(
        a["labels"]["tenant"].is_string() && a["labels"]["call_bridge"].is_string(),
        "{a}"
    );
    assert!(a["annotations"]["runbook_url"]
        .as_str()
        .unwrap()
        .contains("runbooks.md#cmslowmos"));
    assert!(!a["annotations"]["description"].as_str().unwrap().is_empty());
    let _ = tokio::time::timeout(Duration::from_secs(90), sim2).await;
    server.stop().await.unwrap();
}
