//! The FreeSWITCH and Kamailio/rtpengine receivers through the real HTTP server: every
//! mod_xml_cdr / mod_json_cdr encoding, legs without media, retries, basic auth as curl
//! (FreeSWITCH's HTTP client) sends it, and the issue's bad-input list, each row a case.

mod common;

use std::collections::BTreeMap;

use cdr_exporter::freeswitch as fs;
use cdr_exporter::metrics::catalogue::MOS_BUCKETS;
use cdr_exporter::quality::simplified_mos;
use common::*;

const A_UUID: &str = "a8d3e6f2-4c1b-4f5e-9b7a-1e2d3c4b5a60";
const FS: &str = "/freeswitch/cdr";
const KAM: &str = "/kamailio/mos";

fn fs_fixture(name: &str) -> Vec<u8> {
    fixture(&format!("freeswitch/{name}"))
}

fn rtp_fixture(name: &str) -> Vec<u8> {
    fixture(&format!("rtpengine/{name}"))
}

async fn server() -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    (server, dir)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// The bucket bound that first holds `v`, as the exposition prints it.
fn le_of(v: f64) -> String {
    let b = MOS_BUCKETS
        .iter()
        .find(|b| **b >= v)
        .copied()
        .unwrap_or(f64::INFINITY);
    if b.is_infinite() {
        "+Inf".into()
    } else if b.fract() == 0.0 {
        format!("{b:.1}")
    } else {
        b.to_string()
    }
}

/// Every label value on `/metrics` is within the 128-byte default cap.
fn assert_labels_bounded(s: &Scrape) {
    for line in s.0.lines().filter(|l| !l.starts_with('#')) {
        if let Some(i) = line.find('{') {
            let labels = &line[i..line.rfind('}').unwrap()];
            for v in labels.split("=\"").skip(1) {
                let end = v.find("\",").or_else(|| v.rfind('"')).unwrap_or(v.len());
                assert!(end <= 128, "label value of {} bytes: {line:.200}", end);
            }
        }
    }
}

/// The a-leg-good fixture's expected effect, checked against the parser's own reading.
fn check_a_leg_good(s: &Scrape) {
    let c = fs::parse(Some("text/xml"), &fs_fixture("a-leg-good.xml")).unwrap();
    let sw = ("switch", "fs-edge-01");
    let a = c.call_stats.unwrap().audio.unwrap().inbound;
    assert_eq!(
        s.get(
            "freeswitch_cdr_legs_total",
            &[sw, ("leg", "a"), ("direction", "inbound")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "freeswitch_cdr_legs_answered_total",
            &[sw, ("leg", "a"), ("direction", "inbound")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "freeswitch_cdr_leg_hangups_total",
            &[sw, ("hangup_cause", "NORMAL_CLEARING"), ("q850", "16")]
        ),
        Some(1.0)
    );
    assert_eq!(s.get("freeswitch_cdr_leg_mos_count", &[sw]), Some(1.0));
    assert_eq!(s.get("freeswitch_cdr_leg_mos_sum", &[sw]), Some(4.44));
    assert_eq!(
        s.get("freeswitch_cdr_leg_mos_bucket", &[sw, ("le", &le_of(4.44))]),
        Some(1.0)
    );
    assert_eq!(
        s.get("freeswitch_cdr_leg_mos_bucket", &[sw, ("le", "4.3")]),
        Some(0.0)
    );
    let loss = 400.0 / 8990.0;
    let jitter_ms = 4.87f64.sqrt();
    assert_eq!(a.flaw_total, Some(400));
    assert!(close(
        s.get("freeswitch_cdr_leg_packet_loss_ratio_sum", &[sw])
            .unwrap(),
        loss
    ));
    assert!(close(
        s.get("freeswitch_cdr_leg_jitter_seconds_sum", &[sw])
            .unwrap(),
        jitter_ms / 1000.0
    ));
    assert!(close(
        s.get("freeswitch_cdr_leg_estimated_mos_sum", &[sw])
            .unwrap(),
        simplified_mos(0.0, jitter_ms, loss * 100.0)
    ));
    for dir in ["rx", "tx"] {
        assert_eq!(
            s.get(
                "freeswitch_cdr_leg_codecs_total",
                &[sw, ("direction", dir), ("codec", "PCMU")]
            ),
            Some(1.0)
        );
    }
    assert_eq!(
        s.get("freeswitch_cdr_leg_duration_seconds_sum", &[sw]),
        Some(184.0)
    );
    assert_eq!(
        s.get("freeswitch_cdr_leg_billed_seconds_sum", &[sw]),
        Some(180.0)
    );
    let dom = ("domain", "pbx.example.com");
    assert_eq!(s.get("freeswitch_cdr_domain_legs_total", &[dom]), Some(1.0));
    assert_eq!(
        s.get("freeswitch_cdr_domain_leg_mos_count", &[dom]),
        Some(1.0)
    );
    assert!(
        s.get("freeswitch_cdr_last_received_timestamp_seconds", &[sw])
            .unwrap()
            > 1e9
    );
}

const XML_ENCODINGS: &[(&str, &str)] = &[
    (
        "a-leg-good.urlencoded.body",
        "application/x-www-form-urlencoded",
    ),
    (
        "a-leg-good.base64.body",
        "application/x-www-form-base64-encoded",
    ),
    ("a-leg-good.plain.body", "application/x-www-form-plaintext"),
    ("a-leg-good.xml", "text/xml"),
];

#[tokio::test]
async fn every_mod_xml_cdr_encoding_is_applied() {
    for (file, ct) in XML_ENCODINGS {
        let (server, _dir) = server().await;
        let mut c = Conn::open(server.addr).await;
        let r = c
            .post_typed(&format!("{FS}?uuid=a_{A_UUID}"), Some(ct), fs_fixture(file))
            .await;
        assert_eq!(r.status, 200, "{file}: {}", r.body);
        let s = c.scrape().await;
        check_a_leg_good(&s);
        assert_eq!(
            s.sum("freeswitch_cdr_invalid_fields_total", &[]),
            0.0,
            "{file}: nothing invalid"
        );
    }
}

#[tokio::test]
async fn the_same_leg_in_every_encoding_counts_once() {
    let (server, _dir) = server().await;
    let mut c = Conn::open(server.addr).await;
    for (file, ct) in XML_ENCODINGS {
        let r = c.post_typed(FS, Some(ct), fs_fixture(file)).await;
        assert_eq!(r.status, 200, "{file}: {}", r.body);
    }
    // mod_xml_cdr retries after a lost 200: same body again.
    let r = c
        .post_typed(FS, Some("text/xml"), fs_fixture("a-leg-good.xml"))
        .await;
    assert_eq!(r.status, 200);
    let s = c.scrape().await;
    check_a_leg_good(&s);
    assert_eq!(
        s.get(
            "freeswitch_cdr_duplicates_total",
            &[("switch", "fs-edge-01")]
        ),
        Some(4.0)
    );
    assert_eq!(
        s.get("cdr_exporter_dedupe_entries", &[("source", "freeswitch")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn mod_json_cdr_posts_are_applied() {
    let (server, _dir) = server().await;
    let mut c = Conn::open(server.addr).await;
    let sw = ("switch", "fs-edge-02");
    for (file, ct) in [
        ("json-encoded-values.json", "application/json"),
        (
            "json-encoded-values.urlencoded.body",
            "application/x-www-form-urlencoded",
        ),
        (
            "json-encoded-values.base64.body",
            "application/x-www-form-base64-encoded",
        ),
    ] {
        let r = c.post_typed(FS, Some(ct), fs_fixture(file)).await;
        assert_eq!(r.status, 200, "{file}: {}", r.body);
    }
    let r = c
        .post_typed(
            FS,
            Some("application/json"),
            fs_fixture("json-plain-values.json"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = c.scrape().await;
    // The A-leg three times (one leg, two duplicates), and its B-leg.
    assert_eq!(
        s.get(
            "freeswitch_cdr_legs_total",
            &[sw, ("leg", "a"), ("direction", "inbound")]
        ),
        Some(1.0),
        "{:?}",
        s.samples("freeswitch_cdr_legs_total")
    );
    assert_eq!(
        s.get(
            "freeswitch_cdr_legs_total",
            &[sw, ("leg", "b"), ("direction", "outbound")]
        ),
        Some(1.0)
    );
    assert_eq!(s.get("freeswitch_cdr_duplicates_total", &[sw]), Some(2.0));
    let json_mos = fs::parse(
        Some("application/json"),
        &fs_fixture("json-encoded-values.json"),
    )
    .unwrap()
    .call_stats
    .unwrap()
    .audio
    .unwrap()
    .inbound
    .mos
    .unwrap();
    assert!(close(
        s.get("freeswitch_cdr_leg_mos_sum", &[sw]).unwrap(),
        json_mos + 4.5
    ));
    // accountcode is the domain when there is no domain_name; url-decoded once.
    assert_eq!(s.sum("freeswitch_cdr_domain_legs_total", &[]), 2.0);
    assert!(s.0.contains("codec=\"opus\""), "opus from read_codec");
}

#[tokio::test]
async fn legs_without_media_count_as_no_mos_never_as_perfect() {
    let (server, _dir) = server().await;
    let mut c = Conn::open(server.addr).await;
    for f in [
        "zero-media.xml",
        "no-call-stats.xml",
        "bad-call.xml",
        "b-leg.xml",
    ] {
        let r = c.post_typed(FS, Some("text/xml"), fs_fixture(f)).await;
        assert_eq!(r.status, 200, "{f}: {}", r.body);
    }
    let s = c.scrape().await;
    let sw = ("switch", "fs-edge-01");
    let unavailable = |r: &str| {
        s.get(
            "freeswitch_cdr_leg_mos_unavailable_total",
            &[sw, ("reason", r)],
        )
    };
    assert_eq!(
        unavailable("no_media"),
        Some(1.0),
        "zero-media's 4.50 is not a MOS"
    );
    assert_eq!(unavailable("no_call_stats"), Some(1.0));
    assert_eq!(unavailable("invalid_values"), Some(0.0));
    // bad-call 2.52 and the B-leg's 4.50 (with media): two MOS values, no 4.50 from zero-media.
    assert_eq!(s.get("freeswitch_cdr_leg_mos_count", &[sw]), Some(2.0));
    assert!(close(
        s.get("freeswitch_cdr_leg_mos_sum", &[sw]).unwrap(),
        2.52 + 4.5
    ));
    assert_eq!(
        s.get("freeswitch_cdr_leg_mos_bucket", &[sw, ("le", "2.6")]),
        Some(1.0)
    );
    assert_eq!(
        s.get("freeswitch_cdr_leg_mos_bucket", &[sw, ("le", "2.0")]),
        Some(0.0)
    );
    // The cancelled call was not answered; ORIGINATOR_CANCEL maps to Q.850 16.
    assert_eq!(
        s.get(
            "freeswitch_cdr_leg_hangups_total",
            &[sw, ("hangup_cause", "ORIGINATOR_CANCEL"), ("q850", "16")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.sum("freeswitch_cdr_legs_answered_total", &[sw]),
        3.0,
        "all but the cancelled one"
    );
    assert_eq!(
        s.get(
            "freeswitch_cdr_legs_total",
            &[sw, ("leg", "b"), ("direction", "outbound")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "freeswitch_cdr_leg_codecs_total",
            &[sw, ("direction", "rx"), ("codec", "G729")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.get(
            "freeswitch_cdr_domain_leg_mos_unavailable_total",
            &[("domain", "pbx.example.com")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn basic_auth_as_curl_sends_it_and_the_token_still_works() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.auth.basic_user = "freeswitch".into();
    cfg.auth.basic_password = "s3cret:with colon".into();
    cfg.auth.token = "t0ken".into();
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let body = fs_fixture("a-leg-good.xml");
    let r = c.post_typed(FS, Some("text/xml"), body.clone()).await;
    assert_eq!(r.status, 401);
    let challenges: Vec<_> = r.headers.get_all("www-authenticate").iter().collect();
    assert!(
        challenges
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("Basic")),
        "{challenges:?}"
    );
    let mut h = hyper::HeaderMap::new();
    h.insert("content-type", "text/xml".parse().unwrap());
    let wrong = base64::engine::general_purpose::STANDARD.encode("freeswitch:nope");
    h.insert("authorization", format!("Basic {wrong}").parse().unwrap());
    assert_eq!(
        c.request_with("POST", FS, &h, body.clone()).await.status,
        401
    );

    // FreeSWITCH's `cred` with auth-scheme "any": curl asks first, answers the challenge.
    let file = dir.path().join("cdr.xml");
    std::fs::write(&file, &body).unwrap();
    let mut curl = std::process::Command::new("curl");
    curl.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--anyauth",
        "--user",
        "freeswitch:s3cret:with colon",
        "-H",
        "Content-Type: text/xml",
        "--data-binary",
    ])
    .arg(format!("@{}", file.display()))
    .arg(format!("http://{}{FS}?uuid=a_{A_UUID}", server.addr));
    let out = tokio::task::spawn_blocking(move || curl.output())
        .await
        .unwrap()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    // The token works on the same path; a second post is a duplicate.
    let r = c
        .post_typed(&format!("{FS}?token=t0ken"), Some("text/xml"), body)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let s = c.scrape().await;
    check_a_leg_good(&s);
    assert_eq!(
        s.get(
            "cdr_exporter_batches_rejected_total",
            &[("source", "freeswitch"), ("reason", "unauthorized")]
        ),
        Some(3.0),
        "ours, the wrong password, and curl's first (unauthenticated) try"
    );
}

/// `a-leg-good.xml` as a new leg (its own uuid), with `edit` applied to the text.
fn a_leg_variant(uuid: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    let text = String::from_utf8(fs_fixture("a-leg-good.xml")).unwrap();
    edit(text.replace(A_UUID, uuid)).into_bytes()
}

/// One bad-input case: name, Content-Type, body, status, and the reason counted (rejected
/// or, for a 200, an invalid field).
type Row = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

fn uuid(i: u32) -> String {
    format!("f0000000-0000-4000-8000-{i:012}")
}

#[tokio::test]
async fn freeswitch_bad_input_is_refused_or_counted_and_loses_nothing() {
    let (server, dir) = server().await;
    let mut c = Conn::open(server.addr).await;
    // Accepted before the bad ones: must survive them.
    let r = c
        .post_typed(FS, Some("text/xml"), fs_fixture("a-leg-good.xml"))
        .await;
    assert_eq!(r.status, 200);

    let base64 = String::from_utf8(fs_fixture("a-leg-good.base64.body")).unwrap();
    assert!(base64.contains('+'), "the fixture must have a + to lose");
    let form_decoded = base64.replace('+', " ");
    let url = String::from_utf8(fs_fixture("a-leg-good.urlencoded.body")).unwrap();
    let cut = url[..url.len() / 2].rfind('%').unwrap() + 2;
    let truncated = url[..cut].to_owned();
    let long_uuid = "9".repeat(10_240);
    let mos =
        |v: &'static str| move |t: String| t.replace("<mos>4.44</mos>", &format!("<mos>{v}</mos>"));

    // (case, content type, body, status, rejected reason or invalid-field reason)
    let rows: Vec<Row> = vec![
        (
            "missing Content-Type",
            None,
            a_leg_variant(&uuid(1), |t| t),
            200,
            "missing_content_type",
        ),
        (
            "wrong Content-Type",
            Some("application/json"),
            a_leg_variant(&uuid(2), |t| t),
            200,
            "wrong_content_type",
        ),
        (
            "no Content-Type, no shape",
            None,
            b"hello".to_vec(),
            400,
            "unrecognized_body",
        ),
        (
            "base64 through a form decoder",
            Some("application/x-www-form-base64-encoded"),
            form_decoded.into_bytes(),
            400,
            "base64_form_decoded",
        ),
        (
            "truncated url-encoding",
            Some("application/x-www-form-urlencoded"),
            truncated.into_bytes(),
            400,
            "bad_url_encoding",
        ),
        (
            "JSON not an object",
            Some("application/json"),
            b"[1,2,3]".to_vec(),
            400,
            "json_not_object",
        ),
        (
            "MOS with a decimal comma",
            Some("text/xml"),
            a_leg_variant(&uuid(3), mos("4,44")),
            200,
            "bad_number",
        ),
        (
            "NaN MOS",
            Some("text/xml"),
            a_leg_variant(&uuid(4), mos("nan")),
            200,
            "bad_number",
        ),
        (
            "infinite MOS",
            Some("text/xml"),
            a_leg_variant(&uuid(5), mos("inf")),
            200,
            "bad_number",
        ),
        (
            "negative MOS",
            Some("text/xml"),
            a_leg_variant(&uuid(6), mos("-1.00")),
            200,
            "negative",
        ),
        (
            "MOS above 5",
            Some("text/xml"),
            a_leg_variant(&uuid(7), mos("7.00")),
            200,
            "out_of_range",
        ),
        (
            "uuid of 10 KB",
            Some("text/xml"),
            a_leg_variant(&long_uuid, |t| t),
            400,
            "invalid_uuid",
        ),
        (
            "switchname of 10 KB",
            Some("text/xml"),
            a_leg_variant(&uuid(8), |t| {
                t.replace(
                    "switchname=\"fs-edge-01\"",
                    &format!("switchname=\"{}\"", "s".repeat(10_240)),
                )
            }),
            200,
            "too_long",
        ),
    ];
    let mut rejected = 0;
    let mut applied = 1.0;
    for (case, ct, body, status, reason) in &rows {
        let r = c
            .post_typed(&format!("{FS}?switch=fallback"), *ct, body.clone())
            .await;
        assert_eq!(r.status, *status, "{case}: {}", r.body);
        if *status == 400 {
            rejected += 1;
            assert!(
                !r.body.trim().contains('\n') && r.body.len() < 300,
                "{case}: one line: {}",
                r.body
            );
            let s = c.scrape().await;
            assert_eq!(
                s.get(
                    "cdr_exporter_batches_rejected_total",
                    &[("source", "freeswitch"), ("reason", reason)]
                ),
                Some(1.0),
                "{case}"
            );
        } else {
            applied += 1.0;
            let s = c.scrape().await;
            assert!(
                s.sum("freeswitch_cdr_invalid_fields_total", &[("reason", reason)]) >= 1.0,
                "{case}: {reason} counted"
            );
        }
    }
    let s = c.scrape().await;
    assert_eq!(
        s.sum("freeswitch_cdr_legs_total", &[]),
        applied,
        "every accepted leg counted"
    );
    assert_eq!(
        s.get(
            "freeswitch_cdr_leg_mos_unavailable_total",
            &[("switch", "fs-edge-01"), ("reason", "invalid_values")]
        ),
        Some(5.0),
        "the five bad MOS values"
    );
    // The 10 KB switchname is not a label: the receiver URI's ?switch= stands in.
    assert!(s.sum("freeswitch_cdr_legs_total", &[("switch", "fallback")]) == 1.0);
    assert_labels_bounded(&s);
    let files = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(files, rejected, "every refused body quarantined");
}

#[tokio::test]
async fn rtpengine_reports_are_applied_once() {
    let (server, _dir) = server().await;
    let mut c = Conn::open(server.addr).await;
    let body = rtp_fixture("kamailio-5.6-bye.json");
    for _ in 0..2 {
        let r = c
            .post_typed(KAM, Some("application/json"), body.clone())
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = c
        .post_typed(KAM, Some("application/json"), rtp_fixture("no-mos.json"))
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .post_typed(KAM, Some("application/json"), rtp_fixture("numbers.json"))
        .await;
    assert_eq!(r.status, 200);
    let s = c.scrape().await;
    let n = ("node", "kamailio-1");
    assert_eq!(
        s.get("kamailio_rtpengine_calls_total", &[n, ("event", "bye")]),
        Some(1.0)
    );
    assert_eq!(
        s.get("kamailio_rtpengine_reports_duplicate_total", &[n]),
        Some(1.0)
    );
    assert_eq!(s.get("kamailio_rtpengine_call_mos_sum", &[n]), Some(3.5));
    assert_eq!(
        s.get("kamailio_rtpengine_call_mos_min_sum", &[n]),
        Some(3.4)
    );
    assert!(close(
        s.get("kamailio_rtpengine_call_packet_loss_ratio_sum", &[n])
            .unwrap(),
        0.08
    ));
    assert!(close(
        s.get("kamailio_rtpengine_call_jitter_seconds_sum", &[n])
            .unwrap(),
        0.010
    ));
    assert!(close(
        s.get("kamailio_rtpengine_call_roundtrip_seconds_sum", &[n])
            .unwrap(),
        0.039924
    ));
    assert!(close(
        s.get("kamailio_rtpengine_call_estimated_mos_sum", &[n])
            .unwrap(),
        simplified_mos(39.924, 10.0, 8.0)
    ));
    let e = ("node", "e2e-native");
    assert_eq!(
        s.get(
            "kamailio_rtpengine_call_mos_unavailable_total",
            &[e, ("reason", "not_measured")]
        ),
        Some(1.0)
    );
    assert_eq!(s.sum("kamailio_rtpengine_call_mos_count", &[e]), 0.0);
    // JSON numbers and `m:ss` given as seconds: accepted, the bad `at` counted.
    assert_eq!(
        s.get("kamailio_rtpengine_call_mos_sum", &[("node", "n")]),
        Some(4.3)
    );
    assert_eq!(s.sum("kamailio_rtpengine_tenant_calls_total", &[]), 3.0);
}

/// A report with `fields` beside call_id and node.
fn report(call_id: &str, node: &str, fields: &str) -> Vec<u8> {
    let sep = if fields.is_empty() { "" } else { "," };
    format!(
        r#"{{"call_id":{},"node":{},"from_tag":"f","to_tag":"t"{sep}{fields}}}"#,
        serde_json::json!(call_id),
        serde_json::json!(node)
    )
    .into_bytes()
}

#[tokio::test]
async fn rtpengine_bad_input_is_refused_or_counted_and_loses_nothing() {
    let (server, dir) = server().await;
    let mut c = Conn::open(server.addr).await;
    let r = c
        .post_typed(
            KAM,
            Some("application/json"),
            report("good", "k1", r#""mos_average":"4.3""#),
        )
        .await;
    assert_eq!(r.status, 200);
    let long = "x".repeat(10_240);
    let rows: Vec<Row> = vec![
        (
            "missing Content-Type",
            None,
            report("c1", "k1", r#""mos_average":"4.1""#),
            200,
            "missing_content_type",
        ),
        (
            "wrong Content-Type",
            Some("text/plain"),
            report("c2", "k1", r#""mos_average":"4.1""#),
            200,
            "wrong_content_type",
        ),
        (
            "not JSON",
            Some("application/json"),
            b"mos=4.3".to_vec(),
            400,
            "not_json",
        ),
        (
            "JSON not an object",
            Some("application/json"),
            b"[\"mos_average\", 4.3]".to_vec(),
            400,
            "not_an_object",
        ),
        (
            "no call_id",
            Some("application/json"),
            br#"{"mos_average":"4.3"}"#.to_vec(),
            400,
            "missing_call_id",
        ),
        (
            "number with a comma",
            Some("application/json"),
            report("c3", "k1", r#""mos_average":"4,3""#),
            200,
            "decimal_comma",
        ),
        (
            "NaN MOS",
            Some("application/json"),
            report("c4", "k1", r#""mos_average":"NaN""#),
            200,
            "not_finite",
        ),
        (
            "infinite MOS",
            Some("application/json"),
            report("c5", "k1", r#""mos_min":"inf""#),
            200,
            "not_finite",
        ),
        (
            "negative MOS",
            Some("application/json"),
            report("c6", "k1", r#""mos_average":"-4.3""#),
            200,
            "negative",
        ),
        (
            "MOS above 5",
            Some("application/json"),
            report("c7", "k1", r#""mos_average":7.5"#),
            200,
            "out_of_range",
        ),
        (
            "call_id of 10 KB",
            Some("application/json"),
            report(&long, "k1", r#""mos_average":"3.9""#),
            200,
            "too_long",
        ),
        (
            "node of 10 KB",
            Some("application/json"),
            report("c8", &long, r#""mos_average":"3.9""#),
            200,
            "too_long",
        ),
    ];
    let mut rejected = 0;
    for (case, ct, body, status, reason) in &rows {
        let r = c
            .post_typed(&format!("{KAM}?node=fallback"), *ct, body.clone())
            .await;
        assert_eq!(r.status, *status, "{case}: {}", r.body);
        let s = c.scrape().await;
        if *status == 400 {
            rejected += 1;
            assert_eq!(
                s.get(
                    "cdr_exporter_batches_rejected_total",
                    &[("source", "kamailio"), ("reason", reason)]
                ),
                Some(1.0),
                "{case}"
            );
        } else {
            assert!(
                s.sum(
                    "kamailio_rtpengine_report_invalid_fields_total",
                    &[("reason", reason)]
                ) >= 1.0,
                "{case}: {reason} counted"
            );
        }
    }
    // The 10 KB call_id is kept as a digest: its retry is still recognised.
    let again = report(&long, "k1", r#""mos_average":"3.9""#);
    assert_eq!(
        c.post_typed(KAM, Some("application/json"), again)
            .await
            .status,
        200
    );
    let s = c.scrape().await;
    let k1 = ("node", "k1");
    assert_eq!(
        s.get("kamailio_rtpengine_reports_duplicate_total", &[k1]),
        Some(1.0)
    );
    assert_eq!(
        s.sum("kamailio_rtpengine_calls_total", &[]),
        10.0,
        "every accepted report counted"
    );
    assert_eq!(
        s.get(
            "kamailio_rtpengine_call_mos_unavailable_total",
            &[k1, ("reason", "invalid_values")]
        ),
        Some(5.0),
        "comma, NaN, infinite minimum, negative, 7.5"
    );
    assert_eq!(
        s.get("kamailio_rtpengine_call_mos_count", &[("node", "fallback")]),
        Some(1.0)
    );
    assert_labels_bounded(&s);
    let files = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(files, rejected);
}

/// The shipped FreeSWITCH configs: well-formed, only keys mod_xml_cdr / mod_json_cdr read
/// (`mod_xml_cdr.c`, `mod_json_cdr.c`), aimed at the default path, with a bounded timeout.
#[test]
fn shipped_freeswitch_configs_use_real_keys_and_our_path() {
    use quick_xml::events::Event;
    let keys = [
        "url",
        "cred",
        "auth-scheme",
        "encode",
        "encode-values",
        "retries",
        "delay",
        "timeout",
        "log-dir",
        "err-log-dir",
        "log-http-and-disk",
        "log-b-leg",
        "prefix-a-leg",
        "disable-100-continue",
        "rotate",
        "enable-cacert-check",
        "enable-ssl-verifyhost",
        "ssl-cert-path",
        "ssl-key-path",
        "ssl-key-password",
        "ssl-version",
        "ssl-cacert-file",
        "cookie-file",
    ];
    let default_path = cdr_exporter::config::Config::default().freeswitch_path;
    for file in ["xml_cdr.conf.xml", "json_cdr.conf.xml"] {
        let path = format!("{}/examples/freeswitch/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut r = quick_xml::Reader::from_str(&text);
        let mut params = BTreeMap::new();
        loop {
            match r.read_event().unwrap_or_else(|e| panic!("{file}: {e}")) {
                Event::Eof => break,
                Event::Empty(e) | Event::Start(e) if e.name().as_ref() == "param" => {
                    let attr = |n: &str| {
                        e.try_get_attribute(n)
                            .unwrap()
                            .map(|a| {
                                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                    .unwrap()
                                    .into_owned()
                            })
                            .unwrap_or_else(|| panic!("{file}: param without {n}"))
                    };
                    params.insert(attr("name"), attr("value"));
                }
                _ => {}
            }
        }
        for k in params.keys() {
            assert!(
                keys.contains(&k.as_str()),
                "{file}: {k} is not a FreeSWITCH key"
            );
        }
        let url: hyper::Uri = params["url"].parse().unwrap();
        assert_eq!(url.path(), default_path, "{file}");
        assert!(
            params["timeout"].parse::<u32>().unwrap() > 0,
            "{file}: bounded timeout"
        );
        assert!(["true", "false", "base64", "textxml"].contains(&params["encode"].as_str()));
        assert_eq!(params["log-b-leg"], "true", "{file}: B-legs too");
        assert!(
            !params["err-log-dir"].is_empty(),
            "{file}: failed posts kept for import"
        );
    }
}

/// The dedupe memories live in the snapshot and come back from the journal: a retry that
/// arrives after a restart (a clean one, or a crash with only the journal) is still a
/// duplicate, for FreeSWITCH and for rtpengine.
#[tokio::test]
async fn dedupe_memories_survive_a_restart_and_a_crash() {
    async fn post_leg_and_report(c: &mut Conn) {
        let r = c
            .post_typed(FS, Some("text/xml"), fs_fixture("a-leg-good.xml"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let report = rtp_fixture("kamailio-5.6-bye.json");
        let r = c.post_typed(KAM, Some("application/json"), report).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    post_leg_and_report(&mut Conn::open(server.addr).await).await;
    server.stop().await.unwrap();
    for restart in ["clean", "crash"] {
        let server = Server::start(test_config(dir.path())).await;
        let mut c = Conn::open(server.addr).await;
        post_leg_and_report(&mut c).await;
        let s = c.scrape().await;
        let n = if restart == "clean" { 1.0 } else { 2.0 };
        assert_eq!(
            s.sum("freeswitch_cdr_legs_total", &[("switch", "fs-edge-01")]),
            1.0,
            "{restart}"
        );
        assert_eq!(
            s.get(
                "freeswitch_cdr_duplicates_total",
                &[("switch", "fs-edge-01")]
            ),
            Some(n),
            "{restart}"
        );
        let node = ("node", "kamailio-1");
        assert_eq!(
            s.get("kamailio_rtpengine_calls_total", &[node, ("event", "bye")]),
            Some(1.0),
            "{restart}"
        );
        assert_eq!(
            s.get("kamailio_rtpengine_reports_duplicate_total", &[node]),
            Some(n),
            "{restart}"
        );
        drop(c);
        if restart == "clean" {
            // No snapshot at the end of this one: the next start gets the duplicate
            // counted here back from the journal alone.
            server.abort(dir.path()).await;
        } else {
            server.stop().await.unwrap();
        }
    }
}
