//! Bounds on repeated log lines: each call site of [`warn_limited!`] (or [`info_limited!`])
//! writes at most
//! [`BURST`] lines per [`WINDOW_MS`]; the next line after a suppressed spell says how many
//! were dropped, and every dropped line is counted for `/metrics`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Lines per call site and window.
pub const BURST: u32 = 10;
/// The window, in milliseconds.
pub const WINDOW_MS: u64 = 10_000;

static SUPPRESSED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped by every limiter since the process started.
pub fn suppressed_total() -> u64 {
    SUPPRESSED_TOTAL.load(Ordering::Relaxed)
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What a call site may do with its next line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; `suppressed` lines were dropped since the last one written.
    Write { suppressed: u64 },
    /// Write it, and say that further lines are suppressed until the window ends.
    WriteLast,
    /// Drop it (counted).
    Drop,
}

/// One call site's window. `const` so that the macro can keep one in a `static`.
pub struct Limiter {
    window_start: AtomicU64,
    in_window: AtomicU32,
    suppressed: AtomicU64,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    pub const fn new() -> Limiter {
        Limiter {
            window_start: AtomicU64::new(0),
            in_window: AtomicU32::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    pub fn check(&self) -> Verdict {
        self.check_at(now_ms())
    }

    fn check_at(&self, now: u64) -> Verdict {
        let start = self.window_start.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= WINDOW_MS
            && self
                .window_start
                .compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.in_window.store(1, Ordering::Relaxed);
            return Verdict::Write {
                suppressed: self.suppressed.swap(0, Ordering::Relaxed),
            };
        }
        match self.in_window.fetch_add(1, Ordering::Relaxed) {
            n if n + 1 < BURST => Verdict::Write { suppressed: 0 },
            n if n + 1 == BURST => Verdict::WriteLast,
            _ => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                SUPPRESSED_TOTAL.fetch_add(1, Ordering::Relaxed);
                Verdict::Drop
            }
        }
    }
}

/// A `tracing` event at `level` with a per-call-site rate limit (see the module doc).
#[macro_export]
macro_rules! log_limited {
    ($level:ident, $($arg:tt)+) => {{
        static LIMITER: $crate::log_limit::Limiter = $crate::log_limit::Limiter::new();
        match LIMITER.check() {
            $crate::log_limit::Verdict::Write { suppressed: 0 } => {
                tracing::event!(tracing::Level::$level, $($arg)+)
            }
            $crate::log_limit::Verdict::Write { suppressed } => {
                tracing::event!(tracing::Level::$level, suppressed_since_last = suppressed, $($arg)+)
            }
            $crate::log_limit::Verdict::WriteLast => tracing::event!(
                tracing::Level::$level,
                further_suppressed_for_seconds = $crate::log_limit::WINDOW_MS / 1000,
                $($arg)+
            ),
            $crate::log_limit::Verdict::Drop => {}
        }
    }};
}

/// `tracing::warn!` with a per-call-site rate limit.
#[macro_export]
macro_rules! warn_limited {
    ($($arg:tt)+) => { $crate::log_limited!(WARN, $($arg)+) };
}

/// `tracing::info!` with a per-call-site rate limit.
#[macro_export]
macro_rules! info_limited {
    ($($arg:tt)+) => { $crate::log_limited!(INFO, $($arg)+) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_silence_then_a_line_that_counts_what_was_dropped() {
        let l = Limiter::new();
        let t0 = 50_000;
        let mut written = 0;
        let mut last = 0;
        for _ in 0..1_000 {
            match l.check_at(t0) {
                Verdict::Write { .. } => written += 1,
                Verdict::WriteLast => last += 1,
                Verdict::Drop => {}
            }
        }
        assert_eq!((written, last), (BURST - 1, 1));
        assert_eq!(
            l.check_at(t0 + WINDOW_MS),
            Verdict::Write {
                suppressed: 1_000 - BURST as u64
            }
        );
        assert_eq!(
            l.check_at(t0 + WINDOW_MS + 1),
            Verdict::Write { suppressed: 0 }
        );
        assert!(suppressed_total() >= 990);
    }
}
