//! Typed FreeSWITCH CDR: one channel (leg), its variables of interest and its RTP stats.

/// Which document generator produced the CDR.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Format {
    /// mod_xml_cdr (`switch_ivr_generate_xml_cdr`).
    Xml,
    /// mod_json_cdr (`switch_ivr_generate_json_cdr`).
    Json,
}

/// A-leg or B-leg of a call, as mod_xml_cdr and mod_json_cdr decide it (see [`Cdr::leg`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum LegSide {
    A,
    B,
}

impl LegSide {
    pub fn as_label(self) -> &'static str {
        match self {
            LegSide::A => "a",
            LegSide::B => "b",
        }
    }
}

/// The channel's direction as FreeSWITCH prints it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Longest id kept (uuids, Call-ID); longer ones are reported `too_long`.
pub const MAX_ID_LEN: usize = 256;
/// Longest name kept (switchname, domain, accountcode, cause, codec).
pub const MAX_NAME_LEN: usize = 128;
/// Most `error-period`s kept per media; the rest are reported once as `too_many`.
pub const MAX_ERROR_PERIODS: usize = 1024;

/// One parsed CDR: a single channel. Every field is `None` when absent, empty or invalid;
/// invalid ones are also listed in [`Cdr::invalid`].
#[derive(Clone, PartialEq, Debug)]
pub struct Cdr {
    pub format: Format,
    /// The channel's uuid: `variables/uuid`, else the first callflow's `caller_profile/uuid`,
    /// else (XML) the first `callflow@unique-id`. Never empty, at most [`MAX_ID_LEN`] bytes.
    pub uuid: String,
    /// Root `core-uuid`: the FreeSWITCH process; new at every FreeSWITCH restart.
    pub core_uuid: Option<String>,
    /// Root `switchname`.
    pub switchname: Option<String>,
    /// B when the channel's current caller profile (the first `callflow`) has an
    /// `originator` caller profile: the test mod_xml_cdr and mod_json_cdr make
    /// (`switch_channel_get_originator_caller_profile`) to skip B-legs and choose the `a_`
    /// prefix. Only when the document has no callflow at all, the `originator` variable
    /// (set on the peer by `switch_core_session_outgoing_channel`) decides. Else A.
    pub leg: LegSide,
    /// `channel_data/direction`, else `variables/direction`.
    pub direction: Option<Direction>,
    pub call_uuid: Option<String>,
    /// The uuid of the leg this one was bridged to (set on both legs).
    pub bridge_uuid: Option<String>,
    /// `signal_bond`: the other leg (set on both legs).
    pub signal_bond: Option<String>,
    /// `originator`: on a B-leg, the A-leg's uuid.
    pub originator: Option<String>,
    pub sip_call_id: Option<String>,
    pub domain_name: Option<String>,
    pub accountcode: Option<String>,
    /// e.g. `NORMAL_CLEARING`.
    pub hangup_cause: Option<String>,
    /// 0..=127.
    pub hangup_cause_q850: Option<u16>,
    pub read_codec: Option<String>,
    pub write_codec: Option<String>,
    /// Seconds from channel creation to hangup.
    pub duration: Option<u64>,
    /// Seconds from answer to hangup.
    pub billsec: Option<u64>,
    /// Unix seconds (`start_epoch`, `answer_epoch`, `end_epoch`; 0 means "did not happen").
    pub start_epoch: Option<u64>,
    pub answer_epoch: Option<u64>,
    pub end_epoch: Option<u64>,
    /// `None` when the channel had no RTP stats: `<call-stats>` absent or empty (current
    /// FreeSWITCH always writes the element and leaves it empty), `callStats` `{}`.
    pub call_stats: Option<CallStats>,
    /// Whether variable values were url-decoded. XML: always. JSON: decided per document
    /// (mod_json_cdr's `encode-values`), see the module docs.
    pub values_url_encoded: bool,
    /// Fields that were present but unusable, each at most once, in the order found
    /// (JSON: the variables come last).
    pub invalid: Vec<InvalidField>,
}

/// `call-stats` / `callStats`: at least one of the two is `Some`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct CallStats {
    pub audio: Option<MediaStats>,
    pub video: Option<MediaStats>,
}

/// One media type's RTP stats (`switch_ivr_set_xml_call_stats`).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct MediaStats {
    pub inbound: InboundStats,
    pub outbound: OutboundStats,
    /// `error-log/error-period` (XML, a sibling of inbound) or `inbound.errorLog` (JSON).
    pub error_log: Vec<ErrorPeriod>,
}

/// Received-side stats. Counts are packets or bytes; variances are ms²; `mean_interval` ms.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct InboundStats {
    pub raw_bytes: Option<u64>,
    pub media_bytes: Option<u64>,
    pub packet_count: Option<u64>,
    pub media_packet_count: Option<u64>,
    pub skip_packet_count: Option<u64>,
    pub jitter_packet_count: Option<u64>,
    pub dtmf_packet_count: Option<u64>,
    pub cng_packet_count: Option<u64>,
    pub flush_packet_count: Option<u64>,
    pub largest_jb_size: Option<u64>,
    pub jitter_min_variance: Option<f64>,
    pub jitter_max_variance: Option<f64>,
    /// Weighted loss per received packet; can exceed 1.
    pub jitter_loss_rate: Option<f64>,
    pub jitter_burst_rate: Option<f64>,
    pub mean_interval: Option<f64>,
    pub flaw_total: Option<u64>,
    /// FreeSWITCH's R, 0..=100.
    pub quality_percentage: Option<f64>,
    /// 1..=5 (FreeSWITCH computes 1.0..=4.5).
    pub mos: Option<f64>,
}

impl InboundStats {
    /// Whether any media packet arrived. FreeSWITCH starts every stream at R 100 / MOS 4.50
    /// and keeps those when nothing arrives, so a leg without media must count as
    /// "no MOS", never as a perfect one: use [`InboundStats::usable_mos`].
    pub fn has_media(&self) -> bool {
        self.media_packet_count.is_some_and(|n| n > 0)
    }

    /// The MOS, only when media flowed.
    pub fn usable_mos(&self) -> Option<f64> {
        self.mos.filter(|_| self.has_media())
    }
}

/// Sent-side stats; the RTCP counts are FreeSWITCH's sent RTCP reports.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct OutboundStats {
    pub raw_bytes: Option<u64>,
    pub media_bytes: Option<u64>,
    pub packet_count: Option<u64>,
    pub media_packet_count: Option<u64>,
    pub skip_packet_count: Option<u64>,
    pub dtmf_packet_count: Option<u64>,
    pub cng_packet_count: Option<u64>,
    pub rtcp_packet_count: Option<u64>,
    pub rtcp_octet_count: Option<u64>,
}

/// A period of bad reception (`switch_error_period_t`); times in µs since the epoch.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ErrorPeriod {
    pub start: Option<u64>,
    pub stop: Option<u64>,
    pub flaws: Option<u64>,
    pub consecutive_flaws: Option<u64>,
    pub duration_ms: Option<u64>,
}

/// A present but unusable field.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct InvalidField {
    /// Where it was, e.g. `variables.uuid`, `audio.inbound.mos`.
    pub field: &'static str,
    pub reason: InvalidReason,
}

/// Why a field is unusable; `as_label` gives the metric label value.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum InvalidReason {
    /// Not a plain decimal number (`4,5`, `12abc`, a fraction where a count belongs).
    BadNumber,
    /// NaN or infinite (JSON `null`: cJSON prints non-finite numbers as `null`).
    NotFinite,
    Negative,
    /// MOS outside 1..=5, quality outside 0..=100, Q.850 cause above 127, count overflow.
    OutOfRange,
    /// Longer than [`MAX_ID_LEN`] / [`MAX_NAME_LEN`].
    TooLong,
    /// A `%` not followed by two hex digits, or decoded bytes that are not UTF-8.
    BadEncoding,
    ControlCharacters,
    /// JSON value of the wrong kind (object, array, boolean, number for a string).
    WrongType,
    /// A value outside a closed set (e.g. a direction other than inbound/outbound).
    UnknownValue,
    /// The body was not UTF-8; bad bytes were replaced with U+FFFD and the rest parsed.
    InvalidUtf8,
    /// More than [`MAX_ERROR_PERIODS`] error periods.
    TooMany,
    /// The Content-Type names another encoding than the body has (the body decided).
    WrongContentType,
    /// No Content-Type (the body decided).
    MissingContentType,
}

/// Every [`InvalidReason::as_label`] value.
pub const INVALID_REASONS: &[&str] = &[
    "bad_number",
    "not_finite",
    "negative",
    "out_of_range",
    "too_long",
    "bad_encoding",
    "control_characters",
    "wrong_type",
    "unknown_value",
    "invalid_utf8",
    "too_many",
    "wrong_content_type",
    "missing_content_type",
];

impl InvalidReason {
    pub fn as_label(self) -> &'static str {
        match self {
            InvalidReason::BadNumber => "bad_number",
            InvalidReason::NotFinite => "not_finite",
            InvalidReason::Negative => "negative",
            InvalidReason::OutOfRange => "out_of_range",
            InvalidReason::TooLong => "too_long",
            InvalidReason::BadEncoding => "bad_encoding",
            InvalidReason::ControlCharacters => "control_characters",
            InvalidReason::WrongType => "wrong_type",
            InvalidReason::UnknownValue => "unknown_value",
            InvalidReason::InvalidUtf8 => "invalid_utf8",
            InvalidReason::TooMany => "too_many",
            InvalidReason::WrongContentType => "wrong_content_type",
            InvalidReason::MissingContentType => "missing_content_type",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_reasons_match_labels() {
        use InvalidReason::*;
        let all = [
            BadNumber,
            NotFinite,
            Negative,
            OutOfRange,
            TooLong,
            BadEncoding,
            ControlCharacters,
            WrongType,
            UnknownValue,
            InvalidUtf8,
            TooMany,
            WrongContentType,
            MissingContentType,
        ];
        // A new variant must be added here: this match has no wildcard.
        for r in all {
            match r {
                BadNumber | NotFinite | Negative | OutOfRange | TooLong | BadEncoding
                | ControlCharacters | WrongType | UnknownValue | InvalidUtf8 | TooMany
                | WrongContentType | MissingContentType => {}
            }
        }
        let labels: Vec<&str> = all.iter().map(|r| r.as_label()).collect();
        assert_eq!(labels, INVALID_REASONS);
    }
}
