//! Lint for what we ship next to the exporter: the Grafana dashboards in `grafana/dashboards`,
//! their provisioning files in `grafana/provisioning`, and the Prometheus rule files in
//! `alerts/`. Everything is parsed for real (serde_json, serde_yaml, promql-parser) and every
//! metric a query names is looked up in the catalogue the exporter itself exposes: an
//! [`cdr_exporter::App`] built from the default config, its text 0.0.4 exposition (`# TYPE`
//! lines), and the label names its samples carry after the CDR fixtures have been applied.
//!
//! Dashboard rules (the checks of grafana's dashboard-linter, plus ours):
//! - schemaVersion >= 39, `"id": null`, a fixed unique `uid`, no `__inputs` / `${DS_...}`;
//! - a `datasource` variable (type datasource, query prometheus) and `job`, `instance`,
//!   `call_bridge`, `tenant` query variables (`label_values`, multi, include All as `.*`,
//!   chained on job and instance);
//! - every panel (rows' nested panels too), target and annotation uses the datasource
//!   `{"type":"prometheus","uid":"${datasource}"}`; every non-row panel has a description and a
//!   unit; MOS panels carry the MOS bands as thresholds;
//! - every expression parses (promql-parser, after substituting Grafana variables), uses only
//!   functions Prometheus 2.42 has, names only exposed metrics, filters every selector on
//!   `job=~"$job"`, `instance=~"$instance"` and, where the metric has them,
//!   `call_bridge=~"$call_bridge"` and `tenant=~"$tenant"` (and never on a label it lacks);
//! - rate/increase/irate windows are `$__rate_interval`, never hard-coded; instant targets
//!   (tables and bar gauges that summarise the dashboard's range) may also use `$__range`;
//! - readable at thousands of tenants: no expression returns one series per tenant unless a
//!   `topk`/`bottomk($topn, ...)` bounds it (N is the `topn` variable, default 10); such
//!   targets are instant, in a table sorted by its value or a bar gauge sorted worst first by
//!   `sort_desc`/`sort`;
//! - recording rules may be read only if the shipped rule files define them and their name
//!   holds no window (windows are rules parameters);
//! - counters (and histogram series) appear only as the range argument of
//!   rate/increase/irate/resets/changes, or where only their label sets count (absent(),
//!   absent_over_time/present_over_time, the right operand of and/unless, and the new-series
//!   idiom `x unless x offset d`); gauges never inside rate/increase/irate.
//!
//! Rule files get the same expression checks (names, functions, counters, gauges), with the
//! names their `record:` rules define allowed, but no Grafana variables or label filters.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, LabelModifier, VectorSelector};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// The catalogue: what the exporter exposes
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// `_bucket`, `_sum`, `_count` of a histogram: cumulative, so treated like counters.
    HistogramSeries,
    /// untyped, summary parts, and names defined by recording rules.
    Other,
}

struct Catalogue {
    kinds: BTreeMap<String, Kind>,
    /// Label names (without `le`) per series name, for the names that have samples once the
    /// fixtures have been applied. A name missing here is not label-checked.
    labels: BTreeMap<String, BTreeSet<String>>,
}

/// Series Prometheus adds itself for every target (job and instance labels only).
const PROMETHEUS_TARGET_SERIES: &[&str] = &[
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];
/// Series Prometheus writes for alerting rules (allowed in rule files only).
const PROMETHEUS_ALERT_SERIES: &[&str] = &["ALERTS", "ALERTS_FOR_STATE"];

impl Catalogue {
    fn kind(&self, name: &str) -> Option<Kind> {
        self.kinds.get(name).copied()
    }
}

/// `# TYPE` lines of a text 0.0.4 exposition.
fn kinds_from_exposition(text: &str) -> BTreeMap<String, Kind> {
    let mut kinds = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let (Some(name), Some(ty)) = (it.next(), it.next()) else {
            panic!("malformed TYPE line: {line}");
        };
        match ty {
            "counter" => {
                kinds.insert(name.to_owned(), Kind::Counter);
            }
            "gauge" => {
                kinds.insert(name.to_owned(), Kind::Gauge);
            }
            "histogram" => {
                for s in ["_bucket", "_sum", "_count"] {
                    kinds.insert(format!("{name}{s}"), Kind::HistogramSeries);
                }
            }
            "summary" => {
                for s in ["", "_sum", "_count"] {
                    kinds.insert(format!("{name}{s}"), Kind::Other);
                }
            }
            _ => {
                kinds.insert(name.to_owned(), Kind::Other);
            }
        }
    }
    kinds
}

/// Series name and label names of one text-format sample line.
fn sample_labels(line: &str) -> Option<(String, BTreeSet<String>)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = line[..end].to_owned();
    let mut labels = BTreeSet::new();
    if line[end..].starts_with('{') {
        let mut chars = line[end + 1..].chars();
        let mut key = String::new();
        loop {
            match chars.next()? {
                '}' => break,
                ',' | ' ' => {}
                '=' => {
                    if chars.next()? != '"' {
                        return None;
                    }
                    // The value, with backslash escapes.
                    loop {
                        match chars.next()? {
                            '\\' => {
                                chars.next()?;
                            }
                            '"' => break,
                            _ => {}
                        }
                    }
                    if key != "le" && key != "quantile" {
                        labels.insert(std::mem::take(&mut key));
                    }
                    key.clear();
                }
                c => key.push(c),
            }
        }
    }
    Some((name, labels))
}

fn catalogue() -> &'static Catalogue {
    static CAT: OnceLock<Catalogue> = OnceLock::new();
    CAT.get_or_init(|| {
        // A durable exporter (temp data dir): the journal's families are exposed too.
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let cfg = cdr_exporter::config::Config {
            data_dir: dir.path().to_owned(),
            ..cdr_exporter::config::Config::default()
        };
        let app = cdr_exporter::App::open(&cfg).expect("App::open with the default config");
        let text = app.state.exposition.encode_text();
        let mut kinds = kinds_from_exposition(&text);
        assert!(
            kinds.len() > 30,
            "the exporter exposes too few families:\n{text}"
        );
        for n in PROMETHEUS_TARGET_SERIES {
            kinds.insert((*n).to_owned(), Kind::Gauge);
        }

        // Label names come from samples: apply every fixture that parses (they share Call
        // Bridges and sessions, which also produces restarts, gaps and evictions).
        let dir = root().join("tests/fixtures");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "xml"))
            .collect();
        files.sort();
        let src = cdr_exporter::ingest::Origin {
            query_sender: Some("fixture"),
            peer: None,
        };
        for f in &files {
            let body = std::fs::read(f).unwrap();
            if let Ok(batch) = cdr_exporter::cdr::parse(&body) {
                app.pipeline.ingest().apply(&batch, &src, 1.7e9);
            }
        }
        // FreeSWITCH CDRs and rtpengine reports: their families' labels (switch, domain,
        // node, tenant) are checked like the CMS ones.
        let mut applied = (0, 0);
        for (sub, fs) in [("freeswitch", true), ("rtpengine", false)] {
            let dir = root().join("tests/fixtures").join(sub);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "xml" || x == "json"))
                .collect();
            files.sort();
            for f in &files {
                let body = std::fs::read(f).unwrap();
                if fs {
                    let ct = if f.extension().is_some_and(|x| x == "xml") {
                        "text/xml"
                    } else {
                        "application/json"
                    };
                    if let Ok(cdr) = cdr_exporter::freeswitch::parse(Some(ct), &body) {
                        app.pipeline.ingest().apply_freeswitch(&cdr, &src, 1.7e9);
                        applied.0 += 1;
                    }
                } else if let Ok(r) = cdr_exporter::rtpengine::parse(&body) {
                    app.pipeline.ingest().apply_rtpengine(&r, &src, 1.7e9);
                    applied.1 += 1;
                }
            }
        }
        assert!(
            applied.0 > 0 && applied.1 > 0,
            "no FreeSWITCH or rtpengine fixture applied: {applied:?}"
        );
        let text = app.state.exposition.encode_text();
        let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some((name, l)) = sample_labels(line) {
                labels.entry(name).or_default().extend(l);
            }
        }
        for n in PROMETHEUS_TARGET_SERIES {
            labels.insert((*n).to_owned(), BTreeSet::new());
        }
        Catalogue { kinds, labels }
    })
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// PromQL checks
// ---------------------------------------------------------------------------------------------

/// Functions of Prometheus 2.42 (the Debian package we test against). Anything newer, e.g.
/// `info`, `limitk`, `sort_by_label`, `double_exponential_smoothing`, fails here first.
const FUNCTIONS_2_42: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];
const AGGREGATIONS_2_42: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
/// Functions whose range argument is a counter's natural home.
const RATE_FUNCTIONS: &[&str] = &["rate", "increase", "irate"];
const COUNTER_RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "increase",
    "irate",
    "resets",
    "changes",
    "absent_over_time",
    "present_over_time",
];

/// What `$__rate_interval` becomes before parsing: a window nobody writes by hand, so a
/// rate over anything else is a hard-coded window.
const RATE_INTERVAL_SENTINEL: &str = "13m37s";
const RATE_INTERVAL: Duration = Duration::from_secs(13 * 60 + 37);

/// The dashboard variables every selector must be filtered by (label = variable name).
const FILTER_VARIABLES: &[&str] = &["job", "instance", "call_bridge", "tenant"];
/// Labels that are required only where the metric has them.
const OPTIONAL_FILTERS: &[&str] = &["call_bridge", "tenant"];

/// What `$__range` becomes: like the rate interval, a window nobody writes by hand.
const RANGE_SENTINEL: &str = "6h6m6s";
const RANGE: Duration = Duration::from_secs(6 * 3600 + 6 * 60 + 6);

fn var_sentinel(name: &str) -> String {
    format!("__grafana_var_{name}__")
}

/// A dashboard's template variables: every name, and the value of those that are numbers
/// (custom variables such as `topn`, which PromQL needs as numbers, e.g. in topk).
#[derive(Default)]
struct Vars {
    names: BTreeSet<String>,
    numbers: BTreeMap<String, String>,
}

impl Vars {
    fn of(list: &[&Value]) -> Vars {
        let mut v = Vars::default();
        for var in list {
            let name = str_of(var, "name").to_owned();
            let current = var.pointer("/current/value").and_then(Value::as_str);
            if str_of(var, "type") == "custom" {
                if let Some(n) = current.filter(|c| c.parse::<f64>().is_ok()) {
                    v.numbers.insert(name.clone(), n.to_owned());
                }
            }
            v.names.insert(name);
        }
        v
    }

    fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

/// Replaces Grafana variables by values promql-parser accepts. `vars` are the dashboard's
/// template variables (numeric ones become their value, the others a recognisable literal);
/// built-in intervals become durations, `$__rate_interval` and `$__range` sentinel windows.
fn substitute(expr: &str, vars: &Vars) -> Result<String, String> {
    if let Some(i) = expr.find("[[") {
        if expr[i + 2..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return Err("deprecated [[var]] syntax".into());
        }
    }
    let mut out = String::with_capacity(expr.len());
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let c = expr[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let (name, next) = if b.get(i + 1) == Some(&b'{') {
            let close = expr[i..]
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ at {i}"))?;
            let inner = &expr[i + 2..i + close];
            (
                inner.split(':').next().unwrap_or("").to_owned(),
                i + close + 1,
            )
        } else {
            let n: String = expr[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let len = n.len();
            (n, i + 1 + len)
        };
        let value = match name.as_str() {
            "__rate_interval" => RATE_INTERVAL_SENTINEL.to_owned(),
            "__interval" => "1m".into(),
            "__interval_ms" => "60000".into(),
            "__range" => RANGE_SENTINEL.to_owned(),
            "__range_s" => "3600".into(),
            "__range_ms" => "3600000".into(),
            "" => return Err(format!("lone $ at offset {i}")),
            // label_replace's capture references ($1): Grafana leaves names that are not
            // variables as they are.
            n if n.chars().all(|c| c.is_ascii_digit()) => format!("${n}"),
            n if vars.numbers.contains_key(n) => vars.numbers[n].clone(),
            n if vars.contains(n) => var_sentinel(n),
            n => return Err(format!("unknown variable ${n}")),
        };
        out.push_str(&value);
        i = next;
    }
    Ok(out)
}

/// Which checks apply to an expression.
#[derive(Clone, Copy)]
struct Rules {
    /// cms_* series are deduplicated over the copies of an HA pair before anything adds them.
    dedup: bool,
    /// Selectors must carry the dashboard's job/instance/call_bridge/tenant filters.
    label_filters: bool,
    /// rate/increase/irate must use `$__rate_interval`.
    rate_interval: bool,
    /// Counters only inside rate & co, gauges never inside rate/increase/irate.
    types: bool,
}

const DASHBOARD_RULES: Rules = Rules {
    dedup: true,
    label_filters: true,
    rate_interval: true,
    types: true,
};
const RULE_FILE_RULES: Rules = Rules {
    dedup: true,
    label_filters: false,
    rate_interval: false,
    types: true,
};
const VARIABLE_RULES: Rules = Rules {
    dedup: false,
    label_filters: false,
    rate_interval: false,
    types: false,
};

struct Checker<'a> {
    cat: &'a Catalogue,
    /// Names defined by recording rules (allowed, type unknown).
    recorded: &'a BTreeSet<String>,
    /// Extra names allowed in this context (e.g. ALERTS in rule files).
    extra: &'a [&'a str],
    rules: Rules,
    /// An instant target (a table or bar gauge over the dashboard's range): `$__range` is a
    /// window too.
    instant: bool,
    /// Where we are, for messages.
    at: String,
    problems: Vec<String>,
    /// For each enclosing aggregation, innermost last: whether it keeps the copies of an HA
    /// pair apart (`max without (instance)`, `min/max by (...)` without instance, or `by`
    /// with instance).
    aggregations: Vec<bool>,
}

/// How a selector is used by its parent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use<'f> {
    /// A plain instant vector (value used as is).
    Bare,
    /// The range argument of this function.
    RangeOf(&'f str),
    /// Only the label sets count: `absent(x)`, the right operand of and/unless, the
    /// new-series idiom `x unless x offset d`.
    Presence,
}

impl<'a> Checker<'a> {
    fn problem(&mut self, msg: String) {
        self.problems.push(format!("{}: {msg}", self.at));
    }

    fn check(&mut self, expr: &str, vars: &Vars) {
        let text = if self.rules.label_filters || self.rules.rate_interval {
            match substitute(expr, vars) {
                Ok(t) => t,
                Err(e) => return self.problem(format!("{e} in `{expr}`")),
            }
        } else {
            expr.to_owned()
        };
        let ast = match parser::parse(&text) {
            Ok(ast) => ast,
            Err(e) => return self.problem(format!("PromQL parse error {e:?} in `{text}`")),
        };
        self.walk(&ast);
        if self.rules.label_filters {
            // A dashboard: thousands of tenants must not become thousands of lines.
            if self.per_tenant(&ast) {
                self.problem(format!(
                    "returns one series per tenant (up to labels.max_tenants): bound it with \
                     topk/bottomk($topn, ...) in a table or bar gauge: `{expr}`"
                ));
            }
            let flat: String = expr.split_whitespace().collect();
            let limits = flat.matches("topk(").count() + flat.matches("bottomk(").count();
            let by_n = flat.matches("topk($topn,").count() + flat.matches("bottomk($topn,").count();
            if limits != by_n {
                self.problem(format!(
                    "topk/bottomk must take the dashboard variable $topn as N: `{expr}`"
                ));
            }
        }
    }

    /// Whether `e` returns a series per tenant that no topk/bottomk bounds.
    fn per_tenant(&self, e: &Expr) -> bool {
        // FreeSWITCH domains are tenants too (up to labels.max_domains).
        let has = |l: &promql_parser::label::Labels| {
            l.labels.iter().any(|x| x == "tenant" || x == "domain")
        };
        match e {
            Expr::Aggregate(a) => {
                let op = a.op.to_string().to_lowercase();
                if op == "topk" || op == "bottomk" {
                    return false;
                }
                match &a.modifier {
                    Some(LabelModifier::Include(l)) => has(l) && self.per_tenant(&a.expr),
                    Some(LabelModifier::Exclude(l)) => !has(l) && self.per_tenant(&a.expr),
                    None => false,
                }
            }
            Expr::Binary(b) => {
                let op = b.op.to_string().to_lowercase();
                let (l, r) = (self.per_tenant(&b.lhs), self.per_tenant(&b.rhs));
                let matching = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
                match op.as_str() {
                    // `x and on (tenant) topk(...)` keeps only the bounded tenants.
                    "and" => l && !is_topk(&b.rhs),
                    "unless" => l,
                    "or" => l || r,
                    _ => match matching {
                        Some(LabelModifier::Include(on)) => has(on) && (l || r),
                        Some(LabelModifier::Exclude(ign)) => !has(ign) && (l || r),
                        None => l || r,
                    },
                }
            }
            Expr::Call(c) => {
                let f = c.func.name;
                !matches!(
                    f,
                    "scalar" | "vector" | "time" | "absent" | "absent_over_time"
                ) && c.args.args.iter().any(|a| self.per_tenant(a))
            }
            Expr::Paren(p) => self.per_tenant(&p.expr),
            Expr::Unary(u) => self.per_tenant(&u.expr),
            Expr::Subquery(s) => self.per_tenant(&s.expr),
            Expr::VectorSelector(vs) => self.selects_tenants(vs),
            Expr::MatrixSelector(ms) => self.selects_tenants(&ms.vs),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => false,
        }
    }

    fn selects_tenants(&self, vs: &VectorSelector) -> bool {
        let name = vs.name.clone().unwrap_or_default();
        self.cat
            .labels
            .get(&name)
            .is_some_and(|l| l.contains("tenant") || l.contains("domain"))
    }

    fn walk(&mut self, e: &Expr) {
        match e {
            Expr::Aggregate(a) => {
                let op = a.op.to_string().to_lowercase();
                if !AGGREGATIONS_2_42.contains(&op.as_str()) {
                    self.problem(format!(
                        "aggregation {op} does not exist in Prometheus 2.42"
                    ));
                }
                if let Some(p) = &a.param {
                    self.walk(p);
                }
                let instance =
                    |l: &promql_parser::label::Labels| l.labels.iter().any(|x| x == "instance");
                let pick = op == "max" || op == "min";
                let dedups = match &a.modifier {
                    Some(LabelModifier::Exclude(l)) => pick && instance(l),
                    Some(LabelModifier::Include(l)) => instance(l) || pick,
                    None => false,
                };
                self.aggregations.push(dedups);
                self.walk(&a.expr);
                self.aggregations.pop();
            }
            Expr::Unary(u) => self.walk(&u.expr),
            Expr::Binary(b) => {
                let op = b.op.to_string().to_lowercase();
                if let (true, Some(rhs)) = (op == "and" || op == "unless", bare_selector(&b.rhs)) {
                    // The right operand of and/unless only contributes label sets.
                    self.selector(rhs, Use::Presence, None);
                    // `x unless x offset d`: series born since d, valued at their first
                    // sample (what increase() cannot see for a series created non-zero).
                    match bare_selector(&b.lhs) {
                        Some(lhs)
                            if op == "unless"
                                && lhs.name.is_some()
                                && lhs.name == rhs.name
                                && rhs.offset.is_some()
                                && lhs.offset.is_none() =>
                        {
                            self.selector(lhs, Use::Presence, None)
                        }
                        _ => self.walk(&b.lhs),
                    }
                } else {
                    self.walk(&b.lhs);
                    self.walk(&b.rhs);
                }
            }
            Expr::Paren(p) => self.walk(&p.expr),
            Expr::Subquery(s) => self.walk(&s.expr),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
            Expr::VectorSelector(vs) => self.selector(vs, Use::Bare, None),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs, Use::Bare, Some(ms.range)),
            Expr::Call(c) => {
                let f = c.func.name;
                if !FUNCTIONS_2_42.contains(&f) {
                    self.problem(format!("function {f}() does not exist in Prometheus 2.42"));
                }
                for arg in &c.args.args {
                    match &**arg {
                        Expr::MatrixSelector(ms) => {
                            self.selector(&ms.vs, Use::RangeOf(f), Some(ms.range))
                        }
                        Expr::VectorSelector(vs) if f == "absent" => {
                            self.selector(vs, Use::Presence, None)
                        }
                        other => {
                            if RATE_FUNCTIONS.contains(&f) && self.rules.rate_interval {
                                if let Expr::Subquery(_) = other {
                                    self.problem(format!(
                                        "{f}() over a subquery; use {f}(metric[$__rate_interval])"
                                    ));
                                }
                            }
                            self.walk(other)
                        }
                    }
                }
            }
        }
    }

    /// Metric names a selector can match: its name and `__name__` matchers.
    fn names(&mut self, vs: &VectorSelector) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(n) = &vs.name {
            names.push(n.clone());
        }
        let all = vs
            .matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten());
        for m in all.filter(|m| m.name == "__name__") {
            match &m.op {
                MatchOp::Equal => names.push(m.value.clone()),
                MatchOp::Re(_) => {
                    let alts: Vec<&str> = m.value.split('|').collect();
                    let plain = |s: &str| {
                        !s.is_empty()
                            && s.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                    };
                    if alts.iter().all(|a| plain(a)) {
                        names.extend(alts.iter().map(|a| (*a).to_owned()));
                    } else {
                        self.problem(format!(
                            "__name__=~\"{}\" is not a list of metric names; cannot verify it",
                            m.value
                        ));
                    }
                }
                _ => self.problem(format!(
                    "negative __name__ matcher {}; cannot verify which metrics it selects",
                    m.value
                )),
            }
        }
        if names.is_empty() {
            self.problem(format!("selector {vs} names no metric"));
        }
        names
    }

    fn selector(&mut self, vs: &VectorSelector, usage: Use<'_>, range: Option<Duration>) {
        if !vs.matchers.or_matchers.is_empty() {
            self.problem(format!(
                "selector {vs} uses `or` between matchers (Prometheus 3 only)"
            ));
        }
        if let (Use::RangeOf(f), Some(r)) = (usage, range) {
            if self.rules.rate_interval && RATE_FUNCTIONS.contains(&f) && r != RATE_INTERVAL {
                if r == RANGE && !self.instant {
                    self.problem(format!(
                        "{f}() over $__range in a range query {vs}: only instant targets \
                         summarise the whole range; use [$__rate_interval]"
                    ));
                } else if r != RANGE {
                    self.problem(format!(
                        "{f}() over a hard-coded window {} in {vs}; use [$__rate_interval]",
                        fmt_duration(r)
                    ));
                }
            }
        }
        for name in self.names(vs) {
            let kind = if let Some(k) = self.cat.kind(&name) {
                k
            } else if self.recorded.contains(&name) || self.extra.contains(&name.as_str()) {
                // A window in a recorded name is a rules parameter: the dashboard would break
                // when an operator renders the rules with another one.
                let op = name.rsplit(':').next().unwrap_or("");
                let windowed = op.ends_with(|c: char| "smhdwy".contains(c))
                    && op
                        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                        .ends_with(|c: char| c.is_ascii_digit());
                if self.rules.label_filters && windowed {
                    self.problem(format!(
                        "recorded series {name} is named after a rules window; dashboards \
                         must compute it with $__rate_interval or read a rule without a window"
                    ));
                }
                Kind::Other
            } else {
                self.problem(format!("metric {name} is not exposed by cdr-exporter"));
                continue;
            };
            if self.rules.types {
                self.types(&name, kind, usage);
            }
            // An HA pair exposes every series twice; presence-only uses add nothing up.
            if self.rules.dedup
                && name.starts_with("cms_")
                && usage != Use::Presence
                && self.aggregations.last() != Some(&true)
            {
                self.problem(format!(
                    "{name} is not deduplicated over the exporters of an HA pair: the \
                     aggregation nearest to it must be `max without (instance)` (or keep \
                     instance): {vs}"
                ));
            }
            if self.rules.label_filters {
                self.filters(&name, vs);
            }
        }
    }

    fn types(&mut self, name: &str, kind: Kind, usage: Use<'_>) {
        match (kind, usage) {
            (Kind::Counter | Kind::HistogramSeries, Use::RangeOf(f))
                if COUNTER_RANGE_FUNCTIONS.contains(&f) => {}
            (Kind::Counter | Kind::HistogramSeries, Use::Presence) => {}
            (Kind::Counter | Kind::HistogramSeries, Use::RangeOf(f)) => self.problem(format!(
                "counter {name} inside {f}(); counters belong in rate/increase/irate/resets/changes"
            )),
            (Kind::Counter | Kind::HistogramSeries, Use::Bare) => self.problem(format!(
                "counter {name} used outside rate/increase/irate/resets/changes"
            )),
            (Kind::Gauge, Use::RangeOf(f)) if RATE_FUNCTIONS.contains(&f) => self.problem(format!(
                "gauge {name} inside {f}(); use deriv/delta or the gauge itself"
            )),
            _ => {}
        }
    }

    fn filters(&mut self, name: &str, vs: &VectorSelector) {
        let matcher = |label: &str| -> Option<&Matcher> {
            vs.matchers.matchers.iter().find(|m| m.name == label)
        };
        let cat = self.cat;
        let has_label = cat.labels.get(name);
        for var in FILTER_VARIABLES {
            let required = match &has_label {
                _ if !OPTIONAL_FILTERS.contains(var) => true,
                Some(labels) => labels.contains(*var),
                None => false,
            };
            let m = matcher(var);
            let ok = m.is_some_and(|m| {
                matches!(m.op, MatchOp::Re(_)) && m.value.contains(&var_sentinel(var))
            });
            if required && !ok {
                self.problem(format!(
                    "selector for {name} does not filter {var}=~\"${var}\": {vs}"
                ));
            }
            if OPTIONAL_FILTERS.contains(var) {
                if let (Some(labels), Some(_)) = (&has_label, m) {
                    if !labels.contains(*var) {
                        self.problem(format!(
                            "selector filters on {var}, which {name} does not have \
                             (it would select nothing once a {var} is chosen): {vs}"
                        ));
                    }
                }
            }
        }
    }
}

/// Whether `e` is a topk/bottomk, through parentheses and sort/sort_desc.
fn is_topk(e: &Expr) -> bool {
    match e {
        Expr::Paren(p) => is_topk(&p.expr),
        Expr::Call(c) if matches!(c.func.name, "sort" | "sort_desc") => {
            c.args.args.first().is_some_and(|a| is_topk(a))
        }
        Expr::Aggregate(a) => {
            matches!(a.op.to_string().to_lowercase().as_str(), "topk" | "bottomk")
        }
        _ => false,
    }
}

/// `e` if it is an instant vector selector, through parentheses.
fn bare_selector(e: &Expr) -> Option<&VectorSelector> {
    match e {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::Paren(p) => bare_selector(&p.expr),
        _ => None,
    }
}

fn fmt_duration(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

// ---------------------------------------------------------------------------------------------
// Dashboard checks
// ---------------------------------------------------------------------------------------------

fn expected_datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// Every panel, rows' nested panels included, depth first.
fn all_panels(panels: &[Value]) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in panels {
        out.push(p);
        if let Some(nested) = p.get("panels").and_then(Value::as_array) {
            out.extend(all_panels(nested));
        }
    }
    out
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The text of a variable's query (a string, or the object of the Prometheus query editor).
fn variable_query(v: &Value) -> &str {
    match v.get("query") {
        Some(Value::String(s)) => s,
        Some(Value::Object(o)) => o.get("query").and_then(Value::as_str).unwrap_or(""),
        _ => "",
    }
}

/// The MOS bands of `shared/spec/voip-mos-notes.txt` and the README.
const MOS_BANDS: [f64; 4] = [2.6, 3.1, 3.6, 4.3];

/// All problems of one dashboard. `file` names it in messages; `recorded` are the names the
/// shipped recording rules define.
fn check_dashboard(
    file: &str,
    d: &Value,
    cat: &Catalogue,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    let mut own = Vec::new();
    let mut problems = Vec::new();
    let mut p = |m: String| own.push(format!("{file}: {m}"));

    let schema = d.get("schemaVersion").and_then(Value::as_u64).unwrap_or(0);
    if schema < 39 {
        p(format!("schemaVersion {schema} < 39"));
    }
    if d.get("id") != Some(&Value::Null) {
        p("\"id\" must be null".into());
    }
    if str_of(d, "uid").is_empty() {
        p("no fixed uid".into());
    }
    if str_of(d, "title").is_empty() {
        p("no title".into());
    }
    if d.get("__inputs").is_some() || d.to_string().contains("${DS_") {
        p("uses __inputs / ${DS_...}: provisioning needs the datasource variable".into());
    }

    // Template variables.
    let vars: Vec<&Value> = d
        .pointer("/templating/list")
        .and_then(Value::as_array)
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    let var_names = Vars::of(&vars);
    let find = |n: &str| vars.iter().find(|v| str_of(v, "name") == n).copied();
    match find("datasource") {
        Some(v) if str_of(v, "type") == "datasource" && str_of(v, "query") == "prometheus" => {}
        Some(_) => p("variable datasource must have type datasource and query prometheus".into()),
        None => p("no datasource variable".into()),
    }
    let no_recorded = BTreeSet::new();
    // N of the worst-N tables: a dashboard variable, 10 unless the viewer picks another.
    if d.to_string().contains("$topn") {
        match find("topn") {
            Some(v)
                if str_of(v, "type") == "custom"
                    && v.pointer("/current/value").and_then(Value::as_str) == Some("10") => {}
            _ => p("uses $topn without a custom variable topn whose default is 10".into()),
        }
    }
    for name in FILTER_VARIABLES {
        let Some(v) = find(name) else {
            p(format!("no {name} variable"));
            continue;
        };
        if str_of(v, "type") != "query" {
            p(format!("variable {name} must be a query variable"));
        }
        if v.get("datasource") != Some(&expected_datasource()) {
            p(format!(
                "variable {name} does not use the datasource variable"
            ));
        }
        if v.get("multi") != Some(&Value::Bool(true))
            || v.get("includeAll") != Some(&Value::Bool(true))
        {
            p(format!(
                "variable {name} must be multi-select with include All"
            ));
        }
        if str_of(v, "allValue") != ".*" {
            p(format!(
                "variable {name} must have allValue \".*\" (series whose value is not listed yet)"
            ));
        }
        let q = variable_query(v).trim();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.rsplit_once(','));
        let Some((selector, label)) = inner else {
            p(format!(
                "variable {name}: query must be label_values(selector, {name}), got `{q}`"
            ));
            continue;
        };
        if label.trim() != *name {
            p(format!("variable {name} lists label {}", label.trim()));
        }
        let chained_on: &[&str] = match *name {
            "job" => &[],
            "instance" => &["job"],
            _ => &["job", "instance"],
        };
        for c in chained_on {
            if !selector.contains(&format!("${c}")) && !selector.contains(&format!("${{{c}}}")) {
                p(format!("variable {name} is not chained on ${c}"));
            }
        }
        let mut ck = Checker {
            cat,
            recorded: &no_recorded,
            extra: &[],
            rules: VARIABLE_RULES,
            instant: false,
            at: format!("{file}: variable {name}"),
            problems: Vec::new(),
            aggregations: Vec::new(),
        };
        match substitute(selector, &var_names) {
            Ok(sub) => ck.check(&sub, &var_names),
            Err(e) => ck.problem(e),
        }
        problems.extend(ck.problems);
    }

    problems.splice(0..0, own);

    // Annotations backed by queries.
    let annotations = d
        .pointer("/annotations/list")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for a in &annotations {
        if a.get("builtIn").and_then(Value::as_u64) == Some(1) {
            continue;
        }
        let at = format!("{file}: annotation {:?}", str_of(a, "name"));
        if a.get("datasource") != Some(&expected_datasource()) {
            problems.push(format!("{at}: datasource is not ${{datasource}}"));
        }
        let mut ck = Checker {
            cat,
            recorded,
            extra: &[],
            rules: DASHBOARD_RULES,
            instant: false,
            at,
            problems: Vec::new(),
            aggregations: Vec::new(),
        };
        ck.check(str_of(a, "expr"), &var_names);
        problems.extend(ck.problems);
    }

    // Panels.
    let top = d
        .get("panels")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if top.is_empty() {
        problems.push(format!("{file}: no panels"));
    }
    let mut ids = BTreeSet::new();
    for panel in all_panels(&top) {
        let title = str_of(panel, "title");
        let at = format!("{file}: panel {title:?}");
        let mut p = |m: String| problems.push(format!("{at}: {m}"));
        if let Some(id) = panel.get("id").and_then(Value::as_u64) {
            if !ids.insert(id) {
                p(format!("duplicate panel id {id}"));
            }
        } else {
            p("no numeric id".into());
        }
        if panel.get("gridPos").is_none() {
            p("no gridPos".into());
        }
        let is_row = str_of(panel, "type") == "row";
        if is_row {
            if let Some(ds) = panel.get("datasource") {
                if !ds.is_null() && ds != &expected_datasource() {
                    p("row datasource is not ${datasource}".into());
                }
            }
            continue;
        }
        if title.is_empty() {
            p("no title".into());
        }
        if str_of(panel, "description").trim().is_empty() {
            p("no description".into());
        }
        if panel
            .pointer("/fieldConfig/defaults/unit")
            .and_then(Value::as_str)
            .is_none_or(|u| u.trim().is_empty())
        {
            p("no unit (fieldConfig.defaults.unit)".into());
        }
        if panel.get("datasource") != Some(&expected_datasource()) {
            p(format!(
                "datasource is {} instead of {{\"type\":\"prometheus\",\"uid\":\"${{datasource}}\"}}",
                panel.get("datasource").unwrap_or(&Value::Null)
            ));
        }
        let targets = panel
            .get("targets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if targets.is_empty() {
            p("no targets".into());
        }
        let mut refs = BTreeSet::new();
        let mut exprs = Vec::new();
        for t in &targets {
            let r = str_of(t, "refId");
            if r.is_empty() || !refs.insert(r.to_owned()) {
                p(format!("missing or duplicate refId {r:?}"));
            }
            if t.get("datasource") != Some(&expected_datasource()) {
                p(format!("target {r} datasource is not ${{datasource}}"));
            }
            let e = str_of(t, "expr");
            if e.trim().is_empty() {
                p(format!("target {r} has no expr"));
            }
            let instant = t.get("instant") == Some(&Value::Bool(true))
                && t.get("range") != Some(&Value::Bool(true));
            // Worst-N targets: one value per tenant, as a table or bar gauge, worst first.
            if e.contains("topk(") || e.contains("bottomk(") {
                let kind = str_of(panel, "type");
                if !instant {
                    p(format!(
                        "target {r}: topk/bottomk belongs in an instant query"
                    ));
                }
                match kind {
                    "bargauge" => {
                        let (f, lim) = if e.contains("bottomk(") {
                            ("sort(", "bottomk")
                        } else {
                            ("sort_desc(", "topk")
                        };
                        if !e.trim_start().starts_with(f) {
                            p(format!(
                                "target {r}: a bar gauge of {lim} must be sorted worst first: {f}{lim}(...))"
                            ));
                        }
                    }
                    "table" => {
                        if panel
                            .pointer("/options/sortBy")
                            .and_then(Value::as_array)
                            .is_none_or(|a| a.is_empty())
                        {
                            p("a worst-N table must be sorted (options.sortBy)".into());
                        }
                    }
                    other => p(format!(
                        "target {r}: topk/bottomk in a {other} panel; use a table or bar gauge"
                    )),
                }
            }
            exprs.push((r.to_owned(), e.to_owned(), instant));
        }
        // MOS panels: a MOS value (mean or quantile) needs the MOS bands as thresholds.
        // Every MOS histogram of every source: CMS (cms_call_leg_mos, cms_tenant_call_leg_mos),
        // FreeSWITCH (freeswitch_cdr_leg_mos, _estimated_mos, by domain) and rtpengine
        // (kamailio_rtpengine_call_mos, _mos_min, _estimated_mos, by tenant).
        let shows_mos = exprs.iter().any(|(_, e, _)| {
            e.contains("_mos_sum")
                || (e.contains("histogram_quantile") && e.contains("_mos_bucket"))
        });
        if shows_mos {
            let steps: Vec<(Option<f64>, String)> = panel
                .pointer("/fieldConfig/defaults/thresholds/steps")
                .and_then(Value::as_array)
                .map(|s| {
                    s.iter()
                        .map(|st| {
                            (
                                st.get("value").and_then(Value::as_f64),
                                str_of(st, "color").to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let values: Vec<f64> = steps.iter().filter_map(|s| s.0).collect();
            if MOS_BANDS
                .iter()
                .any(|b| !values.iter().any(|v| (v - b).abs() < 1e-9))
                || steps.first().is_none_or(|s| s.0.is_some() || s.1 != "red")
            {
                p(format!(
                    "shows MOS but its thresholds are not the MOS bands (red base, {MOS_BANDS:?}): {steps:?}"
                ));
            }
        }
        for (r, e, instant) in exprs {
            let mut ck = Checker {
                cat,
                recorded,
                extra: &[],
                rules: DASHBOARD_RULES,
                instant,
                at: format!("{at} target {r}"),
                problems: Vec::new(),
                aggregations: Vec::new(),
            };
            ck.check(&e, &var_names);
            problems.extend(ck.problems);
        }
    }
    problems
}

fn dashboard_files() -> Vec<PathBuf> {
    let dir = root().join("grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn load_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()))
}

fn report(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} problem(s) in {what}:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn dashboards_pass_lint() {
    let cat = catalogue();
    let files = dashboard_files();
    let mut problems = Vec::new();
    let mut uids = BTreeMap::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let d = load_json(f);
        problems.extend(check_dashboard(&name, &d, cat, shipped_recorded()));
        let uid = str_of(&d, "uid").to_owned();
        if let Some(other) = uids.insert(uid.clone(), name.clone()) {
            problems.push(format!("{name}: uid {uid} also used by {other}"));
        }
    }
    for uid in [
        "cms-overview",
        "cms-call-quality",
        "cdr-receiver-health",
        "cdr-call-quality",
    ] {
        if !uids.contains_key(uid) {
            problems.push(format!("no dashboard with uid {uid}"));
        }
    }
    report("grafana/dashboards", &problems);
}

/// Panels that must be there (the end-to-end test expects data from several of them).
#[test]
fn dashboards_cover_the_catalogue() {
    let mut used = BTreeSet::new();
    for f in dashboard_files() {
        let d = load_json(&f);
        for p in all_panels(d["panels"].as_array().unwrap()) {
            for t in p
                .get("targets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                used.insert(str_of(t, "expr").to_owned());
            }
        }
    }
    let all = used.into_iter().collect::<Vec<_>>().join("\n");
    // Every exposed family appears in some panel, except the codec table (a config echo).
    let mut missing = Vec::new();
    for (name, kind) in &catalogue().kinds {
        let family = match kind {
            Kind::HistogramSeries => name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count"),
            _ => name,
        };
        if name == "cdr_exporter_mos_codec_impairment"
            || PROMETHEUS_TARGET_SERIES.contains(&name.as_str())
        {
            continue;
        }
        if !all.contains(family) {
            missing.push(name.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "exposed by cdr-exporter but shown on no dashboard: {missing:?}; add a panel to \
         grafana/dashboards (or list the metric here if it is not worth one)"
    );
}

// ---------------------------------------------------------------------------------------------
// Provisioning
// ---------------------------------------------------------------------------------------------

fn load_yaml(path: &Path) -> serde_yaml::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", path.display()))
}

#[test]
fn provisioning_loads_the_dashboards_as_they_are() {
    let ds = load_yaml(&root().join("grafana/provisioning/datasources/prometheus.yml"));
    assert_eq!(ds["apiVersion"].as_u64(), Some(1));
    let list = ds["datasources"].as_sequence().expect("datasources list");
    let prom = list
        .iter()
        .find(|d| d["uid"].as_str() == Some("prometheus"))
        .expect("a datasource with uid prometheus");
    assert_eq!(prom["type"].as_str(), Some("prometheus"));
    assert_eq!(prom["access"].as_str(), Some("proxy"));
    let url = prom["url"].as_str().unwrap_or("");
    assert!(
        url.contains("${PROMETHEUS_URL}") || url.contains("$PROMETHEUS_URL"),
        "datasource url must come from PROMETHEUS_URL, got {url}"
    );

    let prov = load_yaml(&root().join("grafana/provisioning/dashboards/cdr-exporter.yml"));
    assert_eq!(prov["apiVersion"].as_u64(), Some(1));
    let providers = prov["providers"].as_sequence().expect("providers list");
    assert_eq!(providers.len(), 1);
    let p = &providers[0];
    assert_eq!(p["type"].as_str(), Some("file"));
    assert_eq!(p["folder"].as_str(), Some("Cisco Meeting Server"));
    let path = p["options"]["path"].as_str().expect("options.path");
    assert!(
        path.starts_with('/'),
        "provider path must be absolute: {path}"
    );

    // The files load as they are: no import-time inputs, and every datasource reference is
    // the variable (checked per panel above) or the provisioned uid.
    for f in dashboard_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("__inputs"), "{}", f.display());
        assert!(!text.contains("${DS_"), "{}", f.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Rule files
// ---------------------------------------------------------------------------------------------

/// Problems of a set of rule files (path, parsed YAML); names recorded in any of them are
/// allowed in all of them.
fn check_rule_files(files: &[(String, serde_yaml::Value)], cat: &Catalogue) -> Vec<String> {
    let mut problems = Vec::new();
    let mut recorded = BTreeSet::new();
    let mut rules = Vec::new();
    for (file, y) in files {
        let Some(groups) = y["groups"].as_sequence() else {
            problems.push(format!("{file}: groups is not a list"));
            continue;
        };
        for g in groups {
            let group = g["name"].as_str().unwrap_or("?");
            let Some(list) = g["rules"].as_sequence() else {
                problems.push(format!("{file}: group {group}: rules is not a list"));
                continue;
            };
            for r in list {
                let (id, is_record) = match (r["record"].as_str(), r["alert"].as_str()) {
                    (Some(rec), None) => (format!("record {rec}"), true),
                    (None, Some(a)) => (format!("alert {a}"), false),
                    _ => {
                        problems.push(format!(
                            "{file}: group {group}: a rule needs exactly one of record/alert"
                        ));
                        continue;
                    }
                };
                if is_record {
                    recorded.insert(r["record"].as_str().unwrap().to_owned());
                }
                let Some(expr) = r["expr"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| r["expr"].as_f64().map(|f| f.to_string()))
                else {
                    problems.push(format!("{file}: group {group}: {id}: no expr"));
                    continue;
                };
                rules.push((format!("{file}: group {group}: {id}"), expr));
            }
        }
    }
    for (at, expr) in rules {
        let mut ck = Checker {
            cat,
            recorded: &recorded,
            extra: PROMETHEUS_ALERT_SERIES,
            rules: RULE_FILE_RULES,
            instant: false,
            at,
            problems: Vec::new(),
            aggregations: Vec::new(),
        };
        ck.check(&expr, &Vars::default());
        problems.extend(ck.problems);
    }
    problems
}

/// Rule files under `alerts/`: YAML documents with a top-level `groups` (Alertmanager
/// configs and promtool test files are other YAML and are left alone).
fn rule_files() -> Vec<(String, serde_yaml::Value)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push(p);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&root().join("alerts"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let y = load_yaml(&p);
            y.get("groups").is_some().then(|| {
                (
                    p.strip_prefix(root()).unwrap_or(&p).display().to_string(),
                    y,
                )
            })
        })
        .collect()
}

/// Names the shipped recording rules define (dashboards may read them).
fn shipped_recorded() -> &'static BTreeSet<String> {
    static NAMES: OnceLock<BTreeSet<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = BTreeSet::new();
        for (_, y) in rule_files() {
            for g in y["groups"].as_sequence().into_iter().flatten() {
                for r in g["rules"].as_sequence().into_iter().flatten() {
                    if let Some(n) = r["record"].as_str() {
                        names.insert(n.to_owned());
                    }
                }
            }
        }
        names
    })
}

#[test]
fn alert_rules_use_exposed_metrics() {
    let files = rule_files();
    if files.is_empty() {
        // alerts/ has no rule files yet.
        return;
    }
    report("alerts/", &check_rule_files(&files, catalogue()));
}

// ---------------------------------------------------------------------------------------------
// The checker itself: each rule can fail
// ---------------------------------------------------------------------------------------------

#[test]
fn catalogue_comes_from_the_exporter() {
    let cat = catalogue();
    assert_eq!(cat.kind("cms_calls_started_total"), Some(Kind::Counter));
    assert_eq!(cat.kind("cms_calls_active"), Some(Kind::Gauge));
    assert_eq!(
        cat.kind("cms_call_leg_mos_bucket"),
        Some(Kind::HistogramSeries)
    );
    assert_eq!(
        cat.kind("cms_call_leg_mos_count"),
        Some(Kind::HistogramSeries)
    );
    assert_eq!(cat.kind("process_cpu_seconds_total"), Some(Kind::Counter));
    assert_eq!(cat.kind("cdr_exporter_build_info"), Some(Kind::Gauge));
    assert_eq!(cat.kind("cms_call_leg_mos"), None);
    // A family carries call_bridge or tenant, never both.
    let by_bridge = &cat.labels["cms_calls_active"];
    assert!(by_bridge.contains("call_bridge") && !by_bridge.contains("tenant"));
    let by_tenant = &cat.labels["cms_tenant_calls_active"];
    assert!(by_tenant.contains("tenant") && !by_tenant.contains("call_bridge"));
    assert_eq!(
        cat.kind("cms_tenant_call_leg_mos_bucket"),
        Some(Kind::HistogramSeries)
    );
    // The default (compact) tenant detail: no reason by tenant, no full-only families.
    assert!(!cat.labels["cms_tenant_call_legs_ended_total"].contains("reason"));
    assert_eq!(
        cat.kind("cms_tenant_call_leg_packet_loss_ratio_bucket"),
        None
    );
    assert!(!cat.labels["cms_call_leg_mos_bucket"].contains("le"));
}

#[test]
fn sample_label_parser() {
    let (n, l) = sample_labels(r#"a_total{x="1,\"}",y="z"} 3"#).unwrap();
    assert_eq!(n, "a_total");
    assert_eq!(l, BTreeSet::from(["x".to_owned(), "y".to_owned()]));
    let (n, l) = sample_labels("b 1.0").unwrap();
    assert_eq!((n.as_str(), l.len()), ("b", 0));
    assert!(sample_labels("# TYPE b gauge").is_none());
}

#[test]
fn variable_substitution() {
    let vars = Vars::of(&[
        &json!({"type": "query", "name": "job"}),
        &json!({"type": "query", "name": "tenant"}),
        &json!({"type": "custom", "name": "topn", "current": {"value": "10"}}),
    ]);
    assert_eq!(
        substitute("topk($topn, increase(x[$__range])) > $__range_s", &vars).unwrap(),
        format!("topk(10, increase(x[{RANGE_SENTINEL}])) > 3600")
    );
    assert_eq!(
        substitute(
            r#"rate(x{job=~"$job",tenant=~"${tenant:regex}"}[$__rate_interval])"#,
            &vars
        )
        .unwrap(),
        format!(
            r#"rate(x{{job=~"{}",tenant=~"{}"}}[{RATE_INTERVAL_SENTINEL}])"#,
            var_sentinel("job"),
            var_sentinel("tenant")
        )
    );
    assert!(substitute("x{a=~\"$nope\"}", &vars)
        .unwrap_err()
        .contains("unknown variable $nope"));
    assert!(substitute("x{a=~\"[[job]]\"}", &vars)
        .unwrap_err()
        .contains("deprecated"));
    assert_eq!(substitute("x[5m:1m]", &vars).unwrap(), "x[5m:1m]");
}

/// A dashboard with one panel; `panel` is merged over a valid one.
fn tiny_dashboard(panel: Value) -> Value {
    let ds = expected_datasource();
    let var = |name: &str, q: &str| {
        json!({"type": "query", "name": name, "datasource": ds, "query": q,
               "multi": true, "includeAll": true, "allValue": ".*"})
    };
    let mut good = json!({
        "type": "timeseries", "id": 1, "title": "t", "description": "d",
        "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
        "datasource": ds,
        "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
        "targets": [{"refId": "A", "datasource": ds,
                     "expr": "sum(max without (instance) (cms_calls_active{job=~\"$job\", instance=~\"$instance\", call_bridge=~\"$call_bridge\"}))"}]
    });
    for (k, v) in panel.as_object().unwrap() {
        if v.is_null() {
            good.as_object_mut().unwrap().remove(k);
        } else {
            good[k] = v.clone();
        }
    }
    json!({
        "id": null, "uid": "tiny", "title": "tiny", "schemaVersion": 39,
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "query": "prometheus"},
            var("job", "label_values(cdr_exporter_build_info, job)"),
            var("instance", "label_values(cdr_exporter_build_info{job=~\"$job\"}, instance)"),
            var("call_bridge", "label_values(cdr_exporter_batches_total{job=~\"$job\", instance=~\"$instance\"}, call_bridge)"),
            var("tenant", "label_values(cms_tenant_calls_active{job=~\"$job\", instance=~\"$instance\"}, tenant)"),
            {"type": "custom", "name": "topn", "query": "5,10,20", "current": {"text": "10", "value": "10"}},
        ]},
        "panels": [good]
    })
}

fn target_expr(expr: &str) -> Value {
    json!({"targets": [{"refId": "A", "datasource": expected_datasource(), "expr": expr}]})
}

fn assert_reports(d: &Value, expected: &[&str]) {
    let problems = check_dashboard("tiny.json", d, catalogue(), shipped_recorded());
    for e in expected {
        assert!(
            problems.iter().any(|p| p.contains(e)),
            "expected a problem containing {e:?}, got {problems:#?}"
        );
    }
    assert!(!problems.is_empty());
}

#[test]
fn checker_accepts_the_tiny_dashboard() {
    let problems = check_dashboard(
        "tiny.json",
        &tiny_dashboard(json!({})),
        catalogue(),
        shipped_recorded(),
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn checker_reports_panel_problems() {
    assert_reports(
        &tiny_dashboard(json!({"fieldConfig": {"defaults": {}}})),
        &["no unit"],
    );
    assert_reports(
        &tiny_dashboard(json!({"description": ""})),
        &["no description"],
    );
    assert_reports(
        &tiny_dashboard(json!({"datasource": {"type": "prometheus", "uid": "abc"}})),
        &["datasource is"],
    );
    let mut d = tiny_dashboard(json!({}));
    d["panels"][0]["targets"][0]["datasource"] = json!({"uid": "${DS_PROMETHEUS}"});
    assert_reports(&d, &["target A datasource", "${DS_"]);
    // A panel nested in a collapsed row is checked too.
    let inner = tiny_dashboard(json!({"fieldConfig": {"defaults": {}}}))["panels"][0].clone();
    let mut d = tiny_dashboard(json!({}));
    d["panels"] = json!([{"type": "row", "id": 9, "title": "r", "collapsed": true,
                          "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}, "panels": [inner]}]);
    assert_reports(&d, &["no unit"]);
}

#[test]
fn checker_reports_expression_problems() {
    let c = r#"job=~"$job", instance=~"$instance", call_bridge=~"$call_bridge""#;
    let t = r#"job=~"$job", instance=~"$instance", tenant=~"$tenant""#;
    let j = r#"job=~"$job", instance=~"$instance""#;
    let cases: &[(String, &str)] = &[
        (
            format!("sum(cms_calls_started_total{{{c}}})"),
            "counter cms_calls_started_total used outside rate",
        ),
        (
            format!("sum(cms_call_leg_mos_count{{{c}}})"),
            "counter cms_call_leg_mos_count used outside rate",
        ),
        (
            format!("max_over_time(cms_calls_started_total{{{c}}}[$__rate_interval])"),
            "counter cms_calls_started_total inside max_over_time()",
        ),
        (
            format!("rate(cms_calls_active{{{c}}}[$__rate_interval])"),
            "gauge cms_calls_active inside rate()",
        ),
        (
            format!("sum(cms_no_such_metric{{{c}}})"),
            "metric cms_no_such_metric is not exposed",
        ),
        (
            format!("sum({{__name__=~\"cms_calls_active|cms_nope\", {c}}})"),
            "metric cms_nope is not exposed",
        ),
        (
            format!("cms_calls_started_total{{{c}}} unless cms_calls_ended_total{{{c}}} offset 5m"),
            "counter cms_calls_started_total used outside rate",
        ),
        (
            format!("sum(rate(cms_calls_active{{{c}}}[$__rate_interval])) and cms_calls_started_total{{{c}}} > 3"),
            "counter cms_calls_started_total used outside rate",
        ),
        (
            format!("rate(cms_calls_started_total{{{c}}}[5m])"),
            "hard-coded window",
        ),
        (
            format!("sum(rate(cms_calls_started_total{{{c}}}[$__interval]))"),
            "hard-coded window",
        ),
        (format!("sum(cms_calls_active{{{c}}}"), "parse error"),
        (
            format!("sum(cms_calls_active{{{c}, x=~\"$nope\"}})"),
            "unknown variable $nope",
        ),
        (
            r#"sum(cms_calls_active{instance=~"$instance", call_bridge=~"$call_bridge"})"#.into(),
            "does not filter job",
        ),
        (
            format!("sum(cms_calls_active{{{j}}})"),
            "does not filter call_bridge",
        ),
        (
            format!("sum(cms_tenant_calls_active{{{j}}})"),
            "does not filter tenant",
        ),
        (
            format!("sum(cms_calls_active{{{c}, tenant=~\"$tenant\"}})"),
            "filters on tenant, which cms_calls_active does not have",
        ),
        (
            format!("sum(rate(cms_tenant_calls_started_total{{{t}, call_bridge=~\"$call_bridge\"}}[$__rate_interval]))"),
            "filters on call_bridge, which cms_tenant_calls_started_total does not have",
        ),
        (
            format!("sort_by_label(cms_calls_active{{{c}}}, \"tenant\")"),
            "sort_by_label() does not exist in Prometheus 2.42",
        ),
        // 2,000 tenants are 2,000 lines.
        (
            format!("sum by (tenant) (cms_tenant_calls_active{{{t}}})"),
            "returns one series per tenant",
        ),
        (
            format!("cms_tenant_calls_active{{{t}}}"),
            "returns one series per tenant",
        ),
        (
            format!("max without (instance) (cms_tenant_calls_active{{{t}}})"),
            "returns one series per tenant",
        ),
        (
            format!("sum by (tenant) (rate(cms_tenant_calls_started_total{{{t}}}[$__rate_interval])) / 2"),
            "returns one series per tenant",
        ),
        (
            format!("sum by (tenant, alarm) (rate(cms_tenant_call_legs_with_alarm_total{{{t}}}[$__rate_interval])) and on (tenant) cms_tenant_calls_active{{{t}}}"),
            "returns one series per tenant",
        ),
        (
            format!("topk(5, sum by (tenant) (cms_tenant_calls_active{{{t}}}))"),
            "must take the dashboard variable $topn",
        ),
        // A time series panel (the tiny one) of the worst N.
        (
            format!("topk($topn, sum by (tenant) (cms_tenant_calls_active{{{t}}}))"),
            "topk/bottomk belongs in an instant query",
        ),
        (
            format!("topk($topn, sum by (tenant) (cms_tenant_calls_active{{{t}}}))"),
            "in a timeseries panel",
        ),
        (
            format!("sum(increase(cms_calls_started_total{{{c}}}[$__range]))"),
            "over $__range in a range query",
        ),
        (
            format!("call_bridge:call_legs_ended:increase15m{{{j}}}"),
            "named after a rules window",
        ),
        (
            format!("cms:no_such:rule{{{j}}}"),
            "metric cms:no_such:rule is not exposed",
        ),
        // An HA pair counted twice.
        (
            format!("sum(cms_calls_active{{{c}}})"),
            "cms_calls_active is not deduplicated",
        ),
        (
            format!("histogram_quantile(0.5, sum by (le) (rate(cms_call_leg_mos_bucket{{{c}}}[$__rate_interval])))"),
            "cms_call_leg_mos_bucket is not deduplicated",
        ),
        (
            format!("sum(max without (instance) (sum by (call_bridge) (rate(cms_calls_started_total{{{c}}}[$__rate_interval]))))"),
            "cms_calls_started_total is not deduplicated",
        ),
        (
            format!("rate(cms_calls_started_total{{{c}}}[$__rate_interval])"),
            "cms_calls_started_total is not deduplicated",
        ),
    ];
    for (expr, expected) in cases {
        assert_reports(&tiny_dashboard(target_expr(expr)), &[expected]);
    }
}

#[test]
fn checker_accepts_counter_and_gauge_idioms() {
    let c = r#"job=~"$job", instance=~"$instance", call_bridge=~"$call_bridge""#;
    let t = r#"job=~"$job", instance=~"$instance", tenant=~"$tenant""#;
    let j = r#"job=~"$job", instance=~"$instance""#;
    for expr in [
        format!("sum by (le) (max without (instance) (increase(cms_call_leg_mos_bucket{{{c}}}[$__rate_interval])))"),
        format!("histogram_quantile(0.5, sum by (le) (max without (instance) (rate(cms_call_duration_seconds_bucket{{{c}}}[$__rate_interval]))))"),
        format!("time() - cdr_exporter_last_batch_timestamp_seconds{{{c}}}"),
        format!("changes(process_start_time_seconds{{{j}}}[$__rate_interval])"),
        format!("resets(process_cpu_seconds_total{{{j}}}[$__rate_interval])"),
        format!("up{{{j}}}"),
        format!("sum(cdr_exporter_records_missing_total{{{c}}} unless cdr_exporter_records_missing_total{{{c}}} offset 15m)"),
        format!("sum(max without (instance) (rate(cms_calls_started_total{{{c}}}[$__rate_interval]))) and on() cms_calls_started_total{{{c}}}"),
        // Per receiver, on purpose; one copy of the pair.
        format!("sum by (instance, call_bridge) (rate(cms_calls_started_total{{{c}}}[$__rate_interval]))"),
        format!("max by (call_bridge) (cms_calls_active{{{c}}})"),
        // Tenants summed away, or counted.
        format!("sum(max without (instance) (cms_tenant_calls_active{{{t}}}))"),
        format!("count(sum by (tenant) (max without (instance) (cms_tenant_calls_active{{{t}}})) > 0)"),
        // The abnormal reasons from the rules (a recorded series without a window).
        format!("sum by (reason) (max without (instance) (rate(cms_call_legs_ended_total{{{c}}}[$__rate_interval]))) and on (reason) cms:call_leg_end_reason:abnormal{{{j}}}"),
    ] {
        let problems = check_dashboard(
            "tiny.json",
            &tiny_dashboard(target_expr(&expr)),
            catalogue(),
            shipped_recorded(),
        );
        assert!(problems.is_empty(), "{expr}: {problems:#?}");
    }
}

/// A worst-N panel of `kind` with one instant target.
fn worst_n(kind: &str, expr: &str) -> Value {
    let mut p = target_expr(expr);
    p["type"] = json!(kind);
    p["targets"][0]["instant"] = json!(true);
    p["targets"][0]["range"] = json!(false);
    if kind == "table" {
        p["options"] = json!({"sortBy": [{"displayName": "Value", "desc": true}]});
    }
    p
}

#[test]
fn checker_wants_worst_n_tables_and_bar_gauges() {
    let t = r#"job=~"$job", instance=~"$instance", tenant=~"$tenant""#;
    let busiest = format!("topk($topn, sum by (tenant) (max without (instance) (increase(cms_tenant_calls_started_total{{{t}}}[$__range]))))");
    let ok = [
        worst_n("bargauge", &format!("sort_desc({busiest})")),
        worst_n("table", &busiest),
        worst_n("bargauge", &format!("sort(bottomk($topn, sum by (tenant) (max without (instance) (cms_tenant_calls_active{{{t}}}))))")),
        // A second column for the same N tenants.
        worst_n("table", &format!("sum by (tenant) (max without (instance) (increase(cms_tenant_calls_ended_total{{{t}}}[$__range]))) and on (tenant) {busiest}")),
    ];
    for p in ok {
        let problems = check_dashboard(
            "tiny.json",
            &tiny_dashboard(p.clone()),
            catalogue(),
            shipped_recorded(),
        );
        assert!(problems.is_empty(), "{p}: {problems:#?}");
    }
    assert_reports(
        &tiny_dashboard(worst_n("bargauge", &busiest)),
        &["must be sorted worst first: sort_desc(topk"],
    );
    assert_reports(
        &tiny_dashboard(worst_n(
            "bargauge",
            &format!("sort_desc(bottomk($topn, sum by (tenant) (cms_tenant_calls_active{{{t}}})))"),
        )),
        &["sort(bottomk"],
    );
    let mut unsorted = worst_n("table", &busiest);
    unsorted["options"] = json!({});
    assert_reports(
        &tiny_dashboard(unsorted),
        &["must be sorted (options.sortBy)"],
    );
    // Still hard-coded windows in instant queries.
    assert_reports(
        &tiny_dashboard(worst_n("table", &busiest.replace("$__range", "6h"))),
        &["hard-coded window"],
    );
    // N is the topn variable, 10 by default.
    let mut d = tiny_dashboard(worst_n("table", &busiest));
    d["templating"]["list"][5]["current"]["value"] = json!("2000");
    assert_reports(&d, &["custom variable topn whose default is 10"]);
}

#[test]
fn checker_reports_dashboard_problems() {
    let mut d = tiny_dashboard(json!({}));
    d["schemaVersion"] = json!(36);
    d["id"] = json!(7);
    assert_reports(&d, &["schemaVersion 36 < 39", "\"id\" must be null"]);

    let mut d = tiny_dashboard(json!({}));
    d["templating"]["list"].as_array_mut().unwrap().remove(0);
    assert_reports(&d, &["no datasource variable"]);

    let mut d = tiny_dashboard(json!({}));
    d["templating"]["list"][4]["query"] = json!("label_values(cms_tenant_calls_active, tenant)");
    assert_reports(&d, &["variable tenant is not chained on $job"]);

    let mut d = tiny_dashboard(json!({}));
    d["templating"]["list"][1]["allValue"] = json!(null);
    assert_reports(&d, &["variable job must have allValue"]);

    let mut d = tiny_dashboard(json!({}));
    d["templating"]["list"][3]["query"] =
        json!("label_values(cms_nope_total{job=~\"$job\", instance=~\"$instance\"}, call_bridge)");
    assert_reports(&d, &["metric cms_nope_total is not exposed"]);

    // MOS panels without the MOS bands, by Call Bridge and by tenant.
    let c = r#"job=~"$job", instance=~"$instance", call_bridge=~"$call_bridge""#;
    let t = r#"job=~"$job", instance=~"$instance", tenant=~"$tenant""#;
    for (family, f) in [("cms_call_leg_mos", c), ("cms_tenant_call_leg_mos", t)] {
        let mos = format!(
            "sum(max without (instance) (rate({family}_sum{{{f}}}[$__rate_interval]))) / sum(max without (instance) (rate({family}_count{{{f}}}[$__rate_interval])))"
        );
        assert_reports(&tiny_dashboard(target_expr(&mos)), &["MOS bands"]);
        let mut with_bands = target_expr(&mos);
        with_bands["fieldConfig"] = json!({"defaults": {"unit": "none", "thresholds": {"mode": "absolute", "steps": [
            {"color": "red", "value": null}, {"color": "orange", "value": 2.6},
            {"color": "yellow", "value": 3.1}, {"color": "green", "value": 3.6},
            {"color": "dark-green", "value": 4.3}]}}});
        let problems = check_dashboard(
            "tiny.json",
            &tiny_dashboard(with_bands),
            catalogue(),
            shipped_recorded(),
        );
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn rule_checker_reports_problems() {
    let y: serde_yaml::Value = serde_yaml::from_str(
        r#"
groups:
  - name: g
    rules:
      - record: cms:legs_low_mos:ratio_rate5m
        expr: sum by (tenant) (max without (instance) (rate(cms_tenant_call_leg_mos_bucket{le="3.1"}[5m]))) / sum by (tenant) (max without (instance) (rate(cms_tenant_call_leg_mos_count[5m])))
      - alert: Good
        expr: cms:legs_low_mos:ratio_rate5m > 0.1 and on() absent(ALERTS{alertname="x"}) == 0
      - alert: Down
        expr: up{job="cdr-exporter"} == 0 or absent(cdr_exporter_build_info)
      - alert: BareCounter
        expr: cdr_exporter_records_missing_total > 0
      - alert: Unknown
        expr: rate(cms_no_such_total[5m]) > 0
      - alert: GaugeRate
        expr: max without (instance) (rate(cms_calls_active[5m])) > 0
      - alert: Broken
        expr: sum(rate(cms_calls_started_total[5m])
      - alert: Doubled
        expr: sum by (call_bridge) (rate(cms_calls_started_total[5m])) > 0
"#,
    )
    .unwrap();
    let problems = check_rule_files(&[("t.yml".into(), y)], catalogue());
    let expect = [
        "alert BareCounter: counter cdr_exporter_records_missing_total used outside rate",
        "alert Unknown: metric cms_no_such_total is not exposed",
        "alert GaugeRate: gauge cms_calls_active inside rate()",
        "alert Broken: PromQL parse error",
        "alert Doubled: cms_calls_started_total is not deduplicated",
    ];
    for e in expect {
        assert!(
            problems.iter().any(|p| p.contains(e)),
            "expected {e:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
}
