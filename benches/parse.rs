//! Parser throughput: `cdr::parse` against quick-xml's bare event loop on the same bytes.
//!
//! Run with `cargo bench --bench parse`. Results and the targets they are checked
//! against are in BENCHMARKS.md ("Parser").
//!
//! The input is generated here, deterministically: a ~1 MB `<records>` batch of
//! callLegEnd records shaped like the guide's chapter 6 example (pretty-printed,
//! two-space indentation, ~1.7 KB per record), with distinct leg GUIDs, increasing
//! correlatorIndex and a packetLoss alarm on some legs.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use cdr_exporter::cdr::{self, Record};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use quick_xml::events::Event;
use quick_xml::Reader;

/// Size the large batch is grown to (bytes, whole records only).
const LARGE_BATCH_BYTES: usize = 1_000_000;
/// Records in the small batch (per-record and per-batch overhead).
const SMALL_BATCH_RECORDS: usize = 10;

mod common;
use common::Rng;

const SESSION: &str = "a865433a-4926-4549-a701-9bb5b93c75e6";
const CALL_BRIDGE: &str = "158ba4f7-70eb-4a35-982c-71d4f1674277";

/// One `<packetStatistics>` block at the indentation of a media section's children.
fn packet_statistics(out: &mut String, rng: &mut Rng, media_seconds: f64) {
    // Most legs are clean; some have short loss bursts.
    let (burst_dur, burst_density) = if rng.below(4) == 0 {
        (
            (rng.below(5000) as f64) / 1000.0,
            (rng.below(4000) as f64) / 100.0,
        )
    } else {
        (0.0, 0.0)
    };
    let gap_dur = (media_seconds - burst_dur).max(0.0);
    let gap_density = (rng.below(60) as f64) / 100.0;
    write!(
        out,
        "        <packetStatistics>\n\
         \x20         <packetLossBursts>\n\
         \x20           <duration>{burst_dur:.3}</duration>\n\
         \x20           <density>{burst_density:.2}</density>\n\
         \x20         </packetLossBursts>\n\
         \x20         <packetGap>\n\
         \x20           <duration>{gap_dur:.3}</duration>\n\
         \x20           <density>{gap_density:.2}</density>\n\
         \x20         </packetGap>\n\
         \x20       </packetStatistics>\n"
    )
    .unwrap();
}

/// Appends one callLegEnd `<record>` (chapter 6 shape) to `out`.
fn call_leg_end(out: &mut String, rng: &mut Rng, correlator_index: u64, time_s: u64) {
    const REASONS: &[&str] = &[
        "remoteTeardown",
        "remoteTeardown",
        "callDeactivated",
        "localTeardown",
        "callEnded",
        "apiInitiatedTeardown",
        "clientInitiatedTeardown",
    ];
    const AUDIO: &[&str] = &["g722", "g711u", "g711a", "opus", "g722_1c", "aac", "g729"];
    const VIDEO: &[&str] = &["h264", "h264", "h264", "vp8", "h263+"];
    const SIZES: &[(u32, u32)] = &[
        (1920, 1080),
        (1280, 720),
        (1024, 576),
        (768, 448),
        (640, 360),
    ];

    let reason = rng.pick(REASONS);
    let remote = matches!(reason, "remoteTeardown" | "clientInitiatedTeardown");
    let duration = 5 + rng.below(3600);
    let (h, m, s) = (time_s / 3600, (time_s / 60) % 60, time_s % 60);
    let viewer = if rng.below(3) == 0 {
        format!("{}.{}", 80 + rng.below(20), rng.below(10))
    } else {
        "100.0".to_owned()
    };
    let contributor = format!("{}.{}", 90 + rng.below(10), rng.below(10));
    let leg_id = rng.guid();
    write!(
        out,
        "  <record type=\"callLegEnd\" time=\"2024-06-11T{h:02}:{m:02}:{s:02}Z\" recordIndex=\"{ri}\" correlatorIndex=\"{correlator_index}\">\n\
         \x20   <callLeg id=\"{leg_id}\">\n\
         \x20     <reason>{reason}</reason>\n\
         \x20     <remoteTeardown>{remote}</remoteTeardown>\n\
         \x20     <durationSeconds>{duration}</durationSeconds>\n\
         \x20     <mediaUsagePercentages>\n\
         \x20       <mainVideoViewer>{viewer}</mainVideoViewer>\n\
         \x20       <mainVideoContributor>{contributor}</mainVideoContributor>\n\
         \x20     </mediaUsagePercentages>\n\
         \x20     <unencryptedMedia>true</unencryptedMedia>\n",
        ri = correlator_index + 1,
    )
    .unwrap();
    if rng.below(5) == 0 {
        let pct = format!("{}.{}", rng.below(20), rng.below(10));
        writeln!(
            out,
            "      <alarm type=\"packetLoss\" durationPercentage=\"{pct}\"/>"
        )
        .unwrap();
    }
    let media_s = duration as f64 - (rng.below(1500) as f64) / 1000.0;
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
    let (rw, rh) = SIZES[rng.below(SIZES.len() as u64) as usize];
    write!(
        out,
        "      <rxVideo>\n\
         \x20       <codec>{}</codec>\n\
         \x20       <maxSizeWidth>{rw}</maxSizeWidth>\n\
         \x20       <maxSizeHeight>{rh}</maxSizeHeight>\n",
        rng.pick(VIDEO)
    )
    .unwrap();
    packet_statistics(out, rng, media_s - 1.1);
    let (tw, th) = SIZES[rng.below(SIZES.len() as u64) as usize];
    let sip_call_id = rng.guid();
    write!(
        out,
        "      </rxVideo>\n\
         \x20     <txVideo>\n\
         \x20       <codec>{}</codec>\n\
         \x20       <maxSizeWidth>{tw}</maxSizeWidth>\n\
         \x20       <maxSizeHeight>{th}</maxSizeHeight>\n\
         \x20     </txVideo>\n\
         \x20     <sipCallId>{sip_call_id}</sipCallId>\n\
         \x20   </callLeg>\n\
         \x20 </record>\n",
        rng.pick(VIDEO)
    )
    .unwrap();
}

/// A `<records>` batch of callLegEnd records: `max_records` of them, or as many
/// whole records as fit in `max_bytes`, whichever comes first.
fn batch(max_records: usize, max_bytes: usize) -> (String, usize) {
    let mut rng = Rng(0x00c0_ffee_cd12_3456);
    let head = format!(
        "<?xml version=\"1.0\"?>\n<records session=\"{SESSION}\" callBridge=\"{CALL_BRIDGE}\">\n"
    );
    let tail = "</records>\n";
    let mut out = String::with_capacity(max_bytes.min(max_records.saturating_mul(2048)) + 4096);
    out.push_str(&head);
    let mut rec = String::with_capacity(2048);
    let mut n = 0usize;
    let mut time_s = 8 * 3600; // 08:00:00Z
    while n < max_records {
        rec.clear();
        call_leg_end(&mut rec, &mut rng, 1000 + n as u64, time_s);
        if out.len() + rec.len() + tail.len() > max_bytes {
            break;
        }
        out.push_str(&rec);
        n += 1;
        time_s += 1 + rng.below(4);
        assert!(time_s < 86_400, "batch must stay within one day");
    }
    out.push_str(tail);
    (out, n)
}

/// Checks (once, outside any timed loop) that the parser accepts every record.
fn check(body: &[u8], expected: usize) {
    let b = cdr::parse(body).expect("generated batch parses");
    assert_eq!(b.records.len(), expected, "record count");
    let mut legs = HashSet::new();
    let mut last_ci = None;
    let mut alarms = 0;
    for (i, e) in b.records.iter().enumerate() {
        let rec = e
            .body
            .as_ref()
            .unwrap_or_else(|inv| panic!("record {i} invalid: {inv:?}"));
        let Record::CallLegEnd(r) = rec else {
            panic!("record {i} is not callLegEnd: {rec:?}");
        };
        assert!(legs.insert(r.id), "duplicate leg id {}", r.id);
        let ci = e.header.correlator_index.expect("correlatorIndex");
        if let Some(l) = last_ci {
            assert!(ci > l, "correlatorIndex not increasing");
        }
        last_ci = Some(ci);
        assert!(r.reason.is_some() && r.remote_teardown.is_some());
        assert!(r.duration_seconds.is_some() && r.media_usage.main_video_viewer.is_some());
        let rx_a = r.rx_audio.as_ref().expect("rxAudio");
        assert!(rx_a.codec.is_some() && rx_a.packet_statistics.is_some());
        let rx_v = r.rx_video.as_ref().expect("rxVideo");
        assert!(rx_v.max_size_width.is_some() && rx_v.packet_statistics.is_some());
        assert!(r.tx_audio.is_some() && r.tx_video.is_some() && r.sip_call_id.is_some());
        alarms += r.alarms.len();
    }
    let alarm_tags = std::str::from_utf8(body)
        .unwrap()
        .matches("<alarm ")
        .count();
    assert_eq!(alarms, alarm_tags, "every alarm parsed");
    assert!(alarms > 0);
}

/// quick-xml's bare event loop: the floor `cdr::parse` is compared with.
fn bare_loop(body: &[u8]) {
    let text = std::str::from_utf8(body).unwrap();
    let mut reader = Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(e) => {
                black_box(e);
            }
            Err(e) => panic!("bare loop: {e}"),
        }
    }
}

fn bench_batch(c: &mut Criterion, group: &str, body: &str, n: usize, measure: Duration) {
    let bytes = body.as_bytes();
    check(bytes, n);
    bare_loop(bytes);
    eprintln!(
        "{group}: {n} callLegEnd records, {} bytes ({:.0} bytes/record incl. envelope)",
        bytes.len(),
        bytes.len() as f64 / n as f64
    );
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(n as u64));
    g.measurement_time(measure);
    g.bench_with_input(BenchmarkId::new("cdr_parse", n), bytes, |b, body| {
        b.iter(|| cdr::parse(black_box(body)))
    });
    g.bench_with_input(BenchmarkId::new("quick_xml_bare", n), bytes, |b, body| {
        b.iter(|| bare_loop(black_box(body)))
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let (large, n_large) = batch(usize::MAX, LARGE_BATCH_BYTES);
    bench_batch(c, "parse_1mb", &large, n_large, Duration::from_secs(10));

    let (small, n_small) = batch(SMALL_BATCH_RECORDS, usize::MAX);
    assert_eq!(n_small, SMALL_BATCH_RECORDS);
    bench_batch(c, "parse_10rec", &small, n_small, Duration::from_secs(5));
}

criterion_group!(parse, benches);
criterion_main!(parse);
