//! The event-driven CDR parser: quick-xml events to typed records, borrowing from the body.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::types::*;

/// Deeper than any CMS document; bounds the element stack against hostile nesting.
pub const MAX_DEPTH: usize = 64;

/// Every duration, count and size CMS writes fits in 32 bits; a larger value (`1e308`) is not
/// something a Call Bridge sends, and would turn sums into `+Inf`.
pub const MAX_NUMBER: u64 = u32::MAX as u64;

/// Why a whole body was rejected (answered with 400). `Display` is the one-line reason.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ParseError {
    #[error("empty body")]
    Empty,
    #[error("body is not valid UTF-8 (at byte {0})")]
    InvalidUtf8(usize),
    #[error("DTDs are not accepted (<!DOCTYPE> at byte {0})")]
    DocType(u64),
    #[error("root element is <{0}>, expected <records>")]
    WrongRoot(String),
    #[error("<records> has no session attribute")]
    MissingSession,
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("document ends before </records> (truncated?)")]
    Truncated,
    #[error("no <records> element")]
    NoRoot,
    #[error("content after </records> at byte {0}")]
    TrailingContent(u64),
    #[error("malformed XML at byte {pos}: {msg}")]
    Xml { pos: u64, msg: String },
}

impl ParseError {
    /// Every value of [`ParseError::as_label`].
    pub const REASONS: &'static [&'static str] = &[
        "empty",
        "invalid_utf8",
        "doctype",
        "wrong_root",
        "missing_session",
        "too_deep",
        "truncated",
        "malformed_xml",
    ];

    /// Label value for `cdr_exporter_batches_rejected_total{reason}`.
    pub fn as_label(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::InvalidUtf8(_) => "invalid_utf8",
            ParseError::DocType(_) => "doctype",
            ParseError::WrongRoot(_) | ParseError::NoRoot => "wrong_root",
            ParseError::MissingSession => "missing_session",
            ParseError::TooDeep => "too_deep",
            ParseError::Truncated => "truncated",
            ParseError::TrailingContent(_) | ParseError::Xml { .. } => "malformed_xml",
        }
    }
}

/// Parses one POST body into a [`Batch`].
///
/// The whole body is rejected only when it is not a well-formed `<records>` document;
/// a bad field makes just its record invalid.
pub fn parse(body: &[u8]) -> Result<Batch<'_>, ParseError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ParseError::Empty);
    }
    let text = std::str::from_utf8(body).map_err(|e| ParseError::InvalidUtf8(e.valid_up_to()))?;
    let mut p = Parser {
        reader: Reader::from_str(text),
    };
    p.document()
}

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
}

fn xml_err(pos: u64, e: impl std::fmt::Display) -> ParseError {
    let mut msg = e.to_string();
    // One line only: quick-xml messages can quote input.
    msg.retain(|c| c != '\n' && c != '\r');
    msg.truncate(200);
    ParseError::Xml { pos, msg }
}

impl<'a> Parser<'a> {
    #[inline(always)]
    fn next(&mut self) -> Result<Event<'a>, ParseError> {
        let pos = self.reader.buffer_position();
        match self.reader.read_event() {
            Ok(Event::DocType(_)) => Err(ParseError::DocType(pos)),
            Ok(ev) => Ok(ev),
            Err(e) => Err(self.xml_error(e)),
        }
    }

    #[cold]
    #[inline(never)]
    fn xml_error(&self, e: quick_xml::Error) -> ParseError {
        xml_err(self.reader.error_position(), e)
    }

    fn document(&mut self) -> Result<Batch<'a>, ParseError> {
        loop {
            match self.next()? {
                Event::Start(e) => {
                    let batch = self.records_attrs(&e)?;
                    let batch = self.records_body(batch)?;
                    self.epilogue()?;
                    return Ok(batch);
                }
                Event::Empty(e) => {
                    let batch = self.records_attrs(&e)?;
                    self.epilogue()?;
                    return Ok(batch);
                }
                Event::Text(t) if is_blank(&t) => {}
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Err(ParseError::NoRoot),
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                    return Err(ParseError::NoRoot)
                }
                Event::End(_) | Event::DocType(_) => {
                    return Err(xml_err(self.reader.buffer_position(), "unexpected end tag"))
                }
            }
        }
    }

    fn epilogue(&mut self) -> Result<(), ParseError> {
        loop {
            let pos = self.reader.buffer_position();
            match self.next()? {
                Event::Eof => return Ok(()),
                Event::Text(t) if is_blank(&t) => {}
                Event::Comment(_) | Event::PI(_) => {}
                _ => return Err(ParseError::TrailingContent(pos)),
            }
        }
    }

    fn records_attrs(&mut self, e: &BytesStart<'a>) -> Result<Batch<'a>, ParseError> {
        let name = e.name();
        if name.as_ref() != "records" {
            return Err(ParseError::WrongRoot(
                name.as_ref().chars().take(64).collect(),
            ));
        }
        let mut session = None;
        let mut call_bridge = None;
        for a in e.attributes() {
            let a = a.map_err(|err| xml_err(self.reader.buffer_position(), err))?;
            match a.key.as_ref() {
                "session" => session = Id::parse(&a.value).map(SessionId),
                "callBridge" => {
                    let v = a.value.trim_ascii();
                    if !v.is_empty() {
                        call_bridge = Some(Cow::Owned(v.to_owned()));
                    }
                }
                _ => {}
            }
        }
        Ok(Batch {
            session: session.ok_or(ParseError::MissingSession)?,
            call_bridge,
            records: Vec::with_capacity(self.reader.get_ref().len() / 1024 + 1),
        })
    }

    fn records_body(&mut self, mut batch: Batch<'a>) -> Result<Batch<'a>, ParseError> {
        loop {
            match self.next()? {
                Event::Start(e) if e.name().as_ref() == "record" => {
                    let header = header(&e);
                    let entry = self.record(header, false)?;
                    batch.records.push(entry);
                }
                Event::Empty(e) if e.name().as_ref() == "record" => {
                    let entry = self.record(header(&e), true)?;
                    batch.records.push(entry);
                }
                Event::Start(_) => self.skip(1)?,
                Event::End(_) => return Ok(batch), // check_end_names guarantees </records>
                Event::Eof => return Err(ParseError::Truncated),
                _ => {}
            }
        }
    }

    /// Skips the rest of an element whose start was read (`depth` = levels to close).
    fn skip(&mut self, mut depth: usize) -> Result<(), ParseError> {
        while depth > 0 {
            match self.next()? {
                Event::Start(_) => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(ParseError::TooDeep);
                    }
                }
                Event::End(_) => depth -= 1,
                Event::Eof => return Err(ParseError::Truncated),
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads one `<record>` (its start already consumed) into an [`Entry`].
    fn record(
        &mut self,
        (header, header_err): (Header, HeaderErr),
        empty: bool,
    ) -> Result<Entry<'a>, ParseError> {
        let mut object: Option<Building<'a>> = None;
        if !empty {
            loop {
                match self.next()? {
                    Event::Start(e) => {
                        if object.is_none() {
                            if let Some(mut b) = Building::for_element(&e, &header.record_type) {
                                b.attributes(&e, &[]);
                                self.object(&mut b)?;
                                object = Some(b);
                                continue;
                            }
                        }
                        self.skip(1)?;
                    }
                    Event::Empty(e) if object.is_none() => {
                        if let Some(mut b) = Building::for_element(&e, &header.record_type) {
                            b.attributes(&e, &[]);
                            object = Some(b);
                        }
                    }
                    Event::End(_) => break,
                    Event::Eof => return Err(ParseError::Truncated),
                    _ => {}
                }
            }
        }
        let body = match (header_err, object) {
            // A bad header still names its object, so an end record can end it.
            (Some((reason, field)), obj) => Err(Invalid {
                reason,
                field,
                object: obj.and_then(|b| b.object_ref()),
            }),
            (None, Some(b)) => b.finish(),
            (None, None) if matches!(header.record_type, RecordType::Other(_)) => {
                Ok(Record::Unknown)
            }
            (None, None) => Err(Invalid {
                reason: InvalidReason::MissingObject,
                field: "object",
                object: None,
            }),
        };
        Ok(Entry { header, body })
    }

    /// Reads an object element's content, feeding every leaf and attribute to the builder.
    fn object(&mut self, b: &mut Building<'a>) -> Result<(), ParseError> {
        // Path of known element names below the object; `None` = inside an unknown element.
        let mut path: Vec<El> = Vec::with_capacity(8);
        let mut unknown_depth = 0usize;
        let mut text = Acc::default();
        let mut had_child = false;
        loop {
            match self.next()? {
                Event::Start(e) => {
                    if path.len() + unknown_depth + 2 > MAX_DEPTH {
                        return Err(ParseError::TooDeep);
                    }
                    had_child = false;
                    text = Acc::default();
                    if unknown_depth > 0 {
                        unknown_depth += 1;
                        continue;
                    }
                    let el = El::of(e.name().as_ref());
                    if el == El::Unknown {
                        unknown_depth = 1;
                        continue;
                    }
                    path.push(el);
                    b.begin(&path);
                    if has_attributes(&e) {
                        b.attributes(&e, &path);
                    }
                }
                Event::Empty(e) => {
                    had_child = true;
                    if unknown_depth > 0 {
                        continue;
                    }
                    let el = El::of(e.name().as_ref());
                    if el == El::Unknown {
                        continue;
                    }
                    path.push(el);
                    b.begin(&path);
                    if has_attributes(&e) {
                        b.attributes(&e, &path);
                    }
                    b.leaf(&path, Cow::Borrowed(""));
                    path.pop();
                }
                Event::End(_) => {
                    if unknown_depth > 0 {
                        unknown_depth -= 1;
                        had_child = true;
                        continue;
                    }
                    let Some(_) = path.last() else {
                        return Ok(()); // the object's own end tag
                    };
                    if !had_child {
                        b.leaf(&path, text.take());
                    }
                    path.pop();
                    had_child = true;
                    text = Acc::default();
                }
                Event::Text(t) if unknown_depth == 0 => text.push_text(t),
                Event::CData(t) if unknown_depth == 0 => {
                    text.push(t.xml10_content());
                }
                Event::GeneralRef(r) if unknown_depth == 0 => {
                    if let Some(s) = resolve_ref(&r) {
                        text.push(Cow::Owned(s));
                    }
                }
                Event::Eof => return Err(ParseError::Truncated),
                _ => {}
            }
        }
    }
}

/// Whether a start tag carries anything after its name (most CMS elements do not).
fn has_attributes(e: &BytesStart<'_>) -> bool {
    !is_blank(e.attributes_raw())
}

fn is_blank(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_whitespace())
}

fn resolve_ref(r: &quick_xml::events::BytesRef<'_>) -> Option<String> {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return Some(c.to_string());
    }
    quick_xml::escape::resolve_predefined_entity(r).map(str::to_owned)
}

/// Accumulates a leaf's text, borrowing when it arrives in one piece. A lone text
/// event is kept raw and only EOL-normalized when it turns out to be a leaf's value:
/// most text events are indentation between elements and are dropped unread.
#[derive(Default)]
enum Acc<'a> {
    #[default]
    Empty,
    Raw(quick_xml::events::BytesText<'a>),
    Text(Cow<'a, str>),
}

impl<'a> Acc<'a> {
    fn push_text(&mut self, t: quick_xml::events::BytesText<'a>) {
        match self {
            Acc::Empty => *self = Acc::Raw(t),
            _ => self.push(t.xml10_content()),
        }
    }
    fn push(&mut self, s: Cow<'a, str>) {
        match std::mem::take(self) {
            Acc::Empty => *self = Acc::Text(s),
            Acc::Raw(r) => {
                let mut t = r.xml10_content().into_owned();
                t.push_str(&s);
                *self = Acc::Text(Cow::Owned(t));
            }
            Acc::Text(mut t) => {
                t.to_mut().push_str(&s);
                *self = Acc::Text(t);
            }
        }
    }
    fn take(&mut self) -> Cow<'a, str> {
        match std::mem::take(self) {
            Acc::Empty => Cow::Borrowed(""),
            // Leaves are short: a plain scan beats the memchr call behind xml10_content.
            Acc::Raw(r) if !r.bytes().any(|b| b == b'\r') => match r.into_inner() {
                Cow::Borrowed(s) => Cow::Borrowed(s.trim_ascii()),
                owned => trim_cow(owned),
            },
            Acc::Raw(r) => trim_cow(r.xml10_content()),
            Acc::Text(t) => trim_cow(t),
        }
    }
}

fn trim_cow(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim_ascii()),
        Cow::Owned(o) => {
            let t = o.trim_ascii();
            if t.len() == o.len() {
                Cow::Owned(o)
            } else {
                Cow::Owned(t.to_owned())
            }
        }
    }
}

type HeaderErr = Option<(InvalidReason, &'static str)>;

/// Reads a `<record>`'s attributes. The header stays usable for dedupe and gap
/// counting whenever `correlatorIndex` is readable, even if the record is invalid.
fn header(e: &BytesStart<'_>) -> (Header, HeaderErr) {
    let mut h = Header {
        record_type: RecordType::Other(String::new()),
        time: None,
        correlator_index: None,
        record_index: None,
        num_preceding_missing: None,
    };
    let mut err: HeaderErr = None;
    for a in e.attributes().flatten() {
        let v = a.value.trim_ascii();
        match a.key.as_ref() {
            "type" => h.record_type = RecordType::parse(v),
            "time" => match parse_time(v) {
                Some(t) => h.time = Some(t),
                None => err = err.or(Some((InvalidReason::BadTime, "time"))),
            },
            "correlatorIndex" => h.correlator_index = parse_u64(v),
            "recordIndex" => h.record_index = parse_u64(v),
            "numPreceedingRecordsMissing" | "numPrecedingRecordsMissing" => match parse_u64(v) {
                Some(n) => h.num_preceding_missing = Some(n),
                None => {
                    err = err.or(Some((
                        InvalidReason::BadNumber,
                        "numPreceedingRecordsMissing",
                    )))
                }
            },
            _ => {}
        }
    }
    if h.correlator_index.is_none() {
        err = Some((InvalidReason::MissingCorrelatorIndex, "correlatorIndex"));
    } else if h.record_type.as_str().is_empty() {
        err = Some((InvalidReason::MissingType, "type"));
    }
    (h, err)
}

/// Integers as CMS writes them; `2.0` is accepted, `2.5`, negatives and NaN are not.
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim_ascii();
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    let f = s.parse::<f64>().ok()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64).then_some(f as u64)
}

/// Finite, non-negative numbers (durations and percentages).
pub fn parse_f64(s: &str) -> Option<f64> {
    let f = s.trim_ascii().parse::<f64>().ok()?;
    (f.is_finite() && f >= 0.0).then_some(f)
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim_ascii() {
        "true" | "True" | "TRUE" | "1" => Some(true),
        "false" | "False" | "FALSE" | "0" => Some(false),
        _ => None,
    }
}

/// RFC 3339 with a fast path for the `YYYY-MM-DDTHH:MM:SSZ` form CMS always sends.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && (b[19] == b'Z' || b[19] == b'z')
    {
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let mut v = 0i64;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + i64::from(c - b'0');
            }
            Some(v)
        };
        let (y, mo, d, h, mi, se) = (
            num(0..4)?,
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        );
        if !(1..=12).contains(&mo)
            || d < 1
            || d > days_in_month(y, mo)
            || h > 23
            || mi > 59
            || se > 60
        {
            return None;
        }
        let days = days_from_civil(y, mo, d);
        return Some(Timestamp((days * 86400 + h * 3600 + mi * 60 + se) as f64));
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(Timestamp(t.unix_timestamp_nanos() as f64 / 1e9))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Element and attribute names the parser knows, wherever they appear below an object.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum El {
    Unknown,
    Id,
    Name,
    CoSpace,
    OwnerName,
    Tenant,
    CdrTag,
    CallType,
    CallCorrelator,
    CoSpaceMetaDataConfigured,
    CallLegsCompleted,
    CallLegsMaxActive,
    DurationSeconds,
    EndpointRecorded,
    DisplayName,
    LocalAddress,
    RemoteAddress,
    RemoteParty,
    GuestConnection,
    Recording,
    Streaming,
    Type,
    SubType,
    LyncSubType,
    Direction,
    Call,
    Ivr,
    OwnerId,
    SipCallId,
    GroupId,
    ReplacesSipCallId,
    CanMove,
    MovedCallLeg,
    MovedCallLegCallBridge,
    ConfirmationStatus,
    State,
    Deactivated,
    CallMove,
    Reason,
    RemoteTeardown,
    EncryptedMedia,
    UnencryptedMedia,
    ActivatedDuration,
    MediaUsagePercentages,
    MainVideoViewer,
    MainVideoContributor,
    PresentationViewer,
    PresentationContributor,
    MultistreamVideo,
    MaxScreens,
    Alarm,
    DurationPercentage,
    RxAudio,
    TxAudio,
    RxVideo,
    TxVideo,
    Codec,
    MaxSizeWidth,
    MaxSizeHeight,
    PacketStatistics,
    PacketLossBursts,
    PacketGap,
    Duration,
    Density,
    Path,
    RecorderUri,
    CallLeg,
    StreamerUri,
}

impl El {
    fn of(name: &str) -> El {
        match name {
            "id" => El::Id,
            "name" => El::Name,
            "coSpace" => El::CoSpace,
            "ownerName" => El::OwnerName,
            "tenant" => El::Tenant,
            "cdrTag" => El::CdrTag,
            "callType" => El::CallType,
            "callCorrelator" => El::CallCorrelator,
            "coSpaceMetaDataConfigured" | "coSpaceMetadataConfigured" => {
                El::CoSpaceMetaDataConfigured
            }
            "callLegsCompleted" => El::CallLegsCompleted,
            "callLegsMaxActive" => El::CallLegsMaxActive,
            "durationSeconds" => El::DurationSeconds,
            "endpointRecorded" => El::EndpointRecorded,
            "displayName" => El::DisplayName,
            "localAddress" => El::LocalAddress,
            "remoteAddress" => El::RemoteAddress,
            "remoteParty" => El::RemoteParty,
            "guestConnection" => El::GuestConnection,
            "recording" => El::Recording,
            "streaming" => El::Streaming,
            "type" => El::Type,
            "subType" => El::SubType,
            "lyncSubType" => El::LyncSubType,
            "direction" => El::Direction,
            "call" => El::Call,
            "ivr" => El::Ivr,
            "ownerId" => El::OwnerId,
            "sipCallId" => El::SipCallId,
            "groupId" | "groupID" => El::GroupId,
            "replacesSipCallId" => El::ReplacesSipCallId,
            "canMove" => El::CanMove,
            "movedCallLeg" => El::MovedCallLeg,
            "movedCallLegCallBridge" => El::MovedCallLegCallBridge,
            "confirmationStatus" => El::ConfirmationStatus,
            "state" => El::State,
            "deactivated" => El::Deactivated,
            "callMove" => El::CallMove,
            "reason" => El::Reason,
            "remoteTeardown" => El::RemoteTeardown,
            "encryptedMedia" => El::EncryptedMedia,
            "unencryptedMedia" => El::UnencryptedMedia,
            "activatedDuration" => El::ActivatedDuration,
            "mediaUsagePercentages" => El::MediaUsagePercentages,
            "mainVideoViewer" => El::MainVideoViewer,
            "mainVideoContributor" => El::MainVideoContributor,
            "presentationViewer" => El::PresentationViewer,
            "presentationContributor" => El::PresentationContributor,
            "multistreamVideo" | "multiStreamVideo" => El::MultistreamVideo,
            "maxScreens" => El::MaxScreens,
            "alarm" => El::Alarm,
            "durationPercentage" => El::DurationPercentage,
            "rxAudio" => El::RxAudio,
            "txAudio" => El::TxAudio,
            "rxVideo" => El::RxVideo,
            "txVideo" => El::TxVideo,
            "codec" => El::Codec,
            "maxSizeWidth" => El::MaxSizeWidth,
            "maxSizeHeight" => El::MaxSizeHeight,
            "packetStatistics" => El::PacketStatistics,
            "packetLossBursts" => El::PacketLossBursts,
            "packetGap" => El::PacketGap,
            "duration" => El::Duration,
            "density" => El::Density,
            "path" => El::Path,
            "recorderUri" | "recorderUrl" => El::RecorderUri,
            "callLeg" => El::CallLeg,
            "streamerUri" | "streamerUrl" => El::StreamerUri,
            _ => El::Unknown,
        }
    }
}

/// The record body under construction, one variant per record type.
enum Builder<'a> {
    CallStart(CallStart<'a>),
    CallEnd(CallEnd),
    CallLegStart(CallLegStart<'a>),
    CallLegUpdate(CallLegUpdate<'a>),
    CallLegEnd(Box<CallLegEnd<'a>>),
    RecordingStart(RecordingStart<'a>),
    RecordingEnd(RecordingEnd),
    StreamingStart(StreamingStart<'a>),
    StreamingEnd(StreamingEnd),
}

struct Building<'a> {
    b: Builder<'a>,
    has_id: bool,
    err: Option<(InvalidReason, &'static str)>,
}

impl<'a> Building<'a> {
    /// The builder for `e` if it is the object element a record of this type carries.
    fn for_element(e: &BytesStart<'_>, t: &RecordType) -> Option<Building<'a>> {
        let b = match (e.name().as_ref(), t) {
            ("call", RecordType::CallStart) => Builder::CallStart(Default::default()),
            ("call", RecordType::CallEnd) => Builder::CallEnd(Default::default()),
            ("callLeg", RecordType::CallLegStart) => Builder::CallLegStart(Default::default()),
            ("callLeg", RecordType::CallLegUpdate) => Builder::CallLegUpdate(Default::default()),
            ("callLeg", RecordType::CallLegEnd) => Builder::CallLegEnd(Default::default()),
            ("recording", RecordType::RecordingStart) => {
                Builder::RecordingStart(Default::default())
            }
            ("recording", RecordType::RecordingEnd) => Builder::RecordingEnd(Default::default()),
            ("streaming", RecordType::StreamingStart) => {
                Builder::StreamingStart(Default::default())
            }
            ("streaming", RecordType::StreamingEnd) => Builder::StreamingEnd(Default::default()),
            _ => return None,
        };
        Some(Building {
            b,
            has_id: false,
            err: None,
        })
    }
}

impl<'a> Building<'a> {
    fn object_ref(&self) -> Option<ObjectRef> {
        if !self.has_id {
            return None;
        }
        Some(match &self.b {
            Builder::CallStart(r) => ObjectRef::Call(r.id),
            Builder::CallEnd(r) => ObjectRef::Call(r.id),
            Builder::CallLegStart(r) => ObjectRef::CallLeg(r.id),
            Builder::CallLegUpdate(r) => ObjectRef::CallLeg(r.id),
            Builder::CallLegEnd(r) => ObjectRef::CallLeg(r.id),
            Builder::RecordingStart(r) => ObjectRef::Recording(r.id),
            Builder::RecordingEnd(r) => ObjectRef::Recording(r.id),
            Builder::StreamingStart(r) => ObjectRef::Streaming(r.id),
            Builder::StreamingEnd(r) => ObjectRef::Streaming(r.id),
        })
    }

    fn finish(self) -> Result<Record<'a>, Invalid> {
        let object = self.object_ref();
        if !self.has_id {
            return Err(Invalid {
                reason: InvalidReason::MissingId,
                field: "id",
                object,
            });
        }
        if let Some((reason, field)) = self.err {
            return Err(Invalid {
                reason,
                field,
                object,
            });
        }
        Ok(match self.b {
            Builder::CallStart(r) => Record::CallStart(r),
            Builder::CallEnd(r) => Record::CallEnd(r),
            Builder::CallLegStart(r) => Record::CallLegStart(r),
            Builder::CallLegUpdate(r) => Record::CallLegUpdate(r),
            Builder::CallLegEnd(r) => Record::CallLegEnd(r),
            Builder::RecordingStart(r) => Record::RecordingStart(r),
            Builder::RecordingEnd(r) => Record::RecordingEnd(r),
            Builder::StreamingStart(r) => Record::StreamingStart(r),
            Builder::StreamingEnd(r) => Record::StreamingEnd(r),
        })
    }

    /// Feeds the attributes of an element at `path` (empty = the object element).
    fn attributes(&mut self, e: &BytesStart<'_>, path: &[El]) {
        let mut p: [El; MAX_DEPTH] = [El::Unknown; MAX_DEPTH];
        let n = path.len().min(MAX_DEPTH - 1);
        p[..n].copy_from_slice(&path[..n]);
        for a in e.attributes().flatten() {
            let el = El::of(a.key.as_ref());
            if el == El::Unknown {
                continue;
            }
            if n == 0 && el == El::Id {
                self.id(&a.value);
                continue;
            }
            p[n] = el;
            let v = match a.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
                Ok(v) => v,
                Err(_) => a.value,
            };
            // Attribute values borrow from the event, not the body: own them (rare: CMS
            // puts little besides `id` in attributes, and ids are parsed, not kept).
            self.leaf(&p[..=n], trim_cow(Cow::Owned(v.into_owned())));
        }
    }

    /// Called when an element opens; creates repeated or optional containers.
    fn begin(&mut self, path: &[El]) {
        if let Builder::CallLegEnd(r) = &mut self.b {
            match path {
                [El::Alarm] => r.alarms.push(Alarm {
                    alarm_type: None,
                    duration_percentage: None,
                }),
                [El::RxAudio] => _ = r.rx_audio.get_or_insert_with(Default::default),
                [El::TxAudio] => _ = r.tx_audio.get_or_insert_with(Default::default),
                [El::RxVideo] => _ = r.rx_video.get_or_insert_with(Default::default),
                [El::TxVideo] => _ = r.tx_video.get_or_insert_with(Default::default),
                [El::RxAudio | El::TxAudio, El::PacketStatistics] => {
                    let s = if path[0] == El::RxAudio {
                        &mut r.rx_audio
                    } else {
                        &mut r.tx_audio
                    };
                    _ = s
                        .get_or_insert_with(Default::default)
                        .packet_statistics
                        .get_or_insert_with(Default::default);
                }
                [El::RxVideo | El::TxVideo, El::PacketStatistics] => {
                    let s = if path[0] == El::RxVideo {
                        &mut r.rx_video
                    } else {
                        &mut r.tx_video
                    };
                    _ = s
                        .get_or_insert_with(Default::default)
                        .packet_statistics
                        .get_or_insert_with(Default::default);
                }
                _ => {}
            }
        }
    }

    /// Records the first field error; later ones add nothing to the log line.
    fn bad(&mut self, reason: InvalidReason, field: &'static str) {
        if self.err.is_none() {
            self.err = Some((reason, field));
        }
    }

    /// `v` is already trimmed.
    fn leaf(&mut self, path: &[El], v: Cow<'a, str>) {
        if let [El::Id] = path {
            self.id(&v);
            return;
        }
        let mut err = None;
        macro_rules! num {
            ($f:expr, $name:literal) => {
                if v.is_empty() {
                } else {
                    match parse_f64(&v) {
                        Some(x) if x <= MAX_NUMBER as f64 => $f = Some(x),
                        Some(_) => err = Some((InvalidReason::OutOfRange, $name)),
                        None => err = Some((InvalidReason::BadNumber, $name)),
                    }
                }
            };
        }
        macro_rules! int {
            ($f:expr, $name:literal) => {
                if v.is_empty() {
                } else {
                    match parse_u64(&v) {
                        Some(x) if x <= MAX_NUMBER => $f = Some(x),
                        Some(_) => err = Some((InvalidReason::OutOfRange, $name)),
                        None => err = Some((InvalidReason::BadNumber, $name)),
                    }
                }
            };
        }
        macro_rules! boolean {
            ($f:expr, $name:literal) => {
                if v.is_empty() {
                } else {
                    match parse_bool(&v) {
                        Some(x) => $f = Some(x),
                        None => err = Some((InvalidReason::BadBoolean, $name)),
                    }
                }
            };
        }
        let text = || if v.is_empty() { None } else { Some(v.clone()) };
        match &mut self.b {
            Builder::CallStart(r) => match path {
                [El::Name] => r.name = text(),
                [El::CoSpace] => r.co_space = Id::parse(&v).map(CoSpaceId),
                [El::OwnerName] => r.owner_name = text(),
                [El::Tenant] => r.tenant = text(),
                [El::CdrTag] => r.cdr_tag = text(),
                [El::CallType] => r.call_type = (!v.is_empty()).then(|| CallType::parse(&v)),
                [El::CallCorrelator] => r.call_correlator = Id::parse(&v).map(CallCorrelator),
                [El::CoSpaceMetaDataConfigured] => {
                    boolean!(r.co_space_meta_data_configured, "coSpaceMetaDataConfigured")
                }
                _ => {}
            },
            Builder::CallEnd(r) => match path {
                [El::CallLegsCompleted] => int!(r.call_legs_completed, "callLegsCompleted"),
                [El::CallLegsMaxActive] => int!(r.call_legs_max_active, "callLegsMaxActive"),
                [El::DurationSeconds] => num!(r.duration_seconds, "durationSeconds"),
                [El::EndpointRecorded] => boolean!(r.endpoint_recorded, "endpointRecorded"),
                _ => {}
            },
            Builder::CallLegStart(r) => match path {
                [El::DisplayName] => r.display_name = text(),
                [El::LocalAddress] => r.local_address = text(),
                [El::RemoteAddress] => r.remote_address = text(),
                [El::RemoteParty] => r.remote_party = text(),
                [El::CdrTag] => r.cdr_tag = text(),
                [El::GuestConnection] => boolean!(r.guest_connection, "guestConnection"),
                [El::Recording] => boolean!(r.recording, "recording"),
                [El::Streaming] => boolean!(r.streaming, "streaming"),
                [El::Type] => r.leg_type = (!v.is_empty()).then(|| LegType::parse(&v)),
                [El::SubType] => r.sub_type = (!v.is_empty()).then(|| LegSubType::parse(&v)),
                [El::LyncSubType] => {
                    r.lync_sub_type = (!v.is_empty()).then(|| LyncSubType::parse(&v))
                }
                [El::Direction] => r.direction = (!v.is_empty()).then(|| Direction::parse(&v)),
                [El::Call] => r.call = Id::parse(&v).map(CallId),
                [El::OwnerId] => r.owner_id = text(),
                [El::SipCallId] => r.sip_call_id = text(),
                [El::GroupId] => r.group_id = text(),
                [El::ReplacesSipCallId] => r.replaces_sip_call_id = text(),
                [El::CanMove] => boolean!(r.can_move, "canMove"),
                [El::MovedCallLeg] => r.moved_call_leg = Id::parse(&v).map(CallLegId),
                [El::MovedCallLegCallBridge] => r.moved_call_leg_call_bridge = text(),
                [El::ConfirmationStatus] => {
                    r.confirmation_status = (!v.is_empty()).then(|| ConfirmationStatus::parse(&v))
                }
                _ => {}
            },
            Builder::CallLegUpdate(r) => match path {
                [El::CdrTag] => r.cdr_tag = text(),
                [El::State] => r.state = (!v.is_empty()).then(|| LegState::parse(&v)),
                [El::Deactivated] => boolean!(r.deactivated, "deactivated"),
                [El::RemoteAddress] => r.remote_address = text(),
                [El::Call] => {
                    // The guide's "(empty) ivr indication": an empty call or the word ivr.
                    r.call = Some(match Id::parse(&v) {
                        Some(_) if v.eq_ignore_ascii_case("ivr") => CallRef::Ivr,
                        Some(id) => CallRef::Call(CallId(id)),
                        None => CallRef::Ivr,
                    })
                }
                [El::Ivr] | [El::Call, El::Ivr] => r.call = Some(CallRef::Ivr),
                [El::OwnerId] => r.owner_id = text(),
                [El::SipCallId] => r.sip_call_id = text(),
                [El::GroupId] => r.group_id = text(),
                [El::DisplayName] => r.display_name = text(),
                [El::CanMove] => boolean!(r.can_move, "canMove"),
                [El::ConfirmationStatus] => {
                    r.confirmation_status = (!v.is_empty()).then(|| ConfirmationStatus::parse(&v))
                }
                [El::CallMove] => r.call_move = text(),
                _ => {}
            },
            Builder::CallLegEnd(r) => match path {
                [El::CdrTag] => r.cdr_tag = text(),
                [El::Reason] => r.reason = (!v.is_empty()).then(|| EndReason::parse(&v)),
                [El::RemoteTeardown] => boolean!(r.remote_teardown, "remoteTeardown"),
                [El::EncryptedMedia] => boolean!(r.encrypted_media, "encryptedMedia"),
                [El::UnencryptedMedia] => boolean!(r.unencrypted_media, "unencryptedMedia"),
                [El::DurationSeconds] => num!(r.duration_seconds, "durationSeconds"),
                [El::ActivatedDuration] => num!(r.activated_duration, "activatedDuration"),
                [El::MediaUsagePercentages, f] => {
                    let m = &mut r.media_usage;
                    match f {
                        El::MainVideoViewer => num!(m.main_video_viewer, "mainVideoViewer"),
                        El::MainVideoContributor => {
                            num!(m.main_video_contributor, "mainVideoContributor")
                        }
                        El::PresentationViewer => num!(m.presentation_viewer, "presentationViewer"),
                        El::PresentationContributor => {
                            num!(m.presentation_contributor, "presentationContributor")
                        }
                        El::MultistreamVideo => num!(m.multistream_video, "multistreamVideo"),
                        _ => {}
                    }
                }
                [El::MultistreamVideo, El::MaxScreens] => int!(r.max_screens, "maxScreens"),
                [El::Alarm, f] => {
                    if let Some(a) = r.alarms.last_mut() {
                        match f {
                            El::Type => {
                                a.alarm_type = (!v.is_empty()).then(|| AlarmType::parse(&v))
                            }
                            El::DurationPercentage => {
                                num!(a.duration_percentage, "durationPercentage")
                            }
                            _ => {}
                        }
                    }
                }
                [s @ (El::RxAudio | El::TxAudio), rest @ ..] => {
                    let stream = if *s == El::RxAudio {
                        &mut r.rx_audio
                    } else {
                        &mut r.tx_audio
                    };
                    let st = stream.get_or_insert_with(Default::default);
                    match rest {
                        [El::Codec] => st.codec = (!v.is_empty()).then(|| AudioCodec::parse(&v)),
                        [El::PacketStatistics, ps @ ..] => {
                            let ps_v = st.packet_statistics.get_or_insert_with(Default::default);
                            err = loss_field(ps_v, ps, &v);
                        }
                        _ => {}
                    }
                }
                [s @ (El::RxVideo | El::TxVideo), rest @ ..] => {
                    let stream = if *s == El::RxVideo {
                        &mut r.rx_video
                    } else {
                        &mut r.tx_video
                    };
                    let st = stream.get_or_insert_with(Default::default);
                    match rest {
                        [El::Codec] => st.codec = (!v.is_empty()).then(|| VideoCodec::parse(&v)),
                        [El::MaxSizeWidth] => int!(st.max_size_width, "maxSizeWidth"),
                        [El::MaxSizeHeight] => int!(st.max_size_height, "maxSizeHeight"),
                        [El::PacketStatistics, ps @ ..] => {
                            let ps_v = st.packet_statistics.get_or_insert_with(Default::default);
                            err = loss_field(ps_v, ps, &v);
                        }
                        _ => {}
                    }
                }
                [El::OwnerId] => r.owner_id = text(),
                [El::SipCallId] => r.sip_call_id = text(),
                [El::ConfirmationStatus] => {
                    r.confirmation_status = (!v.is_empty()).then(|| ConfirmationStatus::parse(&v))
                }
                _ => {}
            },
            Builder::RecordingStart(r) => match path {
                [El::Path] => r.path = text(),
                [El::RecorderUri] => r.recorder_uri = text(),
                [El::Call] => r.call = Id::parse(&v).map(CallId),
                [El::CallLeg] => r.call_leg = Id::parse(&v).map(CallLegId),
                _ => {}
            },
            Builder::StreamingStart(r) => match path {
                [El::StreamerUri] => r.streamer_uri = text(),
                [El::Call] => r.call = Id::parse(&v).map(CallId),
                [El::CallLeg] => r.call_leg = Id::parse(&v).map(CallLegId),
                _ => {}
            },
            Builder::RecordingEnd(_) | Builder::StreamingEnd(_) => {}
        }
        if let Some((reason, field)) = err {
            self.bad(reason, field);
        }
    }

    fn id(&mut self, v: &str) {
        match Id::parse(v) {
            Some(id) => {
                self.has_id = true;
                self.set_id(id);
            }
            None => self.bad(InvalidReason::MissingId, "id"),
        }
    }

    fn set_id(&mut self, id: Id) {
        match &mut self.b {
            Builder::CallStart(r) => r.id = CallId(id),
            Builder::CallEnd(r) => r.id = CallId(id),
            Builder::CallLegStart(r) => r.id = CallLegId(id),
            Builder::CallLegUpdate(r) => r.id = CallLegId(id),
            Builder::CallLegEnd(r) => r.id = CallLegId(id),
            Builder::RecordingStart(r) => r.id = RecordingId(id),
            Builder::RecordingEnd(r) => r.id = RecordingId(id),
            Builder::StreamingStart(r) => r.id = StreamingId(id),
            Builder::StreamingEnd(r) => r.id = StreamingId(id),
        }
    }
}

/// `packetStatistics` children. Kept as sent, even out of range or NaN: whether they allow a
/// MOS estimate is the quality model's call (it counts them as `invalid_values`), and a bad
/// statistic must not cost the leg its end record.
fn loss_field(
    ps: &mut PacketStatistics,
    path: &[El],
    v: &str,
) -> Option<(InvalidReason, &'static str)> {
    let period = match path.first() {
        Some(El::PacketLossBursts) => &mut ps.packet_loss_bursts,
        Some(El::PacketGap) => &mut ps.packet_gap,
        _ => return None,
    };
    if v.is_empty() {
        return None;
    }
    let x = v.trim_ascii().parse::<f64>().unwrap_or(f64::NAN);
    match path.get(1) {
        Some(El::Duration) => period.duration = Some(x),
        Some(El::Density) => period.density = Some(x),
        _ => {}
    }
    None
}
