//! The label vocabulary: one interned string table, and one typed, capped domain per label.
//!
//! Each label is its own type (`Tenant`, `CallBridge`, `EndReason`, ...), made only by its
//! domain, so a family keyed by `(CallBridge, EndReason)` cannot be given a tenant or two
//! swapped labels: the compiler says so.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::RwLock;

/// An interned label value: an index into [`LabelTable`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LabelId(pub u32);

/// Every label value ever admitted, interned once. Series keys hold [`LabelId`]s, so the
/// hot path hashes a few integers instead of strings.
#[derive(Default)]
pub struct LabelTable {
    values: RwLock<Vec<Arc<str>>>,
    index: DashMap<Arc<str>, LabelId, ahash::RandomState>,
}

impl LabelTable {
    pub fn intern(&self, s: &str) -> LabelId {
        if let Some(id) = self.index.get(s) {
            return *id;
        }
        let mut values = self.values.write();
        // Re-check under the write lock: another thread may have won.
        if let Some(id) = self.index.get(s) {
            return *id;
        }
        let id = LabelId(values.len() as u32);
        let arc: Arc<str> = Arc::from(s);
        values.push(arc.clone());
        self.index.insert(arc, id);
        id
    }

    /// Read access to all values, for one scrape or snapshot.
    pub fn values(&self) -> parking_lot::RwLockReadGuard<'_, Vec<Arc<str>>> {
        self.values.read()
    }

    pub fn resolve(&self, id: LabelId) -> Arc<str> {
        self.values.read()[id.0 as usize].clone()
    }
}

/// The value every label falls back to when a bound is reached.
pub const OTHER: &str = "other";
/// The call has no tenant (single-tenant deployments).
pub const NONE: &str = "none";
/// The record did not say, or what it refers to was never seen.
pub const UNKNOWN: &str = "unknown";

/// A label: its name, and the interned value it holds.
pub trait Label: Copy + Eq + std::hash::Hash + Send + Sync + 'static {
    const NAME: &'static str;
    fn id(self) -> LabelId;
    /// Only for the domain and for restoring snapshots.
    fn from_id(id: LabelId) -> Self;
}

/// A tuple of labels, the key of a family's series.
pub trait LabelSet: Copy + Send + Sync + 'static {
    /// The label names, in key order.
    const NAMES: &'static [&'static str];
    type Key: Copy + Eq + std::hash::Hash + AsRef<[LabelId]> + AsMut<[LabelId]> + Send + Sync;
    fn key(self) -> Self::Key;
    fn key_from(ids: &[LabelId]) -> Option<Self::Key>;
}

macro_rules! label_sets {
    ($( $n:literal: ($($t:ident $i:tt),*) );* $(;)?) => {$(
        impl<$($t: Label),*> LabelSet for ($($t,)*) {
            const NAMES: &'static [&'static str] = &[$($t::NAME),*];
            type Key = [LabelId; $n];
            #[inline]
            fn key(self) -> Self::Key {
                [$(self.$i.id()),*]
            }
            fn key_from(ids: &[LabelId]) -> Option<Self::Key> {
                ids.try_into().ok()
            }
        }
    )*};
}

impl LabelSet for () {
    const NAMES: &'static [&'static str] = &[];
    type Key = [LabelId; 0];
    fn key(self) -> Self::Key {
        []
    }
    fn key_from(ids: &[LabelId]) -> Option<Self::Key> {
        ids.try_into().ok()
    }
}

label_sets! {
    1: (A 0);
    2: (A 0, B 1);
    3: (A 0, B 1, C 2);
    4: (A 0, B 1, C 2, D 3);
}

/// Bounds on one label's values: at most `cap` distinct ones of at most `max_bytes` each.
#[derive(Clone, Copy, Debug)]
pub struct DomainLimits {
    pub cap: usize,
    pub max_bytes: usize,
}

/// The values one label may take; the rest become `other`, counted by cause.
pub struct Domain<T> {
    cap: usize,
    max_bytes: usize,
    members: DashMap<Box<str>, LabelId, ahash::RandomState>,
    other: LabelId,
    overflow: AtomicU64,
    too_long: AtomicU64,
    _t: PhantomData<T>,
}

impl<T: Label> Domain<T> {
    pub fn new(table: &LabelTable, limits: DomainLimits, known: &[&str]) -> Domain<T> {
        let d = Domain {
            // Known values always fit, so a small cap cannot hide them.
            cap: limits.cap.max(known.len() + 1),
            max_bytes: limits.max_bytes,
            members: DashMap::with_hasher(Default::default()),
            other: table.intern(OTHER),
            overflow: AtomicU64::new(0),
            too_long: AtomicU64::new(0),
            _t: PhantomData,
        };
        for k in known {
            d.members.insert((*k).into(), table.intern(k));
        }
        d
    }

    /// The label for `value`, admitting it if there is room.
    #[inline]
    pub fn get(&self, table: &LabelTable, value: &str) -> T {
        if let Some(id) = self.members.get(value) {
            return T::from_id(*id);
        }
        T::from_id(self.admit(table, value))
    }

    #[cold]
    fn admit(&self, table: &LabelTable, value: &str) -> LabelId {
        if value == OTHER {
            return self.other;
        }
        if value.len() > self.max_bytes {
            self.too_long.fetch_add(1, Ordering::Relaxed);
            return self.other;
        }
        if self.members.len() >= self.cap {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            return self.other;
        }
        *self
            .members
            .entry(value.into())
            .or_insert_with(|| table.intern(value))
    }

    /// The `other` value of this label.
    pub fn other(&self) -> T {
        T::from_id(self.other)
    }
}

/// What every domain shares, object-safe: for the overflow counters and snapshots.
pub trait AnyDomain: Send + Sync {
    fn label(&self) -> &'static str;
    /// Updates that fell back to `other`: (count cap reached, value too long).
    fn overflow(&self) -> [u64; 2];
    fn members(&self) -> Vec<String>;
    /// Re-admits values from a snapshot (beyond the cap if it was lowered since: they
    /// already exist as series).
    fn restore(&self, table: &LabelTable, members: &[String], overflow: [u64; 2]);
}

impl<T: Label> AnyDomain for Domain<T> {
    fn label(&self) -> &'static str {
        T::NAME
    }
    fn overflow(&self) -> [u64; 2] {
        [
            self.overflow.load(Ordering::Relaxed),
            self.too_long.load(Ordering::Relaxed),
        ]
    }
    fn members(&self) -> Vec<String> {
        self.members.iter().map(|m| m.key().to_string()).collect()
    }
    fn restore(&self, table: &LabelTable, members: &[String], overflow: [u64; 2]) {
        for m in members.iter().filter(|m| m.len() <= self.max_bytes) {
            self.members
                .entry(m.as_str().into())
                .or_insert_with(|| table.intern(m));
        }
        self.overflow.store(overflow[0], Ordering::Relaxed);
        self.too_long.store(overflow[1], Ordering::Relaxed);
    }
}

/// Declares the label types and the [`Vocabulary`] holding a domain for each.
///
/// `Type: "name", cap_field, [known values];` — `cap_field` picks the cap from
/// [`crate::metrics::LabelLimits`].
macro_rules! vocabulary {
    ($( $(#[doc = $doc:literal])* $t:ident : $name:literal, $cap:ident, $known:expr; )*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
            pub struct $t(LabelId);
            impl Label for $t {
                const NAME: &'static str = $name;
                #[inline]
                fn id(self) -> LabelId {
                    self.0
                }
                fn from_id(id: LabelId) -> Self {
                    $t(id)
                }
            }
        )*

        /// One domain per label type, sharing one string table.
        pub struct Vocabulary {
            pub table: LabelTable,
            domains: Domains,
        }

        #[allow(non_snake_case)]
        struct Domains {
            $( $t: Domain<$t>, )*
        }

        impl Vocabulary {
            pub fn new(limits: &crate::metrics::LabelLimits) -> Vocabulary {
                let table = LabelTable::default();
                let domains = Domains {
                    $( $t: Domain::new(
                        &table,
                        DomainLimits { cap: limits.$cap, max_bytes: limits.value_bytes },
                        &$known,
                    ), )*
                };
                Vocabulary { table, domains }
            }

            /// Every domain, in declaration order (a label name may appear twice: several
            /// label types share the name `reason`).
            pub fn all(&self) -> Vec<(&'static str, &dyn AnyDomain)> {
                vec![ $( (stringify!($t), &self.domains.$t as &dyn AnyDomain), )* ]
            }
        }

        /// The label for a value: `vocab.get::<Tenant>("acme")`.
        pub trait InDomain: Label {
            fn domain(v: &Vocabulary) -> &Domain<Self>;
        }
        $(
            impl InDomain for $t {
                #[inline]
                fn domain(v: &Vocabulary) -> &Domain<Self> {
                    &v.domains.$t
                }
            }
        )*
    };
}

impl Vocabulary {
    /// The label of type `T` for `value` (`other` beyond its domain's bounds).
    #[inline]
    pub fn get<T: InDomain>(&self, value: &str) -> T {
        T::domain(self).get(&self.table, value)
    }

    /// The `other` label of type `T`.
    pub fn other<T: InDomain>(&self) -> T {
        T::domain(self).other()
    }
}

/// The known values of each label, so that `metrics` needs nothing from the wire formats;
/// `tests/vocabulary.rs` checks them against the wire formats' own lists.
pub mod known {
    pub const CALL_TYPES: &[&str] = &["coSpace", "adHoc", "lyncConferencing", "forwarding"];
    pub const LEG_TYPES: &[&str] = &["sip", "acano"];
    pub const LEG_DIRECTIONS: &[&str] = &["incoming", "outgoing"];
    pub const LEG_SUB_TYPES: &[&str] = &["lync", "avaya", "lyncdistribution", "webApp"];
    pub const END_REASONS: &[&str] = &[
        "apiInitiatedTeardown",
        "callDeactivated",
        "callEnded",
        "callMoved",
        "clientInitiatedTeardown",
        "confirmationTimeOut",
        "dnsFailure",
        "encryptionRequired",
        "error",
        "incorrectPasscode",
        "ivrTimeout",
        "ivrUnknownCall",
        "localTeardown",
        "participantLimitReached",
        "remoteBusy",
        "remoteRejected",
        "remoteTeardown",
        "ringingTimeout",
        "tenantParticipantLimitReached",
        "timeout",
        "unknownDestination",
    ];
    pub const RECORD_TYPES: &[&str] = &[
        "callStart",
        "callEnd",
        "callLegStart",
        "callLegUpdate",
        "callLegEnd",
        "recordingStart",
        "recordingEnd",
        "streamingStart",
        "streamingEnd",
    ];
    pub const AUDIO_CODECS: &[&str] = &[
        "g711u", "g711a", "g722", "g728", "g729", "g722_1", "g722_1c", "aac", "speexNb", "speexWb",
        "speexUwb", "isacWb", "isacSwb", "opus",
    ];
    pub const VIDEO_CODECS: &[&str] = &[
        "h261", "h263", "h263+", "h264", "h264Lync", "vp8", "rtVideo",
    ];
    pub const ALARMS: &[&str] = &["packetLoss", "excessiveJitter", "highRoundTripTime"];
    pub const MEDIA: &[&str] = &["audio", "video"];
    pub const MEDIA_DIRECTIONS: &[&str] = &["rx", "tx"];
    pub const ENCRYPTION: &[&str] = &["encrypted", "unencrypted", "both", "none"];
    pub const MEDIA_USAGES: &[&str] = &[
        "main_video_viewer",
        "main_video_contributor",
        "presentation_viewer",
        "presentation_contributor",
        "multistream_video",
    ];
    pub const MOS_UNAVAILABLE: &[&str] = &["no_audio", "no_packet_statistics", "invalid_values"];
    pub const INVALID_RECORD: &[&str] = &[
        "missing_correlator_index",
        "missing_type",
        "missing_object",
        "missing_id",
        "bad_number",
        "bad_boolean",
        "bad_time",
        "out_of_range",
        "absurd_index",
    ];
    pub const OBJECT_KINDS: &[&str] = &["call", "call_leg", "recording", "streaming", "session"];
    pub const EVICT_REASONS: &[&str] = &[
        "max_age",
        "max_objects",
        "restart",
        "call_ended",
        "max_sessions",
    ];
    pub const CONNECTION_REJECTS: &[&str] = &["max_connections", "tls_handshake"];
    /// The senders, as the `source` label names them.
    pub const SOURCES: &[&str] = &["cms", "freeswitch", "kamailio"];
    /// Why a dedupe memory forgot an entry.
    pub const FORGET_REASONS: &[&str] = &["max_age", "max_entries"];
    /// FreeSWITCH's hangup causes and their Q.850 codes (`switch_channel.c` CAUSE_CHART,
    /// `switch_types.h`); `hangup_cause_q850` is the code, or 16 for causes above 127.
    pub const HANGUP_CAUSES: &[(&str, u16)] = &[
        ("NONE", 0),
        ("UNALLOCATED_NUMBER", 1),
        ("NO_ROUTE_TRANSIT_NET", 2),
        ("NO_ROUTE_DESTINATION", 3),
        ("CHANNEL_UNACCEPTABLE", 6),
        ("CALL_AWARDED_DELIVERED", 7),
        ("NORMAL_CLEARING", 16),
        ("USER_BUSY", 17),
        ("NO_USER_RESPONSE", 18),
        ("NO_ANSWER", 19),
        ("SUBSCRIBER_ABSENT", 20),
        ("CALL_REJECTED", 21),
        ("NUMBER_CHANGED", 22),
        ("REDIRECTION_TO_NEW_DESTINATION", 23),
        ("EXCHANGE_ROUTING_ERROR", 25),
        ("DESTINATION_OUT_OF_ORDER", 27),
        ("INVALID_NUMBER_FORMAT", 28),
        ("FACILITY_REJECTED", 29),
        ("RESPONSE_TO_STATUS_ENQUIRY", 30),
        ("NORMAL_UNSPECIFIED", 31),
        ("NORMAL_CIRCUIT_CONGESTION", 34),
        ("NETWORK_OUT_OF_ORDER", 38),
        ("NORMAL_TEMPORARY_FAILURE", 41),
        ("SWITCH_CONGESTION", 42),
        ("ACCESS_INFO_DISCARDED", 43),
        ("REQUESTED_CHAN_UNAVAIL", 44),
        ("PRE_EMPTED", 45),
        ("FACILITY_NOT_SUBSCRIBED", 50),
        ("OUTGOING_CALL_BARRED", 52),
        ("INCOMING_CALL_BARRED", 54),
        ("BEARERCAPABILITY_NOTAUTH", 57),
        ("BEARERCAPABILITY_NOTAVAIL", 58),
        ("SERVICE_UNAVAILABLE", 63),
        ("BEARERCAPABILITY_NOTIMPL", 65),
        ("CHAN_NOT_IMPLEMENTED", 66),
        ("FACILITY_NOT_IMPLEMENTED", 69),
        ("SERVICE_NOT_IMPLEMENTED", 79),
        ("INVALID_CALL_REFERENCE", 81),
        ("INCOMPATIBLE_DESTINATION", 88),
        ("INVALID_MSG_UNSPECIFIED", 95),
        ("MANDATORY_IE_MISSING", 96),
        ("MESSAGE_TYPE_NONEXIST", 97),
        ("WRONG_MESSAGE", 98),
        ("IE_NONEXIST", 99),
        ("INVALID_IE_CONTENTS", 100),
        ("WRONG_CALL_STATE", 101),
        ("RECOVERY_ON_TIMER_EXPIRE", 102),
        ("MANDATORY_IE_LENGTH_ERROR", 103),
        ("PROTOCOL_ERROR", 111),
        ("INTERWORKING", 127),
        ("SUCCESS", 142),
        ("ORIGINATOR_CANCEL", 487),
        ("CRASH", 700),
        ("SYSTEM_SHUTDOWN", 701),
        ("LOSE_RACE", 702),
        ("MANAGER_REQUEST", 703),
        ("BLIND_TRANSFER", 800),
        ("ATTENDED_TRANSFER", 801),
        ("ALLOTTED_TIMEOUT", 802),
        ("USER_CHALLENGE", 803),
        ("MEDIA_TIMEOUT", 804),
        ("PICKED_OFF", 805),
        ("USER_NOT_REGISTERED", 806),
        ("PROGRESS_TIMEOUT", 807),
        ("INVALID_GATEWAY", 808),
        ("GATEWAY_DOWN", 809),
        ("INVALID_URL", 810),
        ("INVALID_PROFILE", 811),
        ("NO_PICKUP", 812),
        ("SRTP_READ_ERROR", 813),
        ("BOWOUT", 814),
        ("BUSY_EVERYWHERE", 815),
        ("DECLINE", 816),
        ("DOES_NOT_EXIST_ANYWHERE", 817),
        ("NOT_ACCEPTABLE", 818),
        ("UNWANTED", 819),
        ("NO_IDENTITY", 820),
        ("BAD_IDENTITY_INFO", 821),
        ("UNSUPPORTED_CERTIFICATE", 822),
        ("INVALID_IDENTITY", 823),
        ("STALE_DATE", 824),
        ("REJECT_ALL", 825),
    ];
    /// FreeSWITCH codec names (`read_codec`, `write_codec`) common enough to always fit.
    pub const FREESWITCH_CODECS: &[&str] = &[
        "PCMU", "PCMA", "G722", "G729", "G7221", "G726-32", "opus", "GSM", "iLBC", "AMR", "AMR-WB",
        "speex", "SILK", "L16", "VP8", "VP9", "H264", "H263",
    ];
    pub const LEG_SIDES: &[&str] = &["a", "b"];
    pub const CALL_DIRECTIONS: &[&str] = &["inbound", "outbound"];
    pub const FREESWITCH_MOS_UNAVAILABLE: &[&str] =
        &["no_call_stats", "no_media", "invalid_values"];
    /// `freeswitch::INVALID_REASONS` (checked by `tests/catalogue.rs`).
    pub const FREESWITCH_INVALID: &[&str] = &[
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
    pub const RTPENGINE_EVENTS: &[&str] = &["bye", "cancel", "failure"];
    pub const RTPENGINE_MOS_UNAVAILABLE: &[&str] =
        &["not_measured", "not_answered", "invalid_values"];
    /// `rtpengine::INVALID_REASONS` (checked by `tests/catalogue.rs`).
    pub const RTPENGINE_INVALID: &[&str] = &[
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
    pub const CODEC_PARAMETERS: &[&str] = &["ie", "bpl"];
    pub const BOOLEANS: &[&str] = &["true", "false"];
}

/// `known` and `unknown`, for labels a record may leave out.
fn or_unknown<S: AsRef<str>>(known: &[S]) -> Vec<&str> {
    let mut v: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
    v.push(UNKNOWN);
    v
}

vocabulary! {
    /// The Call Bridge a record came from (GUID, URI parameter or address, or its name).
    CallBridge: "call_bridge", call_bridge, [];
    /// A call's tenant (GUID or name), `none`, or `unknown`.
    Tenant: "tenant", tenant, [NONE, UNKNOWN];
    CallType: "call_type", enumerated, or_unknown(known::CALL_TYPES);
    LegType: "leg_type", enumerated, or_unknown(known::LEG_TYPES);
    /// `incoming` or `outgoing` (a leg's direction).
    LegDirection: "direction", enumerated, or_unknown(known::LEG_DIRECTIONS);
    /// callLegStart `subType`, `none` when absent (a plain SIP or CMS app leg).
    LegSubType: "sub_type", enumerated, [known::LEG_SUB_TYPES, &[NONE]].concat();
    /// callLegStart `guestConnection`: `true`, `false`, `unknown`.
    GuestConnection: "guest_connection", enumerated, or_unknown(known::BOOLEANS);
    /// callLegEnd `reason`.
    EndReason: "reason", enumerated, or_unknown(known::END_REASONS);
    RemoteTeardown: "remote_teardown", enumerated, or_unknown(known::BOOLEANS);
    RecordType: "record_type", enumerated, known::RECORD_TYPES;
    ObjectKind: "kind", enumerated, known::OBJECT_KINDS;
    EvictReason: "reason", enumerated, known::EVICT_REASONS;
    InvalidReason: "reason", enumerated, known::INVALID_RECORD;
    /// Why a whole batch was refused (the HTTP edge and the wire formats name them).
    RejectReason: "reason", enumerated, [];
    Codec: "codec", enumerated, or_unknown(&[known::AUDIO_CODECS, known::VIDEO_CODECS].concat());
    Alarm: "alarm", enumerated, or_unknown(known::ALARMS);
    Media: "media", enumerated, known::MEDIA;
    /// `rx` (received by the Meeting Server) or `tx` (sent by it).
    MediaDirection: "direction", enumerated, known::MEDIA_DIRECTIONS;
    Encryption: "encryption", enumerated, known::ENCRYPTION;
    MediaUsage: "usage", enumerated, known::MEDIA_USAGES;
    MosUnavailable: "reason", enumerated, known::MOS_UNAVAILABLE;
    CodecParameter: "parameter", enumerated, known::CODEC_PARAMETERS;
    ConnectionReject: "reason", enumerated, known::CONNECTION_REJECTS;
    /// Which sender a request came to: `cms`, `freeswitch`, `kamailio`.
    Source: "source", enumerated, known::SOURCES;
    ForgetReason: "reason", enumerated, known::FORGET_REASONS;
    /// A FreeSWITCH instance: `switchname`, else `?switch=` in its URL, else its address.
    Switch: "switch", switch, [];
    /// A FreeSWITCH leg's `domain_name`, else its `accountcode`, else `none`.
    FsDomain: "domain", domain, [NONE];
    /// `a` or `b`.
    LegSide: "leg", enumerated, known::LEG_SIDES;
    /// A FreeSWITCH channel's direction: `inbound`, `outbound`, `unknown`.
    CallDirection: "direction", enumerated, or_unknown(known::CALL_DIRECTIONS);
    HangupCause: "hangup_cause", enumerated, or_unknown(&known::HANGUP_CAUSES.iter().map(|c| c.0).collect::<Vec<_>>());
    /// `hangup_cause_q850`, 0 to 127.
    Q850: "q850", enumerated, or_unknown(&q850_codes());
    FsCodec: "codec", enumerated, or_unknown(known::FREESWITCH_CODECS);
    FsMosUnavailable: "reason", enumerated, known::FREESWITCH_MOS_UNAVAILABLE;
    FsInvalidReason: "reason", enumerated, known::FREESWITCH_INVALID;
    /// A Kamailio/rtpengine instance: the report's `node`, else `?node=`, else its address.
    Node: "node", node, [];
    /// The report's `tenant` (e.g. the SIP domain), else `none`.
    RtpTenant: "tenant", domain, [NONE];
    /// How the call ended, as the Kamailio config says: `bye`, `cancel`, `failure`, `unknown`.
    RtpEvent: "event", enumerated, or_unknown(known::RTPENGINE_EVENTS);
    RtpMosUnavailable: "reason", enumerated, known::RTPENGINE_MOS_UNAVAILABLE;
    RtpInvalidReason: "reason", enumerated, known::RTPENGINE_INVALID;
    /// A route (`/cdr`, `/metrics`, ...) or `other`.
    HttpPath: "path", enumerated, [];
    /// An HTTP status code.
    HttpCode: "code", enumerated, [];
}

/// The distinct Q.850 codes of [`known::HANGUP_CAUSES`] as label values.
fn q850_codes() -> Vec<String> {
    let mut v: Vec<u16> = known::HANGUP_CAUSES
        .iter()
        .map(|c| c.1)
        .filter(|c| *c <= 127)
        .collect();
    v.dedup();
    v.iter().map(u16::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::LabelLimits;

    fn limits(tenant: usize, value_bytes: usize) -> LabelLimits {
        LabelLimits {
            tenant,
            value_bytes,
            ..LabelLimits::default()
        }
    }

    #[test]
    fn cap_overflows_to_other_and_counts() {
        let v = Vocabulary::new(&limits(4, 64)); // none, unknown + 2 more
        let a: Tenant = v.get("a");
        let b: Tenant = v.get("b");
        let c: Tenant = v.get("c");
        assert_ne!(a, b);
        assert_eq!(c, v.other::<Tenant>());
        assert_eq!(v.get::<Tenant>("a"), a, "admitted values stay");
        let d = &v.all().into_iter().find(|d| d.0 == "Tenant").unwrap().1;
        assert_eq!(d.overflow(), [1, 0]);
    }

    #[test]
    fn known_values_always_fit() {
        let v = Vocabulary::new(&LabelLimits {
            enumerated: 1,
            ..LabelLimits::default()
        });
        for r in known::END_REASONS {
            assert_ne!(v.get::<EndReason>(r), v.other::<EndReason>(), "{r}");
        }
        assert_ne!(v.get::<EndReason>("newReason"), v.other::<EndReason>());
        assert_eq!(v.get::<EndReason>("newer"), v.other::<EndReason>());
    }

    #[test]
    fn long_values_become_other_and_are_counted_apart() {
        let v = Vocabulary::new(&limits(100, 16));
        for i in 0..50 {
            let long = format!("{i}{}", "x".repeat(100_000));
            assert_eq!(v.get::<Tenant>(&long), v.other::<Tenant>());
        }
        let d = &v.all().into_iter().find(|d| d.0 == "Tenant").unwrap().1;
        assert_eq!(d.overflow(), [0, 50]);
        assert!(
            v.table.values().iter().all(|x| x.len() < 1_000),
            "no long value was interned"
        );
    }
}
