//! End to end with a real Prometheus and Alertmanager (Debian packages) on loopback: the
//! exporter is scraped, the bundled rules load and evaluate, nothing fires on clean traffic,
//! low MOS and lost records reach Alertmanager at the rules' default minimum volumes (never
//! for tenant `unknown`), and every dashboard query returns data from what the simulator and
//! a few bad POSTs produced.

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

/// Grafana variables → values for these queries. `custom` are the dashboard's custom
/// variables (such as topn) with their default values.
fn grafana_to_promql(expr: &str, custom: &[(String, String)]) -> String {
    let mut e = expr.to_owned();
    // Longest names first, so `$topn` does not eat `$topn_x`.
    let mut custom = custom.to_vec();
    custom.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    for (k, v) in &custom {
        e = e
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
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

/// One query of a shipped dashboard, ready for Prometheus.
struct DashboardQuery {
    /// `file: panel title` (or `variable x`, `annotation x`).
    at: String,
    expr: String,
    /// Panels and variables must show something; annotations mark rare events.
    needs_data: bool,
}

/// Every query of the shipped dashboards: panel targets, variables, annotations.
fn dashboard_queries() -> Vec<DashboardQuery> {
    let mut out = Vec::new();
    for (file, title, expr, custom, needs_data) in raw_dashboard_queries() {
        out.push(DashboardQuery {
            at: format!("{file}: {title}"),
            expr: grafana_to_promql(&expr, &custom),
            needs_data,
        });
    }
    out
}

type RawQuery = (String, String, String, Vec<(String, String)>, bool);

fn raw_dashboard_queries() -> Vec<RawQuery> {
    let mut out = Vec::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    type Custom = [(String, String)];
    fn walk(file: &str, panels: &[Value], custom: &Custom, out: &mut Vec<RawQuery>) {
        for p in panels {
            if let Some(sub) = p["panels"].as_array() {
                walk(file, sub, custom, out);
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    let title = p["title"].as_str().unwrap_or("");
                    let r = t["refId"].as_str().unwrap_or("");
                    out.push((
                        file.to_owned(),
                        format!("{title} ({r})"),
                        e.to_owned(),
                        custom.to_vec(),
                        true,
                    ));
                }
            }
        }
    }
    for f in files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let custom: Vec<(String, String)> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["type"] == "custom")
            .map(|v| {
                let value = v["current"]["value"].as_str().unwrap_or_default();
                (v["name"].as_str().unwrap().to_owned(), value.to_owned())
            })
            .collect();
        walk(&name, d["panels"].as_array().unwrap(), &custom, &mut out);
        for a in d["annotations"]["list"].as_array().into_iter().flatten() {
            if let Some(e) = a["expr"].as_str() {
                out.push((
                    name.clone(),
                    format!("annotation {}", a["name"]),
                    e.to_owned(),
                    custom.clone(),
                    false,
                ));
            }
        }
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
                        custom.clone(),
                        true,
                    ));
                }
            }
        }
    }
    out
}

/// The alerts Alertmanager holds, active and not silenced or inhibited.
async fn active_alerts(am: SocketAddr) -> Vec<Value> {
    get_json(
        am,
        "/api/v2/alerts?active=true&silenced=false&inhibited=false",
    )
    .await
    .and_then(|v| v.as_array().cloned())
    .unwrap_or_default()
}

async fn firing(am: SocketAddr) -> BTreeSet<String> {
    active_alerts(am)
        .await
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_owned))
        .collect()
}

/// The first sample's value of an instant query (NaN if none).
async fn value(prom: SocketAddr, q: &str) -> f64 {
    query(prom, q)
        .await
        .ok()
        .and_then(|r| r.first().cloned())
        .and_then(|s| s["value"][1].as_str().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alertmanager_dashboards_and_alerts() {
    require("prometheus");
    require("prometheus-alertmanager");
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(&dir.path().join("exporter"))).await;

    // The shipped rules with short windows and no `for`, through the documented override.
    // The minimum volumes stay at their defaults: the simulated traffic must reach them.
    let overrides: Vec<(String, String)> = [
        ("low_mos_window", "1m"),
        ("low_mos_for", "0s"),
        ("call_bridge_low_mos_for", "0s"),
        ("records_missing_window", "1m"),
        ("records_missing_for", "0s"),
        ("restarted_for", "0s"),
        ("leg_ends_window", "1m"),
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
    assert!(loaded >= 30, "rules loaded: {loaded}");

    // Phase 1: clean traffic (no heavy loss, no drops, no restarts): nothing fires.
    let target = format!("http://{}/cdr", server.addr);
    let clean = SimConfig {
        target: target.clone(),
        call_bridges: 3,
        unclustered: 1,
        tenants: 3,
        calls_per_second: 12.0,
        duration: Some(Duration::from_secs(10)),
        seed: 101,
        bad_tail: 0.0,
        ..SimConfig::default()
    };
    let s1 = sim::run(clean, std::future::pending()).await.unwrap();
    assert_eq!(s1.records_unsent, 0);
    // Let the rules evaluate over the clean traffic.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let alerts = query(prom_addr, "ALERTS").await.unwrap();
    assert!(alerts.is_empty(), "alerts on clean traffic: {alerts:?}");
    assert!(firing(am_addr).await.is_empty());

    // Phase 2: every leg with heavy loss, records lost before they reach us (so that many
    // calls are never seen: tenant "unknown"), duplicates and restarts; and the bad input a
    // receiver sees: malformed bodies (rejected) and invalid records.
    let bad = SimConfig {
        target,
        call_bridges: 2,
        tenants: 2,
        calls_per_second: 12.0,
        duration: Some(Duration::from_secs(10)),
        seed: 202,
        bad_tail: 1.0,
        drop_rate: 0.15,
        duplicate_rate: 0.05,
        restart_every: Some(Duration::from_secs(6)),
        ..SimConfig::default()
    };
    let sim2 = tokio::spawn(sim::run(bad, std::future::pending()));
    let mut c = Conn::open(server.addr).await;
    for f in [
        "malformed-wrong-root.xml",
        "malformed-truncated.xml",
        "malformed-empty.xml",
    ] {
        let r = c.post("/cdr", fixture(f)).await;
        assert_eq!(r.status, 400, "{f}: {}", r.body);
    }
    let r = c.post("/cdr", fixture("invalid-records.xml")).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let got = eventually(
        Duration::from_secs(60),
        "CmsLowMos, CmsCallBridgeLowMos and CmsCdrRecordsMissing in Alertmanager",
        || async move {
            let f = firing(am_addr).await;
            ["CmsLowMos", "CmsCallBridgeLowMos", "CmsCdrRecordsMissing"]
                .iter()
                .all(|a| f.contains(*a))
                .then_some(f)
        },
    )
    .await;
    assert!(!got.contains("CdrExporterDown"), "{got:?}");
    let s2 = tokio::time::timeout(Duration::from_secs(60), sim2)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(s2.records_unsent, 0);

    // The alerts carry their labels and annotations through to Alertmanager.
    let active = active_alerts(am_addr).await;
    let low: Vec<&Value> = active
        .iter()
        .filter(|a| a["labels"]["alertname"] == "CmsLowMos")
        .collect();
    for a in &low {
        let l = &a["labels"];
        assert!(
            l["tenant"].is_string() && l["job"] == "cdr-exporter" && l["source"] == "cms",
            "{a}"
        );
        assert!(l["call_bridge"].is_null() && l["instance"].is_null(), "{a}");
        assert!(a["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .contains("runbooks.md#cmslowmos"));
        assert!(a["annotations"]["dashboard_url"]
            .as_str()
            .unwrap()
            .contains("/d/cms-call-quality?var-job=cdr-exporter&var-tenant="));
        assert!(!a["annotations"]["description"].as_str().unwrap().is_empty());
    }
    // Never a page or ticket for calls nobody can be told about, although their volume is over
    // the minimum.
    let unknown_legs = value(
        prom_addr,
        "max_over_time(tenant:call_leg_mos_scored:increase1m{tenant=\"unknown\"}[1m])",
    )
    .await;
    assert!(
        unknown_legs >= 50.0,
        "the simulated loss must put at least 50 scored legs under tenant unknown for this \
         check to mean something, got {unknown_legs}"
    );
    for a in &active {
        let t = a["labels"]["tenant"].as_str().unwrap_or("");
        assert!(t != "unknown" && t != "other", "alert for tenant {t}: {a}");
    }
    let lost: Vec<&Value> = active
        .iter()
        .filter(|a| a["labels"]["alertname"] == "CmsCdrRecordsMissing")
        .collect();
    assert!(lost
        .iter()
        .all(|a| a["labels"]["severity"] == "critical" && a["labels"]["call_bridge"].is_string()));
    // The pages: one per Call Bridge, no instance (an HA pair would page once).
    for a in active
        .iter()
        .filter(|a| a["labels"]["severity"] == "critical")
    {
        assert!(
            a["labels"]["call_bridge"].is_string() && a["labels"]["instance"].is_null(),
            "{a}"
        );
    }

    // Every dashboard query is valid, and every panel and variable shows data from this
    // traffic (the rates cover the last minute, the worst-N tables the last five).
    let mut errors = Vec::new();
    let mut empty = Vec::new();
    let queries = dashboard_queries();
    assert!(queries.len() > 150, "{} queries", queries.len());
    for q in &queries {
        match query(prom_addr, &q.expr).await {
            Ok(r) if r.is_empty() && q.needs_data => {
                empty.push(format!("{}\n    {}", q.at, q.expr))
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("{}: {e}\n    {}", q.at, q.expr)),
        }
    }
    assert!(
        errors.is_empty(),
        "dashboard queries failed in Prometheus:\n{}",
        errors.join("\n")
    );
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );
    server.stop().await.unwrap();
    eprintln!(
        "e2e: {} queries with data; firing {:?}; {unknown_legs} scored legs of tenant unknown; {:?}",
        queries.len(),
        firing(am_addr).await,
        started.elapsed()
    );
}
