//! `apply_rtpengine(report)`: one Kamailio/rtpengine call report becomes metric updates,
//! once per call (node, Call-ID, tags, labels).

use crate::metrics::vocab::{self as v};
use crate::metrics::{NONE, UNKNOWN};
use crate::quality;
use crate::rtpengine::{self, EndEvent, Report, Sample};

use super::{sender_key, Ingest, Origin, Outcome, Seen};

impl Ingest {
    /// Applies one parsed rtpengine report. A call already applied is counted as a
    /// duplicate only.
    pub fn apply_rtpengine(&self, r: &Report, src: &Origin<'_>, now: f64) -> Outcome {
        let m = &*self.metrics;
        let key = sender_key(r.node.as_deref(), src);
        let node: v::Node = m.vocab.get(&key);
        m.rtp_last_received.max((node,), now);
        // Rare counters exist at 0, so increase() sees their first event.
        m.rtp_duplicates.touch((node,));
        for r in &self.fixed.rtp_mos_unavailable {
            m.rtp_mos_unavailable.touch((node, *r));
        }
        let id = rtpengine::dedupe_key(r).0.to_le_bytes();
        if self.seen(Seen::Rtpengine, &[key.as_bytes(), &id], now) {
            m.rtp_duplicates.inc((node,));
            return Outcome {
                duplicates: 1,
                ..Outcome::default()
            };
        }
        for f in &r.invalid {
            m.rtp_invalid.inc((node, m.vocab.get(f.reason.as_label())));
        }
        let event: v::RtpEvent = m
            .vocab
            .get(r.event.as_ref().map_or(UNKNOWN, |e| e.as_label()));
        let tenant: v::RtpTenant = m.vocab.get(r.tenant.as_deref().unwrap_or(NONE));
        m.rtp_calls.inc((node, event));
        m.rtp_tenant_calls.inc((tenant,));
        let (average, min) = mos_samples(r);
        let avg_mos = average.and_then(|s| s.mos);
        let min_mos = min.and_then(|s| s.mos);
        if let Some(x) = avg_mos {
            m.rtp_mos.observe((node,), x);
            m.rtp_tenant_mos.observe((tenant,), x);
        }
        if let Some(x) = min_mos {
            m.rtp_mos_min.observe((node,), x);
            m.rtp_tenant_mos_min.observe((tenant,), x);
        }
        if avg_mos.is_none() && min_mos.is_none() {
            let reason = if r.invalid.iter().any(|f| f.field.starts_with("mos")) {
                "invalid_values"
            } else if matches!(r.event, Some(EndEvent::Cancel | EndEvent::Failure)) {
                "not_answered"
            } else {
                "not_measured"
            };
            m.rtp_mos_unavailable.inc((node, m.vocab.get(reason)));
            m.rtp_tenant_mos_unavailable.inc((tenant,));
        }
        if let Some(s) = average {
            self.rtp_conditions(node, tenant, &s);
        }
        Outcome {
            applied: 1,
            invalid: r.invalid.len() as u64,
            ..Outcome::default()
        }
    }

    /// Loss, jitter and round trip of the average sample, and our estimate from them.
    fn rtp_conditions(&self, node: v::Node, tenant: v::RtpTenant, s: &Sample) {
        let m = &*self.metrics;
        if let Some(l) = s.packet_loss_percent {
            m.rtp_packet_loss.observe((node,), l / 100.0);
            m.rtp_tenant_packet_loss.observe((tenant,), l / 100.0);
        }
        if let Some(j) = s.jitter_ms {
            m.rtp_jitter.observe((node,), j / 1000.0);
        }
        // 0 means rtpengine saw one side only: no round trip, not a perfect one.
        let rtt_ms = s
            .roundtrip_us
            .filter(|us| *us > 0)
            .map(|us| us as f64 / 1000.0);
        if let Some(ms) = rtt_ms {
            m.rtp_roundtrip.observe((node,), ms / 1000.0);
        }
        if let (Some(l), Some(j)) = (s.packet_loss_percent, s.jitter_ms) {
            let est = quality::simplified_mos(rtt_ms.unwrap_or(0.0), j, l);
            m.rtp_estimated_mos.observe((node,), est);
        }
    }
}

/// The average and lowest samples: the call's own, else the worse side's (a report with
/// only A/B values, e.g. a config that sets only the labelled PVs).
fn mos_samples(r: &Report) -> (Option<Sample>, Option<Sample>) {
    let has = |s: &Option<Sample>| s.is_some_and(|s| s.mos.is_some());
    if has(&r.overall.average) || has(&r.overall.min) {
        return (r.overall.average, r.overall.min);
    }
    let worse = |a: Option<Sample>, b: Option<Sample>| match (a, b) {
        (Some(x), Some(y)) if x.mos.is_some() && y.mos.is_some() => {
            if y.mos < x.mos {
                Some(y)
            } else {
                Some(x)
            }
        }
        (x, y) => x
            .filter(|s| s.mos.is_some())
            .or(y.filter(|s| s.mos.is_some())),
    };
    (
        worse(r.a.mos.average, r.b.mos.average),
        worse(r.a.mos.min, r.b.mos.min),
    )
}
