//! What the exporter must show after a run: a mirror of `src/ingest.rs` fed only with the
//! batches that were acknowledged, each the first time it was.
//!
//! Mirrored semantics (one mirror per simulated Call Bridge, whose batches the exporter
//! applies in order under one bridge identity):
//! - a session counts when its first batch is accepted; a new session of the same bridge ends
//!   every object of the old one (`restart` eviction), placeholder calls included;
//! - dedupe on (session, correlatorIndex); missing = max(jump past the highest index, the
//!   record's `numPreceedingRecordsMissing`);
//! - a call is active from a callStart (a repeated one for a live call changes nothing) to its
//!   callEnd, which also closes the legs still tied to it (their callLegEnd was lost:
//!   `call_ended` eviction); a leg that names a call not started yet creates a placeholder call (tracked, not
//!   active); a callLegUpdate for an unknown leg adopts it; a callLegStart for a tracked leg
//!   is ignored (not counted as started);
//! - every applied record counts in `records_total`; end records count whether or not their
//!   object was tracked.
//!
//! The FreeSWITCH and Kamailio expectations are series their players tally per acknowledged
//! CDR or report (`voip`, `freeswitch`, `kamailio`), merged into [`Expected::series`].

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::flow::{Fact, SimRecord};

/// The totals the exporter should show; the JSON of `--expect-json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// `cdr_exporter_records_total`, summed.
    pub records_total: u64,
    /// `cdr_exporter_records_total` by `record_type` (all nine types, zeros included).
    pub records_by_type: BTreeMap<String, u64>,
    pub calls_started: u64,
    pub calls_ended: u64,
    pub legs_started: u64,
    pub legs_ended: u64,
    /// `cms_call_legs_ended_total` by `reason`.
    pub legs_ended_by_reason: BTreeMap<String, u64>,
    pub recordings_started: u64,
    pub recordings_ended: u64,
    pub streamings_started: u64,
    pub streamings_ended: u64,
    /// `cdr_exporter_records_missing_total`.
    pub missing: u64,
    /// Records of batches sent again after their 200 (informational: the exporter's duplicate
    /// counter also sees retries of batches it had applied but whose answer was lost).
    pub duplicate_records_sent: u64,
    /// `cdr_exporter_sessions_total`: sessions that delivered at least one batch.
    pub sessions: u64,
    /// Restarts the simulated bridges went through.
    pub restarts: u64,
    /// `cdr_exporter_evicted_objects_total{reason="restart"}`: objects of replaced sessions.
    #[serde(default)]
    pub evicted_restart: u64,
    /// `cdr_exporter_evicted_objects_total{reason="call_ended"}`: legs still tied to a call
    /// when its callEnd arrived.
    #[serde(default)]
    pub evicted_call_ended: u64,
    pub active_calls: u64,
    pub active_legs: u64,
    pub active_recordings: u64,
    pub active_streamings: u64,
    /// `cms_call_leg_mos_count`: callLegEnds with valid rx audio packet statistics.
    pub mos_legs: u64,
    /// FreeSWITCH and Kamailio series, `name{label="value",...}` (see
    /// [`super::parse_series_key`]) or a bare name for the family's total: exact values.
    #[serde(default)]
    pub series: BTreeMap<String, u64>,
    /// Series the exporter may show higher (duplicate counters: a retry after a lost
    /// answer is one more duplicate).
    #[serde(default)]
    pub series_at_least: BTreeMap<String, u64>,
}

pub(crate) const RECORD_TYPES: [&str; 9] = [
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

impl Expected {
    fn empty() -> Expected {
        Expected {
            records_by_type: RECORD_TYPES.iter().map(|t| (t.to_string(), 0)).collect(),
            ..Expected::default()
        }
    }

    /// Adds another bridge's (or run's) totals.
    pub fn add(&mut self, o: &Expected) {
        self.records_total += o.records_total;
        for (k, v) in &o.records_by_type {
            *self.records_by_type.entry(k.clone()).or_default() += v;
        }
        self.calls_started += o.calls_started;
        self.calls_ended += o.calls_ended;
        self.legs_started += o.legs_started;
        self.legs_ended += o.legs_ended;
        for (k, v) in &o.legs_ended_by_reason {
            *self.legs_ended_by_reason.entry(k.clone()).or_default() += v;
        }
        self.recordings_started += o.recordings_started;
        self.recordings_ended += o.recordings_ended;
        self.streamings_started += o.streamings_started;
        self.streamings_ended += o.streamings_ended;
        self.missing += o.missing;
        self.duplicate_records_sent += o.duplicate_records_sent;
        self.sessions += o.sessions;
        self.restarts += o.restarts;
        self.evicted_restart += o.evicted_restart;
        self.evicted_call_ended += o.evicted_call_ended;
        self.active_calls += o.active_calls;
        self.active_legs += o.active_legs;
        self.active_recordings += o.active_recordings;
        self.active_streamings += o.active_streamings;
        self.mos_legs += o.mos_legs;
        for (k, v) in &o.series {
            *self.series.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.series_at_least {
            *self.series_at_least.entry(k.clone()).or_default() += v;
        }
    }
}

/// One session's objects as the exporter tracks them.
#[derive(Debug, Default)]
struct Session {
    no: u32,
    highest: Option<u64>,
    /// call → placeholder?
    calls: HashMap<u128, bool>,
    /// leg → the call it is tied to
    legs: HashMap<u128, Option<u128>>,
    recordings: HashSet<u128>,
    streamings: HashSet<u128>,
}

impl Session {
    fn objects(&self) -> u64 {
        (self.calls.len() + self.legs.len() + self.recordings.len() + self.streamings.len()) as u64
    }

    /// Ties a leg to `call`; a call not started yet becomes a placeholder.
    fn attach(&mut self, call: u128) {
        self.calls.entry(call).or_insert(true);
    }
}

/// The exporter's view of one simulated Call Bridge.
#[derive(Debug)]
pub(crate) struct Mirror {
    totals: Expected,
    current: Option<Session>,
}

impl Default for Mirror {
    fn default() -> Self {
        Mirror {
            totals: Expected::empty(),
            current: None,
        }
    }
}

impl Mirror {
    /// Applies a batch the exporter acknowledged (the first time it did). All records of a
    /// batch belong to one session.
    pub fn acknowledged(&mut self, batch: &[SimRecord]) {
        let Some(first) = batch.first() else { return };
        let e = &mut self.totals;
        if self.current.as_ref().map(|s| s.no) != Some(first.session_no) {
            if let Some(old) = self.current.take() {
                e.evicted_restart += old.objects();
            }
            e.sessions += 1;
            self.current = Some(Session {
                no: first.session_no,
                ..Session::default()
            });
        }
        let Some(s) = self.current.as_mut() else {
            return;
        };
        for r in batch {
            if s.highest.is_some_and(|h| r.index <= h) {
                continue; // a duplicate: skipped by the exporter
            }
            let jump = match s.highest {
                Some(h) if r.index > h + 1 => r.index - h - 1,
                _ => 0,
            };
            e.missing += jump.max(r.missing);
            s.highest = Some(r.index);
            e.records_total += 1;
            *e.records_by_type
                .entry(r.fact.record_type().to_owned())
                .or_default() += 1;
            match &r.fact {
                Fact::CallStart { call } => match s.calls.get_mut(call) {
                    Some(false) => {}
                    Some(p) => {
                        *p = false;
                        e.calls_started += 1;
                    }
                    None => {
                        s.calls.insert(*call, false);
                        e.calls_started += 1;
                    }
                },
                Fact::CallEnd { call } => {
                    s.calls.remove(call);
                    let before = s.legs.len();
                    s.legs.retain(|_, c| *c != Some(*call));
                    e.evicted_call_ended += (before - s.legs.len()) as u64;
                    e.calls_ended += 1;
                }
                Fact::LegStart { leg, call } => {
                    if !s.legs.contains_key(leg) {
                        s.legs.insert(*leg, *call);
                        if let Some(c) = call {
                            s.attach(*c);
                        }
                        e.legs_started += 1;
                    }
                }
                Fact::LegUpdate { leg, call } => {
                    if s.legs.get(leg) != Some(&Some(*call)) {
                        s.legs.insert(*leg, Some(*call));
                        s.attach(*call);
                    }
                }
                Fact::LegEnd {
                    leg,
                    reason,
                    mos_valid,
                } => {
                    s.legs.remove(leg);
                    e.legs_ended += 1;
                    *e.legs_ended_by_reason
                        .entry((*reason).to_owned())
                        .or_default() += 1;
                    if *mos_valid {
                        e.mos_legs += 1;
                    }
                }
                Fact::RecordingStart { id } => {
                    s.recordings.insert(*id);
                    e.recordings_started += 1;
                }
                Fact::RecordingEnd { id } => {
                    s.recordings.remove(id);
                    e.recordings_ended += 1;
                }
                Fact::StreamingStart { id } => {
                    s.streamings.insert(*id);
                    e.streamings_started += 1;
                }
                Fact::StreamingEnd { id } => {
                    s.streamings.remove(id);
                    e.streamings_ended += 1;
                }
            }
        }
    }

    /// The totals, with what stays active in the current session.
    pub fn expected(&self) -> Expected {
        let mut e = self.totals.clone();
        if let Some(s) = &self.current {
            e.active_calls = s.calls.values().filter(|p| !**p).count() as u64;
            e.active_legs = s.legs.len() as u64;
            e.active_recordings = s.recordings.len() as u64;
            e.active_streamings = s.streamings.len() as u64;
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rec(session_no: u32, index: u64, missing: u64, fact: Fact) -> SimRecord {
        SimRecord {
            session_no,
            session: Arc::from("s"),
            index,
            missing,
            fact,
            xml: String::new(),
        }
    }

    #[test]
    fn mirrors_placeholders_adoption_and_restarts() {
        let mut m = Mirror::default();
        // callStart (index 0) was dropped: the leg makes a placeholder call.
        m.acknowledged(&[
            rec(
                0,
                1,
                1,
                Fact::LegStart {
                    leg: 10,
                    call: Some(1),
                },
            ),
            // Leg 11's callLegStart (index 2) was dropped: its update adopts it.
            rec(0, 3, 1, Fact::LegUpdate { leg: 11, call: 1 }),
            rec(0, 4, 0, Fact::CallStart { call: 2 }),
            rec(0, 5, 0, Fact::RecordingStart { id: 7 }),
        ]);
        let e = m.expected();
        assert_eq!(e.missing, 2);
        assert_eq!(e.sessions, 1);
        assert_eq!((e.calls_started, e.active_calls), (1, 1));
        assert_eq!((e.legs_started, e.active_legs), (1, 2));
        assert_eq!(e.active_recordings, 1);
        // A duplicate of an applied record changes nothing.
        m.acknowledged(&[rec(0, 5, 0, Fact::RecordingStart { id: 7 })]);
        assert_eq!(m.expected().recordings_started, 1);
        // A jump without the attribute is counted too, once. The call's end closes legs
        // 10 and 11, whose ends never came.
        m.acknowledged(&[rec(0, 9, 0, Fact::CallEnd { call: 1 })]);
        let e = m.expected();
        assert_eq!(e.missing, 5);
        assert_eq!((e.calls_ended, e.active_calls), (1, 1));
        assert_eq!((e.evicted_call_ended, e.active_legs), (2, 0));
        // The restart ends call 2 and the recording.
        m.acknowledged(&[rec(1, 0, 0, Fact::CallStart { call: 3 })]);
        let e = m.expected();
        assert_eq!(e.sessions, 2);
        assert_eq!(e.evicted_restart, 2);
        assert_eq!(
            (e.active_calls, e.active_legs, e.active_recordings),
            (1, 0, 0)
        );
        assert_eq!(e.records_total, 6);
        assert_eq!(e.records_by_type["callStart"], 2);
        assert_eq!(e.records_by_type["streamingEnd"], 0);
    }
}
