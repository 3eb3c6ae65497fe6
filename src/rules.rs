//! The Prometheus rules shipped with cdr-exporter, rendered with operator parameters.
//!
//! `alerts/cdr-exporter.rules.yml.tmpl` (embedded here) holds the recording rules and alerts
//! with placeholders such as `{{ low_mos_share }}` or `{{ low_mos_for }}`; [`parameters`] lists
//! every placeholder with its default and meaning, and [`render`] fills them in. The shipped
//! `alerts/cdr-exporter.rules.yml` is exactly `render(&[])` (a test checks it).
//!
//! Operators and tests change thresholds, minimum leg counts, windows, `for` durations and
//! severities without editing the shipped rules:
//!
//! ```text
//! cdr-exporter rules --set low_mos_share=0.2 --set low_mos_for=10m > cdr-exporter.rules.yml
//! ```
//!
//! Placeholder syntax: `{{ name }}` inserts the parameter's value and `{{ name | seconds }}` a
//! duration parameter in seconds (PromQL 2.x has no duration literals in arithmetic). Only
//! names from [`parameters`] are placeholders: everything else in `{{ }}` (Prometheus's own
//! alert templates such as `{{ $value }}` or `{{ end }}`) is left as it is.
//!
//! Every value is validated, so a rendered file is always valid YAML and PromQL: durations are
//! Prometheus durations (`30s`, `5m`, `1h30m`), shares are decimals from 0 to 1, counts are
//! non-negative decimals. This module depends on nothing else in the crate.

use std::collections::HashMap;
use std::fmt;

/// The rules template, with placeholders.
pub const TEMPLATE: &str = include_str!("../alerts/cdr-exporter.rules.yml.tmpl");

/// Where the rendered default rules are shipped, relative to the repository root.
pub const SHIPPED_PATH: &str = "alerts/cdr-exporter.rules.yml";

/// What a parameter's value must look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A range for `[...]` selectors: a Prometheus duration greater than zero (`15m`, `1h30m`).
    Window,
    /// A Prometheus duration that may be zero (`for`): `0s`, `30s`, `5m`.
    Duration,
    /// A share from 0 to 1 as a decimal (`0.1` is 10 %).
    Ratio,
    /// A non-negative decimal number (a count of legs, records, batches or calls).
    Number,
    /// An Alertmanager severity: `critical`, `warning` or `info`.
    Severity,
    /// CMS callLegEnd reasons joined by `|`, e.g. `error|timeout|dnsFailure`.
    Reasons,
    /// A Prometheus job name (letters, digits and `_ . : / -`).
    Job,
    /// An `http://` or `https://` URL without spaces, quotes, braces or `#`.
    Url,
}

impl Kind {
    /// What the value must look like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            Kind::Window => "a Prometheus duration greater than zero, such as 30s, 15m or 1h30m",
            Kind::Duration => "a Prometheus duration, such as 0s, 30s, 5m or 1h",
            Kind::Ratio => "a decimal from 0 to 1, such as 0.1 for 10 %",
            Kind::Number => "a non-negative decimal number, such as 10",
            Kind::Severity => "critical, warning or info",
            Kind::Reasons => "CMS leg end reasons joined by |, such as error|timeout|dnsFailure",
            Kind::Job => "a job name of letters, digits and _ . : / -",
            Kind::Url => "an http:// or https:// URL without spaces, quotes, braces or #",
        }
    }
}

/// One template parameter.
#[derive(Clone, Copy, Debug)]
pub struct Parameter {
    /// The placeholder name, also the key of `--set key=value`.
    pub name: &'static str,
    /// The value in the shipped rules.
    pub default: &'static str,
    pub kind: Kind,
    /// The alert it tunes (`all` for shared settings).
    pub alert: &'static str,
    /// What it means.
    pub description: &'static str,
}

macro_rules! p {
    ($name:literal, $default:literal, $kind:ident, $alert:literal, $desc:literal) => {
        Parameter {
            name: $name,
            default: $default,
            kind: Kind::$kind,
            alert: $alert,
            description: $desc,
        }
    };
}

const PARAMETERS: &[Parameter] = &[
    p!("exporter_job", "cdr-exporter", Job, "CdrExporterDown",
        "Prometheus job name of the cdr-exporter scrape job: CdrExporterDown watches up{job=\"...\"} and alerts when it is 0 or absent"),
    p!("runbook_url", "https://github.com/cdr-exporter/cdr-exporter/blob/main/docs/runbooks.md", Url, "all",
        "Runbook document; each alert's runbook_url is this URL plus #<alert name in lower case>"),
    p!("grafana_url", "https://grafana.example.com", Url, "all",
        "Grafana base URL; each alert's dashboard_url is this URL plus /d/<dashboard uid> with the alert's job and its Call Bridge, tenant or instance as dashboard variables"),
    p!("low_mos_window", "15m", Window, "CdrLowMos",
        "Window over which scored legs (CMS, FreeSWITCH) and calls (rtpengine) are counted, per tenant and per node (also in the recording rule names)"),
    p!("low_mos_share", "0.1", Ratio, "CdrLowMos",
        "Tenant scope: fire when more than this share of a tenant's scored legs or calls (any source) had a MOS at or below 3.1"),
    p!("low_mos_min_legs", "50", Number, "CdrLowMos",
        "Tenant scope: minimum number of scored legs or calls of the tenant in the window, so a small tenant's few bad calls do not fire"),
    p!("low_mos_for", "10m", Duration, "CdrLowMos", "Tenant scope: how long the condition must hold before the alert fires"),
    p!("low_mos_severity", "warning", Severity, "CdrLowMos", "Tenant scope: severity label: critical, warning or info"),
    p!("node_low_mos_share", "0.1", Ratio, "CdrLowMos",
        "Node scope: fire when more than this share of the scored legs or calls of a node (CMS Call Bridge, FreeSWITCH switch, Kamailio node; all tenants) had a MOS at or below 3.1"),
    p!("node_low_mos_min_legs", "100", Number, "CdrLowMos",
        "Node scope: minimum number of scored legs or calls on the node in the window"),
    p!("node_low_mos_for", "10m", Duration, "CdrLowMos", "Node scope: how long the condition must hold before the alert fires"),
    p!("node_low_mos_severity", "critical", Severity, "CdrLowMos", "Node scope: severity label: critical, warning or info"),
    p!("records_missing_window", "15m", Window, "CmsCdrRecordsMissing",
        "Window over which lost records are counted (also in the recording rule names)"),
    p!("records_missing_min_records", "10", Number, "CmsCdrRecordsMissing",
        "Fire when at least this many records of one Call Bridge were lost in the window on every receiver that accepted batches from it"),
    p!("records_missing_for", "5m", Duration, "CmsCdrRecordsMissing", "How long the condition must hold before the alert fires"),
    p!("records_missing_severity", "critical", Severity, "CmsCdrRecordsMissing", "Severity label: critical, warning or info"),
    p!("source_silent_after", "1h", Window, "CdrSourceSilent",
        "Silence (nothing accepted at any exporter of the job) after which a sender (Call Bridge, FreeSWITCH switch, Kamailio node) that is expected to send is reported"),
    p!("source_silent_expected_within", "1d", Window, "CdrSourceSilent",
        "With calls in progress on a Call Bridge: only Call Bridges whose last batch is younger than this are expected to send (older silences resolve); must be longer than source_silent_after"),
    p!("source_silent_min_active_calls", "1", Number, "CdrSourceSilent",
        "Calls the exporters must still count in progress on a Call Bridge for its silence to be suspicious (CMS only)"),
    p!("source_silent_season", "1w", Window, "CdrSourceSilent",
        "How far back to look for the same time slot (a week covers weekends)"),
    p!("source_silent_season_count", "20", Number, "CdrSourceSilent",
        "What the sender must have sent in the source_silent_after window one source_silent_season earlier for its silence to be suspicious: CMS batches, FreeSWITCH CDRs, rtpengine reports (a very large value disables this branch)"),
    p!("source_silent_for", "5m", Duration, "CdrSourceSilent", "How long the condition must hold before the alert fires"),
    p!("source_silent_severity", "warning", Severity, "CdrSourceSilent", "Severity label: critical, warning or info"),
    p!("replica_behind_after", "15m", Window, "CmsCdrReplicaBehind",
        "Fire when a receiver's last batch from a Call Bridge is this much older than another receiver's of the same job"),
    p!("replica_behind_for", "15m", Duration, "CmsCdrReplicaBehind", "How long the condition must hold before the alert fires"),
    p!("replica_behind_severity", "warning", Severity, "CmsCdrReplicaBehind", "Severity label: critical, warning or info"),
    p!("restarted_window", "30m", Window, "CmsCallBridgeRestarted",
        "Window in which a new session is reported (the alert stays active this long); windows in which the session counter was reset (exporter restarted without its state) are skipped"),
    p!("restarted_for", "0m", Duration, "CmsCallBridgeRestarted", "How long the condition must hold before the alert fires"),
    p!("restarted_severity", "warning", Severity, "CmsCallBridgeRestarted", "Severity label: critical, warning or info"),
    p!("leg_ends_window", "15m", Window, "CmsAbnormalLegEnds, CmsPacketLossAlarms",
        "Window over which ended legs are counted for both alerts (also in the recording rule names)"),
    p!("abnormal_ends_reasons", "error|timeout|dnsFailure|encryptionRequired|unknownDestination|participantLimitReached|tenantParticipantLimitReached", Reasons, "CmsAbnormalLegEnds",
        "callLegEnd reasons counted as abnormal (failures of the system, network or capacity, not user or far-end behaviour); the dashboards read the same list from the recording rule cms:call_leg_end_reason:abnormal"),
    p!("abnormal_ends_share", "0.1", Ratio, "CmsAbnormalLegEnds",
        "Fire when more than this share of the legs ended on a Call Bridge ended abnormally"),
    p!("abnormal_ends_min_legs", "50", Number, "CmsAbnormalLegEnds", "Minimum number of legs ended on the Call Bridge in the window"),
    p!("abnormal_ends_for", "10m", Duration, "CmsAbnormalLegEnds", "How long the condition must hold before the alert fires"),
    p!("abnormal_ends_severity", "warning", Severity, "CmsAbnormalLegEnds", "Severity label: critical, warning or info"),
    p!("packet_loss_share", "0.2", Ratio, "CmsPacketLossAlarms",
        "Fire when more than this share of the legs ended on a Call Bridge raised a packetLoss alarm"),
    p!("packet_loss_min_legs", "50", Number, "CmsPacketLossAlarms", "Minimum number of legs ended on the Call Bridge in the window"),
    p!("packet_loss_for", "10m", Duration, "CmsPacketLossAlarms", "How long the condition must hold before the alert fires"),
    p!("packet_loss_severity", "warning", Severity, "CmsPacketLossAlarms", "Severity label: critical, warning or info"),
    p!("rejecting_window", "10m", Window, "CdrExporterRejectingBatches",
        "Window over which rejected batches are counted (per instance and reason)"),
    p!("rejecting_min_batches", "3", Number, "CdrExporterRejectingBatches",
        "Rejected batches the window must hold at every evaluation for rejecting_for, so a stray POST or one burst does not fire"),
    p!("rejecting_for", "20m", Duration, "CdrExporterRejectingBatches", "How long the rejections must go on before the alert fires"),
    p!("rejecting_severity", "warning", Severity, "CdrExporterRejectingBatches", "Severity label: critical, warning or info"),
    p!("journal_errors_window", "5m", Window, "CdrExporterJournalErrors",
        "Window over which failed journal writes are counted"),
    p!("journal_errors_for", "10m", Duration, "CdrExporterJournalErrors",
        "How long every window must hold a failed write before the alert fires (one transient error does not)"),
    p!("journal_errors_severity", "critical", Severity, "CdrExporterJournalErrors", "Severity label: critical, warning or info"),
    p!("recovery_lost_report_window", "1d", Window, "CdrExporterRecoveryLostBatches",
        "How long after the exporter's start the loss is reported (the gauge keeps its value until the next start)"),
    p!("recovery_lost_for", "0m", Duration, "CdrExporterRecoveryLostBatches", "How long the condition must hold before the alert fires"),
    p!("recovery_lost_severity", "warning", Severity, "CdrExporterRecoveryLostBatches", "Severity label: critical, warning or info"),
    p!("snapshot_max_age", "1h", Window, "CdrExporterSnapshotTooOld",
        "Fire when the last snapshot is older than this (and the exporter has run this long); snapshots are snapshot.interval_seconds apart (5 minutes by default)"),
    p!("snapshot_too_old_for", "5m", Duration, "CdrExporterSnapshotTooOld", "How long the condition must hold before the alert fires"),
    p!("snapshot_too_old_severity", "warning", Severity, "CdrExporterSnapshotTooOld", "Severity label: critical, warning or info"),
    p!("series_budget_window", "1h", Window, "CdrExporterSeriesBudgetExceeded",
        "Window in which updates folded into other because of labels.max_series are reported (the alert stays active this long)"),
    p!("series_budget_for", "0m", Duration, "CdrExporterSeriesBudgetExceeded", "How long the condition must hold before the alert fires"),
    p!("series_budget_severity", "warning", Severity, "CdrExporterSeriesBudgetExceeded", "Severity label: critical, warning or info"),
    p!("label_overflow_window", "1h", Window, "CdrExporterLabelOverflow",
        "Window in which label values replaced by other are reported (the alert stays active this long)"),
    p!("label_overflow_for", "0m", Duration, "CdrExporterLabelOverflow", "How long the condition must hold before the alert fires"),
    p!("label_overflow_severity", "warning", Severity, "CdrExporterLabelOverflow", "Severity label: critical, warning or info"),
    p!("exporter_down_for", "5m", Duration, "CdrExporterDown", "How long scrapes must fail (or the target be absent) before the alert fires"),
    p!("exporter_down_severity", "critical", Severity, "CdrExporterDown", "Severity label: critical, warning or info"),
];

/// Every template parameter, in documentation order.
pub fn parameters() -> &'static [Parameter] {
    PARAMETERS
}

/// Why rendering failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulesError {
    /// The key is not a parameter.
    UnknownParameter { name: String },
    /// The value does not fit the parameter.
    InvalidValue {
        name: String,
        value: String,
        expected: String,
    },
    /// A `--set` argument without `key=value` form.
    MalformedOverride { arg: String },
    /// The template is inconsistent (a bug in the shipped template).
    Template { msg: String },
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RulesError::UnknownParameter { name } => {
                let known: Vec<&str> = PARAMETERS.iter().map(|p| p.name).collect();
                write!(
                    f,
                    "unknown rules parameter `{name}` (known: {})",
                    known.join(", ")
                )
            }
            RulesError::InvalidValue {
                name,
                value,
                expected,
            } => write!(
                f,
                "invalid value `{value}` for rules parameter `{name}`: expected {expected}"
            ),
            RulesError::MalformedOverride { arg } => {
                write!(f, "`{arg}` is not of the form key=value")
            }
            RulesError::Template { msg } => write!(f, "rules template: {msg}"),
        }
    }
}

impl std::error::Error for RulesError {}

/// Splits one `key=value` argument (as given to `--set`); whitespace around both is trimmed.
pub fn parse_override(arg: &str) -> Result<(String, String), RulesError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(RulesError::MalformedOverride {
            arg: arg.to_owned(),
        }),
    }
}

/// Renders the rules with `overrides` (name, value) applied over the defaults; a later override
/// of the same name wins. Unknown names and invalid values are errors naming the parameter.
pub fn render(overrides: &[(String, String)]) -> Result<String, RulesError> {
    let mut values: HashMap<&'static str, (Kind, String)> = PARAMETERS
        .iter()
        .map(|p| (p.name, (p.kind, p.default.to_owned())))
        .collect();
    for (name, value) in overrides {
        let p = PARAMETERS
            .iter()
            .find(|p| p.name == name.as_str())
            .ok_or_else(|| RulesError::UnknownParameter { name: name.clone() })?;
        let v = normalize(p, value.trim())?;
        values.insert(p.name, (p.kind, v));
    }
    cross_check(&values)?;
    substitute(TEMPLATE, &values)
}

/// Validates a value for `p` and returns the text to insert.
fn normalize(p: &Parameter, v: &str) -> Result<String, RulesError> {
    // `#anchor` and `/d/uid` are appended to URLs: `https://host/` would give `//d/uid`.
    let v = if p.kind == Kind::Url {
        v.trim_end_matches('/')
    } else {
        v
    };
    let bad = || RulesError::InvalidValue {
        name: p.name.to_owned(),
        value: v.to_owned(),
        expected: p.kind.expected().to_owned(),
    };
    let ok = match p.kind {
        Kind::Window => duration_seconds(v).is_some_and(|s| s > 0.0),
        Kind::Duration => duration_seconds(v).is_some(),
        Kind::Ratio => decimal(v).is_some_and(|x| x <= 1.0),
        Kind::Number => decimal(v).is_some(),
        Kind::Severity => matches!(v, "critical" | "warning" | "info"),
        Kind::Reasons => {
            !v.is_empty()
                && v.split('|')
                    .all(|r| !r.is_empty() && r.chars().all(|c| c.is_ascii_alphabetic()))
        }
        Kind::Job => {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c))
        }
        Kind::Url => {
            (v.starts_with("http://") || v.starts_with("https://"))
                && v.len() > "https://".len()
                && v.chars().all(|c| {
                    c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '{' | '}' | '#' | '`')
                })
        }
    };
    if !ok {
        return Err(bad());
    }
    Ok(match p.kind {
        // Decimals are re-printed so PromQL never sees `010` (octal in Go) or `1.`.
        Kind::Ratio | Kind::Number => format_number(decimal(v).ok_or_else(bad)?),
        _ => v.to_owned(),
    })
}

/// Constraints between parameters.
fn cross_check(values: &HashMap<&'static str, (Kind, String)>) -> Result<(), RulesError> {
    let secs = |n: &str| values.get(n).and_then(|(_, v)| duration_seconds(v));
    let (after, within) = (
        secs("source_silent_after"),
        secs("source_silent_expected_within"),
    );
    if let (Some(a), Some(w)) = (after, within) {
        if w <= a {
            let value = values["source_silent_expected_within"].1.clone();
            return Err(RulesError::InvalidValue {
                name: "source_silent_expected_within".to_owned(),
                value,
                expected: "a duration longer than source_silent_after".to_owned(),
            });
        }
    }
    Ok(())
}

/// A plain decimal (`10`, `0.25`): digits, optionally a point and more digits.
fn decimal(v: &str) -> Option<f64> {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (v, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    v.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn format_number(x: f64) -> String {
    // Display for f64 never uses an exponent and prints the shortest exact form.
    format!("{x}")
}

/// Seconds in a Prometheus duration (`1h30m`, `500ms`, `0`): units y w d h m s ms, each at most
/// once and in that order, as Prometheus 2.x accepts them.
pub fn duration_seconds(v: &str) -> Option<f64> {
    if v == "0" {
        return Some(0.0);
    }
    const UNITS: [(&str, f64); 7] = [
        ("y", 365.0 * 86400.0),
        ("w", 7.0 * 86400.0),
        ("d", 86400.0),
        ("h", 3600.0),
        ("m", 60.0),
        ("s", 1.0),
        ("ms", 0.001),
    ];
    let mut rest = v;
    let mut next_unit = 0;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 12 {
            return None;
        }
        let (num, tail) = rest.split_at(n);
        let unit_len = tail.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let (unit, tail) = tail.split_at(unit_len);
        let i = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        total += num.parse::<f64>().ok()? * UNITS[i].1;
        next_unit = i + 1;
        rest = tail;
    }
    Some(total)
}

fn format_seconds(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{:.3}", s)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

/// Replaces `{{ name }}` and `{{ name | seconds }}` for known names; leaves the rest.
fn substitute(
    template: &str,
    values: &HashMap<&'static str, (Kind, String)>,
) -> Result<String, RulesError> {
    let mut out = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        match placeholder(at) {
            Some((name, seconds, len)) if values.contains_key(name) => {
                let (kind, v) = &values[name];
                if seconds {
                    if !matches!(kind, Kind::Window | Kind::Duration) {
                        return Err(RulesError::Template {
                            msg: format!("`{name} | seconds` on a parameter that is no duration"),
                        });
                    }
                    let s = duration_seconds(v).ok_or_else(|| RulesError::Template {
                        msg: format!("`{name}` is no duration"),
                    })?;
                    out.push_str(&format_seconds(s));
                } else {
                    out.push_str(v);
                }
                rest = &at[len..];
            }
            _ => {
                // Not ours (a Prometheus template): keep one brace and scan on, so a
                // placeholder nested in it is still found.
                out.push('{');
                rest = &at[1..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `{{ ident }}` or `{{ ident | seconds }}` at the start of `s`: (ident, seconds, length).
fn placeholder(s: &str) -> Option<(&str, bool, usize)> {
    let body = s.strip_prefix("{{")?;
    let end = body.find("}}")?;
    let inner = &body[..end];
    let (name, filter) = match inner.split_once('|') {
        Some((n, f)) => (n.trim(), Some(f.trim())),
        None => (inner.trim(), None),
    };
    let ident = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.as_bytes()[0].is_ascii_lowercase();
    if !ident {
        return None;
    }
    let seconds = match filter {
        None => false,
        Some("seconds") => true,
        Some(_) => return None,
    };
    Some((name, seconds, 2 + end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_seconds("15m"), Some(900.0));
        assert_eq!(duration_seconds("1h30m"), Some(5400.0));
        assert_eq!(duration_seconds("1w"), Some(604800.0));
        assert_eq!(duration_seconds("500ms"), Some(0.5));
        assert_eq!(duration_seconds("0"), Some(0.0));
        assert_eq!(duration_seconds("0s"), Some(0.0));
        for bad in ["", "5", "m", "30m1h", "5mm", "1.5h", "-5m", "5 m", "1h1h"] {
            assert_eq!(duration_seconds(bad), None, "{bad}");
        }
        assert_eq!(format_seconds(0.5), "0.5");
        assert_eq!(format_seconds(3600.0), "3600");
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal("0.1"), Some(0.1));
        assert_eq!(decimal("10"), Some(10.0));
        for bad in ["", ".5", "5.", "1e3", "-1", "NaN", "inf", "0x10", "1,5"] {
            assert_eq!(decimal(bad), None, "{bad}");
        }
        assert_eq!(format_number(decimal("010").unwrap()), "10");
        assert_eq!(format_number(decimal("0.10").unwrap()), "0.1");
    }

    #[test]
    fn placeholders_leave_prometheus_templates_alone() {
        assert_eq!(placeholder("{{ a_b }}x"), Some(("a_b", false, 9)));
        assert_eq!(placeholder("{{a|seconds}}"), Some(("a", true, 13)));
        assert_eq!(placeholder("{{ $value }}"), None);
        assert_eq!(placeholder("{{ humanizePercentage \"x\" }}"), None);
        assert_eq!(placeholder("{{ x | humanize }}"), None);
    }
}
