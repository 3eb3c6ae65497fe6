//! Correlation state: sessions (dedupe, gaps, restarts), calls, legs, recordings, streamings; eviction.
//!
//! Generic over the label handle `L` so that this module knows nothing of metrics.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;

use crate::cdr::{CallId, CallLegId, RecordingId, SessionId, StreamingId};

type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// Bounds on tracked state.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Objects older than this (seconds) are evicted by [`SessionState::evict_older_than`].
    pub max_age_seconds: u64,
    /// Per kind and session; beyond it the oldest tenth is evicted.
    pub max_objects: usize,
    /// Sessions kept after they were replaced, to recognise late duplicates.
    pub retired_sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_age_seconds: 2 * 86400,
            max_objects: 500_000,
            retired_sessions: 64,
        }
    }
}

/// The set of correlatorIndex values applied in a session, as sorted inclusive ranges.
/// CMS sends in order, so this is normally a single range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    ranges: Vec<(u64, u64)>,
}

/// Caps the range list against senders that spray random indices; beyond it the
/// lowest holes are closed (treated as seen), which can only drop, never double count.
const MAX_RANGES: usize = 4096;

impl Seen {
    pub fn contains(&self, i: u64) -> bool {
        self.ranges
            .binary_search_by(|&(lo, hi)| {
                if hi < i {
                    std::cmp::Ordering::Less
                } else if lo > i {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }

    pub fn max(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.1)
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    pub fn from_ranges(ranges: Vec<(u64, u64)>) -> Seen {
        Seen { ranges }
    }

    /// Adds `i`; returns false if it was already there.
    pub fn insert(&mut self, i: u64) -> bool {
        // Fast path: the next index in order.
        if let Some(last) = self.ranges.last_mut() {
            if last.1.checked_add(1) == Some(i) {
                last.1 = i;
                return true;
            }
            if last.1 < i {
                self.ranges.push((i, i));
                self.bound();
                return true;
            }
        } else {
            self.ranges.push((i, i));
            return true;
        }
        if self.contains(i) {
            return false;
        }
        let pos = self.ranges.partition_point(|r| r.1 < i);
        let joins_prev = pos > 0 && self.ranges[pos - 1].1 + 1 == i;
        let joins_next = pos < self.ranges.len() && self.ranges[pos].0 == i + 1;
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[pos - 1].1 = self.ranges[pos].1;
                self.ranges.remove(pos);
            }
            (true, false) => self.ranges[pos - 1].1 = i,
            (false, true) => self.ranges[pos].0 = i,
            (false, false) => self.ranges.insert(pos, (i, i)),
        }
        self.bound();
        true
    }

    fn bound(&mut self) {
        if self.ranges.len() > MAX_RANGES {
            let (lo, _) = self.ranges[0];
            let (_, hi) = self.ranges[1];
            self.ranges[1] = (lo, hi);
            self.ranges.remove(0);
        }
    }
}

/// A tracked call. `placeholder` calls were only named by a leg so far (no callStart yet).
#[derive(Clone, Debug)]
pub struct Call<L> {
    pub tenant: L,
    pub call_type: L,
    pub since: u64,
    pub placeholder: bool,
    /// Legs attributed to this call while it was a placeholder (to re-label on callStart).
    pub pending_legs: Vec<CallLegId>,
}

/// A tracked call leg: 32 bytes, the bulk of the state (see BENCHMARKS.md "Memory per leg").
#[derive(Clone, Copy, Debug)]
pub struct Leg<L> {
    /// The leg's call; `Id(0)` until a record names it (an `Option` would double the size).
    call: CallId,
    pub tenant: L,
    pub leg_type: L,
    pub direction: L,
    /// Unix seconds (u32 lasts until 2106).
    pub since: u32,
}

impl<L> Leg<L> {
    pub fn new(call: Option<CallId>, tenant: L, leg_type: L, direction: L, since: u64) -> Self {
        Leg {
            call: call.unwrap_or_default(),
            tenant,
            leg_type,
            direction,
            since: since.min(u32::MAX as u64) as u32,
        }
    }
    pub fn call(&self) -> Option<CallId> {
        (self.call != CallId::default()).then_some(self.call)
    }
    pub fn set_call(&mut self, call: CallId) {
        self.call = call;
    }
}

/// A tracked recording or streaming.
#[derive(Clone, Copy, Debug)]
pub struct Media {
    pub since: u64,
}

/// An object removed without its end record.
#[derive(Clone, Debug)]
pub enum Evicted<L> {
    Call(Call<L>),
    Leg(Leg<L>),
    Recording,
    Streaming,
}

/// Everything known about one session (one run of one Call Bridge).
#[derive(Debug)]
pub struct SessionState<L> {
    pub session: SessionId,
    /// The Call Bridge's label, fixed when the session is first seen.
    pub call_bridge: L,
    /// The identity the session arrived under (GUID, query parameter or address).
    pub bridge_key: String,
    pub seen: Seen,
    /// Replaced by a newer session of the same Call Bridge: its objects are gone.
    pub retired: bool,
    pub calls: Map<CallId, Call<L>>,
    pub legs: Map<CallLegId, Leg<L>>,
    pub recordings: Map<RecordingId, Media>,
    pub streamings: Map<StreamingId, Media>,
}

impl<L: Copy> SessionState<L> {
    pub fn new(session: SessionId, call_bridge: L, bridge_key: String) -> Self {
        SessionState {
            session,
            call_bridge,
            bridge_key,
            seen: Seen::default(),
            retired: false,
            calls: Map::default(),
            legs: Map::default(),
            recordings: Map::default(),
            streamings: Map::default(),
        }
    }

    /// Removes every object (the Call Bridge restarted: they are gone with it).
    pub fn drain_all(&mut self) -> Vec<Evicted<L>> {
        let mut out = Vec::with_capacity(self.object_count());
        out.extend(self.calls.drain().map(|(_, c)| Evicted::Call(c)));
        out.extend(self.legs.drain().map(|(_, l)| Evicted::Leg(l)));
        out.extend(self.recordings.drain().map(|_| Evicted::Recording));
        out.extend(self.streamings.drain().map(|_| Evicted::Streaming));
        self.calls.shrink_to_fit();
        self.legs.shrink_to_fit();
        out
    }

    pub fn object_count(&self) -> usize {
        self.calls.len() + self.legs.len() + self.recordings.len() + self.streamings.len()
    }

    /// Removes objects whose `since` is before `cutoff`.
    pub fn evict_older_than(&mut self, cutoff: u64) -> Vec<Evicted<L>> {
        let mut out = Vec::new();
        self.calls
            .retain(|_, c| keep(c.since, cutoff, || out.push(Evicted::Call(c.clone()))));
        self.legs
            .retain(|_, l| keep(l.since as u64, cutoff, || out.push(Evicted::Leg(*l))));
        self.recordings
            .retain(|_, m| keep(m.since, cutoff, || out.push(Evicted::Recording)));
        self.streamings
            .retain(|_, m| keep(m.since, cutoff, || out.push(Evicted::Streaming)));
        out
    }

    /// Enforces `max` per kind by evicting the oldest objects down to 90% of `max`.
    /// Amortised O(1) per insert: one O(n) pass frees room for n/10 more.
    pub fn enforce_max(&mut self, max: usize) -> Vec<Evicted<L>> {
        let mut out = Vec::new();
        let target = max * 9 / 10;
        for k in oldest(&self.calls, max, target, |c| c.since) {
            out.extend(self.calls.remove(&k).map(Evicted::Call));
        }
        for k in oldest(&self.legs, max, target, |l| l.since as u64) {
            out.extend(self.legs.remove(&k).map(Evicted::Leg));
        }
        for k in oldest(&self.recordings, max, target, |m| m.since) {
            self.recordings.remove(&k);
            out.push(Evicted::Recording);
        }
        for k in oldest(&self.streamings, max, target, |m| m.since) {
            self.streamings.remove(&k);
            out.push(Evicted::Streaming);
        }
        out
    }
}

/// The keys of the oldest entries to remove so that a map over `max` shrinks to `target`.
fn oldest<K: Copy + Ord, V>(
    map: &Map<K, V>,
    max: usize,
    target: usize,
    since: impl Fn(&V) -> u64,
) -> Vec<K> {
    if map.len() <= max {
        return Vec::new();
    }
    let n = map.len() - target;
    let mut v: Vec<(u64, K)> = map.iter().map(|(k, x)| (since(x), *k)).collect();
    v.select_nth_unstable(n - 1);
    v.truncate(n);
    v.into_iter().map(|(_, k)| k).collect()
}

fn keep(since: u64, cutoff: u64, on_evict: impl FnOnce()) -> bool {
    if since < cutoff {
        on_evict();
        false
    } else {
        true
    }
}

/// A leg in a snapshot: id, call, (tenant, leg_type, direction) labels, since.
pub type LegSnapshot = (u128, Option<u128>, [u32; 3], u64);
/// A call in a snapshot: id, (tenant, call_type) labels, since, placeholder, pending legs.
pub type CallSnapshot = (u128, [u32; 2], u64, bool, Vec<u128>);

/// One session's state with labels as plain indices (see [`Tracker::snapshot`]).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionSnapshot {
    pub session: u128,
    pub call_bridge: u32,
    pub bridge_key: String,
    pub seen: Vec<(u64, u64)>,
    pub retired: bool,
    pub calls: Vec<CallSnapshot>,
    pub legs: Vec<LegSnapshot>,
    pub recordings: Vec<(u128, u64)>,
    pub streamings: Vec<(u128, u64)>,
}

/// All correlation state, serialisable.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrackerSnapshot {
    pub sessions: Vec<SessionSnapshot>,
    pub bridges: Vec<(String, u128)>,
    pub retired: Vec<u128>,
}

/// A session's state behind its own lock: batches of one session apply in order,
/// different Call Bridges in parallel.
pub type SharedSession<L> = Arc<Mutex<SessionState<L>>>;

/// What [`Tracker::session`] found: the session's state, always usable.
pub struct Lookup<L> {
    pub state: SharedSession<L>,
    /// True if this is the first batch of a session (count it).
    pub new: bool,
    /// The session it replaced, if the Call Bridge restarted: end its objects.
    pub replaced: Option<SharedSession<L>>,
    /// A new, not freshly booted session arrived for an identity that already has a live
    /// session: two streams share one `call_bridge` identity (both are kept).
    pub conflict: bool,
}

/// A new session whose first record is at most this far past its announced losses is a
/// Call Bridge that booted (CMS starts correlatorIndex at 0 after a boot).
pub const FRESH_INDEX: u64 = 100;

/// All sessions, and which one is current for each Call Bridge identity.
pub struct Tracker<L> {
    pub limits: Limits,
    sessions: DashMap<SessionId, SharedSession<L>, ahash::RandomState>,
    bridges: DashMap<String, SessionId, ahash::RandomState>,
    retired: Mutex<VecDeque<SessionId>>,
}

impl<L: Copy + Send + 'static> Tracker<L> {
    pub fn new(limits: Limits) -> Self {
        Tracker {
            limits,
            sessions: DashMap::with_hasher(Default::default()),
            bridges: DashMap::with_hasher(Default::default()),
            retired: Mutex::new(VecDeque::new()),
        }
    }

    /// Finds or creates the state for `session` arriving as `bridge_key`. `fresh` says the
    /// batch starts near correlatorIndex 0, i.e. the Call Bridge booted: only then does a new
    /// session replace (and end) the identity's previous one. `label` is called only when a
    /// session is created.
    pub fn session(
        &self,
        session: SessionId,
        bridge_key: &str,
        fresh: bool,
        label: impl FnOnce() -> L,
    ) -> Lookup<L> {
        if let Some(s) = self.sessions.get(&session).map(|s| s.clone()) {
            // A second identity for the same session (e.g. two receiver URIs): remember it,
            // without retiring anything. (A retired session stays retired: see `revive`.)
            self.bridges.entry(bridge_key.to_owned()).or_insert(session);
            return Lookup {
                state: s,
                new: false,
                replaced: None,
                conflict: false,
            };
        }
        let state = Arc::new(Mutex::new(SessionState::new(
            session,
            label(),
            bridge_key.to_owned(),
        )));
        let state = self.sessions.entry(session).or_insert(state).clone();
        if fresh {
            let replaced = self.point_bridge(bridge_key, session);
            return Lookup {
                state,
                new: true,
                replaced,
                conflict: false,
            };
        }
        // Not a boot: a receiver added later, or a second Call Bridge under the same identity.
        let previous = self.bridges.insert(bridge_key.to_owned(), session);
        let conflict = previous
            .and_then(|p| self.sessions.get(&p).map(|s| !s.lock().retired))
            .unwrap_or(false);
        Lookup {
            state,
            new: true,
            replaced: None,
            conflict,
        }
    }

    /// A replaced session sent records that were not duplicates: it is alive after all (two
    /// Call Bridges share one identity, or a lagging second receiver stream had records the
    /// first lacked). Call with its lock held and `retired` already cleared.
    pub fn revive(&self, session: SessionId) {
        self.retired.lock().retain(|r| *r != session);
    }

    /// Makes `session` current for `bridge_key`; returns the session it replaces, retired.
    fn point_bridge(&self, bridge_key: &str, session: SessionId) -> Option<SharedSession<L>> {
        let old = match self.bridges.get_mut(bridge_key) {
            Some(cur) if *cur == session => return None,
            Some(mut cur) => std::mem::replace(&mut *cur, session),
            None => {
                self.bridges.insert(bridge_key.to_owned(), session);
                return None;
            }
        };
        let old_state = self.sessions.get(&old).map(|s| s.clone())?;
        {
            let mut g = old_state.lock();
            if g.retired {
                return None;
            }
            g.retired = true;
        }
        let mut retired = self.retired.lock();
        retired.push_back(old);
        while retired.len() > self.limits.retired_sessions {
            if let Some(gone) = retired.pop_front() {
                self.sessions.remove(&gone);
            }
        }
        Some(old_state)
    }

    /// Every live (not retired) session, for sweeps and gauges.
    pub fn live_sessions(&self) -> Vec<SharedSession<L>> {
        self.sessions
            .iter()
            .filter(|s| !s.value().lock().retired)
            .map(|s| s.value().clone())
            .collect()
    }

    pub fn all_sessions(&self) -> Vec<SharedSession<L>> {
        self.sessions.iter().map(|s| s.value().clone()).collect()
    }

    /// Copies the state; `label` turns a label handle into a plain index. The caller must
    /// keep batches from being applied meanwhile for the copy to be consistent.
    pub fn snapshot(&self, label: impl Fn(L) -> u32) -> TrackerSnapshot {
        let sessions = self
            .all_sessions()
            .iter()
            .map(|s| {
                let st = s.lock();
                SessionSnapshot {
                    session: st.session.0 .0,
                    call_bridge: label(st.call_bridge),
                    bridge_key: st.bridge_key.clone(),
                    seen: st.seen.ranges().to_vec(),
                    retired: st.retired,
                    calls: st
                        .calls
                        .iter()
                        .map(|(id, c)| {
                            let pending = c.pending_legs.iter().map(|l| l.0 .0).collect();
                            (
                                id.0 .0,
                                [label(c.tenant), label(c.call_type)],
                                c.since,
                                c.placeholder,
                                pending,
                            )
                        })
                        .collect(),
                    legs: st
                        .legs
                        .iter()
                        .map(|(id, l)| {
                            let labels = [label(l.tenant), label(l.leg_type), label(l.direction)];
                            (id.0 .0, l.call().map(|c| c.0 .0), labels, l.since as u64)
                        })
                        .collect(),
                    recordings: st
                        .recordings
                        .iter()
                        .map(|(id, m)| (id.0 .0, m.since))
                        .collect(),
                    streamings: st
                        .streamings
                        .iter()
                        .map(|(id, m)| (id.0 .0, m.since))
                        .collect(),
                }
            })
            .collect();
        TrackerSnapshot {
            sessions,
            bridges: self
                .bridges
                .iter()
                .map(|b| (b.key().clone(), b.value().0 .0))
                .collect(),
            retired: self.retired.lock().iter().map(|s| s.0 .0).collect(),
        }
    }

    /// Loads a snapshot into an empty tracker; `label` maps indices back to handles.
    pub fn restore(&self, snap: &TrackerSnapshot, label: impl Fn(u32) -> L) {
        use crate::cdr::Id;
        for s in &snap.sessions {
            let mut st = SessionState::new(
                SessionId(Id(s.session)),
                label(s.call_bridge),
                s.bridge_key.clone(),
            );
            st.seen = Seen::from_ranges(s.seen.clone());
            st.retired = s.retired;
            for (id, [tenant, call_type], since, placeholder, pending) in &s.calls {
                let call = Call {
                    tenant: label(*tenant),
                    call_type: label(*call_type),
                    since: *since,
                    placeholder: *placeholder,
                    pending_legs: pending.iter().map(|l| CallLegId(Id(*l))).collect(),
                };
                st.calls.insert(CallId(Id(*id)), call);
            }
            for (id, call, [tenant, leg_type, direction], since) in &s.legs {
                let leg = Leg::new(
                    call.map(|c| CallId(Id(c))),
                    label(*tenant),
                    label(*leg_type),
                    label(*direction),
                    *since,
                );
                st.legs.insert(CallLegId(Id(*id)), leg);
            }
            for (id, since) in &s.recordings {
                st.recordings
                    .insert(RecordingId(Id(*id)), Media { since: *since });
            }
            for (id, since) in &s.streamings {
                st.streamings
                    .insert(StreamingId(Id(*id)), Media { since: *since });
            }
            self.sessions.insert(st.session, Arc::new(Mutex::new(st)));
        }
        for (key, session) in &snap.bridges {
            self.bridges.insert(key.clone(), SessionId(Id(*session)));
        }
        *self.retired.lock() = snap.retired.iter().map(|s| SessionId(Id(*s))).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_in_order_is_one_range() {
        let mut s = Seen::default();
        for i in 0..100 {
            assert!(s.insert(i));
        }
        assert_eq!(s.ranges(), &[(0, 99)]);
        assert!(!s.insert(50));
        assert!(s.contains(0) && s.contains(99) && !s.contains(100));
    }

    #[test]
    fn seen_fills_holes_exactly() {
        let mut s = Seen::default();
        for i in [10, 14, 12, 11, 13] {
            assert!(s.insert(i), "{i}");
        }
        assert_eq!(s.ranges(), &[(10, 14)]);
        for i in [10, 11, 12, 13, 14] {
            assert!(!s.insert(i));
        }
        assert!(s.insert(5));
        assert_eq!(s.ranges(), &[(5, 5), (10, 14)]);
    }

    #[test]
    fn leg_entries_stay_small() {
        // Key and value of the legs map: the memory-per-leg budget rests on this.
        assert_eq!(std::mem::size_of::<(CallLegId, Leg<u32>)>(), 48);
    }

    #[test]
    fn cutoff_evicts_oldest() {
        let mut st: SessionState<u8> = SessionState::new(SessionId::default(), 0, "b".into());
        for i in 0..100u64 {
            st.legs.insert(
                CallLegId(crate::cdr::Id(i as u128 + 1)),
                Leg::new(None, 0, 0, 0, i),
            );
        }
        let ev = st.enforce_max(50);
        assert_eq!(st.legs.len(), 45);
        assert_eq!(ev.len(), 55);
        assert!(st.legs.values().all(|l| l.since >= 55));
        // Ties are broken, not all evicted.
        for l in st.legs.values_mut() {
            l.since = 7;
        }
        assert_eq!(st.enforce_max(40).len(), 9);
        assert_eq!(st.legs.len(), 36);
        assert_eq!(st.evict_older_than(8).len(), 36);
    }

    #[test]
    fn new_session_for_known_bridge_retires_old() {
        let t: Tracker<u8> = Tracker::new(Limits::default());
        let s1 = SessionId(crate::cdr::Id(1));
        let s2 = SessionId(crate::cdr::Id(2));
        let l = t.session(s1, "cb", true, || 1);
        assert!(l.new && l.replaced.is_none());
        let l = t.session(s1, "cb", false, || 1);
        assert!(!l.new && l.replaced.is_none());
        let l = t.session(s2, "cb", true, || 1);
        assert!(l.new, "a booted session replaces the old one");
        assert!(l.replaced.unwrap().lock().retired);
        // The replaced session sends again: still found, and still marked retired until
        // the caller sees records that are not duplicates.
        let l = t.session(s1, "cb", false, || 1);
        assert!(!l.new && l.state.lock().retired);
        // The same session under a second identity is still the same state.
        let l = t.session(s2, "10.0.0.1", false, || 1);
        assert!(!l.new && l.replaced.is_none());
        // A new session that did not boot does not end the identity's live session.
        let s3 = SessionId(crate::cdr::Id(3));
        let l = t.session(s3, "cb", false, || 1);
        assert!(l.new && l.replaced.is_none() && l.conflict);
    }
}
