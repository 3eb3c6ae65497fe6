//! Unit tests of the simulator's records: they parse back with `crate::cdr::parse`, call
//! summaries are right, drop bookkeeping is right, and a seed fixes the content.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::expect::Mirror;
use super::flow::{Fact, GenConfig, Generator, Shared, SimRecord};
use super::{xml, Counters};
use crate::cdr::{self, CallRef, Record};

const TIME: &str = "2024-05-06T07:08:09Z";

fn gen_cfg(seconds: u64) -> GenConfig {
    GenConfig {
        calls_per_second: 4.0,
        duration_us: Some(seconds * 1_000_000),
        restart_every_us: None,
        restart_offset_us: 0,
        drop_rate: 0.0,
        bad_tail: 0.05,
        durations: Default::default(),
        incident: None,
    }
}

/// Plays a bridge's whole run at once; returns its records and its counters.
fn generate(cfg: GenConfig, seed: u64, session_seed: u64) -> (Vec<SimRecord>, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let shared = Arc::new(Shared::new(seed, 1, 3));
    let mut g = Generator::new(cfg, shared, seed, 0, session_seed, counters.clone());
    let mut out = Vec::new();
    while g.step(TIME, &mut out) {}
    (out, counters)
}

/// Renders records as CMS would post them (one session per batch, up to `k` records).
fn bodies(records: &[SimRecord], k: usize, call_bridge: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let s = records[i].session_no;
        let mut j = i;
        while j < records.len() && j - i < k && records[j].session_no == s {
            j += 1;
        }
        out.push(xml::envelope(
            &records[i].session,
            call_bridge,
            records[i..j].iter().map(|r| r.xml.as_str()),
        ));
        i = j;
    }
    out
}

/// Parses every body and returns the records, checking each is valid and matches its header.
fn parse_all(records: &[SimRecord], k: usize) -> Vec<Record<'static>> {
    let cb = "158ba4f7-70eb-4a35-982c-71d4f1674277";
    let mut parsed = Vec::new();
    let mut it = records.iter();
    for body in bodies(records, k, Some(cb)) {
        let batch = cdr::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(batch.call_bridge.as_deref(), Some(cb));
        for e in batch.records {
            let want = it.next().expect("as many records as sent");
            assert_eq!(e.header.record_type.as_str(), want.fact.record_type());
            assert_eq!(e.header.correlator_index, Some(want.index));
            assert_eq!(e.header.record_index, Some(want.index + 1));
            assert_eq!(
                e.header.num_preceding_missing,
                (want.missing > 0).then_some(want.missing)
            );
            assert!(e.header.time.is_some(), "time parses");
            let rec = match e.body {
                Ok(r) => r,
                Err(inv) => panic!("invalid record {inv:?}:\n{}", want.xml),
            };
            parsed.push(into_owned(rec));
        }
    }
    assert!(it.next().is_none());
    parsed
}

/// The tests keep the parsed records beyond the bodies they came from.
fn into_owned(r: Record<'_>) -> Record<'static> {
    // Only the fields the tests read are kept; text is dropped.
    match r {
        Record::CallStart(c) => Record::CallStart(cdr::CallStart {
            id: c.id,
            call_type: c.call_type,
            co_space: c.co_space,
            tenant: c.tenant.map(|t| t.into_owned().into()),
            name: c.name.map(|t| t.into_owned().into()),
            ..Default::default()
        }),
        Record::CallEnd(c) => Record::CallEnd(c),
        Record::CallLegStart(l) => Record::CallLegStart(cdr::CallLegStart {
            id: l.id,
            call: l.call,
            leg_type: l.leg_type,
            direction: l.direction,
            display_name: l.display_name.map(|t| t.into_owned().into()),
            ..Default::default()
        }),
        Record::CallLegUpdate(u) => Record::CallLegUpdate(cdr::CallLegUpdate {
            id: u.id,
            call: u.call,
            state: u.state,
            ..Default::default()
        }),
        Record::CallLegEnd(l) => {
            let l = *l;
            Record::CallLegEnd(Box::new(cdr::CallLegEnd {
                id: l.id,
                reason: l.reason,
                remote_teardown: l.remote_teardown,
                duration_seconds: l.duration_seconds,
                alarms: l.alarms,
                rx_audio: l.rx_audio,
                tx_audio: l.tx_audio,
                rx_video: l.rx_video,
                tx_video: l.tx_video,
                encrypted_media: l.encrypted_media,
                unencrypted_media: l.unencrypted_media,
                ..Default::default()
            }))
        }
        Record::RecordingStart(r) => Record::RecordingStart(cdr::RecordingStart {
            id: r.id,
            call: r.call,
            call_leg: r.call_leg,
            ..Default::default()
        }),
        Record::RecordingEnd(r) => Record::RecordingEnd(r),
        Record::StreamingStart(s) => Record::StreamingStart(cdr::StreamingStart {
            id: s.id,
            call: s.call,
            call_leg: s.call_leg,
            ..Default::default()
        }),
        Record::StreamingEnd(s) => Record::StreamingEnd(s),
        Record::Unknown => Record::Unknown,
    }
}

#[test]
fn records_round_trip_through_the_parser() {
    let (records, counters) = generate(gen_cfg(30), 7, 1);
    assert!(records.len() > 1000, "{} records", records.len());
    for k in [1, 10] {
        let parsed = parse_all(&records, k);
        assert_eq!(parsed.len(), records.len());
    }
    let parsed = parse_all(&records, 10);
    // What the parser read is what the simulator meant.
    for (r, p) in records.iter().zip(&parsed) {
        match (&r.fact, p) {
            (Fact::CallStart { call }, Record::CallStart(c)) => assert_eq!(c.id.0 .0, *call),
            (Fact::CallEnd { call }, Record::CallEnd(c)) => assert_eq!(c.id.0 .0, *call),
            (Fact::LegStart { leg, call }, Record::CallLegStart(l)) => {
                assert_eq!(l.id.0 .0, *leg);
                assert_eq!(l.call.map(|c| c.0 .0), *call);
            }
            (Fact::LegUpdate { leg, call }, Record::CallLegUpdate(u)) => {
                assert_eq!(u.id.0 .0, *leg);
                assert!(matches!(u.call, Some(CallRef::Call(c)) if c.0 .0 == *call));
                assert_eq!(u.state.as_ref().map(|s| s.as_str()), Some("connected"));
            }
            (Fact::LegEnd { leg, reason, .. }, Record::CallLegEnd(l)) => {
                assert_eq!(l.id.0 .0, *leg);
                assert_eq!(l.reason.as_ref().map(|r| r.as_str()), Some(*reason));
            }
            (Fact::RecordingStart { id }, Record::RecordingStart(x)) => {
                assert_eq!(x.id.0 .0, *id);
                assert!(x.call.is_some() && x.call_leg.is_some());
            }
            (Fact::RecordingEnd { id }, Record::RecordingEnd(x)) => assert_eq!(x.id.0 .0, *id),
            (Fact::StreamingStart { id }, Record::StreamingStart(x)) => {
                assert_eq!(x.id.0 .0, *id);
                assert!(x.call.is_some() && x.call_leg.is_some());
            }
            (Fact::StreamingEnd { id }, Record::StreamingEnd(x)) => assert_eq!(x.id.0 .0, *id),
            (f, p) => panic!("{f:?} parsed as {p:?}"),
        }
    }
    // Every kind of record occurs, and text with markup survived escaping.
    let types: HashSet<_> = records.iter().map(|r| r.fact.record_type()).collect();
    assert_eq!(types.len(), 9, "{types:?}");
    assert!(parsed.iter().any(|p| matches!(p,
        Record::CallStart(c) if c.name.as_deref() == Some("R&D stand-up"))));
    assert_eq!(
        counters
            .generated
            .load(std::sync::atomic::Ordering::Relaxed),
        records.len() as u64
    );
}

#[test]
fn flows_are_realistic() {
    let (records, _) = generate(gen_cfg(60), 11, 1);
    let parsed = parse_all(&records, 10);
    let mut call_types = HashMap::new();
    let mut tenants = HashSet::new();
    let mut reasons: HashMap<String, u64> = HashMap::new();
    let (mut legs, mut bad, mut with_video, mut alarms) = (0u64, 0u64, 0u64, 0u64);
    for p in &parsed {
        match p {
            Record::CallStart(c) => {
                let t = c.call_type.as_ref().map(|t| t.as_str().to_owned());
                assert_eq!(c.co_space.is_some(), t.as_deref() == Some("coSpace"));
                *call_types.entry(t).or_insert(0u64) += 1;
                tenants.insert(c.tenant.as_deref().map(str::to_owned));
            }
            Record::CallLegEnd(l) => {
                legs += 1;
                *reasons
                    .entry(l.reason.as_ref().unwrap().as_str().to_owned())
                    .or_default() += 1;
                let rt = l.remote_teardown.unwrap();
                match l.reason.as_ref().unwrap().as_str() {
                    "remoteTeardown" => assert!(rt),
                    "callEnded" | "callDeactivated" | "localTeardown" => assert!(!rt),
                    _ => {}
                }
                let d = l.duration_seconds.unwrap();
                if let Some(a) = &l.rx_audio {
                    let ps = a.packet_statistics.unwrap();
                    let total =
                        ps.packet_loss_bursts.duration.unwrap() + ps.packet_gap.duration.unwrap();
                    assert!((total - d).abs() <= 0.5 + 1e-9, "stats {total} vs leg {d}");
                    assert!(total > 0.0);
                    if ps.packet_gap.density.unwrap() >= 3.0 {
                        bad += 1;
                    }
                    assert!(l.tx_audio.is_some());
                }
                if let Some(v) = &l.rx_video {
                    with_video += 1;
                    assert!(v.packet_statistics.is_some());
                    assert!(matches!(v.max_size_height, Some(360 | 720 | 1080)));
                }
                alarms += l.alarms.len() as u64;
            }
            _ => {}
        }
    }
    let co = call_types[&Some("coSpace".to_owned())] as f64;
    let adhoc = call_types[&Some("adHoc".to_owned())] as f64;
    assert!((0.6..0.8).contains(&(co / (co + adhoc))), "coSpace share");
    assert!(tenants.len() >= 3, "{tenants:?}");
    let rt = reasons["remoteTeardown"] as f64 / legs as f64;
    assert!((0.6..0.8).contains(&rt), "remoteTeardown share {rt}");
    assert!(reasons.len() >= 6, "{reasons:?}");
    assert!(
        bad > 0 && (bad as f64) < 0.15 * legs as f64,
        "bad tail {bad}/{legs}"
    );
    assert!(with_video as f64 > 0.5 * legs as f64);
    assert!(alarms > 0);
}

#[test]
fn call_end_summaries_are_right() {
    let (records, _) = generate(gen_cfg(30), 3, 1);
    let parsed = parse_all(&records, 10);
    // Which call each leg belongs to, from whichever record says it.
    let mut leg_call = HashMap::new();
    for p in &parsed {
        match p {
            Record::CallLegStart(l) => {
                if let Some(c) = l.call {
                    leg_call.insert(l.id, c);
                }
            }
            Record::CallLegUpdate(u) => {
                if let Some(CallRef::Call(c)) = u.call {
                    leg_call.insert(u.id, c);
                }
            }
            _ => {}
        }
    }
    #[derive(Default)]
    struct Seen {
        active: u64,
        max: u64,
        completed: u64,
        longest_leg: f64,
        ended: bool,
    }
    let mut calls: HashMap<_, Seen> = HashMap::new();
    let mut checked = 0;
    for p in &parsed {
        match p {
            Record::CallStart(c) => {
                assert!(calls.insert(c.id, Seen::default()).is_none());
            }
            Record::CallLegStart(l) => {
                let s = calls
                    .get_mut(&leg_call[&l.id])
                    .expect("leg after callStart");
                assert!(!s.ended);
                s.active += 1;
                s.max = s.max.max(s.active);
            }
            Record::CallLegEnd(l) => {
                let s = calls.get_mut(&leg_call[&l.id]).unwrap();
                s.active -= 1;
                s.completed += 1;
                s.longest_leg = s.longest_leg.max(l.duration_seconds.unwrap());
            }
            Record::CallEnd(c) => {
                let s = calls.get_mut(&c.id).unwrap();
                assert_eq!(s.active, 0, "every leg ended before callEnd");
                assert_eq!(c.call_legs_completed, Some(s.completed));
                assert_eq!(c.call_legs_max_active, Some(s.max));
                assert!((2..=6).contains(&s.completed));
                let d = c.duration_seconds.unwrap();
                assert!(d >= s.longest_leg - 1.0 && d <= 5.0, "call {d}s");
                s.ended = true;
                checked += 1;
            }
            _ => {}
        }
    }
    // Without restarts every call ends, and so does every recording and streaming.
    assert!(checked > 50);
    assert!(calls.values().all(|s| s.ended));
    let mut m = Mirror::default();
    m.acknowledged(&records);
    let e = m.expected();
    assert_eq!(
        (
            e.active_calls,
            e.active_legs,
            e.active_recordings,
            e.active_streamings
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(e.calls_started, e.calls_ended);
    assert_eq!(e.missing, 0);
}

#[test]
fn drops_are_announced_by_the_next_record() {
    let cfg = GenConfig {
        drop_rate: 0.3,
        restart_every_us: Some(7_000_000),
        ..gen_cfg(30)
    };
    let (records, counters) = generate(cfg, 5, 1);
    let dropped = counters.dropped.load(std::sync::atomic::Ordering::Relaxed);
    let generated = counters
        .generated
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped > 100);
    assert_eq!(generated, dropped + records.len() as u64);
    let mut announced = 0;
    let mut prev: Option<(u32, u64)> = None;
    let mut sessions = HashSet::new();
    for r in &records {
        let expected_missing = match prev {
            Some((s, i)) if s == r.session_no => {
                assert!(r.index > i);
                r.index - i - 1
            }
            _ => {
                // A new session starts at 0; what it dropped first is announced too.
                assert!(sessions.insert(r.session.clone()), "sessions are new");
                r.index
            }
        };
        assert_eq!(r.missing, expected_missing, "record {}", r.index);
        announced += r.missing;
        prev = Some((r.session_no, r.index));
    }
    assert!(sessions.len() >= 4, "restarts make new sessions");
    // Only drops at the very end of a session are never announced.
    assert!(announced <= dropped && dropped - announced < 20);
    // They round-trip too, attribute included.
    parse_all(&records, 7);
    // The mirror counts each lost record once, announced or not.
    let mut m = Mirror::default();
    for batch in records.chunk_by(|a, b| a.session_no == b.session_no) {
        m.acknowledged(batch);
    }
    let e = m.expected();
    assert_eq!(e.missing, announced);
    assert_eq!(e.sessions as usize, sessions.len());
}

#[test]
fn a_seed_fixes_the_content() {
    let cfg = GenConfig {
        restart_every_us: Some(4_000_000),
        ..gen_cfg(10)
    };
    let (a, _) = generate(cfg.clone(), 42, 1);
    let (b, _) = generate(cfg.clone(), 42, 2);
    let (c, _) = generate(cfg.clone(), 43, 1);
    assert_eq!(a.len(), b.len());
    assert!(a
        .iter()
        .zip(&b)
        .all(|(x, y)| x.xml == y.xml && x.fact == y.fact));
    // Session GUIDs are per run, content is per seed.
    assert_ne!(a[0].session, b[0].session);
    assert_ne!(
        a.iter().map(|r| &r.xml).collect::<Vec<_>>(),
        c.iter().map(|r| &r.xml).collect::<Vec<_>>()
    );
    // Faults draw from their own generator: the same seed with drops keeps the same
    // records, minus the dropped ones.
    let (d, _) = generate(
        GenConfig {
            drop_rate: 0.2,
            ..cfg
        },
        42,
        1,
    );
    let facts: Vec<_> = a.iter().map(|r| (r.session_no, r.index, &r.fact)).collect();
    let kept: Vec<_> = d.iter().map(|r| (r.session_no, r.index, &r.fact)).collect();
    let mut it = facts.iter();
    for k in &kept {
        assert!(it.any(|f| f == k), "{k:?} not in the run without drops");
    }
}

#[test]
fn unclustered_bridges_are_named() {
    assert_eq!(super::unclustered_name(3), "sim-cb-3");
}

#[test]
fn config_is_validated() {
    let ok = super::SimConfig::default();
    assert!(ok.validate().is_ok());
    for bad in [
        super::SimConfig {
            call_bridges: 0,
            ..ok.clone()
        },
        super::SimConfig {
            unclustered: 4,
            ..ok.clone()
        },
        super::SimConfig {
            drop_rate: 1.0,
            ..ok.clone()
        },
        super::SimConfig {
            duplicate_rate: -0.1,
            ..ok.clone()
        },
        super::SimConfig {
            calls_per_second: 0.0,
            ..ok.clone()
        },
        super::SimConfig {
            target: "ftp://x/".into(),
            ..ok.clone()
        },
        super::SimConfig {
            extra_targets: vec!["http://127.0.0.1:1/cdr".into(), "bad".into()],
            ..ok.clone()
        },
        // CMS takes at most four receivers.
        super::SimConfig {
            extra_targets: vec![ok.target.clone(); 4],
            ..ok.clone()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn up_to_four_receivers_are_accepted() {
    let cfg = super::SimConfig {
        extra_targets: vec!["http://127.0.0.1:2/cdr".into(); 3],
        ..super::SimConfig::default()
    };
    assert!(cfg.validate().is_ok());
    assert_eq!(cfg.targets().count(), 4);
}

/// Several receivers: a full queue (its receiver down) drops for that receiver alone and
/// counts it; the other receiver's queue gets every record, in order, without waiting.
#[tokio::test]
async fn a_full_queue_drops_for_its_receiver_only() {
    use super::{enqueue, Queue, TargetCounters};
    use std::sync::atomic::Ordering::Relaxed;
    let (records, _) = generate(gen_cfg(2), 11, 1);
    assert!(records.len() > 20);
    let (up_tx, mut up_rx) = tokio::sync::mpsc::channel(records.len());
    let (down_tx, mut down_rx) = tokio::sync::mpsc::channel(5);
    let up = Arc::new(TargetCounters::default());
    let down = Arc::new(TargetCounters::default());
    let mut queues = vec![
        Queue::new(up_tx, up.clone()),
        Queue::new(down_tx, down.clone()),
    ];
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        enqueue(&mut queues, records.clone().into_iter()),
    )
    .await
    .expect("a full queue must not block the others");
    assert!(done);
    assert_eq!(up.queue_dropped.load(Relaxed), 0);
    assert_eq!(down.queue_dropped.load(Relaxed), records.len() as u64 - 5);
    let mut got = Vec::new();
    while let Ok(r) = up_rx.try_recv() {
        got.push(r.index);
    }
    let want: Vec<u64> = records.iter().map(|r| r.index).collect();
    assert_eq!(got, want);
    // The down receiver kept the oldest records (what it had queued before it filled up).
    let mut held = Vec::new();
    while let Ok(r) = down_rx.try_recv() {
        held.push(r.index);
    }
    assert_eq!(held, want[..5]);
    // Back with room: the next record it takes announces what it lost, and parses so.
    let next = SimRecord {
        index: records.len() as u64,
        ..records[0].clone()
    };
    let next = SimRecord {
        xml: next.xml.replace(
            "correlatorIndex=\"0\"",
            &format!("correlatorIndex=\"{}\"", next.index),
        ),
        ..next
    };
    assert!(enqueue(&mut queues, std::iter::once(next)).await);
    let got = down_rx.try_recv().unwrap();
    let lost = records.len() as u64 - 5;
    assert_eq!(got.missing, lost);
    let body = xml::envelope(&got.session, None, std::iter::once(got.xml.as_str()));
    let batch = cdr::parse(body.as_bytes()).unwrap();
    assert_eq!(batch.records[0].header.num_preceding_missing, Some(lost));
    assert_eq!(batch.records[0].header.correlator_index, Some(got.index));
    // The receiver that was up has nothing to announce.
    assert_eq!(up_rx.try_recv().unwrap().missing, 0);
    // Once every sender is gone, the generator is told to stop.
    drop((up_rx, down_rx));
    assert!(!enqueue(&mut queues, records.into_iter().take(1)).await);
}

/// The demo's defaults can make the shipped `CdrLowMos` (tenant scope) alert fire and clear: the incident
/// tenant passes the alert's minimum of 50 scored legs in its 15 min window from the first
/// minutes, its share of legs at MOS ≤ 3.1 (as the exporter computes it) stays at or below
/// 10 % before the incident, above it for longer than the alert's 10 min `for`, and below it
/// again 15 min after the incident. Wall-clock windows, as Prometheus sees them.
#[test]
fn demo_defaults_can_fire_and_clear_the_low_mos_alert() {
    use std::time::Duration;
    let opts = crate::DemoOptions::default();
    let sim = opts.sim_config("http://127.0.0.1:1/cdr".into());
    let inc = opts.incident.expect("the demo has an incident by default");
    let (window, min_legs, share, hold) = (900.0, 50.0, 0.1, 600.0);
    let shared = Arc::new(Shared::new(sim.seed, sim.call_bridges, sim.tenants));
    let tenant = xml::guid(shared.tenants[inc.tenant]);
    let end_wall = inc.after + inc.lasts + Duration::from_secs(1200);
    let horizon_us = (end_wall.as_secs_f64() * sim.speedup * 1e6) as u64;
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let codecs = crate::quality::CodecTable::default();
    // (wall seconds, MOS) of the incident tenant's scored leg ends.
    let mut scored: Vec<(f64, f64)> = Vec::new();
    for i in 0..sim.call_bridges {
        let cfg = GenConfig {
            calls_per_second: sim.calls_per_second / sim.call_bridges as f64,
            duration_us: Some(horizon_us),
            restart_every_us: None,
            restart_offset_us: 0,
            drop_rate: 0.0,
            bad_tail: sim.bad_tail,
            durations: sim.durations,
            incident: Some(inc.virtual_us(sim.speedup)),
        };
        let counters = Arc::new(Counters::default());
        let mut g = Generator::new(cfg, shared.clone(), sim.seed, i, 1, counters);
        let mut out = Vec::new();
        // The virtual time as the record time, to read it back.
        while let Some(at) = g.next_at() {
            let t = time::OffsetDateTime::from_unix_timestamp((at / 1_000_000) as i64)
                .unwrap()
                .format(&fmt)
                .unwrap();
            g.step(&t, &mut out);
        }
        let mut call_tenant = HashMap::new();
        let mut leg_call = HashMap::new();
        for body in bodies(&out, 10, None) {
            for e in cdr::parse(body.as_bytes()).unwrap().records {
                let at = e.header.time.unwrap().0;
                match e.body.unwrap() {
                    Record::CallStart(c) => {
                        call_tenant.insert(c.id, c.tenant.map(|t| t.to_string()));
                    }
                    Record::CallLegStart(l) => {
                        if let Some(c) = l.call {
                            leg_call.insert(l.id, c);
                        }
                    }
                    Record::CallLegUpdate(u) => {
                        if let Some(CallRef::Call(c)) = u.call {
                            leg_call.insert(u.id, c);
                        }
                    }
                    Record::CallLegEnd(l) => {
                        let t = leg_call.get(&l.id).and_then(|c| call_tenant.get(c));
                        if t.cloned().flatten().as_deref() != Some(tenant.as_str()) {
                            continue;
                        }
                        let Some(a) = &l.rx_audio else { continue };
                        let Some(ps) = &a.packet_statistics else {
                            continue;
                        };
                        let bg = crate::quality::BurstGap {
                            burst_duration: ps.packet_loss_bursts.duration.unwrap_or(0.0),
                            burst_density: ps.packet_loss_bursts.density.unwrap_or(0.0),
                            gap_duration: ps.packet_gap.duration.unwrap_or(0.0),
                            gap_density: ps.packet_gap.density.unwrap_or(0.0),
                        };
                        let codec = codecs.get(a.codec.as_ref().map_or("", |c| c.as_str()));
                        if let Ok(mos) = crate::quality::mos_from_cms(codec, &bg, 0.0) {
                            scored.push((at / sim.speedup, mos));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // The window ending at `t` (wall seconds): (scored legs, share at MOS ≤ 3.1).
    let at = |t: f64| {
        let w: Vec<f64> = scored
            .iter()
            .filter(|(s, _)| *s > t - window && *s <= t)
            .map(|x| x.1)
            .collect();
        let low = w.iter().filter(|m| **m <= 3.1).count() as f64;
        (w.len() as f64, low / (w.len() as f64).max(1.0))
    };
    let (after, until) = (
        inc.after.as_secs_f64(),
        (inc.after + inc.lasts).as_secs_f64(),
    );
    let (n, s) = at(60.0);
    assert!(n >= min_legs, "only {n} legs in the first minute");
    for t in (60..after as u64).step_by(10) {
        let (n, s) = at(t as f64);
        assert!(s <= share, "before the incident, at {t} s: {s} of {n}");
    }
    let _ = s;
    // The condition holds for a stretch longer than `for` during and after the incident.
    let firing: Vec<u64> = (after as u64..end_wall.as_secs())
        .step_by(10)
        .filter(|t| {
            let (n, s) = at(*t as f64);
            n >= min_legs && s > share
        })
        .collect();
    let (first, last) = (firing[0], *firing.last().unwrap());
    eprintln!(
        "condition from {first} s to {last} s; incident {after}..{until} s; {} scored legs",
        scored.len()
    );
    assert_eq!(
        firing.len() as u64,
        (last - first) / 10 + 1,
        "one stretch: {firing:?}"
    );
    assert!(
        (last - first) as f64 > hold,
        "condition held {} s",
        last - first
    );
    assert!(
        first as f64 >= after && (first as f64) < until - hold,
        "fires during it"
    );
    let (n, s) = at(until + window + 60.0);
    assert!(
        s <= share && n >= min_legs,
        "clears after the incident: {s} of {n}"
    );
}
