//! `apply_freeswitch(cdr)`: one FreeSWITCH leg becomes metric updates, once per leg uuid.

use crate::freeswitch::{Cdr, InboundStats};
use crate::metrics::vocab::{self as v};
use crate::metrics::{NONE, UNKNOWN};
use crate::quality;

use super::{sender_key, Ingest, Origin, Outcome, Seen};

/// A leg's received audio, as the quality families see it.
enum AudioQuality<'a> {
    /// No `call-stats` at all (or no audio in it).
    NoCallStats,
    /// Stats present but nothing received: FreeSWITCH still says 4.50.
    NoMedia,
    /// Media flowed; the MOS may still be missing or invalid.
    Received(&'a InboundStats),
}

impl Ingest {
    /// Applies one parsed FreeSWITCH CDR. A leg already applied (same switch and uuid) is
    /// counted as a duplicate only.
    pub fn apply_freeswitch(&self, c: &Cdr, src: &Origin<'_>, now: f64) -> Outcome {
        let m = &*self.metrics;
        let key = sender_key(c.switchname.as_deref(), src);
        let sw: v::Switch = m.vocab.get(&key);
        // A duplicate still shows the switch is alive.
        m.fs_last_received.max((sw,), now);
        // Rare counters exist at 0, so increase() sees their first event.
        m.fs_duplicates.touch((sw,));
        for r in &self.fixed.fs_mos_unavailable {
            m.fs_mos_unavailable.touch((sw, *r));
        }
        if self.seen(Seen::FreeSwitch, &[key.as_bytes(), c.uuid.as_bytes()], now) {
            m.fs_duplicates.inc((sw,));
            return Outcome {
                duplicates: 1,
                ..Outcome::default()
            };
        }
        for f in &c.invalid {
            m.fs_invalid.inc((sw, m.vocab.get(f.reason.as_label())));
        }
        let leg: v::LegSide = m.vocab.get(c.leg.as_label());
        let dir: v::CallDirection = m.vocab.get(c.direction.map_or(UNKNOWN, |d| d.as_str()));
        let answered = c.answer_epoch.is_some_and(|t| t > 0) || c.billsec.is_some_and(|b| b > 0);
        let domain: v::FsDomain = m.vocab.get(
            c.domain_name
                .as_deref()
                .or(c.accountcode.as_deref())
                .unwrap_or(NONE),
        );
        let cause: v::HangupCause = m.vocab.get(c.hangup_cause.as_deref().unwrap_or(UNKNOWN));
        let q850: v::Q850 = match c.hangup_cause_q850 {
            Some(q) => m.vocab.get(&q.to_string()),
            None => m.vocab.get(UNKNOWN),
        };
        m.fs_legs.inc((sw, leg, dir));
        m.fs_hangups.inc((sw, cause, q850));
        m.fs_domain_legs.inc((domain, cause));
        if answered {
            m.fs_legs_answered.inc((sw, leg, dir));
            m.fs_domain_legs_answered.inc((domain,));
        }
        if let Some(d) = c.duration {
            m.fs_duration.observe((sw,), d as f64);
        }
        if let Some(b) = c.billsec.filter(|_| answered) {
            m.fs_billsec.observe((sw,), b as f64);
        }
        for (codec, dir) in [
            (&c.read_codec, self.fixed.rx),
            (&c.write_codec, self.fixed.tx),
        ] {
            if let Some(codec) = codec {
                m.fs_codecs.inc((sw, dir, m.vocab.get(codec)));
            }
        }
        self.fs_quality(c, sw, domain);
        Outcome {
            applied: 1,
            invalid: c.invalid.len() as u64,
            ..Outcome::default()
        }
    }

    fn fs_quality(&self, c: &Cdr, sw: v::Switch, domain: v::FsDomain) {
        let m = &*self.metrics;
        let audio = match c.call_stats.as_ref().and_then(|s| s.audio.as_ref()) {
            None => AudioQuality::NoCallStats,
            Some(a) if !a.inbound.has_media() => AudioQuality::NoMedia,
            Some(a) => AudioQuality::Received(&a.inbound),
        };
        let unavailable = |reason: &str| {
            m.fs_mos_unavailable
                .inc((sw, m.vocab.get::<v::FsMosUnavailable>(reason)));
            m.fs_domain_mos_unavailable.inc((domain,));
        };
        let s = match audio {
            AudioQuality::NoCallStats => return unavailable("no_call_stats"),
            AudioQuality::NoMedia => {
                // A bad packet count hides whether media flowed: that is not "no media".
                return unavailable(if bad_inbound_field(c) {
                    "invalid_values"
                } else {
                    "no_media"
                });
            }
            AudioQuality::Received(s) => s,
        };
        match s.usable_mos() {
            Some(mos) => {
                m.fs_mos.observe((sw,), mos);
                m.fs_domain_mos.observe((domain,), mos);
            }
            None => unavailable("invalid_values"),
        }
        let received = s.media_packet_count.unwrap_or(0) as f64;
        // FreeSWITCH's own R is 100 x (received - flaws) / received: the same ratio.
        let loss = s.flaw_total.map(|f| (f as f64 / received).min(1.0));
        // Variances are ms²: the square root is a jitter in ms (see README).
        let jitter_ms = s.jitter_max_variance.map(f64::sqrt);
        if let Some(l) = loss {
            m.fs_packet_loss.observe((sw,), l);
            m.fs_domain_packet_loss.observe((domain,), l);
        }
        if let Some(j) = jitter_ms {
            m.fs_jitter.observe((sw,), j / 1000.0);
        }
        if let (Some(l), Some(j)) = (loss, jitter_ms) {
            let est = quality::simplified_mos(0.0, j, l * 100.0);
            m.fs_estimated_mos.observe((sw,), est);
            m.fs_domain_estimated_mos.observe((domain,), est);
        }
    }
}

/// Whether a received-audio field was present but unusable.
fn bad_inbound_field(c: &Cdr) -> bool {
    c.invalid
        .iter()
        .any(|f| f.field.starts_with("audio.inbound."))
}
