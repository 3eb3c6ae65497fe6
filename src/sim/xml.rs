//! Writing CMS CDR XML: escaping, one `<record>` at a time, and the `<records>` envelope.

use std::fmt::Write as _;

/// Escapes text for element content and double-quoted attribute values.
pub(crate) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A GUID in CMS's spelling (lower-case, hyphenated).
pub(crate) fn guid(id: u128) -> String {
    uuid::Uuid::from_u128(id).hyphenated().to_string()
}

/// Builds the XML of one `<record>`: header attributes, then the object element and its children.
pub(crate) struct RecordWriter {
    buf: String,
    object: &'static str,
    depth: usize,
}

/// The attributes of a `<record>` element.
pub(crate) struct Header<'a> {
    pub record_type: &'a str,
    pub time: &'a str,
    pub correlator_index: u64,
    pub missing: u64,
}

/// A rendered record with its `numPreceedingRecordsMissing` changed from `old` to `new`
/// (0 = absent): how a receiver's own outage is announced on a record shared by all of them.
pub(crate) fn with_missing(xml: &str, index: u64, old: u64, new: u64) -> String {
    let attr = |n: u64| format!(" numPreceedingRecordsMissing=\"{n}\"");
    if old > 0 {
        return xml.replacen(&attr(old), &attr(new), 1);
    }
    let at = format!(" correlatorIndex=\"{index}\"");
    xml.replacen(&at, &format!("{at}{}", attr(new)), 1)
}

impl RecordWriter {
    /// Opens `<record ...><object id="...">`.
    pub fn new(h: &Header<'_>, object: &'static str, id: u128) -> RecordWriter {
        let mut buf = String::with_capacity(512);
        let _ = write!(
            buf,
            "  <record type=\"{}\" time=\"{}\" recordIndex=\"{}\" correlatorIndex=\"{}\"",
            h.record_type,
            h.time,
            h.correlator_index + 1,
            h.correlator_index
        );
        if h.missing > 0 {
            let _ = write!(buf, " numPreceedingRecordsMissing=\"{}\"", h.missing);
        }
        let _ = write!(buf, ">\n    <{object} id=\"{}\">\n", guid(id));
        RecordWriter {
            buf,
            object,
            depth: 3,
        }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.buf.push_str("  ");
        }
    }

    /// `<name>text</name>`, escaped.
    pub fn text(&mut self, name: &str, value: &str) -> &mut Self {
        self.indent();
        let _ = writeln!(self.buf, "<{name}>{}</{name}>", escape(value));
        self
    }

    /// `<name>value</name>` for anything displayable that needs no escaping (numbers, GUIDs).
    pub fn value(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.indent();
        let _ = writeln!(self.buf, "<{name}>{value}</{name}>");
        self
    }

    pub fn guid(&mut self, name: &str, id: u128) -> &mut Self {
        self.value(name, guid(id))
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.indent();
        let _ = writeln!(self.buf, "<{name}>");
        self.depth += 1;
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.depth -= 1;
        self.indent();
        let _ = writeln!(self.buf, "</{name}>");
        self
    }

    /// An empty element with attributes (`<alarm type=".." durationPercentage=".."/>`).
    pub fn empty_with(&mut self, name: &str, attrs: &[(&str, String)]) -> &mut Self {
        self.indent();
        let _ = write!(self.buf, "<{name}");
        for (k, v) in attrs {
            let _ = write!(self.buf, " {k}=\"{}\"", escape(v));
        }
        self.buf.push_str("/>\n");
        self
    }

    /// Closes the object and the record.
    pub fn finish(mut self) -> String {
        let _ = write!(self.buf, "    </{}>\n  </record>\n", self.object);
        self.buf
    }
}

/// A whole POST body: `<records session=.. [callBridge=..]>` around pre-rendered records.
pub(crate) fn envelope<'a>(
    session: &str,
    call_bridge: Option<&str>,
    records: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut body = String::with_capacity(4096);
    body.push_str("<?xml version=\"1.0\"?>\n<records session=\"");
    body.push_str(session);
    body.push('"');
    if let Some(cb) = call_bridge {
        body.push_str(" callBridge=\"");
        body.push_str(cb);
        body.push('"');
    }
    body.push_str(">\n");
    for r in records {
        body.push_str(r);
    }
    body.push_str("</records>\n");
    body
}

/// Milliseconds as seconds with three decimals (`1234` → `1.234`).
pub(crate) fn millis(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("R&D <sync> \"x\" 'y'"),
            "R&amp;D &lt;sync&gt; &quot;x&quot; &apos;y&apos;"
        );
        assert!(matches!(escape("plain"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn millis_format() {
        assert_eq!(millis(0), "0.000");
        assert_eq!(millis(1234), "1.234");
        assert_eq!(millis(5), "0.005");
    }
}
