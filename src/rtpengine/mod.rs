//! Kamailio/rtpengine MOS reports (`POST /kamailio/mos`): JSON bytes to a typed [`Report`], pure.
//!
//! The body is one JSON object whose keys are the Kamailio rtpengine module's MOS PV names
//! (`mos_min_pv`, `mos_average_packetloss_A_pv`, ...) without the `_pv` suffix, plus
//! `call_id`, `from_tag`, `to_tag`, `node`, `tenant` and `event`. Facts this relies on,
//! checked in Kamailio 5.6.3 `src/modules/rtpengine/rtpengine.c` (`parse_call_stats`,
//! `avp_print_mos`) and rtpengine mr10.5.3.5 `daemon/call_interfaces.c` (`ng_stats_ssrc`):
//! - values are strings: MOS `"4.3"` (one decimal), integers for the rest, `"m:ss"` since the
//!   call was created for `*_at`;
//! - units: packet loss percent, jitter ms, round-trip µs (the module doc says ms; the code
//!   and rtpengine use µs), `samples` a count;
//! - a PV rtpengine had nothing for is left unset, which a script turns into an absent key,
//!   `""`, or `"<null>"`: all three mean "not measured" here. Reports without any MOS are
//!   common (no RTCP, or RTCP without the round-trip rtpengine's default MOS needs).
//!
//! Only a body that is not a JSON object, or has no `call_id`, is a [`ParseError`]; a bad
//! value becomes an [`InvalidField`] and the rest of the report is kept.

use serde_json::{Map, Value};

/// Longest call-id, tag, node, tenant, label or event kept, in bytes. Longer call-ids and
/// tags are kept only as a 128-bit digest (see [`Ident`]); the others are dropped.
pub const MAX_TEXT_LEN: usize = 256;

/// Longest numeric or `m:ss` string looked at, in bytes (`"4.5"`, `"1234567"`, `"12:05"`).
pub const MAX_VALUE_LEN: usize = 64;

/// Lowest and highest MOS accepted (the module doc's range; rtpengine itself stays ≤ 4.5).
pub const MOS_RANGE: std::ops::RangeInclusive<f64> = 1.0..=5.0;

/// What Kamailio prints for an unset PV in a string.
const KAMAILIO_NULL: &str = "<null>";

/// Why a whole body was rejected. `Display` is the one-line reason.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("empty body")]
    Empty,
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("JSON is not an object")]
    NotAnObject,
    #[error("no call_id")]
    MissingCallId,
    #[error("call_id is not a string")]
    CallIdNotString,
}

/// Every [`ParseError::as_label`] value (for pre-declaring metric label values).
pub const REASONS: &[&str] = &[
    "empty",
    "not_json",
    "not_an_object",
    "missing_call_id",
    "call_id_not_string",
];

impl ParseError {
    /// Short, fixed label for a metric's `reason`.
    pub fn as_label(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::NotJson(_) => "not_json",
            ParseError::NotAnObject => "not_an_object",
            ParseError::MissingCallId => "missing_call_id",
            ParseError::CallIdNotString => "call_id_not_string",
        }
    }
}

/// Why one value of a report was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// An object, array or boolean where a string or number belongs.
    WrongType,
    /// Not a decimal number (`"abc"`, `"4.3x"`).
    NotANumber,
    /// A decimal comma (`"4,3"`): a locale problem upstream, never guessed at.
    DecimalComma,
    /// `NaN`, `inf`, or a number too large for a float.
    NotFinite,
    Negative,
    /// A MOS outside 1..=5, or packet loss over 100 %.
    OutOfRange,
    /// A fraction where a count or µs belongs.
    NotAnInteger,
    /// An `*_at` value that is not `m:ss`.
    BadDuration,
    /// Longer than [`MAX_TEXT_LEN`] / [`MAX_VALUE_LEN`].
    TooLong,
    /// A control character in a name that may become a label (node, tenant, A/B label).
    ControlCharacter,
    /// An `event` other than `bye`, `cancel` or `failure`.
    UnknownValue,
    /// A Content-Type other than JSON (the body was read as JSON all the same).
    WrongContentType,
    /// No Content-Type (the body was read as JSON all the same).
    MissingContentType,
}

/// Every [`InvalidReason::as_label`] value.
pub const INVALID_REASONS: &[&str] = &[
    "wrong_type",
    "not_a_number",
    "decimal_comma",
    "not_finite",
    "negative",
    "out_of_range",
    "not_an_integer",
    "bad_duration",
    "too_long",
    "control_character",
    "unknown_value",
    "wrong_content_type",
    "missing_content_type",
];

impl InvalidReason {
    pub fn as_label(&self) -> &'static str {
        match self {
            InvalidReason::WrongType => "wrong_type",
            InvalidReason::NotANumber => "not_a_number",
            InvalidReason::DecimalComma => "decimal_comma",
            InvalidReason::NotFinite => "not_finite",
            InvalidReason::Negative => "negative",
            InvalidReason::OutOfRange => "out_of_range",
            InvalidReason::NotAnInteger => "not_an_integer",
            InvalidReason::BadDuration => "bad_duration",
            InvalidReason::TooLong => "too_long",
            InvalidReason::ControlCharacter => "control_character",
            InvalidReason::UnknownValue => "unknown_value",
            InvalidReason::WrongContentType => "wrong_content_type",
            InvalidReason::MissingContentType => "missing_content_type",
        }
    }
}

/// A value that was present but not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidField {
    /// The JSON key, as accepted (e.g. `mos_min_at_A`).
    pub field: &'static str,
    pub reason: InvalidReason,
}

/// A call-id or tag: the text when it fits [`MAX_TEXT_LEN`], else only its xxh3-128 digest,
/// so an oversized value still identifies the call (for dedupe) but costs 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ident {
    Text(String),
    Digest(u128),
}

impl Ident {
    fn new(s: &str) -> (Ident, bool) {
        if s.len() > MAX_TEXT_LEN {
            (
                Ident::Digest(xxhash_rust::xxh3::xxh3_128(s.as_bytes())),
                true,
            )
        } else {
            (Ident::Text(s.to_owned()), false)
        }
    }

    /// The text, unless it was too long to keep.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Ident::Text(s) => Some(s),
            Ident::Digest(_) => None,
        }
    }
}

/// Where the call ended, as the shipped Kamailio configs say (`event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndEvent {
    Bye,
    Cancel,
    Failure,
}

impl EndEvent {
    pub fn as_label(&self) -> &'static str {
        match self {
            EndEvent::Bye => "bye",
            EndEvent::Cancel => "cancel",
            EndEvent::Failure => "failure",
        }
    }
}

/// One of rtpengine's MOS data points (average, lowest or highest) with the conditions
/// measured with it. `None` = not reported (or invalid, see [`Report::invalid`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sample {
    pub mos: Option<f64>,
    pub packet_loss_percent: Option<f64>,
    pub jitter_ms: Option<f64>,
    /// End-to-end round trip (both legs), µs; rtpengine reports 0 when it had one leg only.
    pub roundtrip_us: Option<u64>,
    /// The round trip of the leg between rtpengine and the reporting party, µs.
    pub roundtrip_leg_us: Option<u64>,
    /// How many RTCP reports the average is over (average only).
    pub samples: Option<u64>,
    /// Seconds since the call was created (min and max only).
    pub at_seconds: Option<u64>,
}

impl Sample {
    pub fn is_empty(&self) -> bool {
        *self == Sample::default()
    }
}

/// The average, lowest and highest MOS of one side (or of the whole call).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MosSet {
    pub average: Option<Sample>,
    pub min: Option<Sample>,
    pub max: Option<Sample>,
}

impl MosSet {
    /// True when any of average/min/max carries a MOS value.
    pub fn has_mos(&self) -> bool {
        [self.average, self.min, self.max]
            .iter()
            .any(|s| s.is_some_and(|s| s.mos.is_some()))
    }
}

/// The values of the call legs rtpengine labelled `label` (the A or B side). In rtpengine
/// these are computed from the RTCP the labelled party sent, i.e. the media it received.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Side {
    pub label: Option<String>,
    pub mos: MosSet,
}

/// One parsed report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub call_id: Ident,
    pub from_tag: Option<Ident>,
    pub to_tag: Option<Ident>,
    /// The Kamailio/rtpengine instance that sent it.
    pub node: Option<String>,
    pub tenant: Option<String>,
    pub event: Option<EndEvent>,
    /// Over every SSRC of the call.
    pub overall: MosSet,
    pub a: Side,
    pub b: Side,
    /// Values present but not used, in key order.
    pub invalid: Vec<InvalidField>,
}

impl Report {
    /// True when rtpengine measured a MOS anywhere in this call.
    pub fn has_mos(&self) -> bool {
        self.overall.has_mos() || self.a.mos.has_mos() || self.b.mos.has_mos()
    }
}

/// A fixed-size identity of a report for "seen it already" memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DedupeKey(pub u128);

/// The dedupe identity: node, call-id, the two tags as an unordered pair, and the A/B
/// labels. The tags are unordered because a BYE from either party ends the same dialog,
/// and both BYEs of a glare each get a report (rtpengine keeps the call for its delete
/// delay): those two reports are one call.
pub fn dedupe_key(r: &Report) -> DedupeKey {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    // Every part is length-prefixed, so ("ab","c") and ("a","bc") differ.
    fn text(h: &mut xxhash_rust::xxh3::Xxh3, s: Option<&str>) {
        match s {
            None => h.update(&[0]),
            Some(s) => {
                h.update(&[1]);
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
    }
    fn ident(h: &mut xxhash_rust::xxh3::Xxh3, i: Option<&Ident>) {
        match i {
            None => h.update(&[0]),
            Some(Ident::Text(s)) => text(h, Some(s)),
            Some(Ident::Digest(d)) => {
                h.update(&[2]);
                h.update(&d.to_le_bytes());
            }
        }
    }
    text(&mut h, r.node.as_deref());
    ident(&mut h, Some(&r.call_id));
    let (t1, t2) = match (r.from_tag.as_ref(), r.to_tag.as_ref()) {
        (Some(a), Some(b)) if tag_order(b) < tag_order(a) => (Some(b), Some(a)),
        (a, b) => (a, b),
    };
    ident(&mut h, t1);
    ident(&mut h, t2);
    text(&mut h, r.a.label.as_deref());
    text(&mut h, r.b.label.as_deref());
    DedupeKey(h.digest128())
}

fn tag_order(i: &Ident) -> (u8, &[u8], u128) {
    match i {
        Ident::Text(s) => (0, s.as_bytes(), 0),
        Ident::Digest(d) => (1, &[], *d),
    }
}

#[derive(Clone, Copy)]
enum Stat {
    Average,
    Min,
    Max,
}

#[derive(Clone, Copy)]
enum Field {
    Mos,
    At,
    PacketLoss,
    Jitter,
    Roundtrip,
    RoundtripLeg,
    Samples,
}

/// (key, side 0 = overall / 1 = A / 2 = B, stat, field)
type Slot = (&'static str, usize, Stat, Field);

macro_rules! side_keys {
    ($side:expr, $sfx:literal) => {
        [
            (concat!("mos_min", $sfx), $side, Stat::Min, Field::Mos),
            (concat!("mos_min_at", $sfx), $side, Stat::Min, Field::At),
            (
                concat!("mos_min_packetloss", $sfx),
                $side,
                Stat::Min,
                Field::PacketLoss,
            ),
            (
                concat!("mos_min_jitter", $sfx),
                $side,
                Stat::Min,
                Field::Jitter,
            ),
            (
                concat!("mos_min_roundtrip", $sfx),
                $side,
                Stat::Min,
                Field::Roundtrip,
            ),
            (
                concat!("mos_min_roundtrip_leg", $sfx),
                $side,
                Stat::Min,
                Field::RoundtripLeg,
            ),
            (concat!("mos_max", $sfx), $side, Stat::Max, Field::Mos),
            (concat!("mos_max_at", $sfx), $side, Stat::Max, Field::At),
            (
                concat!("mos_max_packetloss", $sfx),
                $side,
                Stat::Max,
                Field::PacketLoss,
            ),
            (
                concat!("mos_max_jitter", $sfx),
                $side,
                Stat::Max,
                Field::Jitter,
            ),
            (
                concat!("mos_max_roundtrip", $sfx),
                $side,
                Stat::Max,
                Field::Roundtrip,
            ),
            (
                concat!("mos_max_roundtrip_leg", $sfx),
                $side,
                Stat::Max,
                Field::RoundtripLeg,
            ),
            (
                concat!("mos_average", $sfx),
                $side,
                Stat::Average,
                Field::Mos,
            ),
            (
                concat!("mos_average_packetloss", $sfx),
                $side,
                Stat::Average,
                Field::PacketLoss,
            ),
            (
                concat!("mos_average_jitter", $sfx),
                $side,
                Stat::Average,
                Field::Jitter,
            ),
            (
                concat!("mos_average_roundtrip", $sfx),
                $side,
                Stat::Average,
                Field::Roundtrip,
            ),
            (
                concat!("mos_average_roundtrip_leg", $sfx),
                $side,
                Stat::Average,
                Field::RoundtripLeg,
            ),
            (
                concat!("mos_average_samples", $sfx),
                $side,
                Stat::Average,
                Field::Samples,
            ),
        ]
    };
}

const SLOTS: [[Slot; 18]; 3] = [side_keys!(0, ""), side_keys!(1, "_A"), side_keys!(2, "_B")];

/// Every MOS key accepted: the 54 value PVs of Kamailio 5.6's rtpengine module (18 per
/// side) and the two label PVs, without `_pv`.
pub fn mos_keys() -> impl Iterator<Item = &'static str> {
    SLOTS
        .iter()
        .flatten()
        .map(|s| s.0)
        .chain(["mos_A_label", "mos_B_label"])
}

/// The identity and context keys accepted besides the MOS keys.
pub const CONTEXT_KEYS: &[&str] = &["call_id", "from_tag", "to_tag", "node", "tenant", "event"];

fn slot(key: &str) -> Option<&'static Slot> {
    // Cheap reject for the context keys and anything foreign.
    if !key.starts_with("mos_") {
        return None;
    }
    SLOTS.iter().flatten().find(|s| s.0 == key)
}

/// Parses one request: the body as JSON whatever the Content-Type says (Kamailio configs
/// set it by hand), a missing or non-JSON one reported in [`Report::invalid`].
pub fn parse_request(content_type: Option<&str>, body: &[u8]) -> Result<Report, ParseError> {
    let mut r = parse(body)?;
    let json = |ct: &str| {
        let media = ct.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("application/json")
            || media.to_ascii_lowercase().ends_with("+json")
    };
    let reason = match content_type {
        None => Some(InvalidReason::MissingContentType),
        Some(ct) if !json(ct) => Some(InvalidReason::WrongContentType),
        Some(_) => None,
    };
    if let Some(reason) = reason {
        r.invalid.push(bad("content_type", reason));
    }
    Ok(r)
}

/// Parses one POST body.
pub fn parse(body: &[u8]) -> Result<Report, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let mut msg = e.to_string();
        msg.retain(|c| c != '\n' && c != '\r');
        ParseError::NotJson(msg)
    })?;
    let Value::Object(map) = value else {
        return Err(ParseError::NotAnObject);
    };
    let mut invalid = Vec::new();

    let call_id = match map.get("call_id") {
        Some(Value::String(s)) if !is_unset(s) => {
            let (id, long) = Ident::new(s);
            if long {
                invalid.push(bad("call_id", InvalidReason::TooLong));
            }
            id
        }
        None | Some(Value::Null) | Some(Value::String(_)) => return Err(ParseError::MissingCallId),
        Some(_) => return Err(ParseError::CallIdNotString),
    };
    let from_tag = ident_field(&map, "from_tag", &mut invalid);
    let to_tag = ident_field(&map, "to_tag", &mut invalid);
    let node = name_field(&map, "node", &mut invalid);
    let tenant = name_field(&map, "tenant", &mut invalid);
    let event = name_field(&map, "event", &mut invalid).and_then(|e| match e.as_str() {
        "bye" => Some(EndEvent::Bye),
        "cancel" => Some(EndEvent::Cancel),
        "failure" => Some(EndEvent::Failure),
        _ => {
            invalid.push(bad("event", InvalidReason::UnknownValue));
            None
        }
    });

    // [side][stat]; a Sample exists once any of its values was valid.
    let mut sets: [[Option<Sample>; 3]; 3] = Default::default();
    for (key, v) in &map {
        let Some(&(name, side, stat, field)) = slot(key) else {
            continue;
        };
        match value_of(v, field) {
            Ok(None) => {}
            Ok(Some(x)) => {
                let s = sets[side][stat as usize].get_or_insert_with(Sample::default);
                match (field, x) {
                    (Field::Mos, Num::F(f)) => s.mos = Some(f),
                    (Field::PacketLoss, Num::F(f)) => s.packet_loss_percent = Some(f),
                    (Field::Jitter, Num::F(f)) => s.jitter_ms = Some(f),
                    (Field::Roundtrip, Num::U(u)) => s.roundtrip_us = Some(u),
                    (Field::RoundtripLeg, Num::U(u)) => s.roundtrip_leg_us = Some(u),
                    (Field::Samples, Num::U(u)) => s.samples = Some(u),
                    (Field::At, Num::U(u)) => s.at_seconds = Some(u),
                    _ => unreachable!("value_of returns the kind its field needs"),
                }
            }
            Err(reason) => invalid.push(bad(name, reason)),
        }
    }
    let set = |side: usize| MosSet {
        average: sets[side][Stat::Average as usize],
        min: sets[side][Stat::Min as usize],
        max: sets[side][Stat::Max as usize],
    };
    let a = Side {
        label: name_field(&map, "mos_A_label", &mut invalid),
        mos: set(1),
    };
    let b = Side {
        label: name_field(&map, "mos_B_label", &mut invalid),
        mos: set(2),
    };
    // Stable order whatever the field kind: by key (the map iterates sorted).
    invalid.sort_by_key(|f| f.field);

    Ok(Report {
        call_id,
        from_tag,
        to_tag,
        node,
        tenant,
        event,
        overall: set(0),
        a,
        b,
        invalid,
    })
}

fn bad(field: &'static str, reason: InvalidReason) -> InvalidField {
    InvalidField { field, reason }
}

/// `""`, blanks, or `"<null>"`.
fn is_unset(s: &str) -> bool {
    let s = s.trim_ascii();
    s.is_empty() || s == KAMAILIO_NULL
}

/// A call-id-like field: kept as [`Ident`], oversized ones as their digest.
fn ident_field(
    map: &Map<String, Value>,
    key: &'static str,
    invalid: &mut Vec<InvalidField>,
) -> Option<Ident> {
    match map.get(key)? {
        Value::Null => None,
        Value::String(s) if is_unset(s) => None,
        Value::String(s) => {
            let (id, long) = Ident::new(s);
            if long {
                invalid.push(bad(key, InvalidReason::TooLong));
            }
            Some(id)
        }
        _ => {
            invalid.push(bad(key, InvalidReason::WrongType));
            None
        }
    }
}

/// A name that may end up as a label value: bounded, no control characters.
fn name_field(
    map: &Map<String, Value>,
    key: &'static str,
    invalid: &mut Vec<InvalidField>,
) -> Option<String> {
    let reason = match map.get(key)? {
        Value::Null => return None,
        Value::String(s) if is_unset(s) => return None,
        Value::String(s) if s.len() > MAX_TEXT_LEN => InvalidReason::TooLong,
        Value::String(s) if s.chars().any(char::is_control) => InvalidReason::ControlCharacter,
        Value::String(s) => return Some(s.clone()),
        _ => InvalidReason::WrongType,
    };
    invalid.push(bad(key, reason));
    None
}

enum Num {
    F(f64),
    U(u64),
}

/// One MOS value: `Ok(None)` = not measured.
fn value_of(v: &Value, field: Field) -> Result<Option<Num>, InvalidReason> {
    let x = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.len() > MAX_VALUE_LEN => return Err(InvalidReason::TooLong),
        Value::String(s) => {
            let s = s.trim_ascii();
            if is_unset(s) {
                return Ok(None);
            }
            if let Field::At = field {
                return parse_m_ss(s).map(|secs| Some(Num::U(secs)));
            }
            if s.contains(',') {
                return Err(InvalidReason::DecimalComma);
            }
            s.parse::<f64>().map_err(|_| InvalidReason::NotANumber)?
        }
        // serde_json only yields finite numbers; huge integers come back as large floats.
        Value::Number(n) => n.as_f64().ok_or(InvalidReason::NotANumber)?,
        _ => return Err(InvalidReason::WrongType),
    };
    if !x.is_finite() {
        return Err(InvalidReason::NotFinite);
    }
    if x < 0.0 {
        return Err(InvalidReason::Negative);
    }
    match field {
        Field::Mos if !MOS_RANGE.contains(&x) => Err(InvalidReason::OutOfRange),
        Field::PacketLoss if x > 100.0 => Err(InvalidReason::OutOfRange),
        Field::Mos | Field::PacketLoss | Field::Jitter => Ok(Some(Num::F(x))),
        // A JSON number for `*_at` is taken as seconds.
        Field::Roundtrip | Field::RoundtripLeg | Field::Samples | Field::At => {
            if x.fract() != 0.0 {
                Err(InvalidReason::NotAnInteger)
            } else if x >= u64::MAX as f64 {
                Err(InvalidReason::OutOfRange)
            } else {
                Ok(Some(Num::U(x as u64)))
            }
        }
    }
}

/// Kamailio prints `*_at` as `"%i:%02i"` (minutes, then seconds 00–59).
fn parse_m_ss(s: &str) -> Result<u64, InvalidReason> {
    let (m, ss) = s.split_once(':').ok_or(InvalidReason::BadDuration)?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(m) || ss.len() != 2 || !digits(ss) {
        return Err(InvalidReason::BadDuration);
    }
    let secs: u64 = ss.parse().map_err(|_| InvalidReason::BadDuration)?;
    if secs >= 60 {
        return Err(InvalidReason::BadDuration);
    }
    let mins: u64 = m.parse().map_err(|_| InvalidReason::BadDuration)?;
    mins.checked_mul(60)
        .and_then(|x| x.checked_add(secs))
        .ok_or(InvalidReason::BadDuration)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant; the match makes a new variant a compile error here.
    fn every_parse_error() -> Vec<ParseError> {
        let all = vec![
            ParseError::Empty,
            ParseError::NotJson(String::new()),
            ParseError::NotAnObject,
            ParseError::MissingCallId,
            ParseError::CallIdNotString,
        ];
        for e in &all {
            match e {
                ParseError::Empty
                | ParseError::NotJson(_)
                | ParseError::NotAnObject
                | ParseError::MissingCallId
                | ParseError::CallIdNotString => {}
            }
        }
        all
    }

    fn every_invalid_reason() -> Vec<InvalidReason> {
        use InvalidReason::*;
        let all = vec![
            WrongType,
            NotANumber,
            DecimalComma,
            NotFinite,
            Negative,
            OutOfRange,
            NotAnInteger,
            BadDuration,
            TooLong,
            ControlCharacter,
            UnknownValue,
            WrongContentType,
            MissingContentType,
        ];
        for r in &all {
            match r {
                WrongType | NotANumber | DecimalComma | NotFinite | Negative | OutOfRange
                | NotAnInteger | BadDuration | TooLong | ControlCharacter | UnknownValue
                | WrongContentType | MissingContentType => {}
            }
        }
        all
    }

    #[test]
    fn reasons_list_every_parse_error_once() {
        let labels: Vec<_> = every_parse_error().iter().map(|e| e.as_label()).collect();
        assert_eq!(labels, REASONS);
        for e in every_parse_error() {
            assert!(!e.to_string().contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn invalid_reasons_list_every_variant_once() {
        let labels: Vec<_> = every_invalid_reason()
            .iter()
            .map(|r| r.as_label())
            .collect();
        assert_eq!(labels, INVALID_REASONS);
    }

    #[test]
    fn key_table_has_54_values_and_2_labels_all_distinct() {
        let keys: Vec<_> = mos_keys().collect();
        assert_eq!(keys.len(), 56);
        let set: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(set.len(), 56);
        for k in CONTEXT_KEYS {
            assert!(slot(k).is_none());
        }
    }

    #[test]
    fn m_ss() {
        assert_eq!(parse_m_ss("0:00"), Ok(0));
        assert_eq!(parse_m_ss("1:05"), Ok(65));
        assert_eq!(parse_m_ss("125:59"), Ok(125 * 60 + 59));
        for bad in [
            "", "1", "1:5", "1:60", "-1:05", "1:-5", ":05", "1:05:00", "a:05", "1:0x",
        ] {
            assert_eq!(parse_m_ss(bad), Err(InvalidReason::BadDuration), "{bad}");
        }
        assert_eq!(
            parse_m_ss("99999999999999999999:00"),
            Err(InvalidReason::BadDuration)
        );
    }
}
