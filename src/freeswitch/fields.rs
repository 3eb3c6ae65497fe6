//! Raw field values to typed [`Cdr`] fields: strict numbers, bounded strings, decoded values.
//!
//! Both readers (XML, JSON) feed a [`Builder`]; it owns every validation rule, so the two
//! formats cannot drift apart. Each field is taken from its first occurrence only.

use std::borrow::Cow;

use super::error::ParseError;
use super::types::*;

/// A field value as a reader found it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Raw<'x> {
    Text(&'x str),
    U(u64),
    I(i64),
    F(f64),
    /// JSON `null`.
    Null,
    /// JSON object, array or boolean.
    WrongType,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Media {
    Audio,
    Video,
}

impl Media {
    pub(super) fn from_wire(s: &str) -> Option<Media> {
        match s {
            "audio" => Some(Media::Audio),
            "video" => Some(Media::Video),
            _ => None,
        }
    }
    fn idx(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Count,
    Real,
    Quality,
    Mos,
}

/// Declares a stat field enum: wire name (same in XML and JSON), kind, and the
/// `audio.`/`video.` field names for [`InvalidField::field`].
macro_rules! stat_fields {
    ($name:ident, $dir:literal, { $($v:ident = $wire:literal : $kind:ident),* $(,)? }) => {
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        pub(super) enum $name { $($v),* }
        impl $name {
            pub(super) fn from_wire(s: &str) -> Option<Self> {
                match s { $($wire => Some(Self::$v),)* _ => None }
            }
            fn kind(self) -> Kind {
                match self { $(Self::$v => Kind::$kind),* }
            }
            fn field(self, m: Media) -> &'static str {
                match m {
                    Media::Audio => match self { $(Self::$v => concat!("audio.", $dir, ".", $wire)),* },
                    Media::Video => match self { $(Self::$v => concat!("video.", $dir, ".", $wire)),* },
                }
            }
            fn bit(self) -> u32 {
                1 << (self as u32)
            }
        }
    };
}

stat_fields!(InField, "inbound", {
    RawBytes = "raw_bytes": Count,
    MediaBytes = "media_bytes": Count,
    PacketCount = "packet_count": Count,
    MediaPacketCount = "media_packet_count": Count,
    SkipPacketCount = "skip_packet_count": Count,
    JitterPacketCount = "jitter_packet_count": Count,
    DtmfPacketCount = "dtmf_packet_count": Count,
    CngPacketCount = "cng_packet_count": Count,
    FlushPacketCount = "flush_packet_count": Count,
    LargestJbSize = "largest_jb_size": Count,
    JitterMinVariance = "jitter_min_variance": Real,
    JitterMaxVariance = "jitter_max_variance": Real,
    JitterLossRate = "jitter_loss_rate": Real,
    JitterBurstRate = "jitter_burst_rate": Real,
    MeanInterval = "mean_interval": Real,
    FlawTotal = "flaw_total": Count,
    QualityPercentage = "quality_percentage": Quality,
    Mos = "mos": Mos,
});

stat_fields!(OutField, "outbound", {
    RawBytes = "raw_bytes": Count,
    MediaBytes = "media_bytes": Count,
    PacketCount = "packet_count": Count,
    MediaPacketCount = "media_packet_count": Count,
    SkipPacketCount = "skip_packet_count": Count,
    DtmfPacketCount = "dtmf_packet_count": Count,
    CngPacketCount = "cng_packet_count": Count,
    RtcpPacketCount = "rtcp_packet_count": Count,
    RtcpOctetCount = "rtcp_octet_count": Count,
});

/// An `error-period` child. XML and JSON spell two of them differently.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum PeriodField {
    Start,
    Stop,
    Flaws,
    ConsecutiveFlaws,
    DurationMs,
}

impl PeriodField {
    pub(super) fn from_xml(s: &str) -> Option<Self> {
        Some(match s {
            "start" => Self::Start,
            "stop" => Self::Stop,
            "flaws" => Self::Flaws,
            "consecutive-flaws" => Self::ConsecutiveFlaws,
            "duration-msec" => Self::DurationMs,
            _ => return None,
        })
    }
    pub(super) fn from_json(s: &str) -> Option<Self> {
        Some(match s {
            "start" => Self::Start,
            "stop" => Self::Stop,
            "flaws" => Self::Flaws,
            "consecutiveFlaws" => Self::ConsecutiveFlaws,
            "durationMS" => Self::DurationMs,
            _ => return None,
        })
    }
    fn field(self, m: Media) -> &'static str {
        match (m, self) {
            (Media::Audio, Self::Start) => "audio.error_log.start",
            (Media::Audio, Self::Stop) => "audio.error_log.stop",
            (Media::Audio, Self::Flaws) => "audio.error_log.flaws",
            (Media::Audio, Self::ConsecutiveFlaws) => "audio.error_log.consecutive_flaws",
            (Media::Audio, Self::DurationMs) => "audio.error_log.duration_ms",
            (Media::Video, Self::Start) => "video.error_log.start",
            (Media::Video, Self::Stop) => "video.error_log.stop",
            (Media::Video, Self::Flaws) => "video.error_log.flaws",
            (Media::Video, Self::ConsecutiveFlaws) => "video.error_log.consecutive_flaws",
            (Media::Video, Self::DurationMs) => "video.error_log.duration_ms",
        }
    }
}

/// Channel variables the CDR keeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Var {
    Uuid,
    CallUuid,
    BridgeUuid,
    SignalBond,
    Originator,
    SipCallId,
    DomainName,
    Accountcode,
    Direction,
    HangupCause,
    HangupCauseQ850,
    ReadCodec,
    WriteCodec,
    Duration,
    Billsec,
    StartEpoch,
    AnswerEpoch,
    EndEpoch,
}

impl Var {
    pub(super) const COUNT: usize = 18;
    const ALL: [Var; Var::COUNT] = [
        Var::Uuid,
        Var::CallUuid,
        Var::BridgeUuid,
        Var::SignalBond,
        Var::Originator,
        Var::SipCallId,
        Var::DomainName,
        Var::Accountcode,
        Var::Direction,
        Var::HangupCause,
        Var::HangupCauseQ850,
        Var::ReadCodec,
        Var::WriteCodec,
        Var::Duration,
        Var::Billsec,
        Var::StartEpoch,
        Var::AnswerEpoch,
        Var::EndEpoch,
    ];

    pub(super) fn from_idx(i: usize) -> Option<Var> {
        Var::ALL.get(i).copied()
    }

    pub(super) fn from_name(s: &str) -> Option<Var> {
        Some(match s {
            "uuid" => Var::Uuid,
            "call_uuid" => Var::CallUuid,
            "bridge_uuid" => Var::BridgeUuid,
            "signal_bond" => Var::SignalBond,
            "originator" => Var::Originator,
            "sip_call_id" => Var::SipCallId,
            "domain_name" => Var::DomainName,
            "accountcode" => Var::Accountcode,
            "direction" => Var::Direction,
            "hangup_cause" => Var::HangupCause,
            "hangup_cause_q850" => Var::HangupCauseQ850,
            "read_codec" => Var::ReadCodec,
            "write_codec" => Var::WriteCodec,
            "duration" => Var::Duration,
            "billsec" => Var::Billsec,
            "start_epoch" => Var::StartEpoch,
            "answer_epoch" => Var::AnswerEpoch,
            "end_epoch" => Var::EndEpoch,
            _ => return None,
        })
    }

    fn field(self) -> &'static str {
        match self {
            Var::Uuid => "variables.uuid",
            Var::CallUuid => "variables.call_uuid",
            Var::BridgeUuid => "variables.bridge_uuid",
            Var::SignalBond => "variables.signal_bond",
            Var::Originator => "variables.originator",
            Var::SipCallId => "variables.sip_call_id",
            Var::DomainName => "variables.domain_name",
            Var::Accountcode => "variables.accountcode",
            Var::Direction => "variables.direction",
            Var::HangupCause => "variables.hangup_cause",
            Var::HangupCauseQ850 => "variables.hangup_cause_q850",
            Var::ReadCodec => "variables.read_codec",
            Var::WriteCodec => "variables.write_codec",
            Var::Duration => "variables.duration",
            Var::Billsec => "variables.billsec",
            Var::StartEpoch => "variables.start_epoch",
            Var::AnswerEpoch => "variables.answer_epoch",
            Var::EndEpoch => "variables.end_epoch",
        }
    }

    pub(super) fn idx(self) -> usize {
        self as usize
    }
}

/// Bits for the fields outside variables and stats, for first-occurrence-wins.
const SEEN_CORE_UUID: u32 = 1;
const SEEN_SWITCHNAME: u32 = 2;
const SEEN_CHAN_DIRECTION: u32 = 4;
const SEEN_PROFILE_UUID: u32 = 8;
const SEEN_UNIQUE_ID: u32 = 16;

/// Collects fields into a [`Cdr`]; `finish` decides uuid, leg and direction.
pub(super) struct Builder {
    cdr: Cdr,
    seen: u32,
    var_seen: u32,
    /// Per media: inbound and outbound field bits.
    stat_seen: [[u32; 2]; 2],
    period_seen: [u32; 2],
    periods_full: [bool; 2],
    stats: [Option<MediaStats>; 2],
    uuid_var: Option<String>,
    uuid_profile: Option<String>,
    uuid_unique_id: Option<String>,
    uuid_problem: Option<InvalidReason>,
    callflow_seen: bool,
    has_originator: bool,
    chan_direction: Option<Direction>,
    var_direction: Option<Direction>,
    /// Strings outside the variables are url-encoded too (see `set_strings_escaped`).
    escaped: bool,
}

impl Builder {
    pub(super) fn new(format: Format) -> Builder {
        Builder {
            cdr: Cdr {
                format,
                uuid: String::new(),
                core_uuid: None,
                switchname: None,
                leg: LegSide::A,
                direction: None,
                call_uuid: None,
                bridge_uuid: None,
                signal_bond: None,
                originator: None,
                sip_call_id: None,
                domain_name: None,
                accountcode: None,
                hangup_cause: None,
                hangup_cause_q850: None,
                read_codec: None,
                write_codec: None,
                duration: None,
                billsec: None,
                start_epoch: None,
                answer_epoch: None,
                end_epoch: None,
                call_stats: None,
                values_url_encoded: format == Format::Xml,
                invalid: Vec::new(),
            },
            seen: 0,
            var_seen: 0,
            stat_seen: [[0; 2]; 2],
            period_seen: [0; 2],
            periods_full: [false; 2],
            stats: [None, None],
            uuid_var: None,
            uuid_profile: None,
            uuid_unique_id: None,
            uuid_problem: None,
            callflow_seen: false,
            has_originator: false,
            chan_direction: None,
            var_direction: None,
            escaped: false,
        }
    }

    /// Every string in the document is still url-encoded, not only variable values.
    pub(super) fn set_strings_escaped(&mut self, escaped: bool) {
        self.escaped = escaped;
    }

    fn invalid(&mut self, field: &'static str, reason: InvalidReason) {
        self.cdr.invalid.push(InvalidField { field, reason });
    }

    fn first(&mut self, bit: u32) -> bool {
        let fresh = self.seen & bit == 0;
        self.seen |= bit;
        fresh
    }

    /// A JSON container of the wrong kind (e.g. `"variables": 5`).
    pub(super) fn wrong_type(&mut self, field: &'static str) {
        self.invalid(field, InvalidReason::WrongType);
    }

    /// The body was not UTF-8 and was read with replacement characters.
    pub(super) fn lossy_body(&mut self) {
        self.invalid("body", InvalidReason::InvalidUtf8);
    }

    pub(super) fn set_values_url_encoded(&mut self, encoded: bool) {
        self.cdr.values_url_encoded = encoded;
    }

    pub(super) fn core_uuid(&mut self, raw: Raw<'_>) {
        if self.first(SEEN_CORE_UUID) {
            self.cdr.core_uuid = self.text("core-uuid", raw, self.escaped, MAX_ID_LEN);
        }
    }

    pub(super) fn switchname(&mut self, raw: Raw<'_>) {
        if self.first(SEEN_SWITCHNAME) {
            self.cdr.switchname = self.text("switchname", raw, self.escaped, MAX_NAME_LEN);
        }
    }

    pub(super) fn channel_direction(&mut self, raw: Raw<'_>) {
        if self.first(SEEN_CHAN_DIRECTION) {
            self.chan_direction = self.direction("channel_data.direction", raw, self.escaped);
        }
    }

    /// The first callflow began (the channel's current caller profile).
    pub(super) fn callflow(&mut self) {
        self.callflow_seen = true;
    }

    /// The first callflow's `unique-id` attribute (XML only).
    pub(super) fn callflow_unique_id(&mut self, raw: Raw<'_>) {
        if self.first(SEEN_UNIQUE_ID) {
            self.uuid_unique_id = self.id("callflow.unique-id", raw, self.escaped);
        }
    }

    /// The first callflow's `caller_profile/uuid`.
    pub(super) fn profile_uuid(&mut self, raw: Raw<'_>) {
        if self.first(SEEN_PROFILE_UUID) {
            self.uuid_profile = self.id("callflow.caller_profile.uuid", raw, self.escaped);
        }
    }

    /// The first callflow's caller profile has an originator caller profile.
    pub(super) fn originator_profile(&mut self) {
        self.has_originator = true;
    }

    pub(super) fn var(&mut self, var: Var, raw: Raw<'_>, encoded: bool) {
        let bit = 1u32 << var.idx();
        if self.var_seen & bit != 0 {
            return;
        }
        self.var_seen |= bit;
        let f = var.field();
        match var {
            Var::Uuid => self.uuid_var = self.id(f, raw, encoded),
            Var::CallUuid => self.cdr.call_uuid = self.id(f, raw, encoded),
            Var::BridgeUuid => self.cdr.bridge_uuid = self.id(f, raw, encoded),
            Var::SignalBond => self.cdr.signal_bond = self.id(f, raw, encoded),
            Var::Originator => self.cdr.originator = self.id(f, raw, encoded),
            Var::SipCallId => self.cdr.sip_call_id = self.id(f, raw, encoded),
            Var::DomainName => self.cdr.domain_name = self.text(f, raw, encoded, MAX_NAME_LEN),
            Var::Accountcode => self.cdr.accountcode = self.text(f, raw, encoded, MAX_NAME_LEN),
            Var::HangupCause => self.cdr.hangup_cause = self.text(f, raw, encoded, MAX_NAME_LEN),
            Var::ReadCodec => self.cdr.read_codec = self.text(f, raw, encoded, MAX_NAME_LEN),
            Var::WriteCodec => self.cdr.write_codec = self.text(f, raw, encoded, MAX_NAME_LEN),
            Var::Direction => self.var_direction = self.direction(f, raw, encoded),
            Var::HangupCauseQ850 => {
                self.cdr.hangup_cause_q850 = match self.var_count(f, raw, encoded) {
                    Some(n) if n <= 127 => Some(n as u16),
                    Some(_) => {
                        self.invalid(f, InvalidReason::OutOfRange);
                        None
                    }
                    None => None,
                }
            }
            Var::Duration => self.cdr.duration = self.var_count(f, raw, encoded),
            Var::Billsec => self.cdr.billsec = self.var_count(f, raw, encoded),
            Var::StartEpoch => self.cdr.start_epoch = self.var_count(f, raw, encoded),
            Var::AnswerEpoch => self.cdr.answer_epoch = self.var_count(f, raw, encoded),
            Var::EndEpoch => self.cdr.end_epoch = self.var_count(f, raw, encoded),
        }
    }

    /// A media section began (`<audio>`, `"video": {…}`).
    pub(super) fn media(&mut self, m: Media) {
        self.stats[m.idx()].get_or_insert_with(MediaStats::default);
    }

    pub(super) fn inbound(&mut self, m: Media, f: InField, raw: Raw<'_>) {
        let seen = &mut self.stat_seen[m.idx()][0];
        if *seen & f.bit() != 0 {
            return;
        }
        *seen |= f.bit();
        let name = f.field(m);
        match f.kind() {
            Kind::Count => {
                let v = self.stat_count(name, raw);
                let s = &mut self.media_mut(m).inbound;
                *match f {
                    InField::RawBytes => &mut s.raw_bytes,
                    InField::MediaBytes => &mut s.media_bytes,
                    InField::PacketCount => &mut s.packet_count,
                    InField::MediaPacketCount => &mut s.media_packet_count,
                    InField::SkipPacketCount => &mut s.skip_packet_count,
                    InField::JitterPacketCount => &mut s.jitter_packet_count,
                    InField::DtmfPacketCount => &mut s.dtmf_packet_count,
                    InField::CngPacketCount => &mut s.cng_packet_count,
                    InField::FlushPacketCount => &mut s.flush_packet_count,
                    InField::LargestJbSize => &mut s.largest_jb_size,
                    _ => &mut s.flaw_total,
                } = v;
            }
            kind => {
                let v = self.stat_real(name, raw, kind);
                let s = &mut self.media_mut(m).inbound;
                *match f {
                    InField::JitterMinVariance => &mut s.jitter_min_variance,
                    InField::JitterMaxVariance => &mut s.jitter_max_variance,
                    InField::JitterLossRate => &mut s.jitter_loss_rate,
                    InField::JitterBurstRate => &mut s.jitter_burst_rate,
                    InField::MeanInterval => &mut s.mean_interval,
                    InField::QualityPercentage => &mut s.quality_percentage,
                    _ => &mut s.mos,
                } = v;
            }
        }
    }

    pub(super) fn outbound(&mut self, m: Media, f: OutField, raw: Raw<'_>) {
        let seen = &mut self.stat_seen[m.idx()][1];
        if *seen & f.bit() != 0 {
            return;
        }
        *seen |= f.bit();
        debug_assert_eq!(f.kind(), Kind::Count);
        let v = self.stat_count(f.field(m), raw);
        let s = &mut self.media_mut(m).outbound;
        *match f {
            OutField::RawBytes => &mut s.raw_bytes,
            OutField::MediaBytes => &mut s.media_bytes,
            OutField::PacketCount => &mut s.packet_count,
            OutField::MediaPacketCount => &mut s.media_packet_count,
            OutField::SkipPacketCount => &mut s.skip_packet_count,
            OutField::DtmfPacketCount => &mut s.dtmf_packet_count,
            OutField::CngPacketCount => &mut s.cng_packet_count,
            OutField::RtcpPacketCount => &mut s.rtcp_packet_count,
            OutField::RtcpOctetCount => &mut s.rtcp_octet_count,
        } = v;
    }

    /// Starts an error period; `false` once [`MAX_ERROR_PERIODS`] are kept (then skip it).
    pub(super) fn error_period(&mut self, m: Media) -> bool {
        if self.media_mut(m).error_log.len() >= MAX_ERROR_PERIODS {
            if !self.periods_full[m.idx()] {
                self.periods_full[m.idx()] = true;
                let field = match m {
                    Media::Audio => "audio.error_log",
                    Media::Video => "video.error_log",
                };
                self.invalid(field, InvalidReason::TooMany);
            }
            return false;
        }
        self.media_mut(m).error_log.push(ErrorPeriod::default());
        self.period_seen[m.idx()] = 0;
        true
    }

    /// A field of the period `error_period` started last.
    pub(super) fn period_field(&mut self, m: Media, f: PeriodField, raw: Raw<'_>) {
        let bit = 1u32 << (f as u32);
        if self.period_seen[m.idx()] & bit != 0 {
            return;
        }
        self.period_seen[m.idx()] |= bit;
        let v = self.stat_count(f.field(m), raw);
        let Some(p) = self.media_mut(m).error_log.last_mut() else {
            return;
        };
        *match f {
            PeriodField::Start => &mut p.start,
            PeriodField::Stop => &mut p.stop,
            PeriodField::Flaws => &mut p.flaws,
            PeriodField::ConsecutiveFlaws => &mut p.consecutive_flaws,
            PeriodField::DurationMs => &mut p.duration_ms,
        } = v;
    }

    fn media_mut(&mut self, m: Media) -> &mut MediaStats {
        self.stats[m.idx()].get_or_insert_with(MediaStats::default)
    }

    /// Chooses the uuid and the leg; fails only when no usable uuid exists.
    pub(super) fn finish(mut self) -> Result<Cdr, ParseError> {
        let uuid = self
            .uuid_var
            .take()
            .or(self.uuid_profile.take())
            .or(self.uuid_unique_id.take());
        self.cdr.uuid = match uuid {
            Some(u) => u,
            None => {
                return Err(match self.uuid_problem {
                    Some(r) => ParseError::InvalidUuid(r),
                    None => ParseError::NoUuid,
                })
            }
        };
        self.cdr.leg = if self.callflow_seen {
            if self.has_originator {
                LegSide::B
            } else {
                LegSide::A
            }
        } else if self.cdr.originator.is_some() {
            LegSide::B
        } else {
            LegSide::A
        };
        self.cdr.direction = self.chan_direction.or(self.var_direction);
        let [audio, video] = self.stats;
        if audio.is_some() || video.is_some() {
            self.cdr.call_stats = Some(CallStats { audio, video });
        }
        Ok(self.cdr)
    }

    // ---- value rules ------------------------------------------------------------------

    /// An id: bounded text; problems with a uuid source are remembered for the error.
    fn id(&mut self, field: &'static str, raw: Raw<'_>, encoded: bool) -> Option<String> {
        let before = self.cdr.invalid.len();
        let v = self.text(field, raw, encoded, MAX_ID_LEN);
        let is_uuid_source = matches!(
            field,
            "variables.uuid" | "callflow.caller_profile.uuid" | "callflow.unique-id"
        );
        if is_uuid_source && self.cdr.invalid.len() > before {
            self.uuid_problem = self.uuid_problem.or(Some(self.cdr.invalid[before].reason));
        }
        v
    }

    /// Bounded text without control characters; empty means absent.
    fn text(
        &mut self,
        field: &'static str,
        raw: Raw<'_>,
        encoded: bool,
        max: usize,
    ) -> Option<String> {
        match check_text(raw, encoded, max) {
            Ok(v) => v,
            Err(r) => {
                self.invalid(field, r);
                None
            }
        }
    }

    fn direction(&mut self, field: &'static str, raw: Raw<'_>, encoded: bool) -> Option<Direction> {
        let s = self.text(field, raw, encoded, MAX_NAME_LEN)?;
        let d = Direction::parse(&s);
        if d.is_none() {
            self.invalid(field, InvalidReason::UnknownValue);
        }
        d
    }

    /// A count in a variable: text (maybe url-encoded) of decimal digits.
    fn var_count(&mut self, field: &'static str, raw: Raw<'_>, encoded: bool) -> Option<u64> {
        let r = match raw {
            Raw::Text(_) => match check_text(raw, encoded, 64) {
                Ok(Some(s)) => parse_count(&s).map(Some),
                Ok(None) => Ok(None),
                Err(InvalidReason::TooLong) => Err(InvalidReason::BadNumber),
                Err(e) => Err(e),
            },
            Raw::Null => Ok(None),
            other => count_of(other).map(Some),
        };
        self.keep(field, r)
    }

    /// A count in the stats: text (never url-encoded) or a JSON number.
    fn stat_count(&mut self, field: &'static str, raw: Raw<'_>) -> Option<u64> {
        let r = match raw {
            Raw::Text(s) => match s.trim_ascii() {
                "" => Ok(None),
                s => parse_count(s).map(Some),
            },
            other => count_of(other).map(Some),
        };
        self.keep(field, r)
    }

    fn stat_real(&mut self, field: &'static str, raw: Raw<'_>, kind: Kind) -> Option<f64> {
        let r = match raw {
            Raw::Text(s) => match s.trim_ascii() {
                "" => Ok(None),
                s => parse_real(s).map(Some),
            },
            other => real_of(other).map(Some),
        };
        let r = r.and_then(|v| match (kind, v) {
            (Kind::Mos, Some(x)) if !(1.0..=5.0).contains(&x) => Err(InvalidReason::OutOfRange),
            (Kind::Quality, Some(x)) if !(0.0..=100.0).contains(&x) => {
                Err(InvalidReason::OutOfRange)
            }
            _ => Ok(v),
        });
        self.keep(field, r)
    }

    fn keep<T>(&mut self, field: &'static str, r: Result<Option<T>, InvalidReason>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(reason) => {
                self.invalid(field, reason);
                None
            }
        }
    }
}

/// Text rules: trimmed, url-decoded when `encoded`, at most `max` bytes, no control
/// characters. `Ok(None)` for empty or JSON null.
fn check_text(raw: Raw<'_>, encoded: bool, max: usize) -> Result<Option<String>, InvalidReason> {
    let s = match raw {
        Raw::Text(s) => s.trim_ascii(),
        Raw::Null => return Ok(None),
        _ => return Err(InvalidReason::WrongType),
    };
    if s.is_empty() {
        return Ok(None);
    }
    // Decoding never grows a value: `%XX` is 3 bytes for 1, so this bound is safe and
    // spares decoding a hostile 10 KB id.
    if s.len() > max.saturating_mul(3) || (!encoded && s.len() > max) {
        return Err(InvalidReason::TooLong);
    }
    let v: Cow<'_, str> = if encoded {
        let bytes = url_decode(s.as_bytes(), false).map_err(|_| InvalidReason::BadEncoding)?;
        match bytes {
            Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(b).expect("from a str")),
            Cow::Owned(o) => {
                Cow::Owned(String::from_utf8(o).map_err(|_| InvalidReason::BadEncoding)?)
            }
        }
    } else {
        Cow::Borrowed(s)
    };
    let v = v.trim_ascii();
    if v.len() > max {
        return Err(InvalidReason::TooLong);
    }
    if v.chars().any(char::is_control) {
        return Err(InvalidReason::ControlCharacters);
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

fn count_of(raw: Raw<'_>) -> Result<u64, InvalidReason> {
    match raw {
        Raw::Text(s) => parse_count(s.trim_ascii()),
        Raw::U(n) => Ok(n),
        Raw::I(n) if n < 0 => Err(InvalidReason::Negative),
        Raw::I(n) => Ok(n as u64),
        Raw::F(f) if !f.is_finite() => Err(InvalidReason::NotFinite),
        Raw::F(f) if f < 0.0 => Err(InvalidReason::Negative),
        Raw::F(f) if f.fract() != 0.0 => Err(InvalidReason::BadNumber),
        Raw::F(f) if f >= u64::MAX as f64 => Err(InvalidReason::OutOfRange),
        Raw::F(f) => Ok(f as u64),
        Raw::Null => Err(InvalidReason::NotFinite),
        Raw::WrongType => Err(InvalidReason::WrongType),
    }
}

fn real_of(raw: Raw<'_>) -> Result<f64, InvalidReason> {
    match raw {
        Raw::Text(s) => parse_real(s.trim_ascii()),
        Raw::U(n) => Ok(n as f64),
        Raw::I(n) if n < 0 => Err(InvalidReason::Negative),
        Raw::I(n) => Ok(n as f64),
        Raw::F(f) if !f.is_finite() => Err(InvalidReason::NotFinite),
        Raw::F(f) if f < 0.0 => Err(InvalidReason::Negative),
        Raw::F(f) => Ok(f),
        Raw::Null => Err(InvalidReason::NotFinite),
        Raw::WrongType => Err(InvalidReason::WrongType),
    }
}

fn mentions_non_finite(s: &str) -> bool {
    let b = s.as_bytes();
    b.windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"nan") || w.eq_ignore_ascii_case(b"inf"))
}

/// A decimal count: digits only (FreeSWITCH prints `%zu`).
pub(super) fn parse_count(s: &str) -> Result<u64, InvalidReason> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map_err(|_| InvalidReason::OutOfRange);
    }
    if mentions_non_finite(s) {
        return Err(InvalidReason::NotFinite);
    }
    if let Some(rest) = s.strip_prefix('-') {
        if parse_real(rest).is_ok() {
            return Err(InvalidReason::Negative);
        }
    }
    Err(InvalidReason::BadNumber)
}

/// A finite, non-negative decimal (FreeSWITCH prints `%0.2f`): no `NaN`, `inf`, or
/// locale commas (`4,50`).
pub(super) fn parse_real(s: &str) -> Result<f64, InvalidReason> {
    if mentions_non_finite(s) {
        return Err(InvalidReason::NotFinite);
    }
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if !plain || !s.bytes().any(|b| b.is_ascii_digit()) {
        return Err(InvalidReason::BadNumber);
    }
    let v: f64 = s.parse().map_err(|_| InvalidReason::BadNumber)?;
    if !v.is_finite() {
        return Err(InvalidReason::NotFinite);
    }
    if v < 0.0 {
        return Err(InvalidReason::Negative);
    }
    Ok(v)
}

/// Strict percent-decoding: every `%` must be followed by two hex digits; the error is
/// the byte offset of the first bad `%`. `plus_is_space` is for form bodies only:
/// FreeSWITCH itself escapes `+` as `%2B`, so a bare `+` there came from a form encoder.
pub(super) fn url_decode(b: &[u8], plus_is_space: bool) -> Result<Cow<'_, [u8]>, usize> {
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'%') {
        let p = i + off;
        if p + 2 >= b.len() || !(b[p + 1].is_ascii_hexdigit() && b[p + 2].is_ascii_hexdigit()) {
            return Err(p);
        }
        i = p + 3;
    }
    if plus_is_space && b.contains(&b'+') {
        let replaced: Vec<u8> = b
            .iter()
            .map(|&c| if c == b'+' { b' ' } else { c })
            .collect();
        return Ok(Cow::Owned(
            percent_encoding::percent_decode(&replaced).collect(),
        ));
    }
    Ok(percent_encoding::percent_decode(b).into())
}

/// Whether a JSON variable value cannot be `switch_url_encode` output: it holds a byte
/// that function always escapes, or a `%` that is not `%` + two upper-case hex digits
/// (the only escapes it leaves alone).
pub(super) fn looks_plain(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'%' => {
                let hex = |x: u8| x.is_ascii_digit() || (b'A'..=b'F').contains(&x);
                if i + 2 >= b.len() || !(hex(b[i + 1]) && hex(b[i + 2])) {
                    return true;
                }
                i += 3;
                continue;
            }
            0..=0x1f | 0x7f..=0xff => return true,
            b' ' | b'#' | b'&' | b'+' | b':' | b';' | b'<' | b'=' | b'>' | b'?' | b'@' | b'['
            | b'\\' | b']' | b'^' | b'`' | b'{' | b'|' | b'}' | b'"' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_table_is_consistent() {
        for (i, v) in Var::ALL.iter().enumerate() {
            assert_eq!(v.idx(), i);
            assert_eq!(Var::from_name(&v.field()["variables.".len()..]), Some(*v));
        }
    }

    #[test]
    fn counts_are_strict() {
        assert_eq!(parse_count("0"), Ok(0));
        assert_eq!(parse_count("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_count("18446744073709551616"),
            Err(InvalidReason::OutOfRange)
        );
        assert_eq!(parse_count("-3"), Err(InvalidReason::Negative));
        assert_eq!(parse_count("4,5"), Err(InvalidReason::BadNumber));
        assert_eq!(parse_count("4.5"), Err(InvalidReason::BadNumber));
        assert_eq!(parse_count("NaN"), Err(InvalidReason::NotFinite));
        assert_eq!(parse_count("-"), Err(InvalidReason::BadNumber));
    }

    #[test]
    fn reals_are_strict() {
        assert_eq!(parse_real("4.41"), Ok(4.41));
        assert_eq!(parse_real("1144.21"), Ok(1144.21));
        assert_eq!(parse_real("0.00"), Ok(0.0));
        assert_eq!(parse_real("4,50"), Err(InvalidReason::BadNumber));
        assert_eq!(parse_real("nan"), Err(InvalidReason::NotFinite));
        assert_eq!(parse_real("-inf"), Err(InvalidReason::NotFinite));
        assert_eq!(parse_real("1e999"), Err(InvalidReason::NotFinite));
        assert_eq!(parse_real("-1.00"), Err(InvalidReason::Negative));
        assert_eq!(parse_real("."), Err(InvalidReason::BadNumber));
        assert_eq!(parse_real("4.5 "), Err(InvalidReason::BadNumber));
    }

    #[test]
    fn url_decode_is_strict() {
        assert_eq!(url_decode(b"a%20b", false).unwrap().as_ref(), b"a b");
        assert_eq!(url_decode(b"a+b", false).unwrap().as_ref(), b"a+b");
        assert_eq!(url_decode(b"a+b%2B", true).unwrap().as_ref(), b"a b+");
        assert_eq!(url_decode(b"%4", false), Err(0));
        assert_eq!(url_decode(b"ab%", false), Err(2));
        assert_eq!(url_decode(b"x%zz", false), Err(1));
        assert!(matches!(url_decode(b"plain", false), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn plain_detection() {
        assert!(!looks_plain("2024-03-14%2009%3A05%3A00"));
        assert!(!looks_plain("sofia/internal/1001%40pbx.example.com"));
        assert!(looks_plain("2024-03-14 09:05:00"));
        assert!(looks_plain("1001@pbx.example.com"));
        assert!(looks_plain("100%"));
        assert!(looks_plain("%3a"));
        assert!(looks_plain("Zoë"));
        assert!(!looks_plain("PCMU"));
    }
}
