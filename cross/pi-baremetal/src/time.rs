//! A monotonic clock, as the prompt loop needs it for tokens/s. Implemented by
//! `arch::time::GenericTimer` (CNTPCT_EL0 / CNTFRQ_EL0); host tests can supply their own.

/// A monotonic tick counter with a known frequency.
pub trait Clock {
    /// Current tick count (monotonic, never wraps in practice: 64 bits at ≤ 1 GHz).
    fn now_ticks(&self) -> u64;

    /// Ticks per second (non-zero).
    fn ticks_per_second(&self) -> u64;

    /// Microseconds between two tick counts.
    fn micros_between(&self, start: u64, end: u64) -> u64 {
        let ticks = end.saturating_sub(start) as u128;
        (ticks * 1_000_000 / self.ticks_per_second().max(1) as u128) as u64
    }
}
