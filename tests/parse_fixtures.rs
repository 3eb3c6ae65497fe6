//! The CDR parser against every fixture in `tests/fixtures/` and the facts that
//! `tests/fixtures/README.md` states for it, plus inline bodies for the edge cases the
//! fixtures do not cover (entities, number forms, limits, envelope errors).
//!
//! Times are compared as Unix seconds computed independently of the parser
//! (`date -u -d <time> +%s`), ids through `Id::parse` of the literal GUID.

use std::borrow::Cow;

use cdr_exporter::cdr::{
    self, AlarmType, AudioCodec, AudioStream, Batch, CallEnd, CallId, CallLegEnd, CallLegId,
    CallLegStart, CallLegUpdate, CallRef, CallStart, CallType, CoSpaceId, ConfirmationStatus,
    Direction, EndReason, Entry, Header, Id, Invalid, InvalidReason, LegState, LegSubType, LegType,
    LossPeriod, LyncSubType, MediaUsage, ObjectRef, PacketStatistics, ParseError, Record,
    RecordType, RecordingEnd, RecordingId, RecordingStart, SessionId, StreamingEnd, StreamingId,
    StreamingStart, Text, Timestamp, VideoCodec, VideoStream,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `CB 158ba4f7` of the README.
const CB: &str = "158ba4f7-70eb-4a35-982c-71d4f1674277";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn parse_ok(body: &[u8]) -> Batch<'_> {
    match cdr::parse(body) {
        Ok(b) => b,
        Err(e) => panic!("expected a batch, got {e:?} ({e})"),
    }
}

fn id(s: &str) -> Id {
    Id::parse(s).unwrap_or_else(|| panic!("bad id literal {s:?}"))
}
fn call_id(s: &str) -> CallId {
    CallId(id(s))
}
fn leg_id(s: &str) -> CallLegId {
    CallLegId(id(s))
}
fn session(s: &str) -> SessionId {
    SessionId(id(s))
}
fn t(s: &'static str) -> Option<Text<'static>> {
    Some(Cow::Borrowed(s))
}

/// A fully specified header: type, time (Unix seconds), correlatorIndex, recordIndex.
fn hdr(record_type: RecordType, unix: i64, ci: u64, ri: Option<u64>) -> Header {
    Header {
        record_type,
        time: Some(Timestamp(unix as f64)),
        correlator_index: Some(ci),
        record_index: ri,
        num_preceding_missing: None,
    }
}

fn loss(duration: f64, density: f64) -> LossPeriod {
    LossPeriod {
        duration: Some(duration),
        density: Some(density),
    }
}

fn stats(bursts: (f64, f64), gap: (f64, f64)) -> Option<PacketStatistics> {
    Some(PacketStatistics {
        packet_loss_bursts: loss(bursts.0, bursts.1),
        packet_gap: loss(gap.0, gap.1),
    })
}

fn audio(codec: AudioCodec, packet_statistics: Option<PacketStatistics>) -> Option<AudioStream> {
    Some(AudioStream {
        codec: Some(codec),
        packet_statistics,
    })
}

fn video(
    codec: VideoCodec,
    w: u64,
    h: u64,
    packet_statistics: Option<PacketStatistics>,
) -> Option<VideoStream> {
    Some(VideoStream {
        codec: Some(codec),
        max_size_width: Some(w),
        max_size_height: Some(h),
        packet_statistics,
    })
}

fn alarm(alarm_type: AlarmType, pct: f64) -> cdr::Alarm {
    cdr::Alarm {
        alarm_type: Some(alarm_type),
        duration_percentage: Some(pct),
    }
}

/// The typed body of an entry, which must be `Ok(Record::$variant)`.
macro_rules! rec {
    ($entry:expr, $variant:ident) => {
        match &$entry.body {
            Ok(Record::$variant(r)) => r,
            other => panic!(
                "expected Ok(Record::{}), got {:?}",
                stringify!($variant),
                other
            ),
        }
    };
}

/// The one record of a single-record fixture.
fn only<'b, 'a>(batch: &'b Batch<'a>) -> &'b Entry<'a> {
    assert_eq!(batch.records.len(), 1, "records: {:#?}", batch.records);
    &batch.records[0]
}

fn assert_envelope(batch: &Batch<'_>, session_guid: &str, call_bridge: Option<&str>) {
    assert_eq!(batch.session, session(session_guid));
    assert_eq!(batch.call_bridge.as_deref(), call_bridge);
}

// ---------------------------------------------------------------------------------------------
// Per-record-type fixtures: every field
// ---------------------------------------------------------------------------------------------

const PER_TYPE_SESSION: &str = "11111111-2222-4333-8444-555555555555";
const PER_TYPE_CALL: &str = "f37c893c-1b9c-467e-a1bd-9a4e67529acf";
const PER_TYPE_LEG: &str = "440bb116-c2d7-4980-aabd-4600aa098297";

#[test]
fn record_call_start_every_field() {
    let body = fixture("record-callStart.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, PER_TYPE_SESSION, Some(CB));
    let e = only(&batch);
    assert_eq!(e.header, hdr(RecordType::CallStart, 1710406800, 0, Some(1)));
    let r = rec!(e, CallStart);
    // The id is the GUID itself, not a hash of the text.
    assert_eq!(r.id, CallId(Id(0xf37c893c_1b9c_467e_a1bd_9a4e67529acf)));
    assert_eq!(
        *r,
        CallStart {
            id: call_id(PER_TYPE_CALL),
            name: t("Weekly Engineering Sync"),
            co_space: Some(CoSpaceId(id("6dbe4288-6c9b-45a4-b1aa-9d94196c3ad0"))),
            owner_name: t("alice@example.com"),
            tenant: t("e32a9218-753c-4aa2-9253-2eb274563735"),
            cdr_tag: t("cost-centre-4711"),
            call_type: Some(CallType::CoSpace),
            call_correlator: Some(cdr::CallCorrelator(id(
                "b981f746-6eb1-442e-80d3-e38a1528d93d"
            ))),
            co_space_meta_data_configured: Some(true),
        }
    );
}

#[test]
fn record_call_end_every_field() {
    let body = fixture("record-callEnd.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, PER_TYPE_SESSION, Some(CB));
    let e = only(&batch);
    assert_eq!(e.header, hdr(RecordType::CallEnd, 1710406860, 1, Some(2)));
    assert_eq!(
        *rec!(e, CallEnd),
        CallEnd {
            id: call_id(PER_TYPE_CALL),
            call_legs_completed: Some(5),
            call_legs_max_active: Some(3),
            duration_seconds: Some(1834.0),
            endpoint_recorded: Some(false),
        }
    );
}

#[test]
fn record_call_leg_start_every_field() {
    let body = fixture("record-callLegStart.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, PER_TYPE_SESSION, Some(CB));
    let e = only(&batch);
    assert_eq!(
        e.header,
        hdr(RecordType::CallLegStart, 1710406920, 2, Some(3))
    );
    assert_eq!(
        *rec!(e, CallLegStart),
        CallLegStart {
            id: leg_id(PER_TYPE_LEG),
            display_name: t("Alice Example"),
            local_address: t("eng-sync@meet.example.com"),
            remote_address: t("alice@example.com"),
            remote_party: t("alice@example.com"),
            cdr_tag: t("leg-tag-alice"),
            guest_connection: Some(false),
            recording: Some(false),
            streaming: Some(false),
            leg_type: Some(LegType::Sip),
            sub_type: Some(LegSubType::Lync),
            lync_sub_type: Some(LyncSubType::AudioVideo),
            direction: Some(Direction::Incoming),
            call: Some(call_id(PER_TYPE_CALL)),
            owner_id: t("8431ba20-e665-4a08-8358-77ea3b1bac66"),
            sip_call_id: t("7f213767-33f7-4297-a681-948074a51931"),
            group_id: t("e224ccda-2fb1-4a6a-952f-3bffae40b32f"),
            replaces_sip_call_id: t("76734fb2-c30f-4d6d-a3e7-f9a1c98ef360"),
            can_move: Some(true),
            moved_call_leg: Some(leg_id("01db1e4c-89cc-44e0-b985-7786199dfd2a")),
            moved_call_leg_call_bridge: t("a6266f66-e2be-449e-b25b-affb52095599"),
            confirmation_status: Some(ConfirmationStatus::NotRequired),
        }
    );
}

#[test]
fn record_call_leg_update_every_field() {
    let body = fixture("record-callLegUpdate.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, PER_TYPE_SESSION, Some(CB));
    let e = only(&batch);
    assert_eq!(
        e.header,
        hdr(RecordType::CallLegUpdate, 1710406980, 3, Some(4))
    );
    let r = rec!(e, CallLegUpdate);
    // callMove's content is undocumented (README judgment calls): it only must not break
    // parsing, and its children must not leak into the leg's own fields.
    assert_eq!(
        *r,
        CallLegUpdate {
            id: leg_id(PER_TYPE_LEG),
            cdr_tag: t("leg-tag-alice"),
            state: Some(LegState::Connected),
            deactivated: Some(false),
            remote_address: t("alice@example.com"),
            call: Some(CallRef::Call(call_id(PER_TYPE_CALL))),
            owner_id: t("8431ba20-e665-4a08-8358-77ea3b1bac66"),
            sip_call_id: t("7f213767-33f7-4297-a681-948074a51931"),
            group_id: t("e224ccda-2fb1-4a6a-952f-3bffae40b32f"),
            display_name: t("Alice Example"),
            can_move: Some(true),
            confirmation_status: Some(ConfirmationStatus::Confirmed),
            call_move: r.call_move.clone(),
        }
    );
}

#[test]
fn record_call_leg_end_every_field() {
    let body = fixture("record-callLegEnd.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, PER_TYPE_SESSION, Some(CB));
    let e = only(&batch);
    assert_eq!(
        e.header,
        hdr(RecordType::CallLegEnd, 1710407040, 4, Some(5))
    );
    let r = rec!(e, CallLegEnd);
    assert_eq!(
        **r,
        CallLegEnd {
            id: leg_id(PER_TYPE_LEG),
            cdr_tag: t("leg-tag-alice"),
            reason: Some(EndReason::RemoteTeardown),
            remote_teardown: Some(true),
            encrypted_media: Some(true),
            // Present and false: not the same as absent.
            unencrypted_media: Some(false),
            duration_seconds: Some(1800.0),
            activated_duration: Some(1795.0),
            media_usage: MediaUsage {
                main_video_viewer: Some(97.5),
                main_video_contributor: Some(92.1),
                presentation_viewer: Some(41.3),
                presentation_contributor: Some(12.0),
                // mediaUsagePercentages/multistreamVideo, the percentage ...
                multistream_video: Some(88.4),
            },
            // ... and callLeg/multistreamVideo/maxScreens, the container.
            max_screens: Some(2),
            alarms: vec![
                alarm(AlarmType::PacketLoss, 4.2),
                alarm(AlarmType::HighRoundTripTime, 1.5),
            ],
            rx_audio: audio(AudioCodec::Opus, stats((0.320, 12.50), (1799.680, 0.05))),
            tx_audio: audio(AudioCodec::Opus, None),
            rx_video: video(
                VideoCodec::H264,
                1920,
                1080,
                stats((1.104, 8.75), (1798.896, 0.12))
            ),
            tx_video: video(VideoCodec::H264, 1280, 720, None),
            owner_id: t("8431ba20-e665-4a08-8358-77ea3b1bac66"),
            sip_call_id: t("7f213767-33f7-4297-a681-948074a51931"),
            confirmation_status: Some(ConfirmationStatus::Rejected),
        }
    );
}

#[test]
fn record_recording_start_every_field() {
    let body = fixture("record-recordingStart.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, PER_TYPE_SESSION, Some(CB));
    let e = only(&batch);
    assert_eq!(
        e.header,
        hdr(RecordType::RecordingStart, 1710407100, 5, Some(6))
    );
    assert_eq!(
        *rec!(e, RecordingStart),
        RecordingStart {
            id: RecordingId(id("b888e5f0-764e-4ea7-9289-a845f45aa400")),
            path: t("spaces/6dbe4288-6c9b-45a4-b1aa-9d94196c3ad0/20240314090500+0000"),
            recorder_uri: t("sip:recorder@rec.example.com"),
            call: Some(call_id(PER_TYPE_CALL)),
            call_leg: Some(leg_id("c2076056-10b8-4dab-b8b8-7ea8e04b2732")),
        }
    );
}

#[test]
fn record_recording_end_self_closing_object() {
    let body = fixture("record-recordingEnd.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, PER_TYPE_SESSION, Some(CB));
    let e = only(&batch);
    assert_eq!(
        e.header,
        hdr(RecordType::RecordingEnd, 1710407160, 6, Some(7))
    );
    assert_eq!(
        *rec!(e, RecordingEnd),
        RecordingEnd {
            id: RecordingId(id("b888e5f0-764e-4ea7-9289-a845f45aa400")),
        }
    );
}

#[test]
fn record_streaming_start_every_field() {
    let body = fixture("record-streamingStart.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, PER_TYPE_SESSION, Some(CB));
    let e = only(&batch);
    assert_eq!(
        e.header,
        hdr(RecordType::StreamingStart, 1710407220, 7, Some(8))
    );
    assert_eq!(
        *rec!(e, StreamingStart),
        StreamingStart {
            id: StreamingId(id("ee42b7ed-c534-4144-b9ad-641e4d238c30")),
            streamer_uri: t("sip:streamer@stream.example.com"),
            call: Some(call_id(PER_TYPE_CALL)),
            call_leg: Some(leg_id("645a365e-801f-4866-8845-f9176ac0ddef")),
        }
    );
}

#[test]
fn record_streaming_end_empty_open_close_pair() {
    let body = fixture("record-streamingEnd.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, PER_TYPE_SESSION, Some(CB));
    let e = only(&batch);
    assert_eq!(
        e.header,
        hdr(RecordType::StreamingEnd, 1710407280, 8, Some(9))
    );
    assert_eq!(
        *rec!(e, StreamingEnd),
        StreamingEnd {
            id: StreamingId(id("ee42b7ed-c534-4144-b9ad-641e4d238c30")),
        }
    );
}

#[test]
fn per_type_files_share_session_with_consecutive_indices() {
    let files = [
        ("record-callStart.xml", RecordType::CallStart),
        ("record-callEnd.xml", RecordType::CallEnd),
        ("record-callLegStart.xml", RecordType::CallLegStart),
        ("record-callLegUpdate.xml", RecordType::CallLegUpdate),
        ("record-callLegEnd.xml", RecordType::CallLegEnd),
        ("record-recordingStart.xml", RecordType::RecordingStart),
        ("record-recordingEnd.xml", RecordType::RecordingEnd),
        ("record-streamingStart.xml", RecordType::StreamingStart),
        ("record-streamingEnd.xml", RecordType::StreamingEnd),
    ];
    for (i, (file, rt)) in files.into_iter().enumerate() {
        let body = fixture(file);
        let batch = parse_ok(&body);
        assert_envelope(&batch, PER_TYPE_SESSION, Some(CB));
        let e = only(&batch);
        assert_eq!(e.header.record_type, rt, "{file}");
        assert_eq!(e.header.correlator_index, Some(i as u64), "{file}");
        assert_eq!(e.header.record_index, Some(i as u64 + 1), "{file}");
        assert_eq!(e.header.num_preceding_missing, None, "{file}");
        assert!(e.body.is_ok(), "{file}: {:?}", e.body);
    }
}

// ---------------------------------------------------------------------------------------------
// Chapter 6 posts
// ---------------------------------------------------------------------------------------------

const CH6_SESSION: &str = "a865433a-4926-4549-a701-9bb5b93c75e6";
const CH6_CALL: &str = "46d49cb4-8171-4abc-97f5-b88035b1da0a";
const CH6_LEG1: &str = "fc9c85ca-8c41-4a1a-9252-b16977d1e4e1";
const CH6_LEG2: &str = "9cfdb064-3ae9-4b08-a003-6478187f375f";
/// 2015-07-23T07:32:55Z and 2015-07-23T07:33:05Z.
const CH6_T0: i64 = 1437636775;
const CH6_T1: i64 = 1437636785;

fn ch6_bodies() -> Vec<Vec<u8>> {
    (1..=6)
        .map(|i| fixture(&format!("ch6-post{i}.xml")))
        .collect()
}

#[test]
fn ch6_record_types_and_indices_per_post() {
    use RecordType::*;
    let expected: [&[(RecordType, u64)]; 6] = [
        &[(CallLegStart, 0)],
        &[(CallStart, 1), (CallLegUpdate, 2)],
        &[(CallLegStart, 3)],
        &[(CallLegUpdate, 4)],
        &[(CallLegEnd, 5)],
        &[(CallLegEnd, 6), (CallEnd, 7)],
    ];
    let bodies = ch6_bodies();
    for (n, (body, want)) in bodies.iter().zip(expected).enumerate() {
        let batch = parse_ok(body);
        assert_envelope(&batch, CH6_SESSION, Some(CB));
        let got: Vec<(RecordType, Option<u64>, Option<u64>)> = batch
            .records
            .iter()
            .map(|e| {
                (
                    e.header.record_type.clone(),
                    e.header.correlator_index,
                    e.header.record_index,
                )
            })
            .collect();
        let want: Vec<(RecordType, Option<u64>, Option<u64>)> = want
            .iter()
            .map(|(rt, ci)| (rt.clone(), Some(*ci), Some(ci + 1)))
            .collect();
        assert_eq!(got, want, "post {}", n + 1);
        for e in &batch.records {
            assert!(e.body.is_ok(), "post {}: {:?}", n + 1, e.body);
            assert_eq!(e.header.num_preceding_missing, None);
        }
    }
}

#[test]
fn ch6_post1_and_post3_leg_starts_without_call() {
    let b1 = fixture("ch6-post1.xml");
    let batch = parse_ok(&b1);
    let e = only(&batch);
    assert_eq!(e.header, hdr(RecordType::CallLegStart, CH6_T0, 0, Some(1)));
    assert_eq!(
        *rec!(e, CallLegStart),
        CallLegStart {
            id: leg_id(CH6_LEG1),
            remote_party: t("sipclient1@example.com"),
            local_address: t("access1@127.0.0.1"),
            leg_type: Some(LegType::Sip),
            direction: Some(Direction::Incoming),
            group_id: t("18da80f3-8a71-4255-aa90-e1677b99b588"),
            sip_call_id: t("b8a81da5-c24c-43db-ba58-742f587faec8"),
            call: None,
            ..Default::default()
        }
    );

    let b3 = fixture("ch6-post3.xml");
    let batch = parse_ok(&b3);
    let e = only(&batch);
    assert_eq!(e.header, hdr(RecordType::CallLegStart, CH6_T0, 3, Some(4)));
    assert_eq!(
        *rec!(e, CallLegStart),
        CallLegStart {
            id: leg_id(CH6_LEG2),
            remote_party: t("sipclient2@example.com"),
            local_address: t("access2@127.0.0.1"),
            leg_type: Some(LegType::Sip),
            direction: Some(Direction::Incoming),
            group_id: t("3420c93f-f33c-4c9e-be95-d0d1bfb207f0"),
            sip_call_id: t("a939937c-8b5e-4376-92de-97635983d7ef"),
            call: None,
            ..Default::default()
        }
    );
}

#[test]
fn ch6_post2_call_start_and_update() {
    let body = fixture("ch6-post2.xml");
    let batch = parse_ok(&body);
    assert_eq!(batch.records.len(), 2);
    let [start, update] = &batch.records[..] else {
        unreachable!()
    };
    assert_eq!(start.header, hdr(RecordType::CallStart, CH6_T0, 1, Some(2)));
    assert_eq!(
        *rec!(start, CallStart),
        CallStart {
            id: call_id(CH6_CALL),
            name: t("test564_1"),
            call_type: Some(CallType::CoSpace),
            co_space: Some(CoSpaceId(id("50605235-60cf-484a-9fa1-278ad0646243"))),
            call_correlator: Some(cdr::CallCorrelator(id(
                "5f3300c5-ca67-40e0-a503-91baec70dbbe"
            ))),
            tenant: None,
            ..Default::default()
        }
    );
    assert_eq!(
        update.header,
        hdr(RecordType::CallLegUpdate, CH6_T0, 2, Some(3))
    );
    assert_eq!(
        *rec!(update, CallLegUpdate),
        CallLegUpdate {
            id: leg_id(CH6_LEG1),
            state: Some(LegState::Connected),
            call: Some(CallRef::Call(call_id(CH6_CALL))),
            group_id: t("18da80f3-8a71-4255-aa90-e1677b99b588"),
            sip_call_id: t("b8a81da5-c24c-43db-ba58-742f587faec8"),
            ..Default::default()
        }
    );
}

#[test]
fn ch6_post4_second_leg_joins_call() {
    let body = fixture("ch6-post4.xml");
    let batch = parse_ok(&body);
    let e = only(&batch);
    assert_eq!(e.header, hdr(RecordType::CallLegUpdate, CH6_T0, 4, Some(5)));
    assert_eq!(
        *rec!(e, CallLegUpdate),
        CallLegUpdate {
            id: leg_id(CH6_LEG2),
            state: Some(LegState::Connected),
            call: Some(CallRef::Call(call_id(CH6_CALL))),
            group_id: t("3420c93f-f33c-4c9e-be95-d0d1bfb207f0"),
            sip_call_id: t("a939937c-8b5e-4376-92de-97635983d7ef"),
            ..Default::default()
        }
    );
}

#[test]
fn ch6_post5_call_leg_end_media() {
    let body = fixture("ch6-post5.xml");
    let batch = parse_ok(&body);
    let e = only(&batch);
    assert_eq!(e.header, hdr(RecordType::CallLegEnd, CH6_T1, 5, Some(6)));
    let r = rec!(e, CallLegEnd);
    assert_eq!(
        **r,
        CallLegEnd {
            id: leg_id(CH6_LEG2),
            reason: Some(EndReason::RemoteTeardown),
            remote_teardown: Some(true),
            duration_seconds: Some(10.0),
            media_usage: MediaUsage {
                main_video_viewer: Some(100.0),
                main_video_contributor: Some(100.0),
                ..Default::default()
            },
            unencrypted_media: Some(true),
            encrypted_media: None,
            rx_audio: audio(AudioCodec::G722, stats((0.0, 0.0), (9.701, 0.0))),
            tx_audio: audio(AudioCodec::G722_1c, None),
            rx_video: video(VideoCodec::H264, 768, 448, stats((0.0, 0.0), (8.597, 0.0))),
            tx_video: video(VideoCodec::H264, 1280, 720, None),
            alarms: vec![],
            sip_call_id: t("a939937c-8b5e-4376-92de-97635983d7ef"),
            ..Default::default()
        }
    );
}

#[test]
fn ch6_post6_call_leg_end_media_and_call_end() {
    let body = fixture("ch6-post6.xml");
    let batch = parse_ok(&body);
    assert_eq!(batch.records.len(), 2);
    let [end_leg, end_call] = &batch.records[..] else {
        unreachable!()
    };
    assert_eq!(
        end_leg.header,
        hdr(RecordType::CallLegEnd, CH6_T1, 6, Some(7))
    );
    assert_eq!(
        **rec!(end_leg, CallLegEnd),
        CallLegEnd {
            id: leg_id(CH6_LEG1),
            reason: Some(EndReason::CallDeactivated),
            remote_teardown: Some(false),
            duration_seconds: Some(10.0),
            media_usage: MediaUsage {
                main_video_viewer: Some(100.0),
                main_video_contributor: Some(100.0),
                ..Default::default()
            },
            unencrypted_media: Some(true),
            rx_audio: audio(AudioCodec::G711u, stats((0.0, 0.0), (9.702, 0.0))),
            tx_audio: audio(AudioCodec::G722_1c, None),
            rx_video: video(VideoCodec::H264, 1280, 720, stats((0.0, 0.0), (8.484, 0.0))),
            tx_video: video(VideoCodec::H264, 1024, 576, None),
            sip_call_id: t("b8a81da5-c24c-43db-ba58-742f587faec8"),
            ..Default::default()
        }
    );
    assert_eq!(
        end_call.header,
        hdr(RecordType::CallEnd, CH6_T1, 7, Some(8))
    );
    assert_eq!(
        *rec!(end_call, CallEnd),
        CallEnd {
            id: call_id(CH6_CALL),
            call_legs_completed: Some(2),
            call_legs_max_active: Some(2),
            duration_seconds: Some(10.0),
            endpoint_recorded: None,
        }
    );
}

#[test]
fn ch6_sequence_totals() {
    let bodies = ch6_bodies();
    let batches: Vec<Batch<'_>> = bodies.iter().map(|b| parse_ok(b)).collect();
    let entries: Vec<&Entry<'_>> = batches.iter().flat_map(|b| &b.records).collect();
    assert_eq!(entries.len(), 8);
    let cis: Vec<Option<u64>> = entries.iter().map(|e| e.header.correlator_index).collect();
    assert_eq!(cis, (0..8).map(Some).collect::<Vec<_>>(), "ci 0-7, no gap");

    let count = |rt: RecordType| {
        entries
            .iter()
            .filter(|e| e.header.record_type == rt)
            .count()
    };
    assert_eq!(count(RecordType::CallStart), 1);
    assert_eq!(count(RecordType::CallLegStart), 2);
    assert_eq!(count(RecordType::CallLegUpdate), 2);
    assert_eq!(count(RecordType::CallLegEnd), 2);
    assert_eq!(count(RecordType::CallEnd), 1);

    // Neither callLegStart names the call; both callLegUpdates do.
    for e in &entries {
        match &e.body {
            Ok(Record::CallLegStart(r)) => assert_eq!(r.call, None),
            Ok(Record::CallLegUpdate(r)) => {
                assert_eq!(r.call, Some(CallRef::Call(call_id(CH6_CALL))))
            }
            Ok(_) => {}
            Err(inv) => panic!("invalid record {inv:?}"),
        }
    }

    let ends: Vec<&CallLegEnd<'_>> = entries
        .iter()
        .filter_map(|e| match &e.body {
            Ok(Record::CallLegEnd(r)) => Some(&**r),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 2);
    let reasons: Vec<_> = ends
        .iter()
        .map(|r| (r.reason.clone(), r.remote_teardown))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (Some(EndReason::RemoteTeardown), Some(true)),
            (Some(EndReason::CallDeactivated), Some(false)),
        ]
    );
    let rx: Vec<_> = ends
        .iter()
        .map(|r| r.rx_audio.as_ref().and_then(|a| a.codec.clone()))
        .collect();
    assert_eq!(rx, vec![Some(AudioCodec::G722), Some(AudioCodec::G711u)]);
    let tx: Vec<_> = ends
        .iter()
        .map(|r| r.tx_audio.as_ref().and_then(|a| a.codec.clone()))
        .collect();
    assert_eq!(
        tx,
        vec![Some(AudioCodec::G722_1c), Some(AudioCodec::G722_1c)]
    );
    assert!(ends.iter().all(|r| r.duration_seconds == Some(10.0)));
}

// ---------------------------------------------------------------------------------------------
// Clustered / unclustered, restart, deprecated recordIndex
// ---------------------------------------------------------------------------------------------

#[test]
fn clustered_batch_has_call_bridge() {
    let body = fixture("clustered-batch.xml");
    let batch = parse_ok(&body);
    assert_envelope(
        &batch,
        "c75d6ec4-16c9-4b24-94f4-538d7b4bb3cb",
        Some("6bc64052-6984-4afb-93f2-997c83533053"),
    );
    assert_eq!(batch.records.len(), 4);
    let call = call_id("653886ba-8a42-4f6c-a2bf-36a52dcbee8f");
    let leg = leg_id("658979a3-2058-441c-bc27-060af4f8c8a6");
    let r = &batch.records;
    assert_eq!(
        r[0].header,
        hdr(RecordType::CallStart, 1714654800, 100, Some(101))
    );
    assert_eq!(
        r[1].header,
        hdr(RecordType::CallLegStart, 1714654801, 101, Some(102))
    );
    assert_eq!(
        r[2].header,
        hdr(RecordType::CallLegEnd, 1714655101, 102, Some(103))
    );
    assert_eq!(
        r[3].header,
        hdr(RecordType::CallEnd, 1714655102, 103, Some(104))
    );

    let cs = rec!(r[0], CallStart);
    assert_eq!(cs.id, call);
    assert_eq!(cs.tenant, t("f30f4105-c58f-419f-a4e7-6d2d8568caad"));
    assert_eq!(cs.call_type, Some(CallType::CoSpace));
    assert_eq!(
        cs.co_space,
        Some(CoSpaceId(id("4eace09d-712f-46bd-9ab0-9c4cb303adb8")))
    );

    let ls = rec!(r[1], CallLegStart);
    assert_eq!(ls.id, leg);
    assert_eq!(ls.call, Some(call));
    assert_eq!(ls.direction, Some(Direction::Incoming));

    let le = rec!(r[2], CallLegEnd);
    assert_eq!(le.id, leg);
    assert_eq!(le.reason, Some(EndReason::RemoteTeardown));
    assert_eq!(le.remote_teardown, Some(true));
    assert_eq!(le.duration_seconds, Some(300.0));
    assert_eq!(
        le.rx_audio,
        audio(AudioCodec::G711a, stats((0.0, 0.0), (299.8, 0.0)))
    );
    assert_eq!(le.tx_audio, audio(AudioCodec::G711a, None));

    assert_eq!(
        *rec!(r[3], CallEnd),
        CallEnd {
            id: call,
            call_legs_completed: Some(1),
            call_legs_max_active: Some(1),
            duration_seconds: Some(302.0),
            endpoint_recorded: None,
        }
    );
}

#[test]
fn unclustered_batch_has_no_call_bridge() {
    let body = fixture("unclustered-batch.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, "b02263ca-a7b1-4889-b1d4-39f7117b62ce", None);
    assert_eq!(batch.records.len(), 4);
    let call = call_id("55129e69-285d-443f-ae9a-52613356caf0");
    let leg = leg_id("7884f479-7b9e-4217-886f-627b7b99356f");
    let r = &batch.records;
    assert_eq!(
        r[0].header,
        hdr(RecordType::CallStart, 1714659000, 7, Some(8))
    );
    assert_eq!(
        r[1].header,
        hdr(RecordType::CallLegStart, 1714659000, 8, Some(9))
    );
    assert_eq!(
        r[2].header,
        hdr(RecordType::CallLegEnd, 1714659120, 9, Some(10))
    );
    assert_eq!(
        r[3].header,
        hdr(RecordType::CallEnd, 1714659121, 10, Some(11))
    );

    let cs = rec!(r[0], CallStart);
    assert_eq!(cs.id, call);
    assert_eq!(cs.tenant, t("441e38cc-86a9-4764-b95a-020ad7e169af"));
    assert_eq!(cs.call_type, Some(CallType::AdHoc));
    assert_eq!(cs.co_space, None);
    assert_eq!(cs.co_space_meta_data_configured, Some(false));

    let ls = rec!(r[1], CallLegStart);
    assert_eq!(ls.id, leg);
    assert_eq!(ls.direction, Some(Direction::Outgoing));
    assert_eq!(ls.call, Some(call));
    assert_eq!(ls.display_name, t("Carol Example"));

    let le = rec!(r[2], CallLegEnd);
    assert_eq!(le.id, leg);
    assert_eq!(le.reason, Some(EndReason::LocalTeardown));
    assert_eq!(le.remote_teardown, Some(false));
    assert_eq!(le.encrypted_media, Some(true));
    assert_eq!(le.unencrypted_media, None);
    assert_eq!(le.duration_seconds, Some(120.0));
    assert_eq!(le.activated_duration, Some(118.0));

    let ce = rec!(r[3], CallEnd);
    assert_eq!(ce.id, call);
    assert_eq!(ce.call_legs_completed, Some(1));
    assert_eq!(ce.call_legs_max_active, Some(1));
    assert_eq!(ce.duration_seconds, Some(121.0));
}

#[test]
fn restart_session2_new_session_same_call_bridge() {
    let body = fixture("restart-session2.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, "902821fa-0c5b-44d1-a26e-db0afb172aed", Some(CB));
    assert_ne!(batch.session, session(CH6_SESSION));
    assert_eq!(batch.records.len(), 3);
    let r = &batch.records;
    assert_eq!(
        r[0].header,
        hdr(RecordType::CallLegStart, 1437639000, 0, Some(1))
    );
    assert_eq!(
        r[1].header,
        hdr(RecordType::CallStart, 1437639000, 1, Some(2))
    );
    assert_eq!(
        r[2].header,
        hdr(RecordType::CallLegUpdate, 1437639000, 2, Some(3))
    );
    let leg = leg_id("fc43d749-2807-48d5-8508-6e83b9eee388");
    let call = call_id("60dbc897-2b76-4c34-b477-51569af78ed5");
    assert_eq!(rec!(r[0], CallLegStart).id, leg);
    assert_eq!(rec!(r[1], CallStart).id, call);
    let up = rec!(r[2], CallLegUpdate);
    assert_eq!(up.id, leg);
    assert_eq!(up.state, Some(LegState::Connected));
    assert_eq!(up.call, Some(CallRef::Call(call)));
}

#[test]
fn deprecated_no_record_index() {
    let body = fixture("deprecated-no-recordindex.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, "aa17471f-cda9-435a-9915-120802cf17dd", Some(CB));
    assert_eq!(batch.records.len(), 3);
    let r = &batch.records;
    assert_eq!(
        r[0].header,
        hdr(RecordType::CallStart, 1719918000, 40, None)
    );
    assert_eq!(
        r[1].header,
        hdr(RecordType::CallLegStart, 1719918001, 41, None)
    );
    assert_eq!(
        r[2].header,
        hdr(RecordType::CallLegUpdate, 1719918002, 42, None)
    );
    let call = call_id("f28055a2-1075-4537-801a-9f8e7f975efc");
    let leg = leg_id("3cfd8915-7cdc-4f82-b14b-5a434bb293dd");
    assert_eq!(rec!(r[0], CallStart).id, call);
    let ls = rec!(r[1], CallLegStart);
    assert_eq!((ls.id, ls.call), (leg, Some(call)));
    let up = rec!(r[2], CallLegUpdate);
    assert_eq!(up.id, leg);
    assert_eq!(up.state, Some(LegState::Connected));
    assert_eq!(up.call, Some(CallRef::Call(call)));
}

// ---------------------------------------------------------------------------------------------
// Alarms
// ---------------------------------------------------------------------------------------------

fn alarms_expected() -> CallLegEnd<'static> {
    CallLegEnd {
        id: leg_id("344ec46b-8413-4cba-b538-caa635b96a41"),
        reason: Some(EndReason::RemoteTeardown),
        remote_teardown: Some(true),
        unencrypted_media: Some(true),
        duration_seconds: Some(640.0),
        activated_duration: Some(640.0),
        media_usage: MediaUsage {
            main_video_viewer: Some(100.0),
            main_video_contributor: Some(98.4),
            ..Default::default()
        },
        alarms: vec![
            alarm(AlarmType::PacketLoss, 12.5),
            alarm(AlarmType::ExcessiveJitter, 3.0),
        ],
        rx_audio: audio(AudioCodec::G722, stats((4.812, 21.30), (635.188, 0.40))),
        tx_audio: audio(AudioCodec::G722, None),
        sip_call_id: t("9548d3f9-28c1-42c0-b39a-e602aa2cdf9c"),
        ..Default::default()
    }
}

#[test]
fn alarms_as_attributes() {
    let body = fixture("alarms-attributes.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, "d14ece88-faa9-48a3-a88c-1456259c60a9", Some(CB));
    let e = only(&batch);
    assert_eq!(
        e.header,
        hdr(RecordType::CallLegEnd, 1718100942, 200, Some(201))
    );
    assert_eq!(**rec!(e, CallLegEnd), alarms_expected());
}

#[test]
fn alarms_as_elements() {
    let body = fixture("alarms-elements.xml");
    let batch = parse_ok(&body);
    let e = only(&batch);
    assert_eq!(
        e.header,
        hdr(RecordType::CallLegEnd, 1718100942, 200, Some(201))
    );
    assert_eq!(**rec!(e, CallLegEnd), alarms_expected());
}

#[test]
fn alarms_attribute_and_element_forms_parse_identically() {
    let a = fixture("alarms-attributes.xml");
    let b = fixture("alarms-elements.xml");
    assert_ne!(a, b, "the fixtures differ in the alarm form");
    let (a, b) = (parse_ok(&a), parse_ok(&b));
    assert_eq!(a.session, b.session);
    assert_eq!(a.call_bridge, b.call_bridge);
    assert_eq!(a.records.len(), 1);
    assert_eq!(a.records[0].header, b.records[0].header);
    let (ra, rb) = (&a.records[0].body, &b.records[0].body);
    assert!(matches!(ra, Ok(Record::CallLegEnd(r)) if r.alarms.len() == 2));
    assert_eq!(ra, rb);
}

// ---------------------------------------------------------------------------------------------
// tolerant-forms.xml
// ---------------------------------------------------------------------------------------------

const TOL_CALL: &str = "a26d046b-477b-45c9-95e1-ab218ef124d0";
const TOL_LEG: &str = "065426cd-28b3-411a-b28f-8966e4e55716";

fn tolerant() -> Vec<u8> {
    fixture("tolerant-forms.xml")
}

#[test]
fn tolerant_forms_envelope_and_records() {
    let body = tolerant();
    let batch = parse_ok(&body);
    assert_envelope(&batch, "b626a71e-4982-4173-8973-30b0046f626d", Some(CB));
    // <batchInfo> and <x:trace> are not records.
    assert_eq!(batch.records.len(), 6);
    let cis: Vec<_> = batch
        .records
        .iter()
        .map(|e| e.header.correlator_index)
        .collect();
    assert_eq!(cis, (20..=25).map(Some).collect::<Vec<_>>());
    let types: Vec<_> = batch
        .records
        .iter()
        .map(|e| e.header.record_type.clone())
        .collect();
    assert_eq!(
        types,
        vec![
            RecordType::CallStart,
            RecordType::CallLegStart,
            RecordType::Other("callLegFuture".to_owned()),
            RecordType::CallLegUpdate,
            RecordType::CallLegUpdate,
            RecordType::CallLegEnd,
        ]
    );
    // 0 invalid: 5 known records Ok, 1 unknown type.
    for e in &batch.records {
        assert!(e.body.is_ok(), "{:?}: {:?}", e.header, e.body);
    }
    let unknown = batch
        .records
        .iter()
        .filter(|e| matches!(e.body, Ok(Record::Unknown)))
        .count();
    assert_eq!(unknown, 1);
}

#[test]
fn tolerant_forms_call_start_cdata_and_trimming() {
    let body = tolerant();
    let batch = parse_ok(&body);
    let e = &batch.records[0];
    assert_eq!(
        e.header,
        hdr(RecordType::CallStart, 1719820800, 20, Some(21))
    );
    assert_eq!(
        *rec!(e, CallStart),
        CallStart {
            id: call_id(TOL_CALL),
            name: t("Design & Review <Q3>"),
            co_space: Some(CoSpaceId(id("5d8cc569-7417-426d-9196-9412b40766f6"))),
            tenant: t("33b563b8-70d7-447c-84b3-7bd5280b4a7e"),
            call_type: Some(CallType::CoSpace),
            call_correlator: None,
            owner_name: None,
            cdr_tag: None,
            co_space_meta_data_configured: None,
        }
    );
}

#[test]
fn tolerant_forms_leg_start_without_record_index_ignores_unknown_elements() {
    let body = tolerant();
    let batch = parse_ok(&body);
    let e = &batch.records[1];
    assert_eq!(
        e.header,
        hdr(RecordType::CallLegStart, 1719820801, 21, None)
    );
    assert_eq!(
        *rec!(e, CallLegStart),
        CallLegStart {
            id: leg_id(TOL_LEG),
            remote_party: t("dave@example.com"),
            leg_type: Some(LegType::Sip),
            direction: Some(Direction::Incoming),
            ..Default::default()
        }
    );
}

#[test]
fn tolerant_forms_unknown_record_type_keeps_its_header() {
    let body = tolerant();
    let batch = parse_ok(&body);
    let e = &batch.records[2];
    assert_eq!(
        e.header,
        hdr(
            RecordType::Other("callLegFuture".to_owned()),
            1719820802,
            22,
            Some(23)
        )
    );
    assert_eq!(e.body, Ok(Record::Unknown));
}

#[test]
fn tolerant_forms_empty_ivr_element_is_ivr() {
    let body = tolerant();
    let batch = parse_ok(&body);
    let e = &batch.records[3];
    assert_eq!(
        e.header,
        hdr(RecordType::CallLegUpdate, 1719820803, 23, Some(24))
    );
    assert_eq!(
        *rec!(e, CallLegUpdate),
        CallLegUpdate {
            id: leg_id(TOL_LEG),
            call: Some(CallRef::Ivr),
            ..Default::default()
        }
    );
}

#[test]
fn tolerant_forms_padded_call_id_is_trimmed() {
    let body = tolerant();
    let batch = parse_ok(&body);
    let e = &batch.records[4];
    assert_eq!(
        e.header,
        hdr(RecordType::CallLegUpdate, 1719820809, 24, Some(25))
    );
    assert_eq!(
        *rec!(e, CallLegUpdate),
        CallLegUpdate {
            id: leg_id(TOL_LEG),
            state: Some(LegState::Connected),
            call: Some(CallRef::Call(call_id(TOL_CALL))),
            ..Default::default()
        }
    );
}

#[test]
fn tolerant_forms_leg_end_ignores_lookalikes() {
    let body = tolerant();
    let batch = parse_ok(&body);
    let e = &batch.records[5];
    assert_eq!(
        e.header,
        hdr(RecordType::CallLegEnd, 1719820851, 25, Some(26))
    );
    // Not `false` from <x:remoteTeardown>, not `ignoreMe`/9999 from <futureDiagnostics>.
    assert_eq!(
        **rec!(e, CallLegEnd),
        CallLegEnd {
            id: leg_id(TOL_LEG),
            reason: Some(EndReason::RemoteTeardown),
            remote_teardown: Some(true),
            duration_seconds: Some(42.0),
            alarms: vec![alarm(AlarmType::PacketLoss, 7.25)],
            rx_audio: audio(AudioCodec::Opus, None),
            tx_audio: None,
            rx_video: None,
            tx_video: None,
            media_usage: MediaUsage::default(),
            encrypted_media: None,
            unencrypted_media: None,
            sip_call_id: None,
            ..Default::default()
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Gaps
// ---------------------------------------------------------------------------------------------

#[test]
fn gap_jump_indices() {
    let body = fixture("gap-jump.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, "20b0f787-2f16-44ef-a243-0ce91cfcc3ef", Some(CB));
    assert_eq!(batch.records.len(), 3);
    let r = &batch.records;
    // ci jumps 10 -> 14, ri stays continuous; no numPreceedingRecordsMissing anywhere.
    assert_eq!(
        r[0].header,
        hdr(RecordType::CallLegStart, 1720018800, 10, Some(11))
    );
    assert_eq!(
        r[1].header,
        hdr(RecordType::CallLegUpdate, 1720018807, 14, Some(12))
    );
    assert_eq!(
        r[2].header,
        hdr(RecordType::CallLegEnd, 1720018987, 15, Some(13))
    );
    let leg = leg_id("3410dbe4-2d5a-440d-82f1-fad327af19fa");
    assert_eq!(rec!(r[0], CallLegStart).id, leg);
    let up = rec!(r[1], CallLegUpdate);
    assert_eq!(up.id, leg);
    assert_eq!(
        up.call,
        Some(CallRef::Call(call_id(
            "20cb723c-9760-449f-a6c1-388ca6c52615"
        )))
    );
    let end = rec!(r[2], CallLegEnd);
    assert_eq!(end.id, leg);
    assert_eq!(end.reason, Some(EndReason::RemoteTeardown));
    assert_eq!(end.duration_seconds, Some(187.0));
}

#[test]
fn gap_num_preceeding_records_missing_is_a_header_field() {
    let body = fixture("gap-numpreceeding.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, "c08afa37-4b61-44a8-98ed-77d25843376c", Some(CB));
    assert_eq!(batch.records.len(), 3);
    let r = &batch.records;
    assert_eq!(
        r[0].header,
        hdr(RecordType::CallStart, 1720085400, 30, Some(31))
    );
    assert_eq!(
        r[1].header,
        Header {
            num_preceding_missing: Some(3),
            ..hdr(RecordType::CallLegEnd, 1720089000, 34, Some(32))
        }
    );
    assert_eq!(
        r[2].header,
        hdr(RecordType::CallEnd, 1720089000, 35, Some(33))
    );
    let end = rec!(r[1], CallLegEnd);
    assert_eq!(end.id, leg_id("c7d26eb9-a854-44c9-829a-881d6de6509d"));
    assert_eq!(end.reason, Some(EndReason::CallEnded));
    assert_eq!(end.remote_teardown, Some(false));
    assert_eq!(end.duration_seconds, Some(3590.0));
    assert_eq!(
        *rec!(r[2], CallEnd),
        CallEnd {
            id: call_id("90cc1df8-3e48-4994-bd8b-913a0f9fc692"),
            call_legs_completed: Some(2),
            call_legs_max_active: Some(2),
            duration_seconds: Some(3600.0),
            endpoint_recorded: None,
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Invalid records
// ---------------------------------------------------------------------------------------------

#[test]
fn invalid_records_are_per_record_errors() {
    let body = fixture("invalid-records.xml");
    let batch = parse_ok(&body);
    assert_envelope(&batch, "7b7c6bc4-b0af-4363-a247-2bd0047009fb", Some(CB));
    assert_eq!(batch.records.len(), 4);
    let r = &batch.records;
    // Record-level attributes intact on all four.
    assert_eq!(
        r[0].header,
        hdr(RecordType::CallStart, 1720180800, 50, Some(51))
    );
    assert_eq!(
        r[1].header,
        hdr(RecordType::CallLegEnd, 1720180810, 51, Some(52))
    );
    assert_eq!(
        r[2].header,
        hdr(RecordType::CallLegStart, 1720180820, 52, Some(53))
    );
    assert_eq!(
        r[3].header,
        hdr(RecordType::CallLegStart, 1720180830, 53, Some(54))
    );

    let call = call_id("eaa22ca8-ad23-4df7-a42e-248674ab9e39");
    let cs = rec!(r[0], CallStart);
    assert_eq!(cs.id, call);
    assert_eq!(cs.name, t("Valid record 1"));

    // #2: durationSeconds "ten"; the object is still named so the leg can be ended.
    assert_eq!(
        r[1].body,
        Err(Invalid {
            reason: InvalidReason::BadNumber,
            field: "durationSeconds",
            object: Some(ObjectRef::CallLeg(leg_id(
                "d1e97dfe-9d51-495a-ba94-89cb0d64ea0b"
            ))),
        })
    );
    // #3: <callLeg> without id.
    match &r[2].body {
        Err(inv) => {
            assert_eq!(inv.reason, InvalidReason::MissingId);
            assert_eq!(inv.object, None);
        }
        ok => panic!("record 3 should be invalid, got {ok:?}"),
    }

    let ls = rec!(r[3], CallLegStart);
    assert_eq!(ls.id, leg_id("59d1662e-c4b6-40dc-9746-57da9a7e6341"));
    assert_eq!(ls.call, Some(call));
    assert_eq!(ls.remote_party, t("grace@example.com"));

    let valid = r.iter().filter(|e| e.body.is_ok()).count();
    assert_eq!(valid, 2);
}

// ---------------------------------------------------------------------------------------------
// Malformed fixtures: the whole body is rejected
// ---------------------------------------------------------------------------------------------

fn parse_err(body: &[u8]) -> ParseError {
    match cdr::parse(body) {
        Ok(b) => panic!("expected an error, got {b:#?}"),
        Err(e) => e,
    }
}

#[test]
fn malformed_empty() {
    assert_eq!(
        parse_err(&fixture("malformed-empty.xml")),
        ParseError::Empty
    );
    assert_eq!(parse_err(b""), ParseError::Empty);
    assert_eq!(parse_err(b" \r\n\t "), ParseError::Empty);
}

#[test]
fn malformed_not_xml() {
    let e = parse_err(&fixture("malformed-not-xml.txt"));
    assert!(
        matches!(e, ParseError::NoRoot | ParseError::Xml { .. }),
        "{e:?}"
    );
}

#[test]
fn malformed_truncated() {
    let e = parse_err(&fixture("malformed-truncated.xml"));
    assert!(
        matches!(e, ParseError::Truncated | ParseError::Xml { .. }),
        "{e:?}"
    );
    // Cut after a complete element, too: still rejected.
    let body = fixture("malformed-truncated.xml");
    let s = std::str::from_utf8(&body).unwrap();
    let cut = s.find("<durationSec").unwrap();
    assert_eq!(parse_err(&body[..cut]), ParseError::Truncated);
}

#[test]
fn malformed_wrong_root() {
    assert_eq!(
        parse_err(&fixture("malformed-wrong-root.xml")),
        ParseError::WrongRoot("events".to_owned())
    );
}

#[test]
fn malformed_mismatched_end_tag() {
    let e = parse_err(&fixture("malformed-mismatched.xml"));
    assert!(matches!(e, ParseError::Xml { .. }), "{e:?}");
}

#[test]
fn malformed_doctype_refused_without_expansion() {
    let body = fixture("malformed-doctype.xml");
    let start = std::time::Instant::now();
    let e = parse_err(&body);
    assert!(matches!(e, ParseError::DocType(_)), "{e:?}");
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
    // Any DOCTYPE at all, even a harmless one.
    let plain =
        format!(r#"<?xml version="1.0"?><!DOCTYPE records><records session="{INLINE_SESSION}"/>"#);
    assert!(matches!(
        parse_err(plain.as_bytes()),
        ParseError::DocType(_)
    ));
}

// ---------------------------------------------------------------------------------------------
// Inline bodies
// ---------------------------------------------------------------------------------------------

const INLINE_SESSION: &str = "5a0c7d2e-3b1f-4e8a-9c6d-2f4e8a1b3c5d";
const INLINE_CALL: &str = "0b8e6c1a-4f2d-4d3b-8a9e-7c6b5a4d3e2f";
const INLINE_LEG: &str = "1c9f7d2b-5e3a-4e4c-9b0f-8d7c6b5a4e3f";

fn doc(records: &str) -> String {
    format!(r#"<?xml version="1.0"?><records session="{INLINE_SESSION}">{records}</records>"#)
}

fn record(record_type: &str, ci: u64, object: &str) -> String {
    format!(
        r#"<record type="{record_type}" time="2024-01-01T00:00:00Z" correlatorIndex="{ci}">{object}</record>"#
    )
}

fn leg_start(children: &str) -> String {
    doc(&record(
        "callLegStart",
        1,
        &format!(r#"<callLeg id="{INLINE_LEG}">{children}</callLeg>"#),
    ))
}

fn leg_end(children: &str) -> String {
    doc(&record(
        "callLegEnd",
        1,
        &format!(r#"<callLeg id="{INLINE_LEG}">{children}</callLeg>"#),
    ))
}

fn call_end(children: &str) -> String {
    doc(&record(
        "callEnd",
        1,
        &format!(r#"<call id="{INLINE_CALL}">{children}</call>"#),
    ))
}

#[test]
fn inline_entity_references_in_text() {
    let body = leg_start(
        "<displayName>Tom &amp; Jerry &lt;TJ&gt; &quot;&apos; &#38;&#x26;</displayName>\
         <remoteParty>a&amp;b@example.com</remoteParty>",
    );
    let batch = parse_ok(body.as_bytes());
    assert_eq!(batch.session, session(INLINE_SESSION));
    assert_eq!(batch.call_bridge, None);
    let e = only(&batch);
    assert_eq!(e.header, hdr(RecordType::CallLegStart, 1704067200, 1, None));
    let r = rec!(e, CallLegStart);
    assert_eq!(r.id, leg_id(INLINE_LEG));
    assert_eq!(r.display_name.as_deref(), Some(r#"Tom & Jerry <TJ> "' &&"#));
    assert_eq!(r.remote_party.as_deref(), Some("a&b@example.com"));
}

#[test]
fn inline_numbers_with_surrounding_whitespace() {
    let body = call_end(
        "<callLegsCompleted> 5 </callLegsCompleted>\
         <callLegsMaxActive>\n\t3\n</callLegsMaxActive>\
         <durationSeconds>\r\n  12.5  \r\n</durationSeconds>\
         <endpointRecorded>\n true \n</endpointRecorded>",
    );
    let batch = parse_ok(body.as_bytes());
    assert_eq!(
        *rec!(only(&batch), CallEnd),
        CallEnd {
            id: call_id(INLINE_CALL),
            call_legs_completed: Some(5),
            call_legs_max_active: Some(3),
            duration_seconds: Some(12.5),
            endpoint_recorded: Some(true),
        }
    );
    // Attribute values (alarm form) are trimmed as well.
    let body = leg_end(r#"<alarm type=" packetLoss " durationPercentage=" 7.5 "/>"#);
    let batch = parse_ok(body.as_bytes());
    let r = rec!(only(&batch), CallLegEnd);
    assert_eq!(r.alarms, vec![alarm(AlarmType::PacketLoss, 7.5)]);
}

#[test]
fn inline_integer_written_as_2_0_is_accepted() {
    let body = call_end("<callLegsMaxActive>2.0</callLegsMaxActive>");
    let batch = parse_ok(body.as_bytes());
    let r = rec!(only(&batch), CallEnd);
    assert_eq!(r.call_legs_max_active, Some(2));
}

fn assert_bad_call_legs_max_active(v: &str) {
    let body = call_end(&format!(
        "<callLegsCompleted>1</callLegsCompleted><callLegsMaxActive>{v}</callLegsMaxActive>"
    ));
    let batch = parse_ok(body.as_bytes());
    let e = only(&batch);
    // The batch is fine; only this record is invalid, and its header is intact.
    assert_eq!(e.header.correlator_index, Some(1));
    assert_eq!(
        e.body,
        Err(Invalid {
            reason: InvalidReason::BadNumber,
            field: "callLegsMaxActive",
            object: Some(ObjectRef::Call(call_id(INLINE_CALL))),
        }),
        "callLegsMaxActive = {v:?}"
    );
}

#[test]
fn inline_fractional_integer_rejected() {
    assert_bad_call_legs_max_active("2.5");
}

#[test]
fn inline_negative_integer_rejected() {
    assert_bad_call_legs_max_active("-1");
}

#[test]
fn inline_nan_integer_rejected() {
    assert_bad_call_legs_max_active("NaN");
    assert_bad_call_legs_max_active("inf");
    assert_bad_call_legs_max_active("three");
}

fn rx_audio_density(bursts_density: &str) -> String {
    leg_end(&format!(
        "<rxAudio><codec>opus</codec><packetStatistics>\
         <packetLossBursts><duration>1.0</duration><density>{bursts_density}</density></packetLossBursts>\
         <packetGap><duration>9.0</duration><density>0.5</density></packetGap>\
         </packetStatistics></rxAudio>"
    ))
}

#[test]
fn inline_packet_statistics_out_of_range_is_kept_for_the_quality_model() {
    // Out-of-range statistics do not invalidate the leg's end record: the MOS model
    // rejects them (counted as invalid_values) while the leg still ends.
    let body = rx_audio_density("100.5");
    let batch = parse_ok(body.as_bytes());
    let r = rec!(only(&batch), CallLegEnd);
    assert_eq!(
        r.rx_audio,
        audio(AudioCodec::Opus, stats((1.0, 100.5), (9.0, 0.5)))
    );
    let body = rx_audio_density("garbage");
    let batch = parse_ok(body.as_bytes());
    let r = rec!(only(&batch), CallLegEnd);
    let d = r
        .rx_audio
        .as_ref()
        .unwrap()
        .packet_statistics
        .unwrap()
        .packet_loss_bursts
        .density
        .unwrap();
    assert!(d.is_nan(), "unreadable density becomes NaN, got {d}");
    // Exactly 100 is a valid percentage.
    let body = rx_audio_density("100");
    let batch = parse_ok(body.as_bytes());
    let r = rec!(only(&batch), CallLegEnd);
    assert_eq!(
        r.rx_audio,
        audio(AudioCodec::Opus, stats((1.0, 100.0), (9.0, 0.5)))
    );
}

#[test]
fn integers_at_u64_overflow_are_rejected() {
    assert_eq!(cdr::parse_u64("18446744073709551616"), None);
    assert_eq!(cdr::parse_u64("1.8446744073709552e19"), None);
    assert_eq!(cdr::parse_u64(" 42 "), Some(42));
}

fn nested(levels: usize, name: &str) -> String {
    let mut s = String::new();
    for _ in 0..levels {
        s.push_str(&format!("<{name}>"));
    }
    s.push_str("deep");
    for _ in 0..levels {
        s.push_str(&format!("</{name}>"));
    }
    s
}

#[test]
fn inline_deep_nesting_is_too_deep() {
    // 100 levels of unknown elements inside the object element.
    let body = leg_end(&nested(100, "futureContainer"));
    assert_eq!(parse_err(body.as_bytes()), ParseError::TooDeep);
    // ... inside the record, before the object element.
    let body = doc(&record(
        "callLegEnd",
        1,
        &format!(r#"{}<callLeg id="{INLINE_LEG}"/>"#, nested(100, "x:wrap")),
    ));
    assert_eq!(parse_err(body.as_bytes()), ParseError::TooDeep);
    // ... inside an unknown-type record.
    let body = doc(&record("callLegFuture", 1, &nested(100, "a")));
    assert_eq!(parse_err(body.as_bytes()), ParseError::TooDeep);
    // ... directly under <records>.
    let body = doc(&nested(100, "batchInfo"));
    assert_eq!(parse_err(body.as_bytes()), ParseError::TooDeep);
    // Known element names nested deeply as well.
    let body = leg_end(&nested(100, "rxAudio"));
    assert_eq!(parse_err(body.as_bytes()), ParseError::TooDeep);
    // Hostile depth is cut off early, without recursion or a stack overflow.
    let body = leg_end(&nested(100_000, "a"));
    assert_eq!(parse_err(body.as_bytes()), ParseError::TooDeep);
}

#[test]
fn inline_moderate_nesting_is_accepted() {
    // 40 levels of unknown elements stay well inside the limit and are ignored.
    let body = leg_end(&format!(
        "{}<durationSeconds>7</durationSeconds>",
        nested(40, "futureContainer")
    ));
    let batch = parse_ok(body.as_bytes());
    let r = rec!(only(&batch), CallLegEnd);
    assert_eq!(r.duration_seconds, Some(7.0));
}

#[test]
fn inline_invalid_utf8() {
    let text = leg_start("<displayName>BAD</displayName>");
    let at = text.find("BAD").unwrap();
    let mut body = text.into_bytes();
    body[at] = 0xC3; // a lead byte ...
    body[at + 1] = 0x28; // ... followed by a non-continuation byte
    assert_eq!(parse_err(&body), ParseError::InvalidUtf8(at));
    // A lone 0xFF at the very start.
    assert_eq!(parse_err(b"\xff<records/>"), ParseError::InvalidUtf8(0));
}

#[test]
fn inline_records_without_session() {
    let inner = record(
        "callStart",
        1,
        &format!(r#"<call id="{INLINE_CALL}"><name>x</name></call>"#),
    );
    let body = format!(r#"<records callBridge="{CB}">{inner}</records>"#);
    assert_eq!(parse_err(body.as_bytes()), ParseError::MissingSession);
    let body = format!(r#"<records session="  " callBridge="{CB}">{inner}</records>"#);
    assert_eq!(parse_err(body.as_bytes()), ParseError::MissingSession);
    assert_eq!(parse_err(b"<records/>"), ParseError::MissingSession);
}

#[test]
fn inline_content_after_records_is_rejected() {
    let ok = call_end("<callLegsCompleted>1</callLegsCompleted>");
    // Trailing whitespace and comments are fine.
    let with_comment = format!("{ok}\n<!-- end -->\n");
    let batch = parse_ok(with_comment.as_bytes());
    assert_eq!(batch.records.len(), 1);

    // A second root element.
    let body = format!(r#"{ok}<records session="{INLINE_SESSION}"/>"#);
    assert_eq!(
        parse_err(body.as_bytes()),
        ParseError::TrailingContent(ok.len() as u64)
    );
    // Stray text.
    let body = format!("{ok}garbage");
    assert!(
        matches!(
            parse_err(body.as_bytes()),
            ParseError::TrailingContent(_) | ParseError::Xml { .. }
        ),
        "text after </records>"
    );
    // A stray end tag.
    let body = format!("{ok}</records>");
    let e = parse_err(body.as_bytes());
    assert!(
        matches!(e, ParseError::TrailingContent(_) | ParseError::Xml { .. }),
        "{e:?}"
    );
}

#[test]
fn inline_prefixed_elements_are_not_fields() {
    let body = leg_end(
        "<x:reason xmlns:x=\"urn:x\">error</x:reason>\
         <reason>callEnded</reason>\
         <x:durationSeconds xmlns:x=\"urn:x\">99</x:durationSeconds>\
         <x:alarm xmlns:x=\"urn:x\" type=\"packetLoss\" durationPercentage=\"50\"/>",
    );
    let batch = parse_ok(body.as_bytes());
    let r = rec!(only(&batch), CallLegEnd);
    assert_eq!(
        **r,
        CallLegEnd {
            id: leg_id(INLINE_LEG),
            reason: Some(EndReason::CallEnded),
            ..Default::default()
        }
    );
}

#[test]
fn inline_unknown_enum_values_are_kept() {
    let body = leg_end(
        "<reason>hologramFailure</reason>\
         <rxAudio><codec>lyra</codec></rxAudio>\
         <alarm><type>solarFlare</type><durationPercentage>1</durationPercentage></alarm>",
    );
    let batch = parse_ok(body.as_bytes());
    let r = rec!(only(&batch), CallLegEnd);
    assert_eq!(
        r.reason,
        Some(EndReason::Other("hologramFailure".to_owned()))
    );
    assert_eq!(
        r.rx_audio,
        Some(AudioStream {
            codec: Some(AudioCodec::Other("lyra".to_owned())),
            packet_statistics: None,
        })
    );
    assert_eq!(
        r.alarms,
        vec![cdr::Alarm {
            alarm_type: Some(AlarmType::Other("solarFlare".to_owned())),
            duration_percentage: Some(1.0),
        }]
    );
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let mut body = "\u{feff}".as_bytes().to_vec();
    body.extend_from_slice(&common_fixture("ch6-post1.xml"));
    let batch = cdr::parse(&body).expect("a UTF-8 BOM before the declaration is legal XML");
    assert_eq!(batch.records.len(), 1);
}

fn common_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}
