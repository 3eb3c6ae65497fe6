//! mod_json_cdr documents: serde_json visitors feeding [`Builder`]; what is not kept is
//! skipped unread (`IgnoredAny`), so memory stays bounded by the fields kept.
//!
//! Shape (`switch_ivr_generate_json_cdr`, printed by cJSON): `core-uuid`, `switchname`,
//! `channel_data`, `callStats` (`audio`/`video` → `inbound` with `errorLog` array,
//! `outbound`), `variables` (strings; url-encoded when `encode-values` is on, which the
//! document does not say: see [`looks_plain`](super::fields::looks_plain)), `app_log`,
//! `callflow` (array of profiles, newest first; older releases wrote one object).

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::{one_line, ParseError, MAX_DEPTH};
use super::fields::{looks_plain, Builder, InField, Media, OutField, PeriodField, Raw, Var};
use super::types::{Cdr, Format};

/// Parses an already decoded mod_json_cdr document. `escaped`: every string is still
/// url-encoded (the second reading of a url-encoded post, see `json_form_decode`).
pub(super) fn parse_document(text: &str, lossy: bool, escaped: bool) -> Result<Cdr, ParseError> {
    let t = text.trim_start_matches(|c: char| c.is_ascii_whitespace());
    if !t.starts_with('{') {
        return Err(ParseError::NotObject);
    }
    check_depth(t)?;
    let mut b = Builder::new(Format::Json);
    b.set_strings_escaped(escaped);
    if lossy {
        b.lossy_body();
    }
    let mut vars = Vars::default();
    let mut de = serde_json::Deserializer::from_str(t);
    ObjSeed(RootObj {
        b: &mut b,
        vars: &mut vars,
    })
    .deserialize(&mut de)
    .and_then(|_| de.end())
    .map_err(|e| ParseError::Json(one_line(e)))?;
    let encoded = escaped || !vars.plain;
    b.set_values_url_encoded(encoded);
    for (i, slot) in vars.slots.iter().enumerate() {
        if let (Some(leaf), Some(var)) = (slot, Var::from_idx(i)) {
            b.var(var, leaf.raw(), encoded);
        }
    }
    b.finish()
}

/// Rejects nesting deeper than [`MAX_DEPTH`] before serde recurses into it.
fn check_depth(t: &str) -> Result<(), ParseError> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for &c in t.as_bytes() {
        if in_str {
            match c {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Kept variables, first occurrence each, and whether any value looked unencoded.
#[derive(Default)]
struct Vars<'de> {
    slots: [Option<Leaf<'de>>; Var::COUNT],
    plain: bool,
}

/// A scalar as found; containers are skipped and become `Other`.
enum Leaf<'de> {
    Str(Cow<'de, str>),
    U(u64),
    I(i64),
    F(f64),
    Null,
    Other,
}

impl Leaf<'_> {
    fn raw(&self) -> Raw<'_> {
        match self {
            Leaf::Str(s) => Raw::Text(s),
            Leaf::U(n) => Raw::U(*n),
            Leaf::I(n) => Raw::I(*n),
            Leaf::F(f) => Raw::F(*f),
            Leaf::Null => Raw::Null,
            Leaf::Other => Raw::WrongType,
        }
    }
}

/// The `visit_*` methods for every JSON kind a visitor does not care about.
macro_rules! other_kinds {
    ($v:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($v)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($v)
        }
    };
}

struct LeafSeed;

impl<'de> DeserializeSeed<'de> for LeafSeed {
    type Value = Leaf<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Leaf<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LeafSeed {
    type Value = Leaf<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Str(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::U(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::I(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Leaf<'de>, E> {
        Ok(Leaf::F(v))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Other)
    }
    fn visit_unit<E>(self) -> Result<Leaf<'de>, E> {
        Ok(Leaf::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Leaf<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Leaf::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Leaf<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Leaf::Other)
    }
}

/// Object keys, borrowed when unescaped.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// What a container value turned out to be.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Shape {
    Object,
    Null,
    Other,
}

/// One object context: consumes the value of each key (exactly once).
trait Obj<'de> {
    fn begin(&mut self) {}
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

struct ObjSeed<T>(T);

impl<'de, T: Obj<'de>> DeserializeSeed<'de> for ObjSeed<T> {
    type Value = Shape;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Obj<'de>> Visitor<'de> for ObjSeed<T> {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    other_kinds!(Shape::Other);
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Shape, A::Error> {
        self.0.begin();
        while let Some(k) = map.next_key_seed(KeySeed)? {
            self.0.entry(&k, &mut map)?;
        }
        Ok(Shape::Object)
    }
}

/// A container of the wrong kind where the shape says object: reported, not fatal.
fn check_shape(b: &mut Builder, field: &'static str, shape: Shape) {
    if shape == Shape::Other {
        b.wrong_type(field);
    }
}

struct RootObj<'b, 'de> {
    b: &'b mut Builder,
    vars: &'b mut Vars<'de>,
}

impl<'de> Obj<'de> for RootObj<'_, 'de> {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let b = &mut *self.b;
        match key {
            "core-uuid" => b.core_uuid(map.next_value_seed(LeafSeed)?.raw()),
            "switchname" => b.switchname(map.next_value_seed(LeafSeed)?.raw()),
            "channel_data" => {
                let s = map.next_value_seed(ObjSeed(ChanObj { b: &mut *b }))?;
                check_shape(b, "channel_data", s);
            }
            "callStats" => {
                let s = map.next_value_seed(ObjSeed(StatsObj { b: &mut *b }))?;
                check_shape(b, "callStats", s);
            }
            "variables" => {
                let s = map.next_value_seed(ObjSeed(VarsObj {
                    vars: &mut *self.vars,
                }))?;
                check_shape(b, "variables", s);
            }
            "callflow" => map.next_value_seed(Callflow { b })?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

struct ChanObj<'b> {
    b: &'b mut Builder,
}

impl<'de> Obj<'de> for ChanObj<'_> {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "direction" => self
                .b
                .channel_direction(map.next_value_seed(LeafSeed)?.raw()),
            _ => skip(map)?,
        }
        Ok(())
    }
}

struct StatsObj<'b> {
    b: &'b mut Builder,
}

impl<'de> Obj<'de> for StatsObj<'_> {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let Some(m) = Media::from_wire(key) else {
            return skip(map);
        };
        let b = &mut *self.b;
        let shape = map.next_value_seed(ObjSeed(MediaObj { b: &mut *b, m }))?;
        match shape {
            Shape::Object => b.media(m),
            Shape::Null => {}
            Shape::Other => b.wrong_type(match m {
                Media::Audio => "callStats.audio",
                Media::Video => "callStats.video",
            }),
        }
        Ok(())
    }
}

struct MediaObj<'b> {
    b: &'b mut Builder,
    m: Media,
}

impl<'de> Obj<'de> for MediaObj<'_> {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let (b, m) = (&mut *self.b, self.m);
        match key {
            "inbound" => {
                map.next_value_seed(ObjSeed(InObj { b, m }))?;
            }
            "outbound" => {
                map.next_value_seed(ObjSeed(OutObj { b, m }))?;
            }
            // Upstream nests it in inbound; accepted here too.
            "errorLog" => map.next_value_seed(Periods { b, m })?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

struct InObj<'b> {
    b: &'b mut Builder,
    m: Media,
}

impl<'de> Obj<'de> for InObj<'_> {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        if key == "errorLog" {
            return map.next_value_seed(Periods {
                b: &mut *self.b,
                m: self.m,
            });
        }
        match InField::from_wire(key) {
            Some(f) => self
                .b
                .inbound(self.m, f, map.next_value_seed(LeafSeed)?.raw()),
            None => skip(map)?,
        }
        Ok(())
    }
}

struct OutObj<'b> {
    b: &'b mut Builder,
    m: Media,
}

impl<'de> Obj<'de> for OutObj<'_> {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match OutField::from_wire(key) {
            Some(f) => self
                .b
                .outbound(self.m, f, map.next_value_seed(LeafSeed)?.raw()),
            None => skip(map)?,
        }
        Ok(())
    }
}

/// `errorLog`: an array of period objects.
struct Periods<'b> {
    b: &'b mut Builder,
    m: Media,
}

impl<'de> DeserializeSeed<'de> for Periods<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Periods<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    other_kinds!(());
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let more = seq.next_element_seed(Period {
                b: &mut *self.b,
                m: self.m,
            })?;
            if more.is_none() {
                return Ok(());
            }
        }
    }
}

struct Period<'b> {
    b: &'b mut Builder,
    m: Media,
}

impl<'de> DeserializeSeed<'de> for Period<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.b.error_period(self.m) {
            d.deserialize_any(ObjSeed(PeriodObj {
                b: self.b,
                m: self.m,
            }))
            .map(|_| ())
        } else {
            d.deserialize_ignored_any(IgnoredAny).map(|_| ())
        }
    }
}

struct PeriodObj<'b> {
    b: &'b mut Builder,
    m: Media,
}

impl<'de> Obj<'de> for PeriodObj<'_> {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match PeriodField::from_json(key) {
            Some(f) => self
                .b
                .period_field(self.m, f, map.next_value_seed(LeafSeed)?.raw()),
            None => skip(map)?,
        }
        Ok(())
    }
}

struct VarsObj<'b, 'de> {
    vars: &'b mut Vars<'de>,
}

impl<'de> Obj<'de> for VarsObj<'_, 'de> {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        let leaf = map.next_value_seed(LeafSeed)?;
        if let Leaf::Str(s) = &leaf {
            if !self.vars.plain && looks_plain(s) {
                self.vars.plain = true;
            }
        }
        if let Some(v) = Var::from_name(key) {
            let slot = &mut self.vars.slots[v.idx()];
            if slot.is_none() {
                *slot = Some(leaf);
            }
        }
        Ok(())
    }
}

/// `callflow`: only the first profile (the current one) matters.
struct Callflow<'b> {
    b: &'b mut Builder,
}

impl<'de> DeserializeSeed<'de> for Callflow<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Callflow<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of profiles")
    }
    other_kinds!(());
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        ObjSeed(ProfileObj { b: self.b }).visit_map(map).map(|_| ())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        seq.next_element_seed(ObjSeed(ProfileObj { b: self.b }))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

struct ProfileObj<'b> {
    b: &'b mut Builder,
}

impl<'de> Obj<'de> for ProfileObj<'_> {
    fn begin(&mut self) {
        self.b.callflow();
    }
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "caller_profile" => {
                map.next_value_seed(ObjSeed(CallerProfileObj { b: &mut *self.b }))?;
            }
            _ => skip(map)?,
        }
        Ok(())
    }
}

struct CallerProfileObj<'b> {
    b: &'b mut Builder,
}

impl<'de> Obj<'de> for CallerProfileObj<'_> {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "uuid" => self.b.profile_uuid(map.next_value_seed(LeafSeed)?.raw()),
            "originator" => {
                map.next_value_seed(ObjSeed(OriginatorObj { b: &mut *self.b }))?;
            }
            _ => skip(map)?,
        }
        Ok(())
    }
}

struct OriginatorObj<'b> {
    b: &'b mut Builder,
}

impl<'de> Obj<'de> for OriginatorObj<'_> {
    fn entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "originator_caller_profiles" | "originator_caller_profile" => {
                if map.next_value_seed(CountSeed)? > 0 {
                    self.b.originator_profile();
                }
            }
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// Elements of an array (an object counts as one), read unseen.
struct CountSeed;

impl<'de> DeserializeSeed<'de> for CountSeed {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountSeed {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    other_kinds!(0);
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(1)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_outside_strings_only() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(40), "]".repeat(40));
        assert_eq!(check_depth(&deep), Err(ParseError::TooDeep));
        let quoted = format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(40), "{".repeat(40));
        assert_eq!(check_depth(&quoted), Ok(()));
    }
}
