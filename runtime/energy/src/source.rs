//! The energy-source interface shared by RAPL, the Pi 5 PMIC, hwmon/INA sensors and meters.
//!
//! A source yields either an instantaneous power in watts (PMIC, hwmon, meter), which the
//! [`crate::Sampler`] integrates over time, or cumulative energy counters in µJ (RAPL), whose
//! wrap-aware differences are summed.

/// One cumulative energy counter (RAPL `energy_uj`), wrapping back to 0 past `max_uj`
/// (`max_energy_range_uj`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Current counter value in microjoules.
    pub uj: u64,
    /// Largest value before the counter wraps to zero (`max_energy_range_uj`).
    pub max_uj: u64,
}

impl Counter {
    /// Energy in µJ from `earlier` to `self`, assuming at most one wrap in between
    /// (the sampler reads counters often enough for that: a 32-bit-range RAPL counter
    /// wraps after about 260 s at 250 W).
    pub fn delta_uj(&self, earlier: &Counter) -> (u64, bool) {
        if self.uj >= earlier.uj {
            (self.uj - earlier.uj, false)
        } else {
            let max = self.max_uj.max(earlier.uj);
            ((max - earlier.uj).saturating_add(self.uj), true)
        }
    }
}

/// One reading of a source.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// Instantaneous power in watts (summed over the source's sensors).
    Watts(f64),
    /// Cumulative energy counters, one per domain, in a stable order.
    Counters(Vec<Counter>),
}

/// A measured energy source. Implementations are `Send` because the sampler reads them from
/// its own thread.
pub trait EnergySource: Send {
    /// Short method name used in JSON: `"rapl"`, `"pmic"`, `"hwmon"` or `"meter"`.
    fn method(&self) -> &str;
    /// Names of the sensors summed, e.g. `["intel-rapl:0 (package-0)"]` or `["ina3221:VDD_IN"]`.
    fn sensors(&self) -> Vec<String>;
    /// What the number covers (e.g. "PMIC rails, not wall power"); reported beside the result.
    fn scope(&self) -> String;
    /// Takes one reading. Errors are short reasons; the sampler counts them.
    fn read(&mut self) -> Result<Reading, String>;
}

/// Why a source could not be used (one entry per source tried).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unavailable {
    /// Source name: `rapl`, `pmic`, `hwmon`, `meter` or `none`.
    pub source: String,
    /// Why it is not available, specific enough to act on.
    pub reason: String,
}

impl Unavailable {
    /// Builds an entry.
    pub fn new(source: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { source: source.into(), reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_delta_wraps() {
        let a = Counter { uj: 900, max_uj: 1000 };
        let b = Counter { uj: 50, max_uj: 1000 };
        assert_eq!(b.delta_uj(&a), (150, true));
        assert_eq!(a.delta_uj(&Counter { uj: 100, max_uj: 1000 }), (800, false));
    }
}
