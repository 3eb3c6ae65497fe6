//! A simulated Kamailio node with rtpengine: after `rtpengine_delete` of each call, one JSON
//! POST of the MOS PVs (keys as in `tests/fixtures/rtpengine/kamailio-5.6-bye.json`), and
//! what the exporter makes of it (mirroring `src/ingest/rtpengine.rs`).

use hyper::body::Bytes;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use super::voip::{self, Calls, Post, Tally};

/// One MOS sample as rtpengine gives it (the module's PVs).
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Tenths: 43 is "4.3".
    mos: u32,
    loss_percent: u32,
    jitter_ms: u32,
    /// 0: rtpengine saw one side only.
    roundtrip_us: u64,
    /// `samples` (average) or seconds since the call began (`*_at` of min and max).
    count: u64,
}

#[derive(Clone, Copy, Debug)]
struct Side {
    average: Sample,
    min: Sample,
    max: Sample,
}

/// How a report without MOS says so.
#[derive(Clone, Copy, Debug)]
enum NoMos {
    Absent,
    Empty,
    KamailioNull,
}

#[derive(Clone, Debug)]
enum Mos {
    None(NoMos),
    /// The call's own values, and each side's.
    Overall {
        call: Side,
        a: Side,
        b: Side,
    },
    /// Only the labelled A/B PVs are set in the config.
    SidesOnly {
        a: Side,
        b: Side,
    },
}

const EVENTS: [&str; 3] = ["bye", "cancel", "failure"];
/// `reason` values of `kamailio_rtpengine_call_mos_unavailable_total`.
const MOS_UNAVAILABLE: [&str; 3] = ["not_measured", "not_answered", "invalid_values"];

pub(crate) struct Node {
    pub name: String,
    tenants: usize,
    per_second: f64,
    duration_us: Option<u64>,
    bad_tail: f64,
    rng: ChaCha8Rng,
    ids: ChaCha8Rng,
    path: String,
    at: u64,
}

impl Node {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        tenants: usize,
        per_second: f64,
        duration_us: Option<u64>,
        bad_tail: f64,
        rng: ChaCha8Rng,
        ids: ChaCha8Rng,
        path: String,
    ) -> Node {
        Node {
            name,
            tenants,
            per_second,
            duration_us,
            bad_tail,
            rng,
            ids,
            path,
            at: 0,
        }
    }

    fn sample(&mut self, bad: bool, one_sided: bool, secs: u64) -> Sample {
        let r = &mut self.rng;
        let (mos, loss, jitter) = if bad {
            (
                r.random_range(12..33),
                r.random_range(8..40),
                r.random_range(20..120),
            )
        } else {
            (
                r.random_range(38..45),
                r.random_range(0..3),
                r.random_range(0..15),
            )
        };
        Sample {
            mos,
            loss_percent: loss,
            jitter_ms: jitter,
            roundtrip_us: if one_sided {
                0
            } else {
                r.random_range(2_000..250_000)
            },
            count: r.random_range(1..=secs.max(1)),
        }
    }

    fn side(&mut self, bad: bool, one_sided: bool, secs: u64) -> Side {
        let average = self.sample(bad, one_sided, secs);
        let mut min = self.sample(bad, one_sided, secs);
        let mut max = self.sample(bad, one_sided, secs);
        min.mos = min.mos.min(average.mos);
        max.mos = max.mos.max(average.mos);
        Side { average, min, max }
    }

    /// One call's report: (event, tenant, MOS).
    fn call(&mut self) -> (&'static str, Option<String>, Mos) {
        let r = &mut self.rng;
        let event = match r.random_range(0..100) {
            0..=84 => EVENTS[0],
            85..=94 => EVENTS[1],
            _ => EVENTS[2],
        };
        let tenant = match self.tenants {
            0 => None,
            n if r.random_bool(0.9) => Some(voip::domain(r.random_range(0..n))),
            _ => None,
        };
        let no_mos = match r.random_range(0..3) {
            0 => NoMos::Absent,
            1 => NoMos::Empty,
            _ => NoMos::KamailioNull,
        };
        // No RTCP (or none with the round trip rtpengine's MOS needs): common.
        if event != "bye" || r.random_bool(0.25) {
            return (event, tenant, Mos::None(no_mos));
        }
        let bad = r.random_bool(self.bad_tail);
        let one_sided = r.random_bool(0.1);
        let sides_only = r.random_bool(0.15);
        let secs = r.random_range(10..900);
        let a = self.side(bad, one_sided, secs);
        let b = self.side(bad, one_sided, secs);
        let mos = if sides_only {
            Mos::SidesOnly { a, b }
        } else {
            let call = if a.average.mos <= b.average.mos { a } else { b };
            Mos::Overall { call, a, b }
        };
        (event, tenant, mos)
    }

    fn report(&mut self, event: &str, tenant: Option<&str>, mos: &Mos) -> (String, String) {
        let call_id = format!("{}@192.0.2.30", voip::uuid(&mut self.ids));
        let mut m = Map::new();
        let s = |v: String| Value::String(v);
        let put_side = |m: &mut Map<String, Value>, suffix: &str, side: Option<&Side>| {
            for (kind, smp) in [
                ("min", side.map(|x| x.min)),
                ("max", side.map(|x| x.max)),
                ("average", side.map(|x| x.average)),
            ] {
                let key = |what: &str| {
                    let base = if what.is_empty() {
                        format!("mos_{kind}")
                    } else {
                        format!("mos_{kind}_{what}")
                    };
                    format!("{base}{suffix}")
                };
                let mut fields: Vec<(String, Option<String>)> = Vec::new();
                fields.push((
                    key(""),
                    smp.map(|x| format!("{}.{}", x.mos / 10, x.mos % 10)),
                ));
                fields.push((key("packetloss"), smp.map(|x| x.loss_percent.to_string())));
                fields.push((key("jitter"), smp.map(|x| x.jitter_ms.to_string())));
                fields.push((key("roundtrip"), smp.map(|x| x.roundtrip_us.to_string())));
                fields.push((
                    key("roundtrip_leg"),
                    smp.map(|x| (x.roundtrip_us / 2).to_string()),
                ));
                if kind == "average" {
                    fields.push((key("samples"), smp.map(|x| x.count.to_string())));
                } else {
                    fields.push((
                        key("at"),
                        smp.map(|x| format!("{}:{:02}", x.count / 60, x.count % 60)),
                    ));
                }
                for (k, v) in fields {
                    match (v, mos) {
                        (Some(v), _) => {
                            m.insert(k, s(v));
                        }
                        (None, Mos::None(NoMos::Empty)) => {
                            m.insert(k, s(String::new()));
                        }
                        (None, Mos::None(NoMos::KamailioNull)) => {
                            m.insert(k, s("<null>".into()));
                        }
                        (None, _) => {}
                    }
                }
            }
        };
        match mos {
            Mos::None(_) => {
                put_side(&mut m, "", None);
                put_side(&mut m, "_A", None);
                put_side(&mut m, "_B", None);
            }
            Mos::Overall { call, a, b } => {
                put_side(&mut m, "", Some(call));
                put_side(&mut m, "_A", Some(a));
                put_side(&mut m, "_B", Some(b));
            }
            Mos::SidesOnly { a, b } => {
                put_side(&mut m, "_A", Some(a));
                put_side(&mut m, "_B", Some(b));
            }
        }
        m.insert("mos_A_label".into(), s("caller".into()));
        m.insert("mos_B_label".into(), s("callee".into()));
        m.insert("event".into(), s(event.into()));
        m.insert("node".into(), s(self.name.clone()));
        let tag = |r: &mut ChaCha8Rng| format!("{:08x}", r.random::<u32>());
        m.insert("from_tag".into(), s(tag(&mut self.ids)));
        m.insert("to_tag".into(), s(tag(&mut self.ids)));
        m.insert("call_id".into(), s(call_id.clone()));
        if let Some(t) = tenant {
            m.insert("tenant".into(), s(t.into()));
        }
        (call_id, Value::Object(m).to_string())
    }

    /// What `apply_rtpengine` does with the report.
    fn tally(&self, event: &str, tenant: Option<&str>, mos: &Mos) -> Tally {
        let mut t = Tally::default();
        let node = ("node", self.name.as_str());
        let tenant = ("tenant", tenant.unwrap_or("none"));
        t.touch("kamailio_rtpengine_report_invalid_fields_total", &[node]);
        for r in MOS_UNAVAILABLE {
            t.touch(
                "kamailio_rtpengine_call_mos_unavailable_total",
                &[node, ("reason", r)],
            );
        }
        t.inc("kamailio_rtpengine_calls_total", &[node, ("event", event)]);
        t.inc("kamailio_rtpengine_tenant_calls_total", &[tenant]);
        // The average and min: the call's own, else the worse side's.
        let average = match mos {
            Mos::None(_) => None,
            Mos::Overall { call, .. } => Some(call.average),
            Mos::SidesOnly { a, b } => Some(if b.average.mos < a.average.mos {
                b.average
            } else {
                a.average
            }),
        };
        let Some(avg) = average else {
            let reason = if event == "bye" {
                "not_measured"
            } else {
                "not_answered"
            };
            t.inc(
                "kamailio_rtpengine_call_mos_unavailable_total",
                &[node, ("reason", reason)],
            );
            t.inc(
                "kamailio_rtpengine_tenant_call_mos_unavailable_total",
                &[tenant],
            );
            return t;
        };
        for h in [
            "kamailio_rtpengine_call_mos_count",
            "kamailio_rtpengine_call_mos_min_count",
            "kamailio_rtpengine_call_packet_loss_ratio_count",
            "kamailio_rtpengine_call_jitter_seconds_count",
            "kamailio_rtpengine_call_estimated_mos_count",
        ] {
            t.inc(h, &[node]);
        }
        if avg.roundtrip_us > 0 {
            t.inc("kamailio_rtpengine_call_roundtrip_seconds_count", &[node]);
        }
        t.inc("kamailio_rtpengine_tenant_call_mos_count", &[tenant]);
        t
    }
}

impl Calls for Node {
    fn next_at(&mut self) -> Option<u64> {
        self.at += voip::gap_us(&mut self.rng, self.per_second);
        match self.duration_us {
            Some(d) if self.at > d => None,
            _ => Some(self.at),
        }
    }

    fn posts(&mut self) -> Vec<Post> {
        let (event, tenant, mos) = self.call();
        let (_, body) = self.report(event, tenant.as_deref(), &mos);
        vec![Post {
            path_and_query: self.path.clone(),
            content_type: "application/json",
            body: Bytes::from(body),
            tally: self.tally(event, tenant.as_deref(), &mos),
            err_log: None,
            duplicate: (
                "kamailio_rtpengine_reports_duplicate_total",
                vec![("node", self.name.clone())],
            ),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Reports parse back with the exporter's parser to what the tally assumes.
    #[test]
    fn reports_parse_back_as_tallied() {
        let mut n = Node::new(
            "kam-sim-0".into(),
            2,
            10.0,
            None,
            0.1,
            ChaCha8Rng::seed_from_u64(5),
            ChaCha8Rng::seed_from_u64(6),
            "/kamailio/mos".into(),
        );
        let mut kinds = std::collections::HashSet::new();
        for _ in 0..300 {
            let (event, tenant, mos) = n.call();
            let (call_id, body) = n.report(event, tenant.as_deref(), &mos);
            let r = crate::rtpengine::parse_request(Some("application/json"), body.as_bytes())
                .unwrap_or_else(|e| panic!("{e}: {body}"));
            assert!(r.invalid.is_empty(), "{:?} {body}", r.invalid);
            assert_eq!(r.node.as_deref(), Some("kam-sim-0"));
            assert_eq!(r.tenant, tenant);
            assert_eq!(r.event.map(|e| e.as_label()), Some(event));
            assert!(body.contains(&call_id));
            let has_overall = r.overall.average.is_some_and(|s| s.mos.is_some());
            let has_sides = r.a.mos.average.is_some_and(|s| s.mos.is_some())
                && r.b.mos.average.is_some_and(|s| s.mos.is_some());
            let kind = match &mos {
                Mos::None(_) => {
                    assert!(!has_overall && !has_sides, "{body}");
                    "none"
                }
                Mos::Overall { call, .. } => {
                    assert!(has_overall && has_sides, "{body}");
                    let avg = r.overall.average.unwrap();
                    assert_eq!(avg.roundtrip_us, Some(call.average.roundtrip_us));
                    assert!(avg.packet_loss_percent.is_some() && avg.jitter_ms.is_some());
                    "overall"
                }
                Mos::SidesOnly { .. } => {
                    assert!(!has_overall && has_sides, "{body}");
                    "sides"
                }
            };
            kinds.insert(kind);
        }
        assert_eq!(kinds.len(), 3, "{kinds:?}");
    }

    /// The lists the tally relies on are the exporter's.
    #[test]
    fn vocabulary_is_the_exporters() {
        use crate::metrics::vocab::known;
        assert_eq!(&MOS_UNAVAILABLE[..], known::RTPENGINE_MOS_UNAVAILABLE);
        assert_eq!(&EVENTS[..], known::RTPENGINE_EVENTS);
    }
}
