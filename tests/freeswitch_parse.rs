//! The FreeSWITCH wire module against `tests/fixtures/freeswitch/` (see its README for what
//! each file is and which upstream code it follows), every transport encoding, the bad
//! input list, and property tests (no panics; encode → parse round-trips).

use cdr_exporter::freeswitch::{
    self as fs, CallStats, Cdr, Direction, Encoding, ErrLogName, ErrorPeriod, Format, InboundStats,
    InvalidField, InvalidReason, LegSide, MediaStats, OutboundStats, ParseError, INVALID_REASONS,
    MAX_DEPTH, MAX_ERROR_PERIODS, REASONS,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const CORE: &str = "5f1c3b0e-8a52-4d9b-9c61-2f3e7a1d0b44";
const A_UUID: &str = "a8d3e6f2-4c1b-4f5e-9b7a-1e2d3c4b5a60";
const B_UUID: &str = "b71c2d3e-5f60-4a1b-8c9d-0e1f2a3b4c5d";
const BAD_UUID: &str = "c0ffee00-1234-4abc-8def-0123456789ab";
const J_A_UUID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const J_B_UUID: &str = "1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7081";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/freeswitch/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn fixture_str(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("fixtures are UTF-8")
}

fn parse_ok(content_type: Option<&str>, body: &[u8]) -> Cdr {
    match fs::parse(content_type, body) {
        Ok(c) => c,
        Err(e) => panic!("expected a CDR, got {e:?} ({e})"),
    }
}

/// Parses a body sent without Content-Type: the body alone decides its shape, and the missing
/// header is reported as an invalid `content_type` field, which is checked and taken out so
/// the rest compares with what the declared encodings give.
fn sniffed(body: &[u8]) -> Cdr {
    let mut c = parse_ok(None, body);
    let missing = inv("content_type", InvalidReason::MissingContentType);
    let at = c.invalid.iter().position(|f| *f == missing);
    assert!(
        at.is_some(),
        "a missing Content-Type is reported: {:?}",
        c.invalid
    );
    c.invalid.remove(at.unwrap());
    c
}

fn parse_err(content_type: Option<&str>, body: &[u8]) -> ParseError {
    match fs::parse(content_type, body) {
        Ok(c) => panic!("expected an error, got a CDR for {}", c.uuid),
        Err(e) => e,
    }
}

fn xml(body: &str) -> Cdr {
    parse_ok(Some("text/xml"), body.as_bytes())
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn inv(field: &'static str, reason: InvalidReason) -> InvalidField {
    InvalidField { field, reason }
}

fn audio_in(c: &Cdr) -> &InboundStats {
    &c.call_stats
        .as_ref()
        .expect("call stats")
        .audio
        .as_ref()
        .expect("audio")
        .inbound
}

/// A small valid XML CDR whose audio inbound `mos` and one variable can be swapped.
fn small_xml(mos: &str, extra_var: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<cdr core-uuid="{CORE}" switchname="fs-edge-01">
  <call-stats>
    <audio>
      <inbound>
        <media_packet_count>100</media_packet_count>
        <quality_percentage>90.00</quality_percentage>
        <mos>{mos}</mos>
      </inbound>
      <outbound>
        <packet_count>100</packet_count>
      </outbound>
    </audio>
  </call-stats>
  <variables>
    <uuid>{A_UUID}</uuid>
    {extra_var}
    <hangup_cause>NORMAL_CLEARING</hangup_cause>
  </variables>
</cdr>
"#
    )
}

/// A small valid JSON CDR whose audio inbound `mos` (a JSON value) can be swapped.
fn small_json(mos: &str) -> String {
    format!(
        r#"{{"core-uuid":"{CORE}","callStats":{{"audio":{{"inbound":{{"media_packet_count":100,"mos":{mos}}},"outbound":{{}}}}}},"variables":{{"uuid":"{A_UUID}","hangup_cause":"NORMAL_CLEARING"}}}}"#
    )
}

// ---------------------------------------------------------------------------------------------
// Expected values of the fixtures
// ---------------------------------------------------------------------------------------------

fn good_a_leg() -> Cdr {
    Cdr {
        format: Format::Xml,
        uuid: A_UUID.into(),
        core_uuid: s(CORE),
        switchname: s("fs-edge-01"),
        leg: LegSide::A,
        direction: Some(Direction::Inbound),
        call_uuid: s(A_UUID),
        bridge_uuid: s(B_UUID),
        signal_bond: s(B_UUID),
        originator: None,
        sip_call_id: s("3f9a1c2e-77b1-4d0e-9a55-6c2b1e0f4d11@192.0.2.10"),
        domain_name: s("pbx.example.com"),
        accountcode: s("1001"),
        hangup_cause: s("NORMAL_CLEARING"),
        hangup_cause_q850: Some(16),
        read_codec: s("PCMU"),
        write_codec: s("PCMU"),
        duration: Some(184),
        billsec: Some(180),
        start_epoch: Some(1710407100),
        answer_epoch: Some(1710407104),
        end_epoch: Some(1710407284),
        call_stats: Some(CallStats {
            audio: Some(MediaStats {
                inbound: InboundStats {
                    raw_bytes: Some(1548000),
                    media_bytes: Some(1440000),
                    packet_count: Some(9000),
                    media_packet_count: Some(8990),
                    skip_packet_count: Some(12),
                    jitter_packet_count: Some(0),
                    dtmf_packet_count: Some(10),
                    cng_packet_count: Some(0),
                    flush_packet_count: Some(0),
                    largest_jb_size: Some(0),
                    jitter_min_variance: Some(0.02),
                    jitter_max_variance: Some(4.87),
                    jitter_loss_rate: Some(0.04),
                    jitter_burst_rate: Some(0.0),
                    mean_interval: Some(20.01),
                    flaw_total: Some(400),
                    quality_percentage: Some(95.0),
                    mos: Some(4.44),
                },
                outbound: OutboundStats {
                    raw_bytes: Some(1547312),
                    media_bytes: Some(1439360),
                    packet_count: Some(8996),
                    media_packet_count: Some(8996),
                    skip_packet_count: Some(0),
                    dtmf_packet_count: Some(0),
                    cng_packet_count: Some(0),
                    rtcp_packet_count: Some(36),
                    rtcp_octet_count: Some(2880),
                },
                error_log: vec![],
            }),
            video: Some(MediaStats {
                inbound: InboundStats {
                    raw_bytes: Some(2462400),
                    media_bytes: Some(2433600),
                    packet_count: Some(2400),
                    media_packet_count: Some(2400),
                    skip_packet_count: Some(0),
                    jitter_packet_count: Some(0),
                    dtmf_packet_count: Some(0),
                    cng_packet_count: Some(0),
                    flush_packet_count: Some(0),
                    largest_jb_size: Some(0),
                    jitter_min_variance: Some(1.25),
                    jitter_max_variance: Some(38.4),
                    jitter_loss_rate: Some(0.0),
                    jitter_burst_rate: Some(0.0),
                    mean_interval: Some(33.34),
                    flaw_total: Some(0),
                    quality_percentage: Some(100.0),
                    mos: Some(4.5),
                },
                outbound: OutboundStats {
                    raw_bytes: Some(2501120),
                    media_bytes: Some(2471400),
                    packet_count: Some(2477),
                    media_packet_count: Some(2477),
                    skip_packet_count: Some(0),
                    dtmf_packet_count: Some(0),
                    cng_packet_count: Some(0),
                    rtcp_packet_count: Some(18),
                    rtcp_octet_count: Some(1512),
                },
                error_log: vec![],
            }),
        }),
        values_url_encoded: true,
        invalid: vec![],
    }
}

fn json_a_leg() -> Cdr {
    Cdr {
        format: Format::Json,
        uuid: J_A_UUID.into(),
        core_uuid: s(CORE),
        switchname: s("fs-edge-02"),
        leg: LegSide::A,
        direction: Some(Direction::Inbound),
        call_uuid: s(J_A_UUID),
        bridge_uuid: None,
        signal_bond: None,
        originator: None,
        sip_call_id: s("5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9@192.0.2.40"),
        domain_name: s("pbx2.example.com"),
        accountcode: s("sales team+1"),
        hangup_cause: s("NORMAL_CLEARING"),
        hangup_cause_q850: Some(16),
        read_codec: s("opus"),
        write_codec: s("opus"),
        duration: Some(203),
        billsec: Some(200),
        start_epoch: Some(1710414000),
        answer_epoch: Some(1710414003),
        end_epoch: Some(1710414203),
        call_stats: Some(CallStats {
            audio: Some(MediaStats {
                inbound: InboundStats {
                    raw_bytes: Some(1720000),
                    media_bytes: Some(1600000),
                    packet_count: Some(10000),
                    media_packet_count: Some(10000),
                    skip_packet_count: Some(4),
                    jitter_packet_count: Some(0),
                    dtmf_packet_count: Some(0),
                    cng_packet_count: Some(0),
                    flush_packet_count: Some(0),
                    largest_jb_size: Some(0),
                    jitter_min_variance: Some(0.0213),
                    jitter_max_variance: Some(9.87122),
                    jitter_loss_rate: Some(0.025),
                    jitter_burst_rate: Some(0.0031),
                    mean_interval: Some(20.004117),
                    flaw_total: Some(250),
                    quality_percentage: Some(97.0),
                    // cJSON's "%1.17g" of do_mos(97), not a rounded 4.47.
                    mos: Some("4.4703690000000007".parse().unwrap()),
                },
                outbound: OutboundStats {
                    raw_bytes: Some(1719828),
                    media_bytes: Some(1599840),
                    packet_count: Some(9999),
                    media_packet_count: Some(9999),
                    skip_packet_count: Some(0),
                    dtmf_packet_count: Some(0),
                    cng_packet_count: Some(0),
                    rtcp_packet_count: Some(40),
                    rtcp_octet_count: Some(3200),
                },
                error_log: vec![ErrorPeriod {
                    // cJSON printed it as 1.710410021104e+15.
                    start: Some(1710410021104000),
                    stop: Some(1710413000500123),
                    flaws: Some(250),
                    consecutive_flaws: Some(3),
                    duration_ms: Some(2979396),
                }],
            }),
            video: None,
        }),
        values_url_encoded: true,
        invalid: vec![],
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures, field by field
// ---------------------------------------------------------------------------------------------

#[test]
fn a_leg_good_xml_every_field() {
    let c = parse_ok(Some("text/xml"), &fixture("a-leg-good.xml"));
    assert_eq!(c, good_a_leg());
    let a = audio_in(&c);
    assert!(a.has_media());
    assert_eq!(a.usable_mos(), Some(4.44));
}

#[test]
fn a_leg_good_every_transport_gives_the_same_cdr() {
    let cases: [(&str, Encoding); 4] = [
        ("a-leg-good.urlencoded.body", Encoding::UrlEncoded),
        ("a-leg-good.base64.body", Encoding::Base64),
        ("a-leg-good.plain.body", Encoding::Plain),
        ("a-leg-good.xml", Encoding::TextXml),
    ];
    for (file, enc) in cases {
        let body = fixture(file);
        let p = fs::decode(Some(enc.content_type()), &body).unwrap();
        assert_eq!(p.encoding, enc, "{file}");
        assert_eq!(p.declared, Some(enc), "{file}");
        assert!(!p.content_type_mismatch(), "{file}");
        assert_eq!(p.format, Format::Xml);
        assert_eq!(p.text, fixture_str("a-leg-good.xml"), "{file}");
        assert_eq!(
            parse_ok(Some(enc.content_type()), &body),
            good_a_leg(),
            "{file}"
        );
        // The body alone decides when the header is missing or wrong.
        assert_eq!(sniffed(&body), good_a_leg(), "{file} without Content-Type");
        let wrong = fs::decode(Some("application/json"), &body).unwrap();
        assert_eq!(wrong.encoding, enc, "{file}");
        assert!(wrong.content_type_mismatch());
    }
}

#[test]
fn encoder_matches_the_hand_made_bodies() {
    let xml = fixture_str("a-leg-good.xml");
    for (file, enc) in [
        ("a-leg-good.urlencoded.body", Encoding::UrlEncoded),
        ("a-leg-good.base64.body", Encoding::Base64),
        ("a-leg-good.plain.body", Encoding::Plain),
    ] {
        let (ct, body) = fs::encode(&xml, enc);
        assert_eq!(ct, enc.content_type());
        assert_eq!(body, fixture(file), "{file}");
    }
    assert_eq!(
        fs::encode(&xml, Encoding::TextXml),
        ("text/xml", xml.clone().into_bytes())
    );
    let json = fixture_str("json-encoded-values.json");
    for (file, enc) in [
        ("json-encoded-values.urlencoded.body", Encoding::UrlEncoded),
        ("json-encoded-values.base64.body", Encoding::Base64),
    ] {
        assert_eq!(fs::encode(&json, enc).1, fixture(file), "{file}");
    }
    assert_eq!(
        fs::encode(&json, Encoding::Json),
        ("application/json", json.clone().into_bytes())
    );
    // mod_xml_cdr escapes every '%', mod_json_cdr leaves "%40" alone.
    assert!(fixture_str("a-leg-good.urlencoded.body").contains("1001%2540pbx"));
    assert!(fixture_str("json-encoded-values.urlencoded.body").contains("2001%40pbx2"));
}

#[test]
fn bad_call_values_error_log_and_first_callflow() {
    let c = sniffed(&fixture("bad-call.xml"));
    assert_eq!(c.uuid, BAD_UUID);
    assert_eq!(c.leg, LegSide::A);
    assert_eq!(c.direction, Some(Direction::Inbound));
    assert_eq!(c.sip_call_id.as_deref(), Some("b2c1a0f9e8d7@198.51.100.7"));
    assert_eq!(c.domain_name.as_deref(), Some("trunk.example.net"));
    assert_eq!(c.accountcode.as_deref(), Some("carrier-b"));
    assert_eq!(c.read_codec.as_deref(), Some("G729"));
    assert_eq!((c.duration, c.billsec), (Some(152), Some(150)));
    assert_eq!(c.invalid, vec![]);
    let stats = c.call_stats.as_ref().unwrap();
    assert!(stats.video.is_none());
    let audio = stats.audio.as_ref().unwrap();
    let a = &audio.inbound;
    assert_eq!(a.mos, Some(2.52));
    assert_eq!(a.quality_percentage, Some(49.0));
    assert_eq!(a.flaw_total, Some(3795));
    assert_eq!(a.jitter_max_variance, Some(1144.21));
    assert_eq!(a.jitter_min_variance, Some(3.96));
    assert_eq!(a.jitter_loss_rate, Some(0.87));
    assert_eq!(a.jitter_burst_rate, Some(0.31));
    assert_eq!(a.mean_interval, Some(23.58));
    assert_eq!(a.skip_packet_count, Some(1318));
    assert_eq!(a.flush_packet_count, Some(3));
    assert_eq!(a.usable_mos(), Some(2.52));
    assert_eq!(audio.outbound.rtcp_packet_count, Some(35));
    assert_eq!(
        audio.error_log,
        vec![
            ErrorPeriod {
                start: Some(1710410021104000),
                stop: Some(1710410024664000),
                flaws: Some(1204),
                consecutive_flaws: Some(41),
                duration_ms: Some(3560),
            },
            ErrorPeriod {
                start: Some(1710410090020000),
                stop: Some(1710410101380000),
                flaws: Some(2591),
                consecutive_flaws: Some(118),
                duration_ms: Some(11360),
            },
        ]
    );
}

#[test]
fn zero_media_leg_has_no_usable_mos() {
    let c = sniffed(&fixture("zero-media.xml"));
    assert_eq!(c.uuid, "d15ea5e0-7777-4e3d-a1b2-c3d4e5f60718");
    let audio = c.call_stats.as_ref().unwrap().audio.as_ref().unwrap();
    let a = &audio.inbound;
    assert_eq!(a.mos, Some(4.5), "FreeSWITCH reports its initial 4.50");
    assert_eq!(a.quality_percentage, Some(100.0));
    assert_eq!(a.media_packet_count, Some(0));
    assert!(!a.has_media());
    assert_eq!(a.usable_mos(), None);
    assert_eq!(audio.outbound.media_packet_count, Some(1200));
    assert_eq!(c.read_codec.as_deref(), Some("PCMA"));
    assert_eq!((c.duration, c.billsec), (Some(25), Some(24)));
}

#[test]
fn has_media_needs_a_media_packet_count() {
    let a = InboundStats {
        mos: Some(4.5),
        ..Default::default()
    };
    assert!(!a.has_media(), "unknown count is not media");
    assert_eq!(a.usable_mos(), None);
}

#[test]
fn no_call_stats_is_none_in_every_form() {
    let body = fixture_str("no-call-stats.xml");
    let c = xml(&body);
    assert_eq!(c.uuid, "e0e0e0e0-2222-4333-8444-555566667777");
    assert_eq!(c.call_stats, None);
    assert_eq!(c.hangup_cause.as_deref(), Some("ORIGINATOR_CANCEL"));
    assert_eq!(c.hangup_cause_q850, Some(16));
    assert_eq!((c.answer_epoch, c.billsec), (Some(0), Some(0)));
    assert_eq!(c.read_codec, None);
    assert_eq!(c.invalid, vec![]);
    let self_closing = body.replace("<call-stats></call-stats>", "<call-stats/>");
    assert_ne!(self_closing, body);
    assert_eq!(xml(&self_closing).call_stats, None);
    let absent = body.replace("  <call-stats></call-stats>\n", "");
    assert_ne!(absent, body);
    assert_eq!(xml(&absent), c, "older releases omit the element");
}

#[test]
fn b_leg_by_originator_profile() {
    let c = sniffed(&fixture("b-leg.xml"));
    assert_eq!(c.uuid, B_UUID, "not the originator profile's nested uuid");
    assert_eq!(c.leg, LegSide::B);
    assert_eq!(c.direction, Some(Direction::Outbound));
    assert_eq!(c.originator.as_deref(), Some(A_UUID));
    assert_eq!(c.signal_bond.as_deref(), Some(A_UUID));
    assert_eq!(c.bridge_uuid.as_deref(), Some(A_UUID));
    assert_eq!(c.call_uuid.as_deref(), Some(A_UUID));
    assert_eq!(
        c.sip_call_id.as_deref(),
        Some("7c1d0e5a-2b3f-4e61-8d7c-9a0b1c2d3e4f")
    );
    assert_eq!(audio_in(&c).usable_mos(), Some(4.5));
    assert_eq!(c.invalid, vec![]);
}

#[test]
fn leg_rule_uses_only_the_first_callflow() {
    let b = fixture_str("b-leg.xml");
    let (head, tail) = b.split_at(b.find("  <callflow").unwrap());
    let end = tail.rfind("</cdr>").unwrap();
    let callflow = &tail[..end];
    // An older profile with an originator does not make the current one a B-leg.
    let plain_first = callflow
        .replace("<originator>", "<!--")
        .replace("</originator>", "-->");
    let doc = format!("{head}{plain_first}{callflow}</cdr>\n");
    assert_eq!(xml(&doc).leg, LegSide::A);
    let doc = format!("{head}{callflow}{plain_first}</cdr>\n");
    assert_eq!(xml(&doc).leg, LegSide::B);
    // No callflow at all: the originator variable decides.
    let doc = format!("{head}</cdr>\n");
    assert_eq!(xml(&doc).leg, LegSide::B);
    let doc = doc
        .replace("<originator>", "<x_originator>")
        .replace("</originator>", "</x_originator>");
    assert_eq!(xml(&doc).leg, LegSide::A);
}

#[test]
fn url_encoded_values_are_decoded() {
    let c = sniffed(&fixture("encoded-values.xml"));
    assert_eq!(c.uuid, "f00dbabe-0000-4111-8222-333344445555");
    assert_eq!(
        c.switchname.as_deref(),
        Some("fs & co \u{2603}"),
        "attribute entities"
    );
    assert_eq!(c.domain_name.as_deref(), Some("bücher.example"));
    assert_eq!(c.accountcode.as_deref(), Some("acct+1 100%"));
    assert_eq!(c.sip_call_id.as_deref(), Some("a b&c<d>@x.example"));
    assert_eq!(c.read_codec.as_deref(), Some("opus"));
    assert_eq!(c.write_codec.as_deref(), Some("G722"));
    assert_eq!(c.call_stats, None);
    assert_eq!(c.invalid, vec![]);
    // A bare '+' in an XML value stays a '+' (values are percent-encoded, not form-encoded).
    let c = xml(&small_xml("4.00", "<accountcode>a+b</accountcode>"));
    assert_eq!(c.accountcode.as_deref(), Some("a+b"));
}

#[test]
fn entities_and_cdata_in_leaves() {
    let c = xml(&small_xml(
        "4.<![CDATA[2]]>0",
        "<domain_name>x&amp;y&#x41;</domain_name>",
    ));
    assert_eq!(audio_in(&c).mos, Some(4.2));
    assert_eq!(c.domain_name.as_deref(), Some("x&yA"));
}

#[test]
fn json_encoded_values_every_field() {
    let c = parse_ok(
        Some("application/json"),
        &fixture("json-encoded-values.json"),
    );
    assert_eq!(c, json_a_leg());
}

#[test]
fn json_plain_values_and_b_leg() {
    let c = parse_ok(Some("application/json"), &fixture("json-plain-values.json"));
    assert_eq!(c.format, Format::Json);
    assert!(!c.values_url_encoded);
    assert_eq!(c.uuid, J_B_UUID);
    assert_eq!(c.leg, LegSide::B);
    assert_eq!(c.direction, Some(Direction::Outbound));
    assert_eq!(c.originator.as_deref(), Some(J_A_UUID));
    assert_eq!(c.bridge_uuid.as_deref(), Some(J_A_UUID));
    assert_eq!(c.accountcode.as_deref(), Some("acct+1 100%"), "not decoded");
    assert_eq!(c.sip_call_id.as_deref(), Some("9f8e7d6c5b4a@198.51.100.9"));
    assert_eq!(c.read_codec.as_deref(), Some("PCMA"));
    assert_eq!((c.duration, c.billsec), (Some(42), Some(40)));
    let a = audio_in(&c);
    assert_eq!(a.mos, Some(4.5));
    assert_eq!(a.quality_percentage, Some(100.0));
    assert_eq!(a.jitter_max_variance, Some(1.5));
    assert_eq!(a.mean_interval, Some(20.0));
    assert_eq!(a.usable_mos(), Some(4.5));
    assert_eq!(c.invalid, vec![]);
}

#[test]
fn json_every_transport() {
    let raw = sniffed(&fixture("json-encoded-values.json"));
    let b64 = parse_ok(
        Some(Encoding::Base64.content_type()),
        &fixture("json-encoded-values.base64.body"),
    );
    assert_eq!(b64, raw);
    // mod_json_cdr encode=true with encode-values: the form's %22 are ambiguous (see
    // json_form_decode); the second reading gives the same CDR.
    let url_body = fixture("json-encoded-values.urlencoded.body");
    let once = fs::decode(None, &url_body).unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&once.text).is_err(),
        "decoding once breaks it"
    );
    assert_eq!(once.parse().unwrap(), raw);
    assert_eq!(
        parse_ok(Some(Encoding::UrlEncoded.content_type()), &url_body),
        raw
    );
    let plain = fixture_str("json-plain-values.json");
    let want = sniffed(plain.as_bytes());
    for enc in [Encoding::UrlEncoded, Encoding::Base64, Encoding::Json] {
        let (ct, body) = fs::encode(&plain, enc);
        assert_eq!(parse_ok(Some(ct), &body), want, "{enc:?}");
        assert_eq!(sniffed(&body), want, "{enc:?} sniffed");
    }
}

#[test]
fn json_callflow_as_a_single_object() {
    let doc = fixture_str("json-plain-values.json");
    let start = doc.find(r#""callflow":["#).unwrap();
    let doc = format!(
        "{}\"callflow\":{}",
        &doc[..start],
        &doc[start + 12..doc.len() - 2]
    ) + "}";
    let c = sniffed(doc.as_bytes());
    assert_eq!(c.leg, LegSide::B);
}

#[test]
fn a_literal_percent_escape_is_lost_upstream() {
    // switch_url_encode keeps an existing "%41", so the value reads back as "A".
    assert_eq!(fs::encode_value("x%41"), "x%41");
    let c = xml(&small_xml("4.00", "<accountcode>x%41</accountcode>"));
    assert_eq!(c.accountcode.as_deref(), Some("xA"));
}

#[test]
fn json_form_with_encoded_values_is_ambiguous_for_backslashes() {
    // encode-values turns a value `\\` into `%5C%5C`; encode=true keeps that; a plain
    // value `\` (JSON `"\\"`) is posted as the very same bytes. The body is read as the
    // latter (one form decoding, then JSON), so the encode-values reading loses one.
    let doc = |acct: &str| {
        format!(
            r#"{{"variables":{{"uuid":"u","accountcode":{acct},"start_stamp":"2024-03-14%2009%3A05%3A00"}}}}"#
        )
    };
    let encoded_values = fs::encode(&doc(r#""%5C%5C""#), Encoding::UrlEncoded).1;
    let plain_values = fs::encode(&doc(r#""\\""#), Encoding::UrlEncoded).1;
    assert_eq!(encoded_values, plain_values);
    assert_eq!(sniffed(&plain_values).accountcode.as_deref(), Some("\\"));
    // A quote, though, breaks the first reading and the second one gets it right.
    let quoted = fs::encode(&doc(r#""%22Bob%22%20%3C1%3E""#), Encoding::UrlEncoded).1;
    assert_eq!(sniffed(&quoted).accountcode.as_deref(), Some("\"Bob\" <1>"));
}

// ---------------------------------------------------------------------------------------------
// Err-log-dir files and the query parameter
// ---------------------------------------------------------------------------------------------

#[test]
fn err_log_files_parse_and_match_the_encoder() {
    let a = fs::parse_err_log_file(
        &format!(
            "/var/log/freeswitch/xml_cdr/{}",
            fs::err_log_file_name(A_UUID, true)
        ),
        &fixture(&format!("err-log/a_{A_UUID}.cdr.xml")),
    )
    .unwrap();
    assert_eq!(a, good_a_leg());
    let b = fs::parse_err_log_file(
        &fs::err_log_file_name(B_UUID, false),
        &fixture(&format!("err-log/{B_UUID}.cdr.xml")),
    )
    .unwrap();
    assert_eq!(b, sniffed(&fixture("b-leg.xml")));
    let j = fs::parse_err_log_file(
        &fs::json_err_log_file_name(J_A_UUID, false),
        &fixture(&format!("err-log/{J_A_UUID}.cdr.json")),
    )
    .unwrap();
    assert_eq!(j.uuid, J_A_UUID);
    assert_eq!(j.accountcode.as_deref(), Some("sales team+1"));
    let jb = fs::parse_err_log_file(
        &fs::json_err_log_file_name(J_B_UUID, false),
        &fixture(&format!("err-log/{J_B_UUID}.cdr.json")),
    )
    .unwrap();
    assert_eq!(jb, sniffed(&fixture("json-plain-values.json")));

    let xml = fixture_str("a-leg-good.xml");
    assert_eq!(
        fs::err_log_contents(&xml, Encoding::UrlEncoded),
        fixture(&format!("err-log/a_{A_UUID}.cdr.xml"))
    );
    assert_eq!(
        fs::err_log_contents(&xml, Encoding::TextXml),
        xml.as_bytes()
    );
    assert_eq!(
        fs::err_log_contents(&fixture_str("b-leg.xml"), Encoding::Base64),
        fixture(&format!("err-log/{B_UUID}.cdr.xml"))
    );
    assert_eq!(
        fs::err_log_contents(
            &fixture_str("json-encoded-values.json"),
            Encoding::UrlEncoded
        ),
        fixture(&format!("err-log/{J_A_UUID}.cdr.json"))
    );
    assert_eq!(
        fs::err_log_contents(&fixture_str("json-plain-values.json"), Encoding::Base64),
        fixture(&format!("err-log/{J_B_UUID}.cdr.json"))
    );
    // Raw (encode=false) files parse too.
    let raw = fs::parse_err_log_file(
        "x/a_a8d3e6f2-4c1b-4f5e-9b7a-1e2d3c4b5a60.cdr.xml",
        xml.as_bytes(),
    );
    assert_eq!(raw.unwrap(), good_a_leg());
}

#[test]
fn err_log_name_errors() {
    let body = fixture(&format!("err-log/{B_UUID}.cdr.xml"));
    assert_eq!(
        fs::parse_err_log_file(&format!("{B_UUID}.xml"), &body),
        Err(ParseError::BadFileName)
    );
    assert_eq!(
        fs::parse_err_log_file(&fs::err_log_file_name(A_UUID, false), &body),
        Err(ParseError::FileNameMismatch)
    );
    assert_eq!(
        fs::parse_err_log_file(&fs::err_log_file_name(B_UUID, false), b"\n"),
        Err(ParseError::Empty)
    );
    let name = format!("a_{A_UUID}.cdr.json");
    let n = ErrLogName::parse(&name).unwrap();
    assert_eq!((n.format, n.matches(A_UUID)), (Format::Json, Some(true)));
}

#[test]
fn leg_from_query_strips_the_a_prefix() {
    assert_eq!(
        fs::leg_from_query(&format!("a_{A_UUID}")),
        (Some(LegSide::A), A_UUID)
    );
    assert_eq!(fs::leg_from_query(B_UUID), (None, B_UUID));
    assert_eq!(fs::leg_from_query(""), (None, ""));
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn content_type_missing_wrong_or_unknown() {
    let xml_body = fixture("a-leg-good.xml");
    let p = fs::decode(None, &xml_body).unwrap();
    assert_eq!((p.encoding, p.declared), (Encoding::TextXml, None));
    let p = fs::decode(Some("text/plain"), &xml_body).unwrap();
    assert_eq!((p.encoding, p.declared), (Encoding::TextXml, None));
    let url = fixture("a-leg-good.urlencoded.body");
    let p = fs::decode(Some("text/xml"), &url).unwrap();
    assert_eq!(p.encoding, Encoding::UrlEncoded);
    assert!(p.content_type_mismatch());
    assert_eq!(parse_err(None, b"hello world"), ParseError::Unrecognized);
    assert_eq!(
        parse_err(Some("text/plain"), b"hello"),
        ParseError::Unrecognized
    );
    assert_eq!(
        parse_err(Some(Encoding::UrlEncoded.content_type()), b"foo=bar"),
        ParseError::MissingCdrField
    );
    assert_eq!(
        parse_err(
            Some(Encoding::UrlEncoded.content_type()),
            b"cdr=hello%20world"
        ),
        ParseError::Unrecognized
    );
    // The header decides only when the body fits no shape.
    assert_eq!(parse_err(Some("text/xml"), b"hello"), ParseError::NoRoot);
}

#[test]
fn base64_through_a_form_decoder_is_a_clear_error() {
    let body = fixture_str("a-leg-good.base64.body");
    assert!(body.contains('+'), "the fixture must exercise '+'");
    let mangled = body.replace('+', " ");
    for ct in [
        Some(Encoding::Base64.content_type()),
        None,
        Some("application/x-www-form-urlencoded"),
    ] {
        let e = parse_err(ct, mangled.as_bytes());
        assert_eq!(e, ParseError::Base64FormDecoded, "{ct:?}");
        assert_eq!(e.as_label(), "base64_form_decoded");
    }
    let e = fs::parse_err_log_file(
        &fs::err_log_file_name(A_UUID, true),
        &mangled.as_bytes()[4..],
    );
    assert_eq!(e, Err(ParseError::Base64FormDecoded));
}

#[test]
fn percent_encoded_base64_is_accepted() {
    let body = fixture_str("a-leg-good.base64.body");
    let (head, b64) = body.split_at(4);
    let escaped = format!(
        "{head}{}",
        b64.replace('+', "%2B")
            .replace('/', "%2f")
            .replace('=', "%3D")
    );
    assert!(escaped.contains("%2B") && escaped.contains("%3D"));
    let p = fs::decode(Some(Encoding::Base64.content_type()), escaped.as_bytes()).unwrap();
    assert_eq!(p.encoding, Encoding::Base64);
    assert_eq!(p.parse().unwrap(), good_a_leg());
    // Missing padding is tolerated.
    let unpadded = body.trim_end_matches('=');
    assert_eq!(sniffed(unpadded.as_bytes()), good_a_leg());
    // Not base64 at all.
    let e = parse_err(Some(Encoding::Base64.content_type()), b"cdr=PD94b");
    assert_eq!(e.as_label(), "bad_base64");
}

#[test]
fn url_encoded_form_details() {
    // '+' is a space in a form body (an intermediary's re-encoding).
    let url = fixture_str("a-leg-good.urlencoded.body").replace("%20", "+");
    assert_eq!(sniffed(url.as_bytes()), good_a_leg());
    // Truncated escapes.
    assert_eq!(
        parse_err(None, b"cdr=%3Ccdr%4"),
        ParseError::BadUrlEncoding(10)
    );
    assert_eq!(
        parse_err(None, b"cdr=%3Ccdr%"),
        ParseError::BadUrlEncoding(10)
    );
    assert_eq!(
        parse_err(None, b"cdr=%3Ccdr%G1"),
        ParseError::BadUrlEncoding(10)
    );
    // A truncated escape inside a variable value only spoils that field.
    let c = xml(&small_xml("4.00", "<domain_name>pbx%4</domain_name>"));
    assert_eq!(c.domain_name, None);
    assert_eq!(
        c.invalid,
        vec![inv("variables.domain_name", InvalidReason::BadEncoding)]
    );
    // Decoded bytes that are not UTF-8 spoil the field as well.
    let c = xml(&small_xml("4.00", "<accountcode>%FF%FE</accountcode>"));
    assert_eq!(
        c.invalid,
        vec![inv("variables.accountcode", InvalidReason::BadEncoding)]
    );
}

#[test]
fn json_that_is_not_an_object() {
    for body in ["[1,2]", "\"cdr\"", "42", "null", "[{\"uuid\":\"x\"}]"] {
        assert_eq!(
            parse_err(Some("application/json"), body.as_bytes()),
            ParseError::NotObject,
            "{body}"
        );
    }
    let e = parse_err(Some("application/json"), b"{\"variables\":{\"uuid\":");
    assert_eq!(e.as_label(), "malformed_json");
    let e = parse_err(None, format!("{} trailing", small_json("4.1")).as_bytes());
    assert_eq!(e.as_label(), "malformed_json");
}

#[test]
fn numbers_with_commas_and_other_bad_numbers() {
    let c = xml(&small_xml("4,50", ""));
    assert_eq!(c.uuid, A_UUID, "the rest stays usable");
    assert_eq!(c.hangup_cause.as_deref(), Some("NORMAL_CLEARING"));
    let a = audio_in(&c);
    assert_eq!(a.mos, None);
    assert_eq!(a.quality_percentage, Some(90.0));
    assert_eq!(a.media_packet_count, Some(100));
    assert_eq!(
        c.invalid,
        vec![inv("audio.inbound.mos", InvalidReason::BadNumber)]
    );

    let c = xml(&small_xml(
        "4.00",
        "<duration>1,5</duration><billsec>-3</billsec>",
    ));
    assert_eq!((c.duration, c.billsec), (None, None));
    assert_eq!(
        c.invalid,
        vec![
            inv("variables.duration", InvalidReason::BadNumber),
            inv("variables.billsec", InvalidReason::Negative),
        ]
    );
    let c = xml(&small_xml(
        "4.00",
        "<hangup_cause_q850>487</hangup_cause_q850>",
    ));
    assert_eq!(c.hangup_cause_q850, None);
    assert_eq!(
        c.invalid,
        vec![inv(
            "variables.hangup_cause_q850",
            InvalidReason::OutOfRange
        )]
    );
    let doc = small_xml("4.00", "").replace(
        "<media_packet_count>100</media_packet_count>",
        "<media_packet_count>1.5</media_packet_count>",
    );
    let c = xml(&doc);
    assert_eq!(
        c.invalid,
        vec![inv(
            "audio.inbound.media_packet_count",
            InvalidReason::BadNumber
        )]
    );
    assert!(!audio_in(&c).has_media());
}

#[test]
fn non_finite_negative_and_out_of_range_mos() {
    use InvalidReason::*;
    let cases: [(&str, InvalidReason); 8] = [
        ("nan", NotFinite),
        ("-nan", NotFinite),
        ("inf", NotFinite),
        ("-1.00", Negative),
        ("0.00", OutOfRange),
        ("7.00", OutOfRange),
        ("0.99", OutOfRange),
        ("5.01", OutOfRange),
    ];
    for (mos, reason) in cases {
        let c = xml(&small_xml(mos, ""));
        assert_eq!(audio_in(&c).mos, None, "{mos}");
        assert_eq!(c.invalid, vec![inv("audio.inbound.mos", reason)], "{mos}");
    }
    for ok in ["1.00", "5.00", "4.50"] {
        assert!(xml(&small_xml(ok, "")).invalid.is_empty(), "{ok}");
    }
    let q = small_xml("4.00", "").replace("90.00", "100.01");
    assert_eq!(
        xml(&q).invalid,
        vec![inv("audio.inbound.quality_percentage", OutOfRange)]
    );
    // JSON: cJSON prints NaN/inf as null; numbers arrive as JSON numbers or strings.
    let json_cases: [(&str, InvalidReason); 7] = [
        ("null", NotFinite),
        ("-1", Negative),
        ("0", OutOfRange),
        ("7", OutOfRange),
        ("\"4,5\"", BadNumber),
        ("true", WrongType),
        ("{\"x\":1}", WrongType),
    ];
    for (mos, reason) in json_cases {
        let c = sniffed(small_json(mos).as_bytes());
        assert_eq!(c.invalid, vec![inv("audio.inbound.mos", reason)], "{mos}");
        assert_eq!(c.hangup_cause.as_deref(), Some("NORMAL_CLEARING"));
    }
    let c = sniffed(small_json("\"4.25\"").as_bytes());
    assert_eq!(audio_in(&c).mos, Some(4.25));
}

#[test]
fn huge_uuid_is_too_long_not_kept() {
    let huge = "a".repeat(10 * 1024);
    // Only source: the whole CDR has no usable uuid.
    let doc = small_xml("4.00", "").replace(A_UUID, &huge);
    assert_eq!(
        parse_err(None, doc.as_bytes()),
        ParseError::InvalidUuid(InvalidReason::TooLong)
    );
    // Another source is used, the bad one reported.
    let doc = fixture_str("zero-media.xml").replacen(
        "<uuid>d15ea5e0-7777-4e3d-a1b2-c3d4e5f60718</uuid>",
        &format!("<uuid>{huge}</uuid>"),
        1,
    );
    let c = xml(&doc);
    assert_eq!(c.uuid, "d15ea5e0-7777-4e3d-a1b2-c3d4e5f60718");
    assert_eq!(
        c.invalid,
        vec![inv("variables.uuid", InvalidReason::TooLong)]
    );
    // The bound is on the decoded value: 256 bytes pass, 257 do not.
    let ok = "u".repeat(256);
    assert_eq!(xml(&small_xml("4.00", "").replace(A_UUID, &ok)).uuid, ok);
    let c = xml(&small_xml(
        "4.00",
        &format!("<call_uuid>{}</call_uuid>", "%41".repeat(257)),
    ));
    assert_eq!(
        c.invalid,
        vec![inv("variables.call_uuid", InvalidReason::TooLong)]
    );
    let c = xml(&small_xml(
        "4.00",
        &format!("<domain_name>{}</domain_name>", "d".repeat(129)),
    ));
    assert_eq!(
        c.invalid,
        vec![inv("variables.domain_name", InvalidReason::TooLong)]
    );
    let c = xml(&small_xml("4.00", "<accountcode>a%0Ab</accountcode>"));
    assert_eq!(
        c.invalid,
        vec![inv(
            "variables.accountcode",
            InvalidReason::ControlCharacters
        )]
    );
}

#[test]
fn doctype_and_entity_expansion_are_rejected() {
    let doc = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE cdr [<!ENTITY a \"{}\">]>\n{}",
        "x".repeat(100),
        small_xml("4.00", "<accountcode>&a;</accountcode>")
            .split_once('\n')
            .unwrap()
            .1
    );
    let e = parse_err(None, doc.as_bytes());
    assert!(matches!(e, ParseError::DocType(_)), "{e:?}");
    assert_eq!(e.as_label(), "doctype");
}

#[test]
fn deep_nesting_is_rejected() {
    let deep = format!(
        "<cdr><variables><uuid>u</uuid></variables>{}{}</cdr>",
        "<x>".repeat(MAX_DEPTH + 5),
        "</x>".repeat(MAX_DEPTH + 5)
    );
    assert_eq!(parse_err(None, deep.as_bytes()), ParseError::TooDeep);
    let ok = format!(
        "<cdr><variables><uuid>u</uuid></variables>{}{}</cdr>",
        "<x>".repeat(MAX_DEPTH - 2),
        "</x>".repeat(MAX_DEPTH - 2)
    );
    assert_eq!(xml(&ok).uuid, "u");
    let deep = format!(
        "{{\"variables\":{{\"uuid\":\"u\"}},\"app_log\":{}{}}}",
        "[".repeat(MAX_DEPTH + 5),
        "]".repeat(MAX_DEPTH + 5)
    );
    assert_eq!(parse_err(None, deep.as_bytes()), ParseError::TooDeep);
    let deep_hidden = fs::encode(&deep, Encoding::UrlEncoded).1;
    assert_eq!(parse_err(None, &deep_hidden), ParseError::TooDeep);
}

#[test]
fn empty_and_broken_documents() {
    for body in [&b""[..], b"  \r\n", b"cdr=", b"cdr=\n"] {
        assert_eq!(parse_err(None, body), ParseError::Empty, "{body:?}");
    }
    assert_eq!(parse_err(Some("text/xml"), b""), ParseError::Empty);
    assert_eq!(
        parse_err(None, b"<records/>"),
        ParseError::WrongRoot("records".into())
    );
    assert_eq!(
        parse_err(None, b"<?xml version=\"1.0\"?>\n<cdr><variables>"),
        ParseError::Truncated
    );
    assert_eq!(parse_err(None, b"<cdr></cdr>"), ParseError::NoUuid);
    assert_eq!(parse_err(None, b"<cdr/>"), ParseError::NoUuid);
    assert_eq!(parse_err(None, b"{}"), ParseError::NoUuid);
    assert_eq!(
        parse_err(
            None,
            b"<cdr><variables><uuid>u</uuid></variables></cdr><cdr/>"
        ),
        ParseError::TrailingContent(48)
    );
    let e = parse_err(None, b"<cdr><variables></cdr>");
    assert_eq!(e.as_label(), "malformed_xml");
    // The uuid falls back to the callflow profile, then to unique-id.
    let doc = "<cdr><callflow unique-id=\"from-attr\"><caller_profile><uuid>from-profile</uuid></caller_profile></callflow></cdr>";
    assert_eq!(xml(doc).uuid, "from-profile");
    let doc = "<cdr><callflow unique-id=\"from-attr\"><caller_profile/></callflow></cdr>";
    assert_eq!(xml(doc).uuid, "from-attr");
}

#[test]
fn json_wrong_types_are_fields_not_failures() {
    let doc = format!(
        r#"{{"core-uuid":5,"channel_data":"x","callStats":{{"audio":[1]}},"variables":{{"uuid":"{A_UUID}","accountcode":12,"duration":"9","billsec":7,"direction":"sideways"}}}}"#
    );
    let c = sniffed(doc.as_bytes());
    assert_eq!(c.uuid, A_UUID);
    assert_eq!(c.core_uuid, None);
    assert_eq!(c.call_stats, None);
    assert_eq!((c.duration, c.billsec), (Some(9), Some(7)));
    assert_eq!(c.accountcode, None);
    let mut got: Vec<InvalidField> = c.invalid.clone();
    got.sort_by_key(|f| f.field);
    assert_eq!(
        got,
        vec![
            inv("callStats.audio", InvalidReason::WrongType),
            inv("channel_data", InvalidReason::WrongType),
            inv("core-uuid", InvalidReason::WrongType),
            inv("variables.accountcode", InvalidReason::WrongType),
            inv("variables.direction", InvalidReason::UnknownValue),
        ]
    );
    let c = sniffed(br#"{"variables":7,"callflow":[{"caller_profile":{"uuid":"p"}}]}"#);
    assert_eq!(c.uuid, "p");
    assert_eq!(c.invalid, vec![inv("variables", InvalidReason::WrongType)]);
}

#[test]
fn invalid_utf8_body_is_read_lossily() {
    let mut body = small_xml("4.00", "<accountcode>caf</accountcode>").into_bytes();
    let at = body.windows(3).position(|w| w == b"caf").unwrap() + 3;
    body.insert(at, 0xE9); // Latin-1 'é'
    let c = sniffed(&body);
    assert_eq!(c.uuid, A_UUID);
    assert_eq!(c.accountcode.as_deref(), Some("caf\u{FFFD}"));
    assert_eq!(c.invalid, vec![inv("body", InvalidReason::InvalidUtf8)]);
}

#[test]
fn first_occurrence_wins_and_error_periods_are_bounded() {
    let c = xml(&small_xml(
        "4.00",
        "<uuid>second</uuid><hangup_cause>X</hangup_cause>",
    ));
    assert_eq!(c.uuid, A_UUID);
    assert_eq!(
        c.hangup_cause.as_deref(),
        Some("X"),
        "listed before the fixture's"
    );
    let period = "<error-period><start>1</start><stop>2</stop><flaws>3</flaws></error-period>";
    let doc = small_xml("4.00", "").replace(
        "</outbound>",
        &format!(
            "</outbound><error-log>{}</error-log>",
            period.repeat(MAX_ERROR_PERIODS + 3)
        ),
    );
    let c = xml(&doc);
    let audio = c.call_stats.as_ref().unwrap().audio.as_ref().unwrap();
    assert_eq!(audio.error_log.len(), MAX_ERROR_PERIODS);
    assert_eq!(audio.error_log[0].flaws, Some(3));
    assert_eq!(
        c.invalid,
        vec![inv("audio.error_log", InvalidReason::TooMany)]
    );
}

#[test]
fn eight_mib_bodies_parse_in_one_pass() {
    let filler = "    <some_var>some%20value%20that%20is%20long</some_var>\n".repeat(150_000);
    let doc = fixture_str("a-leg-good.xml")
        .replace("  <variables>\n", &format!("  <variables>\n{filler}"));
    assert!(doc.len() > 8 << 20);
    let started = std::time::Instant::now();
    for enc in [Encoding::TextXml, Encoding::UrlEncoded, Encoding::Base64] {
        let (ct, body) = fs::encode(&doc, enc);
        assert_eq!(parse_ok(Some(ct), &body), good_a_leg(), "{enc:?}");
    }
    let vars: String = (0..150_000)
        .map(|i| format!("\"v{i}\":\"some%20value%20that%20is%20long\","))
        .collect();
    let json = fixture_str("json-encoded-values.json")
        .replace("\"variables\":{", &format!("\"variables\":{{{vars}"));
    assert!(json.len() > 5 << 20);
    assert_eq!(sniffed(json.as_bytes()), json_a_leg());
    // Generous: a quadratic step would take minutes, not seconds.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn error_messages_are_one_short_line() {
    let long_root = format!("<{} a=\"b\"/>", "r".repeat(5000));
    let bodies: Vec<Vec<u8>> = vec![
        long_root.into_bytes(),
        format!("<cdr>{}<</cdr>", "x".repeat(5000)).into_bytes(),
        format!("{{\"a\":\"{}\n", "x".repeat(5000)).into_bytes(),
        b"cdr=%3C%zz".to_vec(),
        b"cdr=PD94b".to_vec(),
    ];
    for b in bodies {
        let e = fs::parse(None, &b).unwrap_err();
        let m = e.to_string();
        assert!(
            !m.contains('\n') && m.len() <= 200,
            "{} bytes: {m}",
            m.len()
        );
        assert!(REASONS.contains(&e.as_label()));
    }
    assert!(INVALID_REASONS.contains(&InvalidReason::TooLong.as_label()));
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// A value without ASCII whitespace at its ends (values are trimmed), no control or format
/// characters, no '%' (an existing "%XX" is not re-encoded upstream, see
/// `a_literal_percent_escape_is_lost_upstream`), no '"' or '\\' (mod_json_cdr's
/// encode=true + encode-values body is ambiguous for them, see
/// `json_form_with_encoded_values_is_ambiguous_for_backslashes`).
fn value() -> impl Strategy<Value = String> {
    "[^\\s%\"\\\\\\p{C}]([^%\"\\\\\\p{C}]{0,18}[^\\s%\"\\\\\\p{C}])?"
}

fn xml_doc(uuid: &str, domain: &str, account: &str, mos: f64) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<cdr core-uuid=\"{CORE}\" switchname=\"sim\">\n  <call-stats>\n    <audio>\n      <inbound>\n        <media_packet_count>50</media_packet_count>\n        <mos>{mos:.2}</mos>\n      </inbound>\n    </audio>\n  </call-stats>\n  <variables>\n    <uuid>{}</uuid>\n    <domain_name>{}</domain_name>\n    <accountcode>{}</accountcode>\n    <start_stamp>{}</start_stamp>\n  </variables>\n</cdr>\n",
        fs::encode_value(uuid),
        fs::encode_value(domain),
        fs::encode_value(account),
        fs::encode_value("2024-03-14 09:05:00"),
    )
}

fn json_doc(uuid: &str, domain: &str, account: &str, mos: f64, encode_values: bool) -> String {
    let v = |s: &str| {
        let s = if encode_values {
            fs::encode_value(s)
        } else {
            s.to_owned()
        };
        serde_json::to_string(&s).unwrap()
    };
    format!(
        "{{\"core-uuid\":\"{CORE}\",\"callStats\":{{\"audio\":{{\"inbound\":{{\"media_packet_count\":50,\"mos\":{mos}}}}}}},\"variables\":{{\"uuid\":{},\"domain_name\":{},\"accountcode\":{},\"start_stamp\":{}}}}}",
        v(uuid),
        v(domain),
        v(account),
        v("2024-03-14 09:05:00")
    )
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(Encoding::ALL.to_vec())
            .prop_map(|e| Some(e.content_type().to_owned())),
        "[ -~]{0,30}".prop_map(Some),
    ]
}

/// `PROPTEST_CASES` runs more (e.g. 20000) for a longer search.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_bytes_never_panic(ct in content_type(), body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = fs::parse(ct.as_deref(), &body);
        let _ = fs::parse_err_log_file("a_x.cdr.xml", &body);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        ct in content_type(),
        file in prop::sample::select(vec![
            "a-leg-good.xml", "bad-call.xml", "json-encoded-values.json",
            "a-leg-good.urlencoded.body", "json-encoded-values.base64.body",
        ]),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut body = fixture(file);
        for (at, byte) in cuts {
            let i = at.index(body.len());
            body[i] = byte;
        }
        if let Ok(c) = fs::parse(ct.as_deref(), &body) {
            prop_assert!(!c.uuid.is_empty() && c.uuid.len() <= fs::MAX_ID_LEN);
        }
    }

    #[test]
    fn encode_then_parse_round_trips(
        uuid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        domain in value(),
        account in value(),
        mos_hundredths in 100u32..=450,
        enc in prop::sample::select(Encoding::ALL.to_vec()),
        json in any::<bool>(),
        encode_values in any::<bool>(),
    ) {
        let mos = f64::from(mos_hundredths) / 100.0;
        let doc = if json {
            json_doc(&uuid, &domain, &account, mos, encode_values)
        } else {
            xml_doc(&uuid, &domain, &account, mos)
        };
        let (ct, body) = fs::encode(&doc, enc);
        let c = fs::parse(Some(ct), &body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&c.uuid, &uuid);
        prop_assert_eq!(c.domain_name.as_deref(), Some(domain.as_str()));
        prop_assert_eq!(c.accountcode.as_deref(), Some(account.as_str()));
        prop_assert_eq!(audio_in(&c).mos, Some(mos));
        prop_assert_eq!(c.format, if json { Format::Json } else { Format::Xml });
        // A document declared as the other format (JSON as text/xml, XML as
        // application/json) is reported; form encodings declare no format.
        if (json && enc == Encoding::TextXml) || (!json && enc == Encoding::Json) {
            prop_assert_eq!(&c.invalid, &vec![inv("content_type", InvalidReason::WrongContentType)]);
        } else {
            prop_assert!(c.invalid.is_empty(), "{:?}", c.invalid);
        }
        // And through an err-log file, for the encodings FreeSWITCH writes there.
        let name = if json { fs::json_err_log_file_name(&uuid, false) } else { fs::err_log_file_name(&uuid, true) };
        let f = fs::parse_err_log_file(&name, &fs::err_log_contents(&doc, enc))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(f.accountcode, c.accountcode);
    }
}
