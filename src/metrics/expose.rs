//! `/metrics` exposition: OpenMetrics 1.0.0 through prometheus-client, text 0.0.4 derived from it.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use super::Metrics;

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

#[derive(Debug)]
struct MetricsCollector(Arc<Metrics>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Collector for MetricsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(&mut enc)
    }
}

/// The registry behind `/metrics`.
pub struct Exposition {
    registry: Registry,
    /// The last scrape's size: the next buffer starts there instead of doubling up to it.
    last_len: std::sync::atomic::AtomicUsize,
}

impl Exposition {
    pub fn new(metrics: Arc<Metrics>, extra: Vec<Box<dyn Collector>>) -> Exposition {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(MetricsCollector(metrics)));
        for c in extra {
            registry.register_collector(c);
        }
        Exposition {
            registry,
            last_len: std::sync::atomic::AtomicUsize::new(64 * 1024),
        }
    }

    pub fn encode(&self, format: Format) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let mut om = String::with_capacity(self.last_len.load(Relaxed) + 4096);
        // Writing to a String cannot fail; our collectors only fail on fmt errors.
        let _ = prometheus_client::encoding::text::encode(&mut om, &self.registry);
        self.last_len.store(om.len(), Relaxed);
        match format {
            Format::OpenMetrics => om,
            Format::Text004 => openmetrics_to_text004(&om),
        }
    }
}

/// Rewrites prometheus-client's OpenMetrics output as Prometheus text 0.0.4: counters'
/// HELP/TYPE take the `_total` name, `info` becomes a gauge named `x_info`, and the
/// `# UNIT` and `# EOF` lines go. Sample lines are the same in both formats.
pub fn openmetrics_to_text004(om: &str) -> String {
    let mut out = String::with_capacity(om.len() + om.len() / 32);
    let mut pending_help: Option<(&str, &str)> = None;
    let mut rest = om;
    while !rest.is_empty() {
        if !rest.starts_with('#') {
            // A run of sample lines is the same in both formats: copy it whole, up to the
            // next comment line (counters' `_created` samples are never emitted).
            let end = next_comment_line(rest);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let (line, tail) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = tail;
        if let Some(r) = line.strip_prefix("# HELP ") {
            pending_help = Some(r.split_once(' ').unwrap_or((r, "")));
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            let (name, kind) = r.split_once(' ').unwrap_or((r, "untyped"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "gaugehistogram" => ("", "histogram"),
                "stateset" | "unknown" => ("", "untyped"),
                k => ("", k),
            };
            if let Some((hname, help)) = pending_help.take() {
                if hname == name {
                    for part in ["# HELP ", name, suffix, " ", help, "\n"] {
                        out.push_str(part);
                    }
                }
            }
            for part in ["# TYPE ", name, suffix, " ", kind, "\n"] {
                out.push_str(part);
            }
        }
        // `# UNIT` and `# EOF` have no 0.0.4 form.
    }
    out
}

/// Offset of the first line starting with `#` after the first line (`rest.len()` if none).
/// Searching for the byte alone uses the vectorised memchr; `#` is rare inside samples.
fn next_comment_line(rest: &str) -> usize {
    let b = rest.as_bytes();
    let mut from = 0;
    while let Some(i) = rest[from..].find('#') {
        let at = from + i;
        if at > 0 && b[at - 1] == b'\n' {
            return at;
        }
        from = at + 1;
    }
    rest.len()
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
    fn a_hash_inside_a_label_value_is_not_a_comment() {
        let om = "# TYPE c counter\nc_total{x=\"a#b\"} 1\nc_total{x=\"#\"} 2\n# EOF\n";
        assert_eq!(
            openmetrics_to_text004(om),
            "# TYPE c_total counter\nc_total{x=\"a#b\"} 1\nc_total{x=\"#\"} 2\n"
        );
    }

    #[test]
    fn conversion_renames_counters_and_info() {
        let om = "# HELP a_seconds A.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\na_seconds_sum 1.0\n# HELP c C.\n# TYPE c counter\nc_total{x=\"y\"} 2\n# HELP b Build.\n# TYPE b info\nb_info{version=\"1\"} 1\n# EOF\n";
        let t = openmetrics_to_text004(om);
        assert_eq!(
            t,
            "# HELP a_seconds A.\n# TYPE a_seconds histogram\na_seconds_sum 1.0\n# HELP c_total C.\n# TYPE c_total counter\nc_total{x=\"y\"} 2\n# HELP b_info Build.\n# TYPE b_info gauge\nb_info{version=\"1\"} 1\n"
        );
    }
}
