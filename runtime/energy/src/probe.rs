//! Choosing an energy source: `--energy rapl|pmic|hwmon[:FILTER]|meter:CMD|none|auto`.
//!
//! `auto` tries RAPL, the Pi 5 PMIC and hwmon in that order and takes the first that works; an
//! external meter is only used when named (its command cannot be guessed). Every source that was
//! tried and failed leaves an [`Unavailable`] entry, so "no energy" always comes with reasons.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::hwmon::Hwmon;
use crate::meter::Meter;
use crate::pmic::Pmic;
use crate::rapl::Rapl;
use crate::sampler::Sampler;
use crate::source::{EnergySource, Unavailable};
use crate::sysfs::SysRoot;

/// The user's `--energy` choice.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum EnergyChoice {
    /// First available of RAPL, PMIC, hwmon.
    #[default]
    Auto,
    /// No measurement.
    None,
    /// RAPL only.
    Rapl,
    /// Pi 5 PMIC only.
    Pmic,
    /// hwmon only, optionally filtered by device or sensor name.
    Hwmon(Option<String>),
    /// External meter command (run with `sh -c`).
    Meter(String),
}

impl FromStr for EnergyChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => Self::Auto,
            "none" | "off" => Self::None,
            "rapl" => Self::Rapl,
            "pmic" => Self::Pmic,
            "hwmon" => Self::Hwmon(None),
            _ => {
                if let Some(f) = s.strip_prefix("hwmon:") {
                    Self::Hwmon(Some(f.to_string()))
                } else if let Some(c) = s.strip_prefix("meter:") {
                    if c.trim().is_empty() {
                        return Err("--energy meter:CMD needs a command".into());
                    }
                    Self::Meter(c.to_string())
                } else {
                    return Err(format!(
                        "unknown energy source {s:?} (expected auto, none, rapl, pmic, hwmon[:NAME], meter:CMD)"
                    ));
                }
            }
        })
    }
}

/// Where to look and how long to wait.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Filesystem root for sysfs (default `/`).
    pub root: SysRoot,
    /// `vcgencmd` program (default `vcgencmd`, found on `PATH`).
    pub vcgencmd: PathBuf,
    /// Sampling / re-run period for meter commands.
    pub meter_period: Duration,
    /// How long a meter command may take to print its first number.
    pub meter_first_value: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            root: SysRoot::host(),
            vcgencmd: PathBuf::from("vcgencmd"),
            meter_period: Sampler::POWER_PERIOD,
            meter_first_value: Duration::from_secs(5),
        }
    }
}

/// The result of probing: a source, or none, plus reasons for every source that failed.
pub struct Probed {
    /// The chosen source, if any.
    pub source: Option<Box<dyn EnergySource>>,
    /// Why the other sources tried are not available (also filled when `source` is `Some`).
    pub unavailable: Vec<Unavailable>,
}

impl std::fmt::Debug for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probed")
            .field("source", &self.source.as_ref().map(|s| s.method().to_string()))
            .field("unavailable", &self.unavailable)
            .finish()
    }
}

impl Probed {
    /// A [`Sampler`] over the chosen source with its default period ([`Sampler::with_default_period`]).
    pub fn into_sampler(self) -> (Option<Sampler>, Vec<Unavailable>) {
        (self.source.map(Sampler::with_default_period), self.unavailable)
    }
}

fn try_one(
    name: &str,
    cfg: &ProbeConfig,
    filter: Option<&str>,
) -> Result<Box<dyn EnergySource>, String> {
    match name {
        "rapl" => Rapl::probe(&cfg.root).map(|s| Box::new(s) as Box<dyn EnergySource>),
        "pmic" => Pmic::probe(&cfg.vcgencmd).map(|s| Box::new(s) as Box<dyn EnergySource>),
        "hwmon" => Hwmon::probe(&cfg.root, filter).map(|s| Box::new(s) as Box<dyn EnergySource>),
        _ => Err(format!("unknown source {name}")),
    }
}

/// Probes according to `choice`.
pub fn probe(choice: &EnergyChoice, cfg: &ProbeConfig) -> Probed {
    let mut unavailable = Vec::new();
    let order: Vec<(&str, Option<&str>)> = match choice {
        EnergyChoice::None => {
            unavailable
                .push(Unavailable::new("none", "energy measurement disabled (--energy none)"));
            return Probed { source: None, unavailable };
        }
        EnergyChoice::Meter(cmd) => {
            return match Meter::probe(cmd, cfg.meter_period, cfg.meter_first_value) {
                Ok(m) => Probed { source: Some(Box::new(m)), unavailable },
                Err(e) => {
                    unavailable.push(Unavailable::new("meter", e));
                    Probed { source: None, unavailable }
                }
            };
        }
        EnergyChoice::Auto => vec![("rapl", None), ("pmic", None), ("hwmon", None)],
        EnergyChoice::Rapl => vec![("rapl", None)],
        EnergyChoice::Pmic => vec![("pmic", None)],
        EnergyChoice::Hwmon(f) => vec![("hwmon", f.as_deref())],
    };
    for (name, filter) in order {
        match try_one(name, cfg, filter) {
            Ok(s) => return Probed { source: Some(s), unavailable },
            Err(e) => unavailable.push(Unavailable::new(name, e)),
        }
    }
    if *choice == EnergyChoice::Auto {
        unavailable.push(Unavailable::new(
            "meter",
            "not tried: no external meter given (--energy meter:CMD)",
        ));
    }
    Probed { source: None, unavailable }
}
