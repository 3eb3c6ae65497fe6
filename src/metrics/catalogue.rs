//! Every metric family, declared once: name, help, unit, type, typed labels and buckets.
//! Storage, exposition, snapshots and the README's table (checked by `tests/catalogue.rs`)
//! all come from here.
//!
//! Cardinality rule: a family carries one sender identity (`call_bridge`, `switch`, `node`)
//! or one tenant-like label (`tenant`, `domain`), never both, beside small enumerations; see
//! README "Cardinality".

use std::collections::BTreeMap;
use std::sync::Arc;

use super::encode::{Scraped, Value};
use super::family::{
    Budget, Counter, Desc, Family, FloatCounter, FloatGauge, Gauge, Histogram, SeriesValue, Shape,
    StoredFamily, Type,
};
use super::vocab::*;
use super::{LabelLimits, TenantDetail};

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
/// Jitter buckets: 5 ms to 0.5 s.
pub const JITTER_BUCKETS: &[f64] = &[0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5];
/// Round-trip buckets: 20 ms to 2 s (G.114's 150 ms one way is 0.3 s round trip).
pub const ROUNDTRIP_BUCKETS: &[f64] = &[0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0];
/// HTTP answer times: 0.5 ms to 10 s.
pub const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Video heights: 144p to 4K.
pub const HEIGHT_BUCKETS: &[f64] = &[
    144.0, 240.0, 360.0, 480.0, 576.0, 720.0, 1080.0, 1440.0, 2160.0,
];

/// How each family is shaped, from the configuration.
#[derive(Clone, Debug, Default)]
pub struct FamilyOptions {
    pub tenant_detail: TenantDetail,
    /// Family name (as exposed) → label names to drop (`labels.drop`).
    pub drops: BTreeMap<String, Vec<String>>,
}

/// A family or label named in `labels.drop` that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("no metric family {0:?} (see README \"Metrics\")")]
    UnknownFamily(String),
    #[error("metric family {family:?} has no label {label:?} (it has {labels:?})")]
    UnknownLabel {
        family: String,
        label: String,
        labels: Vec<&'static str>,
    },
}

fn shape(d: &Desc, opts: &FamilyOptions) -> Result<Shape, ShapeError> {
    let compact = opts.tenant_detail == TenantDetail::Compact;
    let mut dropped = Vec::new();
    let mut drop =
        |label: &str| -> Result<(), ShapeError> {
            let i = d.labels.iter().position(|l| *l == label).ok_or_else(|| {
                ShapeError::UnknownLabel {
                    family: d.name.into(),
                    label: label.into(),
                    labels: d.labels.to_vec(),
                }
            })?;
            if !dropped.contains(&i) {
                dropped.push(i);
            }
            Ok(())
        };
    if compact {
        for l in d.compact_drops {
            drop(l)?;
        }
    }
    for l in opts.drops.get(d.name).into_iter().flatten() {
        drop(l)?;
    }
    Ok(Shape {
        enabled: !(compact && d.full_detail_only),
        dropped,
    })
}

macro_rules! opt {
    () => {
        None
    };
    ($x:expr) => {
        Some($x)
    };
}
macro_rules! or_empty {
    () => {
        &[]
    };
    ($x:expr) => {
        $x
    };
}
macro_rules! flag {
    () => {
        false
    };
    ($x:literal) => {
        $x
    };
}

/// The stored families: `field: Cell<(Labels, ...)> = "name", "help" [, unit "u"]
/// [, buckets B] [, full] [, compact_drops [..]] [, derived];`. `full`: only with
/// `labels.tenant_detail = "full"`; `derived`: not history, so not snapshotted (rebuilt from
/// the configuration, or about this process only: connections, HTTP requests).
macro_rules! stored {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident : $cell:ident < $labels:ty > = $name:literal, $help:literal
        $(, unit $unit:literal)?
        $(, buckets $buckets:expr)?
        $(, full $full:literal)?
        $(, compact_drops $cd:expr)?
        $(, derived $derived:literal)?
        ;
    )*) => {
        /// Every stored family. Shared as `Arc<Metrics>`; every update is lock-free apart
        /// from the map shard a new series is inserted into.
        pub struct Metrics {
            pub vocab: Vocabulary,
            pub budget: Arc<Budget>,
            $( $(#[doc = $doc])* pub $field: Family<$labels, $cell>, )*
        }

        impl Metrics {
            pub fn new(limits: &LabelLimits, opts: &FamilyOptions) -> Result<Metrics, ShapeError> {
                let vocab = Vocabulary::new(limits);
                let budget = Arc::new(Budget::new(limits.max_series));
                let known: Vec<&str> = STORED.iter().map(|d| d.name).collect();
                for f in opts.drops.keys() {
                    if !known.contains(&f.as_str()) {
                        return Err(ShapeError::UnknownFamily(f.clone()));
                    }
                }
                let mut i = 0;
                let mut next = || { i += 1; STORED[i - 1] };
                Ok(Metrics {
                    $( $field: {
                        let d = next();
                        Family::new(d, shape(&d, opts)?, &vocab, budget.clone())
                    }, )*
                    vocab,
                    budget,
                })
            }

            /// Every stored family, in exposition order.
            pub fn stored(&self) -> [&dyn StoredFamily; STORED.len()] {
                [ $( &self.$field, )* ]
            }

            /// Families whose values are history (restored from snapshots).
            fn stateful(&self) -> Vec<&dyn StoredFamily> {
                let derived = [ $( flag!($($derived)?), )* ];
                self.stored().into_iter().zip(derived).filter(|(_, d)| !d).map(|(f, _)| f).collect()
            }
        }

        /// The stored families' descriptions, in exposition order.
        pub const STORED: [Desc; [$(stringify!($field)),*].len()] = [ $(
            Desc {
                name: $name,
                help: $help,
                unit: opt!($($unit)?),
                kind: <$cell as super::family::Cell>::TYPE,
                labels: <$labels as LabelSet>::NAMES,
                buckets: or_empty!($($buckets)?),
                full_detail_only: flag!($($full)?),
                compact_drops: or_empty!($($cd)?),
            },
        )* ];
    };
}

stored! {
    // Calls, by Call Bridge.
    calls_active: Gauge<(CallBridge, CallType)> = "cms_calls_active", "Calls in progress (callStart seen, callEnd not yet), by Call Bridge";
    calls_started: Counter<(CallBridge, CallType)> = "cms_calls_started_total", "Calls started (callStart records), by Call Bridge";
    calls_ended: Counter<(CallBridge, CallType)> = "cms_calls_ended_total", "Calls ended (callEnd records), by Call Bridge";
    call_duration: Histogram<(CallBridge,)> = "cms_call_duration_seconds", "Call duration from callEnd durationSeconds, by Call Bridge", unit "seconds", buckets DURATION_BUCKETS;
    call_participants_max: Histogram<(CallBridge,)> = "cms_call_participants_max", "Most call legs simultaneously active in a call (callEnd callLegsMaxActive), by Call Bridge", buckets PARTICIPANT_BUCKETS;
    // Call legs, by Call Bridge.
    legs_active: Gauge<(CallBridge, LegType, LegDirection)> = "cms_call_legs_active", "Call legs in progress (callLegStart seen, callLegEnd not yet), by Call Bridge";
    legs_started: Counter<(CallBridge, LegType, LegDirection)> = "cms_call_legs_started_total", "Call legs started (callLegStart records), by Call Bridge";
    legs_started_by_kind: Counter<(CallBridge, LegSubType, GuestConnection)> = "cms_call_legs_started_by_kind_total", "Call legs started by participant kind: callLegStart subType (none: plain SIP or app) and guestConnection, by Call Bridge";
    legs_ended: Counter<(CallBridge, EndReason, RemoteTeardown)> = "cms_call_legs_ended_total", "Call legs ended (callLegEnd records) by reason and by which side tore down, by Call Bridge";
    leg_duration: Histogram<(CallBridge,)> = "cms_call_leg_duration_seconds", "Call leg duration from callLegEnd durationSeconds, by Call Bridge", unit "seconds", buckets DURATION_BUCKETS;
    // Call quality, by Call Bridge.
    leg_mos: Histogram<(CallBridge,)> = "cms_call_leg_mos", "Estimated listening-quality MOS of the audio the Meeting Server received from each leg (E-model from CMS burst/gap packet statistics), by Call Bridge", buckets MOS_BUCKETS;
    leg_mos_unavailable: Counter<(CallBridge, MosUnavailable)> = "cms_call_leg_mos_unavailable_total", "Call legs ended without a MOS estimate, by reason (no_audio, no_packet_statistics, invalid_values), by Call Bridge";
    leg_packet_loss: Histogram<(CallBridge, Media)> = "cms_call_leg_packet_loss_ratio", "Packet loss of received media per leg (time-weighted burst and gap density), ratio 0-1, by Call Bridge", buckets LOSS_BUCKETS;
    leg_alarm_seconds: FloatCounter<(CallBridge, Alarm)> = "cms_call_leg_alarm_seconds_total", "Time legs spent in an alarm condition (durationPercentage x durationSeconds / 100), by Call Bridge", unit "seconds";
    legs_with_alarm: Counter<(CallBridge, Alarm)> = "cms_call_legs_with_alarm_total", "Call legs that raised an alarm of this type at least once, by Call Bridge";
    media_streams: Counter<(CallBridge, Media, MediaDirection, Codec)> = "cms_call_leg_media_streams_total", "Media streams of ended legs by codec (one per rx/tx audio/video section), by Call Bridge";
    media_seconds: FloatCounter<(CallBridge, Media, MediaDirection, Codec)> = "cms_call_leg_media_seconds_total", "Leg time by media codec (the leg's durationSeconds per stream present), by Call Bridge", unit "seconds";
    video_height: Histogram<(CallBridge, MediaDirection)> = "cms_call_leg_video_max_height_pixels", "Largest video height received (rx) and sent (tx) per leg (maxSizeHeight), by Call Bridge", unit "pixels", buckets HEIGHT_BUCKETS;
    legs_encryption: Counter<(CallBridge, Encryption)> = "cms_call_legs_encryption_total", "Ended legs by media encryption (encrypted, unencrypted, both, none), by Call Bridge";
    media_usage_seconds: FloatCounter<(CallBridge, MediaUsage)> = "cms_call_leg_media_usage_seconds_total", "Leg time spent viewing or contributing main video and presentation, and in multistream (mediaUsagePercentages x durationSeconds / 100), by Call Bridge", unit "seconds";
    // Recordings and streamings, by Call Bridge.
    recordings_active: Gauge<(CallBridge,)> = "cms_recordings_active", "Recordings in progress, by Call Bridge";
    recordings_started: Counter<(CallBridge,)> = "cms_recordings_started_total", "Recordings started (recordingStart records), by Call Bridge";
    recordings_ended: Counter<(CallBridge,)> = "cms_recordings_ended_total", "Recordings ended (recordingEnd records), by Call Bridge";
    streamings_active: Gauge<(CallBridge,)> = "cms_streamings_active", "Streamings in progress, by Call Bridge";
    streamings_started: Counter<(CallBridge,)> = "cms_streamings_started_total", "Streamings started (streamingStart records), by Call Bridge";
    streamings_ended: Counter<(CallBridge,)> = "cms_streamings_ended_total", "Streamings ended (streamingEnd records), by Call Bridge";
    // By tenant: the compact set, and more with labels.tenant_detail = "full".
    tenant_calls_active: Gauge<(Tenant,)> = "cms_tenant_calls_active", "Calls in progress, by tenant (none: calls without a tenant; unknown: never seen start)";
    tenant_calls_started: Counter<(Tenant,)> = "cms_tenant_calls_started_total", "Calls started (callStart records), by tenant";
    tenant_calls_ended: Counter<(Tenant,)> = "cms_tenant_calls_ended_total", "Calls ended (callEnd records), by tenant";
    tenant_legs_active: Gauge<(Tenant,)> = "cms_tenant_call_legs_active", "Call legs in progress, by tenant of their call";
    tenant_legs_started: Counter<(Tenant,)> = "cms_tenant_call_legs_started_total", "Call legs started, by tenant of their call when the leg started (unknown if the call had not started yet)";
    tenant_legs_ended: Counter<(Tenant, EndReason)> = "cms_tenant_call_legs_ended_total", "Call legs ended, by tenant (and by reason with labels.tenant_detail = full)", compact_drops &["reason"];
    tenant_leg_mos: Histogram<(Tenant,)> = "cms_tenant_call_leg_mos", "Estimated listening-quality MOS of the audio the Meeting Server received from each leg, by tenant", buckets MOS_BUCKETS;
    tenant_leg_mos_unavailable: Counter<(Tenant,)> = "cms_tenant_call_leg_mos_unavailable_total", "Call legs ended without a MOS estimate, by tenant";
    tenant_legs_with_alarm: Counter<(Tenant, Alarm)> = "cms_tenant_call_legs_with_alarm_total", "Call legs that raised an alarm of this type at least once, by tenant";
    tenant_recordings_active: Gauge<(Tenant,)> = "cms_tenant_recordings_active", "Recordings in progress, by tenant of the call recorded (unknown: call not seen)";
    tenant_recordings_started: Counter<(Tenant,)> = "cms_tenant_recordings_started_total", "Recordings started (recordingStart records), by tenant of the call recorded";
    tenant_streamings_active: Gauge<(Tenant,)> = "cms_tenant_streamings_active", "Streamings in progress, by tenant of the call streamed (unknown: call not seen)";
    tenant_streamings_started: Counter<(Tenant,)> = "cms_tenant_streamings_started_total", "Streamings started (streamingStart records), by tenant of the call streamed";
    tenant_leg_packet_loss: Histogram<(Tenant, Media)> = "cms_tenant_call_leg_packet_loss_ratio", "Packet loss of received media per leg, ratio 0-1, by tenant (labels.tenant_detail = full)", buckets LOSS_BUCKETS, full true;
    tenant_leg_duration: Histogram<(Tenant,)> = "cms_tenant_call_leg_duration_seconds", "Call leg duration, by tenant (labels.tenant_detail = full)", unit "seconds", buckets DURATION_BUCKETS, full true;
    tenant_call_duration: Histogram<(Tenant,)> = "cms_tenant_call_duration_seconds", "Call duration, by tenant (labels.tenant_detail = full)", unit "seconds", buckets DURATION_BUCKETS, full true;
    // FreeSWITCH legs (one CDR each), by switch.
    fs_legs: Counter<(Switch, LegSide, CallDirection)> = "freeswitch_cdr_legs_total", "FreeSWITCH legs ended (CDRs applied, duplicates excluded), by switch";
    fs_legs_answered: Counter<(Switch, LegSide, CallDirection)> = "freeswitch_cdr_legs_answered_total", "FreeSWITCH legs that were answered (answer_epoch or billsec set), by switch";
    fs_hangups: Counter<(Switch, HangupCause, Q850)> = "freeswitch_cdr_leg_hangups_total", "FreeSWITCH legs by hangup_cause and hangup_cause_q850, by switch";
    fs_duration: Histogram<(Switch,)> = "freeswitch_cdr_leg_duration_seconds", "FreeSWITCH leg duration (duration: creation to hangup), by switch", unit "seconds", buckets DURATION_BUCKETS;
    fs_billsec: Histogram<(Switch,)> = "freeswitch_cdr_leg_billed_seconds", "FreeSWITCH answered leg time (billsec: answer to hangup), answered legs only, by switch", unit "seconds", buckets DURATION_BUCKETS;
    fs_mos: Histogram<(Switch,)> = "freeswitch_cdr_leg_mos", "MOS FreeSWITCH reported for the audio each leg received (call-stats audio inbound mos), legs with media only, by switch", buckets MOS_BUCKETS;
    fs_estimated_mos: Histogram<(Switch,)> = "freeswitch_cdr_leg_estimated_mos", "MOS of the same audio by our simplified model (loss = flaw_total / media_packet_count, jitter = sqrt(jitter_max_variance), latency 0), by switch", buckets MOS_BUCKETS;
    fs_mos_unavailable: Counter<(Switch, FsMosUnavailable)> = "freeswitch_cdr_leg_mos_unavailable_total", "FreeSWITCH legs without a usable MOS, by reason (no_call_stats, no_media: FreeSWITCH's 4.50 for a leg that received nothing, invalid_values), by switch";
    fs_packet_loss: Histogram<(Switch,)> = "freeswitch_cdr_leg_packet_loss_ratio", "Audio received per leg that FreeSWITCH counted as flawed (flaw_total / media_packet_count, at most 1), by switch", buckets LOSS_BUCKETS;
    fs_jitter: Histogram<(Switch,)> = "freeswitch_cdr_leg_jitter_seconds", "Largest inter-arrival jitter of the audio received per leg (sqrt of jitter_max_variance), by switch", unit "seconds", buckets JITTER_BUCKETS;
    fs_codecs: Counter<(Switch, MediaDirection, FsCodec)> = "freeswitch_cdr_leg_codecs_total", "FreeSWITCH legs by audio codec (read_codec as rx, write_codec as tx), by switch";
    fs_duplicates: Counter<(Switch,)> = "freeswitch_cdr_duplicates_total", "FreeSWITCH CDRs received again (same switch and leg uuid, e.g. a retry after a lost 200) and not counted";
    fs_invalid: Counter<(Switch, FsInvalidReason)> = "freeswitch_cdr_invalid_fields_total", "Fields of FreeSWITCH CDRs that were present but unusable, by reason (the rest of the CDR was applied)";
    fs_last_received: FloatGauge<(Switch,)> = "freeswitch_cdr_last_received_timestamp_seconds", "When the exporter last accepted a CDR from the switch (exporter clock)", unit "seconds";
    // FreeSWITCH legs, by domain (domain_name, else accountcode).
    fs_domain_legs: Counter<(FsDomain, HangupCause)> = "freeswitch_cdr_domain_legs_total", "FreeSWITCH legs ended, by domain (and by hangup_cause with labels.tenant_detail = full)", compact_drops &["hangup_cause"];
    fs_domain_legs_answered: Counter<(FsDomain,)> = "freeswitch_cdr_domain_legs_answered_total", "FreeSWITCH legs that were answered, by domain";
    fs_domain_mos: Histogram<(FsDomain,)> = "freeswitch_cdr_domain_leg_mos", "MOS FreeSWITCH reported for the audio each leg received, legs with media only, by domain", buckets MOS_BUCKETS;
    fs_domain_mos_unavailable: Counter<(FsDomain,)> = "freeswitch_cdr_domain_leg_mos_unavailable_total", "FreeSWITCH legs without a usable MOS, by domain";
    fs_domain_estimated_mos: Histogram<(FsDomain,)> = "freeswitch_cdr_domain_leg_estimated_mos", "MOS by our simplified model, by domain (labels.tenant_detail = full)", buckets MOS_BUCKETS, full true;
    fs_domain_packet_loss: Histogram<(FsDomain,)> = "freeswitch_cdr_domain_leg_packet_loss_ratio", "Audio received per leg counted as flawed, by domain (labels.tenant_detail = full)", buckets LOSS_BUCKETS, full true;
    // Kamailio/rtpengine calls (one report each), by node.
    rtp_calls: Counter<(Node, RtpEvent)> = "kamailio_rtpengine_calls_total", "Calls rtpengine reported on through Kamailio (duplicates excluded), by how they ended, by node";
    rtp_mos: Histogram<(Node,)> = "kamailio_rtpengine_call_mos", "Average MOS rtpengine computed for the call from RTCP receiver reports (mos_average), by node", buckets MOS_BUCKETS;
    rtp_mos_min: Histogram<(Node,)> = "kamailio_rtpengine_call_mos_min", "Lowest MOS rtpengine computed during the call (mos_min): what its worst moment sounded like, by node", buckets MOS_BUCKETS;
    rtp_estimated_mos: Histogram<(Node,)> = "kamailio_rtpengine_call_estimated_mos", "MOS by our simplified model from the average's packet loss, jitter and round trip (as latency), by node", buckets MOS_BUCKETS;
    rtp_mos_unavailable: Counter<(Node, RtpMosUnavailable)> = "kamailio_rtpengine_call_mos_unavailable_total", "Calls without an rtpengine MOS, by reason (not_measured: no usable RTCP; not_answered: cancel or failure; invalid_values), by node";
    rtp_packet_loss: Histogram<(Node,)> = "kamailio_rtpengine_call_packet_loss_ratio", "Packet loss of the call's average MOS sample (mos_average_packetloss / 100), by node", buckets LOSS_BUCKETS;
    rtp_jitter: Histogram<(Node,)> = "kamailio_rtpengine_call_jitter_seconds", "Jitter of the call's average MOS sample (mos_average_jitter), by node", unit "seconds", buckets JITTER_BUCKETS;
    rtp_roundtrip: Histogram<(Node,)> = "kamailio_rtpengine_call_roundtrip_seconds", "End-to-end round trip of the call's average MOS sample (mos_average_roundtrip, µs upstream), by node", unit "seconds", buckets ROUNDTRIP_BUCKETS;
    rtp_duplicates: Counter<(Node,)> = "kamailio_rtpengine_reports_duplicate_total", "Reports received again (same node, Call-ID, tags and labels) and not counted";
    rtp_invalid: Counter<(Node, RtpInvalidReason)> = "kamailio_rtpengine_report_invalid_fields_total", "Values of reports that were present but unusable, by reason (the rest of the report was applied)";
    rtp_last_received: FloatGauge<(Node,)> = "kamailio_rtpengine_last_report_timestamp_seconds", "When the exporter last accepted a report from the node (exporter clock)", unit "seconds";
    // Kamailio/rtpengine calls, by tenant (the report's tenant, e.g. the SIP domain).
    rtp_tenant_calls: Counter<(RtpTenant,)> = "kamailio_rtpengine_tenant_calls_total", "Calls rtpengine reported on, by tenant";
    rtp_tenant_mos: Histogram<(RtpTenant,)> = "kamailio_rtpengine_tenant_call_mos", "Average MOS rtpengine computed for the call, by tenant", buckets MOS_BUCKETS;
    rtp_tenant_mos_min: Histogram<(RtpTenant,)> = "kamailio_rtpengine_tenant_call_mos_min", "Lowest MOS rtpengine computed during the call, by tenant (labels.tenant_detail = full)", buckets MOS_BUCKETS, full true;
    rtp_tenant_mos_unavailable: Counter<(RtpTenant,)> = "kamailio_rtpengine_tenant_call_mos_unavailable_total", "Calls without an rtpengine MOS, by tenant";
    rtp_tenant_packet_loss: Histogram<(RtpTenant,)> = "kamailio_rtpengine_tenant_call_packet_loss_ratio", "Packet loss of the call's average MOS sample, by tenant (labels.tenant_detail = full)", buckets LOSS_BUCKETS, full true;
    // The MOS model's assumptions in force (from the configuration).
    mos_codec_impairment: FloatGauge<(Codec, CodecParameter)> = "cdr_exporter_mos_codec_impairment", "Codec impairment values in force for the MOS estimate (ie, bpl)", derived true;
    mos_assumed_delay: FloatGauge<()> = "cdr_exporter_mos_assumed_delay_seconds", "One-way delay Ta assumed by the MOS estimate", unit "seconds", derived true;
    // The receiver itself.
    records: Counter<(CallBridge, RecordType)> = "cdr_exporter_records_total", "CDR records applied, by type (duplicates excluded)";
    records_duplicate: Counter<(CallBridge,)> = "cdr_exporter_records_duplicate_total", "CDR records received again (same session and correlatorIndex) and skipped";
    records_missing: Counter<(CallBridge,)> = "cdr_exporter_records_missing_total", "CDR records lost before reaching the exporter (correlatorIndex gaps and numPreceedingRecordsMissing, each counted once)";
    records_invalid: Counter<(CallBridge, InvalidReason)> = "cdr_exporter_records_invalid_total", "CDR records in well-formed batches that could not be used, by reason";
    records_unmatched: Counter<(CallBridge, RecordType)> = "cdr_exporter_records_unmatched_total", "Update and end records for calls, legs, recordings or streamings the exporter was not tracking";
    batches: Counter<(CallBridge,)> = "cdr_exporter_batches_total", "CDR batches (POST bodies) accepted and acknowledged";
    batches_rejected: Counter<(Source, RejectReason)> = "cdr_exporter_batches_rejected_total", "Requests rejected whole (CMS batches, FreeSWITCH CDRs, rtpengine reports), by source and reason";
    dedupe_forgotten: Counter<(Source, ForgetReason)> = "cdr_exporter_dedupe_forgotten_total", "Entries the FreeSWITCH and rtpengine dedupe memories forgot (dedupe.max_age_seconds, dedupe.max_entries): a retry after that would count again";
    last_record_timestamp: FloatGauge<(CallBridge,)> = "cdr_exporter_last_record_timestamp_seconds", "Time attribute of the newest record applied (Call Bridge clock)", unit "seconds";
    last_batch_timestamp: FloatGauge<(CallBridge,)> = "cdr_exporter_last_batch_timestamp_seconds", "When the exporter last accepted a batch from the Call Bridge (exporter clock)", unit "seconds";
    sessions: Counter<(CallBridge,)> = "cdr_exporter_sessions_total", "CDR sessions seen per Call Bridge; each new one after the first is a Call Bridge restart";
    evicted_objects: Counter<(ObjectKind, EvictReason)> = "cdr_exporter_evicted_objects_total", "Objects dropped from correlation state without an end record, by reason";
    http_requests: Counter<(HttpPath, HttpCode)> = "cdr_exporter_http_requests_total", "HTTP requests answered, by route (other: no route) and status code", derived true;
    http_duration: Histogram<(HttpPath,)> = "cdr_exporter_http_request_duration_seconds", "Time from request to answer (for POSTs: body read, journal and apply), by route", unit "seconds", buckets HTTP_BUCKETS, derived true;
    connections_active: Gauge<()> = "cdr_exporter_connections_active", "HTTP connections open", derived true;
    connections_rejected: Counter<(ConnectionReject,)> = "cdr_exporter_connections_rejected_total", "Connections closed at once: over server.max_connections, or a failed TLS handshake";
}

/// Declares the scrape-time families (values read from elsewhere at each scrape) as statics,
/// and [`SCRAPED`] listing them in exposition order.
macro_rules! scraped {
    ($( $(#[doc = $doc:literal])* $id:ident : $kind:ident [$($l:literal),*] = $name:literal, $help:literal $(, unit $unit:literal)? ; )*) => {
        $(
            $(#[doc = $doc])*
            pub static $id: Desc = Desc {
                name: $name,
                help: $help,
                unit: opt!($($unit)?),
                kind: Type::$kind,
                labels: &[$($l),*],
                buckets: &[],
                full_detail_only: false,
                compact_drops: &[],
            };
        )*
        /// The scrape-time families, in exposition order.
        pub static SCRAPED: &[&Desc] = &[$(&$id),*];
    };
}

scraped! {
    BUILD_INFO: Info ["version", "revision", "rustc"] = "cdr_exporter_build_info", "Build information of cdr-exporter: version, git revision, compiler version";
    DEDUPE_ENTRIES: Gauge ["source"] = "cdr_exporter_dedupe_entries", "FreeSWITCH legs and rtpengine calls remembered to recognise retries (dedupe.max_entries each)";
    TRACKED_OBJECTS: Gauge ["kind"] = "cdr_exporter_tracked_objects", "Objects held in correlation state (placeholder calls included), and sessions";
    LABEL_OVERFLOW: Counter ["label", "cause"] = "cdr_exporter_label_overflow_total", "Label values replaced by other: beyond the label's cap on distinct values (cause max_values) or longer than labels.max_value_bytes (cause too_long)";
    SERIES: Gauge [] = "cdr_exporter_series", "Series stored in all families (labels.max_series is the budget)";
    SERIES_BUDGET_EXCEEDED: Counter ["family"] = "cdr_exporter_series_budget_exceeded_total", "Updates reported under the family's other series because labels.max_series was reached";
    LOG_LINES_SUPPRESSED: Counter [] = "cdr_exporter_log_lines_suppressed_total", "Log lines not written because their call site wrote 10 in the last 10 s";
    JOURNAL_APPENDS: Counter [] = "cdr_exporter_journal_appends_total", "Batches written to the journal";
    JOURNAL_WRITTEN: Counter [] = "cdr_exporter_journal_written_bytes_total", "Bytes written to the journal", unit "bytes";
    JOURNAL_FSYNCS: Counter [] = "cdr_exporter_journal_fsyncs_total", "fsync calls on the journal (one per group commit)";
    JOURNAL_FSYNC: Counter [] = "cdr_exporter_journal_fsync_seconds_total", "Time spent in journal fsync", unit "seconds";
    JOURNAL_ERRORS: Counter [] = "cdr_exporter_journal_errors_total", "Failed journal writes (each answered 503)";
    RECOVERY_REPLAYED: Gauge [] = "cdr_exporter_recovery_replayed_batches", "Journaled batches replayed at the last start";
    RECOVERY_CORRUPT: Gauge [] = "cdr_exporter_recovery_corrupt_bytes", "Journal bytes that were not a valid entry (torn writes, damage), skipped at the last start", unit "bytes";
    RECOVERY_LOST: Gauge [] = "cdr_exporter_recovery_lost_batches", "Acknowledged batches that could not be replayed at the last start (damaged journal entries, or a journal that no longer reaches the state loaded)";
    RECOVERY_UNREADABLE: Gauge [] = "cdr_exporter_recovery_unreadable_snapshots", "Snapshots that could not be read at the last start (moved to snapshots/damaged)";
    RECOVERY_INCOMPLETE: Gauge [] = "cdr_exporter_recovery_incomplete", "1 if the last start could not rebuild the whole state (see cdr_exporter_recovery_lost_batches)";
    SNAPSHOT_LAST_SUCCESS: Gauge [] = "cdr_exporter_snapshot_last_success_timestamp_seconds", "When the last snapshot was written", unit "seconds";
    SNAPSHOT_LAST_DURATION: Gauge [] = "cdr_exporter_snapshot_last_duration_seconds", "How long the last snapshot took, copy, serialisation and write", unit "seconds";
    SNAPSHOT_LAST_GATE: Gauge [] = "cdr_exporter_snapshot_last_gate_seconds", "How long the last snapshot held batches back (copying the state)", unit "seconds";
    QUARANTINE_FILES: Gauge [] = "cdr_exporter_quarantine_files", "Rejected bodies kept in data_dir/quarantine";
    QUARANTINE_BYTES: Gauge [] = "cdr_exporter_quarantine_bytes", "Bytes of rejected bodies kept in data_dir/quarantine", unit "bytes";
    QUARANTINE_DROPPED: Counter [] = "cdr_exporter_quarantine_dropped_total", "Rejected bodies not kept or removed to stay within quarantine_max_bytes and quarantine_max_files";
    PROCESS_CPU: Counter [] = "process_cpu_seconds_total", "Total user and system CPU time spent in seconds", unit "seconds";
    PROCESS_RSS: Gauge [] = "process_resident_memory_bytes", "Resident memory size in bytes", unit "bytes";
    PROCESS_VMEM: Gauge [] = "process_virtual_memory_bytes", "Virtual memory size in bytes", unit "bytes";
    PROCESS_OPEN_FDS: Gauge [] = "process_open_fds", "Number of open file descriptors";
    PROCESS_MAX_FDS: Gauge [] = "process_max_fds", "Maximum number of open file descriptors";
    PROCESS_START: Gauge [] = "process_start_time_seconds", "Start time of the process since unix epoch in seconds", unit "seconds";
    PROCESS_THREADS: Gauge [] = "process_threads", "Number of OS threads in the process";
}

impl Metrics {
    /// The scrape-time families that come from the metrics themselves.
    pub fn collect(&self, out: &mut Scraped) {
        out.add(
            &BUILD_INFO,
            &[
                env!("CARGO_PKG_VERSION"),
                env!("CDR_BUILD_REVISION"),
                env!("CDR_BUILD_RUSTC"),
            ],
            Value::U64(1),
        );
        // Several label types share the name `reason`: sum them into one series per cause.
        let domains = self.vocab.all();
        let mut seen: Vec<&str> = Vec::new();
        for (_, d) in &domains {
            let label = d.label();
            if seen.contains(&label) {
                continue;
            }
            seen.push(label);
            let mut total = [0u64; 2];
            for (_, o) in domains.iter().filter(|(_, o)| o.label() == label) {
                let ov = o.overflow();
                total[0] += ov[0];
                total[1] += ov[1];
            }
            out.add(
                &LABEL_OVERFLOW,
                &[label, "max_values"],
                Value::U64(total[0]),
            );
            out.add(&LABEL_OVERFLOW, &[label, "too_long"], Value::U64(total[1]));
        }
        out.add(&SERIES, &[], Value::U64(self.budget.used() as u64));
        for f in self.stored().into_iter().filter(|f| f.enabled()) {
            out.add(
                &SERIES_BUDGET_EXCEEDED,
                &[f.desc().name],
                Value::U64(f.budget_exceeded()),
            );
        }
    }
}

/// Everything the metrics hold, for a snapshot.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricsSnapshot {
    /// Label type, admitted values, overflow counts (count cap, length cap).
    pub domains: Vec<(String, Vec<String>, [u64; 2])>,
    /// Family name and its series.
    pub families: Vec<(String, Vec<SeriesValue>)>,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let values = self.vocab.table.values();
        MetricsSnapshot {
            domains: self
                .vocab
                .all()
                .into_iter()
                .map(|(k, d)| (k.to_string(), d.members(), d.overflow()))
                .collect(),
            families: self
                .stateful()
                .iter()
                .map(|f| (f.desc().name.to_string(), f.snapshot(&values)))
                .collect(),
        }
    }

    /// Loads a snapshot into fresh metrics. Unknown families and domains (from another
    /// version) are skipped.
    pub fn restore(&self, snap: &MetricsSnapshot) {
        let domains = self.vocab.all();
        for (key, members, overflow) in &snap.domains {
            if let Some((_, d)) = domains.iter().find(|(k, _)| k == key) {
                d.restore(&self.vocab.table, members, *overflow);
            }
        }
        let id = |v: &str| self.vocab.table.intern(v);
        let fams = self.stateful();
        for (name, series) in &snap.families {
            if let Some(f) = fams.iter().find(|f| f.desc().name == name) {
                f.restore(series, &id);
            }
        }
    }
}
