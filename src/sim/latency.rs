//! Acknowledgement latency of the simulated Call Bridges: a fixed-size, lock-free log-linear
//! histogram (like HdrHistogram with two significant digits), so that a run of any length
//! (the demo runs for days) keeps 32 KiB and every sender records without a lock.
//!
//! Values are microseconds. Each power of two is split into 64 sub-buckets, so a reported
//! quantile is within 1/64 (1.6 %) of the true value; the maximum is exact.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Sub-buckets per power of two (a power of two itself).
const SUB: u64 = 64;
const SUB_BITS: u32 = SUB.trailing_zeros();
/// Enough for every `u64`: values below `SUB` have their own bucket, then one row per bit.
const ROWS: usize = (64 - SUB_BITS as usize) + 1;

pub(crate) struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..ROWS * SUB as usize)
                .map(|_| AtomicU64::new(0))
                .collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("max_us", &self.max.load(Relaxed))
            .finish()
    }
}

/// The bucket of `v`: values below `SUB` exactly; above, the top `SUB_BITS + 1` bits.
fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let bits = 64 - v.leading_zeros(); // > SUB_BITS
    let shift = bits - SUB_BITS - 1;
    let row = (shift + 1) as usize;
    let sub = ((v >> shift) - SUB) as usize; // 0..SUB
    row * SUB as usize + sub
}

/// The largest value that falls in bucket `i` (quantiles are reported as this bound).
fn upper(i: usize) -> u64 {
    let (row, sub) = (i / SUB as usize, (i % SUB as usize) as u64);
    if row == 0 {
        return sub;
    }
    let shift = (row - 1) as u32;
    (((SUB + sub + 1) as u128) << shift)
        .saturating_sub(1)
        .min(u64::MAX as u128) as u64
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[index(us)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.max.fetch_max(us, Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The `q` quantile (0..=1), rounded up to its bucket's bound and never above the
    /// maximum; zero when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let max = self.max.load(Relaxed);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                return Duration::from_micros(upper(i).min(max));
            }
        }
        Duration::from_micros(max)
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for v in (0..5000u64).chain([1 << 20, (1 << 40) + 12345, u64::MAX]) {
            let i = index(v);
            assert!(i >= last || v > 5000, "index not monotonic at {v}");
            last = i;
            assert!(upper(i) >= v, "{v} above its bucket bound {}", upper(i));
            if i > 0 {
                assert!(upper(i - 1) < v, "{v} belongs in an earlier bucket");
            }
            // Within 1/64 of the value.
            assert!((upper(i) - v) as f64 <= v as f64 / SUB as f64 + 1.0);
        }
        assert!(index(u64::MAX) < ROWS * SUB as usize);
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.99), Duration::ZERO);
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((500.0..=500.0 * 1.02).contains(&p50), "{p50}");
        assert!((990.0..=990.0 * 1.02).contains(&p99), "{p99}");
        assert_eq!(h.max(), Duration::from_micros(1000));
        assert_eq!(h.quantile(1.0), Duration::from_micros(1000));
        h.record(Duration::from_secs(3));
        assert_eq!(h.max(), Duration::from_secs(3));
    }
}
