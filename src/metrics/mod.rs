//! Every metric name, help text, unit and label set; the concurrent storage; exposition.

mod expose;
mod family;
mod labels;
mod process;

use prometheus_client::registry::Unit;

pub use expose::{Exposition, Format};
pub use family::{
    AtomicF64, Cell, CellValue, Counter, Desc, EncodeFamily, Family, FloatCounter, FloatGauge,
    Gauge, Histogram, Info, SeriesValue, SnapshotFamily, StoredFamily,
};
pub use labels::{Domain, LabelId, LabelTable, OTHER};
pub use process::ProcessCollector;

/// Caps on distinct label values (the rest become `other`, counted in
/// `cdr_exporter_label_overflow_total{label}`).
#[derive(Clone, Debug)]
pub struct LabelLimits {
    pub call_bridge: usize,
    pub tenant: usize,
    /// Every enumerated label (reason, codec, record type, ...): known values always fit.
    pub enumerated: usize,
    /// Longest value of any label, in bytes.
    pub value_bytes: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits {
            call_bridge: 256,
            tenant: 2000,
            enumerated: 64,
            value_bytes: 128,
        }
    }
}

/// Duration buckets for calls and legs: 10 s to a day.
pub const DURATION_BUCKETS: &[f64] = &[
    10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
];
/// callLegsMaxActive buckets.
pub const PARTICIPANT_BUCKETS: &[f64] = &[
    1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0,
];

/// MOS bands (ITU-T P.800.1 / G.107): 4.3 very good, 3.6 bad, 3.1 not recommended, 2.6 very bad.
pub const MOS_BUCKETS: &[f64] = &[1.0, 2.0, 2.6, 3.1, 3.6, 4.0, 4.3, 4.5];
/// Packet loss ratio buckets: 0.1 % to 50 %.
pub const LOSS_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5];
/// Video heights: 144p to 4K.
pub const HEIGHT_BUCKETS: &[f64] = &[
    144.0, 240.0, 360.0, 480.0, 576.0, 720.0, 1080.0, 1440.0, 2160.0,
];

/// Label values with a meaning of their own.
pub mod values {
    /// The call has no tenant (single-tenant deployments).
    pub const NONE: &str = "none";
    /// The leg's call, or the call's tenant, was never seen.
    pub const UNKNOWN: &str = "unknown";
}

/// The label domains, one per label name.
pub struct Domains {
    pub call_bridge: Domain,
    pub tenant: Domain,
    pub call_type: Domain,
    pub leg_type: Domain,
    pub direction: Domain,
    pub reason: Domain,
    pub remote_teardown: Domain,
    pub record_type: Domain,
    pub kind: Domain,
    pub evict_reason: Domain,
    pub invalid_reason: Domain,
    pub reject_reason: Domain,
    pub codec: Domain,
    pub alarm: Domain,
    pub media: Domain,
    pub media_direction: Domain,
    pub encryption: Domain,
    pub usage: Domain,
    pub mos_reason: Domain,
    pub parameter: Domain,
    pub conn_reason: Domain,
}

impl Domains {
    /// Field names, in the order of [`Domains::all`] (snapshot keys: several share a label name).
    const KEYS: [&'static str; 21] = [
        "call_bridge",
        "tenant",
        "call_type",
        "leg_type",
        "direction",
        "reason",
        "remote_teardown",
        "record_type",
        "kind",
        "evict_reason",
        "invalid_reason",
        "reject_reason",
        "codec",
        "alarm",
        "media",
        "media_direction",
        "encryption",
        "usage",
        "mos_reason",
        "parameter",
        "conn_reason",
    ];

    fn all(&self) -> [&Domain; 21] {
        [
            &self.call_bridge,
            &self.tenant,
            &self.call_type,
            &self.leg_type,
            &self.direction,
            &self.reason,
            &self.remote_teardown,
            &self.record_type,
            &self.kind,
            &self.evict_reason,
            &self.invalid_reason,
            &self.reject_reason,
            &self.codec,
            &self.alarm,
            &self.media,
            &self.media_direction,
            &self.encryption,
            &self.usage,
            &self.mos_reason,
            &self.parameter,
            &self.conn_reason,
        ]
    }
}

const U: &str = values::UNKNOWN;

/// All metrics of the exporter. Shared as `Arc<Metrics>`; every update is lock-free
/// apart from the map shard a new series is inserted into.
pub struct Metrics {
    pub table: LabelTable,
    pub d: Domains,

    pub calls_active: Family<3, Gauge>,
    pub calls_started: Family<3, Counter>,
    pub calls_ended: Family<3, Counter>,
    pub call_duration: Family<3, Histogram>,
    pub call_participants_max: Family<3, Histogram>,

    pub legs_active: Family<4, Gauge>,
    pub legs_started: Family<3, Counter>,
    pub legs_ended: Family<4, Counter>,
    pub leg_duration: Family<2, Histogram>,

    pub leg_mos: Family<2, Histogram>,
    pub leg_mos_unavailable: Family<3, Counter>,
    pub leg_packet_loss: Family<3, Histogram>,
    pub leg_alarm_seconds: Family<3, FloatCounter>,
    pub legs_with_alarm: Family<3, Counter>,
    pub media_streams: Family<5, Counter>,
    pub media_seconds: Family<5, FloatCounter>,
    pub video_height: Family<3, Histogram>,
    pub legs_encryption: Family<3, Counter>,
    pub media_usage_seconds: Family<3, FloatCounter>,
    pub mos_codec_impairment: Family<2, FloatGauge>,
    pub mos_assumed_delay: Family<0, FloatGauge>,

    pub recordings_active: Family<1, Gauge>,
    pub recordings_started: Family<1, Counter>,
    pub recordings_ended: Family<1, Counter>,
    pub streamings_active: Family<1, Gauge>,
    pub streamings_started: Family<1, Counter>,
    pub streamings_ended: Family<1, Counter>,

    pub records: Family<2, Counter>,
    pub records_duplicate: Family<1, Counter>,
    pub records_missing: Family<1, Counter>,
    pub records_invalid: Family<2, Counter>,
    pub records_unmatched: Family<2, Counter>,
    pub batches: Family<1, Counter>,
    pub batches_rejected: Family<1, Counter>,
    pub last_record_timestamp: Family<1, FloatGauge>,
    pub last_batch_timestamp: Family<1, FloatGauge>,
    pub sessions: Family<1, Counter>,
    pub evicted_objects: Family<2, Counter>,
    pub connections_active: Family<0, Gauge>,
    pub connections_rejected: Family<1, Counter>,
    pub build_info: Info,
}

macro_rules! desc {
    ($name:literal, $help:literal, [$($l:literal),*]) => {
        Desc { name: $name, help: $help, unit: None, labels: [$($l),*], buckets: &[] }
    };
    ($name:literal, $help:literal, [$($l:literal),*], seconds) => {
        Desc { name: $name, help: $help, unit: Some(Unit::Seconds), labels: [$($l),*], buckets: &[] }
    };
    ($name:literal, $help:literal, [$($l:literal),*], seconds, $b:expr) => {
        Desc { name: $name, help: $help, unit: Some(Unit::Seconds), labels: [$($l),*], buckets: $b }
    };
    ($name:literal, $help:literal, [$($l:literal),*], buckets $b:expr) => {
        Desc { name: $name, help: $help, unit: None, labels: [$($l),*], buckets: $b }
    };
}

impl Metrics {
    pub fn new(limits: &LabelLimits) -> Metrics {
        let table = LabelTable::default();
        let e = limits.enumerated;
        let dom =
            |label, cap, known: &[&str]| Domain::new(&table, label, cap, limits.value_bytes, known);
        let d = Domains {
            call_bridge: dom("call_bridge", limits.call_bridge, &[]),
            tenant: dom("tenant", limits.tenant, &[values::NONE, U]),
            call_type: dom("call_type", e, &[crate_known::CALL_TYPES, &[U]].concat()),
            leg_type: dom("leg_type", e, &[crate_known::LEG_TYPES, &[U]].concat()),
            direction: dom("direction", e, &["incoming", "outgoing", U]),
            reason: dom("reason", e, &[crate_known::REASONS, &[U]].concat()),
            remote_teardown: dom("remote_teardown", e, &["true", "false", U]),
            record_type: dom("record_type", e, crate_known::RECORD_TYPES),
            kind: dom(
                "kind",
                e,
                &["call", "call_leg", "recording", "streaming", "session"],
            ),
            evict_reason: dom("reason", e, crate_known::EVICT_REASONS),
            invalid_reason: dom("reason", e, crate_known::INVALID_REASONS),
            reject_reason: dom("reason", e, &[]),
            codec: dom(
                "codec",
                e,
                &[crate_known::AUDIO_CODECS, crate_known::VIDEO_CODECS, &[U]].concat(),
            ),
            alarm: dom(
                "alarm",
                e,
                &["packetLoss", "excessiveJitter", "highRoundTripTime", U],
            ),
            media: dom("media", e, &["audio", "video"]),
            media_direction: dom("direction", e, &["rx", "tx"]),
            encryption: dom(
                "encryption",
                e,
                &["encrypted", "unencrypted", "both", "none"],
            ),
            usage: dom("usage", e, crate_known::MEDIA_USAGES),
            mos_reason: dom(
                "reason",
                e,
                &["no_audio", "no_packet_statistics", "invalid_values"],
            ),
            parameter: dom("parameter", e, &["ie", "bpl"]),
            conn_reason: dom("reason", e, &["max_connections", "tls_handshake"]),
        };
        Metrics {
            table,
            d,
            calls_active: Family::new(desc!("cms_calls_active", "Calls in progress (callStart seen, callEnd not yet)", ["call_bridge", "tenant", "call_type"])),
            calls_started: Family::new(desc!("cms_calls_started", "Calls started (callStart records)", ["call_bridge", "tenant", "call_type"])),
            calls_ended: Family::new(desc!("cms_calls_ended", "Calls ended (callEnd records)", ["call_bridge", "tenant", "call_type"])),
            call_duration: Family::new(desc!("cms_call_duration", "Call duration from callEnd durationSeconds", ["call_bridge", "tenant", "call_type"], seconds, DURATION_BUCKETS)),
            call_participants_max: Family::new(desc!("cms_call_participants_max", "Most call legs simultaneously active in a call (callEnd callLegsMaxActive)", ["call_bridge", "tenant", "call_type"], buckets PARTICIPANT_BUCKETS)),
            legs_active: Family::new(desc!("cms_call_legs_active", "Call legs in progress (callLegStart seen, callLegEnd not yet)", ["call_bridge", "tenant", "leg_type", "direction"])),
            legs_started: Family::new(desc!("cms_call_legs_started", "Call legs started (callLegStart records)", ["call_bridge", "leg_type", "direction"])),
            legs_ended: Family::new(desc!("cms_call_legs_ended", "Call legs ended (callLegEnd records) by reason and by which side tore down", ["call_bridge", "tenant", "reason", "remote_teardown"])),
            leg_duration: Family::new(desc!("cms_call_leg_duration", "Call leg duration from callLegEnd durationSeconds", ["call_bridge", "tenant"], seconds, DURATION_BUCKETS)),
            leg_mos: Family::new(desc!("cms_call_leg_mos", "Estimated listening-quality MOS of the audio the Meeting Server received from each leg (E-model from CMS burst/gap packet statistics)", ["call_bridge", "tenant"], buckets MOS_BUCKETS)),
            leg_mos_unavailable: Family::new(desc!("cms_call_leg_mos_unavailable", "Call legs ended without a MOS estimate, by reason (no_audio, no_packet_statistics, invalid_values)", ["call_bridge", "tenant", "reason"])),
            leg_packet_loss: Family::new(desc!("cms_call_leg_packet_loss_ratio", "Packet loss of received media per leg (time-weighted burst and gap density), ratio 0-1", ["call_bridge", "tenant", "media"], buckets LOSS_BUCKETS)),
            leg_alarm_seconds: Family::new(desc!("cms_call_leg_alarm", "Time legs spent in an alarm condition (durationPercentage x durationSeconds / 100)", ["call_bridge", "tenant", "alarm"], seconds)),
            legs_with_alarm: Family::new(desc!("cms_call_legs_with_alarm", "Call legs that raised an alarm of this type at least once", ["call_bridge", "tenant", "alarm"])),
            media_streams: Family::new(desc!("cms_call_leg_media_streams", "Media streams of ended legs by codec (one per rx/tx audio/video section)", ["call_bridge", "tenant", "media", "direction", "codec"])),
            media_seconds: Family::new(desc!("cms_call_leg_media", "Leg time by media codec (the leg's durationSeconds per stream present)", ["call_bridge", "tenant", "media", "direction", "codec"], seconds)),
            video_height: Family::new(desc!("cms_call_leg_video_max_height_pixels", "Largest video height received (rx) and sent (tx) per leg (maxSizeHeight)", ["call_bridge", "tenant", "direction"], buckets HEIGHT_BUCKETS)),
            legs_encryption: Family::new(desc!("cms_call_legs_encryption", "Ended legs by media encryption (encrypted, unencrypted, both, none)", ["call_bridge", "tenant", "encryption"])),
            media_usage_seconds: Family::new(desc!("cms_call_leg_media_usage", "Leg time spent viewing or contributing main video and presentation, and in multistream (mediaUsagePercentages x durationSeconds / 100)", ["call_bridge", "tenant", "usage"], seconds)),
            mos_codec_impairment: Family::new(desc!("cdr_exporter_mos_codec_impairment", "Codec impairment values in force for the MOS estimate (ie, bpl)", ["codec", "parameter"])),
            mos_assumed_delay: Family::new(desc!("cdr_exporter_mos_assumed_delay", "One-way delay Ta assumed by the MOS estimate", [], seconds)),
            recordings_active: Family::new(desc!("cms_recordings_active", "Recordings in progress", ["call_bridge"])),
            recordings_started: Family::new(desc!("cms_recordings_started", "Recordings started (recordingStart records)", ["call_bridge"])),
            recordings_ended: Family::new(desc!("cms_recordings_ended", "Recordings ended (recordingEnd records)", ["call_bridge"])),
            streamings_active: Family::new(desc!("cms_streamings_active", "Streamings in progress", ["call_bridge"])),
            streamings_started: Family::new(desc!("cms_streamings_started", "Streamings started (streamingStart records)", ["call_bridge"])),
            streamings_ended: Family::new(desc!("cms_streamings_ended", "Streamings ended (streamingEnd records)", ["call_bridge"])),
            records: Family::new(desc!("cdr_exporter_records", "CDR records applied, by type (duplicates excluded)", ["call_bridge", "record_type"])),
            records_duplicate: Family::new(desc!("cdr_exporter_records_duplicate", "CDR records received again (same session and correlatorIndex) and skipped", ["call_bridge"])),
            records_missing: Family::new(desc!("cdr_exporter_records_missing", "CDR records lost before reaching the exporter (correlatorIndex gaps and numPreceedingRecordsMissing, each counted once)", ["call_bridge"])),
            records_invalid: Family::new(desc!("cdr_exporter_records_invalid", "CDR records in well-formed batches that could not be used, by reason", ["call_bridge", "reason"])),
            records_unmatched: Family::new(desc!("cdr_exporter_records_unmatched", "Update and end records for calls, legs, recordings or streamings the exporter was not tracking", ["call_bridge", "record_type"])),
            batches: Family::new(desc!("cdr_exporter_batches", "CDR batches (POST bodies) accepted and acknowledged", ["call_bridge"])),
            batches_rejected: Family::new(desc!("cdr_exporter_batches_rejected", "CDR batches rejected whole, by reason", ["reason"])),
            last_record_timestamp: Family::new(desc!("cdr_exporter_last_record_timestamp", "Time attribute of the newest record applied (Call Bridge clock)", ["call_bridge"], seconds)),
            last_batch_timestamp: Family::new(desc!("cdr_exporter_last_batch_timestamp", "When the exporter last accepted a batch from the Call Bridge (exporter clock)", ["call_bridge"], seconds)),
            sessions: Family::new(desc!("cdr_exporter_sessions", "CDR sessions seen per Call Bridge; each new one after the first is a Call Bridge restart", ["call_bridge"])),
            evicted_objects: Family::new(desc!("cdr_exporter_evicted_objects", "Objects dropped from correlation state without an end record, by reason", ["kind", "reason"])),
            connections_active: Family::new(desc!(
                "cdr_exporter_connections_active",
                "HTTP connections open",
                []
            )),
            connections_rejected: Family::new(desc!(
                "cdr_exporter_connections_rejected",
                "Connections closed at once: over server.max_connections, or a failed TLS handshake",
                ["reason"]
            )),
            build_info: Info {
                name: "cdr_exporter_build",
                help: "Build information of cdr-exporter",
                labels: vec![("version", env!("CARGO_PKG_VERSION").to_owned())],
            },
        }
    }

    /// Interns `v` in domain `d`.
    #[inline]
    pub fn id(&self, d: &Domain, v: &str) -> LabelId {
        d.id(&self.table, v)
    }

    /// Every stored family, in exposition order.
    pub fn families(&self) -> Vec<&dyn StoredFamily> {
        vec![
            &self.calls_active,
            &self.calls_started,
            &self.calls_ended,
            &self.call_duration,
            &self.call_participants_max,
            &self.legs_active,
            &self.legs_started,
            &self.legs_ended,
            &self.leg_duration,
            &self.leg_mos,
            &self.leg_mos_unavailable,
            &self.leg_packet_loss,
            &self.leg_alarm_seconds,
            &self.legs_with_alarm,
            &self.media_streams,
            &self.media_seconds,
            &self.video_height,
            &self.legs_encryption,
            &self.media_usage_seconds,
            &self.recordings_active,
            &self.recordings_started,
            &self.recordings_ended,
            &self.streamings_active,
            &self.streamings_started,
            &self.streamings_ended,
            &self.records,
            &self.records_duplicate,
            &self.records_missing,
            &self.records_invalid,
            &self.records_unmatched,
            &self.batches,
            &self.batches_rejected,
            &self.last_record_timestamp,
            &self.last_batch_timestamp,
            &self.sessions,
            &self.evicted_objects,
            &self.mos_codec_impairment,
            &self.mos_assumed_delay,
            &self.connections_active,
            &self.connections_rejected,
        ]
    }

    /// Writes every family, plus the overflow counters read from the label domains.
    pub fn encode(
        &self,
        enc: &mut prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::fmt::Result {
        let values = self.table.values();
        for f in self.families() {
            f.encode(enc, &values)?;
        }
        self.build_info.encode(enc, &values)?;
        LabelOverflow(self).encode(enc, &values)
    }
}

/// Everything the metrics hold, for a snapshot.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricsSnapshot {
    /// Domain key, admitted values, overflow counts (count cap, length cap).
    pub domains: Vec<(String, Vec<String>, [u64; 2])>,
    /// Family name and its series.
    pub families: Vec<(String, Vec<SeriesValue>)>,
}

impl Metrics {
    /// Families whose values are history (restored from snapshots). The rest are derived
    /// from the configuration, the tracker or the live process and rebuilt at start.
    fn stateful(&self) -> Vec<&dyn StoredFamily> {
        let derived = [
            self.mos_codec_impairment.desc.name,
            self.mos_assumed_delay.desc.name,
            self.connections_active.desc.name,
        ];
        self.families()
            .into_iter()
            .filter(|f| !derived.contains(&f.name()))
            .collect()
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let values = self.table.values();
        MetricsSnapshot {
            domains: Domains::KEYS
                .iter()
                .zip(self.d.all())
                .map(|(k, d)| (k.to_string(), d.members(), [d.overflow(), d.too_long()]))
                .collect(),
            families: self
                .stateful()
                .iter()
                .map(|f| (f.name().to_string(), f.snapshot(&values)))
                .collect(),
        }
    }

    /// Loads a snapshot into fresh metrics. Unknown families and domains (from another
    /// version) are skipped.
    pub fn restore(&self, snap: &MetricsSnapshot) {
        for (key, members, overflow) in &snap.domains {
            if let Some(i) = Domains::KEYS.iter().position(|k| k == key) {
                self.d.all()[i].restore(&self.table, members, *overflow);
            }
        }
        let id = |v: &str| self.table.intern(v);
        let fams = self.stateful();
        for (name, series) in &snap.families {
            if let Some(f) = fams.iter().find(|f| f.name() == name) {
                f.restore(series, &id);
            }
        }
    }
}

/// `cdr_exporter_label_overflow_total{label,cause}`, read from the domains at scrape time.
struct LabelOverflow<'a>(&'a Metrics);

impl EncodeFamily for LabelOverflow<'_> {
    fn encode(
        &self,
        enc: &mut prometheus_client::encoding::DescriptorEncoder<'_>,
        _: &[std::sync::Arc<str>],
    ) -> std::fmt::Result {
        let mut me = enc.encode_descriptor(
            "cdr_exporter_label_overflow",
            "Label values replaced by other: beyond the label's cap on distinct values (cause max_values) or longer than labels.max_value_bytes (cause too_long)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        let mut seen: Vec<&str> = Vec::new();
        let all = self.0.d.all();
        for d in all {
            // Several domains share the label name `reason`: sum them into one series.
            if seen.contains(&d.label) {
                continue;
            }
            seen.push(d.label);
            let same = || all.iter().filter(|o| o.label == d.label);
            for (cause, total) in [
                ("max_values", same().map(|o| o.overflow()).sum::<u64>()),
                ("too_long", same().map(|o| o.too_long()).sum::<u64>()),
            ] {
                let labels = [("label", d.label), ("cause", cause)];
                let mut fe = me.encode_family(&labels)?;
                fe.encode_counter::<prometheus_client::encoding::NoLabelSet, u64, f64>(
                    &total, None,
                )?;
            }
        }
        Ok(())
    }
}

/// Known label values, listed here so `metrics` needs nothing from `cdr`.
pub mod crate_known {
    pub const CALL_TYPES: &[&str] = &["coSpace", "adHoc", "lyncConferencing", "forwarding"];
    pub const LEG_TYPES: &[&str] = &["sip", "acano"];
    pub const REASONS: &[&str] = &[
        "apiInitiatedTeardown",
        "callDeactivated",
        "callEnded",
        "callMoved",
        "clientInitiatedTeardown",
        "confirmationTimeOut",
        "dnsFailure",
        "encryptionRequired",
        "error",
        "incorrectPasscode",
        "ivrTimeout",
        "ivrUnknownCall",
        "localTeardown",
        "participantLimitReached",
        "remoteBusy",
        "remoteRejected",
        "remoteTeardown",
        "ringingTimeout",
        "tenantParticipantLimitReached",
        "timeout",
        "unknownDestination",
    ];
    pub const RECORD_TYPES: &[&str] = &[
        "callStart",
        "callEnd",
        "callLegStart",
        "callLegUpdate",
        "callLegEnd",
        "recordingStart",
        "recordingEnd",
        "streamingStart",
        "streamingEnd",
    ];
    pub const AUDIO_CODECS: &[&str] = &[
        "g711u", "g711a", "g722", "g728", "g729", "g722_1", "g722_1c", "aac", "speexNb", "speexWb",
        "speexUwb", "isacWb", "isacSwb", "opus",
    ];
    pub const VIDEO_CODECS: &[&str] = &[
        "h261", "h263", "h263+", "h264", "h264Lync", "vp8", "rtVideo",
    ];
    pub const MEDIA_USAGES: &[&str] = &[
        "main_video_viewer",
        "main_video_contributor",
        "presentation_viewer",
        "presentation_contributor",
        "multistream_video",
    ];
    pub const INVALID_REASONS: &[&str] = &[
        "missing_correlator_index",
        "missing_type",
        "missing_object",
        "missing_id",
        "bad_number",
        "bad_boolean",
        "bad_time",
        "out_of_range",
        "absurd_index",
    ];
    pub const EVICT_REASONS: &[&str] = &[
        "max_age",
        "max_objects",
        "restart",
        "call_ended",
        "max_sessions",
    ];
}
