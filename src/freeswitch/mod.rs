//! The FreeSWITCH CDR wire format (mod_xml_cdr, mod_json_cdr): bytes in, typed [`Cdr`] out (pure, no state).
//!
//! [`parse`] = [`decode`] (undo the transport encoding, see [`transport`]) then the XML or
//! JSON reader. A body is a [`ParseError`] only when it is not a CDR at all; a bad field
//! makes just that field `None` and lands in [`Cdr::invalid`].
//!
//! Choices where upstream leaves room:
//! - **Leg side**: see [`Cdr::leg`] (the test mod_xml_cdr itself makes).
//! - **Variable values**: XML values are always url-encoded (`switch_ivr_set_xml_chan_var`)
//!   and are decoded strictly, `+` staying `+`. JSON values are url-encoded only with
//!   `encode-values` (the default), which the document does not record: a document is
//!   taken as plain when any variable value holds a byte `switch_url_encode` would have
//!   escaped (space, `:`, `@`, non-ASCII, a `%` not followed by two upper-case hex digits,
//!   …). Real CDRs always have such values when plain (`start_stamp` has a space and
//!   colons), and never when encoded. This also handles mod_json_cdr `encode=true` posts,
//!   which decode the values' own `%XX` once already. `switch_url_encode` leaves an
//!   existing `%XX` in a value alone, so a value that literally contained `%41` reads as
//!   `A`: upstream loses that, not us.
//! - **Numbers** are strict: FreeSWITCH prints `%zu` and `%0.2f`; `4,50` (a comma locale
//!   in `snprintf`) is `bad_number`, not 4.5.
//! - **Zero media**: a stream with no media packets still says MOS 4.50 / quality 100
//!   (the initial values); use [`InboundStats::usable_mos`].

mod error;
mod fields;
mod json;
pub mod transport;
mod types;
mod xml;

pub use error::{ParseError, MAX_DEPTH, REASONS};
pub use transport::{
    decode, decode_err_log_contents, encode, encode_value, err_log_contents, err_log_file_name,
    json_err_log_file_name, leg_from_query, parse_err_log_file, Encoding, ErrLogName, Payload,
};
pub use types::*;

/// Decodes and parses one POST body. A Content-Type that is missing or names another
/// encoding than the body's is reported in [`Cdr::invalid`] (field `content_type`).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Cdr, ParseError> {
    let payload = decode(content_type, body)?;
    let mut cdr = payload.parse()?;
    let reason = match content_type {
        None => Some(InvalidReason::MissingContentType),
        Some(_) if payload.declared.is_none() || payload.content_type_mismatch() => {
            Some(InvalidReason::WrongContentType)
        }
        Some(_) => None,
    };
    if let Some(reason) = reason {
        cdr.invalid.push(InvalidField {
            field: "content_type",
            reason,
        });
    }
    Ok(cdr)
}

/// Parses an already decoded document (a log-dir file: raw XML or JSON).
pub fn parse_document(format: Format, text: &str) -> Result<Cdr, ParseError> {
    match format {
        Format::Xml => xml::parse_document(text, false),
        Format::Json => json::parse_document(text, false, false),
    }
}
