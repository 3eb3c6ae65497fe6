//! How long calls last and when participants come and go (the short flows of the tests, or
//! realistic minutes for demos), and the scripted incident of the demo (one tenant's network
//! degrades for a while).

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};

const S: f64 = 1e6;
const MIN: f64 = 60.0 * S;

/// The duration model of the call flows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Durations {
    /// Calls of 0.5–4 s with 2–6 legs: many complete calls in a short test run.
    #[default]
    Short,
    /// Log-normal minutes: 1:1 calls a few minutes (median 4 min), meetings 15–60 min
    /// (median 30 min) with 3–12 participants joining (most in the first minutes, some late)
    /// and leaving (most at the end, some early). Pair with `--speedup` to see them end.
    Realistic,
}

/// A call's length and participants, before its legs are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallShape {
    pub dur_us: u64,
    pub legs: usize,
}

fn lognormal(r: &mut ChaCha8Rng, median_us: f64, sigma: f64, min_us: f64, max_us: f64) -> u64 {
    let d = LogNormal::new(median_us.ln(), sigma)
        .map(|d| d.sample(r))
        .unwrap_or(median_us);
    d.clamp(min_us, max_us) as u64
}

fn pick<T: Copy>(r: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = r.random_range(0..total.max(1));
    for (v, w) in items {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

impl Durations {
    /// A call's nominal length and leg count; `meeting` for a coSpace call, else ad hoc.
    pub(crate) fn call(self, r: &mut ChaCha8Rng, meeting: bool) -> CallShape {
        match self {
            Durations::Short => CallShape {
                // Log-uniform between 0.5 and 4 s.
                dur_us: (r.random_range(0.5f64.ln()..4f64.ln()).exp() * S) as u64,
                legs: pick(r, &[(2usize, 35), (3, 25), (4, 20), (5, 12), (6, 8)]),
            },
            Durations::Realistic if meeting => CallShape {
                dur_us: lognormal(r, 30.0 * MIN, 0.45, 5.0 * MIN, 120.0 * MIN),
                legs: pick(
                    r,
                    &[
                        (3usize, 20),
                        (4, 20),
                        (5, 15),
                        (6, 12),
                        (7, 9),
                        (8, 8),
                        (10, 8),
                        (12, 8),
                    ],
                ),
            },
            Durations::Realistic => CallShape {
                dur_us: lognormal(r, 4.0 * MIN, 0.7, 20.0 * S, 60.0 * MIN),
                // Mostly 1:1; sometimes a third party is added.
                legs: pick(r, &[(2usize, 85), (3, 15)]),
            },
        }
    }

    /// When leg `i` of a call starting at `t` with nominal length `dur` joins.
    pub(crate) fn join(self, r: &mut ChaCha8Rng, i: usize, t: u64, dur: u64) -> u64 {
        match self {
            Durations::Short if i == 0 => t + r.random_range(0..50_000),
            Durations::Short => t + r.random_range(0..=(dur * 6 / 10)),
            Durations::Realistic if i == 0 => t + r.random_range(0..2_000_000),
            Durations::Realistic => {
                // Most join around the start (mean 90 s late), some at any time later on.
                let late = if r.random_bool(0.75) {
                    Exp::new(1.0 / 90.0).map(|e| e.sample(r) * S).unwrap_or(0.0) as u64
                } else {
                    r.random_range(0..=(dur * 7 / 10))
                };
                t + late.min(dur * 8 / 10)
            }
        }
    }

    /// When a connected leg that hangs up by itself (not ended by the call) leaves, between
    /// `earliest` and the call's nominal end.
    pub(crate) fn leave(self, r: &mut ChaCha8Rng, earliest: u64, nominal_end: u64) -> u64 {
        if earliest >= nominal_end {
            return earliest;
        }
        match self {
            Durations::Short => r.random_range(earliest..=nominal_end),
            // Most stay to about the end (the last minute or so); some leave early.
            Durations::Realistic if r.random_bool(0.7) => {
                let early = Exp::new(1.0 / 60.0).map(|e| e.sample(r) * S).unwrap_or(0.0) as u64;
                nominal_end.saturating_sub(early).max(earliest)
            }
            Durations::Realistic => r.random_range(earliest..=nominal_end),
        }
    }

    /// How long a leg that never connects rings or fails, from its join.
    pub(crate) fn unanswered(self, r: &mut ChaCha8Rng) -> u64 {
        match self {
            Durations::Short => r.random_range(100_000..600_000),
            Durations::Realistic => r.random_range(2_000_000..30_000_000),
        }
    }
}

/// A scripted degradation: from `after` for `lasts` (wall clock since the start of the run),
/// legs of tenant `tenant` that end meanwhile have bad packet loss with `bad_share`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Incident {
    /// Index of the tenant (0 = the busiest).
    pub tenant: usize,
    pub after: Duration,
    pub lasts: Duration,
    pub bad_share: f64,
}

/// An incident on the virtual timeline (µs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct IncidentUs {
    pub tenant: usize,
    pub from: u64,
    pub to: u64,
    pub bad_share: f64,
}

impl Incident {
    /// Wall-clock times become virtual ones: with `speedup` N the timeline runs N× faster.
    pub(crate) fn virtual_us(&self, speedup: f64) -> IncidentUs {
        let v = |d: Duration| (d.as_secs_f64() * speedup * S) as u64;
        IncidentUs {
            tenant: self.tenant,
            from: v(self.after),
            to: v(self.after + self.lasts),
            bad_share: self.bad_share,
        }
    }
}

impl IncidentUs {
    /// The bad-tail share of a leg of tenant `tenant` that ends at `leave`, and whether the
    /// incident hits it (its bad legs are then severe).
    pub(crate) fn bad_tail(
        this: Option<&IncidentUs>,
        tenant: Option<usize>,
        leave: u64,
        normal: f64,
    ) -> (f64, bool) {
        match this {
            Some(i) if tenant == Some(i.tenant) && (i.from..i.to).contains(&leave) => {
                (i.bad_share.max(normal), true)
            }
            _ => (normal, false),
        }
    }
}

/// The wall-clock offset from the start of the run at which virtual time `at_us` is played.
pub(crate) fn wall_offset(at_us: u64, speedup: f64) -> Duration {
    Duration::from_secs_f64(at_us as f64 / S / speedup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn median(mut v: Vec<u64>) -> f64 {
        v.sort_unstable();
        v[v.len() / 2] as f64
    }

    fn percentile(mut v: Vec<u64>, p: f64) -> f64 {
        v.sort_unstable();
        v[((v.len() as f64 - 1.0) * p) as usize] as f64
    }

    #[test]
    fn realistic_durations_are_minutes() {
        let mut r = ChaCha8Rng::seed_from_u64(5);
        let d = Durations::Realistic;
        let one: Vec<CallShape> = (0..4000).map(|_| d.call(&mut r, false)).collect();
        let meet: Vec<CallShape> = (0..4000).map(|_| d.call(&mut r, true)).collect();
        let one_dur: Vec<u64> = one.iter().map(|c| c.dur_us).collect();
        let meet_dur: Vec<u64> = meet.iter().map(|c| c.dur_us).collect();
        // 1:1 calls: a few minutes.
        let m = median(one_dur.clone()) / MIN;
        assert!((3.0..5.0).contains(&m), "1:1 median {m} min");
        assert!(one_dur.iter().all(|&d| d >= 20 * 1_000_000));
        assert!(one.iter().filter(|c| c.legs == 2).count() > 3000);
        // Meetings: 15–60 min for most, median about half an hour, more participants.
        let m = median(meet_dur.clone()) / MIN;
        assert!((25.0..35.0).contains(&m), "meeting median {m} min");
        let (p10, p90) = (
            percentile(meet_dur.clone(), 0.1) / MIN,
            percentile(meet_dur, 0.9) / MIN,
        );
        assert!(p10 > 13.0 && p90 < 65.0, "meetings p10 {p10} p90 {p90} min");
        assert!(meet.iter().all(|c| (3..=12).contains(&c.legs)));
        // The short model keeps the test runs' seconds.
        let short: Vec<u64> = (0..1000)
            .map(|_| Durations::Short.call(&mut r, true).dur_us)
            .collect();
        assert!(short.iter().all(|&d| (500_000..=4_000_000).contains(&d)));
    }

    #[test]
    fn participants_join_early_and_leave_late_mostly() {
        let mut r = ChaCha8Rng::seed_from_u64(6);
        let d = Durations::Realistic;
        let (t, dur) = (1_000_000u64, (40.0 * MIN) as u64);
        let joins: Vec<u64> = (0..2000).map(|_| d.join(&mut r, 1, t, dur) - t).collect();
        assert!(joins.iter().all(|&j| j <= dur * 8 / 10));
        let early = joins.iter().filter(|&&j| j < (5.0 * MIN) as u64).count();
        assert!(
            (1300..1900).contains(&early),
            "{early} of 2000 joined in 5 min"
        );
        assert!(
            joins.iter().any(|&j| j > (20.0 * MIN) as u64),
            "nobody late"
        );
        let end = t + dur;
        let leaves: Vec<u64> = (0..2000).map(|_| d.leave(&mut r, t, end)).collect();
        assert!(leaves.iter().all(|&l| (t..=end).contains(&l)));
        let at_end = leaves
            .iter()
            .filter(|&&l| end - l < (3.0 * MIN) as u64)
            .count();
        assert!((1200..1800).contains(&at_end), "{at_end} of 2000 stayed");
    }

    #[test]
    fn time_compression_and_incident_window() {
        assert_eq!(wall_offset(60_000_000, 1.0), Duration::from_secs(60));
        assert_eq!(wall_offset(60_000_000, 60.0), Duration::from_secs(1));
        assert_eq!(wall_offset(1_800_000_000, 30.0), Duration::from_secs(60));
        let i = Incident {
            tenant: 1,
            after: Duration::from_secs(120),
            lasts: Duration::from_secs(60),
            bad_share: 0.8,
        }
        .virtual_us(30.0);
        assert_eq!((i.from, i.to), (3_600_000_000, 5_400_000_000));
        let bad = |tenant, leave| IncidentUs::bad_tail(Some(&i), tenant, leave, 0.03);
        assert_eq!(bad(Some(1), 4_000_000_000), (0.8, true));
        let normal = (0.03, false);
        assert_eq!(bad(Some(1), 5_400_000_000), normal, "after the incident");
        assert_eq!(bad(Some(1), 3_000_000_000), normal, "before it");
        assert_eq!(bad(Some(0), 4_000_000_000), normal, "another tenant");
        assert_eq!(bad(None, 4_000_000_000), normal);
        assert_eq!(
            IncidentUs::bad_tail(None, Some(1), 4_000_000_000, 0.03),
            normal
        );
    }
}
