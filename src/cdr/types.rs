//! Typed CMS CDR records: ids, enumerations and the nine record bodies.

use std::borrow::Cow;
use std::fmt;

/// Free text from the body, borrowed where no unescaping was needed.
pub type Text<'a> = Cow<'a, str>;

/// A 128-bit object id. CMS ids are GUIDs; anything else is hashed so that
/// odd ids from other senders still correlate (collisions are negligible).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub u128);

impl Id {
    /// Parses a trimmed, non-empty id. Returns `None` for an empty string.
    pub fn parse(s: &str) -> Option<Id> {
        let s = s.trim_ascii();
        if s.is_empty() {
            return None;
        }
        match uuid::Uuid::try_parse(s) {
            Ok(u) => Some(Id(u.as_u128())),
            Err(_) => Some(Id(xxhash_rust::xxh3::xxh3_128(s.as_bytes()))),
        }
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&uuid::Uuid::from_u128(self.0).hyphenated(), f)
    }
}

macro_rules! id_newtype {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
        pub struct $name(pub Id);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { fmt::Display::fmt(&self.0, f) }
        }
    )*};
}

id_newtype!(
    /// The `session` of a `<records>` batch: new at every Call Bridge restart.
    SessionId,
    /// A call (`<call id>`).
    CallId,
    /// A call leg (`<callLeg id>`).
    CallLegId,
    /// A recording (`<recording id>`).
    RecordingId,
    /// A streaming (`<streaming id>`).
    StreamingId,
    /// A coSpace.
    CoSpaceId,
    /// The callCorrelator shared by the parts of a distributed call.
    CallCorrelator,
);

/// Declares an enumeration of CMS spellings with an `Other` fallback for values
/// a newer Call Bridge may send.
macro_rules! cms_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, Debug)]
        pub enum $name {
            $($variant,)*
            /// A value this version does not know, kept verbatim.
            Other(String),
        }
        impl $name {
            /// Every known value, in the guide's order.
            pub const KNOWN: &'static [&'static str] = &[$($s),*];
            /// Maps the CMS spelling (already trimmed) to the enum.
            pub fn parse(s: &str) -> Self {
                match s {
                    $($s => $name::$variant,)*
                    other => $name::Other(other.to_owned()),
                }
            }
            /// The CMS spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $s,)*
                    $name::Other(s) => s,
                }
            }
        }
    };
}

cms_enum!(
    /// The `type` attribute of a `<record>`.
    RecordType {
        CallStart = "callStart",
        CallEnd = "callEnd",
        CallLegStart = "callLegStart",
        CallLegUpdate = "callLegUpdate",
        CallLegEnd = "callLegEnd",
        RecordingStart = "recordingStart",
        RecordingEnd = "recordingEnd",
        StreamingStart = "streamingStart",
        StreamingEnd = "streamingEnd",
    }
);

cms_enum!(
    /// callStart `callType`.
    CallType { CoSpace = "coSpace", AdHoc = "adHoc", LyncConferencing = "lyncConferencing", Forwarding = "forwarding" }
);
cms_enum!(
    /// callLegStart `type`.
    LegType { Sip = "sip", Acano = "acano" }
);
cms_enum!(
    /// callLegStart `subType`.
    LegSubType { Lync = "lync", Avaya = "avaya", LyncDistribution = "lyncdistribution", WebApp = "webApp" }
);
cms_enum!(
    /// callLegStart `lyncSubType`.
    LyncSubType { AudioVideo = "audioVideo", ApplicationSharing = "applicationSharing", InstantMessaging = "instantMessaging" }
);
cms_enum!(
    /// callLegStart `direction`.
    Direction { Incoming = "incoming", Outgoing = "outgoing" }
);
cms_enum!(
    /// `confirmationStatus` on leg records.
    ConfirmationStatus { Required = "required", NotRequired = "notRequired", Confirmed = "confirmed", Rejected = "rejected" }
);
cms_enum!(
    /// callLegUpdate `state` (absent means not yet connected).
    LegState { Connected = "connected" }
);
cms_enum!(
    /// callLegEnd `reason` (guide chapter 5).
    EndReason {
        ApiInitiatedTeardown = "apiInitiatedTeardown",
        CallDeactivated = "callDeactivated",
        CallEnded = "callEnded",
        CallMoved = "callMoved",
        ClientInitiatedTeardown = "clientInitiatedTeardown",
        ConfirmationTimeOut = "confirmationTimeOut",
        DnsFailure = "dnsFailure",
        EncryptionRequired = "encryptionRequired",
        Error = "error",
        IncorrectPasscode = "incorrectPasscode",
        IvrTimeout = "ivrTimeout",
        IvrUnknownCall = "ivrUnknownCall",
        LocalTeardown = "localTeardown",
        ParticipantLimitReached = "participantLimitReached",
        RemoteBusy = "remoteBusy",
        RemoteRejected = "remoteRejected",
        RemoteTeardown = "remoteTeardown",
        RingingTimeout = "ringingTimeout",
        TenantParticipantLimitReached = "tenantParticipantLimitReached",
        Timeout = "timeout",
        UnknownDestination = "unknownDestination",
    }
);
cms_enum!(
    /// callLegEnd `alarm` `type`.
    AlarmType { PacketLoss = "packetLoss", ExcessiveJitter = "excessiveJitter", HighRoundTripTime = "highRoundTripTime" }
);
cms_enum!(
    /// Audio codecs of rxAudio/txAudio.
    AudioCodec {
        G711u = "g711u", G711a = "g711a", G722 = "g722", G728 = "g728", G729 = "g729",
        G722_1 = "g722_1", G722_1c = "g722_1c", Aac = "aac", SpeexNb = "speexNb",
        SpeexWb = "speexWb", SpeexUwb = "speexUwb", IsacWb = "isacWb", IsacSwb = "isacSwb",
        Opus = "opus",
    }
);
cms_enum!(
    /// Video codecs of rxVideo/txVideo.
    VideoCodec { H261 = "h261", H263 = "h263", H263Plus = "h263+", H264 = "h264", H264Lync = "h264Lync", Vp8 = "vp8", RtVideo = "rtVideo" }
);

/// A record's `time` attribute, as seconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
pub struct Timestamp(pub f64);

/// The attributes of a `<record>` element.
#[derive(Clone, PartialEq, Debug)]
pub struct Header {
    pub record_type: RecordType,
    pub time: Option<Timestamp>,
    /// `None` only when absent or unreadable; such a record is invalid.
    pub correlator_index: Option<u64>,
    /// Deprecated by Cisco; kept for completeness.
    pub record_index: Option<u64>,
    /// `numPreceedingRecordsMissing` (sic).
    pub num_preceding_missing: Option<u64>,
}

/// One `<record>`: its header and either a typed body or why it is invalid.
#[derive(Clone, PartialEq, Debug)]
pub struct Entry<'a> {
    pub header: Header,
    pub body: Result<Record<'a>, Invalid>,
}

/// What a record's object element was, kept even when a field is bad so that an
/// invalid end record can still end its object.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ObjectRef {
    Call(CallId),
    CallLeg(CallLegId),
    Recording(RecordingId),
    Streaming(StreamingId),
}

/// Why a well-formed record could not be used.
#[derive(Clone, PartialEq, Debug)]
pub struct Invalid {
    pub reason: InvalidReason,
    /// The field at fault, for the log line.
    pub field: &'static str,
    pub object: Option<ObjectRef>,
}

/// Reasons a record is invalid; `as_label` gives the metric label value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InvalidReason {
    MissingCorrelatorIndex,
    MissingType,
    MissingObject,
    MissingId,
    BadNumber,
    BadBoolean,
    BadTime,
    /// A number beyond what CMS can send ([`crate::cdr::MAX_NUMBER`]).
    OutOfRange,
    /// A correlatorIndex jump or `numPreceedingRecordsMissing` no Call Bridge can send.
    AbsurdIndex,
}

impl InvalidReason {
    pub const ALL: [InvalidReason; 9] = [
        InvalidReason::MissingCorrelatorIndex,
        InvalidReason::MissingType,
        InvalidReason::MissingObject,
        InvalidReason::MissingId,
        InvalidReason::BadNumber,
        InvalidReason::BadBoolean,
        InvalidReason::BadTime,
        InvalidReason::OutOfRange,
        InvalidReason::AbsurdIndex,
    ];

    pub fn as_label(self) -> &'static str {
        match self {
            InvalidReason::MissingCorrelatorIndex => "missing_correlator_index",
            InvalidReason::MissingType => "missing_type",
            InvalidReason::MissingObject => "missing_object",
            InvalidReason::MissingId => "missing_id",
            InvalidReason::BadNumber => "bad_number",
            InvalidReason::BadBoolean => "bad_boolean",
            InvalidReason::BadTime => "bad_time",
            InvalidReason::OutOfRange => "out_of_range",
            InvalidReason::AbsurdIndex => "absurd_index",
        }
    }
}

/// A parsed POST body.
#[derive(Clone, PartialEq, Debug)]
pub struct Batch<'a> {
    pub session: SessionId,
    /// The `callBridge` attribute: present only on clustered Call Bridges.
    pub call_bridge: Option<Text<'a>>,
    pub records: Vec<Entry<'a>>,
}

/// A typed record body.
#[derive(Clone, PartialEq, Debug)]
pub enum Record<'a> {
    CallStart(CallStart<'a>),
    CallEnd(CallEnd),
    CallLegStart(CallLegStart<'a>),
    CallLegUpdate(CallLegUpdate<'a>),
    CallLegEnd(Box<CallLegEnd<'a>>),
    RecordingStart(RecordingStart<'a>),
    RecordingEnd(RecordingEnd),
    StreamingStart(StreamingStart<'a>),
    StreamingEnd(StreamingEnd),
    /// A record type this version does not know: counted and skipped.
    Unknown,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct CallStart<'a> {
    pub id: CallId,
    pub name: Option<Text<'a>>,
    pub co_space: Option<CoSpaceId>,
    pub owner_name: Option<Text<'a>>,
    /// The tenant GUID as sent (multi-tenant deployments only).
    pub tenant: Option<Text<'a>>,
    pub cdr_tag: Option<Text<'a>>,
    pub call_type: Option<CallType>,
    pub call_correlator: Option<CallCorrelator>,
    pub co_space_meta_data_configured: Option<bool>,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct CallEnd {
    pub id: CallId,
    pub call_legs_completed: Option<u64>,
    pub call_legs_max_active: Option<u64>,
    pub duration_seconds: Option<f64>,
    pub endpoint_recorded: Option<bool>,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct CallLegStart<'a> {
    pub id: CallLegId,
    pub display_name: Option<Text<'a>>,
    pub local_address: Option<Text<'a>>,
    pub remote_address: Option<Text<'a>>,
    pub remote_party: Option<Text<'a>>,
    pub cdr_tag: Option<Text<'a>>,
    pub guest_connection: Option<bool>,
    pub recording: Option<bool>,
    pub streaming: Option<bool>,
    pub leg_type: Option<LegType>,
    pub sub_type: Option<LegSubType>,
    pub lync_sub_type: Option<LyncSubType>,
    pub direction: Option<Direction>,
    pub call: Option<CallId>,
    pub owner_id: Option<Text<'a>>,
    pub sip_call_id: Option<Text<'a>>,
    pub group_id: Option<Text<'a>>,
    pub replaces_sip_call_id: Option<Text<'a>>,
    pub can_move: Option<bool>,
    pub moved_call_leg: Option<CallLegId>,
    pub moved_call_leg_call_bridge: Option<Text<'a>>,
    pub confirmation_status: Option<ConfirmationStatus>,
}

/// callLegUpdate `call`: a call id, or the empty `ivr` indication.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CallRef {
    Call(CallId),
    Ivr,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct CallLegUpdate<'a> {
    pub id: CallLegId,
    pub cdr_tag: Option<Text<'a>>,
    pub state: Option<LegState>,
    pub deactivated: Option<bool>,
    pub remote_address: Option<Text<'a>>,
    pub call: Option<CallRef>,
    pub owner_id: Option<Text<'a>>,
    pub sip_call_id: Option<Text<'a>>,
    pub group_id: Option<Text<'a>>,
    pub display_name: Option<Text<'a>>,
    pub can_move: Option<bool>,
    pub confirmation_status: Option<ConfirmationStatus>,
    pub call_move: Option<Text<'a>>,
}

/// `mediaUsagePercentages`: each a percentage of the leg's lifetime.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct MediaUsage {
    pub main_video_viewer: Option<f64>,
    pub main_video_contributor: Option<f64>,
    pub presentation_viewer: Option<f64>,
    pub presentation_contributor: Option<f64>,
    pub multistream_video: Option<f64>,
}

#[derive(Clone, PartialEq, Debug)]
pub struct Alarm {
    pub alarm_type: Option<AlarmType>,
    pub duration_percentage: Option<f64>,
}

/// One side of RFC 3611 burst/gap loss: seconds in the state, percent lost in it.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct LossPeriod {
    pub duration: Option<f64>,
    pub density: Option<f64>,
}

#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct PacketStatistics {
    pub packet_loss_bursts: LossPeriod,
    pub packet_gap: LossPeriod,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct AudioStream {
    pub codec: Option<AudioCodec>,
    pub packet_statistics: Option<PacketStatistics>,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct VideoStream {
    pub codec: Option<VideoCodec>,
    pub max_size_width: Option<u64>,
    pub max_size_height: Option<u64>,
    pub packet_statistics: Option<PacketStatistics>,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct CallLegEnd<'a> {
    pub id: CallLegId,
    pub cdr_tag: Option<Text<'a>>,
    pub reason: Option<EndReason>,
    pub remote_teardown: Option<bool>,
    pub encrypted_media: Option<bool>,
    pub unencrypted_media: Option<bool>,
    pub duration_seconds: Option<f64>,
    pub activated_duration: Option<f64>,
    pub media_usage: MediaUsage,
    pub max_screens: Option<u64>,
    pub alarms: Vec<Alarm>,
    pub rx_audio: Option<AudioStream>,
    pub tx_audio: Option<AudioStream>,
    pub rx_video: Option<VideoStream>,
    pub tx_video: Option<VideoStream>,
    pub owner_id: Option<Text<'a>>,
    pub sip_call_id: Option<Text<'a>>,
    pub confirmation_status: Option<ConfirmationStatus>,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct RecordingStart<'a> {
    pub id: RecordingId,
    pub path: Option<Text<'a>>,
    pub recorder_uri: Option<Text<'a>>,
    pub call: Option<CallId>,
    pub call_leg: Option<CallLegId>,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct RecordingEnd {
    pub id: RecordingId,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct StreamingStart<'a> {
    pub id: StreamingId,
    pub streamer_uri: Option<Text<'a>>,
    pub call: Option<CallId>,
    pub call_leg: Option<CallLegId>,
}

#[derive(Clone, PartialEq, Debug, Default)]
pub struct StreamingEnd {
    pub id: StreamingId,
}
