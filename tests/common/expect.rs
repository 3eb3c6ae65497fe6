//! Comparing the exporter with the simulator's expected totals (sim and crash tests).

use std::time::{Duration, Instant};

use cdr_exporter::sim::Expected;

use super::{Conn, Scrape};

pub async fn scrape(addr: std::net::SocketAddr) -> Scrape {
    Conn::open(addr).await.scrape().await
}

/// Every exact equality between `e` and the exporter's metrics that does not hold.
pub fn mismatches(e: &Expected, s: &Scrape) -> Vec<String> {
    let mut bad = Vec::new();
    let mut eq = |what: String, want: u64, got: f64| {
        if got != want as f64 {
            bad.push(format!("{what}: expected {want}, exporter shows {got}"));
        }
    };
    eq(
        "cdr_exporter_records_total".into(),
        e.records_total,
        s.sum("cdr_exporter_records_total", &[]),
    );
    for (t, n) in &e.records_by_type {
        eq(
            format!("cdr_exporter_records_total{{record_type={t}}}"),
            *n,
            s.sum("cdr_exporter_records_total", &[("record_type", t)]),
        );
    }
    for (name, want) in [
        ("cms_calls_started_total", e.calls_started),
        ("cms_calls_ended_total", e.calls_ended),
        ("cms_call_legs_started_total", e.legs_started),
        ("cms_call_legs_ended_total", e.legs_ended),
        // The same totals by tenant: every call and leg is in exactly one tenant series.
        ("cms_tenant_calls_started_total", e.calls_started),
        ("cms_tenant_calls_ended_total", e.calls_ended),
        ("cms_tenant_call_legs_started_total", e.legs_started),
        ("cms_tenant_call_legs_ended_total", e.legs_ended),
        ("cms_tenant_calls_active", e.active_calls),
        ("cms_tenant_call_legs_active", e.active_legs),
        ("cms_tenant_call_leg_mos_count", e.mos_legs),
        ("cms_recordings_started_total", e.recordings_started),
        ("cms_recordings_ended_total", e.recordings_ended),
        ("cms_streamings_started_total", e.streamings_started),
        ("cms_streamings_ended_total", e.streamings_ended),
        ("cdr_exporter_records_missing_total", e.missing),
        ("cdr_exporter_sessions_total", e.sessions),
        ("cms_calls_active", e.active_calls),
        ("cms_call_legs_active", e.active_legs),
        ("cms_recordings_active", e.active_recordings),
        ("cms_streamings_active", e.active_streamings),
        ("cms_call_leg_mos_count", e.mos_legs),
    ] {
        eq(name.into(), want, s.sum(name, &[]));
    }
    for (reason, n) in &e.legs_ended_by_reason {
        eq(
            format!("cms_call_legs_ended_total{{reason={reason}}}"),
            *n,
            s.sum("cms_call_legs_ended_total", &[("reason", reason)]),
        );
    }
    eq(
        "cdr_exporter_evicted_objects_total{reason=restart}".into(),
        e.evicted_restart,
        s.sum(
            "cdr_exporter_evicted_objects_total",
            &[("reason", "restart")],
        ),
    );
    eq(
        "cdr_exporter_evicted_objects_total{reason=call_ended}".into(),
        e.evicted_call_ended,
        s.sum(
            "cdr_exporter_evicted_objects_total",
            &[("reason", "call_ended")],
        ),
    );
    // FreeSWITCH and Kamailio: every series, and each family's total over all labels.
    for (key, want) in &e.series {
        let (name, labels) = cdr_exporter::sim::parse_series_key(key);
        eq(key.clone(), *want, s.sum(name, &labels));
    }
    for (key, want) in &e.series_at_least {
        let (name, labels) = cdr_exporter::sim::parse_series_key(key);
        let got = s.sum(name, &labels);
        if got < *want as f64 {
            bad.push(format!(
                "{key}: expected at least {want}, exporter shows {got}"
            ));
        }
    }
    let dups = s.sum("cdr_exporter_records_duplicate_total", &[]);
    if dups < e.duplicate_records_sent as f64 {
        bad.push(format!(
            "cdr_exporter_records_duplicate_total {dups} < {} records re-sent after a 200",
            e.duplicate_records_sent
        ));
    }
    bad
}

/// Polls the exporter until it shows exactly `e`, or fails with what differs.
pub async fn assert_exporter_shows(addr: std::net::SocketAddr, e: &Expected) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = scrape(addr).await;
        let bad = mismatches(e, &s);
        if bad.is_empty() {
            return s;
        }
        if Instant::now() > deadline {
            panic!(
                "exporter differs from the simulator's expectation:\n  {}\nexpected: {}",
                bad.join("\n  "),
                serde_json::to_string_pretty(e).unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
