//! `/metrics` cost at the sizes the README's "Cardinality" section names: Call Bridges ×
//! tenants = 3 × 4, 24 × 300 and 24 × 2,000. For each, the series and bytes of one scrape,
//! and the time to write it: ours in text 0.0.4, OpenMetrics and gzipped text, beside
//! prometheus-client's own OpenMetrics encoder on the same stored series (the reference).
//!
//! Run with `cargo bench --bench exposition`; figures in BENCHMARKS.md ("/metrics encoding").
//!
//! The state is made the way production makes it: by applying CDR batches. Every tenant has
//! calls, spread over the Call Bridges, and every Call Bridge has calls whose legs end with
//! varied reasons, teardown sides, codecs, alarms and resolutions, so every family of the
//! default configuration is populated. Besides criterion's mean, a plain loop prints p50,
//! p99 and max per encoder (criterion reports no tail).

#[path = "common/reference.rs"]
mod reference;

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cdr_exporter::cdr;
use cdr_exporter::config::Config;
use cdr_exporter::ingest::Origin;
use cdr_exporter::metrics::Format;
use cdr_exporter::App;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

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

/// An exporter (default configuration) after calls of `tenants` tenants on `bridges` Call
/// Bridges: one call per tenant at least, and at least 40 calls per Call Bridge.
fn populated(bridges: u64, tenants: u64) -> App {
    let app = App::new(&Config::default()).expect("config");
    let mut br: Vec<Bridge> = (0..bridges)
        .map(|b| Bridge {
            session: guid(0x5e55, b),
            call_bridge: guid(0xcb, b),
            ci: 0,
        })
        .collect();
    let src = Origin::default();
    for call in 0..tenants.max(bridges * 40) {
        let (t, b) = (call % tenants, (call % bridges) as usize);
        let body = call_batch(&mut br[b], t, call);
        let batch = cdr::parse(body.as_bytes()).expect("generated batch parses");
        let out = app.pipeline.ingest().apply(&batch, &src, NOW);
        assert_eq!(out.applied as usize, batch.records.len(), "{out:?}");
    }
    app
}

/// Runs `f` `n` times; prints p50, p99, max.
fn tail(name: &str, n: usize, mut f: impl FnMut()) {
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    let q = |p: f64| v[(((v.len() as f64) * p).ceil() as usize).clamp(1, v.len()) - 1];
    eprintln!(
        "TAIL {name}: {n} runs: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        q(0.5).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
    );
}

fn benches(c: &mut Criterion) {
    // `cargo test --all-targets` runs benches once without `--bench`: keep that quick.
    let measuring = std::env::args().any(|a| a == "--bench");
    let sizes: &[(u64, u64)] = if measuring {
        &[(3, 4), (24, 300), (24, 2_000)]
    } else {
        &[(3, 4)]
    };
    for &(bridges, tenants) in sizes {
        let label = format!("{bridges}x{tenants}");
        let t0 = Instant::now();
        let app = populated(bridges, tenants);
        let ex = &app.state.exposition;
        let text = ex.encode(Format::Text004);
        let om = ex.encode(Format::OpenMetrics);
        let gz = ex.encode_gzip(Format::Text004);
        let reg = reference::registry(app.pipeline.ingest().metrics.clone());
        let theirs = reference::encode(&reg);
        let series = String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count();
        eprintln!(
            "SERIES {label}: {series} series; text {} bytes, OpenMetrics {} bytes, gzip {} bytes \
             ({:.1}x smaller); prometheus-client's OpenMetrics of the stored families {} bytes; \
             built in {:.1} s",
            text.len(),
            om.len(),
            gz.len(),
            text.len() as f64 / gz.len() as f64,
            theirs.len(),
            t0.elapsed().as_secs_f64()
        );
        assert!(om.ends_with(b"# EOF\n") && theirs.ends_with("# EOF\n"));
        let loops = if measuring { 200 } else { 3 };
        tail(&format!("{label} ours text004"), loops, || {
            black_box(ex.encode(Format::Text004));
        });
        tail(&format!("{label} ours openmetrics"), loops, || {
            black_box(ex.encode(Format::OpenMetrics));
        });
        tail(&format!("{label} ours gzip"), loops, || {
            black_box(ex.encode_gzip(Format::Text004));
        });
        tail(&format!("{label} prometheus-client"), loops, || {
            black_box(reference::encode(&reg));
        });
        let mut g = c.benchmark_group(format!("metrics_{label}"));
        g.throughput(Throughput::Elements(series as u64));
        g.measurement_time(Duration::from_secs(if series > 20_000 { 10 } else { 5 }));
        for (name, f) in [
            ("ours_text004", Format::Text004),
            ("ours_openmetrics", Format::OpenMetrics),
        ] {
            g.bench_function(BenchmarkId::new(name, series), |b| {
                b.iter(|| ex.encode(black_box(f)))
            });
        }
        g.bench_function(BenchmarkId::new("ours_gzip", series), |b| {
            b.iter(|| ex.encode_gzip(Format::Text004))
        });
        g.bench_function(
            BenchmarkId::new("prometheus_client_openmetrics", series),
            |b| b.iter(|| reference::encode(&reg)),
        );
        g.finish();
    }
}

criterion_group!(exposition, benches);
criterion_main!(exposition);
