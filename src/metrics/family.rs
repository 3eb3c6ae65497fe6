//! Metric storage: families of series in concurrent maps of atomic cells, keyed by typed
//! label sets; label drops, the global series budget, snapshots.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use super::encode::{Value, Writer};
use super::vocab::{LabelId, LabelSet, Vocabulary};

/// The exposition type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Histogram,
    /// Constant labels and the value 1 (`build_info`).
    Info,
}

/// What a family is: the sample name (counters end in `_total`, the unit is part of the
/// name), help, unit, type, label names and histogram buckets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Desc {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<&'static str>,
    pub kind: Type,
    pub labels: &'static [&'static str],
    /// Upper bounds of histogram buckets (empty for other types).
    pub buckets: &'static [f64],
    /// Only exposed with `labels.tenant_detail = "full"`.
    pub full_detail_only: bool,
    /// Labels dropped with `labels.tenant_detail = "compact"` (the default).
    pub compact_drops: &'static [&'static str],
}

/// A label value in a key that was dropped (`labels.drop`): never written.
pub const DROPPED: LabelId = LabelId(u32::MAX);

/// An f64 in an `AtomicU64` (bit pattern), updated by compare-and-swap.
#[derive(Default, Debug)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub fn add(&self, v: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + v).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed)
    }
    /// Raises the value to `v` if it is larger (for "last seen" timestamps).
    pub fn max(&self, v: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        while f64::from_bits(cur) < v {
            match self.0.compare_exchange_weak(
                cur,
                v.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(c) => cur = c,
            }
        }
    }
}

/// A cell's value, for snapshots.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CellValue {
    Int(u64),
    Float(f64),
    Signed(i64),
    Histogram { counts: Vec<u64>, sum: f64 },
}

/// The kinds of cell a family can hold.
pub trait Cell: Send + Sync + 'static {
    const TYPE: Type;
    fn new(buckets: &'static [f64]) -> Self;
    /// Writes the cell's samples (one line, or a histogram's buckets, sum and count).
    fn write(&self, d: &Desc, key: &[LabelId], w: &mut Writer<'_>);
    fn value(&self) -> CellValue;
    /// Sets the cell from a snapshot; a value of another kind is ignored.
    fn restore(&self, v: &CellValue);
}

/// A monotonic integer counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn inc_by(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Cell for Counter {
    const TYPE: Type = Type::Counter;
    fn new(_: &'static [f64]) -> Self {
        Counter::default()
    }
    fn write(&self, d: &Desc, key: &[LabelId], w: &mut Writer<'_>) {
        w.sample(d.name, "", d.labels, key, None, Value::U64(self.get()));
    }
    fn value(&self) -> CellValue {
        CellValue::Int(self.get())
    }
    fn restore(&self, v: &CellValue) {
        if let CellValue::Int(x) = v {
            self.0.store(*x, Ordering::Relaxed);
        }
    }
}

/// A monotonic counter of a real quantity (seconds).
#[derive(Default)]
pub struct FloatCounter(pub AtomicF64);

impl FloatCounter {
    /// Adds `v`; negative and non-finite values are ignored (a counter never goes down).
    pub fn add(&self, v: f64) {
        if v.is_finite() && v > 0.0 {
            self.0.add(v)
        }
    }
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

impl Cell for FloatCounter {
    const TYPE: Type = Type::Counter;
    fn new(_: &'static [f64]) -> Self {
        FloatCounter::default()
    }
    fn write(&self, d: &Desc, key: &[LabelId], w: &mut Writer<'_>) {
        w.sample(d.name, "", d.labels, key, None, Value::F64(self.get()));
    }
    fn value(&self) -> CellValue {
        CellValue::Float(self.get())
    }
    fn restore(&self, v: &CellValue) {
        if let CellValue::Float(x) = v {
            self.0.set(*x);
        }
    }
}

/// An integer gauge.
#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Cell for Gauge {
    const TYPE: Type = Type::Gauge;
    fn new(_: &'static [f64]) -> Self {
        Gauge::default()
    }
    fn write(&self, d: &Desc, key: &[LabelId], w: &mut Writer<'_>) {
        w.sample(d.name, "", d.labels, key, None, Value::I64(self.get()));
    }
    fn value(&self) -> CellValue {
        CellValue::Signed(self.get())
    }
    fn restore(&self, v: &CellValue) {
        if let CellValue::Signed(x) = v {
            self.set(*x);
        }
    }
}

/// A real-valued gauge (timestamps, configuration echoes).
#[derive(Default, Debug)]
pub struct FloatGauge(pub AtomicF64);

impl Cell for FloatGauge {
    const TYPE: Type = Type::Gauge;
    fn new(_: &'static [f64]) -> Self {
        FloatGauge::default()
    }
    fn write(&self, d: &Desc, key: &[LabelId], w: &mut Writer<'_>) {
        w.sample(d.name, "", d.labels, key, None, Value::F64(self.0.get()));
    }
    fn value(&self) -> CellValue {
        CellValue::Float(self.0.get())
    }
    fn restore(&self, v: &CellValue) {
        if let CellValue::Float(x) = v {
            self.0.set(*x);
        }
    }
}

/// A histogram with fixed buckets; counts are per bucket and cumulated when written.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    sum: AtomicF64,
}

impl Histogram {
    /// Observes `v` (non-finite values are ignored); use [`Family::observe`].
    fn observe(&self, v: f64, buckets: &[f64]) {
        if !v.is_finite() {
            return;
        }
        let i = buckets.partition_point(|b| *b < v);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(v);
    }
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
    pub fn sum(&self) -> f64 {
        self.sum.get()
    }
}

impl Cell for Histogram {
    const TYPE: Type = Type::Histogram;
    fn new(buckets: &'static [f64]) -> Self {
        Histogram {
            counts: (0..=buckets.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
        }
    }
    fn write(&self, d: &Desc, key: &[LabelId], w: &mut Writer<'_>) {
        // `_count` from the buckets read, so it always equals the `+Inf` bucket.
        let mut cum = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cum += c.load(Ordering::Relaxed);
            let le = d.buckets.get(i).copied().unwrap_or(f64::INFINITY);
            w.sample(d.name, "_bucket", d.labels, key, Some(le), Value::U64(cum));
        }
        w.sample(d.name, "_sum", d.labels, key, None, Value::F64(self.sum()));
        w.sample(d.name, "_count", d.labels, key, None, Value::U64(cum));
    }
    fn value(&self) -> CellValue {
        CellValue::Histogram {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum(),
        }
    }
    fn restore(&self, v: &CellValue) {
        // Bucket layout changes between versions are refused rather than misread.
        if let CellValue::Histogram { counts, sum } = v {
            if counts.len() == self.counts.len() {
                for (c, x) in self.counts.iter().zip(counts) {
                    c.store(*x, Ordering::Relaxed);
                }
                self.sum.set(*sum);
            }
        }
    }
}

/// The global series budget (`labels.max_series`), shared by every stored family.
pub struct Budget {
    max: usize,
    used: AtomicUsize,
    warned: AtomicBool,
}

impl Budget {
    pub fn new(max: usize) -> Budget {
        Budget {
            max,
            used: AtomicUsize::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// Series stored in all families.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self) -> bool {
        if self.used.fetch_add(1, Ordering::Relaxed) < self.max {
            return true;
        }
        self.used.fetch_sub(1, Ordering::Relaxed);
        false
    }

    fn exceeded(&self, family: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_series = self.max,
                family,
                "labels.max_series reached: new label combinations are reported under \"other\" \
                 (cdr_exporter_series_budget_exceeded_total); raise labels.max_series, or lower \
                 the detail (labels.tenant_detail, labels.drop, labels.max_tenants)"
            );
        }
    }
}

/// Which labels a family keeps, and whether it is exposed at all.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    pub enabled: bool,
    /// Positions of dropped labels.
    pub dropped: Vec<usize>,
}

/// One metric family: label sets (as interned ids) to cells.
pub struct Family<L: LabelSet, C> {
    pub desc: Desc,
    shape: Shape,
    series: DashMap<L::Key, C, ahash::RandomState>,
    /// Where new combinations go once the budget is spent: every kept label `other`.
    fold: L::Key,
    budget: Arc<Budget>,
    exceeded: AtomicU64,
}

impl<L: LabelSet, C: Cell> Family<L, C> {
    pub fn new(desc: Desc, shape: Shape, vocab: &Vocabulary, budget: Arc<Budget>) -> Self {
        let other = vocab.table.intern(super::vocab::OTHER);
        let mut ids = vec![other; L::NAMES.len()];
        for &i in &shape.dropped {
            ids[i] = DROPPED;
        }
        Family {
            desc,
            fold: L::key_from(&ids).expect("one id per label"),
            shape,
            series: DashMap::with_hasher(Default::default()),
            budget,
            exceeded: AtomicU64::new(0),
        }
    }

    #[inline]
    fn key(&self, labels: L) -> L::Key {
        let mut key = labels.key();
        for &i in &self.shape.dropped {
            key.as_mut()[i] = DROPPED;
        }
        key
    }

    /// Runs `f` on the series for `labels`, creating it at zero if needed (within the
    /// series budget; beyond it, on the family's `other` series).
    #[inline]
    pub fn with(&self, labels: L, f: impl FnOnce(&C)) {
        if !self.shape.enabled {
            return;
        }
        let key = self.key(labels);
        if let Some(c) = self.series.get(&key) {
            return f(&c);
        }
        self.with_new(key, f)
    }

    #[cold]
    fn with_new(&self, key: L::Key, f: impl FnOnce(&C)) {
        let key = match self.series.entry(key) {
            dashmap::Entry::Occupied(e) => return f(&e.into_ref().downgrade()),
            dashmap::Entry::Vacant(e) if self.budget.take() => {
                return f(&e.insert(C::new(self.desc.buckets)).downgrade());
            }
            dashmap::Entry::Vacant(_) => {
                self.exceeded.fetch_add(1, Ordering::Relaxed);
                self.budget.exceeded(self.desc.name);
                self.fold
            }
        };
        // The fold series itself is outside the budget: one per family at most.
        let c = self
            .series
            .entry(key)
            .or_insert_with(|| C::new(self.desc.buckets))
            .downgrade();
        f(&c)
    }

    /// Runs `f` on an existing series only.
    pub fn get<R>(&self, labels: L, f: impl FnOnce(&C) -> R) -> Option<R> {
        self.series.get(&self.key(labels)).map(|c| f(&c))
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn is_enabled(&self) -> bool {
        self.shape.enabled
    }
}

impl<L: LabelSet> Family<L, Counter> {
    #[inline]
    pub fn inc(&self, labels: L) {
        self.with(labels, |c| c.inc())
    }
    #[inline]
    pub fn inc_by(&self, labels: L, n: u64) {
        self.with(labels, |c| c.inc_by(n))
    }
    /// Creates the series at 0, so that `increase()` sees its first event.
    pub fn touch(&self, labels: L) {
        self.with(labels, |_| ())
    }
}

impl<L: LabelSet> Family<L, FloatCounter> {
    #[inline]
    pub fn add(&self, labels: L, v: f64) {
        self.with(labels, |c| c.add(v))
    }
}

impl<L: LabelSet> Family<L, Gauge> {
    #[inline]
    pub fn add(&self, labels: L, v: i64) {
        self.with(labels, |g| g.add(v))
    }
}

impl<L: LabelSet> Family<L, FloatGauge> {
    pub fn set(&self, labels: L, v: f64) {
        self.with(labels, |g| g.0.set(v))
    }
    /// Raises the value to `v` if it is larger.
    pub fn max(&self, labels: L, v: f64) {
        self.with(labels, |g| g.0.max(v))
    }
}

impl<L: LabelSet> Family<L, Histogram> {
    /// Observes `v` into the family's buckets.
    #[inline]
    pub fn observe(&self, labels: L, v: f64) {
        self.with(labels, |h| h.observe(v, self.desc.buckets))
    }
}

/// One series in a snapshot: label values (in the family's label order) and the value.
pub type SeriesValue = (Vec<String>, CellValue);

/// A stored family, whatever its labels and cells: for exposition and snapshots.
pub trait StoredFamily: Send + Sync {
    fn desc(&self) -> &Desc;
    fn enabled(&self) -> bool;
    fn write(&self, w: &mut Writer<'_>);
    fn series_count(&self) -> usize;
    /// Updates that went to `other` because the series budget was spent.
    fn budget_exceeded(&self) -> u64;
    fn snapshot(&self, values: &[Arc<str>]) -> Vec<SeriesValue>;
    /// `id` maps a label value to its id (the vocabulary is restored first).
    fn restore(&self, series: &[SeriesValue], id: &dyn Fn(&str) -> LabelId);
}

impl<L: LabelSet, C: Cell> StoredFamily for Family<L, C> {
    fn desc(&self) -> &Desc {
        &self.desc
    }
    fn enabled(&self) -> bool {
        self.shape.enabled
    }
    fn write(&self, w: &mut Writer<'_>) {
        for r in self.series.iter() {
            r.value().write(&self.desc, r.key().as_ref(), w);
        }
    }
    fn series_count(&self) -> usize {
        self.series.len()
    }
    fn budget_exceeded(&self) -> u64 {
        self.exceeded.load(Ordering::Relaxed)
    }
    fn snapshot(&self, values: &[Arc<str>]) -> Vec<SeriesValue> {
        self.series
            .iter()
            .map(|r| {
                let labels = r
                    .key()
                    .as_ref()
                    .iter()
                    .map(|l| match *l {
                        DROPPED => String::new(),
                        l => values[l.0 as usize].to_string(),
                    })
                    .collect();
                (labels, r.value().value())
            })
            .collect()
    }
    fn restore(&self, series: &[SeriesValue], id: &dyn Fn(&str) -> LabelId) {
        for (labels, v) in series {
            let ids: Vec<LabelId> = labels.iter().map(|l| id(l)).collect();
            let Some(mut key) = L::key_from(&ids) else {
                continue;
            };
            // Restored as stored now: a label dropped since is merged, one kept since
            // `other`.
            for (i, l) in key.as_mut().iter_mut().enumerate() {
                if self.shape.dropped.contains(&i) {
                    *l = DROPPED;
                } else if labels[i].is_empty() {
                    *l = self.fold.as_ref()[i];
                }
            }
            let c = self.series.entry(key).or_insert_with(|| {
                self.budget.used.fetch_add(1, Ordering::Relaxed);
                C::new(self.desc.buckets)
            });
            c.restore(v);
        }
    }
}
