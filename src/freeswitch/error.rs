//! Why a whole FreeSWITCH body is rejected: one-line messages and static labels.

use super::types::InvalidReason;

/// Deeper than any FreeSWITCH CDR (callflow/extension/sub_extensions/…/application is 6);
/// bounds the element stack (XML) and the recursion (JSON) against hostile nesting.
pub const MAX_DEPTH: usize = 32;

/// Why a body is not a CDR at all (answered with 400). `Display` is one short line and
/// never quotes more than a few dozen bytes of input.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ParseError {
    #[error("empty body")]
    Empty,
    #[error("body is neither a cdr= form nor an XML or JSON document")]
    Unrecognized,
    #[error("form body has no cdr= field")]
    MissingCdrField,
    #[error("bad url encoding at byte {0} (a % not followed by two hex digits)")]
    BadUrlEncoding(usize),
    #[error("bad base64 in the cdr= field: {0}")]
    BadBase64(String),
    #[error("base64 cdr= field holds spaces: a form decoder turned its '+' into ' '")]
    Base64FormDecoded,
    #[error("DTDs are not accepted (<!DOCTYPE> at byte {0})")]
    DocType(u64),
    #[error("nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("malformed XML at byte {pos}: {msg}")]
    Xml { pos: u64, msg: String },
    #[error("root element is <{0}>, expected <cdr>")]
    WrongRoot(String),
    #[error("no <cdr> element")]
    NoRoot,
    #[error("document ends before </cdr> (truncated?)")]
    Truncated,
    #[error("content after </cdr> at byte {0}")]
    TrailingContent(u64),
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("JSON document is not an object")]
    NotObject,
    #[error("no leg uuid in variables/uuid or the callflow")]
    NoUuid,
    #[error("leg uuid unusable: {}", .0.as_label())]
    InvalidUuid(InvalidReason),
    #[error("not an err-log-dir file name ([a_]<uuid>.cdr.xml or .cdr.json)")]
    BadFileName,
    #[error("file name uuid differs from the CDR's uuid")]
    FileNameMismatch,
}

/// Every [`ParseError::as_label`] value.
pub const REASONS: &[&str] = &[
    "empty",
    "unrecognized_body",
    "missing_cdr_field",
    "bad_url_encoding",
    "bad_base64",
    "base64_form_decoded",
    "doctype",
    "too_deep",
    "malformed_xml",
    "wrong_root",
    "truncated",
    "malformed_json",
    "json_not_object",
    "no_uuid",
    "invalid_uuid",
    "bad_file_name",
    "file_name_mismatch",
];

impl ParseError {
    /// Label value for a rejected-body counter's `reason`.
    pub fn as_label(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::Unrecognized => "unrecognized_body",
            ParseError::MissingCdrField => "missing_cdr_field",
            ParseError::BadUrlEncoding(_) => "bad_url_encoding",
            ParseError::BadBase64(_) => "bad_base64",
            ParseError::Base64FormDecoded => "base64_form_decoded",
            ParseError::DocType(_) => "doctype",
            ParseError::TooDeep => "too_deep",
            ParseError::Xml { .. } | ParseError::TrailingContent(_) => "malformed_xml",
            ParseError::WrongRoot(_) | ParseError::NoRoot => "wrong_root",
            ParseError::Truncated => "truncated",
            ParseError::Json(_) => "malformed_json",
            ParseError::NotObject => "json_not_object",
            ParseError::NoUuid => "no_uuid",
            ParseError::InvalidUuid(_) => "invalid_uuid",
            ParseError::BadFileName => "bad_file_name",
            ParseError::FileNameMismatch => "file_name_mismatch",
        }
    }
}

/// A library message made safe for `Display`: one line, at most ~100 bytes.
pub(super) fn one_line(msg: impl std::fmt::Display) -> String {
    let mut s: String = msg
        .to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() > 100 {
        let mut end = 100;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<ParseError> {
        vec![
            ParseError::Empty,
            ParseError::Unrecognized,
            ParseError::MissingCdrField,
            ParseError::BadUrlEncoding(3),
            ParseError::BadBase64("x".into()),
            ParseError::Base64FormDecoded,
            ParseError::DocType(0),
            ParseError::TooDeep,
            ParseError::Xml {
                pos: 1,
                msg: "m".into(),
            },
            ParseError::WrongRoot("r".into()),
            ParseError::NoRoot,
            ParseError::Truncated,
            ParseError::TrailingContent(9),
            ParseError::Json("j".into()),
            ParseError::NotObject,
            ParseError::NoUuid,
            ParseError::InvalidUuid(InvalidReason::TooLong),
            ParseError::BadFileName,
            ParseError::FileNameMismatch,
        ]
    }

    #[test]
    fn reasons_match_labels() {
        let all = every_variant();
        // No wildcard: a new variant fails to compile until it is listed above.
        for e in &all {
            match e {
                ParseError::Empty
                | ParseError::Unrecognized
                | ParseError::MissingCdrField
                | ParseError::BadUrlEncoding(_)
                | ParseError::BadBase64(_)
                | ParseError::Base64FormDecoded
                | ParseError::DocType(_)
                | ParseError::TooDeep
                | ParseError::Xml { .. }
                | ParseError::WrongRoot(_)
                | ParseError::NoRoot
                | ParseError::Truncated
                | ParseError::TrailingContent(_)
                | ParseError::Json(_)
                | ParseError::NotObject
                | ParseError::NoUuid
                | ParseError::InvalidUuid(_)
                | ParseError::BadFileName
                | ParseError::FileNameMismatch => {}
            }
        }
        let labels: std::collections::BTreeSet<&str> = all.iter().map(|e| e.as_label()).collect();
        let listed: std::collections::BTreeSet<&str> = REASONS.iter().copied().collect();
        assert_eq!(listed.len(), REASONS.len(), "REASONS has a repeat");
        assert_eq!(labels, listed, "REASONS and as_label disagree");
        for e in &all {
            let s = e.to_string();
            assert!(!s.contains('\n') && s.len() < 200, "{s}");
        }
    }

    #[test]
    fn one_line_bounds_and_flattens() {
        let s = one_line(format!("a\nb{}", "x".repeat(500)));
        assert!(!s.contains('\n'));
        assert!(s.len() <= 104);
    }
}
