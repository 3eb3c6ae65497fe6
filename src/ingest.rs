//! `apply(batch)`: the one place where CDR records become tracker changes and metric updates.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::cdr::{self, Batch, CallRef, Entry, ObjectRef, PacketStatistics, Record, RecordType};
use crate::metrics::{values, LabelId, Metrics};
use crate::quality::{self, BurstGap, CodecTable};
use crate::tracker::{
    Call, Evicted, Leg, Limits, Lookup, Media, SessionState, Tracker, FRESH_INDEX,
};

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
    tenant_unknown: LabelId,
    tenant_none: LabelId,
    call_type_unknown: LabelId,
    leg_type_unknown: LabelId,
    direction_unknown: LabelId,
    rt_true: LabelId,
    rt_false: LabelId,
    rt_unknown: LabelId,
    reason_unknown: LabelId,
    kind: [LabelId; 4],
    evict_max_age: LabelId,
    evict_max_objects: LabelId,
    evict_restart: LabelId,
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

const KIND_CALL: usize = 0;
const KIND_LEG: usize = 1;
const KIND_RECORDING: usize = 2;
const KIND_STREAMING: usize = 3;

/// Applies batches to the tracker and the metrics.
pub struct Ingest {
    pub metrics: Arc<Metrics>,
    pub tracker: Tracker<LabelId>,
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
            tenant_unknown: m.id(&d.tenant, values::UNKNOWN),
            tenant_none: m.id(&d.tenant, values::NONE),
            call_type_unknown: m.id(&d.call_type, values::UNKNOWN),
            leg_type_unknown: m.id(&d.leg_type, values::UNKNOWN),
            direction_unknown: m.id(&d.direction, values::UNKNOWN),
            rt_true: m.id(&d.remote_teardown, "true"),
            rt_false: m.id(&d.remote_teardown, "false"),
            rt_unknown: m.id(&d.remote_teardown, values::UNKNOWN),
            reason_unknown: m.id(&d.reason, values::UNKNOWN),
            kind: ["call", "call_leg", "recording", "streaming"].map(|k| m.id(&d.kind, k)),
            evict_max_age: m.id(&d.evict_reason, "max_age"),
            evict_max_objects: m.id(&d.evict_reason, "max_objects"),
            evict_restart: m.id(&d.evict_reason, "restart"),
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
        for k in fixed.kind {
            m.tracked_objects.with([k], |g| g.add(0));
        }
        for k in fixed.kind {
            for r in [
                fixed.evict_max_age,
                fixed.evict_max_objects,
                fixed.evict_restart,
            ] {
                m.evicted_objects.with([k, r], |_| ());
            }
        }
        for r in ["max_connections", "tls_handshake"] {
            let r = m.id(&d.conn_reason, r);
            m.connections_rejected.with([r], |_| ());
        }
        // Rejections are rare: create their series at 0 so the first one is an increase.
        for r in crate::metrics::crate_known::REJECT_REASONS {
            let r = m.id(&d.reject_reason, r);
            m.batches_rejected.with([r], |_| ());
        }
        Ingest {
            tracker: Tracker::new(limits),
            metrics,
            names,
            mos,
            fixed,
        }
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
        let Lookup {
            state,
            new,
            replaced,
            conflict,
        } = self
            .tracker
            .session(batch.session, &key, fresh.unwrap_or(false), label);
        if conflict {
            tracing::warn!(
                call_bridge = %key,
                session = %batch.session,
                "two CDR sessions are live under one Call Bridge identity: give each Call Bridge its own ?call_bridge= in its receiver URI"
            );
        }
        if let Some(old) = replaced {
            let mut old = old.lock();
            let cb_old = old.call_bridge;
            let before = counts(&old);
            let ev = old.drain_all();
            self.track_delta(before, [0; 4]);
            out.evicted += ev.len() as u64;
            self.evicted(cb_old, ev, self.fixed.evict_restart);
        }
        let mut st = state.lock();
        let cb = st.call_bridge;
        if new {
            m.sessions.with([cb], |c| c.inc());
            // Series exist from the first batch, so increase() sees the first event.
            m.records_missing.with([cb], |_| ());
            m.records_duplicate.with([cb], |_| ());
        }
        let before = counts(&st);
        let mut newest = f64::NEG_INFINITY;
        for e in &batch.records {
            self.entry(&mut st, e, now_s, &mut out);
            if let Some(t) = e.header.time {
                newest = newest.max(t.0);
            }
        }
        if st.retired && out.applied + out.invalid > 0 {
            // Records a replaced session had not sent before: it is alive after all.
            st.retired = false;
            self.tracker.revive(batch.session);
            tracing::warn!(call_bridge = %key, session = %batch.session, "a replaced CDR session sent new records; tracking it again");
        }
        let ev = st.enforce_max(self.tracker.limits.max_objects);
        out.evicted += ev.len() as u64;
        self.evicted(cb, ev, self.fixed.evict_max_objects);
        let after = counts(&st);
        self.track_delta(before, after);
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
        let m = &*self.metrics;
        let cb = st.call_bridge;
        let Some(idx) = e.header.correlator_index else {
            let reason = e
                .body
                .as_ref()
                .err()
                .map(|i| i.reason.as_label())
                .unwrap_or("missing_correlator_index");
            let r = m.id(&m.d.invalid_reason, reason);
            m.records_invalid.with([cb, r], |c| c.inc());
            tracing::warn!(session = %st.session, reason, "CDR record without a usable correlatorIndex skipped");
            out.invalid += 1;
            return;
        };
        if st.seen.contains(idx) {
            out.duplicates += 1;
            return;
        }
        // A jump past the highest index seen means lost records; the sender's own count
        // of discarded records describes the same loss: take the larger, once.
        let jump = match st.seen.max() {
            Some(hi) if idx > hi + 1 => idx - hi - 1,
            _ => 0,
        };
        out.missing += jump.max(e.header.num_preceding_missing.unwrap_or(0));
        st.seen.insert(idx);
        match &e.body {
            Ok(rec) => {
                self.record(st, rec, now);
                let t = self.record_type_label(&e.header.record_type);
                m.records.with([cb, t], |c| c.inc());
                out.applied += 1;
            }
            Err(inv) => {
                let r = m.id(&m.d.invalid_reason, inv.reason.as_label());
                m.records_invalid.with([cb, r], |c| c.inc());
                tracing::warn!(
                    session = %st.session,
                    correlator_index = idx,
                    record_type = e.header.record_type.as_str(),
                    reason = inv.reason.as_label(),
                    field = inv.field,
                    "invalid CDR record skipped"
                );
                out.invalid += 1;
                // An end record we could not read still ends its object, so gauges don't stick.
                match (&e.header.record_type, inv.object) {
                    (RecordType::CallEnd, Some(ObjectRef::Call(id))) => {
                        if let Some(c) = st.calls.remove(&id) {
                            self.call_gone(cb, &c);
                        }
                    }
                    (RecordType::CallLegEnd, Some(ObjectRef::CallLeg(id))) => {
                        if let Some(l) = st.legs.remove(&id) {
                            self.leg_gone(cb, &l);
                        }
                    }
                    (RecordType::RecordingEnd, Some(ObjectRef::Recording(id)))
                        if st.recordings.remove(&id).is_some() =>
                    {
                        m.recordings_active.with([cb], |g| g.add(-1));
                    }
                    (RecordType::StreamingEnd, Some(ObjectRef::Streaming(id)))
                        if st.streamings.remove(&id).is_some() =>
                    {
                        m.streamings_active.with([cb], |g| g.add(-1));
                    }
                    _ => {}
                }
            }
        }
    }

    fn record_type_label(&self, t: &RecordType) -> LabelId {
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
            RecordType::Other(s) => return self.metrics.id(&self.metrics.d.record_type, s),
        };
        self.fixed.record_types[i]
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
        let m = &*self.metrics;
        let cb = st.call_bridge;
        let f = &self.fixed;
        match rec {
            Record::CallStart(r) => {
                let tenant = self.tenant_label(r.tenant.as_deref());
                let call_type = match &r.call_type {
                    Some(t) => m.id(&m.d.call_type, t.as_str()),
                    None => f.call_type_unknown,
                };
                let pending = match st.calls.get_mut(&r.id) {
                    // A repeated callStart for a live call changes nothing.
                    Some(c) if !c.placeholder => return,
                    Some(c) => {
                        c.placeholder = false;
                        c.tenant = tenant;
                        c.call_type = call_type;
                        std::mem::take(&mut c.pending_legs)
                    }
                    None => {
                        st.calls.insert(
                            r.id,
                            Call {
                                tenant,
                                call_type,
                                since: now,
                                placeholder: false,
                                pending_legs: Vec::new(),
                            },
                        );
                        Vec::new()
                    }
                };
                // Legs that joined before we knew the call's tenant move to it now.
                for leg_id in pending {
                    if let Some(l) = st.legs.get_mut(&leg_id) {
                        if l.call() == Some(r.id) && l.tenant != tenant {
                            relabel_leg(m, cb, l, tenant);
                        }
                    }
                }
                m.calls_active.with([cb, tenant, call_type], |g| g.add(1));
                m.calls_started.with([cb, tenant, call_type], |c| c.inc());
            }
            Record::CallEnd(r) => {
                let (tenant, call_type) = match st.calls.remove(&r.id) {
                    Some(c) if !c.placeholder => {
                        self.call_gone(cb, &c);
                        (c.tenant, c.call_type)
                    }
                    _ => {
                        self.unmatched(cb, 1);
                        (f.tenant_unknown, f.call_type_unknown)
                    }
                };
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
            Record::CallLegStart(r) => {
                if st.legs.contains_key(&r.id) {
                    return;
                }
                let leg_type = match &r.leg_type {
                    Some(t) => m.id(&m.d.leg_type, t.as_str()),
                    None => f.leg_type_unknown,
                };
                let direction = match &r.direction {
                    Some(d) => m.id(&m.d.direction, d.as_str()),
                    None => f.direction_unknown,
                };
                let mut leg = Leg::new(r.call, f.tenant_unknown, leg_type, direction, now);
                if let Some(call) = r.call {
                    leg.tenant = self.attach(st, call, r.id);
                }
                st.legs.insert(r.id, leg);
                m.legs_active
                    .with([cb, leg.tenant, leg_type, direction], |g| g.add(1));
                m.legs_started.with([cb, leg_type, direction], |c| c.inc());
            }
            Record::CallLegUpdate(r) => {
                let Some(CallRef::Call(call)) = r.call else {
                    if !st.legs.contains_key(&r.id) {
                        self.adopt_leg(st, r.id, None, now);
                    }
                    return;
                };
                match st.legs.get(&r.id).copied() {
                    Some(l) if l.call() == Some(call) => {}
                    Some(mut l) => {
                        let tenant = self.attach(st, call, r.id);
                        l.set_call(call);
                        if tenant != l.tenant {
                            relabel_leg(m, cb, &mut l, tenant);
                        }
                        st.legs.insert(r.id, l);
                    }
                    None => self.adopt_leg(st, r.id, Some(call), now),
                }
            }
            Record::CallLegEnd(r) => {
                let tenant = match st.legs.remove(&r.id) {
                    Some(l) => {
                        self.leg_gone(cb, &l);
                        l.tenant
                    }
                    None => {
                        self.unmatched(cb, 4);
                        f.tenant_unknown
                    }
                };
                let reason = match &r.reason {
                    Some(x) => m.id(&m.d.reason, x.as_str()),
                    None => f.reason_unknown,
                };
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
            Record::RecordingStart(r) => {
                if st.recordings.insert(r.id, Media { since: now }).is_none() {
                    m.recordings_active.with([cb], |g| g.add(1));
                }
                m.recordings_started.with([cb], |c| c.inc());
            }
            Record::RecordingEnd(r) => {
                if st.recordings.remove(&r.id).is_some() {
                    m.recordings_active.with([cb], |g| g.add(-1));
                } else {
                    self.unmatched(cb, 6);
                }
                m.recordings_ended.with([cb], |c| c.inc());
            }
            Record::StreamingStart(r) => {
                if st.streamings.insert(r.id, Media { since: now }).is_none() {
                    m.streamings_active.with([cb], |g| g.add(1));
                }
                m.streamings_started.with([cb], |c| c.inc());
            }
            Record::StreamingEnd(r) => {
                if st.streamings.remove(&r.id).is_some() {
                    m.streamings_active.with([cb], |g| g.add(-1));
                } else {
                    self.unmatched(cb, 8);
                }
                m.streamings_ended.with([cb], |c| c.inc());
            }
            Record::Unknown => {}
        }
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

    /// Ties leg `leg` to `call` and returns the tenant label it now has. A call not yet
    /// started becomes a placeholder that remembers the leg for its callStart.
    fn attach(&self, st: &mut State, call: cdr::CallId, leg: cdr::CallLegId) -> LabelId {
        let f = &self.fixed;
        match st.calls.get_mut(&call) {
            Some(c) if !c.placeholder => c.tenant,
            Some(c) => {
                c.pending_legs.push(leg);
                f.tenant_unknown
            }
            None => {
                st.calls.insert(
                    call,
                    Call {
                        tenant: f.tenant_unknown,
                        call_type: f.call_type_unknown,
                        since: st
                            .legs
                            .get(&leg)
                            .map(|l| l.since as u64)
                            .unwrap_or(0)
                            .max(1),
                        placeholder: true,
                        pending_legs: vec![leg],
                    },
                );
                f.tenant_unknown
            }
        }
    }

    /// A leg first seen in a callLegUpdate (its start was before we listened): track it.
    fn adopt_leg(&self, st: &mut State, id: cdr::CallLegId, call: Option<cdr::CallId>, now: u64) {
        let m = &*self.metrics;
        let f = &self.fixed;
        self.unmatched(st.call_bridge, 3);
        let mut leg = Leg::new(
            call,
            f.tenant_unknown,
            f.leg_type_unknown,
            f.direction_unknown,
            now,
        );
        if let Some(c) = call {
            leg.tenant = self.attach(st, c, id);
        }
        st.legs.insert(id, leg);
        m.legs_active.with(
            [st.call_bridge, leg.tenant, leg.leg_type, leg.direction],
            |g| g.add(1),
        );
    }

    fn unmatched(&self, cb: LabelId, type_index: usize) {
        let t = self.fixed.record_types[type_index];
        self.metrics.records_unmatched.with([cb, t], |c| c.inc());
    }

    fn call_gone(&self, cb: LabelId, c: &Call<LabelId>) {
        if !c.placeholder {
            self.metrics
                .calls_active
                .with([cb, c.tenant, c.call_type], |g| g.add(-1));
        }
    }

    fn leg_gone(&self, cb: LabelId, l: &Leg<LabelId>) {
        self.metrics
            .legs_active
            .with([cb, l.tenant, l.leg_type, l.direction], |g| g.add(-1));
    }

    /// Takes evicted objects off the active gauges and counts them.
    fn evicted(&self, cb: LabelId, ev: Vec<Evicted<LabelId>>, reason: LabelId) {
        let m = &*self.metrics;
        let f = &self.fixed;
        let mut n = [0u64; 4];
        for e in ev {
            match e {
                Evicted::Call(c) => {
                    self.call_gone(cb, &c);
                    n[KIND_CALL] += 1;
                }
                Evicted::Leg(l) => {
                    self.leg_gone(cb, &l);
                    n[KIND_LEG] += 1;
                }
                Evicted::Recording => {
                    m.recordings_active.with([cb], |g| g.add(-1));
                    n[KIND_RECORDING] += 1;
                }
                Evicted::Streaming => {
                    m.streamings_active.with([cb], |g| g.add(-1));
                    n[KIND_STREAMING] += 1;
                }
            }
        }
        for (k, count) in n.iter().enumerate() {
            if *count > 0 {
                m.evicted_objects
                    .with([f.kind[k], reason], |c| c.inc_by(*count));
            }
        }
    }

    fn track_delta(&self, before: [usize; 4], after: [usize; 4]) {
        for k in 0..4 {
            let d = after[k] as i64 - before[k] as i64;
            if d != 0 {
                self.metrics
                    .tracked_objects
                    .with([self.fixed.kind[k]], |g| g.add(d));
            }
        }
    }

    /// Evicts objects older than the configured max age from every session. Call it
    /// periodically; returns how many were evicted.
    pub fn sweep(&self, now: f64) -> u64 {
        let cutoff = (now.max(0.0) as u64).saturating_sub(self.tracker.limits.max_age_seconds);
        let mut total = 0;
        for s in self.tracker.live_sessions() {
            let mut st = s.lock();
            let before = counts(&st);
            let ev = st.evict_older_than(cutoff);
            total += ev.len() as u64;
            let cb = st.call_bridge;
            self.evicted(cb, ev, self.fixed.evict_max_age);
            self.track_delta(before, counts(&st));
        }
        total
    }

    /// Recomputes `cdr_exporter_tracked_objects` from the maps (after restarts drained
    /// sessions outside `apply`'s before/after window).
    pub fn refresh_tracked(&self) {
        let mut n = [0usize; 4];
        for s in self.tracker.all_sessions() {
            let c = counts(&s.lock());
            for k in 0..4 {
                n[k] += c[k];
            }
        }
        for (k, v) in n.iter().enumerate() {
            self.metrics
                .tracked_objects
                .with([self.fixed.kind[k]], |g| g.set(*v as i64));
        }
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

/// Moves a leg's active-gauge count to a new tenant.
fn relabel_leg(m: &Metrics, cb: LabelId, l: &mut Leg<LabelId>, tenant: LabelId) {
    m.legs_active
        .with([cb, l.tenant, l.leg_type, l.direction], |g| g.add(-1));
    l.tenant = tenant;
    m.legs_active
        .with([cb, l.tenant, l.leg_type, l.direction], |g| g.add(1));
}

/// Objects per kind (placeholder calls included: they are held too).
fn counts(st: &State) -> [usize; 4] {
    [
        st.calls.len(),
        st.legs.len(),
        st.recordings.len(),
        st.streamings.len(),
    ]
}

/// Everything `apply` has built, in a form that can be written to disk.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StateSnapshot {
    /// Label values; the tracker refers to them by index.
    pub labels: Vec<String>,
    pub metrics: crate::metrics::MetricsSnapshot,
    pub tracker: crate::tracker::TrackerSnapshot,
}

impl Ingest {
    /// Copies all state. Batches must not be applied meanwhile (the caller holds the gate).
    pub fn snapshot(&self) -> StateSnapshot {
        let tracker = self.tracker.snapshot(|l| l.0);
        let metrics = self.metrics.snapshot();
        let labels = self
            .metrics
            .table
            .values()
            .iter()
            .map(|v| v.to_string())
            .collect();
        StateSnapshot {
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
        let unknown = self.fixed.tenant_unknown;
        self.tracker.restore(&s.tracker, |i| {
            ids.get(i as usize).copied().unwrap_or(unknown)
        });
        self.refresh_tracked();
    }
}
