#!/usr/bin/env python3
"""Generates grafana/dashboards/*.json for cdr-exporter. Edit this, run
`python3 scripts/gen-dashboards.py`, and commit both (tests/dashboards.rs lints the JSON,
tests/e2e_prometheus.rs runs every query against a real Prometheus).

Conventions the lint enforces:
- families carry call_bridge or tenant, never both: Call Bridge panels filter $call_bridge,
  tenant panels $tenant (a panel says which);
- an HA pair (two exporters on one stream, same job) exposes every series twice: everything
  about calls and quality takes `max without (instance)` before it sums (dd() below);
- anything by tenant is a worst-N bar gauge or table (topk/bottomk($topn), instant, over the
  dashboard's range), never one line per tenant;
- the abnormal end reasons are not listed here: the recording rule
  cms:call_leg_end_reason:abnormal (rules parameter abnormal_ends_reasons) marks them, and the
  panels join on it.
"""
import json
import os
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "grafana", "dashboards")

DS = {"type": "prometheus", "uid": "${datasource}"}
J = 'job=~"$job", instance=~"$instance"'
CB = J + ', call_bridge=~"$call_bridge"'
T = J + ', tenant=~"$tenant"'
# FreeSWITCH by switch / by domain, Kamailio by node / by tenant (boards with senders=True).
FS = J + ', switch=~"$switch"'
FD = J + ', domain=~"$domain"'
KN = J + ', node=~"$node"'
KT = J + ', tenant=~"$tenant"'
RI = "$__rate_interval"
RANGE = "$__range"
# Set by the rules from abnormal_ends_reasons: one series per abnormal reason seen.
ABNORMAL = f'cms:call_leg_end_reason:abnormal{{{J}}}'

MOS_STEPS = [
    {"color": "red", "value": None},
    {"color": "orange", "value": 2.6},
    {"color": "yellow", "value": 3.1},
    {"color": "green", "value": 3.6},
    {"color": "dark-green", "value": 4.3},
]


def steps(*pairs):
    out = [{"color": pairs[0], "value": None}]
    for i in range(1, len(pairs), 2):
        out.append({"color": pairs[i + 1], "value": pairs[i]})
    return out


GREEN = steps("green")
SHARE_STEPS = steps("green", 0.05, "orange", 0.1, "red")


# ---------------------------------------------------------------- PromQL helpers
def dd(e):
    """One copy of an HA pair: both exporters expose the same series."""
    return f"max without (instance) ({e})"


def agg(by, e, op="sum"):
    return f"{op} by ({by}) ({e})" if by else f"{op}({e})"


def sel(metric, s):
    return f"{metric}{{{s}}}"


def rate(metric, s, by="", w=RI):
    """Per second, deduplicated, summed by `by`."""
    return agg(by, dd(f"rate({sel(metric, s)}[{w}])"))


def inc(metric, s, by="", w=RI):
    """Per window, deduplicated, summed by `by`."""
    return agg(by, dd(f"increase({sel(metric, s)}[{w}])"))


def gauge(metric, s, by=""):
    return agg(by, dd(sel(metric, s)))


def quantiles(metric, s, by="", qs=(0.5, 0.9, 0.99), label=""):
    grp = "le" + (", " + by if by else "")
    out = []
    for q in qs:
        legend = f"p{int(round(q * 100))}" + (f" {label}" if label else "")
        out.append((f"histogram_quantile({q}, {rate(metric + '_bucket', s, grp)})", legend))
    return out


def mean(metric, s, by="", w=RI):
    return f"{rate(metric + '_sum', s, by, w)} / {rate(metric + '_count', s, by, w)}"


def worst(e, n="topk"):
    """The worst $topn of a per-tenant expression, worst first (bar gauges keep the order)."""
    return f"{'sort_desc' if n == 'topk' else 'sort'}({n}($topn, {e}))"


def share_by_tenant(part, whole):
    """part / whole per tenant over the range, for tenants with at least $min_legs legs."""
    return f"{part} / ({whole} >= $min_legs)"


class Board:
    def __init__(self, uid, title, description, tags, senders=False):
        self.uid = uid
        self.senders = senders
        self.title = title
        self.description = description
        self.tags = tags
        self.panels = []
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.annotations = []

    def _place(self, w, h):
        if self.x + w > 24:
            self.x = 0
            self.y += self.row_h
            self.row_h = 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def row(self, title):
        if self.x != 0:
            self.y += self.row_h
        self.x = 0
        self.row_h = 0
        p = {
            "type": "row",
            "title": title,
            "collapsed": False,
            "id": self._id(),
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
            "panels": [],
        }
        self.y += 1
        self.panels.append(p)

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def add(self, p, w, h):
        p["id"] = self._id()
        p["gridPos"] = self._place(w, h)
        self.panels.append(p)

    def json(self):
        return {
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
                + self.annotations
            },
            "description": self.description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": [
                {
                    "asDropdown": False,
                    "icon": "external link",
                    "includeVars": True,
                    "keepTime": True,
                    "tags": ["cdr-exporter"],
                    "targetBlank": False,
                    "title": "CMS dashboards",
                    "type": "dashboards",
                }
            ],
            "panels": self.panels,
            "refresh": "1m",
            "schemaVersion": 39,
            "tags": self.tags,
            "templating": {"list": variables(self.senders)},
            "time": {"from": "now-6h", "to": "now"},
            "timepicker": {},
            "timezone": "",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        }




def qvar(name, label, query, description):
    return {
        "type": "query",
        "name": name,
        "label": label,
        "description": description,
        "datasource": dict(DS),
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
        "definition": query,
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
        "skipUrlSync": False,
    }


def cvar(name, label, values, default, description):
    return {
        "type": "custom",
        "name": name,
        "label": label,
        "description": description,
        "query": ",".join(values),
        "current": {"selected": True, "text": default, "value": default},
        "options": [{"selected": v == default, "text": v, "value": v} for v in values],
        "multi": False,
        "includeAll": False,
        "hide": 0,
        "skipUrlSync": False,
    }


def variables(senders=False):
    """The common variables; `senders` adds FreeSWITCH switch and domain and Kamailio node
    (boards that show those sources), and lists rtpengine tenants in `tenant` too."""
    tenant_query = ('label_values(cms_tenant_calls_started_total{job=~"$job", instance=~"$instance"}, tenant)'
                    if not senders else
                    'label_values({__name__=~"cms_tenant_calls_started_total|kamailio_rtpengine_tenant_calls_total", '
                    'job=~"$job", instance=~"$instance"}, tenant)')
    tenant_desc = ("CMS tenants (GUID or configured name; none = calls without tenant, unknown = the call "
                   "was never seen, other = beyond labels.max_tenants). Filters the panels by tenant only.")
    if senders:
        tenant_desc = ("CMS tenants and rtpengine tenants (CMS: GUID or configured name, none = calls "
                       "without tenant, unknown = the call was never seen; rtpengine: the report's tenant, "
                       "none without one; other = beyond the cap). Filters the panels by tenant only; "
                       "FreeSWITCH domains have their own variable.")
    extra = []
    if senders:
        extra = [
            qvar("switch", "FreeSWITCH switch",
                 'label_values(freeswitch_cdr_last_received_timestamp_seconds{job=~"$job", instance=~"$instance"}, switch)',
                 "FreeSWITCH switches that sent CDRs (the CDR's switchname, ?switch= or the sender's "
                 "address). Filters the FreeSWITCH by-switch panels only."),
            qvar("domain", "FreeSWITCH domain",
                 'label_values(freeswitch_cdr_domain_legs_total{job=~"$job", instance=~"$instance"}, domain)',
                 "FreeSWITCH domains (domain_name, else accountcode, else none; other = beyond "
                 "labels.max_domains). Filters the FreeSWITCH by-domain panels only."),
            qvar("node", "Kamailio node",
                 'label_values(kamailio_rtpengine_last_report_timestamp_seconds{job=~"$job", instance=~"$instance"}, node)',
                 "Kamailio/rtpengine nodes that sent MOS reports (the report's node, ?node= or the "
                 "sender's address). Filters the Kamailio by-node panels only."),
        ]
    return [
        {
            "type": "datasource",
            "name": "datasource",
            "label": "Data source",
            "description": "Prometheus data source that scrapes cdr-exporter",
            "query": "prometheus",
            "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "options": [],
            "refresh": 1,
            "regex": "",
            "skipUrlSync": False,
        },
        qvar("job", "Job", "label_values(cdr_exporter_build_info, job)",
             "Prometheus scrape job(s) of cdr-exporter (the two exporters of an HA pair share one)"),
        qvar("instance", "Instance", 'label_values(cdr_exporter_build_info{job=~"$job"}, instance)',
             "cdr-exporter instance(s) within the selected jobs"),
        qvar("call_bridge", "Call Bridge",
             'label_values(cdr_exporter_batches_total{job=~"$job", instance=~"$instance"}, call_bridge)',
             "Call Bridges that sent CDRs to the selected exporters (GUID, receiver URI parameter, "
             "address or configured name). Filters the panels by Call Bridge only."),
        qvar("tenant", "Tenant", tenant_query, tenant_desc),
        *extra,
        cvar("topn", "Worst / busiest N", ["5", "10", "20", "50"], "10",
             "How many tenants the worst-N and busiest-N panels show"),
        cvar("min_legs", "Min. legs per tenant", ["1", "10", "50", "100", "500"], "10",
             "Tenants with fewer legs in the time range are not ranked by share or mean (a "
             "tenant with one bad leg is not the worst tenant)"),
    ]


def target(expr, legend="", ref="A", fmt=None, instant=False):
    t = {
        "datasource": dict(DS),
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }
    if fmt:
        t["format"] = fmt
    return t


def targets(*specs):
    out = []
    for i, s in enumerate(specs):
        if isinstance(s, str):
            s = (s, "")
        out.append(target(s[0], s[1], chr(ord("A") + i)))
    return out


def timeseries(title, desc, unit, tgts, *, stack=False, thresholds=None, threshold_style="off",
               min_=0, max_=None, decimals=None, overrides=None, fill=10, bars=False,
               legend_calcs=None):
    defaults = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "custom": {
            "drawStyle": "bars" if bars else "line",
            "lineWidth": 1,
            "fillOpacity": 80 if bars else (fill if not stack else 40),
            "gradientMode": "none",
            "showPoints": "never",
            "spanNulls": False,
            "axisPlacement": "auto",
            "axisLabel": "",
            "axisSoftMin": None,
            "lineInterpolation": "linear",
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": threshold_style},
        },
        "thresholds": {"mode": "absolute", "steps": thresholds or GREEN},
    }
    del defaults["custom"]["axisSoftMin"]
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "datasource": dict(DS),
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {
                "calcs": legend_calcs or [],
                "displayMode": "table" if legend_calcs else "list",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title, desc, unit, tgts, *, thresholds=None, calc="lastNotNull", decimals=None,
         mappings=None, text_mode="auto", graph="area", color_mode="value", min_=None, max_=None):
    defaults = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": {"mode": "absolute", "steps": thresholds or GREEN},
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "datasource": dict(DS),
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": [calc], "fields": "", "values": False},
            "colorMode": color_mode,
            "graphMode": graph,
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": text_mode,
            "wideLayout": True,
            "showPercentChange": False,
        },
    }


def heatmap(title, desc, expr, y_unit, *, scheme="Oranges", y_decimals=None, thresholds=None):
    t = target(expr, "{{le}}", "A", fmt="heatmap")
    y_axis = {"axisPlacement": "left", "reverse": False, "unit": y_unit}
    if y_decimals is not None:
        y_axis["decimals"] = y_decimals
    return {
        "type": "heatmap",
        "title": title,
        "description": desc,
        "datasource": dict(DS),
        "targets": [t],
        "fieldConfig": {
            "defaults": {
                "unit": "short",
                "custom": {
                    "hideFrom": {"legend": False, "tooltip": False, "viz": False},
                    "scaleDistribution": {"type": "linear"},
                },
                "thresholds": {"mode": "absolute", "steps": thresholds or GREEN},
            },
            "overrides": [],
        },
        "options": {
            "calculate": False,
            "cellGap": 1,
            "cellValues": {"unit": "short"},
            "color": {
                "exponent": 0.5,
                "fill": "dark-orange",
                "mode": "scheme",
                "reverse": False,
                "scale": "exponential",
                "scheme": scheme,
                "steps": 64,
            },
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "filterValues": {"le": 1e-9},
            "legend": {"show": True},
            "rowsFrame": {"layout": "le"},
            "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": True},
            "yAxis": y_axis,
        },
    }


def red_override(regex):
    return {
        "matcher": {"id": "byRegexp", "options": "^(" + regex + ")$"},
        "properties": [{"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}}],
    }




def bargauge(title, desc, unit, expr, *, legend="{{tenant}}", thresholds=None, min_=0, max_=None,
             decimals=None):
    """Worst or busiest N tenants, one bar each, in the order of the (sorted) instant query."""
    defaults = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": {"mode": "absolute", "steps": thresholds or GREEN},
        "min": min_,
    }
    if max_ is not None:
        defaults["max"] = max_
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "bargauge",
        "title": title,
        "description": desc,
        "datasource": dict(DS),
        "targets": [target(expr, legend, "A", instant=True)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "left",
            "sizing": "auto",
            "minVizHeight": 16,
            "minVizWidth": 8,
            "maxVizHeight": 24,
        },
    }


def table(title, desc, unit, columns, sort_by, *, thresholds=None, decimals=None, exclude=(),
          units=None):
    """units: {column name: unit} for columns whose unit differs from `unit`."""
    """Instant queries, one per column (name, expr), merged on their labels; sorted by sort_by."""
    tgts = []
    rename = {}
    for i, (name, expr) in enumerate(columns):
        ref = chr(ord("A") + i)
        tgts.append(target(expr, "", ref, fmt="table", instant=True))
        rename["Value" if len(columns) == 1 else f"Value #{ref}"] = name
    defaults = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": {"mode": "absolute", "steps": thresholds or GREEN},
        "custom": {"align": "auto", "cellOptions": {"type": "color-text"}, "inspect": False},
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "table",
        "title": title,
        "description": desc,
        "datasource": dict(DS),
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": [
            {"matcher": {"id": "byName", "options": name},
             "properties": [{"id": "unit", "value": u}]
             + ([{"id": "decimals", "value": 1},
                 {"id": "thresholds", "value": {"mode": "absolute", "steps": SHARE_STEPS}}]
                if u == "percentunit" else [])}
            for name, u in (units or {}).items()]},
        "options": {
            "showHeader": True,
            "cellHeight": "sm",
            "footer": {"show": False, "reducer": ["sum"], "fields": "", "countRows": False},
            "sortBy": [{"displayName": sort_by, "desc": True}],
        },
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True, **{c: True for c in exclude}},
                                           "renameByName": rename,
                                           "indexByName": {}}},
        ],
    }


def red_ref(ref):
    """Series of query `ref` in red (the abnormal end reasons)."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [{"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}}],
    }


def restart_annotation(text):
    return {
        "datasource": dict(DS),
        "enable": True,
        "expr": f"{inc('cdr_exporter_sessions_total', CB, 'call_bridge')} > 0",
        "hide": False,
        "iconColor": "orange",
        "name": "Call Bridge restarts",
        "step": "60s",
        "titleFormat": "Call Bridge restarted",
        "textFormat": text,
    }


BY_CB = " By Call Bridge: filtered by Call Bridge, not by tenant."
BY_TENANT = " By tenant: filtered by tenant, not by Call Bridge."
OVER_RANGE = (" Over the dashboard's time range; the $topn worst (variable), worst first; pick "
              "a tenant in the Tenant variable to see only that one.")


# ---------------------------------------------------------------- CMS overview
def overview():
    b = Board(
        "cms-overview",
        "CMS overview",
        "Cisco Meeting Server activity from CDRs received by cdr-exporter: calls and legs active, "
        "started and ended by Call Bridge and by tenant (busiest $topn), durations, participants, "
        "recordings and streamings. An HA pair of exporters counts once.",
        ["cdr-exporter", "cisco-meeting-server", "cms"],
    )
    b.annotations.append(restart_annotation("{{call_bridge}}: new CDR session; its calls and legs were ended"))
    b.row("Now (selected Call Bridges)")
    b.add(stat("Active calls",
               "Calls between callStart and callEnd (cms_calls_active) on the selected Call Bridges."
               + BY_CB, "short", targets(gauge("cms_calls_active", CB))), 4, 4)
    b.add(stat("Active call legs",
               "Call legs between callLegStart and callLegEnd (cms_call_legs_active): participants "
               "connected right now." + BY_CB, "short", targets(gauge("cms_call_legs_active", CB))),
          4, 4)
    b.add(stat("Call starts / min",
               "callStart records per minute over the last rate interval." + BY_CB, "cpm",
               targets(f"{rate('cms_calls_started_total', CB)} * 60"), decimals=1), 4, 4)
    b.add(stat("Leg starts / min",
               "callLegStart records per minute over the last rate interval." + BY_CB, "cpm",
               targets(f"{rate('cms_call_legs_started_total', CB)} * 60"), decimals=1), 4, 4)
    b.add(stat("Active recordings",
               "Recordings between recordingStart and recordingEnd." + BY_CB, "short",
               targets(gauge("cms_recordings_active", CB))), 4, 4)
    b.add(stat("Active streamings",
               "Streamings between streamingStart and streamingEnd." + BY_CB, "short",
               targets(gauge("cms_streamings_active", CB))), 4, 4)

    b.row("Calls by Call Bridge")
    b.add(timeseries("Active calls by Call Bridge",
                     "Calls in progress per Call Bridge (cms_calls_active).", "short",
                     targets((gauge("cms_calls_active", CB, "call_bridge"), "{{call_bridge}}")),
                     stack=True), 12, 8)
    b.add(timeseries("Active calls by call type",
                     "Calls in progress by CMS callType (coSpace, adHoc, lyncConferencing, "
                     "forwarding; unknown if the callStart was never seen)." + BY_CB, "short",
                     targets((gauge("cms_calls_active", CB, "call_type"), "{{call_type}}")),
                     stack=True), 12, 8)
    b.add(timeseries("Call starts and ends by Call Bridge",
                     "callStart and callEnd records per second per Call Bridge.", "ops",
                     targets(
                         (rate("cms_calls_started_total", CB, "call_bridge"), "started {{call_bridge}}"),
                         (rate("cms_calls_ended_total", CB, "call_bridge"), "ended {{call_bridge}}"),
                     )), 12, 8)
    b.add(timeseries("Call starts by call type",
                     "callStart records per second by call type." + BY_CB, "ops",
                     targets((rate("cms_calls_started_total", CB, "call_type"), "{{call_type}}"))),
          12, 8)

    b.row("Call legs by Call Bridge")
    b.add(timeseries("Active legs by Call Bridge",
                     "Call legs (participants) in progress per Call Bridge.", "short",
                     targets((gauge("cms_call_legs_active", CB, "call_bridge"), "{{call_bridge}}")),
                     stack=True), 12, 8)
    b.add(timeseries("Active legs by type and direction",
                     "Call legs in progress by leg type (sip, acano) and direction (incoming, "
                     "outgoing)." + BY_CB, "short",
                     targets((gauge("cms_call_legs_active", CB, "leg_type, direction"),
                              "{{leg_type}} {{direction}}")), stack=True), 12, 8)
    b.add(timeseries("Leg starts and ends by Call Bridge",
                     "callLegStart and callLegEnd records per second per Call Bridge.", "ops",
                     targets(
                         (rate("cms_call_legs_started_total", CB, "call_bridge"), "started {{call_bridge}}"),
                         (rate("cms_call_legs_ended_total", CB, "call_bridge"), "ended {{call_bridge}}"),
                     )), 12, 8)
    b.add(timeseries("Leg starts by type and direction",
                     "callLegStart records per second by leg type and direction." + BY_CB, "ops",
                     targets((rate("cms_call_legs_started_total", CB, "leg_type, direction"),
                              "{{leg_type}} {{direction}}"))), 12, 8)

    b.add(timeseries("Leg starts by participant kind",
                     "callLegStart records per second by participant kind: CMS subType (none: a plain "
                     "SIP endpoint or app; lync, avaya, distributionLink, ...) and guestConnection "
                     "(true: joined as a guest through the web app)." + BY_CB, "ops",
                     targets((rate("cms_call_legs_started_by_kind_total", CB, "sub_type, guest_connection"),
                              "{{sub_type}} guest={{guest_connection}}")), stack=True), 24, 8)

    b.row("Tenants (busiest $topn)")
    b.add(stat("Active calls, selected tenants",
               "Calls in progress of the selected tenants (cms_tenant_calls_active; all tenants: "
               "the same as all Call Bridges)." + BY_TENANT, "short",
               targets(gauge("cms_tenant_calls_active", T))), 4, 4)
    b.add(stat("Active legs, selected tenants",
               "Call legs in progress of the selected tenants, by the tenant of their call."
               + BY_TENANT, "short", targets(gauge("cms_tenant_call_legs_active", T))), 4, 4)
    b.add(stat("Tenants with calls now",
               "How many of the selected tenants have a call in progress (none, unknown and "
               "other count as one each).", "short",
               targets(f"count({gauge('cms_tenant_calls_active', T, 'tenant')} > 0) or vector(0)"),
               graph="none"), 4, 4)
    b.add(timeseries("Active calls and legs, selected tenants",
                     "Calls and legs in progress of the selected tenants (all tenants summed; pick "
                     "one in the Tenant variable to follow it).", "short",
                     targets(
                         (gauge("cms_tenant_calls_active", T), "calls"),
                         (gauge("cms_tenant_call_legs_active", T), "legs"),
                     )), 12, 8)
    busiest = inc("cms_tenant_calls_started_total", T, "tenant", RANGE)
    b.add(bargauge("Busiest tenants: active calls now",
                   "The $topn tenants with the most calls in progress (cms_tenant_calls_active), "
                   "busiest first." + BY_TENANT, "short",
                   worst(gauge("cms_tenant_calls_active", T, "tenant"))), 6, 8)
    b.add(bargauge("Busiest tenants: active legs now",
                   "The $topn tenants with the most call legs in progress "
                   "(cms_tenant_call_legs_active), busiest first." + BY_TENANT, "short",
                   worst(gauge("cms_tenant_call_legs_active", T, "tenant"))), 6, 8)
    b.add(timeseries("Call and leg starts and ends, selected tenants",
                     "callStart, callEnd, callLegStart and callLegEnd records per second of the "
                     "selected tenants (legs by the tenant of their call; unknown if the call had "
                     "not started).", "ops",
                     targets(
                         (rate("cms_tenant_calls_started_total", T), "calls started"),
                         (rate("cms_tenant_calls_ended_total", T), "calls ended"),
                         (rate("cms_tenant_call_legs_started_total", T), "legs started"),
                         (rate("cms_tenant_call_legs_ended_total", T), "legs ended"),
                     )), 12, 8)
    b.add(table("Busiest tenants over the time range",
                "Calls and legs started and ended per tenant over the dashboard's time range: "
                "the $topn tenants with the most calls started." + BY_TENANT, "short",
                [
                    ("Calls started", f"topk($topn, {busiest})"),
                    ("Calls ended", f"{inc('cms_tenant_calls_ended_total', T, 'tenant', RANGE)} "
                                    f"and on (tenant) topk($topn, {busiest})"),
                    ("Legs started", f"{inc('cms_tenant_call_legs_started_total', T, 'tenant', RANGE)} "
                                     f"and on (tenant) topk($topn, {busiest})"),
                    ("Legs ended", f"{inc('cms_tenant_call_legs_ended_total', T, 'tenant', RANGE)} "
                                   f"and on (tenant) topk($topn, {busiest})"),
                ], "Calls started", decimals=0), 12, 8)

    b.row("Durations and participants (by Call Bridge)")
    b.add(timeseries("Call duration",
                     "Median, 90th and 99th percentile and mean of callEnd durationSeconds for "
                     "calls that ended in the interval (cms_call_duration_seconds; buckets 10 s to "
                     "1 day, so quantiles are interpolated)." + BY_CB, "s",
                     targets(*quantiles("cms_call_duration_seconds", CB),
                             (mean("cms_call_duration_seconds", CB), "mean"))), 12, 8)
    b.add(heatmap("Call duration distribution",
                  "Calls ended per interval by duration bucket (increase of "
                  "cms_call_duration_seconds_bucket)." + BY_CB,
                  inc("cms_call_duration_seconds_bucket", CB, "le"), "s"), 12, 8)
    b.add(timeseries("Leg duration",
                     "Median, 90th and 99th percentile and mean of callLegEnd durationSeconds "
                     "(cms_call_leg_duration_seconds)." + BY_CB, "s",
                     targets(*quantiles("cms_call_leg_duration_seconds", CB),
                             (mean("cms_call_leg_duration_seconds", CB), "mean"))), 12, 8)
    b.add(heatmap("Leg duration distribution",
                  "Call legs ended per interval by duration bucket (increase of "
                  "cms_call_leg_duration_seconds_bucket)." + BY_CB,
                  inc("cms_call_leg_duration_seconds_bucket", CB, "le"), "s"), 12, 8)
    b.add(timeseries("Participants per call",
                     "Most legs simultaneously active per call (callEnd callLegsMaxActive): "
                     "median, 90th percentile and mean over calls that ended in the interval."
                     + BY_CB, "short",
                     targets(*quantiles("cms_call_participants_max", CB, qs=(0.5, 0.9)),
                             (mean("cms_call_participants_max", CB), "mean"))), 12, 8)
    b.add(heatmap("Participants per call distribution",
                  "Calls ended per interval by their peak number of participants (increase of "
                  "cms_call_participants_max_bucket)." + BY_CB,
                  inc("cms_call_participants_max_bucket", CB, "le"), "short", y_decimals=0),
          12, 8)

    b.row("Recordings and streamings (by Call Bridge)")
    b.add(timeseries("Recordings and streamings active",
                     "Recordings and streamings in progress per Call Bridge.", "short",
                     targets(
                         (gauge("cms_recordings_active", CB, "call_bridge"), "recordings {{call_bridge}}"),
                         (gauge("cms_streamings_active", CB, "call_bridge"), "streamings {{call_bridge}}"),
                     )), 12, 8)
    b.add(timeseries("Recordings and streamings started and ended",
                     "recordingStart, recordingEnd, streamingStart and streamingEnd records per "
                     "minute." + BY_CB, "cpm",
                     targets(
                         (f"{rate('cms_recordings_started_total', CB)} * 60", "recordings started"),
                         (f"{rate('cms_recordings_ended_total', CB)} * 60", "recordings ended"),
                         (f"{rate('cms_streamings_started_total', CB)} * 60", "streamings started"),
                         (f"{rate('cms_streamings_ended_total', CB)} * 60", "streamings ended"),
                     )), 12, 8)
    for kind in ("recording", "streaming"):
        started = inc(f"cms_tenant_{kind}s_started_total", T, "tenant", RANGE)
        b.add(table(f"Tenants with the most {kind}s",
                    f"{kind.capitalize()}s started over the dashboard's time range and in "
                    f"progress now, by the tenant of the call (cms_tenant_{kind}s_started_total, "
                    f"cms_tenant_{kind}s_active; unknown: the call was never seen): the $topn "
                    f"tenants that started the most, busiest first. Only tenants that {kind[:-3]} "
                    "have these series." + BY_TENANT, "short",
                    [
                        (f"{kind.capitalize()}s started", f"topk($topn, {started})"),
                        (f"{kind.capitalize()}s now",
                         f"{gauge(f'cms_tenant_{kind}s_active', T, 'tenant')} and on (tenant) topk($topn, {started})"),
                    ], f"{kind.capitalize()}s started", decimals=0), 12, 8)
    return b


# ---------------------------------------------------------------- CMS call quality
def quality():
    b = Board(
        "cms-call-quality",
        "CMS call quality",
        "Call quality from CMS callLegEnd records: estimated listening-quality MOS of the audio "
        "received from each participant by Call Bridge and by tenant (worst $topn), packet loss, "
        "alarms, codecs, video resolution, encryption, media usage and leg end reasons (abnormal "
        "ones in red, as the rules define them). An HA pair of exporters counts once.",
        ["cdr-exporter", "cisco-meeting-server", "cms"],
    )
    b.row("MOS by Call Bridge (estimated listening quality of received audio)")
    def below(le, s=CB, m="cms_call_leg_mos", by=""):
        """Share of scored legs at or below `le`."""
        bucket = rate(m + "_bucket", s + ', le="' + le + '"', by)
        return f"{bucket} / {rate(m + '_count', s, by)}"
    b.add(stat("Mean MOS",
               "Mean estimated MOS of legs that ended on the selected Call Bridges (rate of "
               "cms_call_leg_mos_sum over _count, averaged over the range). Bands: >= 4.3 very "
               "good, 3.6-4.3 acceptable, 3.1-3.6 poor, 2.6-3.1 not recommended, < 2.6 very bad."
               + BY_CB, "none", targets(mean("cms_call_leg_mos", CB)), thresholds=MOS_STEPS,
               calc="mean", decimals=2, min_=1, max_=4.5), 6, 5)
    b.add(stat("Legs with MOS ≤ 3.1",
               "Share of scored legs whose MOS estimate is at or below 3.1 (not recommended or "
               "worse): the le=\"3.1\" bucket over the count, averaged over the range." + BY_CB,
               "percentunit", targets(below("3.1")), thresholds=SHARE_STEPS, calc="mean",
               decimals=1), 6, 5)
    b.add(stat("Legs with MOS ≤ 3.6",
               "Share of scored legs whose MOS estimate is at or below 3.6 (poor or worse)."
               + BY_CB, "percentunit", targets(below("3.6")),
               thresholds=steps("green", 0.1, "orange", 0.2, "red"), calc="mean", decimals=1),
          6, 5)
    b.add(stat("Assumed one-way delay (Ta)",
               "mos.assumed_delay_ms in force (cdr_exporter_mos_assumed_delay_seconds): the "
               "delay the E-model assumes, since CMS reports none. 0 = listening quality only.",
               "s", targets(f"max({sel('cdr_exporter_mos_assumed_delay_seconds', J)})"),
               graph="none", color_mode="none"), 6, 5)
    b.add(heatmap("MOS distribution",
                  "Legs ended per interval by MOS band (increase of cms_call_leg_mos_bucket; "
                  "bucket bounds 1, 2, 2.6, 3.1, 3.6, 4, 4.3, 4.5 follow the MOS bands)." + BY_CB,
                  inc("cms_call_leg_mos_bucket", CB, "le"), "none", scheme="Blues",
                  y_decimals=1, thresholds=MOS_STEPS), 12, 9)
    b.add(timeseries("MOS percentiles and mean",
                     "10th percentile, median and mean MOS of legs that ended in the interval; "
                     "background bands are the MOS bands (red < 2.6 < orange < 3.1 < yellow < "
                     "3.6 < green < 4.3 < dark green)." + BY_CB, "none",
                     targets(*quantiles("cms_call_leg_mos", CB, qs=(0.1, 0.5)),
                             (mean("cms_call_leg_mos", CB), "mean")),
                     thresholds=MOS_STEPS, threshold_style="line+area", min_=1, max_=4.5,
                     decimals=2), 12, 9)
    b.add(timeseries("Share of legs with MOS ≤ 3.1 by Call Bridge",
                     "Legs ended with MOS at or below 3.1 divided by all legs with an estimate, "
                     "per Call Bridge (le=\"3.1\" bucket over _count). CdrLowMos (node scope) pages "
                     "above 10 % of at least 100 legs in 15 minutes.", "percentunit",
                     targets((below("3.1", by="call_bridge"), "{{call_bridge}}")),
                     thresholds=SHARE_STEPS, threshold_style="line", max_=1), 8, 8)
    b.add(timeseries("Share of legs with MOS ≤ 3.6 by Call Bridge",
                     "Legs ended with MOS at or below 3.6 divided by all legs with an estimate, "
                     "per Call Bridge.", "percentunit",
                     targets((below("3.6", by="call_bridge"), "{{call_bridge}}")),
                     thresholds=steps("green", 0.1, "orange", 0.2, "red"), threshold_style="line",
                     max_=1), 8, 8)
    b.add(timeseries("Mean MOS by Call Bridge",
                     "Mean estimated MOS of legs ended in the interval, per Call Bridge, against "
                     "the MOS bands.", "none",
                     targets((mean("cms_call_leg_mos", CB, "call_bridge"), "{{call_bridge}}")),
                     thresholds=MOS_STEPS, threshold_style="line+area", min_=1, max_=4.5,
                     decimals=2), 8, 8)
    b.add(timeseries("Legs without a MOS estimate by reason",
                     "Legs ended without an estimate per interval: no_audio (no rxAudio), "
                     "no_packet_statistics, invalid_values. These are never scored as perfect."
                     + BY_CB, "short",
                     targets((inc("cms_call_leg_mos_unavailable_total", CB, "reason"), "{{reason}}")),
                     stack=True), 24, 7)

    b.row("MOS by tenant (worst $topn over the time range)")
    tscored = inc("cms_tenant_call_leg_mos_count", T, "tenant", RANGE)
    tended = inc("cms_tenant_call_legs_ended_total", T, "tenant", RANGE)
    def tbelow(le):
        return inc("cms_tenant_call_leg_mos_bucket", T + ', le="' + le + '"', "tenant", RANGE)
    b.add(bargauge("Worst tenants: share of legs with MOS ≤ 3.1",
                   "Per tenant, scored legs with MOS at or below 3.1 over all scored legs, for "
                   "tenants with at least $min_legs scored legs (variable)." + OVER_RANGE,
                   "percentunit", worst(share_by_tenant(tbelow("3.1"), tscored)),
                   thresholds=SHARE_STEPS, max_=1, decimals=1), 8, 9)
    b.add(bargauge("Worst tenants: share of legs with MOS ≤ 3.6",
                   "Per tenant, scored legs with MOS at or below 3.6 over all scored legs, for "
                   "tenants with at least $min_legs scored legs." + OVER_RANGE, "percentunit",
                   worst(share_by_tenant(tbelow("3.6"), tscored)),
                   thresholds=steps("green", 0.1, "orange", 0.2, "red"), max_=1, decimals=1),
          8, 9)
    b.add(bargauge("Worst tenants: mean MOS",
                   "Per tenant, the mean estimated MOS of its scored legs, lowest first, for "
                   "tenants with at least $min_legs scored legs." + OVER_RANGE, "none",
                   worst(share_by_tenant(inc("cms_tenant_call_leg_mos_sum", T, "tenant", RANGE),
                                         tscored), "bottomk"),
                   thresholds=MOS_STEPS, min_=1, max_=4.5, decimals=2), 8, 9)
    b.add(heatmap("MOS distribution, selected tenants",
                  "Legs ended per interval by MOS band, of the selected tenants "
                  "(cms_tenant_call_leg_mos_bucket): pick one in the Tenant variable." + BY_TENANT,
                  inc("cms_tenant_call_leg_mos_bucket", T, "le"), "none", scheme="Blues",
                  y_decimals=1, thresholds=MOS_STEPS), 8, 9)
    b.add(timeseries("MOS percentiles and mean, selected tenants",
                     "10th percentile, median and mean MOS of the selected tenants' legs that "
                     "ended in the interval, against the MOS bands." + BY_TENANT, "none",
                     targets(*quantiles("cms_tenant_call_leg_mos", T, qs=(0.1, 0.5)),
                             (mean("cms_tenant_call_leg_mos", T), "mean")),
                     thresholds=MOS_STEPS, threshold_style="line+area", min_=1, max_=4.5,
                     decimals=2), 8, 9)
    b.add(timeseries("Share of legs with MOS ≤ 3.1 and ≤ 3.6, selected tenants",
                     "Scored legs of the selected tenants at or below 3.1 and 3.6 over all "
                     "their scored legs. CdrLowMos (tenant scope) warns above 10 % (≤ 3.1) of at least 50 legs "
                     "in 15 minutes." + BY_TENANT, "percentunit",
                     targets(
                         (below("3.1", T, "cms_tenant_call_leg_mos"), "≤ 3.1"),
                         (below("3.6", T, "cms_tenant_call_leg_mos"), "≤ 3.6"),
                     ), thresholds=SHARE_STEPS, threshold_style="line", max_=1), 8, 9)
    b.add(bargauge("Worst tenants: legs without a MOS estimate",
                   "Per tenant, legs that ended without a MOS estimate (no audio, no packet "
                   "statistics, invalid values) over all its ended legs, for tenants with at least "
                   "$min_legs ended legs." + OVER_RANGE, "percentunit",
                   worst(share_by_tenant(
                       inc("cms_tenant_call_leg_mos_unavailable_total", T, "tenant", RANGE), tended)),
                   thresholds=steps("green", 0.2, "orange", 0.5, "red"), max_=1, decimals=1), 8, 9)
    b.add(table("Worst tenants: legs with alarms",
                "The $topn (tenant, alarm) pairs with the largest share of the tenant's ended legs "
                "that raised the alarm (packetLoss, excessiveJitter, highRoundTripTime), for "
                "tenants with at least $min_legs ended legs, over the dashboard's time range."
                + BY_TENANT, "percentunit",
                [("Share of ended legs",
                  f"topk($topn, {inc('cms_tenant_call_legs_with_alarm_total', T, 'tenant, alarm', RANGE)}"
                  f" / on (tenant) group_left () ({tended} >= $min_legs))")],
                "Share of ended legs", thresholds=SHARE_STEPS, decimals=1), 8, 9)
    b.add(timeseries("Alarms and legs without MOS, selected tenants",
                     "Legs of the selected tenants that raised each alarm type, and legs that "
                     "ended without a MOS estimate, per interval." + BY_TENANT, "short",
                     targets(
                         (inc("cms_tenant_call_legs_with_alarm_total", T, "alarm"), "{{alarm}}"),
                         (inc("cms_tenant_call_leg_mos_unavailable_total", T), "no MOS estimate"),
                     )), 8, 9)

    b.row("Packet loss and alarms (by Call Bridge)")
    for media in ("audio", "video"):
        s = f'{CB}, media="{media}"'
        b.add(timeseries(f"Received {media} packet loss",
                         f"Median, 90th and 99th percentile and mean of the received {media} "
                         "packet loss per leg (time-weighted burst and gap density, "
                         "cms_call_leg_packet_loss_ratio), over legs ended in the interval."
                         + BY_CB, "percentunit",
                         targets(*quantiles("cms_call_leg_packet_loss_ratio", s),
                                 (mean("cms_call_leg_packet_loss_ratio", s), "mean")),
                         thresholds=steps("green", 0.005, "orange", 0.009, "red"),
                         threshold_style="line", decimals=2), 8, 8)
    audio = CB + ', media="audio"'
    lossy = rate("cms_call_leg_packet_loss_ratio_bucket", audio + ', le="0.01"', "call_bridge")
    scored = rate("cms_call_leg_packet_loss_ratio_count", audio, "call_bridge")
    b.add(timeseries("Share of legs with > 1 % received audio loss by Call Bridge",
                     "Legs whose received audio loss exceeds 1 % (1 minus the le=\"0.01\" bucket "
                     "over the count), per Call Bridge.", "percentunit",
                     targets((f"1 - {lossy} / {scored}", "{{call_bridge}}")),
                     thresholds=SHARE_STEPS, threshold_style="line", max_=1), 8, 8)
    b.add(heatmap("Received audio packet loss distribution",
                  "Legs ended per interval by received audio loss bucket (0.1 % to 50 %)." + BY_CB,
                  inc("cms_call_leg_packet_loss_ratio_bucket", CB + ', media="audio"', "le"),
                  "percentunit"), 8, 8)
    b.add(timeseries("Alarm time by type",
                     "Seconds legs spent in an alarm condition per interval "
                     "(durationPercentage x durationSeconds / 100 of callLegEnd alarms: packetLoss, "
                     "excessiveJitter, highRoundTripTime)." + BY_CB, "s",
                     targets((inc("cms_call_leg_alarm_seconds_total", CB, "alarm"), "{{alarm}}")),
                     stack=True), 8, 8)
    b.add(timeseries("Share of leg time in alarm",
                     "Alarm seconds by type divided by the total duration of the legs that ended "
                     "in the same interval." + BY_CB, "percentunit",
                     targets((f"{rate('cms_call_leg_alarm_seconds_total', CB, 'alarm')} / ignoring (alarm) "
                              f"group_left () {rate('cms_call_leg_duration_seconds_sum', CB)}",
                              "{{alarm}}")),
                     decimals=2), 8, 8)
    b.add(timeseries("Legs with alarms by type and Call Bridge",
                     "Legs that raised each alarm type at least once, per interval "
                     "(cms_call_legs_with_alarm_total). CmsPacketLossAlarms warns when more than "
                     "20 % of a Call Bridge's legs raise packetLoss.", "short",
                     targets((inc("cms_call_legs_with_alarm_total", CB, "alarm, call_bridge"),
                              "{{alarm}} @ {{call_bridge}}")), stack=True), 8, 8)

    b.row("Media (by Call Bridge)")
    b.add(timeseries("Audio codec mix (streams)",
                     "Audio streams of ended legs per interval by codec and direction (rx = "
                     "received from the participant, tx = sent to it)." + BY_CB, "short",
                     targets((inc("cms_call_leg_media_streams_total", CB + ', media="audio"',
                                  "codec, direction"), "{{codec}} {{direction}}")),
                     stack=True), 8, 8)
    b.add(timeseries("Video codec mix (streams)",
                     "Video streams of ended legs per interval by codec and direction." + BY_CB,
                     "short",
                     targets((inc("cms_call_leg_media_streams_total", CB + ', media="video"',
                                  "codec, direction"), "{{codec}} {{direction}}")),
                     stack=True), 8, 8)
    b.add(timeseries("Codec mix by time (received)",
                     "Leg time per interval by received codec (cms_call_leg_media_seconds_total, "
                     "direction rx): which codecs carry the minutes." + BY_CB, "s",
                     targets((inc("cms_call_leg_media_seconds_total", CB + ', direction="rx"',
                                  "media, codec"), "{{media}} {{codec}}")),
                     stack=True), 8, 8)
    b.add(heatmap("Received video resolution",
                  "Legs ended per interval by the largest received video height (maxSizeHeight of "
                  "rxVideo; buckets 144 to 2160 pixels)." + BY_CB,
                  inc("cms_call_leg_video_max_height_pixels_bucket", CB + ', direction="rx"', "le"),
                  "none", scheme="Greens", y_decimals=0), 8, 8)
    b.add(timeseries("Video height (median)",
                     "Median of the largest video height per leg, received (rx) and sent (tx), in "
                     "pixels." + BY_CB, "none",
                     targets((f"histogram_quantile(0.5, {rate('cms_call_leg_video_max_height_pixels_bucket', CB, 'le, direction')})",
                              "p50 {{direction}}")), decimals=0), 8, 8)
    b.add(timeseries("Media encryption",
                     "Share of ended legs by media encryption: encrypted, unencrypted, both, none "
                     "(neither field present)." + BY_CB, "percentunit",
                     targets((f"{rate('cms_call_legs_encryption_total', CB, 'encryption')} / ignoring "
                              f"(encryption) group_left () {rate('cms_call_legs_encryption_total', CB)}",
                              "{{encryption}}")),
                     stack=True, max_=1, overrides=[red_override("unencrypted")]), 8, 8)
    b.add(timeseries("Media usage",
                     "Share of leg time spent as main video viewer or contributor, presentation "
                     "viewer or contributor, and in multistream (mediaUsagePercentages x "
                     "durationSeconds over the legs' total duration)." + BY_CB, "percentunit",
                     targets((f"{rate('cms_call_leg_media_usage_seconds_total', CB, 'usage')} / ignoring "
                              f"(usage) group_left () {rate('cms_call_leg_duration_seconds_sum', CB)}",
                              "{{usage}}")), max_=1), 24, 8)

    b.row("Leg end reasons (by Call Bridge; abnormal ones in red)")
    abnormal_note = (" Abnormal = the reasons in the rules parameter abnormal_ends_reasons, read "
                     "from the recording rule cms:call_leg_end_reason:abnormal (empty if the "
                     "shipped rules are not loaded).")
    ends = dd(f"rate({sel('cms_call_legs_ended_total', CB)}[{RI}])")
    b.add(timeseries("Leg ends by reason",
                     "callLegEnd records per second by reason; abnormal reasons are drawn in red."
                     + abnormal_note + BY_CB, "ops",
                     targets(
                         (f"sum by (reason) ({ends} unless on (reason) {ABNORMAL})", "{{reason}}"),
                         (f"sum by (reason) ({ends} and on (reason) {ABNORMAL})", "{{reason}} (abnormal)"),
                     ), stack=True, overrides=[red_ref("B")]), 12, 9)
    b.add(timeseries("Abnormal leg ends by reason and Call Bridge",
                     "Only the abnormal end reasons, per second, per reason and Call Bridge."
                     + abnormal_note, "ops",
                     targets((f"sum by (reason, call_bridge) ({ends} and on (reason) {ABNORMAL})",
                              "{{reason}} @ {{call_bridge}}")),
                     stack=True, overrides=[red_ref("A")]), 12, 9)
    b.add(timeseries("Share of abnormal leg ends by Call Bridge",
                     "Legs ended with an abnormal reason divided by all legs ended, per Call "
                     "Bridge. CmsAbnormalLegEnds warns above 10 % of at least 50 legs in 15 "
                     "minutes." + abnormal_note, "percentunit",
                     targets((f"(sum by (call_bridge) ({ends} and on (reason) {ABNORMAL}) or "
                              f"{rate('cms_call_legs_ended_total', CB, 'call_bridge')} * 0) / "
                              f"{rate('cms_call_legs_ended_total', CB, 'call_bridge')}",
                              "{{call_bridge}}")),
                     thresholds=SHARE_STEPS, threshold_style="line", max_=1), 8, 8)
    b.add(timeseries("Leg ends by side",
                     "callLegEnd records per second by which side tore the leg down "
                     "(remote_teardown true = the participant's side, false = the Meeting Server, "
                     "unknown = not reported)." + BY_CB, "ops",
                     targets((rate("cms_call_legs_ended_total", CB, "remote_teardown"),
                              "remote teardown {{remote_teardown}}")), stack=True), 8, 8)
    b.add(timeseries("Leg ends, selected tenants",
                     "callLegEnd records per second of the selected tenants (by reason only with "
                     "labels.tenant_detail = full; the reasons by Call Bridge are above)."
                     + BY_TENANT, "ops",
                     targets((rate("cms_tenant_call_legs_ended_total", T), "legs ended"))), 8, 8)
    return b


# ---------------------------------------------------------------- receiver health
def health():
    b = Board(
        "cdr-receiver-health",
        "CDR receiver health",
        "cdr-exporter itself: records and batches received per Call Bridge and receiver, "
        "duplicates, gaps, invalid and rejected input, Call Bridge silence and restarts, HA "
        "replicas, FreeSWITCH and Kamailio senders (silence, retries, invalid fields, dedupe "
        "memory), HTTP requests, correlation state, series and label caps, durability and the "
        "process.",
        ["cdr-exporter", "cisco-meeting-server", "freeswitch", "kamailio"],
        senders=True,
    )
    b.annotations.append(restart_annotation("{{call_bridge}}: new CDR session"))
    b.annotations.append({
        "datasource": dict(DS),
        "enable": True,
        "expr": f"changes({sel('process_start_time_seconds', J)}[{RI}]) > 0",
        "hide": False,
        "iconColor": "purple",
        "name": "Exporter restarts",
        "step": "60s",
        "titleFormat": "cdr-exporter restarted",
        "textFormat": "{{instance}}",
    })
    age_steps = steps("green", 600, "orange", 1800, "red")
    per_receiver = " Per receiver (instance): the two exporters of an HA pair are shown apart."
    b.row("Status")
    b.add(stat("Exporter up",
               "Whether Prometheus could scrape each cdr-exporter instance (up).", "none",
               targets((f"up{{{J}}}", "{{instance}}")),
               thresholds=steps("red", 1, "green"), graph="none", color_mode="background",
               mappings=[{"type": "value", "options": {
                   "0": {"text": "DOWN", "color": "red", "index": 0},
                   "1": {"text": "UP", "color": "green", "index": 1}}}]), 4, 4)
    b.add(stat("Version",
               "cdr-exporter version (cdr_exporter_build_info).", "none",
               targets((sel("cdr_exporter_build_info", J), "{{version}}")), text_mode="name",
               graph="none", color_mode="none"), 4, 4)
    b.add(stat("Uptime",
               "Time since the exporter process started (process_start_time_seconds); the "
               "youngest of the selected instances.", "s",
               targets(f"min(time() - {sel('process_start_time_seconds', J)})"), graph="none",
               color_mode="none"), 4, 4)
    b.add(stat("Records / s",
               "CDR records applied per second (duplicates excluded), all types, an HA pair "
               "counted once.", "recps",
               targets(rate("cdr_exporter_records_total", CB)), decimals=2), 4, 4)
    b.add(stat("Oldest last batch",
               "Seconds since the most silent selected Call Bridge last had a batch accepted by "
               "any receiver (exporter clock). CMS sends nothing while idle, so a quiet Call "
               "Bridge at night is normal; compare with its active calls.", "s",
               targets(f"max(time() - max by (job, call_bridge) ({sel('cdr_exporter_last_batch_timestamp_seconds', CB)}))"),
               thresholds=age_steps, graph="none"), 4, 4)
    b.add(stat("Records lost (every receiver)",
               "Records the Call Bridges discarded before they reached any receiver in the last "
               "rate interval (the fewest lost by one receiver: an HA peer may have the rest), "
               "from correlatorIndex gaps and numPreceedingRecordsMissing.", "short",
               targets(f"sum(min by (job, call_bridge) (increase({sel('cdr_exporter_records_missing_total', CB)}[{RI}]))) or vector(0)"),
               thresholds=steps("green", 1, "red"), decimals=0), 4, 4)

    b.row("Records and batches")
    b.add(timeseries("Records applied by type",
                     "CDR records applied per second by record type (duplicates excluded).",
                     "recps",
                     targets((rate("cdr_exporter_records_total", CB, "record_type"), "{{record_type}}")),
                     stack=True), 12, 8)
    b.add(timeseries("Records applied by Call Bridge",
                     "CDR records applied per second per Call Bridge.", "recps",
                     targets((rate("cdr_exporter_records_total", CB, "call_bridge"), "{{call_bridge}}")),
                     stack=True), 12, 8)
    b.add(timeseries("Batches accepted by Call Bridge and receiver",
                     "CDR POST bodies accepted (answered 200) per second." + per_receiver, "reqps",
                     targets((f"sum by (call_bridge, instance) (rate({sel('cdr_exporter_batches_total', CB)}[{RI}]))",
                              "{{call_bridge}} @ {{instance}}"))), 8, 8)
    b.add(timeseries("Duplicate records",
                     "Records received again (same session and correlatorIndex, e.g. the Call "
                     "Bridge did not see the 200) and skipped, per interval." + per_receiver,
                     "short",
                     targets((f"sum by (call_bridge, instance) (increase({sel('cdr_exporter_records_duplicate_total', CB)}[{RI}]))",
                              "{{call_bridge}} @ {{instance}}"))), 8, 8)
    b.add(timeseries("Missing records",
                     "Records lost before reaching each receiver per interval (the Call Bridge "
                     "discarded them while that receiver was unreachable). With an HA pair, a gap "
                     "on one receiver only is no data loss: CmsCdrRecordsMissing pages when every "
                     "receiver lost records." + per_receiver, "short",
                     targets((f"sum by (call_bridge, instance) (increase({sel('cdr_exporter_records_missing_total', CB)}[{RI}]))",
                              "{{call_bridge}} @ {{instance}}")),
                     thresholds=steps("green", 1, "red"), threshold_style="line"), 8, 8)
    b.add(timeseries("Invalid records by reason",
                     "Records in well-formed batches that could not be used, per interval, by "
                     "reason and Call Bridge.", "short",
                     targets((inc("cdr_exporter_records_invalid_total", CB, "reason, call_bridge"),
                              "{{reason}} @ {{call_bridge}}")), stack=True), 8, 8)
    b.add(timeseries("Unmatched records",
                     "Update and end records for objects the exporter was not tracking (it started "
                     "mid-call, or the start record was lost), per interval.", "short",
                     targets((inc("cdr_exporter_records_unmatched_total", CB, "record_type, call_bridge"),
                              "{{record_type}} @ {{call_bridge}}")), stack=True), 8, 8)
    b.add(timeseries("Batches rejected by reason",
                     "CDR POST bodies rejected whole per interval, by reason and receiver. "
                     "Rejected bodies are kept in data_dir/quarantine. Not attributable to a Call "
                     "Bridge. One stray rejection is noise; CdrExporterRejectingBatches opens a "
                     "ticket when they go on.", "short",
                     targets((f"sum by (reason, instance) (increase({sel('cdr_exporter_batches_rejected_total', J)}[{RI}]))",
                              "{{reason}} @ {{instance}}")),
                     stack=True), 8, 8)

    b.row("Call Bridges and HA replicas")
    b.add(timeseries("Age of the last batch per Call Bridge and receiver",
                     "Seconds since each receiver last accepted a batch from each Call Bridge "
                     "(time() - cdr_exporter_last_batch_timestamp_seconds, exporter clock). Rising "
                     "steadily while calls are active means the Call Bridge stopped sending."
                     + per_receiver, "s",
                     targets((f"time() - {sel('cdr_exporter_last_batch_timestamp_seconds', CB)}",
                              "{{call_bridge}} @ {{instance}}")),
                     thresholds=age_steps, threshold_style="line"), 8, 8)
    b.add(timeseries("Age of the last record per Call Bridge",
                     "Seconds since the time attribute of the newest record applied (time() - "
                     "cdr_exporter_last_record_timestamp_seconds, Call Bridge clock). The "
                     "difference to the batch age is clock skew or a backlog being sent.", "s",
                     targets((f"time() - {agg('call_bridge', sel('cdr_exporter_last_record_timestamp_seconds', CB), 'max')}",
                              "{{call_bridge}}")),
                     thresholds=age_steps, threshold_style="line"), 8, 8)
    b.add(timeseries("HA replicas: how far each receiver is behind",
                     "Per Call Bridge and receiver, how much older its last batch is than the "
                     "freshest receiver's of the same job: 0 for a single exporter and for a "
                     "healthy pair. CmsCdrReplicaBehind warns above 15 minutes.", "s",
                     targets((f"max by (job, call_bridge) ({sel('cdr_exporter_last_batch_timestamp_seconds', CB)}) "
                              f"- on (job, call_bridge) group_right () {sel('cdr_exporter_last_batch_timestamp_seconds', CB)}",
                              "{{call_bridge}} @ {{instance}}")),
                     thresholds=steps("green", 900, "orange"), threshold_style="line"), 8, 8)
    b.add(timeseries("Call Bridge restarts",
                     "New CDR sessions per interval after the first (increase of "
                     "cdr_exporter_sessions_total): each is a Call Bridge restart, whose calls, "
                     "legs, recordings and streamings the exporter ended.", "short",
                     targets((inc("cdr_exporter_sessions_total", CB, "call_bridge"), "{{call_bridge}}")),
                     bars=True, thresholds=steps("green", 1, "orange")), 24, 6)

    b.row("FreeSWITCH and Kamailio senders")
    sender_steps = steps("green", 1800, "orange", 3600, "red")
    b.add(timeseries("CDRs and reports received",
                     "FreeSWITCH CDRs (one per leg, duplicates excluded) per switch and rtpengine "
                     "reports (one per call) per Kamailio node, per second and receiver. Each is "
                     "sent to one exporter (mod_xml_cdr tries its urls in turn), so after a "
                     "failover the traffic moves from one receiver to the other." + per_receiver,
                     "ops",
                     targets(
                         (f"sum by (switch, instance) (rate({sel('freeswitch_cdr_legs_total', FS)}[{RI}]))",
                          "FreeSWITCH {{switch}} @ {{instance}}"),
                         (f"sum by (node, instance) (rate({sel('kamailio_rtpengine_calls_total', KN)}[{RI}]))",
                          "Kamailio {{node}} @ {{instance}}"),
                     )), 8, 8)
    b.add(timeseries("Age of the last CDR or report per sender",
                     "Seconds since each receiver last accepted a CDR from each FreeSWITCH switch "
                     "(freeswitch_cdr_last_received_timestamp_seconds) or a report from each "
                     "Kamailio node (kamailio_rtpengine_last_report_timestamp_seconds), exporter "
                     "clock. Senders report only when calls end: a quiet night is not an outage; "
                     "CdrSourceSilent warns when a sender that was busy at this time a week ago "
                     "stays silent." + per_receiver, "s",
                     targets(
                         (f"time() - {sel('freeswitch_cdr_last_received_timestamp_seconds', FS)}",
                          "FreeSWITCH {{switch}} @ {{instance}}"),
                         (f"time() - {sel('kamailio_rtpengine_last_report_timestamp_seconds', KN)}",
                          "Kamailio {{node}} @ {{instance}}"),
                     ), thresholds=sender_steps, threshold_style="line"), 8, 8)
    b.add(timeseries("Retries recognised (duplicates)",
                     "CDRs and reports received again per interval and not counted: the same "
                     "switch and leg uuid (freeswitch_cdr_duplicates_total), the same node, Call-ID, "
                     "tags and labels (kamailio_rtpengine_reports_duplicate_total). A retry after "
                     "a lost 200 is normal; a steady stream means the sender does not see the "
                     "answers." + per_receiver, "short",
                     targets(
                         (f"sum by (switch, instance) (increase({sel('freeswitch_cdr_duplicates_total', FS)}[{RI}]))",
                          "FreeSWITCH {{switch}} @ {{instance}}"),
                         (f"sum by (node, instance) (increase({sel('kamailio_rtpengine_reports_duplicate_total', KN)}[{RI}]))",
                          "Kamailio {{node}} @ {{instance}}"),
                     )), 8, 8)
    b.add(timeseries("Invalid fields by reason",
                     "Values of FreeSWITCH CDRs (freeswitch_cdr_invalid_fields_total) and rtpengine "
                     "reports (kamailio_rtpengine_report_invalid_fields_total) that were present "
                     "but unusable, per interval, by reason and sender; the rest of the CDR or "
                     "report was applied.", "short",
                     targets(
                         (f"sum by (switch, reason) (increase({sel('freeswitch_cdr_invalid_fields_total', FS)}[{RI}]))",
                          "FreeSWITCH {{switch}} {{reason}}"),
                         (f"sum by (node, reason) (increase({sel('kamailio_rtpengine_report_invalid_fields_total', KN)}[{RI}]))",
                          "Kamailio {{node}} {{reason}}"),
                     ), stack=True), 8, 8)
    b.add(timeseries("Dedupe memory",
                     "FreeSWITCH legs and rtpengine calls remembered to recognise retries "
                     "(cdr_exporter_dedupe_entries; dedupe.max_entries each)." + per_receiver,
                     "short",
                     targets((f"sum by (source, instance) ({sel('cdr_exporter_dedupe_entries', J)})",
                              "{{source}} @ {{instance}}"))), 8, 8)
    b.add(timeseries("Dedupe entries forgotten",
                     "Entries the dedupe memories forgot per interval, by source and reason "
                     "(max_age: older than dedupe.max_age_seconds; max_entries: the memory was "
                     "full). A retry of a forgotten CDR or report would count again; max_entries "
                     "above 0 means the memory is too small for the traffic." + per_receiver,
                     "short",
                     targets((f"sum by (source, reason, instance) (increase({sel('cdr_exporter_dedupe_forgotten_total', J)}[{RI}]))",
                              "{{source}} {{reason}} @ {{instance}}"))), 8, 8)

    b.row("HTTP")
    b.add(timeseries("HTTP requests by route and status",
                     "Requests answered per second by route (/cdr, /freeswitch/cdr, /kamailio/mos, "
                     "/metrics, ...; other: no route) and status code (cdr_exporter_http_requests_total); "
                     "5xx in red." + per_receiver, "reqps",
                     targets((f"sum by (path, code, instance) (rate({sel('cdr_exporter_http_requests_total', J)}[{RI}]))",
                              "{{path}} {{code}} @ {{instance}}")),
                     overrides=[red_override(".* 5\\d\\d @ .*")]), 12, 8)
    b.add(timeseries("HTTP request duration",
                     "Median and 99th percentile of the time from request to answer by route "
                     "(cdr_exporter_http_request_duration_seconds; for POSTs body read, journal and "
                     "apply: a slow journal fsync shows here first)." + per_receiver, "s",
                     targets(
                         (f"histogram_quantile(0.5, sum by (le, path, instance) (rate({sel('cdr_exporter_http_request_duration_seconds_bucket', J)}[{RI}])))",
                          "p50 {{path}} @ {{instance}}"),
                         (f"histogram_quantile(0.99, sum by (le, path, instance) (rate({sel('cdr_exporter_http_request_duration_seconds_bucket', J)}[{RI}])))",
                          "p99 {{path}} @ {{instance}}"),
                         (f"sum by (path, instance) (rate({sel('cdr_exporter_http_request_duration_seconds_sum', J)}[{RI}])) / "
                          f"sum by (path, instance) (rate({sel('cdr_exporter_http_request_duration_seconds_count', J)}[{RI}]))",
                          "mean {{path}} @ {{instance}}"),
                     )), 12, 8)

    b.row("Correlation state, series and labels")
    b.add(timeseries("Tracked objects",
                     "Calls, call legs, recordings, streamings and sessions held in memory awaiting "
                     "their end record (cdr_exporter_tracked_objects)." + per_receiver, "short",
                     targets((f"sum by (instance, kind) ({sel('cdr_exporter_tracked_objects', J)})",
                              "{{kind}} @ {{instance}}"))), 8, 8)
    b.add(timeseries("Evicted objects",
                     "Objects dropped without an end record per interval, by kind and reason "
                     "(max_age, max_objects, restart, call_ended, max_sessions).", "short",
                     targets((inc("cdr_exporter_evicted_objects_total", J, "kind, reason"),
                              "{{kind}} {{reason}}")), stack=True), 8, 8)
    b.add(timeseries("Label overflow",
                     "Label values replaced by other per interval, by label and cause: the "
                     "label's cap on distinct values was reached (max_values: "
                     "labels.max_call_bridges, labels.max_tenants, labels.max_values) or the value "
                     "was longer than labels.max_value_bytes (too_long). A tenant reported as other "
                     "never raises CdrLowMos.", "short",
                     targets((inc("cdr_exporter_label_overflow_total", J, "label, cause"),
                              "{{label}} {{cause}}")),
                     thresholds=steps("green", 1, "orange"), threshold_style="line"), 8, 8)
    b.add(timeseries("Series stored",
                     "Series held in all metric families (cdr_exporter_series); labels.max_series "
                     "(150,000 by default) is the budget: beyond it new label combinations are "
                     "reported under other." + per_receiver, "short",
                     targets((f"sum by (instance) ({sel('cdr_exporter_series', J)})", "{{instance}}"))),
          12, 8)
    b.add(timeseries("Series budget exceeded by family",
                     "Updates reported under the family's other series per interval because "
                     "labels.max_series was reached (cdr_exporter_series_budget_exceeded_total). "
                     "Anything above 0: raise the budget or lower the detail.", "short",
                     targets((inc("cdr_exporter_series_budget_exceeded_total", J, "family"), "{{family}}")),
                     thresholds=steps("green", 1, "orange"), threshold_style="line"), 12, 8)

    b.row("Durability and bounds")
    b.add(stat("Last start: batches lost",
               "Acknowledged batches the last start could not replay (damaged journal entries, "
               "or no readable snapshot and a journal that no longer reaches back to the start). "
               "Anything above 0 is data loss: see the runbook.", "short",
               targets(f"max({sel('cdr_exporter_recovery_lost_batches', J)})"),
               thresholds=steps("green", 1, "red"), decimals=0), 4, 4)
    b.add(stat("Last start: unreadable snapshots",
               "Snapshots that could not be read at the last start (moved to "
               "data_dir/snapshots/damaged). An older snapshot and a longer replay were used.",
               "short", targets(f"max({sel('cdr_exporter_recovery_unreadable_snapshots', J)})"),
               thresholds=steps("green", 1, "orange"), decimals=0), 4, 4)
    b.add(stat("Last start: state incomplete",
               "1 if the last start could not rebuild the whole state.", "short",
               targets(f"max({sel('cdr_exporter_recovery_incomplete', J)})"),
               thresholds=steps("green", 1, "red"), decimals=0), 4, 4)
    b.add(stat("Last start: journal replayed",
               "Batches replayed from the journal at the last start, and bytes of the journal "
               "that were not a valid entry (torn writes, damage) and were skipped.", "short",
               targets((f"max({sel('cdr_exporter_recovery_replayed_batches', J)})", "batches"),
                       (f"max({sel('cdr_exporter_recovery_corrupt_bytes', J)})", "corrupt bytes")),
               decimals=0), 4, 4)
    b.add(stat("Snapshot age",
               "Seconds since the last snapshot was written (snapshot.interval_seconds apart; "
               "the journal grows until one succeeds). The gauge is 0 until the first snapshot "
               "after a start.", "s",
               targets(f"max(time() - {sel('cdr_exporter_snapshot_last_success_timestamp_seconds', J)})"),
               thresholds=steps("green", 900, "orange", 3600, "red"), graph="none"), 4, 4)
    b.add(stat("Snapshot: batches held back",
               "How long the last snapshot held batches back while it copied the state, and how "
               "long it took in all (serialising and writing happen while batches flow).", "s",
               targets((f"max({sel('cdr_exporter_snapshot_last_gate_seconds', J)})", "held back"),
                       (f"max({sel('cdr_exporter_snapshot_last_duration_seconds', J)})", "total")),
               decimals=3), 4, 4)
    b.add(timeseries("Journal",
                     "Batches appended and fsync calls per second (concurrent batches share one "
                     "fsync), and failed writes per interval (each answered 503)." + per_receiver,
                     "short",
                     targets(
                         (f"sum by (instance) (rate({sel('cdr_exporter_journal_appends_total', J)}[{RI}]))", "appends/s {{instance}}"),
                         (f"sum by (instance) (rate({sel('cdr_exporter_journal_fsyncs_total', J)}[{RI}]))", "fsyncs/s {{instance}}"),
                         (f"sum by (instance) (increase({sel('cdr_exporter_journal_errors_total', J)}[{RI}]))", "errors {{instance}}"),
                     ), overrides=[red_ref("C")]), 8, 8)
    b.add(timeseries("Journal fsync time",
                     "Mean time of one journal fsync, and bytes written to the journal per "
                     "second." + per_receiver, "s",
                     targets(
                         (f"sum by (instance) (rate({sel('cdr_exporter_journal_fsync_seconds_total', J)}[{RI}])) / "
                          f"sum by (instance) (rate({sel('cdr_exporter_journal_fsyncs_total', J)}[{RI}]))", "per fsync {{instance}}"),
                         (f"sum by (instance) (rate({sel('cdr_exporter_journal_written_bytes_total', J)}[{RI}]))",
                          "bytes/s {{instance}}"),
                     )), 8, 8)
    b.add(timeseries("Quarantine and suppressed log lines",
                     "Rejected bodies kept in data_dir/quarantine (files and bytes), bodies not "
                     "kept or removed to stay within quarantine_max_bytes / quarantine_max_files, "
                     "and log lines suppressed because their call site wrote 10 in 10 s, per "
                     "interval." + per_receiver, "short",
                     targets(
                         (f"sum by (instance) ({sel('cdr_exporter_quarantine_files', J)})", "files kept {{instance}}"),
                         (f"sum by (instance) ({sel('cdr_exporter_quarantine_bytes', J)})", "bytes kept {{instance}}"),
                         (f"sum by (instance) (increase({sel('cdr_exporter_quarantine_dropped_total', J)}[{RI}]))",
                          "bodies dropped {{instance}}"),
                         (f"sum by (instance) (increase({sel('cdr_exporter_log_lines_suppressed_total', J)}[{RI}]))",
                          "log lines suppressed {{instance}}"),
                     )), 8, 8)

    b.row("Process")
    b.add(timeseries("CPU",
                     "CPU time used by the exporter per second (1 = one core).", "percentunit",
                     targets((f"rate({sel('process_cpu_seconds_total', J)}[{RI}])", "{{instance}}")),
                     decimals=1), 6, 8)
    b.add(timeseries("Memory",
                     "Resident and virtual memory of the exporter process.", "bytes",
                     targets(
                         (sel("process_resident_memory_bytes", J), "resident {{instance}}"),
                         (sel("process_virtual_memory_bytes", J), "virtual {{instance}}"),
                     )), 6, 8)
    b.add(timeseries("File descriptors and threads",
                     "Open file descriptors (each Call Bridge keeps a connection open) against "
                     "the limit, and threads.", "short",
                     targets(
                         (sel("process_open_fds", J), "open fds {{instance}}"),
                         (sel("process_max_fds", J), "max fds {{instance}}"),
                         (sel("process_threads", J), "threads {{instance}}"),
                     )), 6, 8)
    b.add(timeseries("HTTP connections",
                     "Connections open to the receiver (Call Bridges keep one each, plus "
                     "Prometheus), and connections closed at once per interval by reason "
                     "(max_connections = server.max_connections reached, tls_handshake).",
                     "short",
                     targets(
                         (f"sum by (instance) ({sel('cdr_exporter_connections_active', J)})", "open {{instance}}"),
                         (f"sum by (instance, reason) (increase({sel('cdr_exporter_connections_rejected_total', J)}[{RI}]))",
                          "rejected {{reason}} {{instance}}"),
                     ), overrides=[red_ref("B")]), 6, 8)
    return b


# ---------------------------------------------------------------- all sources side by side
# Per source: the MOS histogram by sender and by tenant, its selector, the sender / tenant label,
# and whether an HA pair exposes it twice (CMS sends every record to each receiver; FreeSWITCH
# and Kamailio send each CDR or report to one exporter, so their exporters are added up).
SOURCES = [
    dict(key="cms", name="CMS", what="legs", dedup=True,
         mos="cms_call_leg_mos", node_s=CB, node_l="call_bridge",
         tmos="cms_tenant_call_leg_mos", ten_s=T, ten_l="tenant",
         unavailable="cms_call_leg_mos_unavailable_total",
         tunavailable="cms_tenant_call_leg_mos_unavailable_total"),
    dict(key="freeswitch", name="FreeSWITCH", what="legs", dedup=False,
         mos="freeswitch_cdr_leg_mos", node_s=FS, node_l="switch",
         tmos="freeswitch_cdr_domain_leg_mos", ten_s=FD, ten_l="domain",
         unavailable="freeswitch_cdr_leg_mos_unavailable_total",
         tunavailable="freeswitch_cdr_domain_leg_mos_unavailable_total"),
    dict(key="kamailio", name="rtpengine", what="calls", dedup=False,
         mos="kamailio_rtpengine_call_mos", node_s=KN, node_l="node",
         tmos="kamailio_rtpengine_tenant_call_mos", ten_s=KT, ten_l="tenant",
         unavailable="kamailio_rtpengine_call_mos_unavailable_total",
         tunavailable="kamailio_rtpengine_tenant_call_mos_unavailable_total"),
]


def xr(metric, s, by="", dedup=False, w=RI, fn="rate"):
    """rate/increase summed by `by`: CMS deduplicated over an HA pair, the others added up."""
    inner = f"{fn}({sel(metric, s)}[{w}])"
    return agg(by, dd(inner) if dedup else inner)


def relabel(e, dst, src):
    return e if dst == src else f'label_replace({e}, "{dst}", "$1", "{src}", "(.*)")'


def union(parts, dst):
    """One vector of the three sources: `source` set, the sender or tenant label renamed to
    `dst` (node or tenant). parts: (source dict, expression by its own label, its label)."""
    return " or ".join(
        f'label_replace({relabel(e, dst, l)}, "source", "{src["key"]}", "", "")' for src, e, l in parts)


def cross():
    b = Board(
        "cdr-call-quality",
        "Call quality, all sources",
        "CMS, FreeSWITCH and Kamailio/rtpengine side by side: the MOS each source gives (CMS: "
        "our E-model estimate; FreeSWITCH: the MOS it reported; rtpengine: its average MOS), the "
        "share at or below 3.1, calls without a MOS by reason, loss, jitter and round trip, our "
        "estimate against the reported MOS, and the worst senders (Call Bridge, switch, node) and "
        "tenants (CMS tenant, FreeSWITCH domain, rtpengine tenant) first. The rules' CdrLowMos "
        "alert reads the same MOS. CMS copies of an HA pair count once; FreeSWITCH and Kamailio "
        "send each CDR or report to one exporter, so exporters are added up.",
        ["cdr-exporter", "cisco-meeting-server", "freeswitch", "kamailio"],
        senders=True,
    )
    by_sender = (" By sender: filtered by Call Bridge, FreeSWITCH switch and Kamailio node, not "
                 "by tenant.")
    by_tenant = (" By tenant: filtered by tenant (CMS, rtpengine) and FreeSWITCH domain, not by "
                 "sender.")
    ranked = (" Over the dashboard's time range; the $topn worst (variable) of all sources, "
              "worst first; senders and tenants with fewer than $min_legs scored legs or calls "
              "are not ranked.")

    def per_source(f, legend):
        return targets(*[(f(src), legend.format(**src)) for src in SOURCES])

    def mean_mos(src, m=None):
        m = m or src["mos"]
        return (f"{xr(m + '_sum', src['node_s'], dedup=src['dedup'])} / "
                f"{xr(m + '_count', src['node_s'], dedup=src['dedup'])}")

    def share(src, le="3.1", w=RI, by="", tenants=False, min_legs=False):
        m, s_ = (src["tmos"], src["ten_s"]) if tenants else (src["mos"], src["node_s"])
        fn = "increase" if w == RANGE else "rate"
        whole = xr(m + "_count", s_, by, src["dedup"], w, fn)
        if min_legs:
            whole = f"({whole} >= $min_legs)"
        part = xr(m + "_bucket", s_ + ', le="' + le + '"', by, src["dedup"], w, fn)
        return f"{part} / {whole}"

    b.row("Side by side (by sender)")
    b.add(stat("Mean MOS",
               "Mean MOS of the legs (CMS, FreeSWITCH) and calls (rtpengine) that ended on the "
               "selected senders, averaged over the range. CMS: our estimate from its packet "
               "statistics; FreeSWITCH: the MOS it reported; rtpengine: its average MOS. Bands: "
               ">= 4.3 very good, 3.6-4.3 acceptable, 3.1-3.6 poor, 2.6-3.1 not recommended, "
               "< 2.6 very bad." + by_sender, "none",
               per_source(mean_mos, "{name}"), thresholds=MOS_STEPS, calc="mean", decimals=2,
               min_=1, max_=4.5), 8, 5)
    b.add(stat("MOS ≤ 3.1",
               "Share of the scored legs or calls whose MOS is at or below 3.1 (not recommended "
               "or worse), averaged over the range: what CdrLowMos alerts on." + by_sender,
               "percentunit", per_source(share, "{name}"), thresholds=SHARE_STEPS, calc="mean",
               decimals=1), 8, 5)
    b.add(stat("Scored / min",
               "Legs (CMS, FreeSWITCH) and calls (rtpengine) with a MOS per minute: the volume "
               "behind the shares." + by_sender, "cpm",
               per_source(lambda src: f"{xr(src['mos'] + '_count', src['node_s'], dedup=src['dedup'])} * 60", "{name}"),
               decimals=1), 8, 5)
    b.add(timeseries("Share with MOS ≤ 3.1 by source",
                     "Share of the scored legs or calls at or below 3.1 per source over time; the "
                     "orange and red lines are 5 % and 10 % (CdrLowMos's default threshold)."
                     + by_sender, "percentunit", per_source(share, "{name}"),
                     thresholds=SHARE_STEPS, threshold_style="line", max_=1), 12, 8)
    b.add(timeseries("MOS median and mean by source",
                     "Median (interpolated in the MOS bands) and mean MOS per source; background "
                     "bands are the MOS bands (red < 2.6 < orange < 3.1 < yellow < 3.6 < green < "
                     "4.3 < dark green)." + by_sender, "none",
                     targets(*[t for src in SOURCES for t in (
                         (f"histogram_quantile(0.5, {xr(src['mos'] + '_bucket', src['node_s'], 'le', src['dedup'])})",
                          f"median {src['name']}"),
                         (mean_mos(src), f"mean {src['name']}"))]),
                     thresholds=MOS_STEPS, threshold_style="line+area", min_=1, max_=4.5,
                     decimals=2), 12, 8)
    for src in SOURCES:
        b.add(heatmap(f"MOS distribution: {src['name']}",
                      f"{src['what'].capitalize()} ended per interval by MOS band (increase of "
                      f"{src['mos']}_bucket; bounds 1, 2, 2.6, 3.1, 3.6, 4, 4.3, 4.5 follow the "
                      "MOS bands)." + by_sender,
                      xr(src["mos"] + "_bucket", src["node_s"], "le", src["dedup"], fn="increase"),
                      "none", scheme="Blues", y_decimals=1, thresholds=MOS_STEPS), 8, 8)
    b.add(timeseries("Without a MOS, by reason",
                     "Legs and calls that ended without a usable MOS per minute, by source and "
                     "reason. CMS: no_audio, no_packet_statistics, invalid_values; FreeSWITCH: "
                     "no_call_stats, no_media (its 4.50 for a leg that received nothing), "
                     "invalid_values; rtpengine: not_measured (no usable RTCP), not_answered "
                     "(cancel, failure), invalid_values." + by_sender, "cpm",
                     targets(*[(f"{xr(src['unavailable'], src['node_s'], 'reason', src['dedup'])} * 60",
                                f"{src['name']} {{{{reason}}}}") for src in SOURCES]),
                     stack=True), 12, 8)
    b.add(timeseries("Share without a MOS by source",
                     "Legs or calls without a MOS over all that ended with or without one, per "
                     "source: a rising share hides quality (nothing is scored) rather than showing "
                     "it." + by_sender, "percentunit",
                     targets(*[(f"{xr(src['unavailable'], src['node_s'], dedup=src['dedup'])} / ("
                                f"{xr(src['unavailable'], src['node_s'], dedup=src['dedup'])} + "
                                f"{xr(src['mos'] + '_count', src['node_s'], dedup=src['dedup'])})",
                                src["name"]) for src in SOURCES]),
                     max_=1), 12, 8)

    b.row("Loss, jitter and round trip (by sender)")
    cms_loss = ("cms_call_leg_packet_loss_ratio", CB + ', media="audio"', True)
    fs_loss = ("freeswitch_cdr_leg_packet_loss_ratio", FS, False)
    rtp_loss = ("kamailio_rtpengine_call_packet_loss_ratio", KN, False)

    def q(m, s_, dd_, qv):
        return f"histogram_quantile({qv}, {xr(m + '_bucket', s_, 'le', dd_)})"
    b.add(timeseries("Packet loss (median and 90th percentile)",
                     "Packet loss of the audio received per leg or call: CMS time-weighted burst "
                     "and gap density (audio), FreeSWITCH flaw_total / media_packet_count, "
                     "rtpengine the loss of its average MOS sample." + by_sender, "percentunit",
                     targets(*[(q(m, s_, d_, qv), f"p{int(qv * 100)} {n}")
                               for (m, s_, d_), n in ((cms_loss, "CMS"), (fs_loss, "FreeSWITCH"),
                                                      (rtp_loss, "rtpengine"))
                               for qv in (0.5, 0.9)]), decimals=2), 8, 8)
    b.add(timeseries("Jitter (median and 90th percentile)",
                     "FreeSWITCH: largest inter-arrival jitter of the audio received per leg (sqrt "
                     "of jitter_max_variance); rtpengine: jitter of the call's average MOS sample. "
                     "CMS reports jitter only as an alarm (CMS call quality dashboard)." + by_sender,
                     "s",
                     targets(*[(q(m, s_, False, qv), f"p{int(qv * 100)} {n}")
                               for m, s_, n in (("freeswitch_cdr_leg_jitter_seconds", FS, "FreeSWITCH"),
                                                ("kamailio_rtpengine_call_jitter_seconds", KN, "rtpengine"))
                               for qv in (0.5, 0.9)])), 8, 8)
    b.add(timeseries("Round trip (rtpengine)",
                     "End-to-end round trip of the call's average MOS sample (from RTCP), median and "
                     "90th percentile: the delay term of rtpengine's MOS and of our estimate."
                     + by_sender, "s",
                     targets(*[(q("kamailio_rtpengine_call_roundtrip_seconds", KN, False, qv), f"p{int(qv * 100)}")
                               for qv in (0.5, 0.9)]),
                     thresholds=steps("green", 0.3, "orange"), threshold_style="line"), 8, 8)

    b.row("Our estimated MOS against the reported one (by sender)")
    b.add(timeseries("FreeSWITCH: reported vs estimated MOS",
                     "Mean and 10th percentile of the MOS FreeSWITCH reported and of our simplified "
                     "model on the same audio (loss = flaw_total / media_packet_count, jitter, no "
                     "latency). A steady gap is the models' difference; a gap that moves is worth a "
                     "look." + by_sender, "none",
                     targets(
                         (mean_mos(SOURCES[1]), "mean reported"),
                         (mean_mos(SOURCES[1], "freeswitch_cdr_leg_estimated_mos"), "mean estimated"),
                         (q("freeswitch_cdr_leg_mos", FS, False, 0.1), "p10 reported"),
                         (q("freeswitch_cdr_leg_estimated_mos", FS, False, 0.1), "p10 estimated"),
                     ), thresholds=MOS_STEPS, threshold_style="line+area", min_=1, max_=4.5,
                     decimals=2), 12, 8)
    b.add(timeseries("rtpengine: average, lowest and estimated MOS",
                     "Mean over calls of rtpengine's average MOS (mos_average), of its lowest MOS "
                     "during the call (mos_min: the worst moment) and of our model on the average's "
                     "loss, jitter and round trip." + by_sender, "none",
                     targets(
                         (mean_mos(SOURCES[2]), "average"),
                         (mean_mos(SOURCES[2], "kamailio_rtpengine_call_mos_min"), "lowest"),
                         (mean_mos(SOURCES[2], "kamailio_rtpengine_call_estimated_mos"), "estimated"),
                     ), thresholds=MOS_STEPS, threshold_style="line+area", min_=1, max_=4.5,
                     decimals=2), 12, 8)

    b.row("Worst senders and tenants (over the time range)")
    node_share = union([(src, share(src, w=RANGE, by=src["node_l"], min_legs=True), src["node_l"])
                        for src in SOURCES], "node")
    b.add(bargauge("Worst senders: share with MOS ≤ 3.1",
                   "Call Bridges, FreeSWITCH switches and Kamailio nodes by share of scored legs "
                   "or calls at or below 3.1 (the node scope of CdrLowMos)." + ranked + by_sender,
                   "percentunit", worst(node_share), legend="{{source}} {{node}}",
                   thresholds=SHARE_STEPS, max_=1, decimals=1), 12, 9)
    ten_share = union([(src, share(src, w=RANGE, by=src["ten_l"], tenants=True, min_legs=True), src["ten_l"])
                       for src in SOURCES], "tenant")
    b.add(bargauge("Worst tenants: share with MOS ≤ 3.1",
                   "CMS tenants, FreeSWITCH domains and rtpengine tenants by share of scored legs "
                   "or calls at or below 3.1 (the tenant scope of CdrLowMos; unknown, other and "
                   "FreeSWITCH/rtpengine none never alert but are shown)." + ranked + by_tenant,
                   "percentunit", worst(ten_share), legend="{{source}} {{tenant}}",
                   thresholds=SHARE_STEPS, max_=1, decimals=1), 12, 9)

    def volume(src, tenants, metric=None):
        m, s_, l = ((src["tmos"], src["ten_s"], src["ten_l"]) if tenants
                    else (src["mos"], src["node_s"], src["node_l"]))
        return xr(metric or (m + "_count"), s_, l, src["dedup"], RANGE, "increase")

    def unavail(src, tenants):
        m, s_, l = ((src["tunavailable"], src["ten_s"], src["ten_l"]) if tenants
                    else (src["unavailable"], src["node_s"], src["node_l"]))
        return xr(m, s_, l, src["dedup"], RANGE, "increase")
    for tenants, dst, share_e, what, desc in (
            (False, "node", node_share, "Senders", by_sender),
            (True, "tenant", ten_share, "Tenants", by_tenant)):
        top = f"topk($topn, {share_e})"
        key = "ten_l" if tenants else "node_l"
        b.add(table(f"{what}: worst $topn with volume",
                    f"The worst {what.lower()} by share of MOS ≤ 3.1 with their volume: scored legs "
                    "or calls and those without a MOS over the range (a tenant or sender whose "
                    "calls have no MOS cannot alert)." + ranked + desc, "short",
                    [
                        ("MOS ≤ 3.1", top),
                        ("Scored", f"({union([(src, volume(src, tenants), src[key]) for src in SOURCES], dst)}) "
                                   f"and on (source, {dst}) {top}"),
                        ("Without MOS", f"({union([(src, unavail(src, tenants), src[key]) for src in SOURCES], dst)}) "
                                        f"and on (source, {dst}) {top}"),
                    ], "MOS ≤ 3.1", decimals=0,
                    exclude=("call_bridge", "switch", "domain"),
                    units={"MOS ≤ 3.1": "percentunit"}), 12, 9)

    b.row("FreeSWITCH legs (by switch and by domain)")
    b.add(timeseries("Legs ended and answered",
                     "FreeSWITCH legs ended (CDRs applied) and answered per second, by leg (a, b) "
                     "and direction (inbound, outbound)." + by_sender, "ops",
                     targets(
                         (xr("freeswitch_cdr_legs_total", FS, "leg, direction"), "ended {{leg}} {{direction}}"),
                         (xr("freeswitch_cdr_legs_answered_total", FS, "leg, direction"), "answered {{leg}} {{direction}}"),
                     )), 8, 8)
    b.add(timeseries("Hangup causes",
                     "FreeSWITCH legs per second by hangup_cause (Q.850 code in the legend); "
                     "NORMAL_CLEARING is the normal end." + by_sender, "ops",
                     targets((xr("freeswitch_cdr_leg_hangups_total", FS, "hangup_cause, q850"),
                              "{{hangup_cause}} ({{q850}})")), stack=True), 8, 8)
    b.add(timeseries("Codecs",
                     "FreeSWITCH legs per second by audio codec, read (rx) and write (tx)." + by_sender,
                     "ops",
                     targets((xr("freeswitch_cdr_leg_codecs_total", FS, "direction, codec"),
                              "{{direction}} {{codec}}")), stack=True), 8, 8)
    b.add(timeseries("Leg duration and billed time",
                     "Median and 90th percentile of FreeSWITCH leg duration (creation to hangup) and "
                     "billed time (answer to hangup, answered legs only)." + by_sender, "s",
                     targets(
                         (q("freeswitch_cdr_leg_duration_seconds", FS, False, 0.5), "p50 duration"),
                         (q("freeswitch_cdr_leg_duration_seconds", FS, False, 0.9), "p90 duration"),
                         (q("freeswitch_cdr_leg_billed_seconds", FS, False, 0.5), "p50 billed"),
                         (q("freeswitch_cdr_leg_billed_seconds", FS, False, 0.9), "p90 billed"),
                         (f"{xr('freeswitch_cdr_leg_billed_seconds_sum', FS)} / {xr('freeswitch_cdr_leg_billed_seconds_count', FS)}",
                          "mean billed"),
                         (f"{xr('freeswitch_cdr_leg_duration_seconds_sum', FS)} / {xr('freeswitch_cdr_leg_duration_seconds_count', FS)}",
                          "mean duration"),
                     )), 12, 8)
    dom_busy = xr("freeswitch_cdr_domain_legs_total", FD, "domain", False, RANGE, "increase")
    dom_top = f"topk($topn, {dom_busy})"
    b.add(table("Busiest FreeSWITCH domains",
                "Legs ended, answered, with and without a MOS per domain over the range: the $topn "
                "domains with the most legs (their MOS: the worst tenants above)." + by_tenant, "short",
                [
                    ("Legs", dom_top),
                    ("Answered", f"{xr('freeswitch_cdr_domain_legs_answered_total', FD, 'domain', False, RANGE, 'increase')} and on (domain) {dom_top}"),
                    ("Without MOS", f"{xr('freeswitch_cdr_domain_leg_mos_unavailable_total', FD, 'domain', False, RANGE, 'increase')} and on (domain) {dom_top}"),
                    ("With MOS", f"{xr('freeswitch_cdr_domain_leg_mos_count', FD, 'domain', False, RANGE, 'increase')} and on (domain) {dom_top}"),
                ], "Legs", decimals=0), 12, 8)

    b.row("Kamailio/rtpengine calls (by node and by tenant)")
    b.add(timeseries("Calls reported by end event",
                     "Calls rtpengine reported on through Kamailio per second, by how they ended "
                     "(bye, cancel, failure, unknown)." + by_sender, "ops",
                     targets((xr("kamailio_rtpengine_calls_total", KN, "event"), "{{event}}")),
                     stack=True), 12, 8)
    rt_busy = xr("kamailio_rtpengine_tenant_calls_total", KT, "tenant", False, RANGE, "increase")
    rt_top = f"topk($topn, {rt_busy})"
    b.add(table("Busiest rtpengine tenants",
                "Calls reported, with and without an rtpengine MOS, per tenant over the range: the "
                "$topn tenants with the most calls (their MOS: the worst tenants above)."
                + by_tenant, "short",
                [
                    ("Calls", rt_top),
                    ("Without MOS", f"{xr('kamailio_rtpengine_tenant_call_mos_unavailable_total', KT, 'tenant', False, RANGE, 'increase')} and on (tenant) {rt_top}"),
                    ("With MOS", f"{xr('kamailio_rtpengine_tenant_call_mos_count', KT, 'tenant', False, RANGE, 'increase')} and on (tenant) {rt_top}"),
                ], "Calls", decimals=0), 12, 8)
    return b


for board in (overview(), quality(), health(), cross()):
    path = f"{OUT}/{board.uid}.json"
    with open(path, "w") as f:
        json.dump(board.json(), f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(path, len([p for p in board.panels if p["type"] != "row"]), "panels")
