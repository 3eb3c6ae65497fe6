//! A hash map split into copy-on-write shards (the tracker's and the dedupe memories' state):
//! cloning it (a snapshot) copies 256 pointers, and a later write copies only the one shard it
//! touches while the snapshot still holds it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

type Shard<K, V> = HashMap<K, V, ahash::RandomState>;
/// A shard, shared with snapshots until written; `None` until its first insert.
type Slot<K, V> = Option<Arc<Shard<K, V>>>;

/// Shards per map: a write after a snapshot copies 1/256 of the map.
const SHARDS: usize = 256;

/// Keys that are already uniformly distributed (GUIDs, or hashes of other ids).
pub trait ShardKey: Copy + Eq + Hash {
    fn shard(&self) -> usize;
}

/// The map. Shards are created on first insert, so an empty map costs 256 empty slots.
pub struct CowMap<K, V> {
    shards: Box<[Slot<K, V>]>,
    len: usize,
}

impl<K, V> Clone for CowMap<K, V> {
    fn clone(&self) -> Self {
        CowMap {
            shards: self.shards.clone(),
            len: self.len,
        }
    }
}

impl<K: ShardKey, V: Clone> Default for CowMap<K, V> {
    fn default() -> Self {
        CowMap {
            shards: (0..SHARDS).map(|_| None).collect(),
            len: 0,
        }
    }
}

impl<K: ShardKey, V: Clone> CowMap<K, V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.shards[k.shard() % SHARDS].as_ref()?.get(k)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    /// The shard of `k`, unshared (copied if a snapshot holds it).
    fn shard_mut(&mut self, k: &K) -> &mut Shard<K, V> {
        let slot = &mut self.shards[k.shard() % SHARDS];
        Arc::make_mut(slot.get_or_insert_with(Default::default))
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if !self.contains_key(k) {
            return None;
        }
        self.shard_mut(k).get_mut(k)
    }

    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let old = self.shard_mut(&k).insert(k, v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        if !self.contains_key(k) {
            return None;
        }
        let old = self.shard_mut(k).remove(k);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flatten().flat_map(|s| s.iter())
    }

    /// Removes and returns every entry for which `evict` is true.
    pub fn extract_if(&mut self, mut evict: impl FnMut(&K, &V) -> bool) -> Vec<(K, V)> {
        let mut out = Vec::new();
        for slot in self.shards.iter_mut().flatten() {
            if !slot.iter().any(|(k, v)| evict(k, v)) {
                continue; // untouched shards stay shared with a snapshot
            }
            let shard = Arc::make_mut(slot);
            let keys: Vec<K> = shard
                .iter()
                .filter(|(k, v)| evict(k, v))
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                if let Some(v) = shard.remove(&k) {
                    out.push((k, v));
                }
            }
        }
        self.len -= out.len();
        out
    }

    /// Removes everything.
    pub fn drain(&mut self) -> Vec<(K, V)> {
        let mut out = Vec::with_capacity(self.len);
        for slot in self.shards.iter_mut() {
            if let Some(s) = slot.take() {
                match Arc::try_unwrap(s) {
                    Ok(s) => out.extend(s),
                    Err(shared) => out.extend(shared.iter().map(|(k, v)| (*k, v.clone()))),
                }
            }
        }
        self.len = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
    struct K(u64);
    impl ShardKey for K {
        fn shard(&self) -> usize {
            self.0 as usize
        }
    }

    #[test]
    fn a_clone_is_a_snapshot_that_later_writes_do_not_change() {
        let mut m: CowMap<K, u32> = CowMap::default();
        for i in 0..10_000 {
            m.insert(K(i), i as u32);
        }
        let snap = m.clone();
        m.insert(K(1), 99);
        m.remove(&K(2));
        *m.get_mut(&K(3)).unwrap() = 7;
        let old = m.extract_if(|k, _| k.0 % SHARDS as u64 == 5);
        assert_eq!(old.len(), 40);
        assert_eq!((m.len(), snap.len()), (10_000 - 1 - 40, 10_000));
        assert_eq!(snap.get(&K(1)), Some(&1));
        assert_eq!(snap.get(&K(2)), Some(&2));
        assert_eq!(snap.get(&K(3)), Some(&3));
        assert_eq!(m.get(&K(1)), Some(&99));
        assert_eq!(snap.iter().count(), 10_000);
        // Untouched shards are still shared.
        let shared = (0..SHARDS)
            .filter(|i| match (&m.shards[*i], &snap.shards[*i]) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            })
            .count();
        assert_eq!(shared, SHARDS - 4, "only the shards written to were copied");
        let mut m2 = snap.clone();
        assert_eq!(m2.drain().len(), 10_000);
        assert_eq!((m2.len(), snap.len()), (0, 10_000));
    }
}
