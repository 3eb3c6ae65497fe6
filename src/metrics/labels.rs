//! Label values: one interned string table and a capped domain per label name.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::RwLock;

/// An interned label value: an index into [`LabelTable`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LabelId(pub u32);

/// Every label value ever used, interned once. Series keys hold [`LabelId`]s so the hot
/// path hashes a few integers instead of strings.
#[derive(Default)]
pub struct LabelTable {
    values: RwLock<Vec<Arc<str>>>,
    index: DashMap<Arc<str>, LabelId, ahash::RandomState>,
}

impl LabelTable {
    pub fn intern(&self, s: &str) -> LabelId {
        if let Some(id) = self.index.get(s) {
            return *id;
        }
        let mut values = self.values.write();
        // Re-check under the write lock: another thread may have won.
        if let Some(id) = self.index.get(s) {
            return *id;
        }
        let id = LabelId(values.len() as u32);
        let arc: Arc<str> = Arc::from(s);
        values.push(arc.clone());
        self.index.insert(arc, id);
        id
    }

    /// Read access to all values, for one scrape.
    pub fn values(&self) -> parking_lot::RwLockReadGuard<'_, Vec<Arc<str>>> {
        self.values.read()
    }

    pub fn resolve(&self, id: LabelId) -> Arc<str> {
        self.values.read()[id.0 as usize].clone()
    }
}

/// The values one label may take: at most `cap` distinct ones of at most `max_bytes` each;
/// the rest become `other`, counted by cause.
pub struct Domain {
    pub label: &'static str,
    cap: usize,
    max_bytes: usize,
    members: DashMap<Box<str>, LabelId, ahash::RandomState>,
    other: LabelId,
    overflow: AtomicU64,
    too_long: AtomicU64,
}

/// The value every label falls back to when its cap is reached.
pub const OTHER: &str = "other";

impl Domain {
    pub fn new(
        table: &LabelTable,
        label: &'static str,
        cap: usize,
        max_bytes: usize,
        known: &[&str],
    ) -> Domain {
        let d = Domain {
            label,
            // Known values always fit, so a small cap cannot hide them.
            cap: cap.max(known.len() + 1),
            max_bytes,
            members: DashMap::with_hasher(Default::default()),
            other: table.intern(OTHER),
            overflow: AtomicU64::new(0),
            too_long: AtomicU64::new(0),
        };
        for k in known {
            d.members.insert((*k).into(), table.intern(k));
        }
        d
    }

    /// The id of `value` in this domain, admitting it if there is room.
    pub fn id(&self, table: &LabelTable, value: &str) -> LabelId {
        if let Some(id) = self.members.get(value) {
            return *id;
        }
        if value == OTHER {
            return self.other;
        }
        if value.len() > self.max_bytes {
            self.too_long.fetch_add(1, Ordering::Relaxed);
            return self.other;
        }
        if self.members.len() >= self.cap {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            return self.other;
        }
        *self
            .members
            .entry(value.into())
            .or_insert_with(|| table.intern(value))
    }

    /// Updates that fell back to `other` because the cap was reached.
    pub fn overflow(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }

    /// Updates that fell back to `other` because the value was longer than `max_bytes`.
    pub fn too_long(&self) -> u64 {
        self.too_long.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Admitted values, for snapshots.
    pub fn members(&self) -> Vec<String> {
        self.members.iter().map(|m| m.key().to_string()).collect()
    }

    /// Re-admits values from a snapshot (beyond the cap if it was lowered since: they
    /// already exist as series).
    pub fn restore(&self, table: &LabelTable, members: &[String], overflow: [u64; 2]) {
        for m in members.iter().filter(|m| m.len() <= self.max_bytes) {
            self.members
                .entry(m.as_str().into())
                .or_insert_with(|| table.intern(m));
        }
        self.overflow.store(overflow[0], Ordering::Relaxed);
        self.too_long.store(overflow[1], Ordering::Relaxed);
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_overflows_to_other_and_counts() {
        let t = LabelTable::default();
        let d = Domain::new(&t, "tenant", 2, 64, &[]);
        let a = d.id(&t, "a");
        let b = d.id(&t, "b");
        let c = d.id(&t, "c");
        assert_ne!(a, b);
        assert_eq!(&*t.resolve(c), "other");
        assert_eq!(d.overflow(), 1);
        assert_eq!(d.id(&t, "a"), a, "admitted values stay");
        assert_eq!(d.overflow(), 1);
    }

    #[test]
    fn known_values_always_fit() {
        let t = LabelTable::default();
        let d = Domain::new(&t, "reason", 1, 64, &["x", "y", "z"]);
        assert_eq!(&*t.resolve(d.id(&t, "z")), "z");
        assert_eq!(&*t.resolve(d.id(&t, "new")), "new");
        assert_eq!(&*t.resolve(d.id(&t, "newer")), "other");
    }

    #[test]
    fn long_values_become_other_and_are_counted_apart() {
        let t = LabelTable::default();
        let d = Domain::new(&t, "tenant", 100, 16, &[]);
        for i in 0..50 {
            let v = format!("{i}{}", "x".repeat(100_000));
            assert_eq!(&*t.resolve(d.id(&t, &v)), "other");
        }
        assert_eq!((d.too_long(), d.overflow(), d.len()), (50, 0, 0));
        assert!(
            t.values().iter().all(|v| v.len() <= 16),
            "nothing long was interned"
        );
    }
}
