//! The Kamailio/rtpengine MOS report parser against fixtures and hand-made bad input.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cdr_exporter::rtpengine::{
    self, dedupe_key, EndEvent, Ident, InvalidField, InvalidReason, ParseError, Report, Sample,
};
use serde_json::{json, Value};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rtpengine")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn parse_json(v: Value) -> Report {
    rtpengine::parse(v.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

fn invalid(field: &'static str, reason: InvalidReason) -> InvalidField {
    InvalidField { field, reason }
}

/// The sample a key names, found by decomposing the key here (not with the parser's table).
fn sample_for<'r>(r: &'r Report, key: &str) -> Option<&'r Sample> {
    let (body, side) = if let Some(b) = key.strip_suffix("_A") {
        (b, &r.a.mos)
    } else if let Some(b) = key.strip_suffix("_B") {
        (b, &r.b.mos)
    } else {
        (key, &r.overall)
    };
    if body.starts_with("mos_min") {
        side.min.as_ref()
    } else if body.starts_with("mos_max") {
        side.max.as_ref()
    } else {
        assert!(body.starts_with("mos_average"), "{key}");
        side.average.as_ref()
    }
}

#[test]
fn accepts_exactly_the_kamailio_5_6_parameter_names_without_pv() {
    let text = String::from_utf8(fixture("kamailio-5.6-mos-params.txt")).unwrap();
    let upstream: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.strip_suffix("_pv").expect(l).to_owned())
        .collect();
    let ours: BTreeSet<String> = rtpengine::mos_keys().map(str::to_owned).collect();
    assert_eq!(upstream.len(), 56);
    assert_eq!(ours, upstream);
}

#[test]
fn real_kamailio_5_6_report_from_the_harness() {
    // Posted by examples/kamailio/kamailio.cfg (Kamailio 5.6.3, rtpengine 10.5) for a call
    // with 10 % loss, 10 ms jitter and ~40 ms round trip; its call-id has a quote and a
    // backslash (SIPp -cid_str).
    let r = rtpengine::parse(&fixture("kamailio-5.6-bye.json")).unwrap();
    assert_eq!(
        r.call_id,
        Ident::Text("q\"uo\\te-1-4018@127.0.0.1".to_owned())
    );
    assert_eq!(r.from_tag, Some(Ident::Text("4018SIPpTag001".into())));
    assert_eq!(r.to_tag, Some(Ident::Text("4000SIPpTag011".into())));
    assert_eq!(r.node.as_deref(), Some("kamailio-1"));
    assert_eq!(r.tenant, None);
    assert_eq!(r.event, Some(EndEvent::Bye));
    assert!(r.invalid.is_empty(), "{:?}", r.invalid);

    let avg = r.overall.average.unwrap();
    assert_eq!(avg.mos, Some(3.5));
    assert_eq!(avg.packet_loss_percent, Some(8.0));
    assert_eq!(avg.jitter_ms, Some(10.0));
    assert_eq!(avg.roundtrip_us, Some(39924));
    assert_eq!(avg.roundtrip_leg_us, Some(19943));
    assert_eq!(avg.samples, Some(3));
    assert_eq!(avg.at_seconds, None);
    let min = r.overall.min.unwrap();
    assert_eq!((min.mos, min.at_seconds), (Some(3.4), Some(5)));
    assert_eq!(min.samples, None);
    let max = r.overall.max.unwrap();
    assert_eq!((max.mos, max.at_seconds), (Some(3.6), Some(2)));
    assert_eq!(max.roundtrip_us, Some(40062));

    assert_eq!(r.a.label.as_deref(), Some("caller"));
    assert_eq!(r.b.label.as_deref(), Some("callee"));
    assert_eq!(r.a.mos.average.unwrap().mos, Some(3.5));
    assert_eq!(r.b.mos.average.unwrap().samples, Some(4));
    assert_eq!(r.b.mos.min.unwrap().at_seconds, Some(1));
    assert!(r.has_mos());
}

#[test]
fn every_mos_key_fills_exactly_its_own_value() {
    for key in rtpengine::mos_keys().filter(|k| !k.ends_with("_label")) {
        let (value, want): (&str, fn(&Sample) -> bool) = if key.contains("_at") {
            ("1:02", |s| s.at_seconds == Some(62))
        } else if key.contains("_packetloss") {
            ("7", |s| s.packet_loss_percent == Some(7.0))
        } else if key.contains("_jitter") {
            ("7", |s| s.jitter_ms == Some(7.0))
        } else if key.contains("_roundtrip_leg") {
            ("7", |s| s.roundtrip_leg_us == Some(7))
        } else if key.contains("_roundtrip") {
            ("7", |s| s.roundtrip_us == Some(7))
        } else if key.contains("_samples") {
            ("7", |s| s.samples == Some(7))
        } else {
            ("2.5", |s| s.mos == Some(2.5))
        };
        let r = parse_json(json!({ "call_id": "c", key: value }));
        assert!(r.invalid.is_empty(), "{key}: {:?}", r.invalid);
        let s = sample_for(&r, key).unwrap_or_else(|| panic!("{key}: no sample"));
        assert!(want(s), "{key}: {s:?}");
        // Exactly one value set in the whole report.
        let all = [&r.overall, &r.a.mos, &r.b.mos];
        let filled: usize = all
            .iter()
            .flat_map(|m| [m.average, m.min, m.max])
            .flatten()
            .map(|s| {
                [
                    s.mos.is_some(),
                    s.packet_loss_percent.is_some(),
                    s.jitter_ms.is_some(),
                    s.roundtrip_us.is_some(),
                    s.roundtrip_leg_us.is_some(),
                    s.samples.is_some(),
                    s.at_seconds.is_some(),
                ]
                .iter()
                .filter(|b| **b)
                .count()
            })
            .sum();
        assert_eq!(filled, 1, "{key}: {r:?}");
    }
}

#[test]
fn at_and_samples_only_where_kamailio_has_them() {
    // No mos_average_at_pv or mos_min_samples_pv exists: such keys are foreign, ignored.
    let r = parse_json(json!({
        "call_id": "c", "mos_average_at": "1:00", "mos_min_samples": "3", "mos_max_samples_A": "3"
    }));
    assert_eq!(r.overall.average, None);
    assert_eq!(r.overall.min, None);
    assert_eq!(r.a.mos.max, None);
    assert!(r.invalid.is_empty());
}

#[test]
fn strings_and_numbers_mean_the_same() {
    let r = rtpengine::parse(&fixture("numbers.json")).unwrap();
    assert!(r.invalid.is_empty(), "{:?}", r.invalid);
    let as_strings = parse_json(json!({
        "call_id": "3", "node": "n", "mos_average": "4.3", "mos_average_packetloss": "1.5",
        "mos_average_jitter": "3", "mos_average_roundtrip": "45000",
        "mos_average_roundtrip_leg": "21000", "mos_average_samples": "12",
        "mos_min": "3.9", "mos_min_at": "1:05", "mos_max": "4.4", "mos_max_at": "0:07"
    }));
    assert_eq!(r, as_strings);
    assert_eq!(r.overall.min.unwrap().at_seconds, Some(65));
}

#[test]
fn empty_null_and_kamailio_null_are_not_measured() {
    for unset in [json!(""), json!("<null>"), Value::Null, json!("  ")] {
        let r = parse_json(json!({
            "call_id": "c", "to_tag": unset, "node": unset, "tenant": unset,
            "mos_A_label": unset, "mos_average": unset, "mos_min_at": unset,
            "mos_max_roundtrip_B": unset
        }));
        assert!(r.invalid.is_empty(), "{unset}: {:?}", r.invalid);
        assert_eq!(
            (&r.to_tag, &r.node, &r.tenant, &r.a.label),
            (&None, &None, &None, &None)
        );
        assert_eq!(r.overall.average, None, "{unset}");
        assert_eq!(r.overall.min, None);
        assert!(!r.has_mos());
    }
}

#[test]
fn report_without_mos_is_a_valid_report() {
    // Posted by the shipped config in the harness for a call with RTP but no RTCP.
    // rtpengine issues #1698 / #1941: many real calls carry no MOS at all.
    let r = rtpengine::parse(&fixture("no-mos.json")).unwrap();
    assert!(!r.has_mos());
    assert!(r.invalid.is_empty());
    assert_eq!(r.overall, Default::default());
    assert_eq!(r.a.label.as_deref(), Some("caller"));
    assert_eq!(r.call_id.as_str(), Some("cdr\"exp\\1-32371@127.0.0.1"));
    assert_eq!(r.node.as_deref(), Some("e2e-native"));
}

#[test]
fn acc_json_record_with_empty_extras() {
    // acc turns unset extras into "" and adds its own keys (method, callid, sip_code, ...).
    let r = rtpengine::parse(&fixture("acc-json-empty-values.json")).unwrap();
    assert!(r.invalid.is_empty(), "{:?}", r.invalid);
    assert_eq!(r.overall.average.unwrap().mos, Some(4.1));
    assert_eq!(r.overall.average.unwrap().jitter_ms, None);
    assert_eq!(r.overall.min, None);
    assert_eq!(r.a.mos, Default::default());
    assert_eq!(r.tenant.as_deref(), Some("example.com"));
    assert_eq!(r.a.label, None);
}

#[test]
fn bad_values_are_invalid_fields_and_the_rest_is_kept() {
    use InvalidReason::*;
    let cases: &[(&str, Value, InvalidReason)] = &[
        ("mos_average", json!("4,3"), DecimalComma),
        ("mos_average", json!("NaN"), NotFinite),
        ("mos_average", json!("inf"), NotFinite),
        ("mos_average", json!("-infinity"), NotFinite),
        ("mos_average", json!("1e999"), NotFinite),
        ("mos_average", json!("abc"), NotANumber),
        ("mos_average", json!("4.3x"), NotANumber),
        ("mos_average", json!("0.0"), OutOfRange),
        ("mos_average", json!(5.1), OutOfRange),
        ("mos_average", json!("-1.0"), Negative),
        ("mos_average", json!(true), WrongType),
        ("mos_average", json!({"MOS": 43}), WrongType),
        ("mos_average", json!([4.3]), WrongType),
        ("mos_average", json!("4".repeat(100)), TooLong),
        ("mos_average_packetloss", json!("101"), OutOfRange),
        ("mos_average_packetloss", json!(-3), Negative),
        ("mos_average_jitter_A", json!("-1"), Negative),
        ("mos_average_roundtrip", json!("1.5"), NotAnInteger),
        ("mos_average_roundtrip", json!(-10), Negative),
        // Kamailio 5.6 prints ints into an 8-byte buffer: >= 10 s of µs arrives truncated
        // with its NUL (fixed in 5.8). Never a valid number.
        ("mos_max_roundtrip", json!("2000000\u{0}"), NotANumber),
        ("mos_average_samples_B", json!("2.5"), NotAnInteger),
        ("mos_min_at", json!("1:5"), BadDuration),
        ("mos_min_at", json!("65"), BadDuration),
        ("mos_min_at", json!("-1:05"), BadDuration),
        ("mos_max_at_B", json!("0:60"), BadDuration),
        ("mos_max_at", json!(-5), Negative),
        ("mos_max_at", json!(1.5), NotAnInteger),
        ("node", json!("n".repeat(257)), TooLong),
        ("node", json!("edge\n1"), ControlCharacter),
        ("node", json!(7), WrongType),
        ("tenant", json!("t".repeat(300)), TooLong),
        ("mos_A_label", json!("x\u{0}"), ControlCharacter),
        ("mos_B_label", json!(["callee"]), WrongType),
        ("from_tag", json!(12), WrongType),
        ("event", json!("hangup"), UnknownValue),
    ];
    for (key, value, reason) in cases {
        let key: &str = key;
        let r = parse_json(json!({
            "call_id": "c", "node": "edge-1", "mos_max": "4.4", key: value
        }));
        let field = rtpengine::mos_keys()
            .chain(rtpengine::CONTEXT_KEYS.iter().copied())
            .find(|k| *k == key)
            .unwrap();
        assert_eq!(r.invalid, vec![invalid(field, *reason)], "{key} = {value}");
        // The bad value is not kept, the good ones are.
        if key != "mos_max" {
            assert_eq!(r.overall.max.unwrap().mos, Some(4.4), "{key}");
        }
        if key == "node" {
            assert_eq!(r.node, None);
        } else {
            assert_eq!(r.node.as_deref(), Some("edge-1"));
        }
        if key == "mos_average" {
            assert_eq!(r.overall.average, None, "{key} = {value}");
        }
        for reason in r.invalid.iter().map(|f| f.reason.as_label()) {
            assert!(rtpengine::INVALID_REASONS.contains(&reason));
        }
    }
}

#[test]
fn edge_values_that_are_valid() {
    let r = parse_json(json!({
        "call_id": "c", "mos_average": " 4.5 ", "mos_min": "1.0", "mos_max": 5,
        "mos_average_packetloss": "100", "mos_average_jitter": "0",
        "mos_min_at": "125:59", "mos_max_at": "0:00", "mos_average_roundtrip": "0",
        "event": "failure"
    }));
    assert!(r.invalid.is_empty(), "{:?}", r.invalid);
    assert_eq!(r.overall.average.unwrap().mos, Some(4.5));
    assert_eq!(r.overall.min.unwrap().at_seconds, Some(125 * 60 + 59));
    assert_eq!(r.overall.max.unwrap().mos, Some(5.0));
    assert_eq!(r.overall.average.unwrap().roundtrip_us, Some(0));
    assert_eq!(r.event, Some(EndEvent::Failure));
}

#[test]
fn ten_kilobyte_call_id_is_kept_as_a_digest() {
    let long = "x".repeat(10 * 1024);
    let r = parse_json(json!({ "call_id": long, "mos_average": "4.0" }));
    assert_eq!(r.invalid, vec![invalid("call_id", InvalidReason::TooLong)]);
    assert!(matches!(r.call_id, Ident::Digest(_)));
    assert_eq!(r.call_id.as_str(), None);
    assert_eq!(r.overall.average.unwrap().mos, Some(4.0));
    // Two different long call-ids stay two calls; the same one is one.
    let other = parse_json(json!({ "call_id": format!("{long}y") }));
    let again = parse_json(json!({ "call_id": long }));
    assert_ne!(dedupe_key(&r), dedupe_key(&other));
    assert_eq!(dedupe_key(&r), dedupe_key(&again));
    // Exactly at the bound it is still text.
    let edge = parse_json(json!({ "call_id": "y".repeat(rtpengine::MAX_TEXT_LEN) }));
    assert!(edge.invalid.is_empty());
    assert!(matches!(edge.call_id, Ident::Text(_)));
    let long_tag = parse_json(json!({ "call_id": "c", "to_tag": long }));
    assert!(matches!(long_tag.to_tag, Some(Ident::Digest(_))));
    assert_eq!(
        long_tag.invalid,
        vec![invalid("to_tag", InvalidReason::TooLong)]
    );
}

#[test]
fn whole_body_errors() {
    let cases: &[(&[u8], ParseError)] = &[
        (b"", ParseError::Empty),
        (b"  \n", ParseError::Empty),
        (b"[1,2]", ParseError::NotAnObject),
        (b"\"call_id\"", ParseError::NotAnObject),
        (b"null", ParseError::NotAnObject),
        (b"{}", ParseError::MissingCallId),
        (br#"{"call_id":""}"#, ParseError::MissingCallId),
        (br#"{"call_id":"<null>"}"#, ParseError::MissingCallId),
        (
            br#"{"call_id":null,"mos_average":"4.1"}"#,
            ParseError::MissingCallId,
        ),
        (br#"{"call_id":42}"#, ParseError::CallIdNotString),
        (br#"{"call_id":{"a":1}}"#, ParseError::CallIdNotString),
    ];
    for (body, want) in cases {
        let got = rtpengine::parse(body).unwrap_err();
        assert_eq!(&got, want, "{}", String::from_utf8_lossy(body));
        assert!(rtpengine::REASONS.contains(&got.as_label()));
    }
    for body in [
        &b"{"[..],
        b"{\"call_id\":\"c\",}",
        b"call_id=c",
        b"\xff\xfe",
        b"{\"call_id\":\"c\"} trailing",
    ] {
        let got = rtpengine::parse(body).unwrap_err();
        assert!(matches!(got, ParseError::NotJson(_)), "{got:?}");
        assert_eq!(got.as_label(), "not_json");
        assert!(!got.to_string().contains('\n'));
    }
    // Hostile nesting is refused by serde_json's depth limit, not a stack overflow.
    let deep = format!(
        "{{\"call_id\":\"c\",\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(matches!(
        rtpengine::parse(deep.as_bytes()),
        Err(ParseError::NotJson(_))
    ));
}

#[test]
fn dedupe_key_identity() {
    let base = json!({
        "call_id": "c1", "from_tag": "ft", "to_tag": "tt", "node": "n1",
        "mos_A_label": "caller", "mos_B_label": "callee", "mos_average": "4.1"
    });
    let k = dedupe_key(&parse_json(base.clone()));
    let with = |key: &str, v: Value| {
        let mut b = base.clone();
        b[key] = v;
        dedupe_key(&parse_json(b))
    };
    // Values and context that are not identity do not matter.
    assert_eq!(k, with("mos_average", json!("2.0")));
    assert_eq!(k, with("tenant", json!("t")));
    assert_eq!(k, with("event", json!("bye")));
    // A BYE from the other party (tags swapped) is the same dialog.
    let mut swapped = base.clone();
    swapped["from_tag"] = json!("tt");
    swapped["to_tag"] = json!("ft");
    assert_eq!(k, dedupe_key(&parse_json(swapped)));
    // Every identity part counts.
    for (key, v) in [
        ("call_id", json!("c2")),
        ("from_tag", json!("ft2")),
        ("to_tag", Value::Null),
        ("node", json!("n2")),
        ("node", Value::Null),
        ("mos_A_label", json!("other")),
        ("mos_B_label", Value::Null),
    ] {
        assert_ne!(k, with(key, v.clone()), "{key} = {v}");
    }
    // Length-prefixed: moving a character between parts changes the key.
    let a = parse_json(json!({"call_id": "ab", "node": "c"}));
    let b = parse_json(json!({"call_id": "b", "node": "ac"}));
    assert_ne!(dedupe_key(&a), dedupe_key(&b));
    let a = parse_json(json!({"call_id": "c", "from_tag": "x", "to_tag": "yz"}));
    let b = parse_json(json!({"call_id": "c", "from_tag": "xy", "to_tag": "z"}));
    assert_ne!(dedupe_key(&a), dedupe_key(&b));
    // The key is 16 bytes whatever the input size.
    assert_eq!(std::mem::size_of_val(&k), 16);
}

#[test]
fn unknown_keys_are_ignored() {
    let r = parse_json(json!({
        "call_id": "c", "mos_average": "4.0", "future_key": {"x": [1]}, "MOS_AVERAGE": "bad",
        "mos_average_C": "1.0"
    }));
    assert!(r.invalid.is_empty());
    assert_eq!(r.overall.average.unwrap().mos, Some(4.0));
}

#[test]
fn real_acc_json_record_without_mos() {
    // Queued by acc_json (kamailio.cfg -A WITH_ACC_JSON) in the harness for a call without
    // RTCP: every MOS extra is "", tenant too, and acc adds callid, method, sip_code, time.
    let r = rtpengine::parse(&fixture("acc-json-no-mos.json")).unwrap();
    assert!(r.invalid.is_empty(), "{:?}", r.invalid);
    assert!(!r.has_mos());
    assert_eq!(r.overall, Default::default());
    assert_eq!(r.tenant, None);
    assert_eq!(r.node.as_deref(), Some("e2e-acc-json"));
    assert_eq!(r.call_id.as_str(), Some("cdr\"exp\\1-10594@127.0.0.1"));
    assert_eq!(r.event, Some(EndEvent::Bye));
    assert_eq!(r.b.label.as_deref(), Some("callee"));
}
