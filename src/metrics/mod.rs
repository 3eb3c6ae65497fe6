//! Every metric name, help text, unit and label set; the concurrent storage; exposition.

mod expose;
mod family;
mod labels;
mod process;

use prometheus_client::registry::Unit;

pub use expose::{Exposition, Format};
pub use family::{
    AtomicF64, Cell, Counter, Desc, EncodeFamily, Family, FloatCounter, FloatGauge, Gauge,
    Histogram, Info,
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
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits {
            call_bridge: 256,
            tenant: 2000,
            enumerated: 64,
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
}

impl Domains {
    fn all(&self) -> [&Domain; 12] {
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
    pub tracked_objects: Family<1, Gauge>,
    pub evicted_objects: Family<2, Counter>,
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
        let dom = |label, cap, known: &[&str]| Domain::new(&table, label, cap, known);
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
            evict_reason: dom("reason", e, &["max_age", "max_objects", "restart"]),
            invalid_reason: dom("reason", e, crate_known::INVALID_REASONS),
            reject_reason: dom("reason", e, crate_known::REJECT_REASONS),
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
            tracked_objects: Family::new(desc!("cdr_exporter_tracked_objects", "Objects held in correlation state", ["kind"])),
            evicted_objects: Family::new(desc!("cdr_exporter_evicted_objects", "Objects dropped from correlation state without an end record, by reason", ["kind", "reason"])),
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
    pub fn families(&self) -> Vec<&dyn EncodeFamily> {
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
            &self.tracked_objects,
            &self.evicted_objects,
            &self.build_info,
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
        LabelOverflow(self).encode(enc, &values)
    }
}

/// `cdr_exporter_label_overflow_total{label}`, read from the domains at scrape time.
struct LabelOverflow<'a>(&'a Metrics);

impl EncodeFamily for LabelOverflow<'_> {
    fn encode(
        &self,
        enc: &mut prometheus_client::encoding::DescriptorEncoder<'_>,
        _: &[std::sync::Arc<str>],
    ) -> std::fmt::Result {
        let mut me = enc.encode_descriptor(
            "cdr_exporter_label_overflow",
            "Label values replaced by other because the label's cap was reached",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        let mut seen: Vec<&str> = Vec::new();
        for d in self.0.d.all() {
            // Several domains share the label name `reason`: sum them into one series.
            if seen.contains(&d.label) {
                continue;
            }
            seen.push(d.label);
            let total: u64 = self
                .0
                .d
                .all()
                .iter()
                .filter(|o| o.label == d.label)
                .map(|o| o.overflow())
                .sum();
            let labels = [("label", d.label)];
            let mut fe = me.encode_family(&labels)?;
            fe.encode_counter::<prometheus_client::encoding::NoLabelSet, u64, f64>(&total, None)?;
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
    pub const INVALID_REASONS: &[&str] = &[
        "missing_correlator_index",
        "missing_type",
        "missing_object",
        "missing_id",
        "bad_number",
        "bad_boolean",
        "bad_time",
        "stale_session",
    ];
    pub const REJECT_REASONS: &[&str] = &[
        "empty",
        "invalid_utf8",
        "doctype",
        "wrong_root",
        "missing_session",
        "too_deep",
        "truncated",
        "malformed_xml",
        "too_large",
        "read_error",
    ];
}
