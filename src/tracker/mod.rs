//! CMS correlation state and its rules: sessions per Call Bridge identity (dedupe, gaps,
//! restarts), calls with their legs, recordings, streamings; every bound and eviction.
//!
//! Methods take what a record says and return what happened (a transition); the caller turns
//! transitions into metrics. Generic over the label handle `L`, so nothing here knows metrics.

mod seen;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;

use crate::cdr::{CallId, CallLegId, Id, SessionId};
use crate::cow_map::{CowMap, ShardKey};
pub use seen::Seen;

macro_rules! shard_by_id {
    ($($t:ty),*) => {$(
        impl ShardKey for $t {
            fn shard(&self) -> usize {
                // GUIDs (or xxh3 hashes of other ids): the low bits are uniform.
                (self.0 .0 as usize) ^ ((self.0 .0 >> 64) as usize)
            }
        }
    )*};
}
shard_by_id!(CallId, CallLegId);

impl ShardKey for Id {
    fn shard(&self) -> usize {
        (self.0 as usize) ^ ((self.0 >> 64) as usize)
    }
}

/// Recordings and streamings: objects with a start and an end record and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    Recording,
    Streaming,
}

impl Media {
    pub const ALL: [Media; 2] = [Media::Recording, Media::Streaming];
    pub fn kind(self) -> Kind {
        match self {
            Media::Recording => Kind::Recording,
            Media::Streaming => Kind::Streaming,
        }
    }
}

/// What the tracker holds, one gauge value each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Call,
    CallLeg,
    Recording,
    Streaming,
    Session,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Call,
        Kind::CallLeg,
        Kind::Recording,
        Kind::Streaming,
        Kind::Session,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Call => "call",
            Kind::CallLeg => "call_leg",
            Kind::Recording => "recording",
            Kind::Streaming => "streaming",
            Kind::Session => "session",
        }
    }
}

/// Why an object left the state without its end record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictReason {
    /// No end record within `max_age_seconds`.
    MaxAge,
    /// Over `max_objects` of its kind.
    MaxObjects,
    /// Its Call Bridge restarted (a new session replaced the old).
    Restart,
    /// A leg still attached when its call ended (its callLegEnd was lost).
    CallEnded,
    /// Its session went beyond the per-identity or identity bounds.
    MaxSessions,
}

impl EvictReason {
    pub const ALL: [EvictReason; 5] = [
        EvictReason::MaxAge,
        EvictReason::MaxObjects,
        EvictReason::Restart,
        EvictReason::CallEnded,
        EvictReason::MaxSessions,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EvictReason::MaxAge => "max_age",
            EvictReason::MaxObjects => "max_objects",
            EvictReason::Restart => "restart",
            EvictReason::CallEnded => "call_ended",
            EvictReason::MaxSessions => "max_sessions",
        }
    }
}

/// Bounds on tracked state.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Objects older than this (seconds) are evicted by [`Tracker::sweep`].
    pub max_age_seconds: u64,
    /// Per kind, over all sessions. A session above its fair share evicts its own oldest.
    pub max_objects: usize,
    /// Call Bridge identities tracked; the least recently active go beyond it.
    pub max_call_bridges: usize,
    /// Sessions remembered per identity (live streams sharing it, and replaced sessions
    /// kept for dedupe of late copies).
    pub sessions_per_call_bridge: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_age_seconds: 2 * 86400,
            max_objects: 500_000,
            max_call_bridges: 512,
            sessions_per_call_bridge: 8,
        }
    }
}

/// A jump in correlatorIndex (or a `numPreceedingRecordsMissing`) beyond this is not a loss
/// a Call Bridge can report (it would be years of records at peak rate): it is bad input.
pub const MAX_INDEX_JUMP: u64 = 1 << 32;

/// A new session whose first record is at most this far past its announced losses is a
/// Call Bridge that booted (CMS starts correlatorIndex at 0 after a boot).
pub const FRESH_INDEX: u64 = 100;

/// Identities longer than this are shortened (prefix and hash) before they are stored.
pub const MAX_KEY_BYTES: usize = 128;

/// A stored label value: small, copyable, and an index for snapshots.
pub trait Handle: Copy + Eq + Send + Sync + std::fmt::Debug + 'static {
    fn index(self) -> u32;
    fn from_index(i: u32) -> Self;
}

/// The label types the tracker stores (one type each, so they cannot be mixed up).
pub trait Labels: Copy + Eq + Send + Sync + std::fmt::Debug + 'static {
    type CallBridge: Handle;
    type Tenant: Handle;
    type CallType: Handle;
    type LegType: Handle;
    type Direction: Handle;
}

/// Label values for what a record did not say.
#[derive(Clone, Copy, Debug)]
pub struct Unknown<T: Labels> {
    pub tenant: T::Tenant,
    pub call_type: T::CallType,
    pub leg_type: T::LegType,
    pub direction: T::Direction,
}

/// A tracked call. A placeholder was only named by a leg so far (no callStart yet).
#[derive(Clone, Debug, PartialEq)]
pub struct Call<T: Labels> {
    pub tenant: T::Tenant,
    pub call_type: T::CallType,
    pub since: u64,
    pub placeholder: bool,
    /// Legs attached to this call now (exact: a leg is in the list of one call at most).
    legs: Vec<CallLegId>,
}

impl<T: Labels> Call<T> {
    pub fn legs(&self) -> &[CallLegId] {
        &self.legs
    }
}

/// A tracked call leg: 32 bytes, the bulk of the state (see BENCHMARKS.md "Memory per leg").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leg<T: Labels> {
    /// The leg's call; `Id(0)` until a record names it (an `Option` would double the size).
    call: CallId,
    pub tenant: T::Tenant,
    pub leg_type: T::LegType,
    pub direction: T::Direction,
    /// Unix seconds (u32 lasts until 2106).
    since: u32,
}

impl<T: Labels> Leg<T> {
    pub fn call(&self) -> Option<CallId> {
        (self.call != CallId::default()).then_some(self.call)
    }
    pub fn since(&self) -> u64 {
        self.since as u64
    }
}

/// An object removed without its own end record.
#[derive(Clone, Debug, PartialEq)]
pub enum Evicted<T: Labels> {
    Call(Call<T>),
    Leg(Leg<T>),
    /// A recording or streaming, with the tenant it was counted under.
    Media(Media, T::Tenant),
}

/// A recording or streaming in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaObject<T: Labels> {
    pub since: u64,
    /// Its call's tenant when it started (`unknown` if the call was not known).
    pub tenant: T::Tenant,
}

/// Objects evicted together, for one reason, from one session.
#[derive(Debug)]
pub struct Eviction<T: Labels> {
    pub session: SessionId,
    pub call_bridge: T::CallBridge,
    pub reason: EvictReason,
    pub objects: Vec<Evicted<T>>,
    /// The session itself left the state (its dedupe memory is gone).
    pub session_dropped: bool,
}

/// What a record's correlatorIndex says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// Already applied in this session.
    Duplicate,
    /// New. `lost` records are missing right before it (jump or the sender's own count);
    /// `lost_from` is the first correlatorIndex of the jump, when there is one.
    New { lost: u64, lost_from: Option<u64> },
    /// A jump or missing count no Call Bridge can send: the record is bad input.
    Absurd,
}

/// What a callStart did.
#[derive(Debug, PartialEq)]
pub enum CallStarted<T: Labels> {
    /// The call was already started: nothing changes.
    Repeated,
    /// Started; legs that had joined before are moved to its tenant (their previous state).
    Started { relabelled: Vec<Leg<T>> },
}

/// What a callEnd did.
#[derive(Debug, PartialEq)]
pub struct CallEnded<T: Labels> {
    /// The call, if it was tracked (a placeholder too).
    pub call: Option<Call<T>>,
    /// Legs still attached to it: their callLegEnd was lost. They are closed now.
    pub stray_legs: Vec<Leg<T>>,
}

/// What a callLegStart did.
#[derive(Debug, PartialEq)]
pub enum LegStarted<T: Labels> {
    Repeated,
    Started(Leg<T>),
}

/// What a callLegUpdate did.
#[derive(Debug, PartialEq)]
pub enum LegUpdated<T: Labels> {
    Unchanged,
    /// It now belongs to another call (and maybe tenant): before and after.
    Moved {
        before: Leg<T>,
        after: Leg<T>,
    },
    /// A leg we had not seen start (we started listening mid-call): now tracked.
    Adopted(Leg<T>),
}

#[derive(Debug, Default)]
struct Counts([AtomicI64; 5]);

impl Counts {
    fn add(&self, k: Kind, n: i64) {
        self.0[k as usize].fetch_add(n, Ordering::Relaxed);
    }
    fn get(&self, k: Kind) -> i64 {
        self.0[k as usize].load(Ordering::Relaxed)
    }
}

/// Everything known about one session (one run of one Call Bridge).
pub struct SessionState<T: Labels> {
    session: SessionId,
    call_bridge: T::CallBridge,
    bridge_key: Box<str>,
    seen: Seen,
    retired: bool,
    calls: CowMap<CallId, Call<T>>,
    legs: CowMap<CallLegId, Leg<T>>,
    /// Recordings and streamings (by [`Media`]) and when they started.
    media: [CowMap<Id, MediaObject<T>>; 2],
    unknown: Unknown<T>,
    counts: Arc<Counts>,
    limits: Limits,
}

impl<T: Labels> SessionState<T> {
    pub fn id(&self) -> SessionId {
        self.session
    }
    pub fn call_bridge(&self) -> T::CallBridge {
        self.call_bridge
    }
    /// The identity the session first arrived under (GUID, URI parameter or address).
    pub fn bridge_key(&self) -> &str {
        &self.bridge_key
    }
    pub fn is_retired(&self) -> bool {
        self.retired
    }
    /// Highest correlatorIndex applied.
    pub fn max_index(&self) -> Option<u64> {
        self.seen.max()
    }

    /// Dedupe and gap accounting for one record; a new index is remembered.
    pub fn index(&mut self, idx: u64, preceding_missing: Option<u64>) -> Index {
        if self.seen.contains(idx) {
            return Index::Duplicate;
        }
        let jump = match self.seen.max() {
            Some(hi) if idx > hi => idx - hi - 1,
            _ => 0,
        };
        let announced = preceding_missing.unwrap_or(0);
        if jump > MAX_INDEX_JUMP || announced > MAX_INDEX_JUMP {
            return Index::Absurd;
        }
        self.seen.insert(idx);
        // Both describe the same loss: take the larger, once.
        Index::New {
            lost: jump.max(announced),
            lost_from: (jump > 0).then(|| idx - jump),
        }
    }

    /// A replaced session sent records that were new: it is alive after all (two Call
    /// Bridges share an identity, or a lagging copy of the stream had records we lacked).
    pub fn revive(&mut self) -> bool {
        std::mem::replace(&mut self.retired, false)
    }

    fn add_leg(&mut self, id: CallLegId, leg: Leg<T>) {
        if self.legs.insert(id, leg).is_none() {
            self.counts.add(Kind::CallLeg, 1);
        }
    }

    /// Removes a leg and its entry in its call's list.
    fn take_leg(&mut self, id: &CallLegId) -> Option<Leg<T>> {
        let leg = self.legs.remove(id)?;
        self.counts.add(Kind::CallLeg, -1);
        if let Some(c) = leg.call().and_then(|c| self.calls.get_mut(&c)) {
            if let Some(i) = c.legs.iter().position(|l| l == id) {
                c.legs.swap_remove(i);
            }
        }
        Some(leg)
    }

    fn take_call(&mut self, id: &CallId) -> Option<Call<T>> {
        let c = self.calls.remove(id)?;
        self.counts.add(Kind::Call, -1);
        Some(c)
    }

    /// Puts leg `leg` into `call`'s list (a placeholder call if it is not tracked) and
    /// returns the tenant the leg has there.
    fn attach(&mut self, call: CallId, leg: CallLegId, now: u64) -> T::Tenant {
        let unknown = self.unknown;
        match self.calls.get_mut(&call) {
            Some(c) => {
                if !c.legs.contains(&leg) {
                    c.legs.push(leg);
                }
                if c.placeholder {
                    unknown.tenant
                } else {
                    c.tenant
                }
            }
            None => {
                self.calls.insert(
                    call,
                    Call {
                        tenant: unknown.tenant,
                        call_type: unknown.call_type,
                        since: now,
                        placeholder: true,
                        legs: vec![leg],
                    },
                );
                self.counts.add(Kind::Call, 1);
                unknown.tenant
            }
        }
    }

    pub fn call_start(
        &mut self,
        id: CallId,
        tenant: T::Tenant,
        call_type: T::CallType,
        now: u64,
    ) -> CallStarted<T> {
        let legs = match self.calls.get_mut(&id) {
            Some(c) if !c.placeholder => return CallStarted::Repeated,
            Some(c) => {
                c.placeholder = false;
                c.tenant = tenant;
                c.call_type = call_type;
                c.since = now;
                c.legs.clone()
            }
            None => {
                self.calls.insert(
                    id,
                    Call {
                        tenant,
                        call_type,
                        since: now,
                        placeholder: false,
                        legs: Vec::new(),
                    },
                );
                self.counts.add(Kind::Call, 1);
                Vec::new()
            }
        };
        // Legs that joined before we knew the call's tenant move to it now.
        let mut relabelled = Vec::new();
        for leg_id in legs {
            if let Some(l) = self.legs.get_mut(&leg_id) {
                if l.tenant != tenant {
                    relabelled.push(*l);
                    l.tenant = tenant;
                }
            }
        }
        CallStarted::Started { relabelled }
    }

    pub fn call_end(&mut self, id: CallId) -> CallEnded<T> {
        let Some(call) = self.take_call(&id) else {
            return CallEnded {
                call: None,
                stray_legs: Vec::new(),
            };
        };
        // The guide: a call ends after its legs. Legs still here lost their callLegEnd.
        let mut stray_legs = Vec::new();
        for leg_id in &call.legs {
            if let Some(l) = self.legs.remove(leg_id) {
                self.counts.add(Kind::CallLeg, -1);
                stray_legs.push(l);
            }
        }
        CallEnded {
            call: Some(call),
            stray_legs,
        }
    }

    pub fn leg_start(
        &mut self,
        id: CallLegId,
        call: Option<CallId>,
        leg_type: T::LegType,
        direction: T::Direction,
        now: u64,
    ) -> LegStarted<T> {
        if self.legs.contains_key(&id) {
            return LegStarted::Repeated;
        }
        let tenant = match call {
            Some(c) => self.attach(c, id, now),
            None => self.unknown.tenant,
        };
        let leg = Leg {
            call: call.unwrap_or_default(),
            tenant,
            leg_type,
            direction,
            since: since32(now),
        };
        self.add_leg(id, leg);
        LegStarted::Started(leg)
    }

    /// `call`: the call the update names (`None` for no call or the IVR).
    pub fn leg_update(&mut self, id: CallLegId, call: Option<CallId>, now: u64) -> LegUpdated<T> {
        let Some(before) = self.legs.get(&id).copied() else {
            let tenant = match call {
                Some(c) => self.attach(c, id, now),
                None => self.unknown.tenant,
            };
            let leg = Leg {
                call: call.unwrap_or_default(),
                tenant,
                leg_type: self.unknown.leg_type,
                direction: self.unknown.direction,
                since: since32(now),
            };
            self.add_leg(id, leg);
            return LegUpdated::Adopted(leg);
        };
        let Some(call) = call else {
            return LegUpdated::Unchanged;
        };
        if before.call() == Some(call) {
            return LegUpdated::Unchanged;
        }
        // Moved: out of the old call's list, into the new one's.
        if let Some(c) = before.call().and_then(|c| self.calls.get_mut(&c)) {
            if let Some(i) = c.legs.iter().position(|l| *l == id) {
                c.legs.swap_remove(i);
            }
        }
        let tenant = self.attach(call, id, now);
        let after = Leg {
            call,
            tenant,
            ..before
        };
        self.legs.insert(id, after);
        LegUpdated::Moved { before, after }
    }

    pub fn leg_end(&mut self, id: CallLegId) -> Option<Leg<T>> {
        self.take_leg(&id)
    }

    /// The tenant of a call in progress (`unknown` for an unknown call or a placeholder).
    pub fn call_tenant(&self, id: Option<CallId>) -> T::Tenant {
        id.and_then(|id| self.calls.get(&id))
            .filter(|c| !c.placeholder)
            .map_or(self.unknown.tenant, |c| c.tenant)
    }

    /// Starts a recording or streaming of `call`; returns its tenant if it was not tracked
    /// yet (a repeated start keeps the first).
    pub fn media_start(
        &mut self,
        m: Media,
        id: Id,
        call: Option<CallId>,
        now: u64,
    ) -> Option<T::Tenant> {
        if self.media[m as usize].contains_key(&id) {
            return None;
        }
        let tenant = self.call_tenant(call);
        self.media[m as usize].insert(id, MediaObject { since: now, tenant });
        self.counts.add(m.kind(), 1);
        Some(tenant)
    }

    /// Ends a recording or streaming; its tenant if it was tracked.
    pub fn media_end(&mut self, m: Media, id: Id) -> Option<T::Tenant> {
        let had = self.media[m as usize].remove(&id)?;
        self.counts.add(m.kind(), -1);
        Some(had.tenant)
    }

    /// Objects of one kind held by this session.
    pub fn count(&self, k: Kind) -> usize {
        match k {
            Kind::Call => self.calls.len(),
            Kind::CallLeg => self.legs.len(),
            Kind::Recording => self.media[Media::Recording as usize].len(),
            Kind::Streaming => self.media[Media::Streaming as usize].len(),
            Kind::Session => 1,
        }
    }

    /// Removes every object (the Call Bridge restarted: they are gone with it).
    fn drain_all(&mut self) -> Vec<Evicted<T>> {
        let mut out = Vec::with_capacity(self.object_count());
        self.counts.add(Kind::Call, -(self.calls.len() as i64));
        out.extend(
            self.calls
                .drain()
                .into_iter()
                .map(|(_, c)| Evicted::Call(c)),
        );
        self.counts.add(Kind::CallLeg, -(self.legs.len() as i64));
        out.extend(self.legs.drain().into_iter().map(|(_, l)| Evicted::Leg(l)));
        for m in Media::ALL {
            let gone = self.media[m as usize].drain();
            self.counts.add(m.kind(), -(gone.len() as i64));
            out.extend(gone.into_iter().map(|(_, o)| Evicted::Media(m, o.tenant)));
        }
        out
    }

    fn object_count(&self) -> usize {
        self.calls.len() + self.legs.len() + self.media.iter().map(CowMap::len).sum::<usize>()
    }

    /// Removes a call and the legs still attached to it.
    fn evict_call(&mut self, id: &CallId, out: &mut Vec<Evicted<T>>) {
        if let Some(c) = self.take_call(id) {
            for leg in &c.legs {
                if let Some(l) = self.legs.remove(leg) {
                    self.counts.add(Kind::CallLeg, -1);
                    out.push(Evicted::Leg(l));
                }
            }
            out.push(Evicted::Call(c));
        }
    }

    /// Evicts every object whose start is before `cutoff` (a call with its legs).
    fn evict_older_than(&mut self, cutoff: u64) -> Vec<Evicted<T>> {
        let mut out = Vec::new();
        let calls: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.since < cutoff)
            .map(|(k, _)| *k)
            .collect();
        for id in calls {
            self.evict_call(&id, &mut out);
        }
        let legs: Vec<CallLegId> = self
            .legs
            .iter()
            .filter(|(_, l)| (l.since as u64) < cutoff)
            .map(|(k, _)| *k)
            .collect();
        for id in legs {
            out.extend(self.take_leg(&id).map(Evicted::Leg));
        }
        for m in Media::ALL {
            let gone = self.media[m as usize].extract_if(|_, o| o.since < cutoff);
            self.counts.add(m.kind(), -(gone.len() as i64));
            out.extend(gone.into_iter().map(|(_, o)| Evicted::Media(m, o.tenant)));
        }
        out
    }

    /// Enforces `max_objects`: when a kind is over it in total, a session holding at least
    /// its fair share (max / sessions) evicts its own oldest until the total is back at 90 %.
    /// So a flood from one session evicts that session's objects, not its neighbours', and the
    /// total stays within about twice the bound even if every session is at its share.
    pub fn enforce_max(&mut self) -> Vec<Evicted<T>> {
        let mut out = Vec::new();
        let max = self.limits.max_objects as i64;
        let sessions = self.counts.get(Kind::Session).max(1);
        for kind in [Kind::Call, Kind::CallLeg, Kind::Recording, Kind::Streaming] {
            let total = self.counts.get(kind);
            let own = self.count(kind) as i64;
            if total <= max || own < max / sessions {
                continue;
            }
            let n = (total - max * 9 / 10).min(own) as usize;
            match kind {
                Kind::Call => {
                    for id in oldest(self.calls.iter().map(|(k, c)| (c.since, *k)), n) {
                        self.evict_call(&id, &mut out);
                    }
                }
                Kind::CallLeg => {
                    for id in oldest(self.legs.iter().map(|(k, l)| (l.since as u64, *k)), n) {
                        out.extend(self.take_leg(&id).map(Evicted::Leg));
                    }
                }
                Kind::Recording | Kind::Streaming => {
                    let m = if kind == Kind::Recording {
                        Media::Recording
                    } else {
                        Media::Streaming
                    };
                    let ids = oldest(self.media[m as usize].iter().map(|(k, o)| (o.since, *k)), n);
                    for id in ids {
                        if let Some(tenant) = self.media_end(m, id) {
                            out.push(Evicted::Media(m, tenant));
                        }
                    }
                }
                Kind::Session => {}
            }
        }
        out
    }
}

/// The keys of the `n` entries with the smallest `since`.
fn oldest<K: Copy + Ord>(entries: impl Iterator<Item = (u64, K)>, n: usize) -> Vec<K> {
    let mut v: Vec<(u64, K)> = entries.collect();
    if n == 0 || v.is_empty() {
        return Vec::new();
    }
    let n = n.min(v.len());
    v.select_nth_unstable(n - 1);
    v.truncate(n);
    v.into_iter().map(|(_, k)| k).collect()
}

fn since32(now: u64) -> u32 {
    now.min(u32::MAX as u64) as u32
}

/// A session's state behind its own lock: batches of one session apply in order,
/// different Call Bridges in parallel.
pub type SharedSession<T> = Arc<Mutex<SessionState<T>>>;

/// The sessions seen under one Call Bridge identity, oldest first.
#[derive(Clone, Debug, Default)]
struct Bridge {
    /// The session that booted last (or arrived last), which a boot replaces.
    current: Option<SessionId>,
    sessions: VecDeque<SessionId>,
    /// Exporter clock of the last batch under this identity.
    last_active: u64,
    /// Batches seen under this identity (up to [`ESTABLISHED`]): an identity that sent
    /// many is a real Call Bridge, kept before one-batch identities a client made up.
    batches: u64,
}

/// Batches after which an identity counts as established (evicted last).
const ESTABLISHED: u64 = 100;

/// What [`Tracker::begin`] found.
pub struct Begin<T: Labels> {
    pub session: SharedSession<T>,
    /// The first batch of this session (count it).
    pub new: bool,
    /// A new, not freshly booted session arrived for an identity that already has a live
    /// session: two streams share one identity (both are kept).
    pub conflict: bool,
    /// The session this one replaced (a restart), if any.
    pub replaced: Option<SessionId>,
    /// Objects that left the state because of this batch's session bookkeeping: a restart
    /// ends the old session's objects; bounds drop the oldest sessions and identities.
    pub evictions: Vec<Eviction<T>>,
}

/// All sessions, and which sessions each Call Bridge identity has.
pub struct Tracker<T: Labels> {
    limits: Limits,
    unknown: Unknown<T>,
    sessions: DashMap<SessionId, SharedSession<T>, ahash::RandomState>,
    /// Identity bookkeeping, touched once per batch. Lock order: `bridges`, then a session.
    bridges: Mutex<HashMap<Box<str>, Bridge, ahash::RandomState>>,
    counts: Arc<Counts>,
}

/// A session whose Call Bridge label changed (a name map reloaded), with what it holds on
/// the active gauges: the caller moves those from the old label to the new one.
pub struct Relabelled<T: Labels> {
    pub old: T::CallBridge,
    pub new: T::CallBridge,
    /// Call types of its calls on the gauges (placeholders are not).
    pub calls: Vec<T::CallType>,
    pub legs: Vec<(T::LegType, T::Direction)>,
    /// Recordings and streamings (by [`Media`] index).
    pub media: [usize; 2],
}

/// `key`, shortened if needed: a long identity keeps a readable prefix and a hash.
pub fn bound_key(key: &str) -> std::borrow::Cow<'_, str> {
    if key.len() <= MAX_KEY_BYTES {
        return key.into();
    }
    let mut end = MAX_KEY_BYTES - 20;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    let h = xxhash_rust::xxh3::xxh3_64(key.as_bytes());
    format!("{}~{h:016x}", &key[..end]).into()
}

impl<T: Labels> Tracker<T> {
    pub fn new(limits: Limits, unknown: Unknown<T>) -> Self {
        Tracker {
            limits,
            unknown,
            sessions: DashMap::with_hasher(Default::default()),
            bridges: Mutex::new(HashMap::default()),
            counts: Arc::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Gives every session the label `label(identity)`; returns those that changed. Batches
    /// must not be applied meanwhile (the caller holds the snapshot gate).
    pub fn relabel(&self, label: impl Fn(&str) -> T::CallBridge) -> Vec<Relabelled<T>> {
        let mut out = Vec::new();
        for entry in self.sessions.iter() {
            let mut st = entry.value().lock();
            let new = label(&st.bridge_key);
            if new == st.call_bridge {
                continue;
            }
            out.push(Relabelled {
                old: st.call_bridge,
                new,
                calls: st
                    .calls
                    .iter()
                    .filter(|(_, c)| !c.placeholder)
                    .map(|(_, c)| c.call_type)
                    .collect(),
                legs: st
                    .legs
                    .iter()
                    .map(|(_, l)| (l.leg_type, l.direction))
                    .collect(),
                media: [st.media[0].len(), st.media[1].len()],
            });
            st.call_bridge = new;
        }
        out
    }

    /// Objects held, per kind (sessions included).
    pub fn tracked(&self) -> [(Kind, u64); 5] {
        Kind::ALL.map(|k| (k, self.counts.get(k).max(0) as u64))
    }

    fn new_state(
        &self,
        session: SessionId,
        call_bridge: T::CallBridge,
        key: &str,
    ) -> SessionState<T> {
        SessionState {
            session,
            call_bridge,
            bridge_key: key.into(),
            seen: Seen::default(),
            retired: false,
            calls: CowMap::default(),
            legs: CowMap::default(),
            media: Default::default(),
            unknown: self.unknown,
            counts: self.counts.clone(),
            limits: self.limits,
        }
    }

    /// Finds or creates the state for `session` arriving as `key`. `fresh` says the batch
    /// starts near correlatorIndex 0 (the Call Bridge booted): only then does a new session
    /// replace the identity's current one and end its objects. `label` is called only when
    /// a session is created. Do not hold any session's lock when calling this.
    pub fn begin(
        &self,
        session: SessionId,
        key: &str,
        fresh: bool,
        now: u64,
        label: impl FnOnce() -> T::CallBridge,
    ) -> Begin<T> {
        let key = bound_key(key);
        let mut bridges = self.bridges.lock();
        let known = self.sessions.get(&session).map(|s| s.clone());
        let b = match bridges.get_mut(key.as_ref()) {
            Some(b) => b,
            None => bridges.entry(key.as_ref().into()).or_default(),
        };
        b.last_active = now;
        b.batches = (b.batches + 1).min(ESTABLISHED);
        if let Some(state) = known {
            // A second identity for a known session (e.g. two receiver URIs): remember it
            // there too, without replacing anything.
            if !b.sessions.contains(&session) {
                b.sessions.push_back(session);
                b.current.get_or_insert(session);
            }
            let mut evictions = Vec::new();
            self.bound_identity(key.as_ref(), &mut bridges, &mut evictions);
            return Begin {
                session: state,
                new: false,
                conflict: false,
                replaced: None,
                evictions,
            };
        }
        let state = Arc::new(Mutex::new(self.new_state(session, label(), &key)));
        self.sessions.insert(session, state.clone());
        self.counts.add(Kind::Session, 1);
        let mut evictions = Vec::new();
        let previous = b.current.replace(session);
        b.sessions.push_back(session);
        let mut replaced = None;
        let mut conflict = false;
        if let Some(prev) = previous.filter(|p| *p != session) {
            if fresh {
                if let Some(ev) = self.retire(prev, EvictReason::Restart, false) {
                    evictions.push(ev);
                    replaced = Some(prev);
                }
            } else {
                // Not a boot: a receiver added later, or another Call Bridge under the same
                // identity. Keep both.
                conflict = self
                    .sessions
                    .get(&prev)
                    .map(|s| !s.lock().retired)
                    .unwrap_or(false);
            }
        }
        self.bound_identity(key.as_ref(), &mut bridges, &mut evictions);
        Begin {
            session: state,
            new: true,
            conflict,
            replaced,
            evictions,
        }
    }

    /// Marks `session` replaced and ends its objects; with `drop`, forgets it entirely.
    fn retire(&self, session: SessionId, reason: EvictReason, drop: bool) -> Option<Eviction<T>> {
        let state = if drop {
            let s = self.sessions.remove(&session).map(|(_, s)| s);
            if s.is_some() {
                self.counts.add(Kind::Session, -1);
            }
            s
        } else {
            self.sessions.get(&session).map(|s| s.clone())
        }?;
        let mut st = state.lock();
        let was_live = !st.retired;
        st.retired = true;
        let objects = if was_live { st.drain_all() } else { Vec::new() };
        if !was_live && !drop {
            return None;
        }
        Some(Eviction {
            session,
            call_bridge: st.call_bridge,
            reason,
            objects,
            session_dropped: drop,
        })
    }

    /// Keeps `key` within `sessions_per_call_bridge` sessions (replaced ones go first, then
    /// the oldest live one that is not current) and the identities within `max_call_bridges`
    /// (the least recently active go, with their sessions).
    fn bound_identity(
        &self,
        key: &str,
        bridges: &mut HashMap<Box<str>, Bridge, ahash::RandomState>,
        out: &mut Vec<Eviction<T>>,
    ) {
        let per = self.limits.sessions_per_call_bridge.max(2);
        while let Some(b) = bridges.get_mut(key) {
            if b.sessions.len() <= per {
                break;
            }
            let i = b
                .sessions
                .iter()
                .position(|s| self.is_retired(s))
                .or_else(|| b.sessions.iter().position(|s| Some(*s) != b.current))
                .unwrap_or(0);
            let Some(gone) = b.sessions.remove(i) else {
                break;
            };
            if b.current == Some(gone) {
                b.current = None;
            }
            if !listed_elsewhere(bridges, key, gone) {
                out.extend(self.retire(gone, EvictReason::MaxSessions, true));
            }
        }
        let max = self.limits.max_call_bridges.max(1);
        if bridges.len() <= max {
            return;
        }
        // Drop a tenth at once (amortised O(log n) per identity): the least used first, so
        // that identities a client makes up by the thousand go before a quiet real Call
        // Bridge; among equals, the least recently active.
        let mut by_use: Vec<(u64, u64, Box<str>)> = bridges
            .iter()
            .filter(|(k, _)| k.as_ref() != key)
            .map(|(k, b)| (b.batches, b.last_active, k.clone()))
            .collect();
        by_use.sort_unstable();
        let n = (bridges.len() - max * 9 / 10).min(by_use.len());
        for (_, _, k) in by_use.into_iter().take(n) {
            let Some(b) = bridges.remove(&k) else {
                continue;
            };
            for s in b.sessions {
                if !listed_elsewhere(bridges, &k, s) {
                    out.extend(self.retire(s, EvictReason::MaxSessions, true));
                }
            }
        }
    }

    fn is_retired(&self, s: &SessionId) -> bool {
        self.sessions
            .get(s)
            .map(|st| st.lock().retired)
            .unwrap_or(true)
    }

    /// Every session, for sweeps and snapshots.
    fn all_sessions(&self) -> Vec<SharedSession<T>> {
        self.sessions.iter().map(|s| s.value().clone()).collect()
    }

    /// Evicts objects that started before `now - max_age_seconds` from every session.
    pub fn sweep(&self, now: u64) -> Vec<Eviction<T>> {
        let cutoff = now.saturating_sub(self.limits.max_age_seconds);
        let mut out = Vec::new();
        for s in self.all_sessions() {
            let mut st = s.lock();
            if st.retired {
                continue;
            }
            let objects = st.evict_older_than(cutoff);
            if !objects.is_empty() {
                out.push(Eviction {
                    session: st.session,
                    call_bridge: st.call_bridge,
                    reason: EvictReason::MaxAge,
                    objects,
                    session_dropped: false,
                });
            }
        }
        out
    }
}

fn listed_elsewhere(
    bridges: &HashMap<Box<str>, Bridge, ahash::RandomState>,
    except: &str,
    s: SessionId,
) -> bool {
    bridges
        .iter()
        .any(|(k, b)| k.as_ref() != except && b.sessions.contains(&s))
}

/// A leg in a snapshot: id, call, (tenant, leg_type, direction) labels, since.
pub type LegSnapshot = (u128, Option<u128>, [u32; 3], u64);
/// A call in a snapshot: id, (tenant, call_type) labels, since, placeholder, attached legs.
pub type CallSnapshot = (u128, [u32; 2], u64, bool, Vec<u128>);

/// One session's state with labels as plain indices.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionSnapshot {
    pub session: u128,
    pub call_bridge: u32,
    pub bridge_key: String,
    pub seen: Vec<(u64, u64)>,
    pub retired: bool,
    pub calls: Vec<CallSnapshot>,
    pub legs: Vec<LegSnapshot>,
    /// Id, since, tenant (label index).
    pub recordings: Vec<(u128, u64, u32)>,
    pub streamings: Vec<(u128, u64, u32)>,
}

/// One identity's sessions.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BridgeSnapshot {
    pub key: String,
    pub current: Option<u128>,
    pub sessions: Vec<u128>,
    pub last_active: u64,
    pub batches: u64,
}

/// All correlation state, serialisable.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrackerSnapshot {
    pub sessions: Vec<SessionSnapshot>,
    pub bridges: Vec<BridgeSnapshot>,
}

/// The state at one instant, sharing memory with the live state: taking it costs a few
/// pointer copies per session, so batches wait for it only briefly.
pub struct TrackerCopy<T: Labels> {
    sessions: Vec<SessionCopy<T>>,
    bridges: Vec<(Box<str>, Bridge)>,
}

struct SessionCopy<T: Labels> {
    session: SessionId,
    call_bridge: T::CallBridge,
    bridge_key: Box<str>,
    seen: Seen,
    retired: bool,
    calls: CowMap<CallId, Call<T>>,
    legs: CowMap<CallLegId, Leg<T>>,
    media: [CowMap<Id, MediaObject<T>>; 2],
}

impl<T: Labels> Tracker<T> {
    /// Copies the state. The caller keeps batches from being applied meanwhile for the copy
    /// to be consistent.
    pub fn copy(&self) -> TrackerCopy<T> {
        let bridges = self.bridges.lock();
        let sessions = self
            .all_sessions()
            .iter()
            .map(|s| {
                let st = s.lock();
                SessionCopy {
                    session: st.session,
                    call_bridge: st.call_bridge,
                    bridge_key: st.bridge_key.clone(),
                    seen: st.seen.clone(),
                    retired: st.retired,
                    calls: st.calls.clone(),
                    legs: st.legs.clone(),
                    media: st.media.clone(),
                }
            })
            .collect();
        TrackerCopy {
            sessions,
            bridges: bridges
                .iter()
                .map(|(k, b)| (k.clone(), b.clone()))
                .collect(),
        }
    }

    /// Loads a snapshot into an empty tracker; `label` maps indices back to handles.
    /// `map` turns a label index of the snapshot into one of this process.
    pub fn restore(&self, snap: &TrackerSnapshot, map: impl Fn(u32) -> u32) {
        for s in &snap.sessions {
            let id = SessionId(Id(s.session));
            let h = |i: &u32| map(*i);
            let mut st = self.new_state(id, Handle::from_index(h(&s.call_bridge)), &s.bridge_key);
            st.seen = Seen::from_ranges(s.seen.clone());
            st.retired = s.retired;
            for (cid, [tenant, call_type], since, placeholder, legs) in &s.calls {
                let call = Call {
                    tenant: Handle::from_index(h(tenant)),
                    call_type: Handle::from_index(h(call_type)),
                    since: *since,
                    placeholder: *placeholder,
                    legs: legs.iter().map(|l| CallLegId(Id(*l))).collect(),
                };
                st.calls.insert(CallId(Id(*cid)), call);
            }
            for (lid, call, [tenant, leg_type, direction], since) in &s.legs {
                let leg = Leg {
                    call: call.map(|c| CallId(Id(c))).unwrap_or_default(),
                    tenant: Handle::from_index(h(tenant)),
                    leg_type: Handle::from_index(h(leg_type)),
                    direction: Handle::from_index(h(direction)),
                    since: since32(*since),
                };
                st.legs.insert(CallLegId(Id(*lid)), leg);
            }
            for (m, list) in [
                (Media::Recording, &s.recordings),
                (Media::Streaming, &s.streamings),
            ] {
                for (id, since, tenant) in list {
                    let tenant = Handle::from_index(map(*tenant));
                    st.media[m as usize].insert(
                        Id(*id),
                        MediaObject {
                            since: *since,
                            tenant,
                        },
                    );
                }
            }
            for k in Kind::ALL {
                self.counts.add(k, st.count(k) as i64);
            }
            self.sessions.insert(id, Arc::new(Mutex::new(st)));
        }
        let mut bridges = self.bridges.lock();
        for b in &snap.bridges {
            bridges.insert(
                b.key.as_str().into(),
                Bridge {
                    current: b.current.map(|s| SessionId(Id(s))),
                    sessions: b.sessions.iter().map(|s| SessionId(Id(*s))).collect(),
                    last_active: b.last_active,
                    batches: b.batches,
                },
            );
        }
    }
}

impl<T: Labels> TrackerCopy<T> {
    /// The serialisable form; `label` turns a label handle into a plain index.
    pub fn into_snapshot(self) -> TrackerSnapshot {
        let sessions = self
            .sessions
            .into_iter()
            .map(|s| SessionSnapshot {
                session: s.session.0 .0,
                call_bridge: s.call_bridge.index(),
                bridge_key: s.bridge_key.into(),
                seen: s.seen.ranges().to_vec(),
                retired: s.retired,
                calls: s
                    .calls
                    .iter()
                    .map(|(id, c)| {
                        (
                            id.0 .0,
                            [c.tenant.index(), c.call_type.index()],
                            c.since,
                            c.placeholder,
                            c.legs.iter().map(|l| l.0 .0).collect(),
                        )
                    })
                    .collect(),
                legs: s
                    .legs
                    .iter()
                    .map(|(id, l)| {
                        let labels = [l.tenant.index(), l.leg_type.index(), l.direction.index()];
                        (id.0 .0, l.call().map(|c| c.0 .0), labels, l.since as u64)
                    })
                    .collect(),
                recordings: s.media[Media::Recording as usize]
                    .iter()
                    .map(|(id, o)| (id.0, o.since, o.tenant.index()))
                    .collect(),
                streamings: s.media[Media::Streaming as usize]
                    .iter()
                    .map(|(id, o)| (id.0, o.since, o.tenant.index()))
                    .collect(),
            })
            .collect();
        TrackerSnapshot {
            sessions,
            bridges: self
                .bridges
                .into_iter()
                .map(|(k, b)| BridgeSnapshot {
                    key: k.into(),
                    current: b.current.map(|s| s.0 .0),
                    sessions: b.sessions.iter().map(|s| s.0 .0).collect(),
                    last_active: b.last_active,
                    batches: b.batches,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Handle for u8 {
        fn index(self) -> u32 {
            self as u32
        }
        fn from_index(i: u32) -> Self {
            i as u8
        }
    }

    /// Every label a `u8`, for tests.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Plain;
    impl Labels for Plain {
        type CallBridge = u8;
        type Tenant = u8;
        type CallType = u8;
        type LegType = u8;
        type Direction = u8;
    }

    const UNKNOWN: Unknown<Plain> = Unknown {
        tenant: 0,
        call_type: 0,
        leg_type: 0,
        direction: 0,
    };

    fn tracker(limits: Limits) -> Tracker<Plain> {
        Tracker::new(limits, UNKNOWN)
    }
    fn sid(i: u128) -> SessionId {
        SessionId(Id(i))
    }
    fn call(i: u128) -> CallId {
        CallId(Id(i))
    }
    fn leg(i: u128) -> CallLegId {
        CallLegId(Id(i))
    }

    #[test]
    fn leg_entries_stay_small() {
        // Key and value of the legs map: the memory-per-leg budget rests on this.
        assert_eq!(std::mem::size_of::<(CallLegId, Leg<Plain>)>(), 48);
    }

    #[test]
    fn a_placeholder_call_starts_now_and_is_relabelled_with_its_legs() {
        let t = tracker(Limits::default());
        let b = t.begin(sid(1), "cb", true, 1_000, || 9);
        let mut st = b.session.lock();
        assert!(
            matches!(st.leg_start(leg(1), Some(call(7)), 1, 1, 1_000), LegStarted::Started(l) if l.tenant == 0)
        );
        assert!(matches!(
            st.leg_update(leg(2), Some(call(7)), 1_001),
            LegUpdated::Adopted(_)
        ));
        // The placeholder is as young as the leg that named it: a sweep does not take it.
        drop(st);
        assert!(t.sweep(1_000 + 60).is_empty());
        let mut st = b.session.lock();
        match st.call_start(call(7), 5, 6, 1_002) {
            CallStarted::Started { relabelled } => assert_eq!(relabelled.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(st.call_start(call(7), 5, 6, 1_003), CallStarted::Repeated);
        assert_eq!(st.leg_end(leg(1)).unwrap().tenant, 5);
        assert_eq!(t.tracked()[0], (Kind::Call, 1));
        assert_eq!(t.tracked()[1], (Kind::CallLeg, 1));
    }

    #[test]
    fn call_end_closes_the_legs_still_attached() {
        let t = tracker(Limits::default());
        let b = t.begin(sid(1), "cb", true, 10, || 9);
        let mut st = b.session.lock();
        st.call_start(call(1), 5, 6, 10);
        st.leg_start(leg(1), Some(call(1)), 1, 1, 10);
        st.leg_start(leg(2), None, 1, 1, 10);
        st.leg_update(leg(2), Some(call(1)), 11);
        st.leg_start(leg(3), Some(call(2)), 1, 1, 10);
        st.leg_end(leg(1));
        let e = st.call_end(call(1));
        assert!(e.call.is_some());
        assert_eq!(e.stray_legs.len(), 1, "only the leg whose end was lost");
        assert_eq!(e.stray_legs[0].tenant, 5);
        assert_eq!(st.count(Kind::CallLeg), 1, "the leg of another call stays");
    }

    #[test]
    fn a_leg_alternating_between_calls_stays_in_one_list() {
        let t = tracker(Limits::default());
        let b = t.begin(sid(1), "cb", true, 10, || 9);
        let mut st = b.session.lock();
        st.leg_start(leg(1), None, 1, 1, 10);
        for i in 0..10_000u128 {
            st.leg_update(leg(1), Some(call(1 + i % 2)), 10);
        }
        let total: usize = st.calls.iter().map(|(_, c)| c.legs.len()).sum();
        assert_eq!(
            total, 1,
            "the leg is listed by the call it is in, nowhere else"
        );
        assert_eq!(st.legs.get(&leg(1)).unwrap().call(), Some(call(2)));
    }

    #[test]
    fn absurd_jumps_are_refused_and_counters_cannot_wrap() {
        let t = tracker(Limits::default());
        let b = t.begin(sid(1), "cb", true, 10, || 9);
        let mut st = b.session.lock();
        assert_eq!(
            st.index(0, None),
            Index::New {
                lost: 0,
                lost_from: None
            }
        );
        assert_eq!(st.index(u64::MAX, None), Index::Absurd);
        assert_eq!(
            st.index(5, None),
            Index::New {
                lost: 4,
                lost_from: Some(1)
            }
        );
        assert_eq!(st.index(6, Some(u64::MAX)), Index::Absurd);
        assert_eq!(st.index(5, None), Index::Duplicate);
    }

    #[test]
    fn restart_retires_the_old_session_and_dedupe_does_not_depend_on_other_bridges() {
        let t = tracker(Limits::default());
        let b = t.begin(sid(1), "cb", true, 1, || 1);
        {
            let mut st = b.session.lock();
            st.index(0, None);
            st.call_start(call(1), 2, 3, 1);
        }
        let b2 = t.begin(sid(2), "cb", true, 2, || 1);
        assert!(b2.new);
        assert_eq!(b2.replaced, Some(sid(1)));
        assert_eq!(b2.evictions.len(), 1);
        assert_eq!(b2.evictions[0].reason, EvictReason::Restart);
        assert_eq!(b2.evictions[0].objects.len(), 1);
        // 200 other Call Bridges restart: session 1's dedupe memory is still there.
        for i in 0..200u128 {
            let key = format!("other{i}");
            t.begin(sid(1000 + 2 * i), &key, true, 3, || 4);
            t.begin(sid(1001 + 2 * i), &key, true, 3, || 4);
        }
        let late = t.begin(sid(1), "cb-second-uri", false, 4, || 1);
        assert!(
            !late.new,
            "a late copy of the old stream is the same session"
        );
        assert_eq!(late.session.lock().index(0, None), Index::Duplicate);
    }

    #[test]
    fn sessions_and_identities_are_bounded_and_counted() {
        let limits = Limits {
            max_call_bridges: 10,
            sessions_per_call_bridge: 4,
            ..Limits::default()
        };
        let t = tracker(limits);
        let mut dropped = 0;
        for i in 0..1_000u128 {
            let b = t.begin(sid(i), "one", false, i as u64, || 1);
            b.session.lock().call_start(call(i), 1, 1, i as u64);
            dropped += b.evictions.iter().filter(|e| e.session_dropped).count();
        }
        assert_eq!(t.tracked()[4], (Kind::Session, 4));
        assert_eq!(
            t.tracked()[0],
            (Kind::Call, 4),
            "dropped sessions take their calls"
        );
        assert_eq!(dropped, 996);
        // A quiet real Call Bridge (many batches, long ago) outlives a flood of one-batch
        // identities made up by a client.
        for _ in 0..200 {
            t.begin(sid(9_000), "quiet", true, 1_500, || 1);
        }
        for i in 0..1_000u128 {
            t.begin(
                sid(10_000 + i),
                &format!("id{i}"),
                true,
                2_000 + i as u64,
                || 1,
            );
        }
        let again = t.begin(sid(9_000), "quiet", false, 3_100, || 1);
        assert!(!again.new, "the quiet Call Bridge's session was kept");
        assert!(t.bridges.lock().len() <= 10);
        assert!(t.tracked()[4].1 <= 10 + 4);
    }

    #[test]
    fn a_flood_in_one_session_evicts_its_own_objects() {
        let limits = Limits {
            max_objects: 1_000,
            ..Limits::default()
        };
        let t = tracker(limits);
        let quiet = t.begin(sid(1), "quiet", true, 1, || 1);
        {
            let mut st = quiet.session.lock();
            for i in 0..50u128 {
                st.leg_start(leg(i), None, 1, 1, 1);
            }
        }
        let loud = t.begin(sid(2), "loud", true, 1, || 2);
        let mut evicted = 0;
        for i in 0..20_000u128 {
            let mut st = loud.session.lock();
            st.leg_start(leg(1_000_000 + i), None, 1, 1, 2 + i as u64);
            evicted += st.enforce_max().len();
        }
        assert_eq!(quiet.session.lock().count(Kind::CallLeg), 50);
        assert!(t.tracked()[1].1 <= 1_000, "{:?}", t.tracked());
        assert_eq!(evicted as u64 + t.tracked()[1].1, 20_050);
    }

    #[test]
    fn snapshot_round_trip() {
        let t = tracker(Limits::default());
        let b = t.begin(sid(1), "cb", true, 1, || 3);
        {
            let mut st = b.session.lock();
            st.index(0, None);
            st.index(1, None);
            st.call_start(call(1), 2, 3, 1);
            st.leg_start(leg(1), Some(call(1)), 1, 1, 1);
            st.leg_start(leg(2), Some(call(9)), 1, 1, 1);
            st.media_start(Media::Recording, Id(5), Some(call(1)), 1);
        }
        let copy = t.copy();
        // Writes after the copy do not change it.
        b.session.lock().leg_end(leg(1));
        let snap = copy.into_snapshot();
        let t2 = tracker(Limits::default());
        t2.restore(&snap, |i| i);
        assert_eq!(t2.copy().into_snapshot(), snap);
        assert_eq!(t2.tracked().map(|x| x.1), [2, 2, 1, 0, 1]);
        let b = t2.begin(sid(1), "cb", false, 2, || 0);
        let mut st = b.session.lock();
        assert_eq!(st.index(1, None), Index::Duplicate);
        let e = st.call_end(call(1));
        assert_eq!(e.stray_legs.len(), 1);
    }

    #[test]
    fn long_identities_are_shortened_with_a_hash() {
        let long = "x".repeat(100_000);
        let k = bound_key(&long);
        assert!(k.len() <= MAX_KEY_BYTES);
        assert_ne!(bound_key(&format!("{long}y")), k);
        assert_eq!(bound_key("cms1"), "cms1");
    }
}
