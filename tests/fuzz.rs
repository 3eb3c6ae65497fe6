//! Property-based fuzzing of `cdr::parse` and of parse + apply (cargo-fuzz needs a nightly
//! toolchain this project does not have). The suite runs a short smoke run;
//! `scripts/fuzz.sh SECONDS` runs many more cases for a bounded time.

mod common;

use cdr_exporter::cdr;
use cdr_exporter::config::Config;
use cdr_exporter::ingest::Origin;
use cdr_exporter::App;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Bodies built from CDR-ish pieces, so mutations reach deep into the parser.
fn cdrish() -> impl Strategy<Value = Vec<u8>> {
    let fixtures: Vec<Vec<u8>> = [
        "ch6-post1.xml",
        "ch6-post2.xml",
        "ch6-post5.xml",
        "ch6-post6.xml",
        "tolerant-forms.xml",
        "record-callLegEnd.xml",
        "alarms-elements.xml",
        "gap-numpreceeding.xml",
        "invalid-records.xml",
    ]
    .iter()
    .map(|f| common::fixture(f))
    .collect();
    let pieces = prop::sample::select(vec![
        "<",
        ">",
        "</",
        "/>",
        "=\"",
        "\"",
        "&amp;",
        "&#x41;",
        "&bogus;",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<record type=\"callLegEnd\" correlatorIndex=\"7\">",
        "</record>",
        "<callLeg id=\"",
        "<rxAudio>",
        "<packetStatistics>",
        "<density>",
        "NaN",
        "-1",
        "1e309",
        "\u{feff}",
        "\u{0}",
        "<?xml version=\"1.0\"?>",
        "<!DOCTYPE x>",
        " session=\"",
        "<records",
        "</records>",
    ]);
    (
        prop::sample::select(fixtures),
        prop::collection::vec(
            (any::<prop::sample::Index>(), 0..4usize, pieces, any::<u8>()),
            0..12,
        ),
    )
        .prop_map(|(mut body, edits)| {
            for (at, kind, piece, byte) in edits {
                if body.is_empty() {
                    body.extend_from_slice(piece.as_bytes());
                    continue;
                }
                let i = at.index(body.len());
                match kind {
                    0 => body.splice(i..i, piece.bytes()).for_each(drop),
                    1 => body[i] = byte,
                    2 => body.truncate(i),
                    _ => {
                        let end = (i + byte as usize).min(body.len());
                        body.drain(i..end);
                    }
                }
            }
            body
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = cdr::parse(&body);
    }

    #[test]
    fn parse_and_apply_never_panic_and_account_for_every_record(bodies in prop::collection::vec(cdrish(), 1..6)) {
        let app = App::new(&Config::default()).unwrap();
        let mut entries = 0u64;
        let mut applied = 0u64;
        for body in &bodies {
            if let Ok(batch) = cdr::parse(body) {
                let o = app.pipeline.ingest().apply(&batch, &Origin::default(), 1.0e9);
                entries += batch.records.len() as u64;
                applied += o.applied;
                // Every record is applied, a duplicate, or invalid: nothing vanishes.
                prop_assert_eq!(o.applied + o.duplicates + o.invalid, batch.records.len() as u64);
            }
        }
        let text = app.state.exposition.encode_text();
        let s = common::Scrape(text);
        prop_assert_eq!(s.sum("cdr_exporter_records_total", &[]) as u64, applied);
        prop_assert!(applied <= entries);
        for name in ["cms_calls_active", "cms_call_legs_active", "cms_tenant_calls_active", "cms_tenant_call_legs_active", "cms_recordings_active", "cms_streamings_active"] {
            for (labels, v) in s.samples(name) {
                prop_assert!(v >= 0.0, "{}{:?} = {}", name, labels, v);
            }
        }
        // The exposition stays parseable: every sample line has a numeric value.
        for line in s.0.lines().filter(|l| !l.starts_with('#')) {
            let v = line.rsplit(' ').next().unwrap();
            prop_assert!(v.parse::<f64>().is_ok() || v == "+Inf" || v == "NaN", "bad sample line {}", line);
        }
    }
}
