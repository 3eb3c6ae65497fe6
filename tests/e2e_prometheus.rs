//! End to end with a real Prometheus and Alertmanager (Debian packages) on loopback: the
//! exporter is scraped, the bundled rules load and evaluate, nothing fires on clean traffic,
//! low MOS (CMS, FreeSWITCH and rtpengine, per node and per tenant) and lost records reach
//! Alertmanager at the rules' default minimum volumes (never for tenant `unknown`, nor
//! FreeSWITCH/rtpengine `none`), the cross-source recording rules hold all three sources, and
//! every dashboard query returns data from what the simulator, the FreeSWITCH and rtpengine
//! fixtures and a few bad POSTs produced.

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
        ("${switch}", ".*"),
        ("$switch", ".*"),
        ("${domain}", ".*"),
        ("$domain", ".*"),
        ("${node}", ".*"),
        ("$node", ".*"),
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

/// The text between the first `open` and the following `close`.
fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
    let start = s.find(open).unwrap_or_else(|| panic!("no {open}")) + open.len();
    let len = s[start..]
        .find(close)
        .unwrap_or_else(|| panic!("no {close}"));
    &s[start..start + len]
}

/// A FreeSWITCH fixture as mod_xml_cdr posts it (`encode=textxml`), optionally as another leg
/// (every occurrence of its uuid replaced) and with `edits` (from, to) applied.
async fn post_freeswitch(
    c: &mut Conn,
    file: &str,
    new_uuid: Option<&str>,
    edits: &[(&str, &str)],
) -> Resp {
    let mut text = String::from_utf8(fixture(&format!("freeswitch/{file}"))).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{file} has no {from}");
        text = text.replace(from, to);
    }
    let uuid = between(&text, "<uuid>", "</uuid>").to_owned();
    let (text, uuid) = match new_uuid {
        Some(n) => (text.replace(&uuid, n), n.to_owned()),
        None => (text, uuid),
    };
    c.post_typed(
        &format!("/freeswitch/cdr?uuid=a_{uuid}"),
        Some("text/xml"),
        text.into_bytes(),
    )
    .await
}

/// A bad rtpengine report (average MOS 2.5) of tenant e2e.example from node kamailio-e2e,
/// made from the Kamailio 5.6 fixture with its own Call-ID.
fn bad_rtpengine_report(call_id: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture("rtpengine/kamailio-5.6-bye.json")).unwrap();
    let old_id = format!(
        "\"call_id\": \"{}\"",
        between(&text, "\"call_id\": \"", "\"}")
    );
    assert!(text.contains("\"mos_average\": \"3.5\"") && text.contains("\"node\": \"kamailio-1\""));
    text.replace("\"mos_average\": \"3.5\"", "\"mos_average\": \"2.5\"")
        .replace(
            "\"node\": \"kamailio-1\"",
            "\"node\": \"kamailio-e2e\", \"tenant\": \"e2e.example\"",
        )
        .replace(&old_id, &format!("\"call_id\": \"{call_id}\""))
        .into_bytes()
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
        ("node_low_mos_for", "0s"),
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

    // FreeSWITCH and Kamailio/rtpengine as their senders post: every fixture once, a retry
    // (counted as a duplicate), then enough bad calls (fresh leg uuids and Call-IDs) to
    // reach CdrLowMos's default minimum volumes per node (100) and per tenant (50). The
    // series exist before the burst, so increase() sees all of it.
    for f in [
        "a-leg-good.xml",
        "b-leg.xml",
        "bad-call.xml",
        "zero-media.xml",
        "no-call-stats.xml",
        "encoded-values.xml",
    ] {
        let r = post_freeswitch(&mut c, f, None, &[]).await;
        assert_eq!(r.status, 200, "freeswitch/{f}: {}", r.body);
    }
    let r = post_freeswitch(&mut c, "a-leg-good.xml", None, &[]).await;
    assert_eq!(r.status, 200, "FreeSWITCH retry: {}", r.body);
    // A leg with an unusable field (negative billsec), and a report with an unusable value
    // (decimal comma): the rest of each is applied.
    let r = post_freeswitch(
        &mut c,
        "a-leg-good.xml",
        Some("e2e0ffff-0000-4000-8000-000000000001"),
        &[("<billsec>180</billsec>", "<billsec>-3</billsec>")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let invalid = String::from_utf8(bad_rtpengine_report("e2e-invalid@192.0.2.1"))
        .unwrap()
        .replace("\"mos_min\": \"3.4\"", "\"mos_min\": \"3,4\"");
    let r = c
        .post_typed(
            "/kamailio/mos",
            Some("application/json"),
            invalid.into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for f in [
        "kamailio-5.6-bye.json",
        "numbers.json",
        "no-mos.json",
        "acc-json-empty-values.json",
        "acc-json-no-mos.json",
    ] {
        let r = c
            .post_typed(
                "/kamailio/mos",
                Some("application/json"),
                fixture(&format!("rtpengine/{f}")),
            )
            .await;
        assert_eq!(r.status, 200, "rtpengine/{f}: {}", r.body);
    }
    let r = c
        .post_typed(
            "/kamailio/mos",
            Some("application/json"),
            fixture("rtpengine/kamailio-5.6-bye.json"),
        )
        .await;
    assert_eq!(r.status, 200, "rtpengine retry: {}", r.body);
    let r = c
        .post_typed(
            "/kamailio/mos",
            Some("application/json"),
            bad_rtpengine_report("e2e-seed"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..120 {
        let uuid = format!("e2e00000-0000-4000-8000-{i:012}");
        let r = post_freeswitch(&mut c, "bad-call.xml", Some(&uuid), &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = c
            .post_typed(
                "/kamailio/mos",
                Some("application/json"),
                bad_rtpengine_report(&format!("e2e-{i}@192.0.2.1")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    // CdrLowMos per node and per tenant for each source, and CmsCdrRecordsMissing.
    let want: BTreeSet<String> = ["cms", "freeswitch", "kamailio"]
        .iter()
        .flat_map(|s| {
            [
                format!("CdrLowMos {s} node"),
                format!("CdrLowMos {s} tenant"),
            ]
        })
        .chain(["CmsCdrRecordsMissing".to_owned()])
        .collect();
    let want = &want;
    let got = eventually(
        Duration::from_secs(60),
        "CdrLowMos (node and tenant scope of every source) and CmsCdrRecordsMissing in Alertmanager",
        || async move {
            let active = active_alerts(am_addr).await;
            let f: BTreeSet<String> = active
                .iter()
                .map(|a| {
                    let l = &a["labels"];
                    let name = l["alertname"].as_str().unwrap_or("").to_owned();
                    match (l["source"].as_str(), l["scope"].as_str()) {
                        (Some(src), Some(scope)) => format!("{name} {src} {scope}"),
                        _ => name,
                    }
                })
                .collect();
            want.is_subset(&f).then_some(f)
        },
    )
    .await;
    assert!(!got.contains("CdrExporterDown"), "{got:?}");
    assert!(!got.contains("CdrSourceSilent"), "{got:?}");
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
        .filter(|a| a["labels"]["alertname"] == "CdrLowMos")
        .collect();
    for a in &low {
        let l = &a["labels"];
        let tenant_scope = l["scope"] == "tenant";
        assert!(
            l["job"] == "cdr-exporter"
                && ["cms", "freeswitch", "kamailio"].contains(&l["source"].as_str().unwrap_or("")),
            "{a}"
        );
        assert!(
            l["call_bridge"].is_null() && l["instance"].is_null() && l["switch"].is_null(),
            "{a}"
        );
        if tenant_scope {
            assert!(
                l["tenant"].is_string() && l["node"].is_null() && l["severity"] == "warning",
                "{a}"
            );
        } else {
            assert!(
                l["scope"] == "node" && l["node"].is_string() && l["tenant"].is_null(),
                "{a}"
            );
            assert_eq!(l["severity"], "critical", "{a}");
        }
        assert!(a["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .contains("runbooks.md#cdrlowmos"));
        let dash = a["annotations"]["dashboard_url"].as_str().unwrap();
        assert!(
            dash.contains(if tenant_scope {
                "/d/cdr-call-quality?var-job=cdr-exporter&var-tenant="
            } else {
                "/d/cdr-call-quality?var-job=cdr-exporter&var-call_bridge="
            }),
            "{a}"
        );
        assert!(!a["annotations"]["description"].as_str().unwrap().is_empty());
    }
    // The bad FreeSWITCH and rtpengine calls are named by their switch, node and tenant.
    for (src, scope, label, value) in [
        ("freeswitch", "node", "node", "fs-edge-01"),
        ("freeswitch", "tenant", "tenant", "trunk.example.net"),
        ("kamailio", "node", "node", "kamailio-e2e"),
        ("kamailio", "tenant", "tenant", "e2e.example"),
    ] {
        assert!(
            low.iter().any(|a| {
                let l = &a["labels"];
                l["source"] == src && l["scope"] == scope && l[label] == value
            }),
            "no CdrLowMos {src} {scope} {label}={value}: {low:?}"
        );
    }
    // The recording rules hold every source: MOS by node and by tenant, last heard per sender.
    for rule in [
        "node:call_leg_mos_scored:increase1m",
        "tenant:call_leg_mos_scored:increase1m",
        "node:call_leg_mos_below_3_1:ratio_rate1m",
        "tenant:call_leg_mos_below_3_1:ratio_rate1m",
        "node:cdr_last_received_timestamp_seconds:max",
    ] {
        let r = query(
            prom_addr,
            &format!("count by (source) (max_over_time({rule}[1m]))"),
        )
        .await
        .unwrap();
        let sources: BTreeSet<&str> = r
            .iter()
            .filter_map(|s| s["metric"]["source"].as_str())
            .collect();
        assert_eq!(
            sources,
            BTreeSet::from(["cms", "freeswitch", "kamailio"]),
            "{rule}: {r:?}"
        );
    }
    // Never a page or ticket for calls nobody can be told about, although their volume is over
    // the minimum.
    let unknown_legs = value(
        prom_addr,
        "max_over_time(tenant:call_leg_mos_scored:increase1m{source=\"cms\", tenant=\"unknown\"}[1m])",
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
        assert!(
            !(t == "none" && a["labels"]["source"] != "cms"),
            "alert for a FreeSWITCH or rtpengine tenant none: {a}"
        );
    }
    let lost: Vec<&Value> = active
        .iter()
        .filter(|a| a["labels"]["alertname"] == "CmsCdrRecordsMissing")
        .collect();
    assert!(lost
        .iter()
        .all(|a| a["labels"]["severity"] == "critical" && a["labels"]["call_bridge"].is_string()));
    // The pages: one per Call Bridge, switch or node, no instance (an HA pair would page once).
    for a in active
        .iter()
        .filter(|a| a["labels"]["severity"] == "critical")
    {
        assert!(
            (a["labels"]["call_bridge"].is_string() || a["labels"]["node"].is_string())
                && a["labels"]["instance"].is_null(),
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
