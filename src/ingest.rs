//! `apply(batch)`: CMS records become tracker transitions, and transitions become metric
//! updates, in one small function per record type.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::cdr::{self, Batch, CallRef, Entry, ObjectRef, PacketStatistics, Record, RecordType};
use crate::metrics::{values, LabelId, Metrics};
use crate::quality::{self, BurstGap, CodecTable};
use crate::tracker::{
    CallEnded, CallStarted, EvictReason, Evicted, Eviction, Index, Kind, Leg, LegStarted,
    LegUpdated, Limits, Media, SessionState, Tracker, Unknown, FRESH_INDEX,
};
use crate::warn_limited;

/// Configured GUID/id → readable name maps for the `call_bridge` and `tenant` labels.
#[derive(Clone, Debug, Default)]
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

/// Where a batch came from, beside what its XML says.
#[derive(Clone, Copy, Debug, Default)]
pub struct Source<'a> {
    /// `?call_bridge=` or `?system_id=` from the receiver URI.
    pub query_call_bridge: Option<&'a str>,
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

type State = SessionState<LabelId>;

/// Label ids used on every record, interned once.
struct Fixed {
    unknown: Unknown<LabelId>,
    tenant_none: LabelId,
    rt_true: LabelId,
    rt_false: LabelId,
    rt_unknown: LabelId,
    reason_unknown: LabelId,
    kind: [LabelId; 5],
    evict: [LabelId; 5],
    record_types: [LabelId; 9],
    audio: LabelId,
    video: LabelId,
    rx: LabelId,
    tx: LabelId,
    codec_unknown: LabelId,
    alarm_unknown: LabelId,
    no_audio: LabelId,
    no_stats: LabelId,
    invalid_values: LabelId,
    /// encrypted, unencrypted, both, none
    encryption: [LabelId; 4],
    /// main_video_viewer, main_video_contributor, presentation_viewer, presentation_contributor, multistream_video
    usage: [LabelId; 5],
}

impl Fixed {
    fn evict(&self, r: EvictReason) -> LabelId {
        self.evict[r as usize]
    }
    fn kind(&self, k: Kind) -> LabelId {
        self.kind[k as usize]
    }
    fn record_type(&self, t: &RecordType) -> Option<LabelId> {
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

/// Applies batches to the tracker and the metrics.
pub struct Ingest {
    pub metrics: Arc<Metrics>,
    tracker: Tracker<LabelId>,
    names: Names,
    mos: MosSettings,
    fixed: Fixed,
}

impl Ingest {
    pub fn new(metrics: Arc<Metrics>, limits: Limits, names: Names, mos: MosSettings) -> Ingest {
        let m = &metrics;
        let d = &m.d;
        let rt = |t: &RecordType| m.id(&d.record_type, t.as_str());
        let fixed = Fixed {
            unknown: Unknown {
                tenant: m.id(&d.tenant, values::UNKNOWN),
                call_type: m.id(&d.call_type, values::UNKNOWN),
                leg_type: m.id(&d.leg_type, values::UNKNOWN),
                direction: m.id(&d.direction, values::UNKNOWN),
            },
            tenant_none: m.id(&d.tenant, values::NONE),
            rt_true: m.id(&d.remote_teardown, "true"),
            rt_false: m.id(&d.remote_teardown, "false"),
            rt_unknown: m.id(&d.remote_teardown, values::UNKNOWN),
            reason_unknown: m.id(&d.reason, values::UNKNOWN),
            kind: Kind::ALL.map(|k| m.id(&d.kind, k.as_str())),
            evict: EvictReason::ALL.map(|r| m.id(&d.evict_reason, r.as_str())),
            record_types: [
                RecordType::CallStart,
                RecordType::CallEnd,
                RecordType::CallLegStart,
                RecordType::CallLegUpdate,
                RecordType::CallLegEnd,
                RecordType::RecordingStart,
                RecordType::RecordingEnd,
                RecordType::StreamingStart,
                RecordType::StreamingEnd,
            ]
            .map(|t| rt(&t)),
            audio: m.id(&d.media, "audio"),
            video: m.id(&d.media, "video"),
            rx: m.id(&d.media_direction, "rx"),
            tx: m.id(&d.media_direction, "tx"),
            codec_unknown: m.id(&d.codec, values::UNKNOWN),
            alarm_unknown: m.id(&d.alarm, values::UNKNOWN),
            no_audio: m.id(&d.mos_reason, "no_audio"),
            no_stats: m.id(&d.mos_reason, "no_packet_statistics"),
            invalid_values: m.id(&d.mos_reason, "invalid_values"),
            encryption: ["encrypted", "unencrypted", "both", "none"]
                .map(|e| m.id(&d.encryption, e)),
            usage: std::array::from_fn(|i| {
                m.id(&d.usage, crate::metrics::crate_known::MEDIA_USAGES[i])
            }),
        };
        // The assumptions in force are part of every estimate: expose them.
        for (codec, imp) in mos.codecs.entries() {
            let c = m.id(&d.codec, codec);
            for (p, v) in [("ie", imp.ie), ("bpl", imp.bpl)] {
                let p = m.id(&d.parameter, p);
                m.mos_codec_impairment.with([c, p], |g| g.0.set(v));
            }
        }
        m.mos_assumed_delay
            .with([], |g| g.0.set(mos.assumed_delay_ms / 1000.0));
        // Rare counters exist at 0, so increase() sees their first event.
        for k in fixed.kind {
            for r in fixed.evict {
                m.evicted_objects.with([k, r], |_| ());
            }
        }
        for r in ["max_connections", "tls_handshake"] {
            let r = m.id(&d.conn_reason, r);
            m.connections_rejected.with([r], |_| ());
        }
        Ingest {
            tracker: Tracker::new(limits, fixed.unknown),
            metrics,
            names,
            mos,
            fixed,
        }
    }

    /// Objects the tracker holds, per kind.
    pub fn tracked(&self) -> [(Kind, u64); 5] {
        self.tracker.tracked()
    }

    /// The identity a batch's Call Bridge is tracked under: the `callBridge` attribute,
    /// else the receiver URI parameter, else the peer address.
    pub fn bridge_key<'b>(batch: &'b Batch<'_>, src: &Source<'b>) -> Cow<'b, str> {
        if let Some(cb) = &batch.call_bridge {
            return Cow::Borrowed(cb.as_ref());
        }
        if let Some(q) = src
            .query_call_bridge
            .map(str::trim)
            .filter(|q| !q.is_empty())
        {
            return Cow::Borrowed(q);
        }
        match src.peer {
            Some(ip) => Cow::Owned(ip.to_canonical().to_string()),
            None => Cow::Borrowed(values::UNKNOWN),
        }
    }

    fn label_value(&self, l: LabelId) -> Arc<str> {
        self.metrics.table.resolve(l)
    }

    /// Applies one parsed batch. `now` is the exporter's clock (Unix seconds).
    pub fn apply(&self, batch: &Batch<'_>, src: &Source<'_>, now: f64) -> Outcome {
        let m = &*self.metrics;
        let key = Self::bridge_key(batch, src);
        let label = || {
            let name = self
                .names
                .call_bridges
                .get(key.as_ref())
                .map(String::as_str)
                .unwrap_or(&key);
            m.id(&m.d.call_bridge, name)
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
            m.sessions.with([cb], |c| c.inc());
            // Series exist from the first batch, so increase() sees the first event.
            m.records_missing.with([cb], |_| ());
            m.records_duplicate.with([cb], |_| ());
            let first_index = batch
                .records
                .first()
                .and_then(|e| e.header.correlator_index);
            match begin.replaced {
                Some(old) => tracing::info!(
                    call_bridge = %self.label_value(cb),
                    identity = %st.bridge_key(),
                    session = %batch.session,
                    previous_session = %old,
                    first_correlator_index = first_index,
                    "Call Bridge restarted: a new CDR session replaces the previous one, whose calls, legs, recordings and streamings are ended"
                ),
                None => tracing::info!(
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
            m.records_duplicate.with([cb], |c| c.inc_by(out.duplicates));
        }
        if out.missing > 0 {
            m.records_missing.with([cb], |c| c.inc_by(out.missing));
        }
        if newest.is_finite() && out.applied > 0 {
            m.last_record_timestamp.with([cb], |g| g.0.max(newest));
        }
        m.batches.with([cb], |c| c.inc());
        m.last_batch_timestamp.with([cb], |g| g.0.max(now));
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
                    .unwrap_or_else(|| {
                        let m = &self.metrics;
                        m.id(&m.d.record_type, e.header.record_type.as_str())
                    });
                self.metrics.records.with([cb, t], |c| c.inc());
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
        let r = m.id(&m.d.invalid_reason, reason.as_label());
        m.records_invalid.with([st.call_bridge(), r], |c| c.inc());
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
                    self.leg_gone(cb, &l);
                }
            }
            (RecordType::RecordingEnd, ObjectRef::Recording(id))
                if st.media_end(Media::Recording, id.0) =>
            {
                self.media_families(Media::Recording)
                    .0
                    .with([cb], |g| g.add(-1));
            }
            (RecordType::StreamingEnd, ObjectRef::Streaming(id))
                if st.media_end(Media::Streaming, id.0) =>
            {
                self.media_families(Media::Streaming)
                    .0
                    .with([cb], |g| g.add(-1));
            }
            _ => {}
        }
    }

    fn tenant_label(&self, tenant: Option<&str>) -> LabelId {
        let m = &*self.metrics;
        match tenant {
            None => self.fixed.tenant_none,
            Some(t) => {
                let name = self.names.tenants.get(t).map(String::as_str).unwrap_or(t);
                m.id(&m.d.tenant, name)
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
            Record::RecordingStart(r) => self.media_start(st, Media::Recording, r.id.0, now),
            Record::RecordingEnd(r) => self.media_end(st, Media::Recording, r.id.0),
            Record::StreamingStart(r) => self.media_start(st, Media::Streaming, r.id.0, now),
            Record::StreamingEnd(r) => self.media_end(st, Media::Streaming, r.id.0),
            Record::Unknown => {}
        }
    }

    fn call_start(&self, st: &mut State, r: &cdr::CallStart<'_>, now: u64) {
        let m = &*self.metrics;
        let cb = st.call_bridge();
        let tenant = self.tenant_label(r.tenant.as_deref());
        let call_type = match &r.call_type {
            Some(t) => m.id(&m.d.call_type, t.as_str()),
            None => self.fixed.unknown.call_type,
        };
        let CallStarted::Started { relabelled } = st.call_start(r.id, tenant, call_type, now)
        else {
            return; // a repeated callStart for a live call changes nothing
        };
        for before in relabelled {
            self.leg_gone(cb, &before);
            let mut after = before;
            after.tenant = tenant;
            self.leg_active(cb, &after);
        }
        m.calls_active.with([cb, tenant, call_type], |g| g.add(1));
        m.calls_started.with([cb, tenant, call_type], |c| c.inc());
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
        let key = [cb, tenant, call_type];
        m.calls_ended.with(key, |c| c.inc());
        if let Some(d) = r.duration_seconds {
            m.call_duration
                .with(key, |h| h.observe(d, m.call_duration.desc.buckets));
        }
        if let Some(n) = r.call_legs_max_active {
            m.call_participants_max.with(key, |h| {
                h.observe(n as f64, m.call_participants_max.desc.buckets)
            });
        }
    }

    /// Takes an ended call, and the legs it still had, off the active gauges.
    fn call_closed(&self, cb: LabelId, e: &CallEnded<LabelId>) {
        if let Some(c) = e.call.as_ref().filter(|c| !c.placeholder) {
            self.metrics
                .calls_active
                .with([cb, c.tenant, c.call_type], |g| g.add(-1));
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
            .map_or(u.leg_type, |t| m.id(&m.d.leg_type, t.as_str()));
        let direction = r
            .direction
            .as_ref()
            .map_or(u.direction, |d| m.id(&m.d.direction, d.as_str()));
        if let LegStarted::Started(leg) = st.leg_start(r.id, r.call, leg_type, direction, now) {
            self.leg_active(cb, &leg);
            m.legs_started.with([cb, leg_type, direction], |c| c.inc());
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
                    self.leg_gone(cb, &before);
                    self.leg_active(cb, &after);
                }
            }
            LegUpdated::Adopted(leg) => {
                // Its start was before we listened.
                self.unmatched(cb, 3);
                self.leg_active(cb, &leg);
            }
        }
    }

    fn leg_end(&self, st: &mut State, r: &cdr::CallLegEnd<'_>) {
        let m = &*self.metrics;
        let f = &self.fixed;
        let cb = st.call_bridge();
        let tenant = match st.leg_end(r.id) {
            Some(l) => {
                self.leg_gone(cb, &l);
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
            .map_or(f.reason_unknown, |x| m.id(&m.d.reason, x.as_str()));
        let rt = match r.remote_teardown {
            Some(true) => f.rt_true,
            Some(false) => f.rt_false,
            None => f.rt_unknown,
        };
        m.legs_ended.with([cb, tenant, reason, rt], |c| c.inc());
        if let Some(d) = r.duration_seconds {
            m.leg_duration
                .with([cb, tenant], |h| h.observe(d, m.leg_duration.desc.buckets));
        }
        self.leg_quality(cb, tenant, r);
    }

    /// The active gauge and the started and ended counters of recordings or streamings,
    /// and the record type of its end.
    fn media_families(
        &self,
        m: Media,
    ) -> (
        &crate::metrics::Family<1, crate::metrics::Gauge>,
        &crate::metrics::Family<1, crate::metrics::Counter>,
        &crate::metrics::Family<1, crate::metrics::Counter>,
        usize,
    ) {
        let x = &*self.metrics;
        match m {
            Media::Recording => (
                &x.recordings_active,
                &x.recordings_started,
                &x.recordings_ended,
                6,
            ),
            Media::Streaming => (
                &x.streamings_active,
                &x.streamings_started,
                &x.streamings_ended,
                8,
            ),
        }
    }

    fn media_start(&self, st: &mut State, m: Media, id: cdr::Id, now: u64) {
        let cb = st.call_bridge();
        let (active, started, _, _) = self.media_families(m);
        if st.media_start(m, id, now) {
            active.with([cb], |g| g.add(1));
        }
        started.with([cb], |c| c.inc());
    }

    fn media_end(&self, st: &mut State, m: Media, id: cdr::Id) {
        let cb = st.call_bridge();
        let (active, _, ended, end_type) = self.media_families(m);
        if st.media_end(m, id) {
            active.with([cb], |g| g.add(-1));
        } else {
            self.unmatched(cb, end_type);
        }
        ended.with([cb], |c| c.inc());
    }

    /// Call quality from a callLegEnd: MOS, loss, alarms, codec mix, video, encryption, usage.
    fn leg_quality(&self, cb: LabelId, tenant: LabelId, r: &cdr::CallLegEnd<'_>) {
        let m = &*self.metrics;
        let f = &self.fixed;
        let dur = r.duration_seconds;
        // MOS: listening quality of the audio the Meeting Server received from the leg.
        let unavailable = |reason: LabelId| {
            m.leg_mos_unavailable
                .with([cb, tenant, reason], |c| c.inc())
        };
        match &r.rx_audio {
            None => unavailable(f.no_audio),
            Some(a) => match a.packet_statistics.as_ref() {
                None => unavailable(f.no_stats),
                Some(ps) => {
                    let bg = burst_gap(ps);
                    let codec = self
                        .mos
                        .codecs
                        .get(a.codec.as_ref().map(|c| c.as_str()).unwrap_or(""));
                    match quality::mos_from_cms(codec, &bg, self.mos.assumed_delay_ms) {
                        Ok(mos) => m
                            .leg_mos
                            .with([cb, tenant], |h| h.observe(mos, m.leg_mos.desc.buckets)),
                        Err(_) => unavailable(f.invalid_values),
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
        let mut seen: [Option<LabelId>; 4] = [None; 4];
        for (i, a) in r.alarms.iter().enumerate() {
            let t = match &a.alarm_type {
                Some(t) => m.id(&m.d.alarm, t.as_str()),
                None => f.alarm_unknown,
            };
            if !seen.contains(&Some(t)) {
                if let Some(slot) = seen.iter_mut().find(|s| s.is_none()) {
                    *slot = Some(t);
                }
                if i < 64 {
                    m.legs_with_alarm.with([cb, tenant, t], |c| c.inc());
                }
            }
            if let (Some(p), Some(d)) = (a.duration_percentage, dur) {
                m.leg_alarm_seconds
                    .with([cb, tenant, t], |c| c.add(p.min(100.0) * d / 100.0));
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
            let c = match codec {
                Some(c) => m.id(&m.d.codec, c),
                None => f.codec_unknown,
            };
            let key = [cb, tenant, media, dir, c];
            m.media_streams.with(key, |x| x.inc());
            if let Some(d) = dur {
                m.media_seconds.with(key, |x| x.add(d));
            }
        }
        for (dir, v) in [(f.rx, &r.rx_video), (f.tx, &r.tx_video)] {
            if let Some(h) = v.as_ref().and_then(|v| v.max_size_height) {
                m.video_height.with([cb, tenant, dir], |x| {
                    x.observe(h as f64, m.video_height.desc.buckets)
                });
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
        m.legs_encryption
            .with([cb, tenant, f.encryption[enc]], |c| c.inc());
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
                    m.media_usage_seconds.with([cb, tenant, f.usage[i]], |c| {
                        c.add(p.min(100.0) * d / 100.0)
                    });
                }
            }
        }
    }

    fn loss(&self, cb: LabelId, tenant: LabelId, media: LabelId, bg: &BurstGap) {
        let m = &*self.metrics;
        if let Ok(p) = quality::loss_percent(bg) {
            m.leg_packet_loss.with([cb, tenant, media], |h| {
                h.observe(p / 100.0, m.leg_packet_loss.desc.buckets)
            });
        }
    }

    fn unmatched(&self, cb: LabelId, type_index: usize) {
        let t = self.fixed.record_types[type_index];
        self.metrics.records_unmatched.with([cb, t], |c| c.inc());
    }

    fn leg_active(&self, cb: LabelId, l: &Leg<LabelId>) {
        self.metrics
            .legs_active
            .with([cb, l.tenant, l.leg_type, l.direction], |g| g.add(1));
    }

    fn leg_gone(&self, cb: LabelId, l: &Leg<LabelId>) {
        self.metrics
            .legs_active
            .with([cb, l.tenant, l.leg_type, l.direction], |g| g.add(-1));
    }

    /// Takes evicted objects off the active gauges and counts them; returns how many.
    fn evicted(&self, cb: LabelId, reason: EvictReason, objects: Vec<Evicted<LabelId>>) -> u64 {
        let m = &*self.metrics;
        let f = &self.fixed;
        let mut n = [0u64; 5];
        for e in &objects {
            match e {
                Evicted::Call(c) => {
                    if !c.placeholder {
                        m.calls_active
                            .with([cb, c.tenant, c.call_type], |g| g.add(-1));
                    }
                    n[Kind::Call as usize] += 1;
                }
                Evicted::Leg(l) => {
                    self.leg_gone(cb, l);
                    n[Kind::CallLeg as usize] += 1;
                }
                Evicted::Media(media) => {
                    self.media_families(*media).0.with([cb], |g| g.add(-1));
                    n[media.kind() as usize] += 1;
                }
            }
        }
        for k in Kind::ALL {
            if n[k as usize] > 0 {
                m.evicted_objects
                    .with([f.kind(k), f.evict(reason)], |c| c.inc_by(n[k as usize]));
            }
        }
        objects.len() as u64
    }

    /// An eviction of the tracker's session bookkeeping (restart, bounds).
    fn eviction(&self, ev: Eviction<LabelId>) -> u64 {
        let n = self.evicted(ev.call_bridge, ev.reason, ev.objects);
        if ev.session_dropped {
            let f = &self.fixed;
            self.metrics
                .evicted_objects
                .with([f.kind(Kind::Session), f.evict(ev.reason)], |c| c.inc());
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
}

/// The state at one instant, taken quickly (see [`Ingest::copy`]).
pub struct StateCopy {
    labels: Vec<Arc<str>>,
    metrics: crate::metrics::MetricsSnapshot,
    tracker: crate::tracker::TrackerCopy<LabelId>,
}

impl StateCopy {
    /// The serialisable form; the slow part of a snapshot, done without blocking batches.
    pub fn into_snapshot(self) -> StateSnapshot {
        StateSnapshot {
            labels: self.labels.iter().map(|v| v.to_string()).collect(),
            metrics: self.metrics,
            tracker: self.tracker.into_snapshot(|l| l.0),
        }
    }
}

impl Ingest {
    /// Copies all state. Batches must not be applied meanwhile (the caller holds the gate);
    /// the copy shares the tracker's memory, so this takes little time.
    pub fn copy(&self) -> StateCopy {
        let tracker = self.tracker.copy();
        let metrics = self.metrics.snapshot();
        let labels = self.metrics.table.values().clone();
        StateCopy {
            labels,
            metrics,
            tracker,
        }
    }

    /// Loads a snapshot into a fresh `Ingest` (before any batch is applied).
    pub fn restore(&self, s: &StateSnapshot) {
        let m = &*self.metrics;
        m.restore(&s.metrics);
        let ids: Vec<LabelId> = s.labels.iter().map(|v| m.table.intern(v)).collect();
        let unknown = self.fixed.unknown.tenant;
        self.tracker.restore(&s.tracker, |i| {
            ids.get(i as usize).copied().unwrap_or(unknown)
        });
    }
}
