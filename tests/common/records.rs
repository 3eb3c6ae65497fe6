//! CMS CDR batches built in tests: a `<records>` body from `(type, correlatorIndex, object)`
//! triples, and the object XML of the record types the tests need.

/// Builds a batch: `(type, correlatorIndex, object XML)`.
pub fn batch(session: &str, cb: Option<&str>, records: &[(&str, u64, String)]) -> Vec<u8> {
    let mut s = format!("<?xml version=\"1.0\"?>\n<records session=\"{session}\"");
    if let Some(cb) = cb {
        s += &format!(" callBridge=\"{cb}\"");
    }
    s += ">\n";
    for (t, i, inner) in records {
        s += &format!("<record type=\"{t}\" time=\"2024-01-01T00:00:{:02}Z\" correlatorIndex=\"{i}\">{inner}</record>\n", i % 60);
    }
    s += "</records>\n";
    s.into_bytes()
}

pub fn call_start(id: &str, tenant: Option<&str>) -> String {
    let t = tenant
        .map(|t| format!("<tenant>{t}</tenant>"))
        .unwrap_or_default();
    format!("<call id=\"{id}\"><name>x</name><callType>coSpace</callType>{t}</call>")
}
pub fn call_end(id: &str) -> String {
    format!("<call id=\"{id}\"><callLegsCompleted>1</callLegsCompleted><callLegsMaxActive>1</callLegsMaxActive><durationSeconds>60</durationSeconds></call>")
}
pub fn leg_start(id: &str, call: Option<&str>) -> String {
    let c = call
        .map(|c| format!("<call>{c}</call>"))
        .unwrap_or_default();
    format!("<callLeg id=\"{id}\"><type>sip</type><direction>outgoing</direction>{c}</callLeg>")
}
pub fn leg_update(id: &str, call: &str) -> String {
    format!("<callLeg id=\"{id}\"><state>connected</state><call>{call}</call></callLeg>")
}
pub fn leg_end(id: &str, reason: &str) -> String {
    format!("<callLeg id=\"{id}\"><reason>{reason}</reason><remoteTeardown>false</remoteTeardown><durationSeconds>30</durationSeconds></callLeg>")
}

/// A GUID-shaped id: `prefix` tells the kind of object, `i` numbers it.
pub fn guid(prefix: u32, i: u64) -> String {
    format!("{prefix:08x}-0000-4000-8000-{i:012}")
}
