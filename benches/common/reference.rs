//! prometheus-client's own OpenMetrics encoder over the exporter's stored series: the
//! reference `tests/catalogue.rs` checks our writer against, and the bench compares with.

use std::sync::Arc;

use cdr_exporter::metrics::{CellValue, Metrics, Type};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

struct Stored(Arc<Metrics>);

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stored")
    }
}

impl Collector for Stored {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let values = self.0.vocab.table.values();
        for f in self.0.stored() {
            if !f.enabled() {
                continue;
            }
            let d = f.desc();
            // prometheus-client appends `_total` to counters and the unit to the name.
            let mut name = d.name.strip_suffix("_total").unwrap_or(d.name);
            let unit = d.unit.map(|u| {
                name = name.strip_suffix(&format!("_{u}")).unwrap_or(name);
                match u {
                    "seconds" => Unit::Seconds,
                    "bytes" => Unit::Bytes,
                    other => Unit::Other(other.to_owned()),
                }
            });
            let kind = match d.kind {
                Type::Counter => MetricType::Counter,
                Type::Gauge => MetricType::Gauge,
                Type::Histogram => MetricType::Histogram,
                Type::Info => MetricType::Info,
            };
            let mut me = enc.encode_descriptor(name, d.help, unit.as_ref(), kind)?;
            for (labels, v) in f.snapshot(&values) {
                // An empty value is a dropped label (`labels.drop`): not written.
                let pairs: Vec<(&str, &str)> = d
                    .labels
                    .iter()
                    .zip(&labels)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect();
                let mut fe = me.encode_family(&pairs)?;
                match (d.kind, v) {
                    (Type::Counter, CellValue::Int(x)) => {
                        fe.encode_counter::<NoLabelSet, u64, f64>(&x, None)?
                    }
                    (Type::Counter, CellValue::Float(x)) => {
                        fe.encode_counter::<NoLabelSet, f64, f64>(&x, None)?
                    }
                    (Type::Gauge, CellValue::Signed(x)) => fe.encode_gauge(&x)?,
                    (Type::Gauge, CellValue::Float(x)) => fe.encode_gauge(&x)?,
                    (Type::Histogram, CellValue::Histogram { counts, sum }) => {
                        let buckets: Vec<(f64, u64)> = counts
                            .iter()
                            .enumerate()
                            .map(|(i, c)| (d.buckets.get(i).copied().unwrap_or(f64::INFINITY), *c))
                            .collect();
                        let count = counts.iter().sum();
                        fe.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?
                    }
                    (k, v) => panic!("{}: {k:?} holds {v:?}", d.name),
                }
            }
        }
        Ok(())
    }
}

/// A registry that encodes the stored families of `m` with prometheus-client.
pub fn registry(m: Arc<Metrics>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Stored(m)));
    r
}

/// prometheus-client's OpenMetrics text of the stored families.
pub fn encode(r: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, r).expect("writing to a String");
    out
}
