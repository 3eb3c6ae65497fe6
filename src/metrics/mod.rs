//! Every metric family declared once ([`catalogue`]), the label vocabulary ([`vocab`]),
//! concurrent storage ([`family`]) and `/metrics` exposition ([`encode`]).

pub mod catalogue;
pub mod encode;
pub mod family;
mod process;
pub mod vocab;

pub use catalogue::{FamilyOptions, Metrics, MetricsSnapshot, ShapeError};
pub use encode::{accepts_gzip, Exposition, Format, Scraped, Source, Value};
pub use family::{
    AtomicF64, Cell, CellValue, Counter, Desc, Family, FloatCounter, FloatGauge, Gauge, Histogram,
    SeriesValue, StoredFamily, Type,
};
pub use process::ProcessSource;
pub use vocab::{Label, LabelId, LabelTable, Vocabulary, NONE, OTHER, UNKNOWN};

/// Caps on label values and series (the rest become `other`, counted).
#[derive(Clone, Debug)]
pub struct LabelLimits {
    pub call_bridge: usize,
    pub tenant: usize,
    /// FreeSWITCH instances (`switch`).
    pub switch: usize,
    /// Kamailio/rtpengine instances (`node`).
    pub node: usize,
    /// FreeSWITCH `domain` and rtpengine `tenant`, each.
    pub domain: usize,
    /// Every enumerated label (reason, codec, record type, ...): known values always fit.
    pub enumerated: usize,
    /// Longest value of any label, in bytes.
    pub value_bytes: usize,
    /// Series in all stored families; beyond it new label combinations go to `other`.
    pub max_series: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits {
            call_bridge: 256,
            tenant: 2000,
            switch: 256,
            node: 256,
            domain: 2000,
            enumerated: 64,
            value_bytes: 128,
            max_series: 150_000,
        }
    }
}

/// How much per-tenant detail is exposed (`labels.tenant_detail`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TenantDetail {
    /// Calls, legs, MOS, alarms per tenant: about 25 series a tenant.
    #[default]
    Compact,
    /// Also end reasons, packet loss and durations per tenant: about 90 a tenant.
    Full,
}
