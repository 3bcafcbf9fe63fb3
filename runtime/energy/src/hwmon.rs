//! Power monitors under `/sys/class/hwmon` (INA219/INA226/INA3221 and friends).
//!
//! A channel is either `powerN_input` (µW), or a bus voltage `inN_input` (mV) times a current
//! `currN_input` (mA) with the same index N (the INA3221 driver exposes `in1..3`/`curr1..3`;
//! `in4..6` are shunt voltages with no current and stay unpaired). Where a device has both,
//! `power*` wins, so nothing is counted twice.
//!
//! Selection (`--energy hwmon`): INA-family devices (`name` starting with `ina`) if any exist,
//! otherwise any device with `power*_input`. On a labelled multi-channel monitor such as the
//! Jetson INA3221 (`in1_label = VDD_IN`, `in2_label = VDD_CPU_GPU_CV`, ...), a channel whose label
//! is an input rail (`VDD_IN`, `VIN`, `*_IN`) is the board total and the others are its sub-rails,
//! so only the input rail is used. `--energy hwmon:FILTER` keeps devices whose `name` equals
//! FILTER, or single sensors named FILTER (`ina3221:VDD_CPU_GPU_CV`).

use crate::source::{EnergySource, Reading};
use crate::sysfs::{SysRoot, io_reason, natural_cmp};

const HWMON: &str = "/sys/class/hwmon";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// `powerN_input`, µW.
    Power(String),
    /// `inN_input` mV × `currN_input` mA.
    VoltCurr(String, String),
}

#[derive(Clone, Debug)]
struct Channel {
    name: String,
    kind: Kind,
    label: Option<String>,
}

#[derive(Clone, Debug)]
struct Device {
    name: String,
    channels: Vec<Channel>,
}

/// Selected hwmon power channels.
#[derive(Clone, Debug)]
pub struct Hwmon {
    root: SysRoot,
    channels: Vec<Channel>,
    note: String,
}

fn is_ina(name: &str) -> bool {
    name.starts_with("ina")
}

fn is_input_rail(label: &str) -> bool {
    let l = label.to_ascii_uppercase();
    l == "VIN" || l == "VDD_IN" || l.ends_with("_IN")
}

fn indices(files: &[String], prefix: &str, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = files
        .iter()
        .filter_map(|f| f.strip_prefix(prefix)?.strip_suffix(suffix).map(str::to_string))
        .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    v.sort_by(|a, b| natural_cmp(a, b));
    v
}

fn scan_device(root: &SysRoot, hw: &str) -> Option<Device> {
    let mut dir = format!("{HWMON}/{hw}");
    if !root.exists(format!("{dir}/name")) && root.exists(format!("{dir}/device/name")) {
        dir = format!("{dir}/device");
    }
    let name = root.read_trim(format!("{dir}/name")).ok()?;
    let files = root.list(&dir).ok()?;
    let label =
        |stem: &str| root.read_trim(format!("{dir}/{stem}_label")).ok().filter(|s| !s.is_empty());
    let mut channels = Vec::new();
    let powers = indices(&files, "power", "_input");
    if !powers.is_empty() {
        for i in powers {
            let stem = format!("power{i}");
            let lab = label(&stem);
            channels.push(Channel {
                name: String::new(),
                kind: Kind::Power(format!("{dir}/{stem}_input")),
                label: lab,
            });
        }
    } else {
        let currs = indices(&files, "curr", "_input");
        for i in indices(&files, "in", "_input") {
            if !currs.contains(&i) {
                continue;
            }
            let lab = label(&format!("in{i}")).or_else(|| label(&format!("curr{i}")));
            channels.push(Channel {
                name: String::new(),
                kind: Kind::VoltCurr(format!("{dir}/in{i}_input"), format!("{dir}/curr{i}_input")),
                label: lab,
            });
        }
    }
    for c in &mut channels {
        let idx = match &c.kind {
            Kind::Power(p) => p
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix("_input"))
                .unwrap_or("?")
                .to_string(),
            Kind::VoltCurr(v, _) => v
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix("_input"))
                .unwrap_or("?")
                .to_string(),
        };
        c.name = match &c.label {
            Some(l) => format!("{name}:{l}"),
            None => format!("{name}@{hw}:{idx}"),
        };
    }
    Some(Device { name, channels })
}

fn read_channel(root: &SysRoot, c: &Channel) -> Result<f64, String> {
    let rd = |p: &str| root.read_i64(p).map_err(|e| io_reason(&root.path(p), &e));
    match &c.kind {
        Kind::Power(p) => Ok(rd(p)? as f64 * 1e-6),
        Kind::VoltCurr(v, i) => Ok(rd(v)? as f64 * rd(i)? as f64 * 1e-6),
    }
}

impl Hwmon {
    /// Finds power channels under `root` (optionally filtered), or says why there are none.
    pub fn probe(root: &SysRoot, filter: Option<&str>) -> Result<Self, String> {
        let hws = root
            .list(HWMON)
            .map_err(|e| format!("no hwmon class ({})", io_reason(&root.path(HWMON), &e)))?;
        let devices: Vec<Device> = hws.iter().filter_map(|h| scan_device(root, h)).collect();
        let with_power: Vec<&Device> = devices.iter().filter(|d| !d.channels.is_empty()).collect();
        if with_power.is_empty() {
            let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
            return Err(format!(
                "no hwmon device with power*_input or paired in*_input/curr*_input (devices: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ));
        }
        let mut notes = Vec::new();
        let mut chosen: Vec<Channel> = Vec::new();
        if let Some(f) = filter {
            for d in &with_power {
                if d.name == f {
                    chosen.extend(d.channels.iter().cloned());
                } else {
                    chosen.extend(d.channels.iter().filter(|c| c.name == f).cloned());
                }
            }
            if chosen.is_empty() {
                let all: Vec<String> = with_power
                    .iter()
                    .flat_map(|d| d.channels.iter().map(|c| c.name.clone()))
                    .collect();
                return Err(format!(
                    "no hwmon device or sensor named {f:?} (have: {})",
                    all.join(", ")
                ));
            }
        } else {
            let ina: Vec<&&Device> = with_power.iter().filter(|d| is_ina(&d.name)).collect();
            let pick: Vec<&Device> = if ina.is_empty() {
                let p: Vec<&Device> = with_power
                    .iter()
                    .copied()
                    .filter(|d| d.channels.iter().any(|c| matches!(c.kind, Kind::Power(_))))
                    .collect();
                if p.is_empty() {
                    return Err(
                        "only non-INA hwmon devices with voltage x current pairs; not trusted as \
                                power (select one with --energy hwmon:NAME)"
                            .into(),
                    );
                }
                p
            } else {
                ina.into_iter().copied().collect()
            };
            for d in pick {
                let inputs: Vec<&Channel> = d
                    .channels
                    .iter()
                    .filter(|c| c.label.as_deref().is_some_and(is_input_rail))
                    .collect();
                if inputs.is_empty() {
                    chosen.extend(d.channels.iter().cloned());
                } else {
                    notes.push(format!(
                        "{}: using the input rail only (other channels are its sub-rails)",
                        d.name
                    ));
                    chosen.extend(inputs.into_iter().cloned());
                }
            }
        }
        // Drop channels that cannot be read now (e.g. disabled INA3221 channels), but say so.
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for c in chosen {
            match read_channel(root, &c) {
                Ok(_) => ok.push(c),
                Err(e) => bad.push(format!("{}: {e}", c.name)),
            }
        }
        if ok.is_empty() {
            return Err(format!("hwmon power channels unreadable: {}", bad.join("; ")));
        }
        if !bad.is_empty() {
            notes.push(format!("skipped unreadable: {}", bad.join("; ")));
        }
        Ok(Self { root: root.clone(), channels: ok, note: notes.join("; ") })
    }
}

impl EnergySource for Hwmon {
    fn method(&self) -> &str {
        "hwmon"
    }

    fn sensors(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.name.clone()).collect()
    }

    fn scope(&self) -> String {
        let mut s = format!(
            "sum of {} hwmon power channel(s); covers what the sensor is wired to",
            self.channels.len()
        );
        if !self.note.is_empty() {
            s.push_str("; ");
            s.push_str(&self.note);
        }
        s
    }

    fn read(&mut self) -> Result<Reading, String> {
        let mut w = 0.0;
        for c in &self.channels {
            w += read_channel(&self.root, c)?;
        }
        Ok(Reading::Watts(w))
    }
}
