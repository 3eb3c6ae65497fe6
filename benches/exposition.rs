//! `/metrics` encoding cost: `Exposition::encode` in Prometheus text 0.0.4 and OpenMetrics at
//! about 10k and 100k series.
//!
//! Run with `cargo bench --bench exposition`. Results and the target (10k series: p99 ≤ 2 ms)
//! are in BENCHMARKS.md ("/metrics encoding").
//!
//! The series are made the way production makes them: by applying CDR batches. 24 clustered
//! Call Bridges each host calls of many tenants; every call has legs that end with different
//! reasons, teardown sides, codecs, alarms and resolutions, so every family of the exporter
//! is populated (counters, gauges, histograms). Tenants are added until the text output has
//! the wanted number of sample lines ("series" below: every `_bucket`, `_sum` and `_count`
//! line counts, as Prometheus stores each as its own series). Label caps are raised so that
//! nothing collapses into `other`.
//!
//! Besides criterion's mean and confidence interval, a plain loop of encodes prints p50, p99
//! and max per format and size (criterion reports no tail).

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cdr_exporter::cdr;
use cdr_exporter::config::{Config, Labels};
use cdr_exporter::ingest::Origin;
use cdr_exporter::metrics::Format;
use cdr_exporter::App;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BRIDGES: u64 = 24;
const LEGS_PER_CALL: u64 = 6;
const NOW: f64 = 1_718_092_800.0;

fn guid(tag: u32, n: u64) -> String {
    format!("{tag:08x}-0000-4000-8000-{n:012x}")
}

const REASONS: &[&str] = &[
    "remoteTeardown",
    "callEnded",
    "callDeactivated",
    "localTeardown",
    "timeout",
    "error",
    "remoteBusy",
    "ringingTimeout",
];
const AUDIO: &[&str] = &["g722", "g711u", "opus", "g729", "aac"];
const VIDEO: &[&str] = &["h264", "vp8"];
const ALARMS: &[&str] = &["packetLoss", "excessiveJitter", "highRoundTripTime"];

/// One bridge's session and where its correlatorIndex is.
struct Bridge {
    session: String,
    call_bridge: String,
    ci: u64,
}

fn rec(out: &mut String, kind: &str, ci: &mut u64) {
    write!(
        out,
        "<record type=\"{kind}\" time=\"2024-06-11T08:00:00Z\" correlatorIndex=\"{}\">",
        *ci
    )
    .unwrap();
    *ci += 1;
}

/// A batch with one call of tenant `t` on bridge `b`: callStart, legs started and ended with
/// varied labels, callEnd.
fn call_batch(br: &mut Bridge, t: u64, call: u64) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\"?><records session=\"{}\" callBridge=\"{}\">",
        br.session, br.call_bridge
    );
    let call_id = guid(0xca11, call);
    rec(&mut s, "callStart", &mut br.ci);
    write!(
        s,
        "<call id=\"{call_id}\"><name>m{call}</name><tenant>{}</tenant><callType>{}</callType></call></record>",
        guid(0x7e4a, t),
        if call.is_multiple_of(2) { "coSpace" } else { "adHoc" }
    )
    .unwrap();
    for l in 0..LEGS_PER_CALL {
        let leg = guid(0x1e90, call * LEGS_PER_CALL + l);
        let k = (call + l) as usize;
        rec(&mut s, "callLegStart", &mut br.ci);
        write!(
            s,
            "<callLeg id=\"{leg}\"><type>{}</type><direction>{}</direction><call>{call_id}</call></callLeg></record>",
            if k.is_multiple_of(3) { "acano" } else { "sip" },
            if k.is_multiple_of(4) { "outgoing" } else { "incoming" }
        )
        .unwrap();
    }
    for l in 0..LEGS_PER_CALL {
        let leg = guid(0x1e90, call * LEGS_PER_CALL + l);
        let k = (call * 7 + l * 3) as usize;
        let reason = REASONS[(l as usize + t as usize) % REASONS.len()];
        rec(&mut s, "callLegEnd", &mut br.ci);
        write!(
            s,
            "<callLeg id=\"{leg}\"><reason>{reason}</reason><remoteTeardown>{}</remoteTeardown>\
             <encryptedMedia>{}</encryptedMedia><unencryptedMedia>{}</unencryptedMedia>\
             <durationSeconds>{}</durationSeconds>\
             <mediaUsagePercentages><mainVideoViewer>95.5</mainVideoViewer><mainVideoContributor>80.0</mainVideoContributor><presentationViewer>10.0</presentationViewer></mediaUsagePercentages>\
             <alarm type=\"{}\" durationPercentage=\"3.5\"/>\
             <rxAudio><codec>{}</codec><packetStatistics><packetLossBursts><duration>1.5</duration><density>{}</density></packetLossBursts><packetGap><duration>100.0</duration><density>0.5</density></packetGap></packetStatistics></rxAudio>\
             <txAudio><codec>{}</codec></txAudio>\
             <rxVideo><codec>{}</codec><maxSizeWidth>1280</maxSizeWidth><maxSizeHeight>{}</maxSizeHeight><packetStatistics><packetLossBursts><duration>0.5</duration><density>20.0</density></packetLossBursts><packetGap><duration>100.0</duration><density>0.1</density></packetGap></packetStatistics></rxVideo>\
             <txVideo><codec>{}</codec><maxSizeWidth>640</maxSizeWidth><maxSizeHeight>360</maxSizeHeight></txVideo>\
             </callLeg></record>",
            k.is_multiple_of(2),
            !k.is_multiple_of(3),
            k.is_multiple_of(3),
            10 + (k * 37) % 5000,
            ALARMS[k % ALARMS.len()],
            AUDIO[k % AUDIO.len()],
            (k % 50) as f64,
            AUDIO[(k + 1) % AUDIO.len()],
            VIDEO[k % VIDEO.len()],
            [360, 720, 1080][k % 3],
            VIDEO[(k + 1) % VIDEO.len()],
        )
        .unwrap();
    }
    rec(&mut s, "callEnd", &mut br.ci);
    write!(
        s,
        "<call id=\"{call_id}\"><callLegsCompleted>{LEGS_PER_CALL}</callLegsCompleted><callLegsMaxActive>{LEGS_PER_CALL}</callLegsMaxActive><durationSeconds>{}</durationSeconds></call></record></records>",
        60 + call % 3600
    )
    .unwrap();
    s
}

fn series(app: &App) -> usize {
    app.state
        .exposition
        .encode_text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count()
}

/// An exporter state with at least `target` series: (tenant, bridge) pairs are added, tenant
/// by tenant across the bridges, until the text output has that many sample lines.
fn populated(target: usize) -> (App, usize, u64) {
    let cfg = Config {
        labels: Labels {
            max_call_bridges: 1000,
            max_tenants: 100_000,
            max_values: 64,
            ..Labels::default()
        },
        ..Config::default()
    };
    let app = App::new(&cfg).expect("config");
    let mut bridges: Vec<Bridge> = (0..BRIDGES)
        .map(|b| Bridge {
            session: guid(0x5e55, b),
            call_bridge: guid(0xcb, b),
            ci: 0,
        })
        .collect();
    let src = Origin {
        query_call_bridge: None,
        peer: None,
    };
    let mut pairs = 0u64;
    loop {
        let n = series(&app);
        if n >= target {
            return (app, n, pairs.div_ceil(BRIDGES));
        }
        // A pair adds about 150 series: approach the target in steps of half the gap.
        let step = ((target - n) / 300).max(1) as u64;
        for p in pairs..pairs + step {
            let (t, b) = (p / BRIDGES, (p % BRIDGES) as usize);
            let body = call_batch(&mut bridges[b], t, p);
            let batch = cdr::parse(body.as_bytes()).expect("generated batch parses");
            let out = app.pipeline.ingest().apply(&batch, &src, NOW);
            assert_eq!(out.applied as usize, batch.records.len(), "{out:?}");
        }
        pairs += step;
    }
}

/// Encodes `n` times; prints p50, p99, max and mean.
fn tail(app: &App, format: Format, name: &str, n: usize) -> Duration {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            black_box(app.state.exposition.encode(format));
            t.elapsed()
        })
        .collect();
    v.sort();
    let q = |p: f64| v[(((v.len() as f64) * p).ceil() as usize).clamp(1, v.len()) - 1];
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    let p99 = q(0.99);
    eprintln!(
        "TAIL {name}: {n} encodes: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, mean {:.3} ms",
        q(0.5).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3
    );
    p99
}

fn benches(c: &mut Criterion) {
    // `cargo test --all-targets` runs benches once without `--bench`: keep that quick.
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes: &[(&str, usize, usize)] = if measuring {
        &[("10k", 10_000, 1000), ("100k", 100_000, 200)]
    } else {
        &[("10k", 10_000, 10)]
    };
    for &(label, target, loops) in sizes {
        let t0 = Instant::now();
        let (app, n, tenants) = populated(target);
        let text = app.state.exposition.encode_text();
        let om = app.state.exposition.encode(Format::OpenMetrics);
        eprintln!(
            "SERIES {label}: {n} series ({BRIDGES} call bridges, {tenants} tenants), text {} bytes, OpenMetrics {} bytes, built in {:.1}s",
            text.len(),
            om.len(),
            t0.elapsed().as_secs_f64()
        );
        assert!(text.contains("cms_call_leg_mos_bucket{") && om.ends_with(b"# EOF\n"));
        assert!(!text.contains("=\"other\""), "a label cap was reached");
        for (fname, f) in [
            ("text004", Format::Text004),
            ("openmetrics", Format::OpenMetrics),
        ] {
            tail(&app, f, &format!("{label} {fname}"), loops);
        }
        let mut g = c.benchmark_group(format!("metrics_{label}"));
        g.throughput(Throughput::Elements(n as u64));
        if target >= 100_000 {
            g.sample_size(30);
            g.measurement_time(Duration::from_secs(10));
        } else {
            g.measurement_time(Duration::from_secs(5));
        }
        for (fname, f) in [
            ("text004", Format::Text004),
            ("openmetrics", Format::OpenMetrics),
        ] {
            g.bench_function(BenchmarkId::new(fname, n), |b| {
                b.iter(|| app.state.exposition.encode(black_box(f)))
            });
        }
        g.finish();
    }
}

criterion_group!(exposition, benches);
criterion_main!(exposition);
