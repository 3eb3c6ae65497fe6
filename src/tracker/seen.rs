//! The correlatorIndex values applied in one session, as sorted inclusive ranges (exact dedupe).

/// CMS sends in order, so this is normally a single range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    ranges: Vec<(u64, u64)>,
}

/// Caps the range list against senders that spray random indices; beyond it the lowest
/// holes are closed (treated as seen), which can only drop, never double count.
pub const MAX_RANGES: usize = 1024;

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

    pub fn from_ranges(mut ranges: Vec<(u64, u64)>) -> Seen {
        ranges.retain(|r| r.0 <= r.1);
        ranges.sort_unstable();
        ranges.truncate(MAX_RANGES);
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
            self.ranges[1].0 = lo;
            self.ranges.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_is_one_range() {
        let mut s = Seen::default();
        for i in 0..100 {
            assert!(s.insert(i));
        }
        assert_eq!(s.ranges(), &[(0, 99)]);
        assert!(!s.insert(50));
        assert!(s.contains(0) && s.contains(99) && !s.contains(100));
    }

    #[test]
    fn holes_fill_exactly() {
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
    fn sprayed_indices_stay_bounded() {
        let mut s = Seen::default();
        for i in 0..10 * MAX_RANGES as u64 {
            s.insert(i * 2);
        }
        assert_eq!(s.ranges().len(), MAX_RANGES);
        assert!(s.contains(20 * MAX_RANGES as u64 - 2));
    }
}
