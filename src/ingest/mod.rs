//! `apply(batch)`: CMS records become tracker transitions, and transitions become metric
//! updates, in one small function per record type; FreeSWITCH CDRs and rtpengine reports
//! become metric updates once each ([`freeswitch`], [`rtpengine`]).

mod freeswitch;
mod rtpengine;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::cdr::{self, Batch, CallRef, Entry, ObjectRef, PacketStatistics, Record, RecordType};
use crate::dedupe::{self, Dedupe, Forgotten};
use crate::metrics::vocab::{self as v, known};
use crate::metrics::{Counter, Family, Gauge, Label, LabelId, Metrics, NONE, UNKNOWN};
use crate::quality::{self, BurstGap, CodecTable};
use crate::tracker::{
    self, CallEnded, CallStarted, EvictReason, Evicted, Eviction, Index, Kind, Leg, LegStarted,
    LegUpdated, Limits, Media, SessionState, Tracker, Unknown, FRESH_INDEX,
};
use crate::warn_limited;

/// Configured GUID/id → readable name maps for the `call_bridge` and `tenant` labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub call_bridges: HashMap<String, String>,
    pub tenants: HashMap<String, String>,
}

/// What the MOS estimate assumes (from `[mos]` in the config).
#[derive(Clone, Debug, Default)]
pub struct MosSettings {
    pub codecs: CodecTable,
    pub assumed_delay_ms: f64,
}

/// Where a batch came from, beside what its body says.
#[derive(Clone, Copy, Debug, Default)]
pub struct Origin<'a> {
    /// The sender's identity from the receiver URI (`?call_bridge=`, `?system_id=`,
    /// `?switch=`, `?node=`).
    pub query_sender: Option<&'a str>,
    pub peer: Option<IpAddr>,
}

/// What one batch did, for the log line and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub applied: u64,
    pub duplicates: u64,
    pub invalid: u64,
    pub missing: u64,
    pub evicted: u64,
}

/// The tracker stores the metrics' own label types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vocab;

impl tracker::Labels for Vocab {
    type CallBridge = v::CallBridge;
    type Tenant = v::Tenant;
    type CallType = v::CallType;
    type LegType = v::LegType;
    type Direction = v::LegDirection;
}

macro_rules! handles {
    ($($t:ty),*) => {$(
        impl tracker::Handle for $t {
            fn index(self) -> u32 {
                Label::id(self).0
            }
            fn from_index(i: u32) -> Self {
                Label::from_id(LabelId(i))
            }
        }
    )*};
}
handles!(
    v::CallBridge,
    v::Tenant,
    v::CallType,
    v::LegType,
    v::LegDirection
);

type State = SessionState<Vocab>;

/// A recording's or streaming's families, and the index of its end record type.
struct MediaFamilies<'a> {
    active: &'a Family<(v::CallBridge,), Gauge>,
    started: &'a Family<(v::CallBridge,), Counter>,
    ended: &'a Family<(v::CallBridge,), Counter>,
    tenant_active: &'a Family<(v::Tenant,), Gauge>,
    tenant_started: &'a Family<(v::Tenant,), Counter>,
    end_type: usize,
}
type LegOf = Leg<Vocab>;

/// Label values used on every record, interned once.
struct Fixed {
    unknown: Unknown<Vocab>,
    tenant_none: v::Tenant,
    /// remoteTeardown true, false, absent
    remote_teardown: [v::RemoteTeardown; 3],
    reason_unknown: v::EndReason,
    kind: [v::ObjectKind; 5],
    evict: [v::EvictReason; 5],
    record_types: [v::RecordType; 9],
    audio: v::Media,
    video: v::Media,
    rx: v::MediaDirection,
    tx: v::MediaDirection,
    codec_unknown: v::Codec,
    alarm_unknown: v::Alarm,
    /// no_audio, no_packet_statistics, invalid_values
    mos_unavailable: [v::MosUnavailable; 3],
    /// encrypted, unencrypted, both, none
    encryption: [v::Encryption; 4],
    /// main_video_viewer, main_video_contributor, presentation_viewer, presentation_contributor, multistream_video
    usage: [v::MediaUsage; 5],
    fs_mos_unavailable: [v::FsMosUnavailable; 3],
    rtp_mos_unavailable: [v::RtpMosUnavailable; 3],
}

impl Fixed {
    fn evict(&self, r: EvictReason) -> v::EvictReason {
        self.evict[r as usize]
    }
    fn kind(&self, k: Kind) -> v::ObjectKind {
        self.kind[k as usize]
    }
    fn record_type(&self, t: &RecordType) -> Option<v::RecordType> {
        let i = match t {
            RecordType::CallStart => 0,
            RecordType::CallEnd => 1,
            RecordType::CallLegStart => 2,
            RecordType::CallLegUpdate => 3,
            RecordType::CallLegEnd => 4,
            RecordType::RecordingStart => 5,
            RecordType::RecordingEnd => 6,
            RecordType::StreamingStart => 7,
            RecordType::StreamingEnd => 8,
            RecordType::Other(_) => return None,
        };
        Some(self.record_types[i])
    }
}

/// The two dedupe memories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    FreeSwitch,
    Rtpengine,
}

impl Seen {
    fn source(self) -> &'static str {
        match self {
            Seen::FreeSwitch => "freeswitch",
            Seen::Rtpengine => "kamailio",
        }
    }
}

/// A sender's identity: what its body says, else the receiver URI parameter, else its
/// address (as for a Call Bridge).
fn sender_key<'b>(own: Option<&'b str>, src: &Origin<'b>) -> Cow<'b, str> {
    if let Some(s) = own.map(str::trim).filter(|s| !s.is_empty()) {
        return Cow::Borrowed(s);
    }
    if let Some(q) = src.query_sender.map(str::trim).filter(|q| !q.is_empty()) {
        return Cow::Borrowed(q);
    }
    match src.peer {
        Some(ip) => Cow::Owned(ip.to_canonical().to_string()),
        None => Cow::Borrowed(UNKNOWN),
    }
}

/// A dedupe key: 128 bits of xxh3 over length-prefixed parts.
fn dedupe_key(parts: &[&[u8]]) -> dedupe::Key {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    dedupe::Key(h.digest128())
}

/// Applies batches to the tracker and the metrics.
pub struct Ingest {
    pub metrics: Arc<Metrics>,
    tracker: Tracker<Vocab>,
    /// FreeSWITCH legs (switch, uuid) already applied.
    fs_seen: Dedupe,
    /// rtpengine calls (node, Call-ID, tags, labels) already applied.
    rtp_seen: Dedupe,
    /// Replaced on SIGHUP; a batch reads it once.
    names: parking_lot::RwLock<Arc<Names>>,
    mos: MosSettings,
    fixed: Fixed,
}

impl Ingest {
    pub fn new(
        metrics: Arc<Metrics>,
        limits: Limits,
        names: Names,
        mos: MosSettings,
        dedupe: dedupe::Limits,
    ) -> Ingest {
        let m = &metrics;
        let w = &m.vocab;
        let fixed = Fixed {
            unknown: Unknown {
                tenant: w.get(UNKNOWN),
                call_type: w.get(UNKNOWN),
                leg_type: w.get(UNKNOWN),
                direction: w.get(UNKNOWN),
            },
            tenant_none: w.get(NONE),
            remote_teardown: ["true", "false", UNKNOWN].map(|x| w.get(x)),
            reason_unknown: w.get(UNKNOWN),
            kind: Kind::ALL.map(|k| w.get(k.as_str())),
            evict: EvictReason::ALL.map(|r| w.get(r.as_str())),
            record_types: std::array::from_fn(|i| w.get(known::RECORD_TYPES[i])),
            audio: w.get("audio"),
            video: w.get("video"),
            rx: w.get("rx"),
            tx: w.get("tx"),
            codec_unknown: w.get(UNKNOWN),
            alarm_unknown: w.get(UNKNOWN),
            mos_unavailable: std::array::from_fn(|i| w.get(known::MOS_UNAVAILABLE[i])),
            encryption: std::array::from_fn(|i| w.get(known::ENCRYPTION[i])),
            usage: std::array::from_fn(|i| w.get(known::MEDIA_USAGES[i])),
            fs_mos_unavailable: std::array::from_fn(|i| {
                w.get(known::FREESWITCH_MOS_UNAVAILABLE[i])
            }),
            rtp_mos_unavailable: std::array::from_fn(|i| {
                w.get(known::RTPENGINE_MOS_UNAVAILABLE[i])
            }),
        };
        // The assumptions in force are part of every estimate: expose them.
        for (codec, imp) in mos.codecs.entries() {
            let c: v::Codec = w.get(codec);
            for (p, val) in [("ie", imp.ie), ("bpl", imp.bpl)] {
                m.mos_codec_impairment.set((c, w.get(p)), val);
            }
        }
        m.mos_assumed_delay.set((), mos.assumed_delay_ms / 1000.0);
        // Rare counters exist at 0, so increase() sees their first event.
        for k in fixed.kind {
            for r in fixed.evict {
                m.evicted_objects.touch((k, r));
            }
        }
        for r in known::CONNECTION_REJECTS {
            m.connections_rejected.touch((w.get(r),));
        }
        for s in [Seen::FreeSwitch, Seen::Rtpengine] {
            for r in known::FORGET_REASONS {
                m.dedupe_forgotten.touch((w.get(s.source()), w.get(r)));
            }
        }
        Ingest {
            tracker: Tracker::new(limits, fixed.unknown),
            fs_seen: Dedupe::new(dedupe),
            rtp_seen: Dedupe::new(dedupe),
            metrics,
            names: parking_lot::RwLock::new(Arc::new(names)),
            mos,
            fixed,
        }
    }

    fn memory(&self, s: Seen) -> &Dedupe {
        match s {
            Seen::FreeSwitch => &self.fs_seen,
            Seen::Rtpengine => &self.rtp_seen,
        }
    }

    /// Remembers the CDR or report identified by `parts`; true if it was applied before.
    fn seen(&self, s: Seen, parts: &[&[u8]], now: f64) -> bool {
        let (fresh, forgot) = self
            .memory(s)
            .insert(dedupe_key(parts), now.max(0.0) as u64);
        self.forgot(s, forgot);
        !fresh
    }

    fn forgot(&self, s: Seen, f: Forgotten) {
        let m = &*self.metrics;
        for (reason, n) in [("max_age", f.by_age), ("max_entries", f.by_count)] {
            if n > 0 {
                m.dedupe_forgotten
                    .inc_by((m.vocab.get(s.source()), m.vocab.get(reason)), n);
            }
        }
    }

    /// Entries in the FreeSWITCH and rtpengine dedupe memories, by `source`.
    pub fn dedupe_entries(&self) -> [(&'static str, u64); 2] {
        [Seen::FreeSwitch, Seen::Rtpengine].map(|s| (s.source(), self.memory(s).len() as u64))
    }

    /// Objects the tracker holds, per kind.
    pub fn tracked(&self) -> [(Kind, u64); 5] {
        self.tracker.tracked()
    }

    /// The identity a batch's Call Bridge is tracked under: the `callBridge` attribute,
    /// else the receiver URI parameter, else the peer address.
    pub fn bridge_key<'b>(batch: &'b Batch<'_>, src: &Origin<'b>) -> Cow<'b, str> {
        if let Some(cb) = &batch.call_bridge {
            return Cow::Borrowed(cb.as_ref());
        }
        if let Some(q) = src.query_sender.map(str::trim).filter(|q| !q.is_empty()) {
            return Cow::Borrowed(q);
        }
        match src.peer {
            Some(ip) => Cow::Owned(ip.to_canonical().to_string()),
            None => Cow::Borrowed(UNKNOWN),
        }
    }

    /// Replaces the name maps (SIGHUP). Tenant names apply to records from now on (calls
    /// in progress keep the tenant they are counted under until they end); a renamed Call
    /// Bridge's sessions take the new label at once, and what they hold on the active
    /// gauges moves with them. Returns how many sessions were relabelled. Batches must not
    /// be applied meanwhile (the pipeline holds the snapshot gate).
    pub fn set_names(&self, names: Names) -> usize {
        let m = &*self.metrics;
        let label = |key: &str| -> v::CallBridge {
            m.vocab.get(
                names
                    .call_bridges
                    .get(key)
                    .map(String::as_str)
                    .unwrap_or(key),
            )
        };
        let moved = self.tracker.relabel(label);
        for r in &moved {
            for ct in &r.calls {
                m.calls_active.add((r.old, *ct), -1);
                m.calls_active.add((r.new, *ct), 1);
            }
            for (lt, d) in &r.legs {
                m.legs_active.add((r.old, *lt, *d), -1);
                m.legs_active.add((r.new, *lt, *d), 1);
            }
            for (media, n) in [Media::Recording, Media::Streaming]
                .into_iter()
                .zip(r.media)
            {
                let f = self.media_families(media).active;
                f.add((r.old,), -(n as i64));
                f.add((r.new,), n as i64);
            }
        }
        *self.names.write() = Arc::new(names);
        moved.len()
    }

    fn label_value(&self, l: impl Label) -> Arc<str> {
        self.metrics.vocab.table.resolve(l.id())
    }

    /// Applies one parsed batch. `now` is the exporter's clock (Unix seconds).
    pub fn apply(&self, batch: &Batch<'_>, src: &Origin<'_>, now: f64) -> Outcome {
        let m = &*self.metrics;
        let key = Self::bridge_key(batch, src);
        let names = self.names.read().clone();
        let label = || {
            let name = names
                .call_bridges
                .get(key.as_ref())
                .map(String::as_str)
                .unwrap_or(&key);
            m.vocab.get(name)
        };
        let mut out = Outcome::default();
        let now_s = now.max(0.0) as u64;
        // A batch that starts near correlatorIndex 0 comes from a Call Bridge that booted.
        let fresh = batch.records.first().and_then(|e| {
            let i = e.header.correlator_index?;
            Some(i.saturating_sub(e.header.num_preceding_missing.unwrap_or(0)) <= FRESH_INDEX)
        });
        let begin = self
            .tracker
            .begin(batch.session, &key, fresh.unwrap_or(false), now_s, label);
        for ev in begin.evictions {
            out.evicted += self.eviction(ev);
        }
        let mut st = begin.session.lock();
        let cb = st.call_bridge();
        if begin.new {
            m.sessions.inc((cb,));
            // Series exist from the first batch, so increase() sees the first event.
            m.records_missing.touch((cb,));
            m.records_duplicate.touch((cb,));
            let first_index = batch
                .records
                .first()
                .and_then(|e| e.header.correlator_index);
            // Rate-limited too: a client that makes up sessions must not flood the log.
            match begin.replaced {
                Some(old) => crate::info_limited!(
                    call_bridge = %self.label_value(cb),
                    identity = %st.bridge_key(),
                    session = %batch.session,
                    previous_session = %old,
                    first_correlator_index = first_index,
                    "Call Bridge restarted: a new CDR session replaces the previous one, whose calls, legs, recordings and streamings are ended"
                ),
                None => crate::info_limited!(
                    call_bridge = %self.label_value(cb),
                    identity = %st.bridge_key(),
                    session = %batch.session,
                    first_correlator_index = first_index,
                    "new CDR session"
                ),
            }
        }
        if begin.conflict {
            warn_limited!(
                call_bridge = %self.label_value(cb),
                identity = %st.bridge_key(),
                session = %batch.session,
                "two CDR sessions are live under one Call Bridge identity: give each Call Bridge its own ?call_bridge= in its receiver URI"
            );
        }
        let mut newest = f64::NEG_INFINITY;
        for e in &batch.records {
            self.entry(&mut st, e, now_s, &mut out);
            if let Some(t) = e.header.time {
                newest = newest.max(t.0);
            }
        }
        if st.is_retired() && out.applied + out.invalid > 0 && st.revive() {
            warn_limited!(
                call_bridge = %self.label_value(cb),
                session = %batch.session,
                "a replaced CDR session sent new records; tracking it again"
            );
        }
        let ev = st.enforce_max();
        out.evicted += self.evicted(cb, EvictReason::MaxObjects, ev);
        if out.duplicates > 0 {
            m.records_duplicate.inc_by((cb,), out.duplicates);
        }
        if out.missing > 0 {
            m.records_missing.inc_by((cb,), out.missing);
        }
        if newest.is_finite() && out.applied > 0 {
            m.last_record_timestamp.max((cb,), newest);
        }
        m.batches.inc((cb,));
        m.last_batch_timestamp.max((cb,), now);
        out
    }

    /// Dedupe, gap accounting and the record itself.
    fn entry(&self, st: &mut State, e: &Entry<'_>, now: u64, out: &mut Outcome) {
        let cb = st.call_bridge();
        let Some(idx) = e.header.correlator_index else {
            let reason = e
                .body
                .as_ref()
                .err()
                .map(|i| i.reason)
                .unwrap_or(cdr::InvalidReason::MissingCorrelatorIndex);
            self.invalid(st, e, reason, None, out);
            return;
        };
        let lost = match st.index(idx, e.header.num_preceding_missing) {
            Index::Duplicate => {
                out.duplicates += 1;
                return;
            }
            Index::Absurd => {
                self.invalid(st, e, cdr::InvalidReason::AbsurdIndex, Some(idx), out);
                return;
            }
            Index::New { lost, .. } => lost,
        };
        if lost > 0 {
            out.missing += lost;
            warn_limited!(
                call_bridge = %self.label_value(cb),
                identity = %st.bridge_key(),
                session = %st.id(),
                missing = lost,
                first_missing_correlator_index = idx.saturating_sub(lost),
                last_missing_correlator_index = idx - 1,
                "CDR records lost before reaching the exporter"
            );
        }
        match &e.body {
            Ok(rec) => {
                self.record(st, rec, now);
                let t = self
                    .fixed
                    .record_type(&e.header.record_type)
                    .unwrap_or_else(|| self.metrics.vocab.get(e.header.record_type.as_str()));
                self.metrics.records.inc((cb, t));
                out.applied += 1;
            }
            Err(inv) => {
                self.invalid(st, e, inv.reason, Some(idx), out);
                // An end record we could not read still ends its object, so gauges don't stick.
                if let Some(obj) = inv.object {
                    self.end_unreadable(st, &e.header.record_type, obj);
                }
            }
        }
    }

    fn invalid(
        &self,
        st: &State,
        e: &Entry<'_>,
        reason: cdr::InvalidReason,
        idx: Option<u64>,
        out: &mut Outcome,
    ) {
        let m = &*self.metrics;
        let r: v::InvalidReason = m.vocab.get(reason.as_label());
        m.records_invalid.inc((st.call_bridge(), r));
        let field = e.body.as_ref().err().map(|i| i.field).unwrap_or("");
        warn_limited!(
            call_bridge = %self.label_value(st.call_bridge()),
            session = %st.id(),
            correlator_index = idx,
            record_type = e.header.record_type.as_str(),
            reason = reason.as_label(),
            field,
            "invalid CDR record skipped"
        );
        out.invalid += 1;
    }

    fn end_unreadable(&self, st: &mut State, t: &RecordType, obj: ObjectRef) {
        let cb = st.call_bridge();
        match (t, obj) {
            (RecordType::CallEnd, ObjectRef::Call(id)) => {
                let e = st.call_end(id);
                self.call_closed(cb, &e);
            }
            (RecordType::CallLegEnd, ObjectRef::CallLeg(id)) => {
                if let Some(l) = st.leg_end(id) {
                    self.leg_active(cb, &l, -1);
                }
            }
            (RecordType::RecordingEnd, ObjectRef::Recording(id)) => {
                if let Some(t) = st.media_end(Media::Recording, id.0) {
                    self.media_inactive(cb, Media::Recording, t);
                }
            }
            (RecordType::StreamingEnd, ObjectRef::Streaming(id)) => {
                if let Some(t) = st.media_end(Media::Streaming, id.0) {
                    self.media_inactive(cb, Media::Streaming, t);
                }
            }
            _ => {}
        }
    }

    fn tenant_label(&self, tenant: Option<&str>) -> v::Tenant {
        match tenant {
            None => self.fixed.tenant_none,
            Some(t) => {
                let names = self.names.read();
                let name = names.tenants.get(t).map(String::as_str).unwrap_or(t);
                self.metrics.vocab.get(name)
            }
        }
    }

    fn record(&self, st: &mut State, rec: &Record<'_>, now: u64) {
        match rec {
            Record::CallStart(r) => self.call_start(st, r, now),
            Record::CallEnd(r) => self.call_end(st, r),
            Record::CallLegStart(r) => self.leg_start(st, r, now),
            Record::CallLegUpdate(r) => self.leg_update(st, r, now),
            Record::CallLegEnd(r) => self.leg_end(st, r),
            Record::RecordingStart(r) => {
                self.media_start(st, Media::Recording, r.id.0, r.call, now)
            }
            Record::RecordingEnd(r) => self.media_end(st, Media::Recording, r.id.0),
            Record::StreamingStart(r) => {
                self.media_start(st, Media::Streaming, r.id.0, r.call, now)
            }
            Record::StreamingEnd(r) => self.media_end(st, Media::Streaming, r.id.0),
            Record::Unknown => {}
        }
    }

    fn call_start(&self, st: &mut State, r: &cdr::CallStart<'_>, now: u64) {
        let m = &*self.metrics;
        let cb = st.call_bridge();
        let tenant = self.tenant_label(r.tenant.as_deref());
        let call_type = r
            .call_type
            .as_ref()
            .map_or(self.fixed.unknown.call_type, |t| m.vocab.get(t.as_str()));
        let CallStarted::Started { relabelled } = st.call_start(r.id, tenant, call_type, now)
        else {
            return; // a repeated callStart for a live call changes nothing
        };
        // Legs that joined before the call's tenant was known move to it.
        for before in relabelled {
            m.tenant_legs_active.add((before.tenant,), -1);
            m.tenant_legs_active.add((tenant,), 1);
        }
        m.calls_active.add((cb, call_type), 1);
        m.calls_started.inc((cb, call_type));
        m.tenant_calls_active.add((tenant,), 1);
        m.tenant_calls_started.inc((tenant,));
    }

    fn call_end(&self, st: &mut State, r: &cdr::CallEnd) {
        let m = &*self.metrics;
        let cb = st.call_bridge();
        let e = st.call_end(r.id);
        let (tenant, call_type) = match &e.call {
            Some(c) if !c.placeholder => (c.tenant, c.call_type),
            _ => {
                self.unmatched(cb, 1);
                (self.fixed.unknown.tenant, self.fixed.unknown.call_type)
            }
        };
        self.call_closed(cb, &e);
        m.calls_ended.inc((cb, call_type));
        m.tenant_calls_ended.inc((tenant,));
        if let Some(d) = r.duration_seconds {
            m.call_duration.observe((cb,), d);
            m.tenant_call_duration.observe((tenant,), d);
        }
        if let Some(n) = r.call_legs_max_active {
            m.call_participants_max.observe((cb,), n as f64);
        }
    }

    /// Takes an ended call, and the legs it still had, off the active gauges.
    fn call_closed(&self, cb: v::CallBridge, e: &CallEnded<Vocab>) {
        if let Some(c) = e.call.as_ref().filter(|c| !c.placeholder) {
            self.metrics.calls_active.add((cb, c.call_type), -1);
            self.metrics.tenant_calls_active.add((c.tenant,), -1);
        }
        if !e.stray_legs.is_empty() {
            let objects = e.stray_legs.iter().copied().map(Evicted::Leg).collect();
            self.evicted(cb, EvictReason::CallEnded, objects);
        }
    }

    fn leg_start(&self, st: &mut State, r: &cdr::CallLegStart<'_>, now: u64) {
        let m = &*self.metrics;
        let cb = st.call_bridge();
        let u = self.fixed.unknown;
        let leg_type = r
            .leg_type
            .as_ref()
            .map_or(u.leg_type, |t| m.vocab.get(t.as_str()));
        let direction = r
            .direction
            .as_ref()
            .map_or(u.direction, |d| m.vocab.get(d.as_str()));
        if let LegStarted::Started(leg) = st.leg_start(r.id, r.call, leg_type, direction, now) {
            self.leg_active(cb, &leg, 1);
            m.legs_started.inc((cb, leg_type, direction));
            m.tenant_legs_started.inc((leg.tenant,));
            // What kind of participant: a plain SIP leg has no subType.
            let sub_type: v::LegSubType = m
                .vocab
                .get(r.sub_type.as_ref().map_or(NONE, |t| t.as_str()));
            let guest: v::GuestConnection = m.vocab.get(match r.guest_connection {
                Some(true) => "true",
                Some(false) => "false",
                None => UNKNOWN,
            });
            m.legs_started_by_kind.inc((cb, sub_type, guest));
        }
    }

    fn leg_update(&self, st: &mut State, r: &cdr::CallLegUpdate<'_>, now: u64) {
        let cb = st.call_bridge();
        let call = match r.call {
            Some(CallRef::Call(c)) => Some(c),
            _ => None,
        };
        match st.leg_update(r.id, call, now) {
            LegUpdated::Unchanged => {}
            LegUpdated::Moved { before, after } => {
                if before.tenant != after.tenant {
                    let t = &self.metrics.tenant_legs_active;
                    t.add((before.tenant,), -1);
                    t.add((after.tenant,), 1);
                }
            }
            LegUpdated::Adopted(leg) => {
                // Its start was before we listened.
                self.unmatched(cb, 3);
                self.leg_active(cb, &leg, 1);
            }
        }
    }

    fn leg_end(&self, st: &mut State, r: &cdr::CallLegEnd<'_>) {
        let m = &*self.metrics;
        let f = &self.fixed;
        let cb = st.call_bridge();
        let tenant = match st.leg_end(r.id) {
            Some(l) => {
                self.leg_active(cb, &l, -1);
                l.tenant
            }
            None => {
                self.unmatched(cb, 4);
                f.unknown.tenant
            }
        };
        let reason = r
            .reason
            .as_ref()
            .map_or(f.reason_unknown, |x| m.vocab.get(x.as_str()));
        let rt = f.remote_teardown[match r.remote_teardown {
            Some(true) => 0,
            Some(false) => 1,
            None => 2,
        }];
        m.legs_ended.inc((cb, reason, rt));
        m.tenant_legs_ended.inc((tenant, reason));
        if let Some(d) = r.duration_seconds {
            m.leg_duration.observe((cb,), d);
            m.tenant_leg_duration.observe((tenant,), d);
        }
        self.leg_quality(cb, tenant, r);
    }

    /// The families of recordings or streamings.
    fn media_families(&self, m: Media) -> MediaFamilies<'_> {
        let x = &*self.metrics;
        match m {
            Media::Recording => MediaFamilies {
                active: &x.recordings_active,
                started: &x.recordings_started,
                ended: &x.recordings_ended,
                tenant_active: &x.tenant_recordings_active,
                tenant_started: &x.tenant_recordings_started,
                end_type: 6,
            },
            Media::Streaming => MediaFamilies {
                active: &x.streamings_active,
                started: &x.streamings_started,
                ended: &x.streamings_ended,
                tenant_active: &x.tenant_streamings_active,
                tenant_started: &x.tenant_streamings_started,
                end_type: 8,
            },
        }
    }

    fn media_start(
        &self,
        st: &mut State,
        m: Media,
        id: cdr::Id,
        call: Option<cdr::CallId>,
        now: u64,
    ) {
        let cb = st.call_bridge();
        let f = self.media_families(m);
        // A repeated start counts once on the active gauges, under the first one's tenant.
        let tenant = match st.media_start(m, id, call, now) {
            Some(t) => {
                f.active.add((cb,), 1);
                f.tenant_active.add((t,), 1);
                t
            }
            None => st.call_tenant(call),
        };
        f.started.inc((cb,));
        f.tenant_started.inc((tenant,));
    }

    fn media_end(&self, st: &mut State, m: Media, id: cdr::Id) {
        let cb = st.call_bridge();
        let f = self.media_families(m);
        match st.media_end(m, id) {
            Some(t) => self.media_inactive(cb, m, t),
            None => self.unmatched(cb, f.end_type),
        }
        f.ended.inc((cb,));
    }

    /// Takes a recording or streaming off the active gauges.
    fn media_inactive(&self, cb: v::CallBridge, m: Media, tenant: v::Tenant) {
        let f = self.media_families(m);
        f.active.add((cb,), -1);
        f.tenant_active.add((tenant,), -1);
    }

    /// Call quality from a callLegEnd: MOS, loss, alarms, codec mix, video, encryption, usage.
    fn leg_quality(&self, cb: v::CallBridge, tenant: v::Tenant, r: &cdr::CallLegEnd<'_>) {
        let m = &*self.metrics;
        let f = &self.fixed;
        let dur = r.duration_seconds;
        // MOS: listening quality of the audio the Meeting Server received from the leg.
        let unavailable = |i: usize| {
            m.leg_mos_unavailable.inc((cb, f.mos_unavailable[i]));
            m.tenant_leg_mos_unavailable.inc((tenant,));
        };
        match &r.rx_audio {
            None => unavailable(0),
            Some(a) => match a.packet_statistics.as_ref() {
                None => unavailable(1),
                Some(ps) => {
                    let bg = burst_gap(ps);
                    let codec = self
                        .mos
                        .codecs
                        .get(a.codec.as_ref().map(|c| c.as_str()).unwrap_or(""));
                    match quality::mos_from_cms(codec, &bg, self.mos.assumed_delay_ms) {
                        Ok(mos) => {
                            m.leg_mos.observe((cb,), mos);
                            m.tenant_leg_mos.observe((tenant,), mos);
                        }
                        Err(_) => unavailable(2),
                    }
                    self.loss(cb, tenant, f.audio, &bg);
                }
            },
        }
        if let Some(ps) = r
            .rx_video
            .as_ref()
            .and_then(|v| v.packet_statistics.as_ref())
        {
            self.loss(cb, tenant, f.video, &burst_gap(ps));
        }
        // Alarms: a leg counts once per alarm type; seconds add up over its alarms.
        let mut seen: [Option<v::Alarm>; 4] = [None; 4];
        for (i, a) in r.alarms.iter().enumerate() {
            let t = a
                .alarm_type
                .as_ref()
                .map_or(f.alarm_unknown, |t| m.vocab.get(t.as_str()));
            if !seen.contains(&Some(t)) {
                if let Some(slot) = seen.iter_mut().find(|s| s.is_none()) {
                    *slot = Some(t);
                }
                if i < 64 {
                    m.legs_with_alarm.inc((cb, t));
                    m.tenant_legs_with_alarm.inc((tenant, t));
                }
            }
            if let (Some(p), Some(d)) = (a.duration_percentage, dur) {
                m.leg_alarm_seconds.add((cb, t), p.min(100.0) * d / 100.0);
            }
        }
        // Codec mix, by stream and by leg time.
        fn audio(s: &Option<cdr::AudioStream>) -> Option<Option<&str>> {
            s.as_ref().map(|a| a.codec.as_ref().map(|c| c.as_str()))
        }
        fn video(s: &Option<cdr::VideoStream>) -> Option<Option<&str>> {
            s.as_ref().map(|v| v.codec.as_ref().map(|c| c.as_str()))
        }
        for (media, dir, codec) in [
            (f.audio, f.rx, audio(&r.rx_audio)),
            (f.audio, f.tx, audio(&r.tx_audio)),
            (f.video, f.rx, video(&r.rx_video)),
            (f.video, f.tx, video(&r.tx_video)),
        ] {
            let Some(codec) = codec else { continue };
            let c = codec.map_or(f.codec_unknown, |c| m.vocab.get(c));
            m.media_streams.inc((cb, media, dir, c));
            if let Some(d) = dur {
                m.media_seconds.add((cb, media, dir, c), d);
            }
        }
        for (dir, vs) in [(f.rx, &r.rx_video), (f.tx, &r.tx_video)] {
            if let Some(h) = vs.as_ref().and_then(|vs| vs.max_size_height) {
                m.video_height.observe((cb, dir), h as f64);
            }
        }
        let enc = match (
            r.encrypted_media == Some(true),
            r.unencrypted_media == Some(true),
        ) {
            (true, false) => 0,
            (false, true) => 1,
            (true, true) => 2,
            (false, false) => 3,
        };
        m.legs_encryption.inc((cb, f.encryption[enc]));
        if let Some(d) = dur {
            let u = &r.media_usage;
            let shares = [
                u.main_video_viewer,
                u.main_video_contributor,
                u.presentation_viewer,
                u.presentation_contributor,
                u.multistream_video,
            ];
            for (i, p) in shares.iter().enumerate() {
                if let Some(p) = p {
                    m.media_usage_seconds
                        .add((cb, f.usage[i]), p.min(100.0) * d / 100.0);
                }
            }
        }
    }

    fn loss(&self, cb: v::CallBridge, tenant: v::Tenant, media: v::Media, bg: &BurstGap) {
        if let Ok(p) = quality::loss_percent(bg) {
            self.metrics.leg_packet_loss.observe((cb, media), p / 100.0);
            self.metrics
                .tenant_leg_packet_loss
                .observe((tenant, media), p / 100.0);
        }
    }

    fn unmatched(&self, cb: v::CallBridge, type_index: usize) {
        let t = self.fixed.record_types[type_index];
        self.metrics.records_unmatched.inc((cb, t));
    }

    /// A leg on (`+1`) or off (`-1`) the active gauges.
    fn leg_active(&self, cb: v::CallBridge, l: &LegOf, delta: i64) {
        let m = &*self.metrics;
        m.legs_active.add((cb, l.leg_type, l.direction), delta);
        m.tenant_legs_active.add((l.tenant,), delta);
    }

    /// Takes evicted objects off the active gauges and counts them; returns how many.
    fn evicted(&self, cb: v::CallBridge, reason: EvictReason, objects: Vec<Evicted<Vocab>>) -> u64 {
        let m = &*self.metrics;
        let f = &self.fixed;
        let mut n = [0u64; 5];
        for e in &objects {
            match e {
                Evicted::Call(c) => {
                    if !c.placeholder {
                        m.calls_active.add((cb, c.call_type), -1);
                        m.tenant_calls_active.add((c.tenant,), -1);
                    }
                    n[Kind::Call as usize] += 1;
                }
                Evicted::Leg(l) => {
                    self.leg_active(cb, l, -1);
                    n[Kind::CallLeg as usize] += 1;
                }
                Evicted::Media(media, tenant) => {
                    self.media_inactive(cb, *media, *tenant);
                    n[media.kind() as usize] += 1;
                }
            }
        }
        for k in Kind::ALL {
            if n[k as usize] > 0 {
                m.evicted_objects
                    .inc_by((f.kind(k), f.evict(reason)), n[k as usize]);
            }
        }
        objects.len() as u64
    }

    /// An eviction of the tracker's session bookkeeping (restart, bounds).
    fn eviction(&self, ev: Eviction<Vocab>) -> u64 {
        let n = self.evicted(ev.call_bridge, ev.reason, ev.objects);
        if ev.session_dropped {
            let f = &self.fixed;
            self.metrics
                .evicted_objects
                .inc((f.kind(Kind::Session), f.evict(ev.reason)));
            warn_limited!(
                call_bridge = %self.label_value(ev.call_bridge),
                session = %ev.session,
                objects = n,
                "CDR session forgotten: beyond tracking.sessions_per_call_bridge or tracking.max_call_bridges (a late copy of its records would count again)"
            );
        }
        n
    }

    /// Evicts objects older than the configured max age from every session. Call it
    /// periodically; returns how many were evicted.
    pub fn sweep(&self, now: f64) -> u64 {
        let mut total = 0;
        for ev in self.tracker.sweep(now.max(0.0) as u64) {
            total += self.eviction(ev);
        }
        for s in [Seen::FreeSwitch, Seen::Rtpengine] {
            self.forgot(s, self.memory(s).sweep(now.max(0.0) as u64));
        }
        total
    }
}

/// CMS packetStatistics as the model's burst/gap input; an absent value is 0 (CMS always sends
/// all four; a partial section means nothing was measured there).
fn burst_gap(ps: &PacketStatistics) -> BurstGap {
    BurstGap {
        burst_duration: ps.packet_loss_bursts.duration.unwrap_or(0.0),
        burst_density: ps.packet_loss_bursts.density.unwrap_or(0.0),
        gap_duration: ps.packet_gap.duration.unwrap_or(0.0),
        gap_density: ps.packet_gap.density.unwrap_or(0.0),
    }
}

/// Everything `apply` has built, in a form that can be written to disk.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateSnapshot {
    /// Label values; the tracker refers to them by index.
    pub labels: Vec<String>,
    pub metrics: crate::metrics::MetricsSnapshot,
    pub tracker: crate::tracker::TrackerSnapshot,
    /// The dedupe memories: key, first applied (Unix seconds).
    pub freeswitch_seen: Vec<(u128, u32)>,
    pub rtpengine_seen: Vec<(u128, u32)>,
}

/// The state at one instant, taken quickly (see [`Ingest::copy`]).
pub struct StateCopy {
    labels: Vec<Arc<str>>,
    metrics: crate::metrics::MetricsSnapshot,
    tracker: crate::tracker::TrackerCopy<Vocab>,
    freeswitch_seen: crate::cow_map::CowMap<dedupe::Key, u32>,
    rtpengine_seen: crate::cow_map::CowMap<dedupe::Key, u32>,
}

impl StateCopy {
    /// The serialisable form; the slow part of a snapshot, done without blocking batches.
    pub fn into_snapshot(self) -> StateSnapshot {
        StateSnapshot {
            labels: self.labels.iter().map(|v| v.to_string()).collect(),
            metrics: self.metrics,
            tracker: self.tracker.into_snapshot(),
            freeswitch_seen: dedupe::entries(&self.freeswitch_seen),
            rtpengine_seen: dedupe::entries(&self.rtpengine_seen),
        }
    }
}

impl Ingest {
    /// Copies all state. Batches must not be applied meanwhile (the caller holds the gate);
    /// the copy shares the tracker's memory, so this takes little time.
    pub fn copy(&self) -> StateCopy {
        let tracker = self.tracker.copy();
        let metrics = self.metrics.snapshot();
        let labels = self.metrics.vocab.table.values().clone();
        StateCopy {
            labels,
            metrics,
            tracker,
            freeswitch_seen: self.fs_seen.copy(),
            rtpengine_seen: self.rtp_seen.copy(),
        }
    }

    /// Loads a snapshot into a fresh `Ingest` (before any batch is applied).
    pub fn restore(&self, s: &StateSnapshot) {
        let m = &*self.metrics;
        m.restore(&s.metrics);
        let ids: Vec<u32> = s.labels.iter().map(|x| m.vocab.table.intern(x).0).collect();
        let unknown = self.fixed.unknown.tenant.id().0;
        self.tracker.restore(&s.tracker, |i| {
            ids.get(i as usize).copied().unwrap_or(unknown)
        });
        self.fs_seen.restore(&s.freeswitch_seen);
        self.rtp_seen.restore(&s.rtpengine_seen);
    }
}
