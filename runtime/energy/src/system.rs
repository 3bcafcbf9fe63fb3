//! System state recorded with every benchmark: board, CPU, governor, frequency, temperature,
//! Raspberry Pi throttling and peak RSS.
//!
//! Everything is read through a [`SysRoot`] (default `/`) so tests use fake trees; `vcgencmd`
//! is optional and its path configurable. Missing facts are `None`, never guessed.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cmd::run_ok;
use crate::sysfs::SysRoot;

/// Decoded `vcgencmd get_throttled` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttled {
    /// The raw bit field (`throttled=0x50005` gives 327685).
    pub raw: u32,
    /// Bit 0: under-voltage now.
    pub under_voltage: bool,
    /// Bit 1: ARM frequency capped now.
    pub freq_capped: bool,
    /// Bit 2: throttled now.
    pub throttled: bool,
    /// Bit 3: soft temperature limit active now.
    pub soft_temp_limit: bool,
    /// Bit 16: under-voltage has occurred since boot.
    pub under_voltage_occurred: bool,
    /// Bit 17: frequency capping has occurred.
    pub freq_capped_occurred: bool,
    /// Bit 18: throttling has occurred.
    pub throttled_occurred: bool,
    /// Bit 19: soft temperature limit has occurred.
    pub soft_temp_limit_occurred: bool,
}

impl Throttled {
    /// Decodes the bit field.
    pub fn from_raw(raw: u32) -> Self {
        let b = |n: u32| raw & (1 << n) != 0;
        Self {
            raw,
            under_voltage: b(0),
            freq_capped: b(1),
            throttled: b(2),
            soft_temp_limit: b(3),
            under_voltage_occurred: b(16),
            freq_capped_occurred: b(17),
            throttled_occurred: b(18),
            soft_temp_limit_occurred: b(19),
        }
    }

    /// Parses `throttled=0x50005`.
    pub fn parse(text: &str) -> Option<Self> {
        let v = text.trim().strip_prefix("throttled=")?.trim();
        let v = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")).unwrap_or(v);
        u32::from_str_radix(v, 16).ok().map(Self::from_raw)
    }

    /// Any limiting condition active now (a benchmark taken now is not representative).
    pub fn active_now(&self) -> bool {
        self.raw & 0xF != 0
    }

    /// Any limiting condition since boot.
    pub fn occurred(&self) -> bool {
        self.raw & 0xF_000F != 0
    }
}

/// A snapshot of the machine's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemState {
    /// `/proc/device-tree/model`, e.g. "Raspberry Pi 5 Model B Rev 1.0".
    pub board: Option<String>,
    /// CPU description, e.g. "Cortex-A76" or the x86 "model name".
    pub cpu: Option<String>,
    /// MIDR_EL1 of cpu0 as hex (`0x414fd0b1`), ARM only.
    pub midr: Option<String>,
    /// Online CPUs seen in `/proc/cpuinfo`.
    pub cpus: Option<u32>,
    /// cpufreq governor; `mixed(a,b)` if cores differ.
    pub governor: Option<String>,
    /// cpu0 current frequency, kHz.
    pub cur_freq_khz: Option<u64>,
    /// cpu0 maximum frequency, kHz.
    pub max_freq_khz: Option<u64>,
    /// Temperature in °C.
    pub temp_c: Option<f64>,
    /// Where `temp_c` came from (`thermal_zone0 (cpu-thermal)`, `vcgencmd`).
    pub temp_source: Option<String>,
    /// Raspberry Pi throttle state (needs `vcgencmd`).
    pub throttled: Option<Throttled>,
}

/// Name of an ARM core from the MIDR implementer and part numbers.
pub fn arm_core_name(implementer: u32, part: u32) -> Option<&'static str> {
    if implementer != 0x41 {
        return None;
    }
    Some(match part {
        0xd03 => "Cortex-A53",
        0xd04 => "Cortex-A35",
        0xd05 => "Cortex-A55",
        0xd07 => "Cortex-A57",
        0xd08 => "Cortex-A72",
        0xd09 => "Cortex-A73",
        0xd0a => "Cortex-A75",
        0xd0b => "Cortex-A76",
        0xd0c => "Neoverse-N1",
        0xd0d => "Cortex-A77",
        0xd41 => "Cortex-A78",
        0xd46 => "Cortex-A510",
        0xd47 => "Cortex-A710",
        0xd4d => "Cortex-A715",
        0xd80 => "Cortex-A520",
        0xd81 => "Cortex-A720",
        _ => return None,
    })
}

fn hex_field(v: &str) -> Option<u32> {
    let v = v.trim();
    let h = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X"));
    match h {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// CPU facts from `/proc/cpuinfo` text: (cpu description, MIDR hex, cpu count).
pub fn parse_cpuinfo(text: &str) -> (Option<String>, Option<String>, Option<u32>) {
    let mut model_name = None;
    let mut hardware = None;
    let (mut imp, mut var, mut part, mut rev) = (None, None, None, None);
    let mut cpus = 0u32;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => cpus += 1,
            "model name" if model_name.is_none() => model_name = Some(v.to_string()),
            "Hardware" if hardware.is_none() => hardware = Some(v.to_string()),
            "CPU implementer" if imp.is_none() => imp = hex_field(v),
            "CPU variant" if var.is_none() => var = hex_field(v),
            "CPU part" if part.is_none() => part = hex_field(v),
            "CPU revision" if rev.is_none() => rev = hex_field(v),
            _ => {}
        }
    }
    let mut midr = None;
    let cpu = if let (Some(i), Some(p)) = (imp, part) {
        let m = (i << 24) | (var.unwrap_or(0) << 20) | (0xf << 16) | (p << 4) | rev.unwrap_or(0);
        midr = Some(format!("0x{m:08x}"));
        Some(
            arm_core_name(i, p).map_or_else(
                || format!("ARM implementer 0x{i:02x} part 0x{p:03x}"),
                str::to_string,
            ),
        )
    } else {
        model_name.or(hardware)
    };
    (cpu, midr, (cpus > 0).then_some(cpus))
}

/// Peak resident set size (`VmHWM`) of this process, bytes.
pub fn peak_rss_bytes(root: &SysRoot) -> Option<u64> {
    let status = root.read("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix("VmHWM:")?.trim();
        let kb: u64 = v.strip_suffix("kB").unwrap_or(v).trim().parse().ok()?;
        kb.checked_mul(1024)
    })
}

/// Parses `temp=48.3'C`.
pub fn parse_measure_temp(text: &str) -> Option<f64> {
    let v = text.trim().strip_prefix("temp=")?;
    let v = v.trim_end_matches(|c: char| !c.is_ascii_digit());
    v.parse().ok()
}

fn read_temp(root: &SysRoot) -> Option<(f64, String)> {
    let base = "/sys/class/thermal";
    let zones: Vec<String> =
        root.list(base).ok()?.into_iter().filter(|z| z.starts_with("thermal_zone")).collect();
    let mut best: Option<(u8, f64, String)> = None;
    for z in zones {
        let Ok(milli) = root.read_i64(format!("{base}/{z}/temp")) else { continue };
        let ty = root.read_trim(format!("{base}/{z}/type")).unwrap_or_default();
        let t = ty.to_ascii_lowercase();
        let rank =
            if t.contains("cpu") || t.contains("x86_pkg") || t.contains("soc") { 0 } else { 1 };
        let c = milli as f64 / 1000.0;
        if best.as_ref().is_none_or(|b| rank < b.0) {
            best = Some((rank, c, format!("{z} ({ty})")));
        }
    }
    best.map(|(_, c, s)| (c, s))
}

impl SystemState {
    /// Reads the state under `root`; `vcgencmd`, when given, adds throttling (and temperature
    /// when no thermal zone exists).
    pub fn read(root: &SysRoot, vcgencmd: Option<&Path>) -> Self {
        let mut s = Self {
            board: root.read_trim("/proc/device-tree/model").ok().filter(|b| !b.is_empty()),
            ..Self::default()
        };
        if let Ok(text) = root.read("/proc/cpuinfo") {
            let (cpu, midr, cpus) = parse_cpuinfo(&text);
            s.cpu = cpu;
            s.midr = midr;
            s.cpus = cpus;
            if s.board.is_none() {
                s.board = text.lines().find_map(|l| {
                    l.strip_prefix("Model")
                        .and_then(|r| r.split_once(':'))
                        .map(|(_, v)| v.trim().to_string())
                });
            }
        }
        if let Ok(m) = root.read_trim("/sys/devices/system/cpu/cpu0/regs/identification/midr_el1")
            && let Some(v) = hex_field(&m)
        {
            s.midr = Some(format!("0x{v:08x}"));
        }
        let cpu_dir = "/sys/devices/system/cpu";
        let mut govs: Vec<String> = Vec::new();
        for c in root.list(cpu_dir).unwrap_or_default() {
            let is_cpu = c
                .strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !is_cpu {
                continue;
            }
            if let Ok(g) = root.read_trim(format!("{cpu_dir}/{c}/cpufreq/scaling_governor"))
                && !govs.contains(&g)
            {
                govs.push(g);
            }
        }
        s.governor = match govs.len() {
            0 => None,
            1 => govs.pop(),
            _ => Some(format!("mixed({})", govs.join(","))),
        };
        let f = |n: &str| root.read_u64(format!("{cpu_dir}/cpu0/cpufreq/{n}")).ok();
        s.cur_freq_khz = f("scaling_cur_freq").or_else(|| f("cpuinfo_cur_freq"));
        s.max_freq_khz = f("scaling_max_freq").or_else(|| f("cpuinfo_max_freq"));
        if let Some((c, src)) = read_temp(root) {
            s.temp_c = Some(c);
            s.temp_source = Some(src);
        }
        if let Some(vc) = vcgencmd {
            let limit = Duration::from_secs(2);
            s.throttled =
                run_ok(vc, &["get_throttled"], limit).ok().and_then(|o| Throttled::parse(&o));
            if s.temp_c.is_none()
                && let Some(c) =
                    run_ok(vc, &["measure_temp"], limit).ok().and_then(|o| parse_measure_temp(&o))
            {
                s.temp_c = Some(c);
                s.temp_source = Some("vcgencmd measure_temp".into());
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_bits() {
        let t = Throttled::parse("throttled=0x50005\n").expect("parse");
        assert!(t.under_voltage && !t.freq_capped && t.throttled && !t.soft_temp_limit);
        assert!(t.under_voltage_occurred && !t.freq_capped_occurred && t.throttled_occurred);
        assert!(!t.soft_temp_limit_occurred && t.active_now() && t.occurred());
        let z = Throttled::parse("throttled=0x0").expect("parse");
        assert!(!z.active_now() && !z.occurred());
        let past = Throttled::from_raw(0x80000);
        assert!(past.soft_temp_limit_occurred && !past.active_now() && past.occurred());
        assert_eq!(Throttled::parse("nonsense"), None);
    }

    #[test]
    fn cpuinfo_pi5() {
        let t = "processor\t: 0\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU architecture: 8\n\
                 CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\nprocessor\t: 1\n\
                 CPU implementer\t: 0x41\nCPU part\t: 0xd0b\n\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n";
        let (cpu, midr, n) = parse_cpuinfo(t);
        assert_eq!(cpu.as_deref(), Some("Cortex-A76"));
        assert_eq!(midr.as_deref(), Some("0x414fd0b1"));
        assert_eq!(n, Some(2));
    }

    #[test]
    fn measure_temp() {
        assert_eq!(parse_measure_temp("temp=48.3'C\n"), Some(48.3));
        assert_eq!(parse_measure_temp("error"), None);
    }
}
