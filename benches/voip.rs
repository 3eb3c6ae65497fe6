//! FreeSWITCH CDR and rtpengine report throughput: parse (each transport encoding) against
//! the bare reader on the same document (quick-xml's event loop, serde_json into a `Value`),
//! and apply (dedupe, labels, histograms) per CDR or report.
//!
//! Run with `cargo bench --bench voip`. Inputs are the fixtures of `tests/fixtures/`
//! (upstream-shaped; see their READMEs), with a distinct uuid / Call-ID per iteration where
//! a distinct one matters (apply: a repeated one would only measure the duplicate path).
//! Results in BENCHMARKS.md ("FreeSWITCH and rtpengine").

use std::hint::black_box;
use std::time::Duration;

use cdr_exporter::config::Config;
use cdr_exporter::freeswitch::{self as fs, Encoding};
use cdr_exporter::ingest::Origin;
use cdr_exporter::rtpengine;
use cdr_exporter::App;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use quick_xml::events::Event;
use quick_xml::Reader;

const A_UUID: &str = "a8d3e6f2-4c1b-4f5e-9b7a-1e2d3c4b5a60";

fn fixture(name: &str) -> String {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// quick-xml's event loop over the document: the floor any XML CDR parser stands on.
fn bare_xml(doc: &str) -> usize {
    let mut r = Reader::from_str(doc);
    let mut n = 0;
    loop {
        match r.read_event() {
            Ok(Event::Eof) => return n,
            Ok(_) => n += 1,
            Err(e) => panic!("{e}"),
        }
    }
}

fn parse(c: &mut Criterion) {
    let doc = fixture("freeswitch/a-leg-good.xml");
    let json = fixture("freeswitch/json-encoded-values.json");
    let mut g = c.benchmark_group("freeswitch_parse");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.bench_function("bare_quick_xml_loop", |b| {
        b.iter(|| bare_xml(black_box(&doc)))
    });
    for enc in [
        Encoding::TextXml,
        Encoding::UrlEncoded,
        Encoding::Base64,
        Encoding::Plain,
    ] {
        let (ct, body) = fs::encode(&doc, enc);
        assert!(fs::parse(Some(ct), &body).is_ok());
        g.bench_function(format!("xml_{}", enc.as_label()), |b| {
            b.iter(|| fs::parse(Some(ct), black_box(&body)).unwrap())
        });
    }
    g.bench_function("bare_serde_json_value", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(&json)).unwrap())
    });
    g.bench_function("json", |b| {
        b.iter(|| fs::parse(Some("application/json"), black_box(json.as_bytes())).unwrap())
    });
    g.finish();

    let report = fixture("rtpengine/kamailio-5.6-bye.json");
    let mut g = c.benchmark_group("rtpengine_parse");
    g.throughput(Throughput::Bytes(report.len() as u64));
    g.bench_function("bare_serde_json_value", |b| {
        b.iter(|| serde_json::from_str::<serde_json::Value>(black_box(&report)).unwrap())
    });
    g.bench_function("report", |b| {
        b.iter(|| rtpengine::parse(black_box(report.as_bytes())).unwrap())
    });
    g.finish();
}

fn apply(c: &mut Criterion) {
    let app = App::new(&Config::default()).unwrap();
    let ingest = app.pipeline.ingest().clone();
    let doc = fixture("freeswitch/a-leg-good.xml");
    let report = fixture("rtpengine/kamailio-5.6-bye.json");
    let src = Origin::default();
    let mut i = 0u64;
    let mut g = c.benchmark_group("voip_apply");
    g.throughput(Throughput::Elements(1));
    g.bench_function("freeswitch_cdr", |b| {
        b.iter_batched(
            || {
                i += 1;
                let d = doc.replace(A_UUID, &format!("a8d3e6f2-4c1b-4f5e-9b7a-{i:012}"));
                fs::parse(Some("text/xml"), d.as_bytes()).unwrap()
            },
            |cdr| ingest.apply_freeswitch(black_box(&cdr), &src, 1.7e9),
            BatchSize::SmallInput,
        )
    });
    assert!(
        report.contains("q\\\"uo\\\\te-1-4018"),
        "fixture call_id changed"
    );
    let mut j = 0u64;
    g.bench_function("rtpengine_report", |b| {
        b.iter_batched(
            || {
                j += 1;
                let r = report.replace("q\\\"uo\\\\te-1-4018", &format!("call-{j}"));
                rtpengine::parse(r.as_bytes()).unwrap()
            },
            |rep| ingest.apply_rtpengine(black_box(&rep), &src, 1.7e9),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    // The dedupe memories hold every distinct one: the runs applied, not deduplicated (a
    // measured run makes thousands; `cargo test --benches` runs each routine once).
    let at_least = if std::env::args().any(|a| a == "--bench") {
        10
    } else {
        1
    };
    let entries = ingest.dedupe_entries();
    assert!(entries.iter().all(|(_, n)| *n >= at_least), "{entries:?}");
}

criterion_group!(voip, parse, apply);
criterion_main!(voip);
