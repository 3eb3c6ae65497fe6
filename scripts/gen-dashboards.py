#!/usr/bin/env python3
"""Generates grafana/dashboards/*.json for cdr-exporter. Edit this, run
`python3 scripts/gen-dashboards.py`, and commit both (tests/dashboards.rs lints the JSON)."""
import json
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else __import__("os").path.join(__import__("os").path.dirname(__file__), "..", "grafana", "dashboards")

DS = {"type": "prometheus", "uid": "${datasource}"}
JI = 'job=~"$job", instance=~"$instance"'
CB = JI + ', call_bridge=~"$call_bridge"'
CBT = CB + ', tenant=~"$tenant"'
RI = "$__rate_interval"

# The same failures CmsAbnormalLegEnds pages on (alerts parameter abnormal_ends_reasons):
# the system or network failed the leg. Busy, rejected or unanswered far ends and IVR/PIN
# mistakes are user behaviour and stay out.
ABNORMAL = [
    "error", "timeout", "dnsFailure", "encryptionRequired", "unknownDestination",
    "participantLimitReached", "tenantParticipantLimitReached",
]
ABNORMAL_RE = "|".join(ABNORMAL)

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


class Board:
    def __init__(self, uid, title, description, tags):
        self.uid = uid
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
            "templating": {"list": variables()},
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


def variables():
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
             "Prometheus scrape job(s) of cdr-exporter"),
        qvar("instance", "Instance", 'label_values(cdr_exporter_build_info{job=~"$job"}, instance)',
             "cdr-exporter instance(s) within the selected jobs"),
        qvar("call_bridge", "Call Bridge",
             'label_values(cdr_exporter_batches_total{job=~"$job", instance=~"$instance"}, call_bridge)',
             "Call Bridges that sent CDRs to the selected exporters (GUID, receiver URI parameter, "
             "address or configured name)"),
        qvar("tenant", "Tenant",
             'label_values({__name__=~"cms_calls_active|cms_call_legs_ended_total", job=~"$job", '
             'instance=~"$instance", call_bridge=~"$call_bridge"}, tenant)',
             "CMS tenants (GUID or configured name; none = call without tenant, unknown = call "
             "never seen)"),
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


def quantiles(metric, sel, by="", qs=(0.5, 0.9, 0.99), label=""):
    grp = "le" + (", " + by if by else "")
    out = []
    for q in qs:
        legend = f"p{int(round(q * 100))}" + (f" {label}" if label else "")
        out.append((
            f"histogram_quantile({q}, sum by ({grp}) (rate({metric}_bucket{{{sel}}}[{RI}])))",
            legend,
        ))
    return out


def mean(metric, sel, by=""):
    b = f" by ({by})" if by else ""
    return (f"sum{b} (rate({metric}_sum{{{sel}}}[{RI}])) / sum{b} (rate({metric}_count{{{sel}}}[{RI}]))")


# ---------------------------------------------------------------- CMS overview
def overview():
    b = Board(
        "cms-overview",
        "CMS overview",
        "Cisco Meeting Server activity from CDRs received by cdr-exporter: active calls and legs, "
        "start rates, durations, participants, recordings and streamings.",
        ["cdr-exporter", "cisco-meeting-server", "cms"],
    )
    b.annotations.append({
        "datasource": dict(DS),
        "enable": True,
        "expr": f'sum by (call_bridge) (increase(cdr_exporter_sessions_total{{{CB}}}[{RI}])) > 0',
        "hide": False,
        "iconColor": "orange",
        "name": "Call Bridge restarts",
        "step": "60s",
        "titleFormat": "Call Bridge restarted",
        "textFormat": "{{call_bridge}}: new CDR session; its calls and legs were ended",
    })
    b.row("Now")
    b.add(stat("Active calls",
               "Calls between callStart and callEnd (cms_calls_active), summed over the selected "
               "Call Bridges and tenants.", "short",
               targets(f"sum(cms_calls_active{{{CBT}}})")), 4, 4)
    b.add(stat("Active call legs",
               "Call legs between callLegStart and callLegEnd (cms_call_legs_active): "
               "participants connected right now.", "short",
               targets(f"sum(cms_call_legs_active{{{CBT}}})")), 4, 4)
    b.add(stat("Call starts / min",
               "callStart records per minute over the last rate interval.", "cpm",
               targets(f"sum(rate(cms_calls_started_total{{{CBT}}}[{RI}])) * 60"), decimals=1), 4, 4)
    b.add(stat("Leg starts / min",
               "callLegStart records per minute. callLegStart carries no tenant, so this is not "
               "filtered by tenant.", "cpm",
               targets(f"sum(rate(cms_call_legs_started_total{{{CB}}}[{RI}])) * 60"), decimals=1),
          4, 4)
    b.add(stat("Active recordings",
               "Recordings between recordingStart and recordingEnd (per Call Bridge; recordings "
               "carry no tenant).", "short",
               targets(f"sum(cms_recordings_active{{{CB}}})")), 4, 4)
    b.add(stat("Active streamings",
               "Streamings between streamingStart and streamingEnd (per Call Bridge; no tenant).",
               "short", targets(f"sum(cms_streamings_active{{{CB}}})")), 4, 4)

    b.row("Calls")
    b.add(timeseries("Active calls by Call Bridge",
                     "Calls in progress per Call Bridge (cms_calls_active).", "short",
                     targets((f"sum by (call_bridge) (cms_calls_active{{{CBT}}})", "{{call_bridge}}")),
                     stack=True), 8, 8)
    b.add(timeseries("Active calls by tenant",
                     "Calls in progress per tenant. none = calls without a tenant; unknown = the "
                     "callStart was never seen.", "short",
                     targets((f"sum by (tenant) (cms_calls_active{{{CBT}}})", "{{tenant}}")),
                     stack=True), 8, 8)
    b.add(timeseries("Active calls by call type",
                     "Calls in progress by CMS callType (coSpace, adHoc, lyncConferencing, "
                     "forwarding).", "short",
                     targets((f"sum by (call_type) (cms_calls_active{{{CBT}}})", "{{call_type}}")),
                     stack=True), 8, 8)
    b.add(timeseries("Call starts and ends by Call Bridge",
                     "callStart and callEnd records per second. Ends whose callStart was never "
                     "seen count under tenant unknown.", "ops",
                     targets(
                         (f"sum by (call_bridge) (rate(cms_calls_started_total{{{CBT}}}[{RI}]))",
                          "started {{call_bridge}}"),
                         (f"sum by (call_bridge) (rate(cms_calls_ended_total{{{CBT}}}[{RI}]))",
                          "ended {{call_bridge}}"),
                     )), 12, 8)
    b.add(timeseries("Call starts by tenant",
                     "callStart records per second by tenant.", "ops",
                     targets((f"sum by (tenant) (rate(cms_calls_started_total{{{CBT}}}[{RI}]))",
                              "{{tenant}}"))), 12, 8)

    b.row("Call legs")
    b.add(timeseries("Active legs by Call Bridge",
                     "Call legs (participants) in progress per Call Bridge.", "short",
                     targets((f"sum by (call_bridge) (cms_call_legs_active{{{CBT}}})",
                              "{{call_bridge}}")), stack=True), 8, 8)
    b.add(timeseries("Active legs by tenant",
                     "Call legs in progress per tenant. Legs are attributed to a tenant through "
                     "their call; unknown = the call was never seen.", "short",
                     targets((f"sum by (tenant) (cms_call_legs_active{{{CBT}}})", "{{tenant}}")),
                     stack=True), 8, 8)
    b.add(timeseries("Active legs by type and direction",
                     "Call legs in progress by leg type (sip, acano) and direction (incoming, "
                     "outgoing).", "short",
                     targets((f"sum by (leg_type, direction) (cms_call_legs_active{{{CBT}}})",
                              "{{leg_type}} {{direction}}")), stack=True), 8, 8)
    b.add(timeseries("Leg starts and ends by Call Bridge",
                     "callLegStart and callLegEnd records per second. callLegStart carries no "
                     "tenant: starts are filtered by Call Bridge only.", "ops",
                     targets(
                         (f"sum by (call_bridge) (rate(cms_call_legs_started_total{{{CB}}}[{RI}]))",
                          "started {{call_bridge}}"),
                         (f"sum by (call_bridge) (rate(cms_call_legs_ended_total{{{CBT}}}[{RI}]))",
                          "ended {{call_bridge}}"),
                     )), 12, 8)
    b.add(timeseries("Leg starts by type and direction",
                     "callLegStart records per second by leg type and direction (not filtered by "
                     "tenant).", "ops",
                     targets((f"sum by (leg_type, direction) "
                              f"(rate(cms_call_legs_started_total{{{CB}}}[{RI}]))",
                              "{{leg_type}} {{direction}}"))), 12, 8)

    b.row("Durations and participants")
    b.add(timeseries("Call duration",
                     "Median, 90th and 99th percentile and mean of callEnd durationSeconds for "
                     "calls that ended in the interval (cms_call_duration_seconds; buckets 10 s to "
                     "1 day, so quantiles are interpolated).", "s",
                     targets(*quantiles("cms_call_duration_seconds", CBT),
                             (mean("cms_call_duration_seconds", CBT), "mean"))), 12, 8)
    b.add(heatmap("Call duration distribution",
                  "Calls ended per interval by duration bucket (increase of "
                  "cms_call_duration_seconds_bucket).",
                  f"sum by (le) (increase(cms_call_duration_seconds_bucket{{{CBT}}}[{RI}]))", "s"),
          12, 8)
    b.add(timeseries("Leg duration",
                     "Median, 90th and 99th percentile and mean of callLegEnd durationSeconds "
                     "(cms_call_leg_duration_seconds).", "s",
                     targets(*quantiles("cms_call_leg_duration_seconds", CBT),
                             (mean("cms_call_leg_duration_seconds", CBT), "mean"))), 12, 8)
    b.add(heatmap("Leg duration distribution",
                  "Call legs ended per interval by duration bucket (increase of "
                  "cms_call_leg_duration_seconds_bucket).",
                  f"sum by (le) (increase(cms_call_leg_duration_seconds_bucket{{{CBT}}}[{RI}]))",
                  "s"), 12, 8)
    b.add(timeseries("Participants per call",
                     "Most legs simultaneously active per call (callEnd callLegsMaxActive): "
                     "median, 90th percentile and mean over calls that ended in the interval.",
                     "short",
                     targets(*quantiles("cms_call_participants_max", CBT, qs=(0.5, 0.9)),
                             (mean("cms_call_participants_max", CBT), "mean"))), 12, 8)
    b.add(heatmap("Participants per call distribution",
                  "Calls ended per interval by their peak number of participants (increase of "
                  "cms_call_participants_max_bucket).",
                  f"sum by (le) (increase(cms_call_participants_max_bucket{{{CBT}}}[{RI}]))",
                  "short", y_decimals=0), 12, 8)

    b.row("Recordings and streamings")
    b.add(timeseries("Recordings and streamings active",
                     "Recordings and streamings in progress per Call Bridge.", "short",
                     targets(
                         (f"sum by (call_bridge) (cms_recordings_active{{{CB}}})",
                          "recordings {{call_bridge}}"),
                         (f"sum by (call_bridge) (cms_streamings_active{{{CB}}})",
                          "streamings {{call_bridge}}"),
                     )), 12, 8)
    b.add(timeseries("Recordings and streamings started and ended",
                     "recordingStart, recordingEnd, streamingStart and streamingEnd records per "
                     "minute.", "cpm",
                     targets(
                         (f"sum(rate(cms_recordings_started_total{{{CB}}}[{RI}])) * 60",
                          "recordings started"),
                         (f"sum(rate(cms_recordings_ended_total{{{CB}}}[{RI}])) * 60",
                          "recordings ended"),
                         (f"sum(rate(cms_streamings_started_total{{{CB}}}[{RI}])) * 60",
                          "streamings started"),
                         (f"sum(rate(cms_streamings_ended_total{{{CB}}}[{RI}])) * 60",
                          "streamings ended"),
                     )), 12, 8)
    return b


# ---------------------------------------------------------------- CMS call quality
def quality():
    b = Board(
        "cms-call-quality",
        "CMS call quality",
        "Call quality from CMS callLegEnd records: estimated listening-quality MOS of the audio "
        "received from each participant, packet loss, alarms, codecs, video resolution, "
        "encryption, media usage and leg end reasons.",
        ["cdr-exporter", "cisco-meeting-server", "cms"],
    )
    share_steps = steps("green", 0.05, "orange", 0.1, "red")
    b.row("MOS (estimated listening quality of received audio)")
    b.add(stat("Mean MOS",
               "Mean estimated MOS of legs that ended in the selected range "
               "(rate of cms_call_leg_mos_sum over _count, averaged). Bands: >= 4.3 very good, "
               "3.6-4.3 acceptable, 3.1-3.6 poor, 2.6-3.1 not recommended, < 2.6 very bad.",
               "none", targets(mean("cms_call_leg_mos", CBT)), thresholds=MOS_STEPS,
               calc="mean", decimals=2, min_=1, max_=4.5), 6, 5)
    b.add(stat("Legs with MOS < 3.1",
               "Share of legs whose MOS estimate is below 3.1 (not recommended or worse), from "
               "the le=\"3.1\" bucket over the count, averaged over the range.", "percentunit",
               targets(f"sum(rate(cms_call_leg_mos_bucket{{{CBT}, le=\"3.1\"}}[{RI}])) / "
                       f"sum(rate(cms_call_leg_mos_count{{{CBT}}}[{RI}]))"),
               thresholds=share_steps, calc="mean", decimals=1), 6, 5)
    b.add(stat("Legs with MOS < 3.6",
               "Share of legs whose MOS estimate is below 3.6 (poor or worse), from the "
               "le=\"3.6\" bucket over the count, averaged over the range.", "percentunit",
               targets(f"sum(rate(cms_call_leg_mos_bucket{{{CBT}, le=\"3.6\"}}[{RI}])) / "
                       f"sum(rate(cms_call_leg_mos_count{{{CBT}}}[{RI}]))"),
               thresholds=steps("green", 0.1, "orange", 0.2, "red"), calc="mean", decimals=1),
          6, 5)
    b.add(stat("Assumed one-way delay (Ta)",
               "mos.assumed_delay_ms in force (cdr_exporter_mos_assumed_delay_seconds): the "
               "delay the E-model assumes, since CMS reports none. 0 = listening quality only.",
               "s", targets(f"max(cdr_exporter_mos_assumed_delay_seconds{{{JI}}})"), graph="none",
               color_mode="none"), 6, 5)
    b.add(heatmap("MOS distribution",
                  "Legs ended per interval by MOS band (increase of cms_call_leg_mos_bucket; "
                  "bucket bounds 1, 2, 2.6, 3.1, 3.6, 4, 4.3, 4.5 follow the MOS bands).",
                  f"sum by (le) (increase(cms_call_leg_mos_bucket{{{CBT}}}[{RI}]))", "none",
                  scheme="Blues", y_decimals=1, thresholds=MOS_STEPS), 12, 9)
    b.add(timeseries("MOS percentiles and mean",
                     "10th percentile, median and mean MOS of legs that ended in the interval; "
                     "background bands are the MOS bands (red < 2.6 < orange < 3.1 < yellow < "
                     "3.6 < green < 4.3 < dark green).", "none",
                     targets(*quantiles("cms_call_leg_mos", CBT, qs=(0.1, 0.5)),
                             (mean("cms_call_leg_mos", CBT), "mean")),
                     thresholds=MOS_STEPS, threshold_style="line+area", min_=1, max_=4.5,
                     decimals=2), 12, 9)
    b.add(timeseries("Share of legs with MOS < 3.1 by tenant and Call Bridge",
                     "Legs ended with MOS below 3.1 divided by all legs with an estimate, per "
                     "tenant and Call Bridge (le=\"3.1\" bucket over _count).", "percentunit",
                     targets((f"sum by (tenant, call_bridge) (rate(cms_call_leg_mos_bucket{{{CBT}, "
                              f"le=\"3.1\"}}[{RI}])) / sum by (tenant, call_bridge) "
                              f"(rate(cms_call_leg_mos_count{{{CBT}}}[{RI}]))",
                              "{{tenant}} @ {{call_bridge}}")),
                     thresholds=share_steps, threshold_style="line", max_=1), 12, 8)
    b.add(timeseries("Share of legs with MOS < 3.6 by tenant and Call Bridge",
                     "Legs ended with MOS below 3.6 divided by all legs with an estimate, per "
                     "tenant and Call Bridge (le=\"3.6\" bucket over _count).", "percentunit",
                     targets((f"sum by (tenant, call_bridge) (rate(cms_call_leg_mos_bucket{{{CBT}, "
                              f"le=\"3.6\"}}[{RI}])) / sum by (tenant, call_bridge) "
                              f"(rate(cms_call_leg_mos_count{{{CBT}}}[{RI}]))",
                              "{{tenant}} @ {{call_bridge}}")),
                     thresholds=steps("green", 0.1, "orange", 0.2, "red"), threshold_style="line",
                     max_=1), 12, 8)
    b.add(timeseries("Mean MOS by Call Bridge",
                     "Mean estimated MOS of legs ended in the interval, per Call Bridge, against "
                     "the MOS bands.", "none",
                     targets((mean("cms_call_leg_mos", CBT, "call_bridge"), "{{call_bridge}}")),
                     thresholds=MOS_STEPS, threshold_style="line+area", min_=1, max_=4.5,
                     decimals=2), 12, 8)
    b.add(timeseries("Legs without a MOS estimate by reason",
                     "Legs ended without an estimate per interval: no_audio (no rxAudio), "
                     "no_packet_statistics, invalid_values. These are never scored as perfect.",
                     "short",
                     targets((f"sum by (reason) (increase(cms_call_leg_mos_unavailable_total"
                              f"{{{CBT}}}[{RI}]))", "{{reason}}")), stack=True), 12, 8)

    b.row("Packet loss and alarms")
    for media in ("audio", "video"):
        b.add(timeseries(f"Received {media} packet loss",
                         f"Median, 90th and 99th percentile and mean of the received {media} "
                         "packet loss per leg (time-weighted burst and gap density, "
                         "cms_call_leg_packet_loss_ratio), over legs ended in the interval.",
                         "percentunit",
                         targets(*quantiles("cms_call_leg_packet_loss_ratio",
                                            f'{CBT}, media="{media}"'),
                                 (mean("cms_call_leg_packet_loss_ratio", f'{CBT}, media="{media}"'),
                                  "mean")),
                         thresholds=steps("green", 0.005, "orange", 0.009, "red"),
                         threshold_style="line", decimals=2), 8, 8)
    b.add(timeseries("Share of legs with > 1 % received audio loss",
                     "Legs whose received audio loss exceeds 1 % (1 minus the le=\"0.01\" bucket "
                     "over the count), per tenant and Call Bridge.", "percentunit",
                     targets((f"1 - sum by (tenant, call_bridge) (rate(cms_call_leg_packet_loss_ratio_bucket"
                              f"{{{CBT}, media=\"audio\", le=\"0.01\"}}[{RI}])) / "
                              f"sum by (tenant, call_bridge) (rate(cms_call_leg_packet_loss_ratio_count"
                              f"{{{CBT}, media=\"audio\"}}[{RI}]))",
                              "{{tenant}} @ {{call_bridge}}")),
                     thresholds=share_steps, threshold_style="line", max_=1), 8, 8)
    b.add(heatmap("Received audio packet loss distribution",
                  "Legs ended per interval by received audio loss bucket (0.1 % to 50 %).",
                  f"sum by (le) (increase(cms_call_leg_packet_loss_ratio_bucket{{{CBT}, "
                  f"media=\"audio\"}}[{RI}]))", "percentunit"), 8, 8)
    b.add(timeseries("Alarm time by type",
                     "Seconds legs spent in an alarm condition per interval "
                     "(durationPercentage x durationSeconds / 100 of callLegEnd alarms: packetLoss, "
                     "excessiveJitter, highRoundTripTime).", "s",
                     targets((f"sum by (alarm) (increase(cms_call_leg_alarm_seconds_total{{{CBT}}}"
                              f"[{RI}]))", "{{alarm}}")), stack=True), 8, 8)
    b.add(timeseries("Share of leg time in alarm",
                     "Alarm seconds by type divided by the total duration of the legs that ended "
                     "in the same interval.", "percentunit",
                     targets((f"sum by (alarm) (rate(cms_call_leg_alarm_seconds_total{{{CBT}}}[{RI}])) "
                              f"/ scalar(sum(rate(cms_call_leg_duration_seconds_sum{{{CBT}}}[{RI}])))",
                              "{{alarm}}")),
                     decimals=2), 8, 8)
    b.add(timeseries("Legs with alarms by type",
                     "Legs that raised each alarm type at least once, per interval "
                     "(cms_call_legs_with_alarm_total).",
                     "short",
                     targets(
                         (f"sum by (alarm) (increase(cms_call_legs_with_alarm_total{{{CBT}}}[{RI}]))",
                          "{{alarm}}"),
                     ), stack=True), 8, 8)

    b.row("Media")
    b.add(timeseries("Audio codec mix (streams)",
                     "Audio streams of ended legs per interval by codec and direction (rx = "
                     "received from the participant, tx = sent to it).", "short",
                     targets((f"sum by (codec, direction) (increase(cms_call_leg_media_streams_total"
                              f"{{{CBT}, media=\"audio\"}}[{RI}]))", "{{codec}} {{direction}}")),
                     stack=True), 8, 8)
    b.add(timeseries("Video codec mix (streams)",
                     "Video streams of ended legs per interval by codec and direction.", "short",
                     targets((f"sum by (codec, direction) (increase(cms_call_leg_media_streams_total"
                              f"{{{CBT}, media=\"video\"}}[{RI}]))", "{{codec}} {{direction}}")),
                     stack=True), 8, 8)
    b.add(timeseries("Codec mix by time (received)",
                     "Leg time per interval by received codec (cms_call_leg_media_seconds_total, "
                     "direction rx): which codecs carry the minutes.", "s",
                     targets((f"sum by (media, codec) (increase(cms_call_leg_media_seconds_total"
                              f"{{{CBT}, direction=\"rx\"}}[{RI}]))", "{{media}} {{codec}}")),
                     stack=True), 8, 8)
    b.add(heatmap("Received video resolution",
                  "Legs ended per interval by the largest received video height (maxSizeHeight of "
                  "rxVideo; buckets 144 to 2160 pixels).",
                  f"sum by (le) (increase(cms_call_leg_video_max_height_pixels_bucket{{{CBT}, "
                  f"direction=\"rx\"}}[{RI}]))", "none", scheme="Greens", y_decimals=0), 8, 8)
    b.add(timeseries("Video height (median)",
                     "Median of the largest video height per leg, received (rx) and sent (tx), in "
                     "pixels.", "none",
                     targets((f"histogram_quantile(0.5, sum by (le, direction) "
                              f"(rate(cms_call_leg_video_max_height_pixels_bucket{{{CBT}}}[{RI}])))",
                              "p50 {{direction}}")), decimals=0), 8, 8)
    b.add(timeseries("Media encryption",
                     "Share of ended legs by media encryption: encrypted, unencrypted, both, none "
                     "(neither field present).", "percentunit",
                     targets((f"sum by (encryption) (rate(cms_call_legs_encryption_total{{{CBT}}}"
                              f"[{RI}])) / ignoring (encryption) group_left () "
                              f"sum(rate(cms_call_legs_encryption_total{{{CBT}}}[{RI}]))",
                              "{{encryption}}")),
                     stack=True, max_=1,
                     overrides=[red_override("unencrypted")]), 8, 8)
    b.add(timeseries("Media usage",
                     "Share of leg time spent as main video viewer or contributor, presentation "
                     "viewer or contributor, and in multistream (mediaUsagePercentages x "
                     "durationSeconds over the legs' total duration).", "percentunit",
                     targets((f"sum by (usage) (rate(cms_call_leg_media_usage_seconds_total{{{CBT}}}"
                              f"[{RI}])) / scalar(sum(rate(cms_call_leg_duration_seconds_sum{{{CBT}}}"
                              f"[{RI}])))", "{{usage}}")), max_=1), 24, 8)

    b.row("Leg end reasons")
    b.add(timeseries("Leg ends by reason",
                     "callLegEnd records per interval by reason; abnormal reasons (" +
                     ", ".join(ABNORMAL) + ") are drawn in red.", "short",
                     targets((f"sum by (reason) (increase(cms_call_legs_ended_total{{{CBT}}}[{RI}]))",
                              "{{reason}}")),
                     stack=True, bars=False, overrides=[red_override(ABNORMAL_RE)]), 12, 9)
    b.add(timeseries("Abnormal leg ends",
                     "Only the abnormal end reasons (" + ", ".join(ABNORMAL) +
                     "), per reason and Call Bridge.", "short",
                     targets((f"sum by (reason, call_bridge) (increase(cms_call_legs_ended_total"
                              f"{{{CBT}, reason=~\"{ABNORMAL_RE}\"}}[{RI}]))",
                              "{{reason}} @ {{call_bridge}}")),
                     stack=True, thresholds=steps("green", 1, "red")), 12, 9)
    b.add(timeseries("Share of abnormal leg ends by tenant and Call Bridge",
                     "Legs ended with an abnormal reason divided by all legs ended, per tenant and "
                     "Call Bridge.", "percentunit",
                     targets((f"sum by (tenant, call_bridge) (rate(cms_call_legs_ended_total{{{CBT}, "
                              f"reason=~\"{ABNORMAL_RE}\"}}[{RI}])) / sum by (tenant, call_bridge) "
                              f"(rate(cms_call_legs_ended_total{{{CBT}}}[{RI}]))",
                              "{{tenant}} @ {{call_bridge}}")),
                     thresholds=share_steps, threshold_style="line", max_=1), 12, 8)
    b.add(timeseries("Leg ends by side",
                     "callLegEnd records per interval by which side tore the leg down "
                     "(remote_teardown true = the participant's side, false = the Meeting Server, "
                     "unknown = not reported).", "short",
                     targets((f"sum by (remote_teardown) (increase(cms_call_legs_ended_total"
                              f"{{{CBT}}}[{RI}]))", "remote teardown {{remote_teardown}}")),
                     stack=True), 12, 8)
    return b


# ---------------------------------------------------------------- receiver health
def health():
    b = Board(
        "cdr-receiver-health",
        "CDR receiver health",
        "cdr-exporter itself: records and batches received per Call Bridge, duplicates, gaps, "
        "invalid and rejected input, Call Bridge silence and restarts, correlation state, label "
        "caps and the process.",
        ["cdr-exporter", "cisco-meeting-server"],
    )
    b.annotations.append({
        "datasource": dict(DS),
        "enable": True,
        "expr": f'sum by (call_bridge) (increase(cdr_exporter_sessions_total{{{CB}}}[{RI}])) > 0',
        "hide": False,
        "iconColor": "orange",
        "name": "Call Bridge restarts",
        "step": "60s",
        "titleFormat": "Call Bridge restarted",
        "textFormat": "{{call_bridge}}: new CDR session",
    })
    b.annotations.append({
        "datasource": dict(DS),
        "enable": True,
        "expr": f"changes(process_start_time_seconds{{{JI}}}[{RI}]) > 0",
        "hide": False,
        "iconColor": "purple",
        "name": "Exporter restarts",
        "step": "60s",
        "titleFormat": "cdr-exporter restarted",
        "textFormat": "{{instance}}",
    })
    age_steps = steps("green", 600, "orange", 1800, "red")
    b.row("Status")
    b.add(stat("Exporter up",
               "Whether Prometheus could scrape each cdr-exporter instance (up).", "none",
               targets((f"up{{{JI}}}", "{{instance}}")),
               thresholds=steps("red", 1, "green"), graph="none", color_mode="background",
               mappings=[{"type": "value", "options": {
                   "0": {"text": "DOWN", "color": "red", "index": 0},
                   "1": {"text": "UP", "color": "green", "index": 1}}}]), 4, 4)
    b.add(stat("Version",
               "cdr-exporter version (cdr_exporter_build_info).", "none",
               targets((f"cdr_exporter_build_info{{{JI}}}", "{{version}}")), text_mode="name",
               graph="none", color_mode="none"), 4, 4)
    b.add(stat("Uptime",
               "Time since the exporter process started (process_start_time_seconds).", "s",
               targets(f"min(time() - process_start_time_seconds{{{JI}}})"), graph="none",
               color_mode="none"), 4, 4)
    b.add(stat("Records / s",
               "CDR records applied per second (duplicates excluded), all types.", "recps",
               targets(f"sum(rate(cdr_exporter_records_total{{{CB}}}[{RI}]))"), decimals=2),
          4, 4)
    b.add(stat("Oldest last batch",
               "Seconds since the most silent selected Call Bridge last had a batch accepted "
               "(exporter clock). CMS sends nothing while idle, so a quiet Call Bridge at night "
               "is normal; compare with its active calls.", "s",
               targets(f"max(time() - cdr_exporter_last_batch_timestamp_seconds{{{CB}}})"),
               thresholds=age_steps, graph="none"), 4, 4)
    b.add(stat("Records lost",
               "Records the Call Bridges discarded before they reached the exporter, in the "
               "last rate interval (correlatorIndex gaps and numPreceedingRecordsMissing).",
               "short",
               targets(f"sum(increase(cdr_exporter_records_missing_total{{{CB}}}[{RI}])) or vector(0)"),
               thresholds=steps("green", 1, "red"), decimals=0), 4, 4)

    b.row("Records and batches")
    b.add(timeseries("Records applied by type",
                     "CDR records applied per second by record type (duplicates excluded; "
                     "unknown types under their own name).", "recps",
                     targets((f"sum by (record_type) (rate(cdr_exporter_records_total{{{CB}}}[{RI}]))",
                              "{{record_type}}")), stack=True), 12, 8)
    b.add(timeseries("Records applied by Call Bridge",
                     "CDR records applied per second per Call Bridge.", "recps",
                     targets((f"sum by (call_bridge) (rate(cdr_exporter_records_total{{{CB}}}[{RI}]))",
                              "{{call_bridge}}")), stack=True), 12, 8)
    b.add(timeseries("Batches accepted by Call Bridge",
                     "CDR POST bodies accepted (answered 200) per second per Call Bridge.", "reqps",
                     targets((f"sum by (call_bridge) (rate(cdr_exporter_batches_total{{{CB}}}[{RI}]))",
                              "{{call_bridge}}"))), 8, 8)
    b.add(timeseries("Duplicate records",
                     "Records received again (same session and correlatorIndex, e.g. the Call "
                     "Bridge did not see our 200) and skipped, per interval.", "short",
                     targets((f"sum by (call_bridge) (increase(cdr_exporter_records_duplicate_total"
                              f"{{{CB}}}[{RI}]))", "{{call_bridge}}"))), 8, 8)
    b.add(timeseries("Missing records",
                     "Records lost before reaching the exporter per interval (the Call Bridge "
                     "discarded them while the receiver was unreachable). Any value is a gap in "
                     "the call data.", "short",
                     targets((f"sum by (call_bridge) (increase(cdr_exporter_records_missing_total"
                              f"{{{CB}}}[{RI}]))", "{{call_bridge}}")),
                     thresholds=steps("green", 1, "red"), threshold_style="line"), 8, 8)
    b.add(timeseries("Invalid records by reason",
                     "Records in well-formed batches that could not be used, per interval, by "
                     "reason and Call Bridge (stale_session = late records of a restarted Call "
                     "Bridge's old session).", "short",
                     targets((f"sum by (reason, call_bridge) (increase(cdr_exporter_records_invalid_total"
                              f"{{{CB}}}[{RI}]))", "{{reason}} @ {{call_bridge}}")), stack=True),
          8, 8)
    b.add(timeseries("Unmatched records",
                     "Update and end records for objects the exporter was not tracking (it started "
                     "mid-call, or the start record was lost), per interval.", "short",
                     targets((f"sum by (record_type, call_bridge) (increase("
                              f"cdr_exporter_records_unmatched_total{{{CB}}}[{RI}]))",
                              "{{record_type}} @ {{call_bridge}}")), stack=True), 8, 8)
    b.add(timeseries("Batches rejected by reason",
                     "CDR POST bodies rejected whole (400/413) per interval, by reason. Rejected "
                     "bodies are kept in data_dir/quarantine. Not attributable to a Call Bridge.",
                     "short",
                     targets((f"sum by (reason) (increase(cdr_exporter_batches_rejected_total{{{JI}}}"
                              f"[{RI}]))", "{{reason}}")),
                     stack=True), 8, 8)

    b.row("Call Bridges")
    b.add(timeseries("Age of the last batch per Call Bridge",
                     "Seconds since each Call Bridge last had a batch accepted (time() - "
                     "cdr_exporter_last_batch_timestamp_seconds, exporter clock). Rising steadily "
                     "while calls are active means the Call Bridge stopped sending.", "s",
                     targets((f"time() - cdr_exporter_last_batch_timestamp_seconds{{{CB}}}",
                              "{{call_bridge}}")),
                     thresholds=age_steps, threshold_style="line"), 8, 8)
    b.add(timeseries("Age of the last record per Call Bridge",
                     "Seconds since the time attribute of the newest record applied (time() - "
                     "cdr_exporter_last_record_timestamp_seconds, Call Bridge clock). The "
                     "difference to the batch age is clock skew or a backlog being sent.", "s",
                     targets((f"time() - cdr_exporter_last_record_timestamp_seconds{{{CB}}}",
                              "{{call_bridge}}")),
                     thresholds=age_steps, threshold_style="line"), 8, 8)
    b.add(timeseries("Call Bridge restarts",
                     "New CDR sessions per interval after the first (increase of "
                     "cdr_exporter_sessions_total): each is a Call Bridge restart, whose calls, "
                     "legs, recordings and streamings the exporter ended.", "short",
                     targets((f"sum by (call_bridge) (increase(cdr_exporter_sessions_total{{{CB}}}"
                              f"[{RI}]))", "{{call_bridge}}")),
                     bars=True, thresholds=steps("green", 1, "orange")), 8, 8)

    b.row("Correlation state and labels")
    b.add(timeseries("Tracked objects",
                     "Calls, call legs, recordings and streamings held in memory awaiting their "
                     "end record (cdr_exporter_tracked_objects).", "short",
                     targets((f"sum by (kind) (cdr_exporter_tracked_objects{{{JI}}})", "{{kind}}"))),
          8, 8)
    b.add(timeseries("Evicted objects",
                     "Objects dropped without an end record per interval, by kind and reason "
                     "(max_age, max_objects, restart).", "short",
                     targets((f"sum by (kind, reason) (increase(cdr_exporter_evicted_objects_total"
                              f"{{{JI}}}[{RI}]))", "{{kind}} {{reason}}")), stack=True), 8, 8)
    b.add(timeseries("Label overflow",
                     "Label values replaced by other per interval, by label and cause: the "
                     "label's cap on distinct values was reached (max_values: "
                     "labels.max_call_bridges, labels.max_tenants, labels.max_values) or the value "
                     "was longer than labels.max_value_bytes (too_long).", "short",
                     targets((f"sum by (label, cause) (increase(cdr_exporter_label_overflow_total"
                              f"{{{JI}}}[{RI}]))", "{{label}} {{cause}}")),
                     thresholds=steps("green", 1, "orange"), threshold_style="line"), 8, 8)

    b.row("Durability and bounds")
    b.add(stat("Last start: batches lost",
               "Acknowledged batches the last start could not replay (damaged journal entries, "
               "or no readable snapshot and a journal that no longer reaches back to the start). "
               "Anything above 0 is data loss: see the runbook.", "short",
               targets(f"max(cdr_exporter_recovery_lost_batches{{{JI}}})"),
               thresholds=steps("green", 1, "red"), decimals=0), 4, 4)
    b.add(stat("Last start: unreadable snapshots",
               "Snapshots that could not be read at the last start (moved to "
               "data_dir/snapshots/damaged). An older snapshot and a longer replay were used.",
               "short", targets(f"max(cdr_exporter_recovery_unreadable_snapshots{{{JI}}})"),
               thresholds=steps("green", 1, "orange"), decimals=0), 4, 4)
    b.add(stat("Last start: state incomplete",
               "1 if the last start could not rebuild the whole state.", "short",
               targets(f"max(cdr_exporter_recovery_incomplete{{{JI}}})"),
               thresholds=steps("green", 1, "red"), decimals=0), 4, 4)
    b.add(stat("Last start: journal replayed",
               "Batches replayed from the journal at the last start, and bytes of the journal "
               "that were not a valid entry (torn writes, damage) and were skipped.", "short",
               targets((f"max(cdr_exporter_recovery_replayed_batches{{{JI}}})", "batches"),
                       (f"max(cdr_exporter_recovery_corrupt_bytes{{{JI}}})", "corrupt bytes",)), decimals=0), 4, 4)
    b.add(stat("Snapshot age",
               "Seconds since the last snapshot was written (snapshot.interval_seconds apart; "
               "the journal grows until one succeeds).", "s",
               targets(f"max(time() - cdr_exporter_snapshot_last_success_timestamp_seconds{{{JI}}})"),
               thresholds=steps("green", 900, "orange", 3600, "red"), graph="none"), 4, 4)
    b.add(stat("Snapshot: batches held back",
               "How long the last snapshot held batches back while it copied the state, and how "
               "long it took in all (serialising and writing happen while batches flow).", "s",
               targets((f"max(cdr_exporter_snapshot_last_gate_seconds{{{JI}}})", "held back"),
                       (f"max(cdr_exporter_snapshot_last_duration_seconds{{{JI}}})", "total",)), decimals=3), 4, 4)
    b.add(timeseries("Journal",
                     "Batches appended and fsync calls per second (concurrent batches share one "
                     "fsync), and failed writes per interval (each answered 503).", "short",
                     targets(
                         (f"sum(rate(cdr_exporter_journal_appends_total{{{JI}}}[{RI}]))", "appends/s"),
                         (f"sum(rate(cdr_exporter_journal_fsyncs_total{{{JI}}}[{RI}]))", "fsyncs/s"),
                         (f"sum(increase(cdr_exporter_journal_errors_total{{{JI}}}[{RI}]))",
                          "errors"),
                     ), overrides=[red_override("errors")]), 8, 8)
    b.add(timeseries("Journal fsync time",
                     "Mean time of one journal fsync, and bytes written to the journal per "
                     "second.", "s",
                     targets(
                         (f"sum(rate(cdr_exporter_journal_fsync_seconds_total{{{JI}}}[{RI}])) / "
                          f"sum(rate(cdr_exporter_journal_fsyncs_total{{{JI}}}[{RI}]))", "per fsync"),
                         (f"sum(rate(cdr_exporter_journal_written_bytes_total{{{JI}}}[{RI}]))",
                          "bytes/s"),
                     )), 8, 8)
    b.add(timeseries("Quarantine and suppressed log lines",
                     "Rejected bodies kept in data_dir/quarantine (files), bodies not kept or "
                     "removed to stay within quarantine_max_bytes / quarantine_max_files, and log "
                     "lines suppressed because their call site wrote 10 in 10 s, per interval.",
                     "short",
                     targets(
                         (f"max(cdr_exporter_quarantine_files{{{JI}}})", "files kept"),
                         (f"max(cdr_exporter_quarantine_bytes{{{JI}}})", "bytes kept"),
                         (f"sum(increase(cdr_exporter_quarantine_dropped_total{{{JI}}}[{RI}]))",
                          "bodies dropped"),
                         (f"sum(increase(cdr_exporter_log_lines_suppressed_total{{{JI}}}[{RI}]))",
                          "log lines suppressed"),
                     )), 8, 8)

    b.row("Process")
    b.add(timeseries("CPU",
                     "CPU time used by the exporter per second (1 = one core).", "percentunit",
                     targets((f"rate(process_cpu_seconds_total{{{JI}}}[{RI}])", "{{instance}}")),
                     decimals=1), 6, 8)
    b.add(timeseries("Memory",
                     "Resident and virtual memory of the exporter process.", "bytes",
                     targets(
                         (f"process_resident_memory_bytes{{{JI}}}", "resident {{instance}}"),
                         (f"process_virtual_memory_bytes{{{JI}}}", "virtual {{instance}}"),
                     )), 6, 8)
    b.add(timeseries("File descriptors and threads",
                     "Open file descriptors (each Call Bridge keeps a connection open) against "
                     "the limit, and threads.", "short",
                     targets(
                         (f"process_open_fds{{{JI}}}", "open fds {{instance}}"),
                         (f"process_max_fds{{{JI}}}", "max fds {{instance}}"),
                         (f"process_threads{{{JI}}}", "threads {{instance}}"),
                     )), 6, 8)
    b.add(timeseries("HTTP connections",
                     "Connections open to the receiver (Call Bridges keep one each, plus "
                     "Prometheus), and connections closed at once per interval by reason "
                     "(max_connections = server.max_connections reached, tls_handshake).",
                     "short",
                     targets(
                         (f"sum by (instance) (cdr_exporter_connections_active{{{JI}}})",
                          "open {{instance}}"),
                         (f"sum by (reason) (increase(cdr_exporter_connections_rejected_total"
                          f"{{{JI}}}[{RI}]))", "rejected {{reason}}"),
                     ), overrides=[red_override("rejected .*")]), 6, 8)
    return b


for board in (overview(), quality(), health()):
    path = f"{OUT}/{board.uid}.json"
    with open(path, "w") as f:
        json.dump(board.json(), f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(path, len([p for p in board.panels if p["type"] != "row"]), "panels")
