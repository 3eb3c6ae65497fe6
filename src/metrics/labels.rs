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

/// The values one label may take: at most `cap` distinct ones, the rest become `other`.
pub struct Domain {
    pub label: &'static str,
    cap: usize,
    members: DashMap<Box<str>, LabelId, ahash::RandomState>,
    other: LabelId,
    overflow: AtomicU64,
}

/// The value every label falls back to when its cap is reached.
pub const OTHER: &str = "other";

impl Domain {
    pub fn new(table: &LabelTable, label: &'static str, cap: usize, known: &[&str]) -> Domain {
        let d = Domain {
            label,
            // Known values always fit, so a small cap cannot hide them.
            cap: cap.max(known.len() + 1),
            members: DashMap::with_hasher(Default::default()),
            other: table.intern(OTHER),
            overflow: AtomicU64::new(0),
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

    pub fn set_overflow(&self, v: u64) {
        self.overflow.store(v, Ordering::Relaxed);
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
    pub fn restore(&self, table: &LabelTable, members: &[String], overflow: u64) {
        for m in members {
            self.members
                .entry(m.as_str().into())
                .or_insert_with(|| table.intern(m));
        }
        self.set_overflow(overflow);
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
        let d = Domain::new(&t, "tenant", 2, &[]);
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
        let d = Domain::new(&t, "reason", 1, &["x", "y", "z"]);
        assert_eq!(&*t.resolve(d.id(&t, "z")), "z");
        assert_eq!(&*t.resolve(d.id(&t, "new")), "new");
        assert_eq!(&*t.resolve(d.id(&t, "newer")), "other");
    }
}
