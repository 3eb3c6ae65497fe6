//! A simulated FreeSWITCH switch: calls of one or two legs, each leg's CDR posted at hangup
//! as mod_xml_cdr posts it (one POST per leg, `?uuid=[a_]<uuid>`, every `encode` mode in
//! turn) or as mod_json_cdr does, and what the exporter makes of it (mirroring
//! `src/ingest/freeswitch.rs`).

use hyper::body::Bytes;
use percent_encoding::{AsciiSet, CONTROLS};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::voip::{self, Calls, Post, Tally};

/// Hangup causes the switches use, with their `switch_cause_t` code.
const NORMAL_CLEARING: (&str, u16) = ("NORMAL_CLEARING", 16);
const ORIGINATOR_CANCEL: (&str, u16) = ("ORIGINATOR_CANCEL", 487);
/// Why a B-leg was not answered (the A-leg ends with the same cause).
const NOT_ANSWERED: [(&str, u16); 4] = [
    ("NO_ANSWER", 19),
    ("USER_BUSY", 17),
    ("CALL_REJECTED", 21),
    ("NO_USER_RESPONSE", 18),
];
/// Why a call failed before any B-leg.
const FAILED: [(&str, u16); 3] = [
    ("UNALLOCATED_NUMBER", 1),
    ("NO_ROUTE_DESTINATION", 3),
    ("NORMAL_TEMPORARY_FAILURE", 41),
];
const CODECS: [&str; 5] = ["PCMU", "PCMA", "G722", "opus", "G729"];

/// `hangup_cause_q850`: `switch_channel_cause_q850` maps causes above 127 to 16.
fn q850(code: u16) -> u16 {
    if code > 127 {
        16
    } else {
        code
    }
}

/// mod_xml_cdr's `encode` modes, and mod_json_cdr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    UrlEncoded,
    Base64,
    Plain,
    TextXml,
    /// mod_json_cdr, values url-encoded (`encode-values`, its default) or not.
    Json {
        encode_values: bool,
    },
}

const ENCODINGS: [Encoding; 6] = [
    Encoding::UrlEncoded,
    Encoding::Base64,
    Encoding::Plain,
    Encoding::TextXml,
    Encoding::Json {
        encode_values: true,
    },
    Encoding::Json {
        encode_values: false,
    },
];

/// The audio a leg received, as `call-stats` says.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Audio {
    /// No `call-stats` content (no RTP: unanswered, or media bypassed).
    None,
    /// Stats, but nothing received: FreeSWITCH's initial 4.50 / 100.
    ZeroMedia { sent: u64 },
    Received {
        packets: u64,
        flaws: u64,
        jitter_max_variance: f64,
    },
}

/// One leg's CDR content.
#[derive(Clone, Debug)]
struct Leg {
    uuid: String,
    b_leg: bool,
    /// A-leg: the bridged B-leg; B-leg: its A-leg.
    other: Option<String>,
    domain_name: Option<String>,
    accountcode: Option<String>,
    cause: (&'static str, u16),
    codec: &'static str,
    start_epoch: u64,
    /// 0: not answered.
    answer_epoch: u64,
    end_epoch: u64,
    audio: Audio,
}

impl Leg {
    fn direction(&self) -> &'static str {
        if self.b_leg {
            "outbound"
        } else {
            "inbound"
        }
    }
    fn billsec(&self) -> u64 {
        if self.answer_epoch > 0 {
            self.end_epoch - self.answer_epoch
        } else {
            0
        }
    }
}

/// One simulated switch.
pub(crate) struct Switch {
    pub name: String,
    core_uuid: String,
    domains: usize,
    per_second: f64,
    duration_us: Option<u64>,
    bad_tail: f64,
    rng: ChaCha8Rng,
    /// Uuids: random per run, so that runs with one seed do not collide in the exporter.
    ids: ChaCha8Rng,
    path: String,
    at: u64,
    legs: u64,
    epoch: u64,
}

impl Switch {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        domains: usize,
        per_second: f64,
        duration_us: Option<u64>,
        bad_tail: f64,
        rng: ChaCha8Rng,
        mut ids: ChaCha8Rng,
        path: String,
    ) -> Switch {
        let core_uuid = voip::uuid(&mut ids);
        Switch {
            name,
            core_uuid,
            domains,
            per_second,
            duration_us,
            bad_tail,
            rng,
            ids,
            path,
            at: 0,
            legs: 0,
            epoch: 1_767_225_600,
        }
    }

    fn audio(&mut self, answered: bool) -> Audio {
        let r = &mut self.rng;
        if !answered || r.random_bool(0.03) {
            return Audio::None;
        }
        let secs = r.random_range(5..600u64);
        if r.random_bool(0.05) {
            return Audio::ZeroMedia { sent: secs * 50 };
        }
        let packets = secs * 50 - r.random_range(0..secs);
        let bad = r.random_bool(self.bad_tail);
        let (loss, var) = if bad {
            (r.random_range(0.1..0.45), r.random_range(80.0..1500.0))
        } else {
            (r.random_range(0.0..0.01), r.random_range(0.01..12.0))
        };
        Audio::Received {
            packets,
            flaws: (packets as f64 * loss) as u64,
            jitter_max_variance: var,
        }
    }

    /// One call's legs.
    fn call(&mut self) -> Vec<Leg> {
        let a = voip::uuid(&mut self.ids);
        let b = voip::uuid(&mut self.ids);
        let r = &mut self.rng;
        let (domain_name, accountcode) = match (self.domains, r.random_range(0..10)) {
            (0, _) | (_, 0) => (None, None),
            (n, 1) => (None, Some(voip::domain(r.random_range(0..n)))),
            (n, _) => {
                let d = voip::domain(r.random_range(0..n));
                (Some(d), Some(format!("{}", r.random_range(1000..1100))))
            }
        };
        self.epoch += r.random_range(1..30);
        let start = self.epoch;
        let ring = r.random_range(1..8);
        let codec = CODECS[r.random_range(0..CODECS.len())];
        let leg = |uuid: &str, other: Option<&str>, b_leg, cause, answer: u64, end: u64| Leg {
            uuid: uuid.to_owned(),
            b_leg,
            other: other.map(str::to_owned),
            domain_name: domain_name.clone(),
            accountcode: accountcode.clone(),
            cause,
            codec,
            start_epoch: start,
            answer_epoch: answer,
            end_epoch: end,
            audio: Audio::None,
        };
        let kind = r.random_range(0..100);
        let mut legs = match kind {
            // Answered and bridged.
            0..=69 => {
                let talk = r.random_range(5..900);
                let (ans, end) = (start + ring, start + ring + talk);
                vec![
                    leg(&a, Some(&b), false, NORMAL_CLEARING, ans, end),
                    leg(&b, Some(&a), true, NORMAL_CLEARING, ans, end),
                ]
            }
            // Answered by the switch itself (IVR, voicemail): one leg.
            70..=79 => {
                let talk = r.random_range(5..120);
                vec![leg(
                    &a,
                    None,
                    false,
                    NORMAL_CLEARING,
                    start + 1,
                    start + talk,
                )]
            }
            // The caller gave up while it rang.
            80..=87 => vec![
                leg(&a, Some(&b), false, ORIGINATOR_CANCEL, 0, start + ring),
                leg(&b, Some(&a), true, ORIGINATOR_CANCEL, 0, start + ring),
            ],
            // The callee did not answer.
            88..=95 => {
                let cause = NOT_ANSWERED[r.random_range(0..NOT_ANSWERED.len())];
                vec![
                    leg(&a, Some(&b), false, cause, 0, start + ring),
                    leg(&b, Some(&a), true, cause, 0, start + ring),
                ]
            }
            // Failed before any B-leg.
            _ => {
                let cause = FAILED[r.random_range(0..FAILED.len())];
                vec![leg(&a, None, false, cause, 0, start)]
            }
        };
        for l in &mut legs {
            l.audio = self.audio(l.answer_epoch > 0);
        }
        legs
    }

    fn post(&mut self, leg: &Leg) -> Post {
        let encoding = ENCODINGS[(self.legs % ENCODINGS.len() as u64) as usize];
        self.legs += 1;
        let (doc, json) = match encoding {
            Encoding::Json { encode_values } => (self.json(leg, encode_values), true),
            _ => (self.xml(leg), false),
        };
        // mod_xml_cdr with prefix-a-leg; mod_json_cdr without (their defaults differ).
        let a_prefix = !leg.b_leg && !json;
        let stem = format!("{}{}", if a_prefix { "a_" } else { "" }, leg.uuid);
        let (content_type, text, form) = match encoding {
            Encoding::UrlEncoded => (
                "application/x-www-form-urlencoded",
                url_encode(&doc, URL_UNSAFE),
                true,
            ),
            Encoding::Base64 => (
                "application/x-www-form-base64-encoded",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &doc),
                true,
            ),
            Encoding::Plain => ("application/x-www-form-plaintext", doc, true),
            Encoding::TextXml => ("text/xml", doc, false),
            Encoding::Json { .. } => ("application/json", doc, false),
        };
        let body = if form {
            format!("cdr={text}")
        } else {
            text.clone()
        };
        let err_log = if json {
            (format!("{stem}.cdr.json"), format!("{text}\n").into_bytes())
        } else {
            (format!("{stem}.cdr.xml"), text.into_bytes())
        };
        Post {
            path_and_query: format!("{}{}uuid={stem}", self.path, query_sep(&self.path)),
            content_type,
            body: Bytes::from(body),
            tally: self.tally(leg),
            err_log: Some(err_log),
            duplicate: (
                "freeswitch_cdr_duplicates_total",
                vec![("switch", self.name.clone())],
            ),
        }
    }

    /// What `apply_freeswitch` does with the leg.
    fn tally(&self, l: &Leg) -> Tally {
        let mut t = Tally::default();
        let sw = ("switch", self.name.as_str());
        let side = ("leg", if l.b_leg { "b" } else { "a" });
        let dir = ("direction", l.direction());
        let domain = (
            "domain",
            l.domain_name
                .as_deref()
                .or(l.accountcode.as_deref())
                .unwrap_or("none"),
        );
        let code = q850(l.cause.1).to_string();
        t.touch("freeswitch_cdr_invalid_fields_total", &[sw]);
        for r in MOS_UNAVAILABLE {
            t.touch(
                "freeswitch_cdr_leg_mos_unavailable_total",
                &[sw, ("reason", r)],
            );
        }
        t.inc("freeswitch_cdr_legs_total", &[sw, side, dir]);
        t.inc(
            "freeswitch_cdr_leg_hangups_total",
            &[sw, ("hangup_cause", l.cause.0), ("q850", &code)],
        );
        t.inc("freeswitch_cdr_domain_legs_total", &[domain]);
        let answered = l.answer_epoch > 0 || l.billsec() > 0;
        if answered {
            t.inc("freeswitch_cdr_legs_answered_total", &[sw, side, dir]);
            t.inc("freeswitch_cdr_domain_legs_answered_total", &[domain]);
            t.inc("freeswitch_cdr_leg_billed_seconds_count", &[sw]);
        }
        t.inc("freeswitch_cdr_leg_duration_seconds_count", &[sw]);
        for d in ["rx", "tx"] {
            t.inc(
                "freeswitch_cdr_leg_codecs_total",
                &[sw, ("direction", d), ("codec", l.codec)],
            );
        }
        let unavailable = |t: &mut Tally, reason| {
            t.inc(
                "freeswitch_cdr_leg_mos_unavailable_total",
                &[sw, ("reason", reason)],
            );
            t.inc("freeswitch_cdr_domain_leg_mos_unavailable_total", &[domain]);
        };
        match l.audio {
            Audio::None => unavailable(&mut t, "no_call_stats"),
            Audio::ZeroMedia { .. } => unavailable(&mut t, "no_media"),
            Audio::Received { .. } => {
                t.inc("freeswitch_cdr_leg_mos_count", &[sw]);
                t.inc("freeswitch_cdr_domain_leg_mos_count", &[domain]);
                for h in [
                    "freeswitch_cdr_leg_packet_loss_ratio_count",
                    "freeswitch_cdr_leg_jitter_seconds_count",
                    "freeswitch_cdr_leg_estimated_mos_count",
                ] {
                    t.inc(h, &[sw]);
                }
            }
        }
        t
    }

    /// The variables, in FreeSWITCH's order (values not yet encoded).
    fn variables(&self, l: &Leg) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("direction", l.direction().to_owned()),
            ("uuid", l.uuid.clone()),
            (
                "sip_call_id",
                format!("{}@192.0.2.10", &l.uuid[..8.min(l.uuid.len())]),
            ),
        ];
        if let Some(d) = &l.domain_name {
            v.push(("domain_name", d.clone()));
        }
        if let Some(a) = &l.accountcode {
            v.push(("accountcode", a.clone()));
        }
        let a_uuid = if l.b_leg {
            l.other.clone().unwrap_or_default()
        } else {
            l.uuid.clone()
        };
        v.push(("call_uuid", a_uuid));
        if let Some(o) = &l.other {
            if l.b_leg {
                v.push(("originator", o.clone()));
            }
            v.push(("signal_bond", o.clone()));
            v.push(("bridge_uuid", o.clone()));
        }
        v.extend([
            ("read_codec", l.codec.to_owned()),
            ("write_codec", l.codec.to_owned()),
            ("hangup_cause", l.cause.0.to_owned()),
            ("hangup_cause_q850", q850(l.cause.1).to_string()),
            ("caller_id", "\"Sim Caller\" <1001>".to_owned()),
            ("start_stamp", stamp(l.start_epoch)),
            ("start_epoch", l.start_epoch.to_string()),
            ("answer_epoch", l.answer_epoch.to_string()),
            ("end_epoch", l.end_epoch.to_string()),
            ("duration", (l.end_epoch - l.start_epoch).to_string()),
            ("billsec", l.billsec().to_string()),
        ]);
        v
    }

    fn xml(&self, l: &Leg) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(4096);
        let _ = write!(
            s,
            "<?xml version=\"1.0\"?>\n<cdr core-uuid=\"{}\" switchname=\"{}\">\n  <channel_data>\n    <state>CS_REPORTING</state>\n    <direction>{}</direction>\n    <state_number>11</state_number>\n  </channel_data>\n",
            self.core_uuid,
            self.name,
            l.direction()
        );
        match l.audio {
            Audio::None => s.push_str("  <call-stats></call-stats>\n"),
            a => {
                let (packets, flaws, var, sent) = inbound(a);
                let (quality, mos) = quality(packets, flaws);
                let _ = write!(
                    s,
                    "  <call-stats>\n    <audio>\n      <inbound>\n        <raw_bytes>{}</raw_bytes>\n        <media_bytes>{}</media_bytes>\n        <packet_count>{packets}</packet_count>\n        <media_packet_count>{packets}</media_packet_count>\n        <skip_packet_count>0</skip_packet_count>\n        <jitter_min_variance>{:.2}</jitter_min_variance>\n        <jitter_max_variance>{var:.2}</jitter_max_variance>\n        <jitter_loss_rate>0.00</jitter_loss_rate>\n        <jitter_burst_rate>0.00</jitter_burst_rate>\n        <mean_interval>{:.2}</mean_interval>\n        <flaw_total>{flaws}</flaw_total>\n        <quality_percentage>{quality:.2}</quality_percentage>\n        <mos>{mos:.2}</mos>\n      </inbound>\n      <outbound>\n        <raw_bytes>{}</raw_bytes>\n        <media_bytes>{}</media_bytes>\n        <packet_count>{sent}</packet_count>\n        <media_packet_count>{sent}</media_packet_count>\n        <rtcp_packet_count>{}</rtcp_packet_count>\n        <rtcp_octet_count>{}</rtcp_octet_count>\n      </outbound>\n    </audio>\n  </call-stats>\n",
                    packets * 172,
                    packets * 160,
                    var / 100.0,
                    if packets > 0 { 20.01 } else { 0.0 },
                    sent * 172,
                    sent * 160,
                    sent / 250,
                    sent / 250 * 80,
                );
            }
        }
        s.push_str("  <variables>\n");
        for (k, v) in self.variables(l) {
            let _ = writeln!(s, "    <{k}>{}</{k}>", url_encode(&v, URL_UNSAFE));
        }
        s.push_str("  </variables>\n  <app_log>\n    <application app_name=\"bridge\" app_data=\"user/1002\"></application>\n  </app_log>\n");
        let _ = write!(
            s,
            "  <callflow dialplan=\"XML\" unique-id=\"{}\" profile_index=\"1\">\n    <caller_profile>\n      <username>1001</username>\n      <caller_id_number>1001</caller_id_number>\n      <destination_number>1002</destination_number>\n      <uuid>{}</uuid>\n",
            l.uuid, l.uuid
        );
        if let Some(o) = &l.other {
            let (outer, inner) = if l.b_leg {
                ("originator", "originator_caller_profile")
            } else {
                ("origination", "origination_caller_profile")
            };
            let _ = write!(
                s,
                "      <{outer}>\n        <{inner}>\n          <username>1001</username>\n          <uuid>{o}</uuid>\n        </{inner}>\n      </{outer}>\n"
            );
        }
        let us = |e: u64| if e > 0 { e * 1_000_000 } else { 0 };
        let _ = write!(
            s,
            "    </caller_profile>\n    <times>\n      <created_time>{}</created_time>\n      <answered_time>{}</answered_time>\n      <hangup_time>{}</hangup_time>\n    </times>\n  </callflow>\n</cdr>\n",
            us(l.start_epoch),
            us(l.answer_epoch),
            us(l.end_epoch)
        );
        s
    }

    fn json(&self, l: &Leg, encode_values: bool) -> String {
        use serde_json::{json, Map, Value};
        let mut vars = Map::new();
        for (k, v) in self.variables(l) {
            let v = if encode_values {
                url_encode(&v, URL_UNSAFE)
            } else {
                v
            };
            vars.insert(k.to_owned(), Value::String(v));
        }
        let stats = match l.audio {
            Audio::None => json!({}),
            a => {
                let (packets, flaws, var, sent) = inbound(a);
                let (quality, mos) = quality(packets, flaws);
                json!({"audio": {
                    "inbound": {
                        "raw_bytes": packets * 172, "media_bytes": packets * 160,
                        "packet_count": packets, "media_packet_count": packets,
                        "skip_packet_count": 0, "jitter_min_variance": var / 100.0,
                        "jitter_max_variance": var, "jitter_loss_rate": 0,
                        "jitter_burst_rate": 0, "mean_interval": 20,
                        "flaw_total": flaws, "quality_percentage": quality, "mos": mos
                    },
                    "outbound": {
                        "raw_bytes": sent * 172, "media_bytes": sent * 160,
                        "packet_count": sent, "media_packet_count": sent,
                        "rtcp_packet_count": sent / 250, "rtcp_octet_count": sent / 250 * 80
                    }
                }})
            }
        };
        let mut profile = json!({
            "username": "1001", "caller_id_number": "1001", "destination_number": "1002",
            "uuid": l.uuid, "source": "mod_sofia", "context": "default"
        });
        if let (Some(o), true) = (&l.other, l.b_leg) {
            profile["originator"] = json!({"originator_caller_profiles": [
                {"username": "1001", "uuid": o}
            ]});
        }
        json!({
            "core-uuid": self.core_uuid,
            "switchname": self.name,
            "channel_data": {"state": "CS_REPORTING", "direction": l.direction(), "state_number": "11"},
            "callStats": stats,
            "variables": vars,
            "callflow": [{"dialplan": "XML", "profile_index": "1", "caller_profile": profile}]
        })
        .to_string()
    }
}

/// `reason` values of `freeswitch_cdr_leg_mos_unavailable_total`.
const MOS_UNAVAILABLE: [&str; 3] = ["no_call_stats", "no_media", "invalid_values"];

/// (media packets received, flaws, jitter_max_variance, packets sent).
fn inbound(a: Audio) -> (u64, u64, f64, u64) {
    match a {
        Audio::None => (0, 0, 0.0, 0),
        Audio::ZeroMedia { sent } => (0, 0, 0.0, sent),
        Audio::Received {
            packets,
            flaws,
            jitter_max_variance,
        } => (packets, flaws, jitter_max_variance, packets),
    }
}

/// FreeSWITCH's quality percentage (its R) and MOS; 100 / 4.50 with nothing received.
fn quality(packets: u64, flaws: u64) -> (f64, f64) {
    if packets == 0 {
        return (100.0, 4.5);
    }
    let r = 100.0 * (packets.saturating_sub(flaws)) as f64 / packets as f64;
    let mos = 1.0 + 0.035 * r + 0.000007 * r * (r - 60.0) * (100.0 - r);
    (r, mos.clamp(1.0, 4.5))
}

fn stamp(epoch: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn query_sep(path: &str) -> &'static str {
    if path.contains('?') {
        "&"
    } else {
        "?"
    }
}

/// What `switch_url_encode` escapes besides controls and non-ASCII (`SWITCH_URL_UNSAFE`).
const URL_UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'"');

fn url_encode(s: &str, set: &'static AsciiSet) -> String {
    percent_encoding::utf8_percent_encode(s, set).to_string()
}

impl Calls for Switch {
    fn next_at(&mut self) -> Option<u64> {
        self.at += voip::gap_us(&mut self.rng, self.per_second);
        match self.duration_us {
            Some(d) if self.at > d => None,
            _ => Some(self.at),
        }
    }

    fn posts(&mut self) -> Vec<Post> {
        let legs = self.call();
        // B-legs end first: FreeSWITCH posts them before their A-leg.
        legs.iter().rev().map(|l| self.post(l)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn switch() -> Switch {
        Switch::new(
            "fs-sim-0".into(),
            2,
            10.0,
            Some(100_000_000),
            0.1,
            ChaCha8Rng::seed_from_u64(3),
            ChaCha8Rng::seed_from_u64(4),
            "/freeswitch/cdr".into(),
        )
    }

    /// Every encoding parses back with the exporter's parser to what the tally assumes.
    #[test]
    fn cdrs_parse_back_as_tallied() {
        let mut sw = switch();
        let mut seen = std::collections::HashSet::new();
        let mut reasons = std::collections::HashSet::new();
        for _ in 0..200 {
            sw.next_at();
            let legs = sw.call();
            for l in legs.iter().rev() {
                let p = sw.post(l);
                seen.insert(p.content_type);
                let c = crate::freeswitch::parse(Some(p.content_type), &p.body)
                    .unwrap_or_else(|e| panic!("{e}: {:?}", p.body));
                assert!(c.invalid.is_empty(), "{:?} {:?}", c.invalid, p.content_type);
                assert_eq!(c.uuid, l.uuid);
                assert_eq!(c.switchname.as_deref(), Some("fs-sim-0"));
                assert_eq!(c.leg.as_label(), if l.b_leg { "b" } else { "a" });
                assert_eq!(c.domain_name, l.domain_name);
                assert_eq!(c.accountcode, l.accountcode);
                assert_eq!(c.hangup_cause.as_deref(), Some(l.cause.0));
                assert_eq!(c.hangup_cause_q850, Some(q850(l.cause.1)));
                assert_eq!(c.billsec, Some(l.billsec()));
                assert_eq!(c.read_codec.as_deref(), Some(l.codec));
                let audio = c.call_stats.as_ref().and_then(|s| s.audio.as_ref());
                let reason = match (l.audio, audio) {
                    (Audio::None, None) => "no_call_stats",
                    (Audio::ZeroMedia { .. }, Some(a)) => {
                        assert!(!a.inbound.has_media());
                        assert_eq!(a.inbound.mos, Some(4.5));
                        "no_media"
                    }
                    (Audio::Received { .. }, Some(a)) => {
                        assert!(a.inbound.usable_mos().is_some());
                        assert!(a.inbound.flaw_total.is_some());
                        assert!(a.inbound.jitter_max_variance.is_some());
                        "mos"
                    }
                    (want, got) => panic!("{want:?} rendered as {got:?}"),
                };
                reasons.insert(reason);
                // The err-log file reads back too.
                let (name, text) = p.err_log.as_ref().unwrap();
                let c = crate::freeswitch::parse_err_log_file(name, text).unwrap();
                assert_eq!(c.uuid, l.uuid);
            }
        }
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(reasons.len(), 3, "{reasons:?}");
    }

    /// The bodies are byte for byte what the exporter's own encoder (checked against
    /// upstream in `tests/freeswitch_parse.rs`) makes of the same document.
    #[test]
    fn encodings_agree_with_the_exporters_encoder() {
        use crate::freeswitch::Encoding as E;
        let mut sw = switch();
        for _ in 0..30 {
            sw.next_at();
            for l in sw.call() {
                let i = sw.legs;
                let p = sw.post(&l);
                let (doc, want) = match ENCODINGS[(i % ENCODINGS.len() as u64) as usize] {
                    Encoding::UrlEncoded => (sw.xml(&l), E::UrlEncoded),
                    Encoding::Base64 => (sw.xml(&l), E::Base64),
                    Encoding::Plain => (sw.xml(&l), E::Plain),
                    Encoding::TextXml => (sw.xml(&l), E::TextXml),
                    Encoding::Json { encode_values } => (sw.json(&l, encode_values), E::Json),
                };
                let (ct, body) = crate::freeswitch::encode(&doc, want);
                assert_eq!((p.content_type, &p.body[..]), (ct, &body[..]));
            }
        }
    }

    /// The lists the tally relies on are the exporter's.
    #[test]
    fn vocabulary_is_the_exporters() {
        use crate::metrics::vocab::known;
        assert_eq!(&MOS_UNAVAILABLE[..], known::FREESWITCH_MOS_UNAVAILABLE);
        for c in CODECS {
            assert!(known::FREESWITCH_CODECS.contains(&c), "{c}");
        }
        let causes = [NORMAL_CLEARING, ORIGINATOR_CANCEL]
            .into_iter()
            .chain(NOT_ANSWERED)
            .chain(FAILED);
        for c in causes {
            assert!(known::HANGUP_CAUSES.contains(&c), "{c:?}");
        }
    }
}
