//! An HA pair: two real exporters configured as two receivers of the same simulated Call
//! Bridges (`simulate --target A --target B`). One is killed mid-run and started again on
//! the same port and data directory; the Call Bridges hold its records meanwhile and
//! deliver them when it is back. At the end both exporters show identical `cms_*` series
//! and content counters, and each equals the simulator's `--expect-json` for it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cdr_exporter::sim::Expected;
use common::binary::Exporter;
use common::expect::{assert_exporter_shows, scrape};
use common::Scrape;

fn start(data: &Path, listen: Option<std::net::SocketAddr>) -> Exporter {
    let dir = data.to_str().unwrap();
    match listen {
        Some(addr) => Exporter::start(
            &["--data-dir", dir, "--listen", &addr.to_string()],
            &[("CDR_EXPORTER_SNAPSHOT__INTERVAL_SECONDS", "1")],
        ),
        None => Exporter::start(
            &["--data-dir", dir],
            &[("CDR_EXPORTER_SNAPSHOT__INTERVAL_SECONDS", "1")],
        ),
    }
}

/// Polls `f` until it holds; panics with `what` after `deadline`.
async fn until(deadline: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !f().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn records(s: &Scrape) -> f64 {
    s.sum("cdr_exporter_records_total", &[])
}

/// The series both copies of a pair must agree on: every `cms_*` sample and the
/// content counters of the exporter (not batches, duplicates or process metrics, which
/// depend on retries and on each process).
fn content_series(s: &Scrape) -> BTreeMap<String, String> {
    const CONTENT: [&str; 4] = [
        "cdr_exporter_records_total",
        "cdr_exporter_records_missing_total",
        "cdr_exporter_sessions_total",
        "cdr_exporter_evicted_objects_total",
    ];
    s.0.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with("cms_")
                || CONTENT
                    .iter()
                    .any(|c| l.starts_with(&format!("{c}{{")) || l.starts_with(&format!("{c} ")))
        })
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_ends_identical_after_one_is_killed_mid_run() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = start(dirs[0].path(), None);
    let b = start(dirs[1].path(), None);
    let (a_addr, b_addr) = (a.addr, b.addr);
    let json = dirs[0].path().join("expected.json");
    let args = [
        "simulate".to_owned(),
        "--target".into(),
        format!("http://{a_addr}/cdr"),
        "--target".into(),
        format!("http://{b_addr}/cdr"),
        "--call-bridges".into(),
        "3".into(),
        "--unclustered".into(),
        "1".into(),
        "--tenants".into(),
        "3".into(),
        "--calls-per-second".into(),
        "20".into(),
        "--duration".into(),
        "8s".into(),
        "--seed".into(),
        "424242".into(),
        "--drop-rate".into(),
        "0.01".into(),
        "--duplicate-rate".into(),
        "0.02".into(),
        "--restart-every".into(),
        "5s".into(),
        // A killed receiver never answers: retry soon.
        "--timeout".into(),
        "2s".into(),
        "--quiet".into(),
        "--expect-json".into(),
        json.to_str().unwrap().into(),
    ];
    let mut sim = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_cdr-exporter"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    // Kill B once it has taken part of the load.
    until(
        Duration::from_secs(30),
        "B to receive records",
        async || records(&scrape(b_addr).await) > 200.0,
    )
    .await;
    b.kill9();
    // B stays down while A keeps taking records (the Call Bridges are not held up by B).
    let a_at_kill = records(&scrape(a_addr).await);
    until(
        Duration::from_secs(30),
        "A to go on while B is down",
        async || records(&scrape(a_addr).await) > a_at_kill + 300.0,
    )
    .await;
    assert!(
        sim.try_wait().unwrap().is_none(),
        "the run ended while B was down: nothing to catch up"
    );
    // Same port and data directory; `start` polls until it is listening.
    let b = start(dirs[1].path(), Some(b_addr));

    let out = tokio::task::spawn_blocking(move || {
        let end = Instant::now() + Duration::from_secs(120);
        while sim.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "simulation hung");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut out = String::new();
        std::io::Read::read_to_string(sim.stdout.as_mut().unwrap(), &mut out).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(sim.stderr.as_mut().unwrap(), &mut err).unwrap();
        (sim.try_wait().unwrap().unwrap(), out, err)
    })
    .await
    .unwrap();
    let (status, stdout, stderr) = out;
    assert!(status.success(), "{stdout}{stderr}");

    // One expectation per receiver, in the order of --target.
    let text = std::fs::read_to_string(&json).unwrap();
    let per: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(per.len(), 2, "{text}");
    let expected: Vec<Expected> = per
        .iter()
        .map(|v| serde_json::from_value(v["expected"].clone()).unwrap())
        .collect();
    assert_eq!(per[1]["target"], format!("http://{b_addr}/cdr"));
    assert!(expected[0].records_total > 1000, "{text}");
    assert!(
        expected[0].restarts > 0 && expected[0].missing > 0,
        "{text}"
    );
    // Nothing overflowed, so both must show the same (what was re-sent after a 200
    // depends on each receiver's batches).
    let same = |e: &Expected| Expected {
        duplicate_records_sent: 0,
        ..e.clone()
    };
    assert_eq!(same(&expected[0]), same(&expected[1]));

    let sa = assert_exporter_shows(a_addr, &expected[0]).await;
    let sb = assert_exporter_shows(b_addr, &expected[1]).await;
    let (ca, cb) = (content_series(&sa), content_series(&sb));
    assert!(
        ca.keys().any(|k| k.starts_with("cms_call_leg_mos_bucket")),
        "no MOS histogram in {ca:?}"
    );
    assert!(ca.len() > 100, "{} series", ca.len());
    let differ: Vec<_> = ca
        .iter()
        .filter(|(k, v)| cb.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: A {v}, B {:?}", cb.get(k)))
        .chain(
            cb.keys()
                .filter(|k| !ca.contains_key(*k))
                .map(|k| format!("{k}: only on B")),
        )
        .collect();
    assert!(
        differ.is_empty(),
        "the pair differs:\n{}",
        differ.join("\n")
    );
    // B really was down: the Call Bridges retried it, and it lost nothing.
    let b_line = stdout
        .lines()
        .find(|l| l.contains(&format!("receiver   http://{b_addr}/cdr")))
        .unwrap();
    let retried: u64 = b_line
        .rsplit(", ")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no retries in {b_line:?}"));
    assert!(retried > 0, "{b_line}");
    assert!(
        b_line.contains(" 0 dropped by a full queue, 0 never acknowledged"),
        "{b_line}"
    );
    a.kill9();
    b.kill9();
}

/// A receiver that is down longer than its queue can hold loses records, as behind a real
/// CMS, and only it: the other receiver gets everything, and each shows exactly what the
/// simulator expects for it (the loss counted as missing records on B alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_queue_loses_records_for_its_receiver_only() {
    use cdr_exporter::sim::{self, SimConfig};
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = start(dirs[0].path(), None);
    // B's port, free until B starts.
    let b_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = SimConfig {
        target: format!("http://{}/cdr", a.addr),
        extra_targets: vec![format!("http://{b_addr}/cdr")],
        call_bridges: 2,
        tenants: 2,
        calls_per_second: 20.0,
        duration: Some(Duration::from_secs(5)),
        seed: 99,
        // The Call Bridge's own losses too: announced on both receivers, counted once.
        drop_rate: 0.02,
        queue_capacity: 50,
        request_timeout: Duration::from_secs(2),
        ..SimConfig::default()
    };
    let run = tokio::spawn(sim::run(cfg, std::future::pending()));
    // B comes up once A has far more than two queues' worth.
    until(Duration::from_secs(30), "A to take records", async || {
        records(&scrape(a.addr).await) > 500.0
    })
    .await;
    let b = start(dirs[1].path(), Some(b_addr));
    let summary = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("simulation hung")
        .unwrap()
        .unwrap();
    let [ta, tb] = &summary.targets[..] else {
        panic!("{:?}", summary.targets)
    };
    assert_eq!((ta.records_queue_dropped, ta.records_unsent), (0, 0));
    assert!(tb.records_queue_dropped > 300, "{tb:?}");
    assert_eq!(tb.records_unsent, 0, "{tb:?}");
    assert_eq!(summary.records_queue_dropped, tb.records_queue_dropped);
    assert!(
        tb.expected.missing >= tb.records_queue_dropped + ta.expected.missing
            && ta.expected.missing > 0,
        "{ta:?}\n{tb:?}"
    );
    assert!(tb.expected.records_total < ta.expected.records_total);
    assert_exporter_shows(a.addr, &ta.expected).await;
    assert_exporter_shows(b.addr, &tb.expected).await;
    a.kill9();
    b.kill9();
}
