//! The metric catalogue keeps its promises: every family declared once and documented, the
//! vocabulary agrees with the wire formats, no family multiplies Call Bridges by tenants, the
//! exposition is what prometheus-client itself would write, and the series budget holds.

mod common;

#[path = "../benches/common/reference.rs"]
mod reference;

use std::collections::{BTreeMap, BTreeSet};

use cdr_exporter::cdr;
use cdr_exporter::config::Config;
use cdr_exporter::ingest::Origin;
use cdr_exporter::metrics::vocab::known;
use cdr_exporter::metrics::{catalogue, Desc, Format, Type};
use cdr_exporter::App;
use common::records::*;

fn all() -> Vec<&'static Desc> {
    catalogue::STORED
        .iter()
        .chain(catalogue::SCRAPED.iter().copied())
        .collect()
}

#[test]
fn the_vocabulary_agrees_with_the_wire_format() {
    assert_eq!(known::CALL_TYPES, cdr::CallType::KNOWN);
    assert_eq!(known::LEG_TYPES, cdr::LegType::KNOWN);
    assert_eq!(known::LEG_DIRECTIONS, cdr::Direction::KNOWN);
    assert_eq!(known::LEG_SUB_TYPES, cdr::LegSubType::KNOWN);
    assert_eq!(known::END_REASONS, cdr::EndReason::KNOWN);
    assert_eq!(known::RECORD_TYPES, cdr::RecordType::KNOWN);
    assert_eq!(known::AUDIO_CODECS, cdr::AudioCodec::KNOWN);
    assert_eq!(known::VIDEO_CODECS, cdr::VideoCodec::KNOWN);
    assert_eq!(known::ALARMS, cdr::AlarmType::KNOWN);
    let invalid: Vec<&str> = cdr::InvalidReason::ALL
        .iter()
        .map(|r| r.as_label())
        .collect();
    assert_eq!(known::INVALID_RECORD, invalid.as_slice());
    let kinds: Vec<&str> = cdr_exporter::tracker::Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(known::OBJECT_KINDS, kinds.as_slice());
    let evict: Vec<&str> = cdr_exporter::tracker::EvictReason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();
    assert_eq!(known::EVICT_REASONS, evict.as_slice());
    assert_eq!(
        known::FREESWITCH_INVALID,
        cdr_exporter::freeswitch::INVALID_REASONS
    );
    assert_eq!(
        known::RTPENGINE_INVALID,
        cdr_exporter::rtpengine::INVALID_REASONS
    );
    use cdr_exporter::rtpengine::EndEvent;
    let events: Vec<_> = [EndEvent::Bye, EndEvent::Cancel, EndEvent::Failure]
        .iter()
        .map(|e| e.as_label())
        .collect();
    assert_eq!(known::RTPENGINE_EVENTS, events.as_slice());
    use cdr_exporter::freeswitch::LegSide;
    assert_eq!(
        known::LEG_SIDES,
        [LegSide::A.as_label(), LegSide::B.as_label()]
    );
    let sources: Vec<_> = [
        cdr_exporter::pipeline::Format::Cms,
        cdr_exporter::pipeline::Format::FreeSwitch,
        cdr_exporter::pipeline::Format::Kamailio,
    ]
    .iter()
    .map(|f| f.source())
    .collect();
    assert_eq!(known::SOURCES, sources.as_slice());
}

/// Each source's family prefixes and the label that leads them (most specific first).
const PREFIXES: &[(&str, &str)] = &[
    ("cms_tenant_", "tenant"),
    ("cms_", "call_bridge"),
    ("freeswitch_cdr_domain_", "domain"),
    ("freeswitch_cdr_", "switch"),
    ("kamailio_rtpengine_tenant_", "tenant"),
    ("kamailio_rtpengine_", "node"),
];

#[test]
fn no_family_multiplies_senders_by_tenants() {
    let senders = ["call_bridge", "switch", "node"];
    let tenants = ["tenant", "domain"];
    for d in all() {
        let s = d.labels.iter().filter(|l| senders.contains(l)).count();
        let t = d.labels.iter().filter(|l| tenants.contains(l)).count();
        assert!(s + t <= 1, "{} carries {:?}", d.name, d.labels);
        if let Some((_, first)) = PREFIXES.iter().find(|(p, _)| d.name.starts_with(p)) {
            assert_eq!(d.labels.first(), Some(first), "{}", d.name);
        }
    }
}

#[test]
fn names_follow_the_prometheus_conventions() {
    let mut seen = BTreeSet::new();
    for d in all() {
        assert!(seen.insert(d.name), "{} declared twice", d.name);
        assert!(
            PREFIXES.iter().any(|(p, _)| d.name.starts_with(p))
                || d.name.starts_with("cdr_exporter_")
                || d.name.starts_with("process_"),
            "{}",
            d.name
        );
        assert_eq!(
            d.kind == Type::Counter,
            d.name.ends_with("_total"),
            "{}",
            d.name
        );
        if let Some(u) = d.unit {
            let base = d.name.strip_suffix("_total").unwrap_or(d.name);
            assert!(base.ends_with(&format!("_{u}")), "{} has unit {u}", d.name);
        }
        assert_eq!(
            d.kind == Type::Histogram,
            !d.buckets.is_empty(),
            "{}",
            d.name
        );
        assert!(d.buckets.windows(2).all(|w| w[0] < w[1]), "{}", d.name);
        assert!(!d.help.ends_with('.') && !d.help.is_empty(), "{}", d.name);
        for l in d.labels {
            assert!(*l != "le" && !l.starts_with("__"), "{} label {l}", d.name);
        }
    }
}

/// An exporter after every fixture and a simulated call mix, for the exposition checks.
fn populated() -> App {
    let app = App::new(&Config::default()).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    files.sort();
    let src = Origin {
        query_sender: Some("fixture"),
        peer: None,
    };
    for f in &files {
        let body = std::fs::read(f).unwrap();
        if let Ok(b) = cdr::parse(&body) {
            app.pipeline.ingest().apply(&b, &src, 1.7e9);
        }
    }
    app
}

/// Samples of an OpenMetrics or 0.0.4 text: (name, sorted labels) → value.
fn samples(text: &str) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let mut ls: Vec<(String, String)> = Vec::new();
        let mut rest = labels;
        while let Some((k, v)) = rest.split_once("=\"") {
            let mut end = 0;
            let b = v.as_bytes();
            while b[end] != b'"' || (end > 0 && b[end - 1] == b'\\') {
                end += 1;
            }
            let mut val = v[..end].to_owned();
            // prometheus-client writes `le` as given; we write the shortest float.
            if k.trim_start_matches(',') == "le" && val != "+Inf" {
                val = val.parse::<f64>().unwrap().to_string();
            }
            ls.push((k.trim_start_matches(',').to_owned(), val));
            rest = &v[end + 1..];
        }
        ls.sort();
        let v = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        out.insert((name.to_owned(), ls), v);
    }
    out
}

#[test]
fn openmetrics_output_equals_prometheus_clients_own_encoding() {
    let app = populated();
    let metrics = app.pipeline.ingest().metrics.clone();
    let ours = String::from_utf8(app.state.exposition.encode(Format::OpenMetrics)).unwrap();
    let theirs = reference::encode(&reference::registry(metrics));
    assert!(ours.ends_with("# EOF\n") && theirs.ends_with("# EOF\n"));
    let (ours, theirs) = (samples(&ours), samples(&theirs));
    // Ours also holds the scrape-time families; every stored sample must be the same.
    let missing: Vec<_> = theirs.keys().filter(|k| !ours.contains_key(*k)).collect();
    assert!(missing.is_empty(), "not written by us: {missing:?}");
    for (k, v) in &theirs {
        assert_eq!(ours[k], *v, "{k:?}");
    }
    assert!(theirs.len() > 300, "{} samples", theirs.len());
    // The family headers: same TYPE and UNIT lines.
    let heads = |t: &str| -> BTreeSet<String> {
        t.lines()
            .filter(|l| l.starts_with("# TYPE") || l.starts_with("# UNIT"))
            .map(str::to_owned)
            .collect()
    };
    let ours_text = String::from_utf8(app.state.exposition.encode(Format::OpenMetrics)).unwrap();
    let theirs_text =
        reference::encode(&reference::registry(app.pipeline.ingest().metrics.clone()));
    let (a, b) = (heads(&ours_text), heads(&theirs_text));
    let diff: Vec<_> = b.difference(&a).collect();
    assert!(
        diff.is_empty(),
        "headers prometheus-client writes and we do not: {diff:?}"
    );
}

#[test]
fn text_and_openmetrics_hold_the_same_samples() {
    let app = populated();
    let om = String::from_utf8(app.state.exposition.encode(Format::OpenMetrics)).unwrap();
    let text = app.state.exposition.encode_text();
    // The process changes between two encodes; everything else must not.
    let steady = |t: &str| {
        let mut m = samples(t);
        m.retain(|(name, _), _| !name.starts_with("process_"));
        m
    };
    assert_eq!(steady(&om), steady(&text));
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    let gz = app.state.exposition.encode_gzip(Format::Text004);
    let mut plain = String::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(steady(&plain), steady(&text));
}

/// 100,000 tenants, each with a call: with the defaults the tenant cap folds all but 2,000
/// into `other`; with the cap lifted, the series budget folds the rest; either way the
/// series stay bounded, and what was folded is counted.
#[test]
fn the_series_budget_holds_whatever_arrives() {
    for (max_tenants, max_series) in [(2_000, 150_000), (1_000_000, 20_000)] {
        let mut cfg = Config::default();
        cfg.labels.max_tenants = max_tenants;
        cfg.labels.max_series = max_series;
        let app = App::new(&cfg).unwrap();
        let src = Origin::default();
        let s = "5eed0000-0000-4000-8000-000000000001";
        for chunk in 0..100u64 {
            let recs: Vec<_> = (0..1_000u64)
                .map(|k| {
                    let i = chunk * 1_000 + k;
                    (
                        "callStart",
                        i,
                        call_start(&guid(0xca11, i), Some(&guid(0x7e, i))),
                    )
                })
                .collect();
            let body = batch(s, Some("cb"), &recs);
            let b = cdr::parse(&body).unwrap();
            app.pipeline.ingest().apply(&b, &src, 1.7e9);
        }
        let m = &app.pipeline.ingest().metrics;
        let stored: usize = m.stored().iter().map(|f| f.series_count()).sum();
        assert!(
            stored <= max_series + m.stored().len(),
            "{stored} series with a budget of {max_series}"
        );
        let text = app.state.exposition.encode_text();
        let scrape = common::Scrape(text);
        let calls: f64 = scrape.sum("cms_tenant_calls_active", &[]);
        assert_eq!(calls, 100_000.0, "nothing is lost, only folded");
        if max_series == 20_000 {
            assert!(
                scrape.sum("cdr_exporter_series_budget_exceeded_total", &[]) > 0.0,
                "the budget was reached and counted"
            );
            assert!(scrape.sum("cms_tenant_calls_active", &[("tenant", "other")]) > 0.0);
        } else {
            assert_eq!(
                scrape.sum("cdr_exporter_series_budget_exceeded_total", &[]),
                0.0
            );
            let folded = scrape.sum(
                "cdr_exporter_label_overflow_total",
                &[("label", "tenant"), ("cause", "max_values")],
            );
            assert!(folded >= 98_000.0, "{folded}");
        }
    }
}

#[test]
fn dropped_labels_and_tenant_detail_shape_the_families() {
    let mut cfg = Config::default();
    cfg.labels.drop.insert(
        "cms_call_legs_ended_total".into(),
        vec!["remote_teardown".into()],
    );
    cfg.labels.tenant_detail = cdr_exporter::config::TenantDetail::Full;
    let app = App::new(&cfg).unwrap();
    let body = batch(
        "5eed0000-0000-4000-8000-000000000002",
        Some("cb"),
        &[
            ("callStart", 0, call_start(&guid(0xca11, 1), Some("acme"))),
            (
                "callLegStart",
                1,
                leg_start(&guid(0x1e9, 1), Some(&guid(0xca11, 1))),
            ),
            ("callLegEnd", 2, leg_end(&guid(0x1e9, 1), "timeout")),
        ],
    );
    app.pipeline
        .ingest()
        .apply(&cdr::parse(&body).unwrap(), &Origin::default(), 1.7e9);
    let s = common::Scrape(app.state.exposition.encode_text());
    assert_eq!(
        s.get(
            "cms_call_legs_ended_total",
            &[("call_bridge", "cb"), ("reason", "timeout")]
        ),
        Some(1.0),
        "remote_teardown dropped"
    );
    assert_eq!(
        s.get(
            "cms_tenant_call_legs_ended_total",
            &[("tenant", "acme"), ("reason", "timeout")]
        ),
        Some(1.0),
        "full detail keeps the reason by tenant"
    );
    assert_eq!(
        s.get(
            "cms_tenant_call_leg_duration_seconds_count",
            &[("tenant", "acme")]
        ),
        Some(1.0)
    );
    // The compact default has none of it.
    let compact = App::new(&Config::default()).unwrap();
    compact
        .pipeline
        .ingest()
        .apply(&cdr::parse(&body).unwrap(), &Origin::default(), 1.7e9);
    let text = compact.state.exposition.encode_text();
    assert!(!text.contains("cms_tenant_call_leg_duration_seconds"));
    let s = common::Scrape(text);
    assert_eq!(
        s.get("cms_tenant_call_legs_ended_total", &[("tenant", "acme")]),
        Some(1.0)
    );
    // Unknown families and labels are configuration errors naming them.
    for (family, label) in [
        ("cms_nope_total", "x"),
        ("cms_call_legs_ended_total", "tenant"),
    ] {
        let mut cfg = Config::default();
        cfg.labels.drop.insert(family.into(), vec![label.into()]);
        let e = App::new(&cfg).err().expect("refused").to_string();
        assert!(e.contains("labels.drop") && e.contains(family), "{e}");
    }
}

/// The README's metric tables: (name, type, labels) of every row between "## Metrics" and
/// the next top-level section.
fn readme_rows() -> BTreeSet<(String, String, Vec<String>)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("\n## Metrics\n").expect("a Metrics section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map(|e| e + 3).unwrap_or(rest.len());
    rest[..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let labels = cells[3]
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect();
            (
                cells[1].trim_matches('`').to_owned(),
                cells[2].to_owned(),
                labels,
            )
        })
        .collect()
}

#[test]
fn the_readme_lists_every_family_with_its_type_and_labels() {
    let documented = readme_rows();
    let declared: BTreeSet<(String, String, Vec<String>)> = all()
        .into_iter()
        .map(|d| {
            let kind = match d.kind {
                Type::Counter => "counter",
                Type::Gauge => "gauge",
                Type::Histogram => "histogram",
                Type::Info => "info",
            };
            let labels = d.labels.iter().map(|l| l.to_string()).collect();
            (d.name.to_owned(), kind.to_owned(), labels)
        })
        .collect();
    let missing: Vec<_> = declared.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README \"Metrics\" and the catalogue differ:\n  not in the README: {missing:?}\n  not in the catalogue: {stale:?}"
    );
}

/// Series of the families whose name starts with `prefix`, after applying every CDR or
/// report of `senders` x `tenants` (each sender sees each tenant: the worst case).
fn voip_series(prefix: &str, senders: usize, tenants: usize) -> usize {
    let app = App::new(&Config::default()).unwrap();
    let ingest = app.pipeline.ingest();
    let src = Origin::default();
    let fs_doc = std::fs::read_to_string("tests/fixtures/freeswitch/a-leg-good.xml").unwrap();
    let rtp = std::fs::read_to_string("tests/fixtures/rtpengine/kamailio-5.6-bye.json").unwrap();
    // Causes and codecs vary by call, as on a real switch.
    let causes = [
        ("NORMAL_CLEARING", "16"),
        ("USER_BUSY", "17"),
        ("NO_ANSWER", "19"),
        ("ORIGINATOR_CANCEL", "487"),
    ];
    let codecs = ["PCMU", "PCMA", "G722", "opus"];
    let mut n = 0u64;
    for s in 0..senders {
        for t in 0..tenants {
            for k in 0..4 {
                n += 1;
                if prefix.starts_with("freeswitch") {
                    let (cause, q850) = causes[k];
                    let d = fs_doc
                        .replace("fs-edge-01", &format!("fs-{s}"))
                        .replace("pbx.example.com", &format!("d{t}.example.com"))
                        .replace("a8d3e6f2-4c1b-4f5e-9b7a-1e2d3c4b5a60", &guid(0xf5, n))
                        .replace("NORMAL_CLEARING", cause)
                        .replace(
                            "<hangup_cause_q850>16<",
                            &format!("<hangup_cause_q850>{q850}<"),
                        )
                        .replace("PCMU", codecs[k]);
                    let cdr = cdr_exporter::freeswitch::parse(Some("text/xml"), d.as_bytes())
                        .expect("fixture parses");
                    ingest.apply_freeswitch(&cdr, &src, 1.7e9);
                } else {
                    let r = rtp
                        .replace("kamailio-1", &format!("kam-{s}"))
                        .replace("\"event\"", &format!("\"tenant\": \"t{t}\", \"event\""))
                        .replace("4018SIPpTag001", &format!("tag-{n}"));
                    let rep = cdr_exporter::rtpengine::parse(r.as_bytes()).expect("fixture parses");
                    ingest.apply_rtpengine(&rep, &src, 1.7e9);
                }
            }
        }
    }
    let text = app.state.exposition.encode_text();
    text.lines().filter(|l| l.starts_with(prefix)).count()
}

/// FreeSWITCH and Kamailio/rtpengine series grow with senders plus tenants (domains), never
/// their product: doubling either adds a fixed number of series per sender or per tenant, and
/// doubling both adds the sum. Prints the per-sender and per-tenant costs the README's
/// "Cardinality" section quotes.
#[test]
fn voip_series_grow_with_senders_plus_tenants() {
    for prefix in ["freeswitch_cdr_", "kamailio_rtpengine_"] {
        let base = voip_series(prefix, 2, 4);
        let per_sender = (voip_series(prefix, 4, 4) - base) / 2;
        let per_tenant = (voip_series(prefix, 2, 8) - base) / 4;
        let both = voip_series(prefix, 4, 8);
        eprintln!("{prefix}: {per_sender} series per sender, {per_tenant} per tenant");
        assert!(
            per_sender > 0 && per_tenant > 0,
            "{prefix}: the measure measures"
        );
        assert_eq!(
            both,
            base + 2 * per_sender + 4 * per_tenant,
            "{prefix}: doubling senders and tenants together adds no product term"
        );
    }
}
