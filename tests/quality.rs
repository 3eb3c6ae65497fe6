//! Call quality through the real server: MOS histograms equal the mos-model.md vectors, and
//! loss, alarm, codec, video, encryption and usage metrics equal what the records say.

mod common;

use cdr_exporter::config::{CodecValues, Config};
use common::*;

const CB: &str = "158ba4f7-70eb-4a35-982c-71d4f1674277";
const SESSION: &str = "5e550000-0000-4000-8000-000000000001";
const MOS_BUCKETS: [f64; 8] = [1.0, 2.0, 2.6, 3.1, 3.6, 4.0, 4.3, 4.5];

/// A callLegEnd with rx audio `codec` and burst/gap statistics (None = no packetStatistics).
fn leg_end(i: u64, codec: &str, stats: Option<(f64, f64, f64, f64)>, duration: f64) -> String {
    let ps = stats
        .map(|(bd, bp, gd, gp)| {
            format!(
                "<packetStatistics><packetLossBursts><duration>{bd}</duration><density>{bp}</density></packetLossBursts>\
                 <packetGap><duration>{gd}</duration><density>{gp}</density></packetGap></packetStatistics>"
            )
        })
        .unwrap_or_default();
    format!(
        "<record type=\"callLegEnd\" time=\"2024-01-01T00:00:00Z\" correlatorIndex=\"{i}\">\
         <callLeg id=\"10000000-0000-4000-8000-{i:012}\"><reason>remoteTeardown</reason><remoteTeardown>true</remoteTeardown>\
         <durationSeconds>{duration}</durationSeconds><rxAudio><codec>{codec}</codec>{ps}</rxAudio></callLeg></record>"
    )
}

fn batch(records: &[String]) -> Vec<u8> {
    format!(
        "<records session=\"{SESSION}\" callBridge=\"{CB}\">{}</records>",
        records.concat()
    )
    .into_bytes()
}

fn assert_close(actual: Option<f64>, expected: f64, what: &str) {
    let a = actual.unwrap_or_else(|| panic!("{what}: no sample"));
    assert!(
        (a - expected).abs() < 1e-3,
        "{what}: got {a}, expected {expected}"
    );
}

/// Checks the MOS histograms for the legs, by Call Bridge and by tenant (`unknown`: their
/// calls were never seen): both see every leg.
fn assert_mos_histogram(s: &Scrape, expected: &[f64]) {
    for (family, label) in [
        ("cms_call_leg_mos", ("call_bridge", CB)),
        ("cms_tenant_call_leg_mos", ("tenant", "unknown")),
    ] {
        let count = s.get(&format!("{family}_count"), &[label]);
        assert_eq!(count, Some(expected.len() as f64), "{family}");
        let sum = s.get(&format!("{family}_sum"), &[label]);
        assert_close(sum, expected.iter().sum(), "mos sum");
        let bucket = |le: &str| s.get(&format!("{family}_bucket"), &[label, ("le", le)]);
        for b in MOS_BUCKETS {
            let le = format!("{b:?}");
            let want = expected.iter().filter(|m| **m <= b).count() as f64;
            assert_eq!(bucket(&le), Some(want), "{family} bucket le={le}");
        }
        assert_eq!(bucket("+Inf"), Some(expected.len() as f64), "{family}");
    }
}

#[tokio::test]
async fn mos_histogram_matches_the_model_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    // (codec, burst duration, burst density, gap duration, gap density) → MOS, from mos-model.md.
    let cases: &[(&str, f64, f64, f64, f64, f64)] = &[
        ("g711u", 0.0, 0.0, 60.0, 0.0, 4.4093),
        ("g711u", 0.0, 0.0, 60.0, 1.0, 4.3281),
        ("g711u", 0.0, 0.0, 60.0, 2.0, 4.2348),
        ("g711u", 0.0, 0.0, 60.0, 5.0, 3.9228),
        ("g711a", 0.0, 0.0, 60.0, 10.0, 3.4109),
        ("g711u", 0.0, 0.0, 60.0, 20.0, 2.6313),
        ("g729", 0.0, 0.0, 60.0, 0.0, 4.1044),
        ("g729", 0.0, 0.0, 60.0, 1.0, 3.9462),
        ("g729", 0.0, 0.0, 60.0, 2.0, 3.7873),
        ("g729", 0.0, 0.0, 60.0, 5.0, 3.3396),
        ("g711u", 2.0, 30.0, 18.0, 1.0, 4.1902),
        // Wideband codecs are scored on the narrowband scale like G.711 with PLC.
        ("opus", 0.0, 0.0, 60.0, 2.0, 4.2348),
    ];
    let recs: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (codec, bd, bp, gd, gp, _))| {
            leg_end(i as u64, codec, Some((*bd, *bp, *gd, *gp)), 60.0)
        })
        .collect();
    assert_eq!(c.post("/cdr", batch(&recs)).await.status, 200);
    let s = c.scrape().await;
    let expected: Vec<f64> = cases.iter().map(|c| c.5).collect();
    assert_mos_histogram(&s, &expected);
    assert_eq!(s.sum("cms_call_leg_mos_unavailable_total", &[]), 0.0);

    // Loss ratio: gap-only legs lose their gap density; the burst/gap leg (30 % for 2 s,
    // 1 % for 18 s) loses (30*2 + 1*18) / 20 = 3.9 %.
    let losses: Vec<f64> = cases
        .iter()
        .map(|(_, bd, bp, gd, gp, _)| (bd * bp + gd * gp) / (bd + gd) / 100.0)
        .collect();
    let l = [("call_bridge", CB), ("media", "audio")];
    assert_eq!(
        s.get("cms_call_leg_packet_loss_ratio_count", &l),
        Some(cases.len() as f64)
    );
    assert_close(
        s.get("cms_call_leg_packet_loss_ratio_sum", &l),
        losses.iter().sum(),
        "loss sum",
    );
    assert!((losses[10] - 0.039).abs() < 1e-12);
    let le = |b: &str| {
        s.get(
            "cms_call_leg_packet_loss_ratio_bucket",
            &[l[0], l[1], ("le", b)],
        )
    };
    assert_eq!(le("0.001"), Some(2.0), "the two loss-free legs");
    assert_eq!(
        le("0.05"),
        Some(losses.iter().filter(|x| **x <= 0.05).count() as f64)
    );

    // Codec mix by time: every leg lasted 60 s.
    let codec = |c: &str| {
        s.get(
            "cms_call_leg_media_seconds_total",
            &[
                ("call_bridge", CB),
                ("media", "audio"),
                ("direction", "rx"),
                ("codec", c),
            ],
        )
    };
    assert_eq!(codec("g711u"), Some(6.0 * 60.0));
    assert_eq!(codec("g729"), Some(4.0 * 60.0));
    assert_eq!(codec("opus"), Some(60.0));
    assert_eq!(
        s.sum(
            "cms_call_leg_media_streams_total",
            &[("codec", "g729"), ("direction", "rx")]
        ),
        4.0
    );
    // The impairment values in force are exposed.
    assert_eq!(
        s.get(
            "cdr_exporter_mos_codec_impairment",
            &[("codec", "g729"), ("parameter", "ie")]
        ),
        Some(11.0)
    );
    assert_eq!(
        s.get(
            "cdr_exporter_mos_codec_impairment",
            &[("codec", "g711u"), ("parameter", "bpl")]
        ),
        Some(25.1)
    );
    assert_eq!(
        s.get("cdr_exporter_mos_assumed_delay_seconds", &[]),
        Some(0.0)
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn legs_without_usable_statistics_are_unavailable_never_perfect() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    let no_audio = "<record type=\"callLegEnd\" time=\"2024-01-01T00:00:00Z\" correlatorIndex=\"3\">\
        <callLeg id=\"10000000-0000-4000-8000-000000000003\"><reason>error</reason><remoteTeardown>false</remoteTeardown>\
        <durationSeconds>5</durationSeconds></callLeg></record>"
        .to_string();
    let recs = vec![
        leg_end(0, "g711u", None, 30.0),
        leg_end(1, "g711u", Some((0.0, 0.0, 10.0, f64::NAN)), 30.0),
        leg_end(2, "g711u", Some((1.0, 130.0, 10.0, 1.0)), 30.0),
        no_audio,
        leg_end(4, "g711u", Some((0.0, 0.0, 29.0, 0.0)), 30.0),
    ];
    assert_eq!(c.post("/cdr", batch(&recs)).await.status, 200);
    let s = c.scrape().await;
    let un = |r: &str| {
        s.get(
            "cms_call_leg_mos_unavailable_total",
            &[("call_bridge", CB), ("reason", r)],
        )
    };
    assert_eq!(un("no_packet_statistics"), Some(1.0));
    assert_eq!(un("invalid_values"), Some(2.0));
    assert_eq!(un("no_audio"), Some(1.0));
    assert_eq!(
        s.get(
            "cms_tenant_call_leg_mos_unavailable_total",
            &[("tenant", "unknown")]
        ),
        Some(4.0)
    );
    assert_mos_histogram(&s, &[4.4093]);
    // The legs still ended: statistics do not decide that.
    assert_eq!(s.sum("cms_call_legs_ended_total", &[]), 5.0);
    assert_eq!(s.sum("cdr_exporter_records_invalid_total", &[]), 0.0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn assumed_delay_and_codec_overrides_change_the_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: Config = test_config(dir.path());
    cfg.mos.assumed_delay_ms = 200.0;
    cfg.mos.codecs.insert(
        "g722".into(),
        CodecValues {
            ie: 11.0,
            bpl: 19.0,
        },
    );
    let server = Server::start(cfg).await;
    let mut c = Conn::open(server.addr).await;
    let recs = vec![
        leg_end(0, "g711u", Some((0.0, 0.0, 60.0, 0.0)), 60.0),
        leg_end(1, "g722", Some((0.0, 0.0, 60.0, 0.0)), 60.0),
    ];
    assert_eq!(c.post("/cdr", batch(&recs)).await.status, 200);
    let s = c.scrape().await;
    // Ta 200 ms: R = 90.1556 → 4.3428; g722 overridden to G.729A values: R = 93.2 - 2.9444 - 11.
    let r = 93.2 - (93.2 - 90.1556) - 11.0;
    let mos_g722 = 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r);
    assert_mos_histogram(&s, &[4.3428, mos_g722]);
    assert_eq!(
        s.get("cdr_exporter_mos_assumed_delay_seconds", &[]),
        Some(0.2)
    );
    assert_eq!(
        s.get(
            "cdr_exporter_mos_codec_impairment",
            &[("codec", "g722"), ("parameter", "ie")]
        ),
        Some(11.0)
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn alarms_video_encryption_and_usage_from_both_alarm_forms() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    // The same leg end with alarms as attributes and as elements (different sessions).
    assert_eq!(
        c.post("/cdr", fixture("alarms-attributes.xml"))
            .await
            .status,
        200
    );
    let elements = String::from_utf8(fixture("alarms-elements.xml")).unwrap();
    let session = elements
        .split("session=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let other = elements.replace(&session, "5e550000-0000-4000-8000-0000000000ee");
    assert_eq!(
        c.post("/cdr?call_bridge=second", other.into_bytes())
            .await
            .status,
        200
    );
    let s = c.scrape().await;
    // durationSeconds 640: packetLoss 12.5 % = 80 s, excessiveJitter 3 % = 19.2 s, per leg.
    let secs = |a: &str| s.sum("cms_call_leg_alarm_seconds_total", &[("alarm", a)]);
    assert_close(Some(secs("packetLoss")), 160.0, "packetLoss seconds");
    assert_close(
        Some(secs("excessiveJitter")),
        38.4,
        "excessiveJitter seconds",
    );
    assert_eq!(
        s.sum("cms_call_legs_with_alarm_total", &[("alarm", "packetLoss")]),
        2.0
    );
    assert_eq!(
        s.sum(
            "cms_call_legs_with_alarm_total",
            &[("alarm", "excessiveJitter")]
        ),
        2.0
    );
    assert_eq!(
        s.sum(
            "cms_call_legs_with_alarm_total",
            &[("alarm", "highRoundTripTime")]
        ),
        0.0
    );
    assert_eq!(
        s.sum(
            "cms_call_legs_encryption_total",
            &[("encryption", "unencrypted")]
        ),
        2.0
    );
    // mainVideoViewer 100 %, mainVideoContributor 98.4 % of 640 s.
    assert_close(
        Some(s.sum(
            "cms_call_leg_media_usage_seconds_total",
            &[("usage", "main_video_viewer")],
        )),
        1280.0,
        "viewer",
    );
    assert_close(
        Some(s.sum(
            "cms_call_leg_media_usage_seconds_total",
            &[("usage", "main_video_contributor")],
        )),
        2.0 * 629.76,
        "contributor",
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn chapter6_codecs_and_video_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(test_config(dir.path())).await;
    let mut c = Conn::open(server.addr).await;
    c.post_ch6(1..=6).await;
    let s = c.scrape().await;
    let streams = |m: &str, d: &str, codec: &str| {
        s.sum(
            "cms_call_leg_media_streams_total",
            &[("media", m), ("direction", d), ("codec", codec)],
        )
    };
    assert_eq!(streams("audio", "rx", "g722"), 1.0);
    assert_eq!(streams("audio", "rx", "g711u"), 1.0);
    assert_eq!(streams("audio", "tx", "g722_1c"), 2.0);
    assert_eq!(streams("video", "rx", "h264"), 2.0);
    assert_eq!(
        s.sum(
            "cms_call_leg_media_seconds_total",
            &[("media", "video"), ("direction", "tx"), ("codec", "h264")]
        ),
        20.0
    );
    // rx heights 448 and 720; tx 720 and 576.
    let h = |d: &str, le: &str| {
        s.get(
            "cms_call_leg_video_max_height_pixels_bucket",
            &[("call_bridge", CB), ("direction", d), ("le", le)],
        )
    };
    assert_eq!(h("rx", "480.0"), Some(1.0));
    assert_eq!(h("rx", "720.0"), Some(2.0));
    assert_eq!(h("tx", "576.0"), Some(1.0));
    assert_eq!(
        s.get(
            "cms_call_leg_video_max_height_pixels_sum",
            &[("call_bridge", CB), ("direction", "tx")]
        ),
        Some(1296.0)
    );
    // Loss-free audio on both legs: the no-loss MOS, attributed to the call's tenant.
    assert_eq!(
        s.get("cms_tenant_call_leg_mos_count", &[("tenant", "none")]),
        Some(2.0)
    );
    assert_close(
        s.get("cms_tenant_call_leg_mos_sum", &[("tenant", "none")]),
        2.0 * 4.4093,
        "ch6 mos",
    );
    server.stop().await.unwrap();
}
