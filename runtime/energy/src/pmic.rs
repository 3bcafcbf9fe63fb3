//! Raspberry Pi 5 PMIC (DA9091 "Gilmour") rail power through `vcgencmd pmic_read_adc`.
//!
//! The command prints one line per ADC channel:
//!
//! ```text
//!    3V7_WL_SW_A current(0)=0.00390372A
//!      VDD_CORE_A current(7)=0.71230000A
//!    3V7_WL_SW_V volt(8)=3.74462200V
//!      VDD_CORE_V volt(15)=0.88000000V
//!        EXT5V_V volt(24)=5.15096000V
//! ```
//!
//! Currents (`NAME_A`) and voltages (`NAME_V`) are paired by rail name `NAME`, and power is
//! Σ V·I over the paired rails. **This measures the PMIC's output rails, not the wall:** the PMIC
//! reports no input current (`EXT5V_V` has no matching `_A`), so its conversion losses, the USB
//! ports, the fan and anything powered straight from 5 V are not included. The JSON `scope` field
//! says so next to every number.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cmd::run_ok;
use crate::source::{EnergySource, Reading};

/// One paired rail.
#[derive(Clone, Debug, PartialEq)]
pub struct Rail {
    /// Rail name without the `_A`/`_V` suffix (`VDD_CORE`).
    pub name: String,
    /// Volts.
    pub volts: f64,
    /// Amps.
    pub amps: f64,
}

/// Parsed `pmic_read_adc` output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PmicReport {
    /// Rails with both a current and a voltage, sorted by name.
    pub rails: Vec<Rail>,
    /// Channels without a partner (e.g. `EXT5V_V`, `BATT_V`).
    pub unpaired: Vec<String>,
}

impl PmicReport {
    /// Σ V·I over paired rails, watts.
    pub fn watts(&self) -> f64 {
        self.rails.iter().map(|r| r.volts * r.amps).sum()
    }
}

/// Parses `vcgencmd pmic_read_adc` output. Lines that do not match are ignored.
pub fn parse_pmic_read_adc(text: &str) -> PmicReport {
    use std::collections::BTreeMap;
    let mut amps: BTreeMap<String, f64> = BTreeMap::new();
    let mut volts: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((lhs, value)) = line.split_once('=') else { continue };
        let mut parts = lhs.split_whitespace();
        let (Some(chan), Some(kind)) = (parts.next(), parts.next()) else { continue };
        let value = value.trim();
        if kind.starts_with("current(") {
            let (Some(rail), Some(v)) = (chan.strip_suffix("_A"), parse_unit(value, 'A')) else {
                continue;
            };
            amps.insert(rail.to_string(), v);
        } else if kind.starts_with("volt(") {
            let (Some(rail), Some(v)) = (chan.strip_suffix("_V"), parse_unit(value, 'V')) else {
                continue;
            };
            volts.insert(rail.to_string(), v);
        }
    }
    let mut report = PmicReport::default();
    for (name, a) in &amps {
        match volts.get(name) {
            Some(v) => report.rails.push(Rail { name: name.clone(), volts: *v, amps: *a }),
            None => report.unpaired.push(format!("{name}_A")),
        }
    }
    for name in volts.keys() {
        if !amps.contains_key(name) {
            report.unpaired.push(format!("{name}_V"));
        }
    }
    report
}

fn parse_unit(s: &str, unit: char) -> Option<f64> {
    let v: f64 = s.strip_suffix(unit).unwrap_or(s).trim().parse().ok()?;
    v.is_finite().then_some(v)
}

/// The Pi 5 PMIC as a power source.
#[derive(Clone, Debug)]
pub struct Pmic {
    vcgencmd: PathBuf,
    rails: Vec<String>,
    timeout: Duration,
}

impl Pmic {
    /// Runs `vcgencmd pmic_read_adc` once and keeps the rail list, or says why not.
    pub fn probe(vcgencmd: &Path) -> Result<Self, String> {
        let timeout = Duration::from_secs(2);
        let out = run_ok(vcgencmd, &["pmic_read_adc"], timeout)?;
        let report = parse_pmic_read_adc(&out);
        if report.rails.is_empty() {
            let first: String = out.lines().next().unwrap_or("").chars().take(120).collect();
            return Err(format!(
                "{} pmic_read_adc printed no current/voltage pairs (not a Pi 5? first line: {first:?})",
                vcgencmd.display()
            ));
        }
        Ok(Self {
            vcgencmd: vcgencmd.to_path_buf(),
            rails: report.rails.iter().map(|r| r.name.clone()).collect(),
            timeout,
        })
    }
}

impl EnergySource for Pmic {
    fn method(&self) -> &str {
        "pmic"
    }

    fn sensors(&self) -> Vec<String> {
        self.rails.iter().map(|r| format!("pmic:{r}")).collect()
    }

    fn scope(&self) -> String {
        format!(
            "sum of V*I over {} Pi 5 PMIC output rails; no input current is reported, so PMIC \
             losses, USB and 5 V peripherals are excluded (rails, not the wall)",
            self.rails.len()
        )
    }

    fn read(&mut self) -> Result<Reading, String> {
        let out = run_ok(&self.vcgencmd, &["pmic_read_adc"], self.timeout)?;
        let report = parse_pmic_read_adc(&out);
        let names: Vec<&str> = report.rails.iter().map(|r| r.name.as_str()).collect();
        if names != self.rails.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(format!("PMIC rail set changed ({} rails now)", names.len()));
        }
        Ok(Reading::Watts(report.watts()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_rails() {
        let t = "   3V7_WL_SW_A current(0)=0.00390372A\n     VDD_CORE_A current(7)=2.00000000A\n\
                 garbage line\n   3V7_WL_SW_V volt(8)=3.74462200V\n     VDD_CORE_V volt(15)=0.80000000V\n\
                 \x20      EXT5V_V volt(24)=5.15096000V\n";
        let r = parse_pmic_read_adc(t);
        assert_eq!(r.rails.len(), 2);
        assert_eq!(r.rails[1], Rail { name: "VDD_CORE".into(), volts: 0.8, amps: 2.0 });
        assert_eq!(r.unpaired, vec!["EXT5V_V".to_string()]);
        let w = 0.00390372 * 3.744622 + 1.6;
        assert!((r.watts() - w).abs() < 1e-12);
    }
}
