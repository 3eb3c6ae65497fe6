//! mod_xml_cdr documents: quick-xml events to [`Builder`] calls, one pass, bounded depth.
//!
//! Shape (`switch_ivr_generate_xml_cdr`): `<cdr core-uuid switchname>` with `channel_data`,
//! `call-stats` (`audio`/`video` → `inbound`, `outbound`, `error-log`), `variables` (one
//! element per variable, text url-encoded), `app_log`, `hold-record`, then one `callflow`
//! per caller profile, newest first. Everything else is skipped.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::error::{one_line, ParseError, MAX_DEPTH};
use super::fields::{Builder, InField, Media, OutField, PeriodField, Raw, Var};
use super::types::{Cdr, Format};

/// Where an open element sits; leaves carry what their text becomes.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Node {
    Root,
    ChannelData,
    ChanDirection,
    CallStats,
    Media(Media),
    Inbound(Media),
    Outbound(Media),
    ErrorLog(Media),
    Period(Media),
    InLeaf(Media, InField),
    OutLeaf(Media, OutField),
    PeriodLeaf(Media, PeriodField),
    Variables,
    Var(Var),
    Callflow,
    CallerProfile,
    ProfileUuid,
    Originator,
    Skip,
}

impl Node {
    fn is_leaf(self) -> bool {
        matches!(
            self,
            Node::ChanDirection
                | Node::InLeaf(..)
                | Node::OutLeaf(..)
                | Node::PeriodLeaf(..)
                | Node::Var(_)
                | Node::ProfileUuid
        )
    }
}

fn xml_err(pos: u64, e: impl std::fmt::Display) -> ParseError {
    ParseError::Xml {
        pos,
        msg: one_line(e),
    }
}

/// Parses a mod_xml_cdr document (already transport-decoded).
pub(super) fn parse(text: &str, mut b: Builder) -> Result<Cdr, ParseError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::with_capacity(MAX_DEPTH);
    let mut acc = Acc::Empty;
    let mut callflows = 0usize;
    let mut root_done = false;
    loop {
        let pos = reader.buffer_position();
        let ev = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => return Err(xml_err(reader.error_position(), e)),
        };
        match ev {
            Event::DocType(_) => return Err(ParseError::DocType(pos)),
            Event::Start(_) | Event::Empty(_) if root_done => {
                return Err(ParseError::TrailingContent(pos));
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                let node = open(stack.last().copied(), &e, &mut b, &mut callflows, pos)?;
                stack.push(node);
                acc = Acc::Empty;
            }
            Event::Empty(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                let node = open(stack.last().copied(), &e, &mut b, &mut callflows, pos)?;
                close(node, "", &mut b);
                if node == Node::Root {
                    root_done = true;
                }
            }
            Event::End(_) => {
                // check_end_names (on by default) guarantees the tag matches.
                let Some(node) = stack.pop() else {
                    return Err(xml_err(pos, "unexpected end tag"));
                };
                if node.is_leaf() {
                    let text = std::mem::take(&mut acc).take();
                    close(node, &text, &mut b);
                }
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(t) => {
                if stack.last().is_some_and(|n| n.is_leaf()) {
                    acc.push(t.xml10_content());
                } else if stack.is_empty() && !t.trim_ascii().is_empty() {
                    return Err(if root_done {
                        ParseError::TrailingContent(pos)
                    } else {
                        ParseError::NoRoot
                    });
                }
            }
            Event::CData(t) => {
                if stack.last().is_some_and(|n| n.is_leaf()) {
                    acc.push(t.xml10_content());
                } else if stack.is_empty() {
                    return Err(if root_done {
                        ParseError::TrailingContent(pos)
                    } else {
                        ParseError::NoRoot
                    });
                }
            }
            Event::GeneralRef(r) => {
                if stack.last().is_some_and(|n| n.is_leaf()) {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => acc.push(Cow::Owned(c.to_string())),
                        Ok(None) => {
                            // Unknown entities (no DTD can declare one) are dropped.
                            if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                                acc.push(Cow::Borrowed(s));
                            }
                        }
                        Err(e) => return Err(xml_err(pos, e)),
                    }
                } else if stack.is_empty() {
                    return Err(if root_done {
                        ParseError::TrailingContent(pos)
                    } else {
                        ParseError::NoRoot
                    });
                }
            }
            Event::Eof => {
                if !stack.is_empty() {
                    return Err(ParseError::Truncated);
                }
                if !root_done {
                    return Err(ParseError::NoRoot);
                }
                return b.finish();
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
}

/// Classifies a new element under `parent` and hands its attributes to the builder.
fn open(
    parent: Option<Node>,
    e: &BytesStart<'_>,
    b: &mut Builder,
    callflows: &mut usize,
    pos: u64,
) -> Result<Node, ParseError> {
    let name = e.name();
    let name: &str = name.as_ref();
    let Some(parent) = parent else {
        if name != "cdr" {
            return Err(ParseError::WrongRoot(one_line(
                name.chars().take(64).collect::<String>(),
            )));
        }
        for a in e.attributes() {
            let a = a.map_err(|err| xml_err(pos, err))?;
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|err| xml_err(pos, err))?;
            match a.key.as_ref() {
                "core-uuid" => b.core_uuid(Raw::Text(&v)),
                "switchname" => b.switchname(Raw::Text(&v)),
                _ => {}
            }
        }
        return Ok(Node::Root);
    };
    Ok(match parent {
        Node::Root => match name {
            "channel_data" => Node::ChannelData,
            "call-stats" => Node::CallStats,
            "variables" => Node::Variables,
            "callflow" => {
                *callflows += 1;
                if *callflows > 1 {
                    Node::Skip
                } else {
                    b.callflow();
                    if let Some(a) = e
                        .try_get_attribute("unique-id")
                        .map_err(|err| xml_err(pos, err))?
                    {
                        let v = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map_err(|err| xml_err(pos, err))?;
                        b.callflow_unique_id(Raw::Text(&v));
                    }
                    Node::Callflow
                }
            }
            _ => Node::Skip,
        },
        Node::ChannelData if name == "direction" => Node::ChanDirection,
        Node::CallStats => match Media::from_wire(name) {
            Some(m) => {
                b.media(m);
                Node::Media(m)
            }
            None => Node::Skip,
        },
        Node::Media(m) => match name {
            "inbound" => Node::Inbound(m),
            "outbound" => Node::Outbound(m),
            "error-log" => Node::ErrorLog(m),
            _ => Node::Skip,
        },
        Node::Inbound(m) => InField::from_wire(name).map_or(Node::Skip, |f| Node::InLeaf(m, f)),
        Node::Outbound(m) => OutField::from_wire(name).map_or(Node::Skip, |f| Node::OutLeaf(m, f)),
        Node::ErrorLog(m) if name == "error-period" => {
            if b.error_period(m) {
                Node::Period(m)
            } else {
                Node::Skip
            }
        }
        Node::Period(m) => {
            PeriodField::from_xml(name).map_or(Node::Skip, |f| Node::PeriodLeaf(m, f))
        }
        Node::Variables => Var::from_name(name).map_or(Node::Skip, Node::Var),
        Node::Callflow if name == "caller_profile" => Node::CallerProfile,
        Node::CallerProfile => match name {
            "uuid" => Node::ProfileUuid,
            "originator" => Node::Originator,
            _ => Node::Skip,
        },
        Node::Originator => {
            if name == "originator_caller_profile" {
                b.originator_profile();
            }
            Node::Skip
        }
        _ => Node::Skip,
    })
}

/// Hands a closed leaf's text to the builder.
fn close(node: Node, text: &str, b: &mut Builder) {
    let raw = Raw::Text(text);
    match node {
        Node::ChanDirection => b.channel_direction(raw),
        Node::InLeaf(m, f) => b.inbound(m, f, raw),
        Node::OutLeaf(m, f) => b.outbound(m, f, raw),
        Node::PeriodLeaf(m, f) => b.period_field(m, f, raw),
        Node::Var(v) => b.var(v, raw, true),
        Node::ProfileUuid => b.profile_uuid(raw),
        _ => {}
    }
}

/// A leaf's text, borrowed when it arrives in one piece (the usual case).
#[derive(Default)]
enum Acc<'a> {
    #[default]
    Empty,
    One(Cow<'a, str>),
    Many(String),
}

impl<'a> Acc<'a> {
    fn push(&mut self, s: Cow<'a, str>) {
        *self = match std::mem::take(self) {
            Acc::Empty => Acc::One(s),
            Acc::One(first) => {
                let mut t = first.into_owned();
                t.push_str(&s);
                Acc::Many(t)
            }
            Acc::Many(mut t) => {
                t.push_str(&s);
                Acc::Many(t)
            }
        }
    }
    fn take(self) -> Cow<'a, str> {
        match self {
            Acc::Empty => Cow::Borrowed(""),
            Acc::One(s) => s,
            Acc::Many(t) => Cow::Owned(t),
        }
    }
}

/// Parses an already decoded mod_xml_cdr document.
pub(super) fn parse_document(text: &str, lossy: bool) -> Result<Cdr, ParseError> {
    let mut b = Builder::new(Format::Xml);
    if lossy {
        b.lossy_body();
    }
    parse(text, b)
}
