//! MOS estimation as fixed by shared/spec/mos-model.md: E-model and codec impairment table
//! for CMS burst/gap statistics, and the simplified latency/jitter/loss formula. Pure functions.

use serde::{Deserialize, Serialize};

/// G.107 R with all default parameters and advantage factor A = 0.
const R_MAX: f64 = 93.2;
/// Ie_eff's ceiling as loss grows; Ie must stay below it for loss to make things worse.
const IE_CEILING: f64 = 95.0;

/// Narrowband impairment of a codec: equipment impairment factor `ie` and packet-loss
/// robustness factor `bpl` (ITU-T G.113 Appendix I).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CodecImpairment {
    pub ie: f64,
    pub bpl: f64,
}

impl CodecImpairment {
    /// G.711 with packet-loss concealment; also the score of codecs with no narrowband value.
    const G711_PLC: Self = Self { ie: 0.0, bpl: 25.1 };
    /// G.729A + VAD.
    const G729A: Self = Self {
        ie: 11.0,
        bpl: 19.0,
    };
    /// G.728: Ie from G.113; no published Bpl, so G.729A's is assumed.
    const G728: Self = Self { ie: 7.0, bpl: 19.0 };

    fn ie_valid(self) -> bool {
        (0.0..IE_CEILING).contains(&self.ie)
    }

    fn bpl_valid(self) -> bool {
        self.bpl.is_finite() && self.bpl > 0.0
    }
}

/// The audio codec names CMS writes in `rxAudio/codec`.
const CMS_AUDIO_CODECS: [&str; 14] = [
    "g711u", "g711a", "g722", "g728", "g729", "g722_1", "g722_1c", "aac", "speexNb", "speexWb",
    "speexUwb", "isacWb", "isacSwb", "opus",
];

fn builtin_impairment(codec: &str) -> CodecImpairment {
    match codec {
        "g729" => CodecImpairment::G729A,
        "g728" => CodecImpairment::G728,
        // g711u/g711a, and every wideband or unknown codec: scored on the narrowband scale
        // as "no worse than G.711 with PLC" so one histogram never mixes scales.
        _ => CodecImpairment::G711_PLC,
    }
}

/// Invalid codec override in configuration.
#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("codec override {codec:?}: ie must be a finite number in [0, 95), got {value}")]
    InvalidIe { codec: String, value: f64 },
    #[error("codec override {codec:?}: bpl must be a finite number > 0, got {value}")]
    InvalidBpl { codec: String, value: f64 },
    #[error(
        "codec override {codec:?}: CMS codec names are case-sensitive; did you mean {expected:?}?"
    )]
    CodecNameCase {
        codec: String,
        expected: &'static str,
    },
    #[error("codec override with an empty codec name")]
    EmptyCodecName,
}

/// Codec impairments in force: the defaults of mos-model.md plus configured overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodecTable {
    // A handful of entries at most: a linear scan beats hashing and never allocates.
    overrides: Vec<(String, CodecImpairment)>,
}

impl CodecTable {
    /// Value used for a codec that is neither a known CMS codec nor overridden.
    pub const FALLBACK: CodecImpairment = CodecImpairment::G711_PLC;

    /// Defaults plus `overrides`; a later entry for the same codec replaces an earlier one.
    pub fn with_overrides(
        overrides: impl IntoIterator<Item = (String, CodecImpairment)>,
    ) -> Result<Self, QualityError> {
        let mut table = Self::default();
        for (codec, imp) in overrides {
            if codec.is_empty() {
                return Err(QualityError::EmptyCodecName);
            }
            // "G729" would silently never match what CMS sends; refuse it at startup instead.
            if let Some(&expected) = CMS_AUDIO_CODECS
                .iter()
                .find(|known| known.eq_ignore_ascii_case(&codec) && **known != codec)
            {
                return Err(QualityError::CodecNameCase { codec, expected });
            }
            if !imp.ie_valid() {
                return Err(QualityError::InvalidIe {
                    codec,
                    value: imp.ie,
                });
            }
            if !imp.bpl_valid() {
                return Err(QualityError::InvalidBpl {
                    codec,
                    value: imp.bpl,
                });
            }
            match table.overrides.iter_mut().find(|(name, _)| *name == codec) {
                Some(slot) => slot.1 = imp,
                None => table.overrides.push((codec, imp)),
            }
        }
        Ok(table)
    }

    /// Impairment for a CMS codec name (exact, case-sensitive);
    /// unknown names get [`Self::FALLBACK`].
    pub fn get(&self, codec: &str) -> CodecImpairment {
        self.overrides
            .iter()
            .find(|(name, _)| name == codec)
            .map_or_else(|| builtin_impairment(codec), |&(_, imp)| imp)
    }

    /// Every named codec with the values in force: the 14 CMS audio codecs in a fixed order,
    /// then override-only names in configuration order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, CodecImpairment)> + '_ {
        let known = CMS_AUDIO_CODECS.iter().map(move |&c| (c, self.get(c)));
        let extra = self
            .overrides
            .iter()
            .filter(|(name, _)| !CMS_AUDIO_CODECS.contains(&name.as_str()))
            .map(|(name, imp)| (name.as_str(), *imp));
        known.chain(extra)
    }
}

/// RFC 3611 burst/gap loss as CMS reports it in `packetStatistics`: durations in seconds,
/// densities in percent of packets lost.
// No Default on purpose: a missing packetStatistics must never turn into a perfect score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstGap {
    pub burst_duration: f64,
    pub burst_density: f64,
    pub gap_duration: f64,
    pub gap_density: f64,
}

impl BurstGap {
    fn is_valid(&self) -> bool {
        let duration_ok = |d: f64| d.is_finite() && d >= 0.0;
        let density_ok = |p: f64| (0.0..=100.0).contains(&p);
        duration_ok(self.burst_duration)
            && duration_ok(self.gap_duration)
            && density_ok(self.burst_density)
            && density_ok(self.gap_density)
    }

    /// Time-weighted mix of a per-burst and a per-gap value.
    /// `None` when Db + Dg = 0. Callers must have checked `is_valid`.
    fn time_weighted(&self, at_burst: f64, at_gap: f64) -> Option<f64> {
        let (db, dg) = (self.burst_duration, self.gap_duration);
        let total = db + dg;
        if total == 0.0 {
            return None;
        }
        // Only the ratio matters; halving keeps the sum finite for absurdly large durations.
        let burst_share = if total.is_finite() {
            db / total
        } else {
            (db * 0.5) / (db * 0.5 + dg * 0.5)
        };
        let mixed = at_gap + burst_share * (at_burst - at_gap);
        // Rounding must not take a weighted mean outside its endpoints.
        Some(mixed.clamp(at_burst.min(at_gap), at_burst.max(at_gap)))
    }

    /// Db + Dg = 0 with a non-zero density reports loss with no time to weigh it by: such a
    /// record is inconsistent, and scoring it as "no loss" (Ie_avg = Ie) would report a
    /// perfect score for a lossy stream. Zero durations with zero densities are consistent and
    /// follow the model (no loss, Ie_avg = Ie).
    fn is_consistent(&self) -> bool {
        self.burst_duration + self.gap_duration > 0.0
            || (self.burst_density == 0.0 && self.gap_density == 0.0)
    }
}

/// Why no estimate could be made for a stream (the metric's `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unavailable {
    /// NaN or infinite values, negative durations or Ta, densities outside [0, 100], an invalid
    /// codec impairment, or loss density reported with zero burst and gap durations.
    InvalidValues,
}

impl Unavailable {
    pub fn as_label(&self) -> &'static str {
        match self {
            Unavailable::InvalidValues => "invalid_values",
        }
    }
}

/// Delay impairment Idd (G.107) for a one-way delay `ta_ms`. Not validated: negative gives 0,
/// NaN gives NaN (`r_factor` rejects both before calling).
pub fn delay_impairment(ta_ms: f64) -> f64 {
    if ta_ms.is_nan() {
        return f64::NAN;
    }
    if ta_ms <= 100.0 {
        return 0.0;
    }
    // Idd is bounded (tends to 50); capping X keeps Ta = inf finite without changing any result.
    let x = (ta_ms / 100.0).log2().min(1024.0);
    // (1 + y)^(1/6) - 1 computed as expm1(ln1p(y) / 6): the constants 1 - 3 + 2 cancel exactly,
    // so dropping them avoids cancellation just above 100 ms.
    let sixth_root_minus_one = |y: f64| (y.ln_1p() / 6.0).exp_m1();
    let idd =
        25.0 * (sixth_root_minus_one(x.powi(6)) - 3.0 * sixth_root_minus_one((x / 3.0).powi(6)));
    idd.max(0.0)
}

/// Ie_eff = Ie + (95 - Ie) * Ppl / (Ppl + Bpl), Ppl in percent, BurstR = 1. Not validated.
pub fn effective_ie(ie: f64, bpl: f64, ppl_percent: f64) -> f64 {
    // 1 - Bpl/(Ppl+Bpl) equals Ppl/(Ppl+Bpl) but stays monotone in Ppl after rounding.
    ie + (IE_CEILING - ie) * (1.0 - bpl / (ppl_percent + bpl))
}

/// Overall packet loss of a stream in percent: Ppl = (b*Db + g*Dg) / (Db + Dg).
/// Zero durations: 0 when both densities are 0, otherwise `InvalidValues` (see `r_factor`).
pub fn loss_percent(bg: &BurstGap) -> Result<f64, Unavailable> {
    if !bg.is_valid() || !bg.is_consistent() {
        return Err(Unavailable::InvalidValues);
    }
    Ok(bg
        .time_weighted(bg.burst_density, bg.gap_density)
        .unwrap_or(0.0))
}

fn ta_valid(ta_ms: f64) -> bool {
    ta_ms.is_finite() && ta_ms >= 0.0
}

/// R = 93.2 - Idd(Ta) - Ie_avg, unclamped (may be negative).
/// Db + Dg = 0 gives Ie_avg = Ie as the model says, but only when both densities are 0: loss
/// reported with no duration is inconsistent and gets no estimate rather than a perfect one.
pub fn r_factor(codec: CodecImpairment, bg: &BurstGap, ta_ms: f64) -> Result<f64, Unavailable> {
    if !codec.ie_valid()
        || !codec.bpl_valid()
        || !bg.is_valid()
        || !bg.is_consistent()
        || !ta_valid(ta_ms)
    {
        return Err(Unavailable::InvalidValues);
    }
    let ie_at = |ppl: f64| effective_ie(codec.ie, codec.bpl, ppl);
    let ie_avg = bg
        .time_weighted(ie_at(bg.burst_density), ie_at(bg.gap_density))
        .unwrap_or(codec.ie);
    Ok(R_MAX - delay_impairment(ta_ms) - ie_avg)
}

/// The raw G.107 Annex B polynomial, without clamps.
fn mos_polynomial(r: f64) -> f64 {
    1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)
}

/// MOS from R: 1 below 0, 4.5 above 100, otherwise the polynomial clamped to [1, 4.5]
/// (it dips to 0.9888 near R = 3.2). NaN stays NaN.
pub fn r_to_mos(r: f64) -> f64 {
    if r < 0.0 {
        1.0
    } else if r > 100.0 {
        4.5
    } else {
        mos_polynomial(r).clamp(1.0, 4.5)
    }
}

/// Listening-quality MOS of a received CMS audio stream.
pub fn mos_from_cms(codec: CodecImpairment, bg: &BurstGap, ta_ms: f64) -> Result<f64, Unavailable> {
    r_factor(codec, bg, ta_ms).map(r_to_mos)
}

/// Simplified R from latency (by convention round-trip), jitter and loss percent.
/// Not validated: NaN in gives NaN out.
pub fn simplified_r(latency_ms: f64, jitter_ms: f64, loss_percent: f64) -> f64 {
    let eff = latency_ms + 2.0 * jitter_ms + 10.0;
    // The two branches meet at eff = 160 (both give 89.2), so R is continuous and monotone.
    let r = if eff < 160.0 {
        R_MAX - eff / 40.0
    } else {
        R_MAX - (eff - 120.0) / 10.0
    };
    r - 2.5 * loss_percent
}

/// MOS of [`simplified_r`] by the same clamped mapping as [`r_to_mos`].
pub fn simplified_mos(latency_ms: f64, jitter_ms: f64, loss_percent: f64) -> f64 {
    r_to_mos(simplified_r(latency_ms, jitter_ms, loss_percent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const G711U: CodecImpairment = CodecImpairment { ie: 0.0, bpl: 25.1 };
    const G729: CodecImpairment = CodecImpairment {
        ie: 11.0,
        bpl: 19.0,
    };

    /// Tolerances: half a unit in the last place the table gives (4, 2 or 1 decimals).
    const D4: f64 = 5e-5;
    const D2: f64 = 5e-3;
    const D1: f64 = 5e-2;

    #[track_caller]
    fn close(actual: f64, expected: f64, tol: f64) {
        assert!(
            (actual - expected).abs() <= tol,
            "got {actual}, expected {expected} ± {tol}"
        );
    }

    fn gap_only(density: f64) -> BurstGap {
        BurstGap {
            burst_duration: 0.0,
            burst_density: 0.0,
            gap_duration: 10.0,
            gap_density: density,
        }
    }

    fn no_loss() -> BurstGap {
        gap_only(0.0)
    }

    // --- test vectors of mos-model.md, one assertion per row entry ---

    #[test]
    fn vector_r_to_mos() {
        assert_eq!(r_to_mos(-5.0), 1.0);
        assert_eq!(r_to_mos(0.0), 1.0);
        assert_eq!(r_to_mos(3.2223), 1.0);
        close(mos_polynomial(3.2223), 0.98884, 5e-6);
        close(r_to_mos(50.0), 2.5750, D4);
        close(r_to_mos(60.0), 3.1000, D4);
        close(r_to_mos(80.0), 4.0240, D4);
        close(r_to_mos(90.0), 4.3390, D4);
        assert_eq!(r_to_mos(100.0), 4.5);
        assert_eq!(r_to_mos(120.0), 4.5);
    }

    #[test]
    fn vector_no_loss_ta0() {
        close(r_factor(G711U, &no_loss(), 0.0).unwrap(), 93.2000, D4);
        close(mos_from_cms(G711U, &no_loss(), 0.0).unwrap(), 4.4093, D4);
    }

    #[test]
    fn vector_g711u_gap_only() {
        let rows = [
            (1.0, 89.5602, 4.3281),
            (2.0, 86.1889, 4.2348),
            (5.0, 77.4193, 3.9228),
            (10.0, 66.1345, 3.4109),
            (20.0, 51.0714, 2.6313),
        ];
        for (density, r, mos) in rows {
            close(r_factor(G711U, &gap_only(density), 0.0).unwrap(), r, D4);
            close(
                mos_from_cms(G711U, &gap_only(density), 0.0).unwrap(),
                mos,
                D4,
            );
        }
    }

    #[test]
    fn vector_g729_gap_only() {
        let rows = [
            (0.0, 82.2, 4.1044),
            (1.0, 78.0, 3.9462),
            (2.0, 74.2, 3.7873),
            (5.0, 64.7, 3.3396),
        ];
        for (density, r, mos) in rows {
            close(r_factor(G729, &gap_only(density), 0.0).unwrap(), r, D1);
            close(
                mos_from_cms(G729, &gap_only(density), 0.0).unwrap(),
                mos,
                D4,
            );
        }
    }

    #[test]
    fn vector_ta() {
        let rows = [
            (150.0, 93.0365, 4.4061),
            (200.0, 90.1556, 4.3428),
            (300.0, 78.4393, 3.9637),
            (400.0, 69.1299, 3.5559),
        ];
        for (ta, r, mos) in rows {
            close(r_factor(G711U, &no_loss(), ta).unwrap(), r, D4);
            close(mos_from_cms(G711U, &no_loss(), ta).unwrap(), mos, D4);
        }
    }

    #[test]
    fn vector_burst_and_gap() {
        let bg = BurstGap {
            burst_duration: 2.0,
            burst_density: 30.0,
            gap_duration: 18.0,
            gap_density: 1.0,
        };
        close(r_factor(G711U, &bg, 0.0).unwrap(), 84.7517, D4);
        close(mos_from_cms(G711U, &bg, 0.0).unwrap(), 4.1902, D4);
        // Ppl = (30*2 + 1*18) / 20
        close(loss_percent(&bg).unwrap(), 3.9, 1e-12);
    }

    #[test]
    fn vector_simplified() {
        let rows = [
            ((0.0, 0.0, 0.0), 92.95, 4.4044),
            ((500.0, 0.0, 0.0), 54.20, 2.7962),
            ((0.0, 100.0, 0.0), 84.20, 4.1724),
            ((0.0, 200.0, 0.0), 64.20, 3.3146),
            ((0.0, 0.0, 1.0), 90.45, 4.3499),
            ((0.0, 0.0, 10.0), 67.95, 3.4994),
            ((10.0, 10.0, 10.0), 67.20, 3.4631),
            ((100.0, 20.0, 0.0), 89.45, 4.3253),
            ((130.0, 10.0, 0.0), 89.20, 4.3189),
            ((150.0, 10.0, 1.0), 84.70, 4.1886),
            ((200.0, 30.0, 2.0), 73.20, 3.7433),
            ((300.0, 50.0, 5.0), 51.70, 2.6644),
        ];
        for ((lat, jit, loss), r, mos) in rows {
            close(simplified_r(lat, jit, loss), r, D2);
            close(simplified_mos(lat, jit, loss), mos, D4);
        }
    }

    #[test]
    fn vector_freeswitch_quality_percentage() {
        close(r_to_mos(49.0), 2.5226, D4);
    }

    // --- building blocks ---

    #[test]
    fn delay_impairment_edges() {
        assert_eq!(delay_impairment(0.0), 0.0);
        assert_eq!(delay_impairment(100.0), 0.0);
        assert_eq!(delay_impairment(-5.0), 0.0);
        let just_above = delay_impairment(100.001);
        assert!(just_above > 0.0 && just_above < 1e-12, "{just_above}");
        // Idd is bounded by 50, also for Ta = inf.
        let far = delay_impairment(1e12);
        assert!(far > 45.0 && far < 50.0, "{far}");
        close(delay_impairment(f64::INFINITY), 50.0, 1e-6);
        assert!(delay_impairment(f64::NAN).is_nan());
    }

    #[test]
    fn effective_ie_edges() {
        assert_eq!(effective_ie(11.0, 19.0, 0.0), 11.0);
        // Ppl = Bpl is half way to 95.
        close(effective_ie(11.0, 19.0, 19.0), 53.0, 1e-12);
        close(effective_ie(0.0, 25.1, 100.0), 95.0 * 100.0 / 125.1, 1e-12);
    }

    #[test]
    fn loss_percent_cases() {
        assert_eq!(loss_percent(&no_loss()), Ok(0.0));
        assert_eq!(loss_percent(&gap_only(7.5)), Ok(7.5));
        let burst_only = BurstGap {
            burst_duration: 3.0,
            burst_density: 40.0,
            gap_duration: 0.0,
            gap_density: 2.0,
        };
        assert_eq!(loss_percent(&burst_only), Ok(40.0));
    }

    #[test]
    fn zero_durations_without_loss_follow_the_model() {
        let bg = BurstGap {
            burst_duration: 0.0,
            burst_density: 0.0,
            gap_duration: 0.0,
            gap_density: 0.0,
        };
        assert_eq!(loss_percent(&bg), Ok(0.0));
        // Ie_avg = Ie
        close(r_factor(G729, &bg, 0.0).unwrap(), 93.2 - 11.0, 1e-12);
        close(mos_from_cms(G711U, &bg, 0.0).unwrap(), 4.4093, D4);
    }

    #[test]
    fn zero_durations_with_loss_are_unavailable() {
        for (b, g) in [(30.0, 0.0), (0.0, 1.0), (5.0, 5.0)] {
            let bg = BurstGap {
                burst_duration: 0.0,
                burst_density: b,
                gap_duration: 0.0,
                gap_density: g,
            };
            assert_eq!(loss_percent(&bg), Err(Unavailable::InvalidValues));
            assert_eq!(r_factor(G711U, &bg, 0.0), Err(Unavailable::InvalidValues));
            assert_eq!(
                mos_from_cms(G711U, &bg, 0.0),
                Err(Unavailable::InvalidValues)
            );
        }
    }

    #[test]
    fn huge_durations_do_not_overflow() {
        let bg = BurstGap {
            burst_duration: f64::MAX,
            burst_density: 30.0,
            gap_duration: f64::MAX,
            gap_density: 10.0,
        };
        close(loss_percent(&bg).unwrap(), 20.0, 1e-12);
        let r = r_factor(G711U, &bg, 0.0).unwrap();
        assert!(r.is_finite() && r < 93.2, "{r}");
    }

    #[test]
    fn boundaries_are_valid() {
        let bg = BurstGap {
            burst_duration: 1.0,
            burst_density: 100.0,
            gap_duration: 0.0,
            gap_density: 0.0,
        };
        assert!(mos_from_cms(G711U, &bg, 0.0).is_ok());
        assert!(mos_from_cms(G711U, &gap_only(100.0), 1e6).is_ok());
        let neg_zero = BurstGap {
            burst_duration: -0.0,
            ..no_loss()
        };
        assert!(mos_from_cms(G711U, &neg_zero, 0.0).is_ok());
    }

    #[test]
    fn invalid_values_are_rejected() {
        let base = BurstGap {
            burst_duration: 1.0,
            burst_density: 10.0,
            gap_duration: 9.0,
            gap_density: 1.0,
        };
        let bad = [
            BurstGap {
                burst_duration: -1.0,
                ..base
            },
            BurstGap {
                gap_duration: -0.001,
                ..base
            },
            BurstGap {
                burst_duration: f64::NAN,
                ..base
            },
            BurstGap {
                gap_duration: f64::INFINITY,
                ..base
            },
            BurstGap {
                burst_density: -0.1,
                ..base
            },
            BurstGap {
                gap_density: 100.1,
                ..base
            },
            BurstGap {
                burst_density: f64::NAN,
                ..base
            },
            BurstGap {
                gap_density: f64::INFINITY,
                ..base
            },
        ];
        for bg in bad {
            assert_eq!(loss_percent(&bg), Err(Unavailable::InvalidValues), "{bg:?}");
            assert_eq!(
                r_factor(G711U, &bg, 0.0),
                Err(Unavailable::InvalidValues),
                "{bg:?}"
            );
            assert_eq!(
                mos_from_cms(G711U, &bg, 0.0),
                Err(Unavailable::InvalidValues),
                "{bg:?}"
            );
        }
        for ta in [-1.0, -f64::MIN_POSITIVE, f64::NAN, f64::INFINITY] {
            assert_eq!(
                mos_from_cms(G711U, &base, ta),
                Err(Unavailable::InvalidValues),
                "{ta}"
            );
        }
        let bad_codecs = [
            CodecImpairment {
                ie: f64::NAN,
                bpl: 25.1,
            },
            CodecImpairment {
                ie: 95.0,
                bpl: 25.1,
            },
            CodecImpairment {
                ie: -1.0,
                bpl: 25.1,
            },
            CodecImpairment { ie: 0.0, bpl: 0.0 },
            CodecImpairment {
                ie: 0.0,
                bpl: f64::INFINITY,
            },
        ];
        for codec in bad_codecs {
            assert_eq!(
                mos_from_cms(codec, &base, 0.0),
                Err(Unavailable::InvalidValues),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn unavailable_label() {
        assert_eq!(Unavailable::InvalidValues.as_label(), "invalid_values");
    }

    #[test]
    fn simplified_propagates_nan() {
        assert!(simplified_mos(f64::NAN, 0.0, 0.0).is_nan());
        assert_eq!(simplified_mos(f64::INFINITY, 0.0, 0.0), 1.0);
    }

    // --- codec table ---

    #[test]
    fn default_table() {
        let table = CodecTable::default();
        let entries: Vec<_> = table.entries().collect();
        assert_eq!(entries.len(), 14);
        let names: Vec<_> = entries.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, CMS_AUDIO_CODECS);
        for (name, imp) in entries {
            let expected = match name {
                "g729" => CodecImpairment {
                    ie: 11.0,
                    bpl: 19.0,
                },
                "g728" => CodecImpairment { ie: 7.0, bpl: 19.0 },
                _ => CodecImpairment { ie: 0.0, bpl: 25.1 },
            };
            assert_eq!(imp, expected, "{name}");
        }
        assert_eq!(table.get("h264"), CodecTable::FALLBACK);
        assert_eq!(table.get("G729"), CodecTable::FALLBACK);
        assert_eq!(table.get(""), CodecTable::FALLBACK);
        assert_eq!(CodecTable::FALLBACK, G711U);
    }

    #[test]
    fn overrides_replace_and_extend() {
        let opus = CodecImpairment { ie: 2.0, bpl: 30.0 };
        let ilbc = CodecImpairment {
            ie: 10.0,
            bpl: 32.0,
        };
        let table = CodecTable::with_overrides([
            ("opus".to_string(), CodecImpairment { ie: 1.0, bpl: 20.0 }),
            ("ilbc".to_string(), ilbc),
            ("opus".to_string(), opus), // later entry wins
        ])
        .unwrap();
        assert_eq!(table.get("opus"), opus);
        assert_eq!(table.get("ilbc"), ilbc);
        assert_eq!(table.get("g729"), G729);
        let entries: Vec<_> = table.entries().collect();
        assert_eq!(entries.len(), 15);
        assert!(entries.contains(&("opus", opus)));
        assert_eq!(entries[14], ("ilbc", ilbc));
        assert_eq!(entries.iter().filter(|(n, _)| *n == "opus").count(), 1);
    }

    #[test]
    fn override_validation() {
        let one = |name: &str, ie: f64, bpl: f64| {
            CodecTable::with_overrides([(name.to_string(), CodecImpairment { ie, bpl })])
        };
        assert!(one("g729", 0.0, 0.001).is_ok());
        assert!(one("g729", 94.9, 1.0).is_ok());
        for ie in [f64::NAN, f64::INFINITY, -0.5, 95.0, 120.0] {
            let err = one("g729", ie, 19.0).unwrap_err();
            assert!(
                matches!(err, QualityError::InvalidIe { ref codec, .. } if codec == "g729"),
                "{err:?}"
            );
            assert!(err.to_string().contains("\"g729\""), "{err}");
        }
        for bpl in [f64::NAN, f64::INFINITY, 0.0, -1.0] {
            let err = one("myCodec", 5.0, bpl).unwrap_err();
            assert!(
                matches!(err, QualityError::InvalidBpl { ref codec, .. } if codec == "myCodec"),
                "{err:?}"
            );
            assert!(err.to_string().contains("\"myCodec\""), "{err}");
        }
        let err = one("G729", 11.0, 19.0).unwrap_err();
        assert!(
            matches!(
                err,
                QualityError::CodecNameCase {
                    expected: "g729",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = one("speexnb", 0.0, 25.1).unwrap_err();
        assert!(
            matches!(
                err,
                QualityError::CodecNameCase {
                    expected: "speexNb",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            one("", 0.0, 25.1),
            Err(QualityError::EmptyCodecName)
        ));
    }

    #[test]
    fn codec_impairment_deserializes() {
        use serde::de::value::{Error, MapDeserializer};
        let de = MapDeserializer::<_, Error>::new([("ie", 11.0), ("bpl", 19.0)].into_iter());
        assert_eq!(CodecImpairment::deserialize(de).unwrap(), G729);
        let de =
            MapDeserializer::<_, Error>::new([("ie", 1.0), ("bpl", 2.0), ("Bpl", 3.0)].into_iter());
        assert!(CodecImpairment::deserialize(de).is_err());
    }

    // --- properties ---

    /// Rounding slack for monotonicity: violations can only come from last-bit rounding.
    const EPS: f64 = 1e-10;

    fn codec_strategy() -> impl Strategy<Value = CodecImpairment> {
        prop_oneof![
            Just(G711U),
            Just(G729),
            Just(CodecImpairment { ie: 7.0, bpl: 19.0 }),
            (0.0..95.0, 0.001..1000.0).prop_map(|(ie, bpl)| CodecImpairment { ie, bpl }),
        ]
    }

    fn duration() -> impl Strategy<Value = f64> {
        prop_oneof![Just(0.0), 0.0..1e6]
    }

    fn density() -> impl Strategy<Value = f64> {
        prop_oneof![Just(0.0), Just(100.0), 0.0..=100.0]
    }

    fn ta() -> impl Strategy<Value = f64> {
        prop_oneof![Just(0.0), 0.0..=100.0, 100.0..1e5, 1e5..1e300]
    }

    fn burst_gap() -> impl Strategy<Value = BurstGap> {
        (duration(), density(), duration(), density()).prop_map(|(bd, b, gd, g)| BurstGap {
            burst_duration: bd,
            burst_density: b,
            gap_duration: gd,
            gap_density: g,
        })
    }

    /// (Db, Dg) with Db + Dg > 0, built rather than filtered so no case is rejected.
    fn timed_durations() -> impl Strategy<Value = (f64, f64)> {
        let positive = || 1e-3..1e6f64;
        prop_oneof![
            (Just(0.0), positive()),
            (positive(), Just(0.0)),
            (positive(), positive()),
        ]
    }

    /// Burst/gap with a non-zero total duration, so every density combination is consistent.
    fn timed_burst_gap() -> impl Strategy<Value = BurstGap> {
        (timed_durations(), density(), density()).prop_map(|((bd, gd), b, g)| BurstGap {
            burst_duration: bd,
            burst_density: b,
            gap_duration: gd,
            gap_density: g,
        })
    }

    proptest! {
        #[test]
        fn mos_within_bounds(codec in codec_strategy(), bg in burst_gap(), ta in ta()) {
            match mos_from_cms(codec, &bg, ta) {
                Ok(mos) => prop_assert!((1.0..=4.5).contains(&mos), "{mos}"),
                // The only valid-looking input without an estimate: loss with no duration.
                Err(_) => prop_assert!(!bg.is_consistent()),
            }
        }

        #[test]
        fn loss_within_densities(bg in timed_burst_gap()) {
            let ppl = loss_percent(&bg).unwrap();
            prop_assert!(ppl >= bg.burst_density.min(bg.gap_density));
            prop_assert!(ppl <= bg.burst_density.max(bg.gap_density));
        }

        #[test]
        fn r_never_exceeds_max(codec in codec_strategy(), bg in timed_burst_gap(), ta in ta()) {
            prop_assert!(r_factor(codec, &bg, ta).unwrap() <= R_MAX);
        }

        #[test]
        fn mos_not_rising_with_burst_density(
            codec in codec_strategy(), bg in timed_burst_gap(), ta in ta(), more in density(),
        ) {
            let worse = BurstGap { burst_density: bg.burst_density.max(more), ..bg };
            let before = mos_from_cms(codec, &bg, ta).unwrap();
            let after = mos_from_cms(codec, &worse, ta).unwrap();
            prop_assert!(after <= before + EPS, "{before} -> {after}");
        }

        #[test]
        fn mos_not_rising_with_gap_density(
            codec in codec_strategy(), bg in timed_burst_gap(), ta in ta(), more in density(),
        ) {
            let worse = BurstGap { gap_density: bg.gap_density.max(more), ..bg };
            let before = mos_from_cms(codec, &bg, ta).unwrap();
            let after = mos_from_cms(codec, &worse, ta).unwrap();
            prop_assert!(after <= before + EPS, "{before} -> {after}");
        }

        #[test]
        fn mos_not_rising_when_gap_time_becomes_burst_time(
            codec in codec_strategy(),
            (b, g) in (0.0..=100.0f64).prop_flat_map(|g| (g..=100.0, Just(g))),
            (db, dg) in timed_durations(),
            share in 0.0..=1.0f64,
            ta in ta(),
        ) {
            let moved = dg * share;
            let bg = BurstGap {
                burst_duration: db,
                burst_density: b,
                gap_duration: dg,
                gap_density: g,
            };
            let shifted = BurstGap {
                burst_duration: db + moved,
                gap_duration: dg - moved,
                ..bg
            };
            let before = mos_from_cms(codec, &bg, ta).unwrap();
            let after = mos_from_cms(codec, &shifted, ta).unwrap();
            prop_assert!(after <= before + EPS, "{before} -> {after}");
        }

        #[test]
        fn mos_not_rising_with_ta(
            codec in codec_strategy(), bg in timed_burst_gap(), t1 in ta(), t2 in ta(),
        ) {
            let (lo, hi) = (t1.min(t2), t1.max(t2));
            let before = mos_from_cms(codec, &bg, lo).unwrap();
            let after = mos_from_cms(codec, &bg, hi).unwrap();
            prop_assert!(after <= before + EPS, "{before} -> {after}");
        }

        #[test]
        fn simplified_mos_within_bounds(
            lat in -1e6..1e6f64, jit in -1e6..1e6f64, loss in -1e3..1e3f64,
        ) {
            let mos = simplified_mos(lat, jit, loss);
            prop_assert!((1.0..=4.5).contains(&mos), "{mos}");
        }

        #[test]
        fn simplified_mos_not_rising(
            lat in 0.0..1e4f64, jit in 0.0..1e3f64, loss in 0.0..=100.0f64,
            d_lat in 0.0..1e4f64, d_jit in 0.0..1e3f64, d_loss in 0.0..=100.0f64,
        ) {
            let base = simplified_mos(lat, jit, loss);
            for worse in [
                simplified_mos(lat + d_lat, jit, loss),
                simplified_mos(lat, jit + d_jit, loss),
                simplified_mos(lat, jit, loss + d_loss),
            ] {
                prop_assert!(worse <= base + EPS, "{base} -> {worse}");
            }
        }
    }
}
