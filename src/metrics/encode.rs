//! `/metrics`: OpenMetrics 1.0.0 or Prometheus text 0.0.4 written straight from storage, once,
//! optionally gzipped; scrape-time families are filled by [`Source`]s.

use std::io::Write;
use std::sync::Arc;

use super::family::{Desc, Type, DROPPED};
use super::vocab::LabelId;

/// The two formats Prometheus understands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    OpenMetrics,
    Text004,
}

impl Format {
    pub const OPENMETRICS_CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";
    pub const TEXT_CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// OpenMetrics only when the Accept header asks for it; anything else gets 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text004;
        };
        for part in accept.split(',') {
            let mut params = part.split(';').map(str::trim);
            let media = params.next().unwrap_or("");
            if !media.eq_ignore_ascii_case("application/openmetrics-text") {
                continue;
            }
            let mut version_ok = true;
            let mut q_ok = true;
            for p in params {
                if let Some(v) = p.strip_prefix("version=") {
                    version_ok = v == "1.0.0";
                } else if let Some(q) = p.strip_prefix("q=") {
                    q_ok = q.parse::<f64>().map(|q| q > 0.0).unwrap_or(true);
                }
            }
            if version_ok && q_ok {
                return Format::OpenMetrics;
            }
        }
        Format::Text004
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => Self::OPENMETRICS_CONTENT_TYPE,
            Format::Text004 => Self::TEXT_CONTENT_TYPE,
        }
    }
}

/// Whether an `Accept-Encoding` header accepts gzip (with a q above 0).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|h| {
        h.split(',').any(|part| {
            let mut p = part.split(';').map(str::trim);
            let coding = p.next().unwrap_or("");
            let q_ok = p
                .filter_map(|x| x.strip_prefix("q="))
                .all(|q| q.parse::<f64>().map(|q| q > 0.0).unwrap_or(false));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && q_ok
        })
    })
}

/// A sample value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    U64(u64),
    I64(i64),
    F64(f64),
}

/// Writes samples in one format into a byte buffer, resolving label ids through `values`.
pub struct Writer<'a> {
    out: Vec<u8>,
    format: Format,
    values: &'a [Arc<str>],
}

impl<'a> Writer<'a> {
    pub fn new(format: Format, values: &'a [Arc<str>], capacity: usize) -> Writer<'a> {
        Writer {
            out: Vec::with_capacity(capacity),
            format,
            values,
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// `# HELP`, `# TYPE` (and `# UNIT` in OpenMetrics) of a family.
    pub fn header(&mut self, d: &Desc) {
        let om = self.format == Format::OpenMetrics;
        // OpenMetrics names a counter's family without `_total` and an info family without
        // `_info`; 0.0.4 names both by their sample, the info one a gauge.
        let (family, kind) = match d.kind {
            Type::Counter if om => (d.name.strip_suffix("_total").unwrap_or(d.name), "counter"),
            Type::Counter => (d.name, "counter"),
            Type::Gauge => (d.name, "gauge"),
            Type::Histogram => (d.name, "histogram"),
            Type::Info if om => (d.name.strip_suffix("_info").unwrap_or(d.name), "info"),
            Type::Info => (d.name, "gauge"),
        };
        let o = &mut self.out;
        o.extend_from_slice(b"# HELP ");
        o.extend_from_slice(family.as_bytes());
        o.push(b' ');
        escape_help(o, d.help);
        o.extend_from_slice(b"\n# TYPE ");
        o.extend_from_slice(family.as_bytes());
        o.push(b' ');
        o.extend_from_slice(kind.as_bytes());
        o.push(b'\n');
        if let (true, Some(unit)) = (om, d.unit) {
            o.extend_from_slice(b"# UNIT ");
            o.extend_from_slice(family.as_bytes());
            o.push(b' ');
            o.extend_from_slice(unit.as_bytes());
            o.push(b'\n');
        }
    }

    /// One sample line: `name+suffix{labels[,le="x"]} value`. Dropped labels are skipped.
    pub fn sample(
        &mut self,
        name: &str,
        suffix: &str,
        names: &[&str],
        ids: &[LabelId],
        le: Option<f64>,
        v: Value,
    ) {
        let values = self.values;
        let o = &mut self.out;
        o.extend_from_slice(name.as_bytes());
        o.extend_from_slice(suffix.as_bytes());
        let mut first = true;
        for (n, id) in names.iter().zip(ids) {
            if *id == DROPPED {
                continue;
            }
            o.push(if first { b'{' } else { b',' });
            first = false;
            o.extend_from_slice(n.as_bytes());
            o.extend_from_slice(b"=\"");
            escape_label(o, &values[id.0 as usize]);
            o.push(b'"');
        }
        if let Some(le) = le {
            o.extend_from_slice(if first { b"{le=\"" } else { b",le=\"" });
            write_f64(o, le);
            o.push(b'"');
            first = false;
        }
        if !first {
            o.push(b'}');
        }
        o.push(b' ');
        match v {
            Value::U64(x) => o.extend_from_slice(itoa::Buffer::new().format(x).as_bytes()),
            Value::I64(x) => o.extend_from_slice(itoa::Buffer::new().format(x).as_bytes()),
            Value::F64(x) => write_f64(o, x),
        }
        o.push(b'\n');
    }

    /// A sample of a scrape-time family, labels given as strings.
    fn sample_str(&mut self, d: &Desc, labels: &[String], v: Value) {
        let o = &mut self.out;
        o.extend_from_slice(d.name.as_bytes());
        for (i, (n, l)) in d.labels.iter().zip(labels).enumerate() {
            o.push(if i == 0 { b'{' } else { b',' });
            o.extend_from_slice(n.as_bytes());
            o.extend_from_slice(b"=\"");
            escape_label(o, l);
            o.push(b'"');
        }
        if !d.labels.is_empty() {
            o.push(b'}');
        }
        o.push(b' ');
        match v {
            Value::U64(x) => o.extend_from_slice(itoa::Buffer::new().format(x).as_bytes()),
            Value::I64(x) => o.extend_from_slice(itoa::Buffer::new().format(x).as_bytes()),
            Value::F64(x) => write_f64(o, x),
        }
        o.push(b'\n');
    }

    fn eof(&mut self) {
        if self.format == Format::OpenMetrics {
            self.out.extend_from_slice(b"# EOF\n");
        }
    }
}

/// Floats as Prometheus reads them: shortest round-trip form, `+Inf`, `-Inf`, `NaN`.
fn write_f64(o: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        o.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else if x.is_nan() {
        o.extend_from_slice(b"NaN");
    } else if x > 0.0 {
        o.extend_from_slice(b"+Inf");
    } else {
        o.extend_from_slice(b"-Inf");
    }
}

/// Label values: `\`, `"` and newline escaped (values come from the network).
fn escape_label(o: &mut Vec<u8>, v: &str) {
    let b = v.as_bytes();
    if memchr::memchr3(b'\\', b'"', b'\n', b).is_none() {
        o.extend_from_slice(b);
        return;
    }
    for &c in b {
        match c {
            b'\\' => o.extend_from_slice(b"\\\\"),
            b'"' => o.extend_from_slice(b"\\\""),
            b'\n' => o.extend_from_slice(b"\\n"),
            c => o.push(c),
        }
    }
}

/// Help texts: `\` and newline escaped.
fn escape_help(o: &mut Vec<u8>, v: &str) {
    for &c in v.as_bytes() {
        match c {
            b'\\' => o.extend_from_slice(b"\\\\"),
            b'\n' => o.extend_from_slice(b"\\n"),
            c => o.push(c),
        }
    }
}

/// Samples of the scrape-time families, gathered from the [`Source`]s for one scrape.
#[derive(Default)]
pub struct Scraped {
    rows: Vec<(&'static Desc, Vec<String>, Value)>,
}

impl Scraped {
    /// One sample of `d`, its label values in `d.labels` order.
    pub fn add(&mut self, d: &'static Desc, labels: &[&str], v: Value) {
        debug_assert_eq!(labels.len(), d.labels.len(), "{}", d.name);
        self.rows
            .push((d, labels.iter().map(|l| l.to_string()).collect(), v));
    }
}

/// Something that knows scrape-time values (the tracker, the store, the process).
pub trait Source: Send + Sync {
    fn collect(&self, out: &mut Scraped);
}

/// The registry behind `/metrics`: the stored families and the scrape-time sources.
pub struct Exposition {
    metrics: Arc<super::Metrics>,
    sources: Vec<Box<dyn Source>>,
    /// The last scrape's size: the next buffer starts there instead of doubling up to it.
    last_len: std::sync::atomic::AtomicUsize,
}

impl Exposition {
    pub fn new(metrics: Arc<super::Metrics>, sources: Vec<Box<dyn Source>>) -> Exposition {
        Exposition {
            metrics,
            sources,
            last_len: std::sync::atomic::AtomicUsize::new(64 * 1024),
        }
    }

    /// The body, uncompressed.
    pub fn encode(&self, format: Format) -> Vec<u8> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut scraped = Scraped::default();
        self.metrics.collect(&mut scraped);
        for s in &self.sources {
            s.collect(&mut scraped);
        }
        let values = self.metrics.vocab.table.values();
        let mut w = Writer::new(format, &values, self.last_len.load(Relaxed) + 4096);
        for f in self.metrics.stored() {
            if f.enabled() {
                w.header(f.desc());
                f.write(&mut w);
            }
        }
        for d in super::catalogue::SCRAPED {
            w.header(d);
            for (rd, labels, v) in &scraped.rows {
                if std::ptr::eq(*rd, *d) {
                    w.sample_str(d, labels, *v);
                }
            }
        }
        w.eof();
        let out = w.into_bytes();
        self.last_len.store(out.len(), Relaxed);
        out
    }

    /// The body gzipped (fast level: scrapes are frequent, and text compresses well anyway).
    pub fn encode_gzip(&self, format: Format) -> Vec<u8> {
        let body = self.encode(format);
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 8),
            flate2::Compression::fast(),
        );
        gz.write_all(&body).expect("writing to memory");
        gz.finish().expect("writing to memory")
    }

    /// Text 0.0.4 as a string (tests, tools).
    pub fn encode_text(&self) -> String {
        String::from_utf8(self.encode(Format::Text004)).expect("UTF-8 throughout")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(Format::negotiate(None), Format::Text004);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text004);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text004);
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=0.0.1")),
            Format::Text004
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text004
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("identity, gzip;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("br, deflate")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn escaping_and_numbers() {
        let values: Vec<Arc<str>> = vec!["a\"b\\c\nd".into(), "plain".into()];
        let mut w = Writer::new(Format::Text004, &values, 0);
        w.sample(
            "m",
            "_bucket",
            &["x", "y", "z"],
            &[LabelId(0), DROPPED, LabelId(1)],
            Some(f64::INFINITY),
            Value::F64(0.5),
        );
        w.sample("n", "", &[], &[], None, Value::I64(-3));
        w.sample("n", "", &[], &[], Some(1.0), Value::U64(7));
        assert_eq!(
            String::from_utf8(w.into_bytes()).unwrap(),
            "m_bucket{x=\"a\\\"b\\\\c\\nd\",z=\"plain\",le=\"+Inf\"} 0.5\nn -3\nn{le=\"1.0\"} 7\n"
        );
    }
}
