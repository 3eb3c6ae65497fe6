//! Call flows of one Call Bridge on a virtual timeline.
//!
//! Everything a record says is decided here from seeded generators, in the order of a virtual
//! clock (microseconds since the start of the run), so a seed always gives the same records;
//! only the `time` attribute (wall clock at emission) and the session GUIDs differ between runs.
//! [`Generator::step`] is synchronous: the async driver in `mod.rs` paces it to the wall clock,
//! and tests run it as fast as they like.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use super::realism::{Durations, IncidentUs};
use super::xml::{guid, millis, Header, RecordWriter};
use super::Counters;

/// What the mirror of the exporter needs to know about a record (see `expect.rs`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fact {
    CallStart {
        call: u128,
    },
    CallEnd {
        call: u128,
    },
    LegStart {
        leg: u128,
        call: Option<u128>,
    },
    LegUpdate {
        leg: u128,
        call: u128,
    },
    LegEnd {
        leg: u128,
        reason: &'static str,
        mos_valid: bool,
    },
    RecordingStart {
        id: u128,
    },
    RecordingEnd {
        id: u128,
    },
    StreamingStart {
        id: u128,
    },
    StreamingEnd {
        id: u128,
    },
}

impl Fact {
    pub fn record_type(&self) -> &'static str {
        match self {
            Fact::CallStart { .. } => "callStart",
            Fact::CallEnd { .. } => "callEnd",
            Fact::LegStart { .. } => "callLegStart",
            Fact::LegUpdate { .. } => "callLegUpdate",
            Fact::LegEnd { .. } => "callLegEnd",
            Fact::RecordingStart { .. } => "recordingStart",
            Fact::RecordingEnd { .. } => "recordingEnd",
            Fact::StreamingStart { .. } => "streamingStart",
            Fact::StreamingEnd { .. } => "streamingEnd",
        }
    }
}

/// One record ready to send: its `<record>` XML and what it means.
#[derive(Clone, Debug)]
pub(crate) struct SimRecord {
    /// Counts this bridge's sessions from 0: a change means the bridge restarted.
    pub session_no: u32,
    pub session: Arc<str>,
    pub index: u64,
    /// `numPreceedingRecordsMissing` (0 = attribute absent).
    pub missing: u64,
    pub fact: Fact,
    pub xml: String,
}

/// What one bridge's generator is asked to do.
#[derive(Clone, Debug)]
pub(crate) struct GenConfig {
    /// This bridge's share of the call arrival rate.
    pub calls_per_second: f64,
    /// No call starts at or after this virtual time (µs); `None` = until stopped.
    pub duration_us: Option<u64>,
    pub restart_every_us: Option<u64>,
    /// Staggers restarts between bridges.
    pub restart_offset_us: u64,
    pub drop_rate: f64,
    pub bad_tail: f64,
    pub durations: Durations,
    /// On the virtual timeline.
    pub incident: Option<IncidentUs>,
}

/// Identities shared by all bridges of one simulated cluster, derived from the seed.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub bridges: Vec<u128>,
    pub tenants: Vec<u128>,
    spaces: Vec<Space>,
}

#[derive(Clone, Debug)]
struct Space {
    id: u128,
    name: &'static str,
    tenant: Option<usize>,
}

const SPACE_NAMES: &[&str] = &[
    "Weekly sync",
    "Sales EMEA",
    "R&D stand-up",
    "Ops & Support",
    "All hands",
    "Board room",
    "Design review",
    "Customer <onboarding>",
    "Finance close",
    "Helpdesk",
    "Project \"Atlas\"",
    "Recruiting",
];

const PEOPLE: &[&str] = &[
    "Alice Martin",
    "Bob Chen",
    "Chloé Dubois",
    "Dmitri Ivanov",
    "Eva Nowak",
    "Farid Haddad",
    "Grace Okafor",
    "Hiro Tanaka",
    "Ingrid Larsen",
    "Jamal Wright",
    "Seán O'Brien",
    "Mei Lin",
    "Noah Fischer",
    "Olga Petrova",
    "Priya Sharma",
    "Room 4.12 (Webex Desk)",
];

/// A random version-4 GUID.
pub(crate) fn random_guid(rng: &mut impl Rng) -> u128 {
    let bytes: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .as_u128()
}

/// Picks from `(value, weight)` pairs.
fn pick<T: Copy>(rng: &mut impl Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (v, w) in items {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

/// Rounds to two decimals (densities and percentages are sent like that).
fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Shared {
    pub fn new(seed: u64, bridges: usize, tenants: usize) -> Shared {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(0);
        let bridges = (0..bridges).map(|_| random_guid(&mut r)).collect();
        let tenant_ids: Vec<u128> = (0..tenants).map(|_| random_guid(&mut r)).collect();
        let spaces = SPACE_NAMES
            .iter()
            .map(|name| Space {
                id: random_guid(&mut r),
                name,
                tenant: tenant_index(&mut r, tenants),
            })
            .collect();
        Shared {
            bridges,
            tenants: tenant_ids,
            spaces,
        }
    }
}

/// A tenant index, the first tenants busier than the last; `None` without tenants.
fn tenant_index(rng: &mut impl Rng, tenants: usize) -> Option<usize> {
    if tenants == 0 {
        return None;
    }
    let weights: Vec<(usize, u32)> = (0..tenants)
        .map(|k| (k, (1000 / (k as u32 + 1)).max(1)))
        .collect();
    Some(pick(rng, &weights))
}

/// Burst/gap loss of one received stream over a leg's life.
#[derive(Clone, Copy, Debug)]
struct Loss {
    burst_ms: u64,
    burst_density: f64,
    gap_ms: u64,
    gap_density: f64,
}

impl Loss {
    /// `severe`: an incident's network, bad enough that most legs score MOS ≤ 3.1 even on
    /// loss-tolerant codecs.
    fn draw(rng: &mut impl Rng, life_ms: u64, bad: bool, severe: bool) -> Loss {
        let (share, burst_density, gap_density) = if bad && severe {
            (
                rng.random_range(0.1..0.3),
                rng.random_range(30.0..60.0),
                rng.random_range(15.0..35.0),
            )
        } else if bad {
            (
                rng.random_range(0.03..0.2),
                rng.random_range(20.0..50.0),
                rng.random_range(3.0..20.0),
            )
        } else {
            let gap = Exp::<f64>::new(10.0)
                .map(|e| e.sample(rng))
                .unwrap_or(0.0)
                .min(0.5);
            if rng.random_bool(0.2) {
                (
                    rng.random_range(0.002..0.02),
                    rng.random_range(5.0..30.0),
                    gap,
                )
            } else {
                (0.0, 0.0, gap)
            }
        };
        let burst_ms = ((life_ms as f64) * share).round() as u64;
        Loss {
            burst_ms,
            burst_density: if burst_ms == 0 {
                0.0
            } else {
                r2(burst_density)
            },
            gap_ms: life_ms - burst_ms,
            gap_density: r2(gap_density),
        }
    }

    /// Loss over the whole stream, percent.
    fn percent(&self) -> f64 {
        let t = (self.burst_ms + self.gap_ms) as f64;
        if t == 0.0 {
            return 0.0;
        }
        (self.burst_density * self.burst_ms as f64 + self.gap_density * self.gap_ms as f64) / t
    }

    /// What the exporter accepts for a MOS estimate (README: NaN, negative, density over 100,
    /// loss with zero durations are invalid).
    fn valid(&self) -> bool {
        let density_ok = |d: f64| (0.0..=100.0).contains(&d);
        density_ok(self.burst_density)
            && density_ok(self.gap_density)
            && (self.burst_ms + self.gap_ms > 0
                || (self.burst_density == 0.0 && self.gap_density == 0.0))
    }

    fn write(&self, w: &mut RecordWriter) {
        w.open("packetStatistics")
            .open("packetLossBursts")
            .value("duration", millis(self.burst_ms))
            .value("density", format!("{:.2}", self.burst_density))
            .close("packetLossBursts")
            .open("packetGap")
            .value("duration", millis(self.gap_ms))
            .value("density", format!("{:.2}", self.gap_density))
            .close("packetGap")
            .close("packetStatistics");
    }
}

#[derive(Clone, Debug)]
struct Video {
    rx_codec: &'static str,
    tx_codec: &'static str,
    rx_size: (u32, u32),
    tx_size: (u32, u32),
    rx_loss: Loss,
}

#[derive(Clone, Debug)]
struct MediaPlan {
    rx_audio: &'static str,
    tx_audio: &'static str,
    audio_loss: Loss,
    video: Option<Video>,
    encrypted: bool,
    unencrypted: bool,
    alarms: Vec<(&'static str, f64)>,
    /// mainVideoViewer, mainVideoContributor, presentationViewer, presentationContributor
    usage: [Option<f64>; 4],
}

#[derive(Clone, Debug)]
struct LegPlan {
    id: u128,
    leg_type: &'static str,
    sub_type: Option<&'static str>,
    direction: &'static str,
    display_name: &'static str,
    remote: String,
    guest: bool,
    call_in_start: bool,
    join: u64,
    connect: Option<u64>,
    leave: u64,
    reason: &'static str,
    remote_teardown: bool,
    media: Option<MediaPlan>,
}

#[derive(Clone, Debug)]
struct MediaObject {
    id: u128,
    leg: usize,
}

#[derive(Clone, Debug)]
struct CallState {
    id: u128,
    name: String,
    co_space: Option<u128>,
    tenant: Option<u128>,
    correlator: u128,
    start: u64,
    end: u64,
    legs: Vec<LegPlan>,
    recording: Option<MediaObject>,
    streaming: Option<MediaObject>,
    active: u64,
    max_active: u64,
    completed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Start,
    LegStart(usize),
    LegUpdate(usize),
    LegEnd(usize),
    RecordingStart,
    RecordingEnd,
    StreamingStart,
    StreamingEnd,
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Arrival,
    Restart,
    Call { call: u64, step: Step },
}

#[derive(Debug, PartialEq, Eq)]
struct Scheduled {
    at: u64,
    seq: u64,
    ev: Event,
}

impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest event, ties in scheduling order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One Call Bridge: its calls, its session and correlatorIndex, its faults.
pub(crate) struct Generator {
    cfg: GenConfig,
    shared: Arc<Shared>,
    /// Record content.
    rng: ChaCha8Rng,
    /// Drop decisions (separate, so fault rates do not change the content).
    faults: ChaCha8Rng,
    /// Session GUIDs.
    sessions: ChaCha8Rng,
    arrivals: Option<Exp<f64>>,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    calls: HashMap<u64, CallState>,
    next_call: u64,
    session_no: u32,
    session: Arc<str>,
    next_index: u64,
    pending_missing: u64,
    fast_forward: bool,
    counters: Arc<Counters>,
}

impl Generator {
    /// `session_seed` chooses the session GUIDs (fresh per run, so that two runs with one
    /// seed are two sets of sessions to a receiver, as two boots of a Call Bridge would be).
    pub fn new(
        cfg: GenConfig,
        shared: Arc<Shared>,
        seed: u64,
        bridge: usize,
        session_seed: u64,
        counters: Arc<Counters>,
    ) -> Generator {
        let stream = |s: u64| {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            r.set_stream(s);
            r
        };
        let b = bridge as u64;
        let mut sessions = ChaCha8Rng::seed_from_u64(session_seed);
        sessions.set_stream(b);
        let session = guid(random_guid(&mut sessions)).into();
        let arrivals = if cfg.calls_per_second > 0.0 {
            Exp::new(cfg.calls_per_second).ok()
        } else {
            None
        };
        let mut g = Generator {
            rng: stream(1 + 3 * b),
            faults: stream(2 + 3 * b),
            sessions,
            arrivals,
            heap: BinaryHeap::new(),
            seq: 0,
            calls: HashMap::new(),
            next_call: 0,
            session_no: 0,
            session,
            next_index: 0,
            pending_missing: 0,
            fast_forward: false,
            counters,
            cfg,
            shared,
        };
        g.schedule_arrival(0);
        if let Some(every) = g.cfg.restart_every_us {
            let at = g.cfg.restart_offset_us + every;
            if g.before_end(at) {
                g.push(at, Event::Restart);
            }
        }
        g
    }

    fn before_end(&self, at: u64) -> bool {
        self.cfg.duration_us.is_none_or(|d| at < d)
    }

    fn push(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn schedule_arrival(&mut self, now: u64) {
        let Some(exp) = self.arrivals else { return };
        let gap = (exp.sample(&mut self.rng) * 1e6) as u64;
        let at = now + gap.max(1);
        if self.before_end(at) {
            self.push(at, Event::Arrival);
        }
    }

    /// The virtual time (µs) of the next event; `None` when the bridge has nothing left to do.
    pub fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|s| s.at)
    }

    /// Stops starting calls and restarting; what is in flight still plays out (at once, if
    /// the driver no longer waits).
    pub fn finish(&mut self) {
        self.fast_forward = true;
        self.heap
            .retain(|s| !matches!(s.ev, Event::Arrival | Event::Restart));
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// Plays the next event; records that survive the drop fault go to `out`. `time` is the
    /// record's `time` attribute. Returns false when nothing is left.
    pub fn step(&mut self, time: &str, out: &mut Vec<SimRecord>) -> bool {
        let Some(Scheduled { at, ev, .. }) = self.heap.pop() else {
            return false;
        };
        match ev {
            Event::Arrival => {
                if !self.fast_forward {
                    self.plan_call(at);
                    self.schedule_arrival(at);
                }
            }
            Event::Restart => {
                if !self.fast_forward {
                    self.restart(at);
                }
            }
            Event::Call { call, step } => self.call_step(call, step, time, out),
        }
        true
    }

    fn restart(&mut self, at: u64) {
        self.session_no += 1;
        self.session = guid(random_guid(&mut self.sessions)).into();
        self.next_index = 0;
        self.pending_missing = 0;
        let abandoned = self.calls.len() as u64;
        self.calls.clear();
        self.counters.restarts.fetch_add(1, Relaxed);
        self.counters.calls_abandoned.fetch_add(abandoned, Relaxed);
        if let Some(every) = self.cfg.restart_every_us {
            if self.before_end(at + every) {
                self.push(at + every, Event::Restart);
            }
        }
        // A Call Bridge back from a restart hosts calls again at once: this also makes sure
        // the new session reaches the receiver, which then ends the old session's objects.
        self.plan_call(at);
    }

    /// Draws a whole call and schedules its records.
    fn plan_call(&mut self, t: u64) {
        let r = &mut self.rng;
        let shared = &self.shared;
        let co_space = r.random_bool(0.7);
        let durations = self.cfg.durations;
        let shape = durations.call(r, co_space);
        let dur = shape.dur_us;
        let nominal_end = t + dur;
        let (name, co_space, tenant) = if co_space {
            let s = &shared.spaces[r.random_range(0..shared.spaces.len())];
            (s.name.to_owned(), Some(s.id), s.tenant)
        } else {
            let who = PEOPLE[r.random_range(0..PEOPLE.len())];
            (
                format!("{who}'s call"),
                None,
                tenant_index(r, shared.tenants.len()),
            )
        };
        let tenant_no = tenant;
        let tenant = tenant.map(|k| shared.tenants[k]);
        let id = random_guid(r);
        let correlator = random_guid(r);
        let n = shape.legs;
        let mut legs = Vec::with_capacity(n);
        let (incident, normal) = (self.cfg.incident, self.cfg.bad_tail);
        let bad_tail = |leave| IncidentUs::bad_tail(incident.as_ref(), tenant_no, leave, normal);
        for i in 0..n {
            let join = durations.join(r, i, t, dur);
            legs.push(plan_leg(r, durations, join, nominal_end, &bad_tail));
        }
        let end = legs.iter().map(|l| l.leave).max().unwrap_or(nominal_end)
            + r.random_range(10_000..50_000);
        let media_object = |p: f64, r: &mut ChaCha8Rng| -> Option<(MediaObject, u64, u64)> {
            if !r.random_bool(p) {
                return None;
            }
            let from = legs[0].connect.unwrap_or(legs[0].join) + r.random_range(50_000..300_000);
            if from + 20_000 >= end {
                return None;
            }
            let span = end - from;
            let to = from + (span as f64 * r.random_range(0.3..0.9)) as u64;
            Some((
                MediaObject {
                    id: random_guid(r),
                    leg: 0,
                },
                from,
                to.min(end - 10_000),
            ))
        };
        let recording = if co_space.is_some() {
            media_object(0.12, r)
        } else {
            None
        };
        let streaming = if co_space.is_some() {
            media_object(0.06, r)
        } else {
            None
        };
        let call_no = self.next_call;
        self.next_call += 1;
        let ev = |step| Event::Call {
            call: call_no,
            step,
        };
        self.push(t, ev(Step::Start));
        let times: Vec<(u64, Option<u64>, u64)> =
            legs.iter().map(|l| (l.join, l.connect, l.leave)).collect();
        for (i, (join, connect, leave)) in times.into_iter().enumerate() {
            self.push(join, ev(Step::LegStart(i)));
            if let Some(c) = connect {
                self.push(c, ev(Step::LegUpdate(i)));
            }
            self.push(leave, ev(Step::LegEnd(i)));
        }
        if let Some((_, from, to)) = &recording {
            self.push(*from, ev(Step::RecordingStart));
            self.push(*to, ev(Step::RecordingEnd));
        }
        if let Some((_, from, to)) = &streaming {
            self.push(*from, ev(Step::StreamingStart));
            self.push(*to, ev(Step::StreamingEnd));
        }
        self.push(end, ev(Step::End));
        self.calls.insert(
            call_no,
            CallState {
                id,
                name,
                co_space,
                tenant,
                correlator,
                start: t,
                end,
                legs,
                recording: recording.map(|x| x.0),
                streaming: streaming.map(|x| x.0),
                active: 0,
                max_active: 0,
                completed: 0,
            },
        );
    }

    /// Numbers the record, applies the drop fault, renders what survives.
    fn emit(
        &mut self,
        out: &mut Vec<SimRecord>,
        fact: Fact,
        time: &str,
        render: impl FnOnce(&Header<'_>) -> String,
    ) {
        let index = self.next_index;
        self.next_index += 1;
        self.counters.generated.fetch_add(1, Relaxed);
        if self.cfg.drop_rate > 0.0 && self.faults.random_bool(self.cfg.drop_rate) {
            self.pending_missing += 1;
            self.counters.dropped.fetch_add(1, Relaxed);
            return;
        }
        let missing = std::mem::take(&mut self.pending_missing);
        let xml = render(&Header {
            record_type: fact.record_type(),
            time,
            correlator_index: index,
            missing,
        });
        out.push(SimRecord {
            session_no: self.session_no,
            session: self.session.clone(),
            index,
            missing,
            fact,
            xml,
        });
    }

    fn call_step(&mut self, call_no: u64, step: Step, time: &str, out: &mut Vec<SimRecord>) {
        // Calls abandoned by a restart are gone, with their pending records.
        let Some(mut c) = self.calls.remove(&call_no) else {
            return;
        };
        match step {
            Step::Start => {
                self.counters.calls_started.fetch_add(1, Relaxed);
                let fact = Fact::CallStart { call: c.id };
                self.emit(out, fact, time, |h| {
                    let mut w = RecordWriter::new(h, "call", c.id);
                    w.text("name", &c.name);
                    if let Some(s) = c.co_space {
                        w.guid("coSpace", s);
                    }
                    if let Some(t) = c.tenant {
                        w.guid("tenant", t);
                    }
                    w.text(
                        "callType",
                        if c.co_space.is_some() {
                            "coSpace"
                        } else {
                            "adHoc"
                        },
                    )
                    .guid("callCorrelator", c.correlator)
                    .value("coSpaceMetaDataConfigured", "false");
                    w.finish()
                });
            }
            Step::LegStart(i) => {
                c.active += 1;
                c.max_active = c.max_active.max(c.active);
                let l = &c.legs[i];
                let call = l.call_in_start.then_some(c.id);
                let fact = Fact::LegStart { leg: l.id, call };
                self.emit(out, fact, time, |h| {
                    let mut w = RecordWriter::new(h, "callLeg", l.id);
                    w.text("displayName", l.display_name)
                        .text("localAddress", "meet.example.com")
                        .text("remoteAddress", &l.remote)
                        .text("remoteParty", &l.remote)
                        .value("guestConnection", l.guest)
                        .value("recording", "false")
                        .value("streaming", "false")
                        .text("type", l.leg_type);
                    if let Some(s) = l.sub_type {
                        w.text("subType", s);
                        if s == "lync" {
                            w.text("lyncSubType", "audioVideo");
                        }
                    }
                    w.text("direction", l.direction);
                    if let Some(id) = call {
                        w.guid("call", id);
                    }
                    w.finish()
                });
            }
            Step::LegUpdate(i) => {
                let l = &c.legs[i];
                let fact = Fact::LegUpdate {
                    leg: l.id,
                    call: c.id,
                };
                self.emit(out, fact, time, |h| {
                    let mut w = RecordWriter::new(h, "callLeg", l.id);
                    w.text("state", "connected").guid("call", c.id);
                    w.finish()
                });
            }
            Step::LegEnd(i) => {
                c.active -= 1;
                c.completed += 1;
                let l = &c.legs[i];
                let mos_valid = l.media.as_ref().is_some_and(|m| m.audio_loss.valid());
                let fact = Fact::LegEnd {
                    leg: l.id,
                    reason: l.reason,
                    mos_valid,
                };
                self.emit(out, fact, time, |h| render_leg_end(h, l));
            }
            Step::RecordingStart => {
                if let Some(m) = &c.recording {
                    let fact = Fact::RecordingStart { id: m.id };
                    let path =
                        format!("spaces/{}/{}", guid(c.co_space.unwrap_or(c.id)), guid(m.id));
                    let leg = c.legs[m.leg].id;
                    self.emit(out, fact, time, |h| {
                        let mut w = RecordWriter::new(h, "recording", m.id);
                        w.text("path", &path)
                            .text("recorderUri", "sip:recorder@rec.example.com")
                            .guid("call", c.id)
                            .guid("callLeg", leg);
                        w.finish()
                    });
                }
            }
            Step::RecordingEnd => {
                if let Some(m) = &c.recording {
                    let fact = Fact::RecordingEnd { id: m.id };
                    self.emit(out, fact, time, |h| {
                        RecordWriter::new(h, "recording", m.id).finish()
                    });
                }
            }
            Step::StreamingStart => {
                if let Some(m) = &c.streaming {
                    let fact = Fact::StreamingStart { id: m.id };
                    let leg = c.legs[m.leg].id;
                    self.emit(out, fact, time, |h| {
                        let mut w = RecordWriter::new(h, "streaming", m.id);
                        w.text("streamerUri", "sip:streamer@stream.example.com")
                            .guid("call", c.id)
                            .guid("callLeg", leg);
                        w.finish()
                    });
                }
            }
            Step::StreamingEnd => {
                if let Some(m) = &c.streaming {
                    let fact = Fact::StreamingEnd { id: m.id };
                    self.emit(out, fact, time, |h| {
                        RecordWriter::new(h, "streaming", m.id).finish()
                    });
                }
            }
            Step::End => {
                self.counters.calls_completed.fetch_add(1, Relaxed);
                let fact = Fact::CallEnd { call: c.id };
                let secs = (c.end - c.start + 500_000) / 1_000_000;
                self.emit(out, fact, time, |h| {
                    let mut w = RecordWriter::new(h, "call", c.id);
                    w.value("callLegsCompleted", c.completed)
                        .value("callLegsMaxActive", c.max_active)
                        .value("durationSeconds", secs)
                        .value("endpointRecorded", "false");
                    w.finish()
                });
                return;
            }
        }
        self.calls.insert(call_no, c);
    }
}

/// Whole seconds, rounded, from microseconds.
fn secs(us: u64) -> u64 {
    (us + 500_000) / 1_000_000
}

/// Draws one leg of a call that ends around `nominal_end`; `bad_tail` gives the share of
/// bad legs for a leg ending at a given time (an incident raises it).
fn plan_leg(
    r: &mut ChaCha8Rng,
    durations: Durations,
    join: u64,
    nominal_end: u64,
    bad_tail: &dyn Fn(u64) -> (f64, bool),
) -> LegPlan {
    let acano = r.random_bool(0.25);
    let (leg_type, sub_type) = if acano {
        ("acano", r.random_bool(0.7).then_some("webApp"))
    } else {
        (
            "sip",
            pick(r, &[(None, 93), (Some("lync"), 5), (Some("avaya"), 2)]),
        )
    };
    let display_name = PEOPLE[r.random_range(0..PEOPLE.len())];
    let remote = format!(
        "{}@{}",
        display_name
            .split_whitespace()
            .next()
            .unwrap_or("guest")
            .to_lowercase()
            .replace('\'', ""),
        pick(
            r,
            &[
                ("example.com", 5),
                ("partner.example", 2),
                ("customer.example.org", 1)
            ]
        )
    );
    let (reason, remote_teardown, connects) = pick(
        r,
        &[
            (("remoteTeardown", true, true), 700),
            (("callEnded", false, true), 120),
            (("callDeactivated", false, true), 90),
            (("localTeardown", false, true), 40),
            (("error", false, true), 12),
            (("timeout", false, true), 10),
            (("remoteBusy", true, false), 10),
            (("ringingTimeout", false, false), 8),
            (("dnsFailure", false, false), 6),
            (("unknownDestination", false, false), 6),
            (("encryptionRequired", false, false), 5),
        ],
    );
    let mut direction = if r.random_bool(0.75) {
        "incoming"
    } else {
        "outgoing"
    };
    let mut call_in_start = r.random_bool(0.5);
    let (connect, leave) = if connects {
        let connect = join + r.random_range(50_000..250_000);
        let earliest = connect + 150_000;
        let leave = match reason {
            "callEnded" | "callDeactivated" | "localTeardown" => nominal_end.max(earliest),
            _ => durations.leave(r, earliest, nominal_end),
        };
        (Some(connect), leave)
    } else {
        // A dial-out that never connected: it named its call from the start.
        direction = "outgoing";
        call_in_start = true;
        (None, join + durations.unanswered(r))
    };
    let life_ms = (leave - join) / 1000;
    let media = connect.map(|_| plan_media(r, acano, life_ms, bad_tail(leave)));
    LegPlan {
        id: random_guid(r),
        leg_type,
        sub_type,
        direction,
        display_name,
        remote,
        guest: sub_type == Some("webApp") && r.random_bool(0.3),
        call_in_start,
        join,
        connect,
        leave,
        reason,
        remote_teardown,
        media,
    }
}

/// `bad_tail`: the share of bad legs, and whether they are an incident's (severe).
fn plan_media(r: &mut ChaCha8Rng, acano: bool, life_ms: u64, bad_tail: (f64, bool)) -> MediaPlan {
    let (bad_tail, severe) = bad_tail;
    let audio_codecs: &[(&'static str, u32)] = if acano {
        &[("opus", 85), ("aac", 15)]
    } else {
        &[
            ("g711u", 25),
            ("g711a", 12),
            ("g722", 25),
            ("g729", 10),
            ("opus", 10),
            ("aac", 8),
            ("g722_1c", 10),
        ]
    };
    let rx_audio = pick(r, audio_codecs);
    let tx_audio = if r.random_bool(0.9) {
        rx_audio
    } else {
        pick(r, audio_codecs)
    };
    let bad = bad_tail > 0.0 && r.random_bool(bad_tail);
    let audio_loss = Loss::draw(r, life_ms, bad, severe);
    let audio_only = r.random_bool(if acano { 0.05 } else { 0.25 });
    let video = (!audio_only).then(|| {
        let codecs: &[(&'static str, u32)] = if acano {
            &[("vp8", 60), ("h264", 40)]
        } else {
            &[("h264", 85), ("vp8", 15)]
        };
        let sizes = &[((640, 360), 25), ((1280, 720), 50), ((1920, 1080), 25)];
        let rx_codec = pick(r, codecs);
        Video {
            rx_codec,
            tx_codec: if r.random_bool(0.9) {
                rx_codec
            } else {
                pick(r, codecs)
            },
            rx_size: pick(r, sizes),
            tx_size: pick(r, sizes),
            rx_loss: Loss::draw(r, life_ms, bad, severe),
        }
    });
    let (encrypted, unencrypted) = if acano {
        (true, false)
    } else {
        pick(
            r,
            &[((true, false), 65), ((false, true), 30), ((true, true), 5)],
        )
    };
    let mut alarms = Vec::new();
    let loss = audio_loss
        .percent()
        .max(video.as_ref().map_or(0.0, |v| v.rx_loss.percent()));
    if loss >= 1.0 {
        let p = if bad {
            r.random_range(20.0..90.0)
        } else {
            r.random_range(1.0..10.0)
        };
        alarms.push(("packetLoss", r2(p)));
    }
    if r.random_bool(if bad { 0.3 } else { 0.04 }) {
        alarms.push(("excessiveJitter", r2(r.random_range(0.5..15.0))));
    }
    if r.random_bool(0.02) {
        alarms.push(("highRoundTripTime", r2(r.random_range(0.5..20.0))));
    }
    let usage = if video.is_some() {
        [
            Some(r2(r.random_range(85.0..=100.0))),
            Some(r2(r.random_range(60.0..=100.0))),
            r.random_bool(0.2).then(|| r2(r.random_range(5.0..60.0))),
            r.random_bool(0.05).then(|| r2(r.random_range(5.0..40.0))),
        ]
    } else {
        [None; 4]
    };
    MediaPlan {
        rx_audio,
        tx_audio,
        audio_loss,
        video,
        encrypted,
        unencrypted,
        alarms,
        usage,
    }
}

fn render_leg_end(h: &Header<'_>, l: &LegPlan) -> String {
    let mut w = RecordWriter::new(h, "callLeg", l.id);
    w.text("reason", l.reason)
        .value("remoteTeardown", l.remote_teardown);
    if let Some(m) = &l.media {
        w.value("encryptedMedia", m.encrypted)
            .value("unencryptedMedia", m.unencrypted);
    }
    w.value("durationSeconds", secs(l.leave - l.join));
    w.value(
        "activatedDuration",
        l.connect.map_or(0, |c| secs(l.leave - c)),
    );
    let Some(m) = &l.media else {
        return w.finish();
    };
    if m.usage.iter().any(Option::is_some) {
        w.open("mediaUsagePercentages");
        for (name, v) in [
            "mainVideoViewer",
            "mainVideoContributor",
            "presentationViewer",
            "presentationContributor",
        ]
        .iter()
        .zip(m.usage)
        {
            if let Some(v) = v {
                w.value(name, format!("{v:.1}"));
            }
        }
        w.close("mediaUsagePercentages");
    }
    for (kind, p) in &m.alarms {
        w.empty_with(
            "alarm",
            &[
                ("type", (*kind).to_owned()),
                ("durationPercentage", format!("{p:.1}")),
            ],
        );
    }
    w.open("rxAudio").text("codec", m.rx_audio);
    m.audio_loss.write(&mut w);
    w.close("rxAudio");
    w.open("txAudio").text("codec", m.tx_audio).close("txAudio");
    if let Some(v) = &m.video {
        w.open("rxVideo")
            .text("codec", v.rx_codec)
            .value("maxSizeWidth", v.rx_size.0)
            .value("maxSizeHeight", v.rx_size.1);
        v.rx_loss.write(&mut w);
        w.close("rxVideo");
        w.open("txVideo")
            .text("codec", v.tx_codec)
            .value("maxSizeWidth", v.tx_size.0)
            .value("maxSizeHeight", v.tx_size.1)
            .close("txVideo");
    }
    w.finish()
}
