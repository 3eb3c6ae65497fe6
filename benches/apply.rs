//! Per-record cost of ingest: `cdr::parse` + `Ingest::apply` (tracker, every metric update
//! and the MOS estimate) for callLegEnd records with full media sections, for legs that are
//! being tracked; and `apply` alone on a pre-parsed batch, to separate the two costs.
//!
//! Run with `cargo bench --bench apply`. Results and the target (≤ 2 µs per record on one
//! core) are in BENCHMARKS.md ("Apply").
//!
//! Every timed iteration gets a fresh `App::new(&Config::default())` in which, untimed:
//! - a warm-up batch has started the calls (callStart with tenants), and started and ended
//!   other legs with the same label values as the timed ones, so every series the timed
//!   records touch exists already (steady state, as after the first minutes of a real run);
//! - the timed legs' callLegStart records have been applied, so each timed callLegEnd ends a
//!   tracked leg (dedupe never skips it, and the leg's tenant comes from its call).
//!
//! The timed batch then holds N callLegEnd records (rx/tx audio and video, packetStatistics
//! on both rx streams, alarms in the attribute form on some legs, media usage, encryption),
//! ~1.5 KB each, with the correlatorIndex following the starts.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use cdr_exporter::cdr::{self, Batch, Record};
use cdr_exporter::config::Config;
use cdr_exporter::ingest::Origin;
use cdr_exporter::App;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

const SESSION: &str = "a865433a-4926-4549-a701-9bb5b93c75e6";
const CALL_BRIDGE: &str = "158ba4f7-70eb-4a35-982c-71d4f1674277";
const TENANTS: u64 = 8;
const LEGS_PER_CALL: u64 = 4;
const NOW: f64 = 1_718_092_800.0;

mod common;
use common::Rng;

/// A GUID made of a kind tag and a number: distinct for distinct (tag, n).
fn guid(tag: u32, n: u64) -> String {
    format!("{tag:08x}-0000-4000-8000-{n:012x}")
}
const TAG_CALL: u32 = 0xca11;
const TAG_TENANT: u32 = 0x7e4a;
const TAG_LEG: u32 = 0x1e90;

fn head() -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<records session=\"{SESSION}\" callBridge=\"{CALL_BRIDGE}\">\n"
    )
}
const TAIL: &str = "</records>\n";

fn record_open(out: &mut String, kind: &str, ci: u64) {
    writeln!(
        out,
        "  <record type=\"{kind}\" time=\"2024-06-11T08:00:{:02}Z\" recordIndex=\"{}\" correlatorIndex=\"{ci}\">",
        ci % 60,
        ci + 1
    )
    .unwrap();
}

fn call_start(out: &mut String, ci: u64, call: u64) {
    record_open(out, "callStart", ci);
    write!(
        out,
        "    <call id=\"{}\">\n      <name>Team meeting {call}</name>\n      <coSpace>{}</coSpace>\n      <tenant>{}</tenant>\n      <callType>coSpace</callType>\n      <callCorrelator>{}</callCorrelator>\n    </call>\n  </record>\n",
        guid(TAG_CALL, call),
        guid(0xc05, call),
        guid(TAG_TENANT, call % TENANTS),
        guid(0xc0e, call),
    )
    .unwrap();
}

fn leg_start(out: &mut String, ci: u64, leg: u64, call: u64) {
    record_open(out, "callLegStart", ci);
    write!(
        out,
        "    <callLeg id=\"{}\">\n      <displayName>Alice Example</displayName>\n      <localAddress>meet.example.com</localAddress>\n      <remoteAddress>alice@example.com</remoteAddress>\n      <remoteParty>alice@example.com</remoteParty>\n      <guestConnection>false</guestConnection>\n      <recording>false</recording>\n      <streaming>false</streaming>\n      <type>sip</type>\n      <direction>incoming</direction>\n      <call>{}</call>\n    </callLeg>\n  </record>\n",
        guid(TAG_LEG, leg),
        guid(TAG_CALL, call),
    )
    .unwrap();
}

fn packet_statistics(out: &mut String, rng: &mut Rng, media_s: f64) {
    let (bd, bdens) = if rng.below(4) == 0 {
        (
            rng.below(5000) as f64 / 1000.0,
            rng.below(4000) as f64 / 100.0,
        )
    } else {
        (0.0, 0.0)
    };
    let gd = (media_s - bd).max(0.0);
    let gdens = rng.below(60) as f64 / 100.0;
    write!(
        out,
        "        <packetStatistics>\n          <packetLossBursts>\n            <duration>{bd:.3}</duration>\n            <density>{bdens:.2}</density>\n          </packetLossBursts>\n          <packetGap>\n            <duration>{gd:.3}</duration>\n            <density>{gdens:.2}</density>\n          </packetGap>\n        </packetStatistics>\n"
    )
    .unwrap();
}

/// A callLegEnd with every media section; `rng` decides the content (labels and values).
fn leg_end(out: &mut String, rng: &mut Rng, ci: u64, leg: u64) {
    const REASONS: &[&str] = &[
        "remoteTeardown",
        "remoteTeardown",
        "callDeactivated",
        "localTeardown",
        "callEnded",
        "timeout",
        "error",
    ];
    const AUDIO: &[&str] = &["g722", "g711u", "g711a", "opus", "g722_1c", "aac", "g729"];
    const VIDEO: &[&str] = &["h264", "h264", "h264", "vp8"];
    const H: &[u32] = &[360, 720, 1080];
    let reason = rng.pick(REASONS);
    let remote = reason == "remoteTeardown";
    let duration = 5 + rng.below(3600);
    record_open(out, "callLegEnd", ci);
    write!(
        out,
        "    <callLeg id=\"{}\">\n      <reason>{reason}</reason>\n      <remoteTeardown>{remote}</remoteTeardown>\n      <encryptedMedia>true</encryptedMedia>\n      <unencryptedMedia>false</unencryptedMedia>\n      <durationSeconds>{duration}</durationSeconds>\n      <activatedDuration>{}</activatedDuration>\n      <mediaUsagePercentages>\n        <mainVideoViewer>{}.{}</mainVideoViewer>\n        <mainVideoContributor>{}.{}</mainVideoContributor>\n      </mediaUsagePercentages>\n",
        guid(TAG_LEG, leg),
        duration - 1,
        80 + rng.below(20),
        rng.below(10),
        60 + rng.below(40),
        rng.below(10),
    )
    .unwrap();
    if rng.below(5) == 0 {
        writeln!(
            out,
            "      <alarm type=\"packetLoss\" durationPercentage=\"{}.{}\"/>",
            rng.below(20),
            rng.below(10)
        )
        .unwrap();
    }
    if rng.below(10) == 0 {
        writeln!(
            out,
            "      <alarm type=\"excessiveJitter\" durationPercentage=\"{}.{}\"/>",
            rng.below(20),
            rng.below(10)
        )
        .unwrap();
    }
    let media_s = duration as f64 - 0.5;
    write!(
        out,
        "      <rxAudio>\n        <codec>{}</codec>\n",
        rng.pick(AUDIO)
    )
    .unwrap();
    packet_statistics(out, rng, media_s);
    write!(
        out,
        "      </rxAudio>\n      <txAudio>\n        <codec>{}</codec>\n      </txAudio>\n",
        rng.pick(AUDIO)
    )
    .unwrap();
    let rh = H[rng.below(3) as usize];
    write!(
        out,
        "      <rxVideo>\n        <codec>{}</codec>\n        <maxSizeWidth>{}</maxSizeWidth>\n        <maxSizeHeight>{rh}</maxSizeHeight>\n",
        rng.pick(VIDEO),
        rh * 16 / 9
    )
    .unwrap();
    packet_statistics(out, rng, media_s - 1.0);
    let th = H[rng.below(3) as usize];
    write!(
        out,
        "      </rxVideo>\n      <txVideo>\n        <codec>{}</codec>\n        <maxSizeWidth>{}</maxSizeWidth>\n        <maxSizeHeight>{th}</maxSizeHeight>\n      </txVideo>\n    </callLeg>\n  </record>\n",
        rng.pick(VIDEO),
        th * 16 / 9
    )
    .unwrap();
}

/// The bodies of one scenario with `n` timed legs.
struct Bodies {
    /// callStarts, then start and end of `n` warm-up legs (same content as the timed ones).
    warm: String,
    /// callLegStart of the `n` timed legs.
    starts: String,
    /// callLegEnd of the `n` timed legs: what is measured.
    ends: String,
}

const CONTENT_SEED: u64 = 0x00c0_ffee_cd12_3456;

fn bodies(n: u64) -> Bodies {
    let calls = n.div_ceil(LEGS_PER_CALL);
    let mut ci = 0;
    let mut warm = head();
    for c in 0..calls {
        call_start(&mut warm, ci, c);
        ci += 1;
    }
    // Warm-up legs: ids n.., the same content seed as the timed ones.
    for l in 0..n {
        leg_start(&mut warm, ci, n + l, l / LEGS_PER_CALL);
        ci += 1;
    }
    let mut rng = Rng(CONTENT_SEED);
    for l in 0..n {
        leg_end(&mut warm, &mut rng, ci, n + l);
        ci += 1;
    }
    warm.push_str(TAIL);
    let mut starts = head();
    for l in 0..n {
        leg_start(&mut starts, ci, l, l / LEGS_PER_CALL);
        ci += 1;
    }
    starts.push_str(TAIL);
    let mut ends = head();
    let mut rng = Rng(CONTENT_SEED);
    for l in 0..n {
        leg_end(&mut ends, &mut rng, ci, l);
        ci += 1;
    }
    ends.push_str(TAIL);
    Bodies { warm, starts, ends }
}

fn src() -> Origin<'static> {
    Origin {
        query_sender: None,
        peer: None,
    }
}

/// A fresh exporter state with the warm-up and the timed legs' starts applied.
fn prepared(warm: &Batch<'_>, starts: &Batch<'_>) -> App {
    let app = App::new(&Config::default()).expect("default config");
    app.pipeline.ingest().apply(warm, &src(), NOW);
    app.pipeline.ingest().apply(starts, &src(), NOW);
    app
}

/// Sum of the samples of `name` in the text exposition.
fn scraped(app: &App, name: &str) -> f64 {
    app.state
        .exposition
        .encode_text()
        .lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Checks, once and untimed, that the scenario measures what it claims.
fn check(b: &Bodies, n: u64) {
    let warm = cdr::parse(b.warm.as_bytes()).unwrap();
    let starts = cdr::parse(b.starts.as_bytes()).unwrap();
    let ends = cdr::parse(b.ends.as_bytes()).unwrap();
    assert_eq!(ends.records.len() as u64, n);
    let mut alarms = 0;
    for e in &ends.records {
        let Ok(Record::CallLegEnd(r)) = &e.body else {
            panic!("not a valid callLegEnd: {e:?}");
        };
        let ps = r.rx_audio.as_ref().and_then(|a| a.packet_statistics);
        assert!(ps.is_some() && r.rx_video.as_ref().unwrap().packet_statistics.is_some());
        assert!(r.tx_audio.is_some() && r.tx_video.is_some());
        alarms += r.alarms.len();
    }
    assert!(n < 10 || alarms > 0, "some legs carry alarms");
    let app = prepared(&warm, &starts);
    let legs_before = scraped(&app, "cms_call_legs_active");
    let mos_before = scraped(&app, "cms_call_leg_mos_count");
    let series_before = sample_lines(&app);
    let out = app.pipeline.ingest().apply(&ends, &src(), NOW);
    assert_eq!(out.applied, n, "{out:?}");
    assert_eq!(
        (out.duplicates, out.invalid, out.missing),
        (0, 0, 0),
        "{out:?}"
    );
    assert_eq!(legs_before, n as f64, "the timed legs are tracked");
    assert_eq!(scraped(&app, "cms_call_legs_active"), 0.0);
    assert_eq!(
        scraped(&app, "cms_call_leg_mos_count") - mos_before,
        n as f64
    );
    assert_eq!(scraped(&app, "cdr_exporter_records_unmatched_total"), 0.0);
    // Tenants came from the calls: no leg ended under `unknown`.
    let text = app.state.exposition.encode_text();
    assert!(!text
        .lines()
        .any(|l| l.starts_with("cms_call_legs_ended_total{") && l.contains("tenant=\"unknown\"")));
    // The warm-up created every series the timed records touch.
    assert_eq!(series_before, sample_lines(&app));
}

fn sample_lines(app: &App) -> usize {
    app.state
        .exposition
        .encode_text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("process_"))
        .count()
}

fn benches(c: &mut Criterion) {
    for n in [10u64, 100] {
        let b = bodies(n);
        check(&b, n);
        eprintln!(
            "apply_{n}: {n} callLegEnd records, {} bytes ({:.0} bytes/record incl. envelope)",
            b.ends.len(),
            b.ends.len() as f64 / n as f64
        );
        let warm = cdr::parse(b.warm.as_bytes()).unwrap();
        let starts = cdr::parse(b.starts.as_bytes()).unwrap();
        let ends_parsed = cdr::parse(b.ends.as_bytes()).unwrap();
        let ends = b.ends.as_bytes();
        let mut g = c.benchmark_group(format!("apply_{n}"));
        g.throughput(Throughput::Elements(n));
        g.measurement_time(Duration::from_secs(if n >= 100 { 8 } else { 5 }));
        g.bench_function(BenchmarkId::new("parse_apply_mos", n), |bch| {
            bch.iter_batched_ref(
                || prepared(&warm, &starts),
                |app| {
                    let batch = cdr::parse(black_box(ends)).unwrap();
                    app.pipeline.ingest().apply(&batch, &src(), NOW)
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(BenchmarkId::new("apply_mos_only", n), |bch| {
            bch.iter_batched_ref(
                || prepared(&warm, &starts),
                |app| {
                    app.pipeline
                        .ingest()
                        .apply(black_box(&ends_parsed), &src(), NOW)
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function(BenchmarkId::new("parse_only", n), |bch| {
            bch.iter(|| cdr::parse(black_box(ends)).unwrap())
        });
        g.finish();
    }
}

criterion_group!(apply, benches);
criterion_main!(apply);
