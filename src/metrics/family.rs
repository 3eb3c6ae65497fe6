//! Metric storage: families of series in concurrent maps of atomic cells.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use dashmap::DashMap;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::labels::LabelId;

/// What a family is: name (counters without `_total`), help, unit, type, label names.
pub struct Desc<const N: usize> {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<Unit>,
    pub labels: [&'static str; N],
    /// Upper bounds of histogram buckets (empty for other types).
    pub buckets: &'static [f64],
}

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
pub trait Cell: Send + Sync {
    const TYPE: MetricType;
    fn new(buckets: &'static [f64]) -> Self;
    fn encode(&self, buckets: &'static [f64], e: MetricEncoder<'_>) -> std::fmt::Result;
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
    const TYPE: MetricType = MetricType::Counter;
    fn new(_: &'static [f64]) -> Self {
        Counter::default()
    }
    fn encode(&self, _: &'static [f64], mut e: MetricEncoder<'_>) -> std::fmt::Result {
        e.encode_counter::<NoLabelSet, u64, f64>(&self.get(), None)
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
    const TYPE: MetricType = MetricType::Counter;
    fn new(_: &'static [f64]) -> Self {
        FloatCounter::default()
    }
    fn encode(&self, _: &'static [f64], mut e: MetricEncoder<'_>) -> std::fmt::Result {
        e.encode_counter::<NoLabelSet, f64, f64>(&self.get(), None)
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
    const TYPE: MetricType = MetricType::Gauge;
    fn new(_: &'static [f64]) -> Self {
        Gauge::default()
    }
    fn encode(&self, _: &'static [f64], mut e: MetricEncoder<'_>) -> std::fmt::Result {
        e.encode_gauge(&self.get())
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

/// A real-valued gauge (timestamps).
#[derive(Default, Debug)]
pub struct FloatGauge(pub AtomicF64);

impl Cell for FloatGauge {
    const TYPE: MetricType = MetricType::Gauge;
    fn new(_: &'static [f64]) -> Self {
        FloatGauge::default()
    }
    fn encode(&self, _: &'static [f64], mut e: MetricEncoder<'_>) -> std::fmt::Result {
        e.encode_gauge(&self.0.get())
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

/// A histogram with fixed buckets; counts are per bucket and cumulated when encoded.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    sum: AtomicF64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, v: f64, buckets: &[f64]) {
        if !v.is_finite() {
            return;
        }
        let i = buckets.partition_point(|b| *b < v);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.add(v);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    pub fn sum(&self) -> f64 {
        self.sum.get()
    }
    /// Per-bucket (not cumulative) counts by upper bound, `+Inf` last; the encoder cumulates.
    pub fn buckets(&self, buckets: &[f64]) -> Vec<(f64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    buckets.get(i).copied().unwrap_or(f64::INFINITY),
                    c.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

impl Cell for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
    fn new(buckets: &'static [f64]) -> Self {
        Histogram {
            counts: (0..=buckets.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicF64::default(),
            count: AtomicU64::new(0),
        }
    }
    fn encode(&self, buckets: &'static [f64], mut e: MetricEncoder<'_>) -> std::fmt::Result {
        // Count from the buckets read, so `_count` always equals the `+Inf` bucket.
        let b = self.buckets(buckets);
        let count = b.iter().map(|x| x.1).sum();
        e.encode_histogram::<NoLabelSet>(self.sum(), count, &b, None)
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
                self.count.store(counts.iter().sum(), Ordering::Relaxed);
            }
        }
    }
}

/// One metric family: label sets (as interned ids) to cells.
pub struct Family<const N: usize, C> {
    pub desc: Desc<N>,
    series: DashMap<[LabelId; N], C, ahash::RandomState>,
}

impl<const N: usize, C: Cell> Family<N, C> {
    pub fn new(desc: Desc<N>) -> Self {
        Family {
            desc,
            series: DashMap::with_hasher(Default::default()),
        }
    }

    /// Runs `f` on the series for `key`, creating it at zero if needed.
    #[inline]
    pub fn with<R>(&self, key: [LabelId; N], f: impl FnOnce(&C) -> R) -> R {
        if let Some(c) = self.series.get(&key) {
            return f(&c);
        }
        let c = self
            .series
            .entry(key)
            .or_insert_with(|| C::new(self.desc.buckets))
            .downgrade();
        f(&c)
    }

    /// Runs `f` on an existing series only.
    pub fn get<R>(&self, key: &[LabelId; N], f: impl FnOnce(&C) -> R) -> Option<R> {
        self.series.get(key).map(|c| f(&c))
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Visits every series (for snapshots and tests).
    pub fn for_each(&self, mut f: impl FnMut(&[LabelId; N], &C)) {
        for r in self.series.iter() {
            f(r.key(), r.value());
        }
    }
}

/// A family that can write itself through prometheus-client's encoder.
pub trait EncodeFamily: Sync {
    fn encode(
        &self,
        enc: &mut DescriptorEncoder<'_>,
        values: &[std::sync::Arc<str>],
    ) -> std::fmt::Result;
}

/// One series in a snapshot: label values (in the family's label order) and the value.
pub type SeriesValue = (Vec<String>, CellValue);

/// A stored family: encodable and snapshottable.
pub trait StoredFamily: EncodeFamily + SnapshotFamily {}
impl<T: EncodeFamily + SnapshotFamily> StoredFamily for T {}

/// A family whose series can be saved and restored.
pub trait SnapshotFamily: Sync {
    fn name(&self) -> &'static str;
    fn snapshot(&self, values: &[std::sync::Arc<str>]) -> Vec<SeriesValue>;
    /// `id` maps a label value to its id (the domains are restored first).
    fn restore(&self, series: &[SeriesValue], id: &dyn Fn(&str) -> LabelId);
}

impl<const N: usize, C: Cell> SnapshotFamily for Family<N, C> {
    fn name(&self) -> &'static str {
        self.desc.name
    }
    fn snapshot(&self, values: &[std::sync::Arc<str>]) -> Vec<SeriesValue> {
        self.series
            .iter()
            .map(|r| {
                (
                    r.key()
                        .iter()
                        .map(|l| values[l.0 as usize].to_string())
                        .collect(),
                    r.value().value(),
                )
            })
            .collect()
    }
    fn restore(&self, series: &[SeriesValue], id: &dyn Fn(&str) -> LabelId) {
        for (labels, v) in series {
            if labels.len() != N {
                continue;
            }
            let key: [LabelId; N] = std::array::from_fn(|i| id(&labels[i]));
            self.with(key, |c| c.restore(v));
        }
    }
}

impl<const N: usize, C: Cell> EncodeFamily for Family<N, C> {
    fn encode(
        &self,
        enc: &mut DescriptorEncoder<'_>,
        values: &[std::sync::Arc<str>],
    ) -> std::fmt::Result {
        let mut me = enc.encode_descriptor(
            self.desc.name,
            self.desc.help,
            self.desc.unit.as_ref(),
            C::TYPE,
        )?;
        if N == 0 {
            // One unlabelled series: no `{}` after the name.
            return match self.series.iter().next() {
                Some(r) => r.value().encode(self.desc.buckets, me),
                None => Ok(()),
            };
        }
        for r in self.series.iter() {
            let key = r.key();
            let labels: [(&str, &str); N] =
                std::array::from_fn(|i| (self.desc.labels[i], &*values[key[i].0 as usize]));
            let fe = me.encode_family(&labels)?;
            r.value().encode(self.desc.buckets, fe)?;
        }
        Ok(())
    }
}

/// An `info` metric with constant labels (e.g. build information).
pub struct Info {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
}

impl EncodeFamily for Info {
    fn encode(
        &self,
        enc: &mut DescriptorEncoder<'_>,
        _: &[std::sync::Arc<str>],
    ) -> std::fmt::Result {
        let mut me = enc.encode_descriptor(self.name, self.help, None, MetricType::Info)?;
        let labels: Vec<(&str, &str)> = self.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        me.encode_info(&labels)
    }
}
