//! The memory of CDRs and reports already applied (FreeSWITCH legs, rtpengine calls), by a
//! fixed-size key: a retry after a lost 2xx is recognised and never counted twice. Bounded in
//! entries and in age; what the bounds forget is counted.

use parking_lot::Mutex;

use crate::cow_map::{CowMap, ShardKey};

/// A key: a 128-bit hash of what identifies the CDR (its sender and id).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Key(pub u128);

impl ShardKey for Key {
    fn shard(&self) -> usize {
        (self.0 as usize) ^ ((self.0 >> 64) as usize)
    }
}

/// Bounds on the memory.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_entries: usize,
    pub max_age_seconds: u64,
}

/// One source's memory: key → when it was first applied (Unix seconds).
pub struct Dedupe {
    limits: Limits,
    seen: Mutex<CowMap<Key, u32>>,
}

/// What the bounds forgot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub by_age: u64,
    pub by_count: u64,
}

impl Dedupe {
    pub fn new(limits: Limits) -> Dedupe {
        Dedupe {
            limits,
            seen: Mutex::new(CowMap::default()),
        }
    }

    /// Remembers `key`; false if it was already there (a duplicate). Over `max_entries`,
    /// the oldest tenth is forgotten (counted in the returned value).
    pub fn insert(&self, key: Key, now: u64) -> (bool, Forgotten) {
        let mut seen = self.seen.lock();
        if seen.contains_key(&key) {
            return (false, Forgotten::default());
        }
        seen.insert(key, now.min(u32::MAX as u64) as u32);
        let mut f = Forgotten::default();
        if seen.len() > self.limits.max_entries.max(10) {
            let keep = self.limits.max_entries * 9 / 10;
            let mut ages: Vec<u32> = seen.iter().map(|(_, t)| *t).collect();
            let n = seen.len() - keep;
            ages.select_nth_unstable(n - 1);
            let cutoff = ages[n - 1];
            // Ties at the cutoff may take a few more than n: fine, never fewer.
            f.by_count = seen.extract_if(|_, t| *t <= cutoff).len() as u64;
        }
        (true, f)
    }

    /// Forgets keys older than `max_age_seconds`.
    pub fn sweep(&self, now: u64) -> Forgotten {
        let cutoff = now.saturating_sub(self.limits.max_age_seconds);
        let mut seen = self.seen.lock();
        Forgotten {
            by_age: seen.extract_if(|_, t| (*t as u64) < cutoff).len() as u64,
            by_count: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.seen.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state at one instant (pointer copies); see [`crate::tracker::Tracker::copy`].
    pub fn copy(&self) -> CowMap<Key, u32> {
        self.seen.lock().clone()
    }

    pub fn restore(&self, entries: &[(u128, u32)]) {
        let mut seen = self.seen.lock();
        for (k, t) in entries {
            seen.insert(Key(*k), *t);
        }
    }
}

/// A copy as the snapshot stores it.
pub fn entries(copy: &CowMap<Key, u32>) -> Vec<(u128, u32)> {
    copy.iter().map(|(k, t)| (k.0, *t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_and_the_bounds_hold() {
        let d = Dedupe::new(Limits {
            max_entries: 1_000,
            max_age_seconds: 100,
        });
        assert!(d.insert(Key(1), 10).0);
        assert!(!d.insert(Key(1), 11).0, "a retry");
        let mut forgotten = 0;
        for i in 0..10_000u128 {
            forgotten += d.insert(Key(100 + i), 20 + i as u64).1.by_count;
        }
        assert!(d.len() <= 1_000);
        assert_eq!(forgotten as usize + d.len(), 10_001);
        assert!(d.insert(Key(1), 30).0, "the oldest were forgotten first");
        // By age: everything before now - 100.
        let f = d.sweep(10_100);
        assert!(f.by_age > 0 && d.len() < 1_000, "{f:?} {}", d.len());
        let copy = d.copy();
        let d2 = Dedupe::new(Limits {
            max_entries: 1_000,
            max_age_seconds: 100,
        });
        d2.restore(&entries(&copy));
        assert_eq!(d2.len(), d.len());
    }
}
