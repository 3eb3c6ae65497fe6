//! The shipped Prometheus rules: the rendered file matches the template, overrides change
//! exactly what they name, bad overrides are errors, every alert is complete and documented,
//! every metric exists, and the real promtool/amtool accept everything
//! (`scripts/check-alerts.sh`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use cdr_exporter::rules::{self, parameters, render, Kind, RulesError};

/// In file order. CdrLowMos is two rules (scope tenant, then scope node) under one name.
const ALERTS: &[&str] = &[
    "CdrLowMos",
    "CdrLowMos",
    "CmsCdrRecordsMissing",
    "CdrSourceSilent",
    "CmsCdrReplicaBehind",
    "CmsCallBridgeRestarted",
    "CmsAbnormalLegEnds",
    "CmsPacketLossAlarms",
    "CdrExporterRejectingBatches",
    "CdrExporterJournalErrors",
    "CdrExporterRecoveryLostBatches",
    "CdrExporterSnapshotTooOld",
    "CdrExporterSeriesBudgetExceeded",
    "CdrExporterLabelOverflow",
    "CdrExporterDown",
];

const REGENERATE: &str = "UPDATE_RULES=1 cargo test --test rules shipped_rules \
     (or, once the CLI is wired: cargo run -- rules > alerts/cdr-exporter.rules.yml)";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn render_ok(pairs: &[(&str, &str)]) -> String {
    render(&set(pairs)).unwrap_or_else(|e| panic!("render {pairs:?}: {e}"))
}

/// One rule of a rendered file: its name (`alert` or `record` value) and its lines.
#[derive(Debug)]
struct Rule {
    alert: bool,
    name: String,
    lines: Vec<String>,
}

impl Rule {
    /// The `expr:` text (block scalar or single line).
    fn expr(&self) -> String {
        let mut out = Vec::new();
        let mut it = self.lines.iter();
        while let Some(l) = it.next() {
            let t = l.trim_start();
            if let Some(rest) = t.strip_prefix("expr:") {
                let rest = rest.trim();
                if rest != "|" && rest != ">-" && rest != "|-" {
                    return rest.to_owned();
                }
                let indent = l.len() - t.len();
                for l in it.by_ref() {
                    let ind = l.len() - l.trim_start().len();
                    if !l.trim().is_empty() && ind <= indent {
                        break;
                    }
                    out.push(l.trim().to_owned());
                }
                break;
            }
        }
        out.join("\n")
    }

    /// A single-line `key: value` inside the rule (labels and annotations).
    fn field(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}:");
        self.lines.iter().find_map(|l| {
            l.trim_start()
                .strip_prefix(&prefix)
                .map(|v| v.trim().trim_matches('"').to_owned())
        })
    }

    /// A folded (`>-`) annotation, joined as YAML does.
    fn folded(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}: >-");
        let i = self.lines.iter().position(|l| l.trim() == prefix)?;
        let indent = self.lines[i].len() - self.lines[i].trim_start().len();
        let body: Vec<&str> = self.lines[i + 1..]
            .iter()
            .take_while(|l| l.len() - l.trim_start().len() > indent)
            .map(|l| l.trim())
            .collect();
        Some(body.join(" "))
    }
}

/// Splits a rendered rules file into rules (line-based: the shipped layout is fixed).
fn rules_of(text: &str) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut inside = false;
    for l in text.lines() {
        let t = l.trim_start();
        let head = t
            .strip_prefix("- alert:")
            .map(|n| (true, n))
            .or_else(|| t.strip_prefix("- record:").map(|n| (false, n)));
        if let Some((alert, name)) = head {
            inside = true;
            out.push(Rule {
                alert,
                name: name.trim().to_owned(),
                lines: vec![l.to_owned()],
            });
        } else if t.starts_with("- name:") {
            inside = false;
        } else if inside {
            if let Some(r) = out.last_mut() {
                r.lines.push(l.to_owned());
            }
        }
    }
    out
}

/// Which rules (by name) contain each 1-based line number of `text`.
fn owner_of_lines(text: &str) -> Vec<Option<String>> {
    let mut owner = None;
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if let Some(n) = t.strip_prefix("- alert:").or(t.strip_prefix("- record:")) {
                owner = Some(n.trim().to_owned());
            } else if t.starts_with("- name:") {
                owner = None;
            }
            owner.clone()
        })
        .collect()
}

/// Rules whose lines differ between `a` and `b` (same line count required), named as in `a`.
fn changed_rules(a: &str, b: &str) -> BTreeSet<Option<String>> {
    changed_rule_names(a, b)
        .into_iter()
        .map(|(old, _)| old)
        .collect()
}

/// (name in `a`, name in `b`) of every rule whose lines differ.
fn changed_rule_names(a: &str, b: &str) -> BTreeSet<(Option<String>, Option<String>)> {
    let (la, lb): (Vec<_>, Vec<_>) = (a.lines().collect(), b.lines().collect());
    assert_eq!(
        la.len(),
        lb.len(),
        "an override changed the number of lines"
    );
    let (oa, ob) = (owner_of_lines(a), owner_of_lines(b));
    la.iter()
        .zip(&lb)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| (oa[i].clone(), ob[i].clone()))
        .collect()
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}:\n  shipped:  {x}\n  rendered: {y}", i + 1);
        }
    }
    format!(
        "lengths differ ({} vs {} lines)",
        a.lines().count(),
        b.lines().count()
    )
}

#[test]
fn shipped_rules_are_the_rendered_template() {
    let want = render(&[]).expect("the defaults render");
    let path = root().join(rules::SHIPPED_PATH);
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have == want {
        return;
    }
    if std::env::var_os("UPDATE_RULES").is_some() {
        std::fs::write(&path, &want).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    panic!(
        "{} is not render(&[]) of {}.tmpl ({}).\nRegenerate it with: {REGENERATE}",
        rules::SHIPPED_PATH,
        rules::SHIPPED_PATH,
        first_difference(&have, &want)
    );
}

#[test]
fn every_parameter_is_used_and_documented() {
    let readme = read("alerts/README.md");
    let mut names = BTreeSet::new();
    for p in parameters() {
        assert!(names.insert(p.name), "parameter {} listed twice", p.name);
        assert!(
            rules::TEMPLATE.contains(&format!("{{{{ {} }}}}", p.name))
                || rules::TEMPLATE.contains(&format!("{{{{ {} | seconds }}}}", p.name)),
            "parameter {} is not used in the template",
            p.name
        );
        // A `|` inside a Markdown table cell is written `\|`.
        let row = format!("| `{}` | `{}` |", p.name, p.default.replace('|', "\\|"));
        assert!(
            readme.contains(&row),
            "alerts/README.md has no row starting {row}"
        );
        assert!(!p.description.is_empty());
    }
    let rendered = render(&[]).unwrap();
    for p in parameters() {
        assert!(
            !rendered.contains(&format!("{{{{ {}", p.name)),
            "placeholder {} left in the output",
            p.name
        );
    }
}

/// A valid value different from the default, per kind.
fn other_value(p: &rules::Parameter) -> &'static str {
    match p.kind {
        Kind::Window if p.name == "source_silent_expected_within" => "2d",
        Kind::Window => "13m",
        Kind::Duration => "3m",
        Kind::Ratio => "0.37",
        Kind::Number => "7",
        Kind::Severity if p.default == "critical" => "warning",
        Kind::Severity => "critical",
        Kind::Reasons => "error|timeout",
        Kind::Job => "cms-cdr",
        Kind::Url => "https://wiki.example.com/uc/cdr-runbooks",
    }
}

/// The recording rules `alerts` read, directly or through other recording rules.
fn recorded_inputs(text: &str, alerts: &[&str]) -> BTreeSet<String> {
    let all = rules_of(text);
    let mut todo: Vec<String> = alerts.iter().map(|a| a.to_string()).collect();
    let mut seen = BTreeSet::new();
    while let Some(name) = todo.pop() {
        let Some(r) = all.iter().find(|r| r.name == name) else {
            continue;
        };
        for n in series_names(&r.expr()) {
            if n.contains(':') && seen.insert(n.clone()) {
                todo.push(n);
            }
        }
    }
    seen
}

#[test]
fn overrides_change_exactly_the_intended_values() {
    let base = render(&[]).unwrap();

    // The e2e test's use: a short `for` on CdrLowMos (tenant scope only).
    let short = render_ok(&[("low_mos_for", "30s")]);
    assert_eq!(
        changed_rules(&base, &short),
        BTreeSet::from([Some("CdrLowMos".to_owned())])
    );
    let scoped = |text: &str, scope: &str| {
        rules_of(text)
            .into_iter()
            .find(|r| r.name == "CdrLowMos" && r.field("scope").as_deref() == Some(scope))
            .unwrap_or_else(|| panic!("no CdrLowMos with scope {scope}"))
    };
    let low = scoped(&short, "tenant");
    assert_eq!(low.field("for").as_deref(), Some("30s"));
    assert_eq!(base.matches("for: 30s").count(), 0);
    assert_eq!(short.matches("for: 30s").count(), 1);
    assert_eq!(scoped(&short, "node").field("for").as_deref(), Some("10m"));

    // A threshold lands in the expression and the description, nowhere else.
    let share = render_ok(&[("low_mos_share", "0.25")]);
    let low = scoped(&share, "tenant");
    assert!(low.expr().contains("> 0.25\n"), "{}", low.expr());
    assert!(!scoped(&share, "node").expr().contains("0.25"));
    assert!(low
        .folded("description")
        .unwrap()
        .contains("humanizePercentage \"0.25\""));

    // Durations used in arithmetic are rendered in seconds.
    let silent = render_ok(&[("source_silent_after", "90m")]);
    let r = rules_of(&silent)
        .into_iter()
        .find(|r| r.name == "CdrSourceSilent")
        .unwrap();
    assert!(r.expr().contains("> 5400)"), "{}", r.expr());
    assert!(r.expr().contains("[90m] offset 1w"), "{}", r.expr());

    // A later override of the same key wins; decimals are normalised.
    let twice = render_ok(&[("low_mos_min_legs", "3"), ("low_mos_min_legs", "020")]);
    assert!(
        twice.contains("(tenant:call_leg_mos_scored:increase15m >= 20)"),
        "{twice}"
    );

    // Recording rules no alert reads (for the dashboards), with their template text.
    let templated = rules_of(rules::TEMPLATE);
    let shipped = rules_of(&base);
    assert_eq!(templated.len(), shipped.len());
    let read_by_alerts = recorded_inputs(&base, ALERTS);
    let dashboard_only: Vec<(&str, String)> = shipped
        .iter()
        .zip(&templated)
        .filter(|(r, _)| !r.alert && !read_by_alerts.contains(&r.name))
        .map(|(r, t)| (r.name.as_str(), t.lines.join("\n")))
        .collect();
    assert!(
        dashboard_only
            .iter()
            .any(|(n, _)| *n == "cms:call_leg_end_reason:abnormal"),
        "{dashboard_only:?}"
    );

    // Every parameter: changing it changes only its own alert and the recording rules that
    // alert reads (or, for a window, that are named after it; or a dashboards' rule that
    // names the parameter).
    for p in parameters() {
        let v = other_value(p);
        let out = render_ok(&[(p.name, v)]);
        assert_ne!(out, base, "{} had no effect", p.name);
        let changed = changed_rule_names(&base, &out);
        let allowed: Vec<&str> = if p.alert == "all" {
            ALERTS.to_vec()
        } else {
            p.alert.split(", ").collect()
        };
        let feeding = recorded_inputs(&base, &allowed);
        for (old, new) in &changed {
            let ok = match (old, new) {
                (Some(name), _) if allowed.contains(&name.as_str()) || feeding.contains(name) => {
                    true
                }
                (Some(name), _)
                    if dashboard_only
                        .iter()
                        .any(|(n, t)| n == name && t.contains(&format!("{{{{ {} ", p.name))) =>
                {
                    true
                }
                // A recording rule named after this window (e.g. for dashboards only).
                (Some(_), Some(renamed)) => p.kind == Kind::Window && renamed.ends_with(v),
                _ => false,
            };
            assert!(ok, "{}={v} changed rule {old:?}", p.name);
        }
    }
}

#[test]
fn unknown_keys_and_bad_values_are_errors() {
    match render(&set(&[("low_mos_treshold", "0.2")])) {
        Err(e @ RulesError::UnknownParameter { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("`low_mos_treshold`"), "{msg}");
            assert!(msg.contains("low_mos_share"), "{msg}");
        }
        other => panic!("unknown key accepted: {other:?}"),
    }
    let bad: &[(&str, &str)] = &[
        ("low_mos_for", "5"),
        ("low_mos_for", "five minutes"),
        ("low_mos_for", "1.5m"),
        ("low_mos_for", "-5m"),
        ("low_mos_window", "0m"),
        ("low_mos_window", ""),
        ("low_mos_window", "15m]"),
        ("low_mos_share", "1.5"),
        ("low_mos_share", "10%"),
        ("low_mos_share", "-0.1"),
        ("low_mos_share", "NaN"),
        ("low_mos_min_legs", "ten"),
        ("low_mos_min_legs", "1e3"),
        ("low_mos_severity", "page"),
        ("abnormal_ends_reasons", "error|"),
        ("abnormal_ends_reasons", "error\"}|x"),
        ("abnormal_ends_reasons", ".*"),
        ("exporter_job", "cdr\"exporter"),
        ("exporter_job", ""),
        ("runbook_url", "wiki/runbooks"),
        ("runbook_url", "https://wiki.example.com/a b"),
        ("runbook_url", "https://wiki.example.com/x#y"),
        ("source_silent_expected_within", "30m"),
    ];
    for (k, v) in bad {
        match render(&set(&[(k, v)])) {
            Err(e @ RulesError::InvalidValue { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("`{k}`")), "{msg}");
                assert!(msg.contains("expected"), "{msg}");
            }
            other => panic!("{k}={v:?} accepted: {:?}", other.map(|_| "rendered")),
        }
    }
    assert_eq!(
        rules::parse_override(" low_mos_for = 30s "),
        Ok(("low_mos_for".to_owned(), "30s".to_owned()))
    );
    for arg in ["low_mos_for", "=30s", ""] {
        assert!(
            matches!(
                rules::parse_override(arg),
                Err(RulesError::MalformedOverride { .. })
            ),
            "{arg:?}"
        );
    }
}

#[test]
fn every_alert_is_complete_and_has_a_runbook() {
    let text = render(&[]).unwrap();
    let all = rules_of(&text);
    let alerts: Vec<&Rule> = all.iter().filter(|r| r.alert).collect();
    let names: Vec<&str> = alerts.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ALERTS, "alert names are fixed");
    let runbooks = read("docs/runbooks.md");
    let headings: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_owned())
        .collect();
    let base = parameters()
        .iter()
        .find(|p| p.name == "runbook_url")
        .unwrap()
        .default;
    let grafana = parameters()
        .iter()
        .find(|p| p.name == "grafana_url")
        .unwrap()
        .default;
    let uids = dashboard_uids();
    let tested = tested_alert_labels();
    for r in alerts {
        let sev = r.field("severity").unwrap_or_default();
        assert!(
            sev == "critical" || sev == "warning",
            "{}: severity {sev:?}",
            r.name
        );
        let summary = r.field("summary").unwrap_or_default();
        assert!(
            !summary.is_empty() && !summary.contains("{{"),
            "{}: summary must be static: {summary:?}",
            r.name
        );
        // The monitoring-mixin style: a sentence.
        assert!(
            summary.starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_lowercase())
                && summary.ends_with('.'),
            "{}: summary must be a sentence: {summary:?}",
            r.name
        );
        let desc = r.folded("description").unwrap_or_default();
        assert!(
            desc.contains("$value"),
            "{}: description without $value",
            r.name
        );
        assert!(
            desc.contains("$labels."),
            "{}: description without labels",
            r.name
        );
        // Whoever is affected is named: every label the promtool tests see on the alert (per
        // scope where one name has several rules).
        let key = match r.field("scope") {
            Some(scope) => format!("{}{{scope={scope}}}", r.name),
            None => r.name.clone(),
        };
        let labels = tested.get(&key).cloned().unwrap_or_default();
        assert!(
            labels.contains("job"),
            "{}: alerts carry job (no promtool test shows it: {labels:?})",
            r.name
        );
        for label in [
            "tenant",
            "call_bridge",
            "node",
            "source",
            "instance",
            "job",
            "reason",
            "label",
        ] {
            if labels.contains(label) {
                assert!(
                    desc.contains(&format!("$labels.{label}")),
                    "{}: the description must name $labels.{label}",
                    r.name
                );
            }
        }
        let dash = r.field("dashboard_url").unwrap_or_default();
        let uid = dash
            .strip_prefix(&format!("{grafana}/d/"))
            .and_then(|rest| rest.split('?').next())
            .unwrap_or_default();
        assert!(
            uids.contains(uid),
            "{}: dashboard_url {dash:?} is not {grafana}/d/<one of {uids:?}>",
            r.name
        );
        assert!(
            dash.contains("var-job={{ $labels.job | urlquery }}"),
            "{}: dashboard_url must select the alert's job: {dash:?}",
            r.name
        );
        let anchor = r.name.to_lowercase();
        assert_eq!(
            r.field("runbook_url").as_deref(),
            Some(format!("{base}#{anchor}").as_str()),
            "{}: runbook_url",
            r.name
        );
        assert!(
            headings.contains(&r.name),
            "docs/runbooks.md has no `## {}` section (anchor #{anchor})",
            r.name
        );
        assert!(r.field("for").is_some(), "{}: no for", r.name);
    }
}

/// Label names of the alerts expected by the promtool tests (alerts/tests/*.yml), per alert
/// (`Name{scope=x}` for the alerts that carry a scope label).
fn tested_alert_labels() -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut out: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let dir = root().join("alerts/tests");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let y: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        for t in y["tests"].as_sequence().into_iter().flatten() {
            for a in t["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = a["alertname"].as_str().unwrap().to_owned();
                for exp in a["exp_alerts"].as_sequence().into_iter().flatten() {
                    let key = match exp["exp_labels"]["scope"].as_str() {
                        Some(scope) => format!("{name}{{scope={scope}}}"),
                        None => name.clone(),
                    };
                    let entry = out.entry(key).or_default();
                    for k in exp["exp_labels"].as_mapping().into_iter().flatten() {
                        entry.insert(k.0.as_str().unwrap().to_owned());
                    }
                }
            }
        }
    }
    out
}

/// The uids of the shipped Grafana dashboards.
fn dashboard_uids() -> BTreeSet<String> {
    let dir = root().join("grafana/dashboards");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            v["uid"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// An HA pair (two exporters on one stream, same job, different instance) exposes every
/// cms_* series twice: each rule reading them takes the max over instances before it sums
/// (promtool tests in alerts/tests prove the values), and nothing about calls or quality is
/// grouped by instance.
#[test]
fn cms_rules_count_an_ha_pair_once() {
    let text = render(&[]).unwrap();
    let mut checked = 0;
    for r in rules_of(&text) {
        let expr = r.expr();
        let raw: Vec<String> = series_names(&expr)
            .into_iter()
            .filter(|n| n.starts_with("cms_"))
            .collect();
        if raw.is_empty() {
            continue;
        }
        checked += 1;
        if r.name == "cms:call_leg_end_reason:abnormal" {
            // Label sets only (1 per reason and exporter), joined on reason by the dashboards.
            continue;
        }
        let reads = expr.matches("cms_").count();
        let deduplicated = expr.matches("max without (instance) (").count();
        assert!(
            deduplicated >= reads,
            "{}: {reads} cms_* selector(s) but {deduplicated} `max without (instance)`:\n{expr}",
            r.name
        );
        assert!(
            !expr.contains("instance,") && !expr.contains(", instance"),
            "{}: groups cms_* series by instance:\n{expr}",
            r.name
        );
    }
    assert!(checked >= 9, "only {checked} rules read cms_* series");
}

/// FreeSWITCH (mod_xml_cdr tries its urls in turn) and Kamailio (one URL) send each CDR or
/// report to one exporter: with two exporters in a job, a switch that fails over has part of
/// its traffic on each. Rules over freeswitch_*/kamailio_* counters must add the exporters up
/// (`max without (instance)` would keep one part) and must not keep instance (one alert per
/// switch or node, not per exporter). sources.test.yml proves the values.
#[test]
fn sent_once_sources_are_summed_over_exporters() {
    let text = render(&[]).unwrap();
    let mut checked = 0;
    for r in rules_of(&text) {
        let expr = r.expr();
        let names = series_names(&expr);
        let sent_once: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("freeswitch_") || n.starts_with("kamailio_"))
            .collect();
        if sent_once.is_empty() {
            continue;
        }
        checked += 1;
        for line in expr
            .lines()
            .filter(|l| sent_once.iter().any(|n| l.contains(n.as_str())))
        {
            assert!(
                !line.contains("max without (instance)"),
                "{}: takes one exporter's copy of a sent-once source: {line}",
                r.name
            );
        }
        assert!(
            !expr.contains("instance,")
                && !expr.contains(", instance")
                && !expr.contains("by (instance"),
            "{}: keeps instance:\n{expr}",
            r.name
        );
        if names
            .iter()
            .all(|n| !n.starts_with("cms_") && !n.starts_with("cdr_exporter_"))
            && !expr.contains("_timestamp_seconds")
        {
            assert!(
                expr.contains("sum by (job, "),
                "{}: not summed over exporters:\n{expr}",
                r.name
            );
        }
    }
    assert!(
        checked >= 10,
        "only {checked} rules read freeswitch_*/kamailio_* series"
    );
}

/// Every sample name the exporter can expose (from the catalogue), histogram suffixes too.
fn exposed_metric_names() -> BTreeSet<String> {
    use cdr_exporter::metrics::{catalogue, Type};
    let mut names = BTreeSet::from(["up".to_owned()]);
    let all = catalogue::STORED
        .iter()
        .chain(catalogue::SCRAPED.iter().copied());
    for d in all {
        names.insert(d.name.to_owned());
        if d.kind == Type::Histogram {
            for s in ["_bucket", "_count", "_sum"] {
                names.insert(format!("{}{s}", d.name));
            }
        }
    }
    names
}

/// Identifiers in a PromQL expression that name series (string literals skipped).
fn series_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_str = false;
    let mut tok = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if in_str {
            in_str = c != '"';
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            tok.push(c);
            continue;
        }
        if !tok.is_empty() && !tok.starts_with(|c: char| c.is_ascii_digit()) {
            let t = std::mem::take(&mut tok);
            if t.contains(':')
                || t.starts_with("cms_")
                || t.starts_with("freeswitch_")
                || t.starts_with("kamailio_")
                || t.starts_with("cdr_exporter_")
                || t.starts_with("process_")
                || t == "up"
            {
                out.insert(t);
            }
        }
        tok.clear();
        in_str = c == '"';
    }
    out
}

#[test]
fn rules_use_only_metrics_the_exporter_exposes() {
    let exposed = exposed_metric_names();
    assert!(exposed.contains("cms_call_leg_mos_bucket"), "{exposed:?}");
    assert!(
        exposed.contains("cdr_exporter_sessions_total"),
        "{exposed:?}"
    );
    for pairs in [
        vec![],
        vec![("low_mos_window", "5m"), ("leg_ends_window", "1h")],
    ] {
        let text = render_ok(&pairs);
        let all = rules_of(&text);
        let recorded: BTreeSet<&str> = all
            .iter()
            .filter(|r| !r.alert)
            .map(|r| r.name.as_str())
            .collect();
        for r in &all {
            let names = series_names(&r.expr());
            assert!(!names.is_empty(), "{}: no series in {}", r.name, r.expr());
            for n in names {
                if n.contains(':') {
                    assert!(
                        recorded.contains(n.as_str()),
                        "{}: uses {n}, which no rule records",
                        r.name
                    );
                } else {
                    assert!(
                        exposed.contains(&n),
                        "{}: uses {n}, which the exporter does not expose",
                        r.name
                    );
                }
            }
            if !r.alert {
                let parts: Vec<&str> = r.name.split(':').collect();
                assert_eq!(parts.len(), 3, "{}: not level:metric:operations", r.name);
            }
        }
        // Recording rules are defined before use.
        let mut seen = BTreeSet::new();
        for r in &all {
            for n in series_names(&r.expr())
                .into_iter()
                .filter(|n| n.contains(':'))
            {
                assert!(
                    seen.contains(&n),
                    "{} uses {n} before it is recorded",
                    r.name
                );
            }
            if !r.alert {
                seen.insert(r.name.clone());
            }
        }
    }
}

fn need_tool(tool: &str, package: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`{tool}` is not installed: the rule tests need it and never skip. \
         Install it with `apt-get install {package}` (Debian)."
    );
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_alerts_script_passes() {
    need_tool("promtool", "prometheus");
    need_tool("amtool", "prometheus-alertmanager");
    run(
        Command::new("bash")
            .arg("scripts/check-alerts.sh")
            .current_dir(root()),
        "scripts/check-alerts.sh (promtool check/test rules, amtool check-config and routes)",
    );
}

#[test]
fn rendered_overrides_pass_promtool() {
    need_tool("promtool", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut variants: Vec<Vec<(&str, &str)>> = parameters()
        .iter()
        .map(|p| vec![(p.name, other_value(p))])
        .collect();
    // What the end-to-end test does: every `for` zero, short windows.
    variants.push(
        parameters()
            .iter()
            .filter(|p| p.kind == Kind::Duration)
            .map(|p| (p.name, "0s"))
            .chain([
                ("low_mos_window", "2m"),
                ("leg_ends_window", "2m"),
                ("records_missing_window", "2m"),
                ("rejecting_window", "1m"),
                ("low_mos_min_legs", "1"),
            ])
            .collect(),
    );
    for (i, v) in variants.iter().enumerate() {
        let p: &Path = &dir.path().join(format!("variant{i}.rules.yml"));
        std::fs::write(p, render_ok(v)).unwrap();
        files.push(p.to_owned());
    }
    run(
        Command::new("promtool")
            .args(["check", "rules", "--lint=all", "--lint-fatal"])
            .args(&files),
        "promtool check rules on rendered overrides",
    );
}
