//! How mod_xml_cdr and mod_json_cdr put a CDR on the wire and on disk: undo it
//! ([`decode`]), do it ([`encode`], for the simulator), and the err-log-dir files.
//!
//! Posts (`mod_xml_cdr.c` `my_on_reporting`, `mod_json_cdr.c` `process_cdr`):
//!
//! | `encode` | body | Content-Type |
//! |---|---|---|
//! | `true` | `cdr=` + url-encoded document | `application/x-www-form-urlencoded` |
//! | `base64` | `cdr=` + standard base64, `+ / =` not escaped | `application/x-www-form-base64-encoded` |
//! | `false` (xml) | `cdr=` + raw XML | `application/x-www-form-plaintext` |
//! | `textxml` (xml) | raw XML | `text/xml` |
//! | `false` (json) | raw JSON | `application/json` |
//!
//! mod_json_cdr has `true` and `base64` too (same types, `cdr=` prefix). mod_xml_cdr
//! url-encodes with `switch_url_encode_opt(.., double_encode = TRUE)` (every `%` becomes
//! `%25`); mod_json_cdr with `switch_url_encode`, which leaves an existing `%XX` (upper-case
//! hex) alone. Neither ever emits a bare `+`.
//!
//! **Decoding rule.** The body decides whenever its shape is unambiguous, because a wrong
//! or missing Content-Type is common behind proxies and the shapes cannot be confused:
//! a raw document starts with `<` or `{`; `cdr=<`/`cdr={` is plain; `cdr=%3C`/`cdr=%7B`
//! is url-encoded (FreeSWITCH always escapes `<` and `{`); `cdr=` + only base64 characters
//! is base64. Only when the body fits none of these does the Content-Type choose the
//! decoder (which then reports the precise error); with no usable Content-Type either, the
//! body is [`ParseError::Unrecognized`]. [`Payload::declared`] keeps what the header said
//! so the receiver can count mismatches.
//!
//! **Base64 robustness.** A `%` in a base64 field can only come from an intermediary that
//! percent-encoded it (`%2B`, `%2F`, `%3D`): it is percent-decoded first (strictly), then
//! base64-decoded. A space can only come from a form decoder that turned `+` into ` `;
//! that loses information we will not guess back, so it is
//! [`ParseError::Base64FormDecoded`]. In url-encoded bodies a bare `+` is a space (form
//! rules): FreeSWITCH never sends one, so it came from a re-encoding intermediary.
//!
//! **Invalid UTF-8** after decoding is read with U+FFFD replacements and reported as the
//! invalid field `body` (`invalid_utf8`): cJSON does not validate what it prints.

use std::borrow::Cow;

use base64::Engine as _;
use percent_encoding::{AsciiSet, CONTROLS};

use super::error::{one_line, ParseError};
use super::fields::url_decode;
use super::types::{Cdr, Format, LegSide};

/// A transport encoding: the five ways FreeSWITCH posts a CDR.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Encoding {
    /// `encode=true`: `cdr=` + url-encoded, `application/x-www-form-urlencoded`.
    UrlEncoded,
    /// `encode=base64`: `cdr=` + base64, `application/x-www-form-base64-encoded`.
    Base64,
    /// mod_xml_cdr `encode=false`: `cdr=` + raw XML, `application/x-www-form-plaintext`.
    Plain,
    /// mod_xml_cdr `encode=textxml`: raw XML, `text/xml`.
    TextXml,
    /// mod_json_cdr `encode=false`: raw JSON, `application/json`.
    Json,
}

impl Encoding {
    pub const ALL: [Encoding; 5] = [
        Encoding::UrlEncoded,
        Encoding::Base64,
        Encoding::Plain,
        Encoding::TextXml,
        Encoding::Json,
    ];

    /// The Content-Type FreeSWITCH sends with it.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::UrlEncoded => "application/x-www-form-urlencoded",
            Encoding::Base64 => "application/x-www-form-base64-encoded",
            Encoding::Plain => "application/x-www-form-plaintext",
            Encoding::TextXml => "text/xml",
            Encoding::Json => "application/json",
        }
    }

    /// The encoding a Content-Type names (parameters and case ignored);
    /// `application/xml` counts as `text/xml`.
    pub fn from_content_type(ct: &str) -> Option<Encoding> {
        let media = ct.split(';').next().unwrap_or("").trim();
        Encoding::ALL
            .into_iter()
            .find(|e| media.eq_ignore_ascii_case(e.content_type()))
            .or_else(|| {
                media
                    .eq_ignore_ascii_case("application/xml")
                    .then_some(Encoding::TextXml)
            })
    }

    /// Label value (bounded: these five).
    pub fn as_label(self) -> &'static str {
        match self {
            Encoding::UrlEncoded => "urlencoded",
            Encoding::Base64 => "base64",
            Encoding::Plain => "plain",
            Encoding::TextXml => "textxml",
            Encoding::Json => "json",
        }
    }
}

/// A transport-decoded body: the CDR document text and how it arrived.
#[derive(Clone, PartialEq, Debug)]
pub struct Payload<'a> {
    pub format: Format,
    /// What the body turned out to be.
    pub encoding: Encoding,
    /// What the Content-Type said; `None` when missing or not one of the five.
    pub declared: Option<Encoding>,
    /// The document, borrowed from the body when no decoding was needed.
    pub text: Cow<'a, str>,
    /// Invalid UTF-8 was replaced with U+FFFD.
    pub lossy_utf8: bool,
    /// The still url-encoded field, kept for [`json_form_decode`]'s second reading.
    form_value: Option<&'a [u8]>,
}

impl Payload<'_> {
    /// A Content-Type was recognised and differs from the body's shape.
    pub fn content_type_mismatch(&self) -> bool {
        self.declared.is_some_and(|d| d != self.encoding)
    }

    /// Parses the document into a [`Cdr`].
    ///
    /// A url-encoded JSON body that is not JSON once decoded gets a second reading with
    /// [`json_form_decode`]: see there.
    pub fn parse(&self) -> Result<Cdr, ParseError> {
        let first = match self.format {
            Format::Xml => return super::xml::parse_document(&self.text, self.lossy_utf8),
            Format::Json => super::json::parse_document(&self.text, self.lossy_utf8, false),
        };
        let (Err(ParseError::Json(_)), Some(raw)) = (&first, self.form_value) else {
            return first;
        };
        let Some(bytes) = json_form_decode(raw) else {
            return first;
        };
        let (text, lossy) = match String::from_utf8(bytes) {
            Ok(t) => (t, false),
            Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
        };
        super::json::parse_document(&text, self.lossy_utf8 || lossy, true).or(first)
    }
}

/// What a body (or a `cdr=` value, or an err-log file) looks like.
enum Shape {
    Known(Encoding),
    Base64FormDecoded,
    Unknown,
}

/// Undoes the transport encoding; see the module docs for the rule.
pub fn decode<'a>(content_type: Option<&str>, body: &'a [u8]) -> Result<Payload<'a>, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let declared = content_type.and_then(Encoding::from_content_type);
    let shape = match body.strip_prefix(b"cdr=") {
        Some(v) if v.iter().all(u8::is_ascii_whitespace) => return Err(ParseError::Empty),
        Some(v) => sniff_value(v, true),
        None => match skip_bom_ws(body).first() {
            Some(b'<') => Shape::Known(Encoding::TextXml),
            Some(b'{') => Shape::Known(Encoding::Json),
            _ => Shape::Unknown,
        },
    };
    let encoding = match shape {
        Shape::Known(e) => e,
        Shape::Base64FormDecoded => return Err(ParseError::Base64FormDecoded),
        Shape::Unknown => declared.ok_or(ParseError::Unrecognized)?,
    };
    let bytes = match encoding {
        Encoding::TextXml | Encoding::Json => Cow::Borrowed(body),
        form => {
            let value = body
                .strip_prefix(b"cdr=")
                .ok_or(ParseError::MissingCdrField)?;
            undo_value(form, value, 4)?
        }
    };
    let form_value = (encoding == Encoding::UrlEncoded).then(|| &body[4..]);
    payload(bytes, encoding, declared, form_value)
}

/// Undoes one encoding of a `cdr=` value (or err-log file); `offset` is where `value`
/// starts in the body, for error positions.
fn undo_value(enc: Encoding, value: &[u8], offset: usize) -> Result<Cow<'_, [u8]>, ParseError> {
    match enc {
        Encoding::UrlEncoded => {
            // A bare `&` ends the field: FreeSWITCH escapes its own.
            let end = value.iter().position(|&c| c == b'&').unwrap_or(value.len());
            let v = trim_newlines(&value[..end]);
            url_decode(v, true).map_err(|p| ParseError::BadUrlEncoding(offset + p))
        }
        Encoding::Base64 => {
            let mut v: Cow<'_, [u8]> = Cow::Borrowed(trim_newlines(value));
            if v.contains(&b'%') {
                v = match url_decode(&v, false) {
                    Ok(d) => Cow::Owned(d.into_owned()),
                    Err(p) => return Err(ParseError::BadUrlEncoding(offset + p)),
                };
            }
            if v.contains(&b' ') {
                return Err(ParseError::Base64FormDecoded);
            }
            base64_engine()
                .decode(&v)
                .map(Cow::Owned)
                .map_err(|e| ParseError::BadBase64(one_line(e)))
        }
        Encoding::Plain | Encoding::TextXml | Encoding::Json => Ok(Cow::Borrowed(value)),
    }
}

/// Standard alphabet; padding optional (some intermediaries strip `=`).
fn base64_engine() -> base64::engine::GeneralPurpose {
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    )
}

/// Text, BOM stripped, and the document format.
fn payload<'a>(
    bytes: Cow<'a, [u8]>,
    encoding: Encoding,
    declared: Option<Encoding>,
    form_value: Option<&'a [u8]>,
) -> Result<Payload<'a>, ParseError> {
    let (text, lossy_utf8) = match bytes {
        Cow::Borrowed(b) => match std::str::from_utf8(b) {
            Ok(s) => (Cow::Borrowed(s), false),
            Err(_) => (String::from_utf8_lossy(b), true),
        },
        Cow::Owned(v) => match String::from_utf8(v) {
            Ok(s) => (Cow::Owned(s), false),
            Err(e) => (
                Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
                true,
            ),
        },
    };
    let text = match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.strip_prefix('\u{feff}').unwrap_or(s)),
        Cow::Owned(mut s) => {
            if s.starts_with('\u{feff}') {
                s.drain(..'\u{feff}'.len_utf8());
            }
            Cow::Owned(s)
        }
    };
    let format = match text.trim_start().bytes().next() {
        None => return Err(ParseError::Empty),
        Some(b'<') => Format::Xml,
        Some(b'{') => Format::Json,
        Some(_) => match encoding {
            Encoding::Json => Format::Json,
            Encoding::TextXml => Format::Xml,
            _ => return Err(ParseError::Unrecognized),
        },
    };
    Ok(Payload {
        format,
        encoding,
        declared,
        text,
        lossy_utf8,
        form_value: form_value.filter(|_| format == Format::Json),
    })
}

/// Undoes mod_json_cdr's `encode=true` when `encode-values` is also on (its default).
///
/// Then every variable value is already `%XX`-encoded, and `switch_url_encode` leaves
/// those escapes alone while escaping the JSON's own `"` as `%22` too: a `%22` from a
/// value (`caller_id` is `%22Bob%22%20%3C2001%3E`) and a string's closing quote are the
/// same bytes, and decoding the form once yields broken JSON. This reading decodes
/// escapes outside strings only; inside a string it keeps them (the values stay
/// url-encoded, as `encode-values` meant), and a `%22` ends the string only when
/// followed by what can follow a string in cJSON's unformatted output (`:` `,` `}` `]`
/// or the end). `None` on a malformed escape or an unterminated string.
fn json_form_decode(b: &[u8]) -> Option<Vec<u8>> {
    let end = b.iter().position(|&c| c == b'&').unwrap_or(b.len());
    let b = trim_newlines(&b[..end]);
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let (mut i, mut in_str) = (0, false);
    while i < b.len() {
        let c = b[i];
        if c != b'%' {
            out.push(if c == b'+' && !in_str { b' ' } else { c });
            i += 1;
            continue;
        }
        let x = hex(*b.get(i + 1)?)? << 4 | hex(*b.get(i + 2)?)?;
        let next = &b[i + 3..];
        let closes = next.is_empty()
            || next[0] == b','
            || [b"%3A", b"%7D", b"%5D"]
                .iter()
                .any(|e| next.len() >= 3 && next[..3].eq_ignore_ascii_case(*e));
        match (in_str, x) {
            (false, q) => {
                out.push(q);
                in_str = q == b'"';
            }
            (true, b'"') if closes => {
                out.push(b'"');
                in_str = false;
            }
            (true, _) => out.extend_from_slice(&b[i..i + 3]),
        }
        i += 3;
    }
    (!in_str).then_some(out)
}

fn skip_bom_ws(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

fn trim_newlines(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .rev()
        .take_while(|&&c| c == b'\n' || c == b'\r')
        .count();
    &b[..b.len() - n]
}

fn is_b64(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')
}

/// The shape of an encoded document (a `cdr=` value or an err-log file's contents).
/// `in_form`: a raw document here is the `Plain` encoding, else a file's raw document.
fn sniff_value(v: &[u8], in_form: bool) -> Shape {
    match skip_bom_ws(v).first() {
        Some(b'<') if in_form => return Shape::Known(Encoding::Plain),
        Some(b'{') if in_form => return Shape::Known(Encoding::Plain),
        Some(b'<') => return Shape::Known(Encoding::TextXml),
        Some(b'{') => return Shape::Known(Encoding::Json),
        _ => {}
    }
    if starts_url_encoded_document(v) {
        return Shape::Known(Encoding::UrlEncoded);
    }
    let v = trim_newlines(v);
    if v.is_empty() {
        return Shape::Unknown;
    }
    if is_b64_maybe_escaped(v) {
        return Shape::Known(Encoding::Base64);
    }
    if v.contains(&b' ') && v.iter().all(|&c| is_b64(c) || c == b' ') {
        return Shape::Base64FormDecoded;
    }
    Shape::Unknown
}

/// Base64 characters, where `+ / =` may be percent-encoded (`%2B %2F %3D`, any case).
fn is_b64_maybe_escaped(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let esc = v.get(i + 1..i + 3).unwrap_or(b"");
            if ![b"2B", b"2F", b"3D"]
                .iter()
                .any(|e| esc.eq_ignore_ascii_case(*e))
            {
                return false;
            }
            i += 3;
        } else if is_b64(v[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// `%3C` / `%7B` after any encoded whitespace or BOM (`+`, `%20`, `%09`, `%0A`, `%0D`,
/// `%EF%BB%BF`), case-insensitively.
fn starts_url_encoded_document(mut v: &[u8]) -> bool {
    const SKIP: [&[u8]; 6] = [b"+", b"%20", b"%09", b"%0A", b"%0D", b"%EF%BB%BF"];
    'strip: loop {
        for s in SKIP {
            if v.len() >= s.len() && v[..s.len()].eq_ignore_ascii_case(s) {
                v = &v[s.len()..];
                continue 'strip;
            }
        }
        break;
    }
    v.len() >= 3 && (v[..3].eq_ignore_ascii_case(b"%3C") || v[..3].eq_ignore_ascii_case(b"%7B"))
}

/// Bytes `switch_url_encode_opt` escapes besides controls, DEL and non-ASCII
/// (`SWITCH_URL_UNSAFE` in `switch_utils.h`).
const SWITCH_URL_UNSAFE: &AsciiSet = &CONTROLS
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

/// `switch_url_encode_opt(s, .., double_encode = TRUE)`: mod_xml_cdr's post encoding.
fn url_encode_all(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SWITCH_URL_UNSAFE).to_string()
}

/// `switch_url_encode` (no double encoding): how FreeSWITCH encodes every variable value
/// in the XML CDR (and in the JSON one with `encode-values`), and mod_json_cdr's post
/// body. An existing `%` + two upper-case hex digits is kept as it is.
pub fn encode_value(s: &str) -> String {
    let b = s.as_bytes();
    let upper_hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() && upper_hex(b[i + 1]) && upper_hex(b[i + 2]) {
            out.extend(percent_encoding::utf8_percent_encode(
                &s[start..i],
                SWITCH_URL_UNSAFE,
            ));
            out.push_str(&s[i..i + 3]);
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    out.extend(percent_encoding::utf8_percent_encode(
        &s[start..],
        SWITCH_URL_UNSAFE,
    ));
    out
}

fn is_json(doc: &str) -> bool {
    doc.trim_start().starts_with('{')
}

/// The encoded text without `cdr=`: what goes after `cdr=` and into err-log files.
fn encoded_text(doc: &str, encoding: Encoding) -> Cow<'_, str> {
    match encoding {
        Encoding::UrlEncoded if is_json(doc) => Cow::Owned(encode_value(doc)),
        Encoding::UrlEncoded => Cow::Owned(url_encode_all(doc)),
        Encoding::Base64 => Cow::Owned(base64::engine::general_purpose::STANDARD.encode(doc)),
        Encoding::Plain | Encoding::TextXml | Encoding::Json => Cow::Borrowed(doc),
    }
}

/// The POST FreeSWITCH makes for `doc` (an XML or JSON CDR): Content-Type and body.
/// A JSON document is url-encoded as mod_json_cdr does, XML as mod_xml_cdr does.
/// (`Plain`/`TextXml` with JSON, and `Json` with XML, are combinations FreeSWITCH never
/// sends; they are produced as asked, for tests.)
pub fn encode(doc: &str, encoding: Encoding) -> (&'static str, Vec<u8>) {
    let text = encoded_text(doc, encoding);
    let body = match encoding {
        Encoding::UrlEncoded | Encoding::Base64 | Encoding::Plain => {
            let mut b = Vec::with_capacity(4 + text.len());
            b.extend_from_slice(b"cdr=");
            b.extend_from_slice(text.as_bytes());
            b
        }
        Encoding::TextXml | Encoding::Json => text.into_owned().into_bytes(),
    };
    (encoding.content_type(), body)
}

/// The `?uuid=` query value: `a_<uuid>` means an A-leg (mod_xml_cdr with
/// `prefix-a-leg`); anything else says nothing about the side (B-legs, prefix off, and
/// mod_json_cdr, which never prefixes the query).
pub fn leg_from_query(uuid_param: &str) -> (Option<LegSide>, &str) {
    match uuid_param.strip_prefix("a_") {
        Some(rest) => (Some(LegSide::A), rest),
        None => (None, uuid_param),
    }
}

/// mod_xml_cdr's err-log-dir file name: `[a_]<uuid>.cdr.xml`.
pub fn err_log_file_name(uuid: &str, a_prefix: bool) -> String {
    format!("{}{uuid}.cdr.xml", if a_prefix { "a_" } else { "" })
}

/// mod_json_cdr's err-log-dir file name: `[a_]<uuid>.cdr.json`.
pub fn json_err_log_file_name(uuid: &str, a_prefix: bool) -> String {
    format!("{}{uuid}.cdr.json", if a_prefix { "a_" } else { "" })
}

/// What FreeSWITCH writes into the err-log-dir file after the last failed post: the
/// encoded text without `cdr=` (mod_xml_cdr writes the escaped or base64 buffer, or the
/// raw XML for `false`/`textxml`); mod_json_cdr adds a newline.
pub fn err_log_contents(doc: &str, encoding: Encoding) -> Vec<u8> {
    let mut out = encoded_text(doc, encoding).into_owned().into_bytes();
    if is_json(doc) {
        out.push(b'\n');
    }
    out
}

/// A parsed err-log-dir file name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ErrLogName<'a> {
    /// The name without its extension: `a_<uuid>` or `<uuid>`.
    pub stem: &'a str,
    pub format: Format,
}

impl<'a> ErrLogName<'a> {
    /// Parses the last path component; `None` if it is not `<stem>.cdr.xml|json`.
    pub fn parse(file_name: &'a str) -> Option<ErrLogName<'a>> {
        let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
        let (stem, format) = if let Some(s) = base.strip_suffix(".cdr.xml") {
            (s, Format::Xml)
        } else {
            (base.strip_suffix(".cdr.json")?, Format::Json)
        };
        (!stem.is_empty()).then_some(ErrLogName { stem, format })
    }

    /// Whether the name belongs to the CDR with this uuid, and with the `a_` prefix.
    pub fn matches(&self, uuid: &str) -> Option<bool> {
        if self.stem == uuid {
            Some(false)
        } else if self.stem.strip_prefix("a_") == Some(uuid) {
            Some(true)
        } else {
            None
        }
    }
}

/// Decodes an err-log-dir file's contents (any `encode` mode, sniffed).
pub fn decode_err_log_contents(contents: &[u8]) -> Result<Payload<'_>, ParseError> {
    if contents.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let encoding = match sniff_value(contents, false) {
        Shape::Known(e) => e,
        Shape::Base64FormDecoded => return Err(ParseError::Base64FormDecoded),
        Shape::Unknown => return Err(ParseError::Unrecognized),
    };
    let form_value = (encoding == Encoding::UrlEncoded).then_some(contents);
    payload(
        undo_value(encoding, contents, 0)?,
        encoding,
        None,
        form_value,
    )
}

/// Parses an err-log-dir file: the name must be `[a_]<uuid>.cdr.xml|json` and its uuid
/// the CDR's own.
pub fn parse_err_log_file(file_name: &str, contents: &[u8]) -> Result<Cdr, ParseError> {
    let name = ErrLogName::parse(file_name).ok_or(ParseError::BadFileName)?;
    let cdr = decode_err_log_contents(contents)?.parse()?;
    match name.matches(&cdr.uuid) {
        Some(_) => Ok(cdr),
        None => Err(ParseError::FileNameMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_value_matches_switch_url_encode() {
        assert_eq!(encode_value("a b+c"), "a%20b%2Bc");
        assert_eq!(encode_value("100%"), "100%25");
        assert_eq!(encode_value("keep%20it"), "keep%20it");
        assert_eq!(encode_value("lower%3a"), "lower%253a");
        assert_eq!(encode_value("Zoë"), "Zo%C3%AB");
        assert_eq!(
            encode_value("sofia/internal/1001@x.org"),
            "sofia/internal/1001%40x.org"
        );
        assert_eq!(encode_value("'(),!*$~._-"), "'(),!*$~._-");
    }

    #[test]
    fn url_encode_all_escapes_every_percent() {
        assert_eq!(url_encode_all("keep%20it"), "keep%2520it");
        assert_eq!(url_encode_all("<a\tb\n>"), "%3Ca%09b%0A%3E");
        assert_eq!(url_encode_all("\u{7f}"), "%7F");
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
            Some(Encoding::UrlEncoded)
        );
        assert_eq!(
            Encoding::from_content_type("application/xml"),
            Some(Encoding::TextXml)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
        for e in Encoding::ALL {
            assert_eq!(Encoding::from_content_type(e.content_type()), Some(e));
        }
    }

    #[test]
    fn url_document_start() {
        assert!(starts_url_encoded_document(b"%3C%3Fxml"));
        assert!(starts_url_encoded_document(b"%0a%3ccdr"));
        assert!(starts_url_encoded_document(b"+%7B%22"));
        assert!(!starts_url_encoded_document(b"PD94"));
        assert!(!starts_url_encoded_document(b"%3"));
    }

    #[test]
    fn err_log_names() {
        assert_eq!(err_log_file_name("u1", true), "a_u1.cdr.xml");
        assert_eq!(json_err_log_file_name("u1", false), "u1.cdr.json");
        let n = ErrLogName::parse("/var/log/xml_cdr/a_u1.cdr.xml").unwrap();
        assert_eq!(n.format, Format::Xml);
        assert_eq!(n.matches("u1"), Some(true));
        assert_eq!(n.matches("a_u1"), Some(false));
        assert_eq!(n.matches("u2"), None);
        assert_eq!(ErrLogName::parse("u1.xml"), None);
        assert_eq!(ErrLogName::parse(".cdr.json"), None);
    }
}
