//! Intel/AMD RAPL through the powercap interface.
//!
//! `/sys/class/powercap/intel-rapl:N/energy_uj` is a µJ counter per package that wraps to zero
//! past `max_energy_range_uj`. Only top-level zones (`intel-rapl:N`) are summed; their
//! sub-zones (`intel-rapl:N:M`: core, uncore, dram) are part of the package and would be counted
//! twice. Sub-zones are used only when no top-level zone exists. Since Linux 5.10
//! (CVE-2020-8694, "Platypus") `energy_uj` is readable by root only, which is the usual reason
//! RAPL is unavailable.

use crate::source::{Counter, EnergySource, Reading};
use crate::sysfs::{SysRoot, io_reason};

const POWERCAP: &str = "/sys/class/powercap";

#[derive(Clone, Debug)]
struct Zone {
    dir: String,
    label: String,
    max_uj: u64,
}

/// RAPL package counters.
#[derive(Clone, Debug)]
pub struct Rapl {
    root: SysRoot,
    zones: Vec<Zone>,
}

impl Rapl {
    /// Finds readable RAPL zones under `root`, or says why there are none.
    pub fn probe(root: &SysRoot) -> Result<Self, String> {
        let names = root.list(POWERCAP).map_err(|e| {
            format!("no powercap interface ({})", io_reason(&root.path(POWERCAP), &e))
        })?;
        let rapl: Vec<&String> = names.iter().filter(|n| n.starts_with("intel-rapl:")).collect();
        if rapl.is_empty() {
            return Err(format!("no intel-rapl:* zones in {POWERCAP} (not an x86 CPU with RAPL?)"));
        }
        let top: Vec<&String> =
            rapl.iter().copied().filter(|n| n.matches(':').count() == 1).collect();
        let chosen = if top.is_empty() { rapl } else { top };
        let mut zones = Vec::new();
        let mut problems = Vec::new();
        for n in chosen {
            let dir = format!("{POWERCAP}/{n}");
            let label = root.read_trim(format!("{dir}/name")).unwrap_or_else(|_| "?".into());
            let energy = format!("{dir}/energy_uj");
            match root.read_u64(&energy) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    problems.push(format!(
                        "{}: permission denied (RAPL counters are root-only since Linux 5.10; run as \
                         root or grant read access to energy_uj)",
                        root.path(&energy).display()
                    ));
                    continue;
                }
                Err(e) => {
                    problems.push(io_reason(&root.path(&energy), &e));
                    continue;
                }
            }
            let max_uj = match root.read_u64(format!("{dir}/max_energy_range_uj")) {
                Ok(m) if m > 0 => m,
                Ok(_) => {
                    problems.push(format!("{n}: max_energy_range_uj is 0"));
                    continue;
                }
                Err(e) => {
                    problems.push(io_reason(&root.path(format!("{dir}/max_energy_range_uj")), &e));
                    continue;
                }
            };
            zones.push(Zone { dir, label: format!("{n} ({label})"), max_uj });
        }
        if !problems.is_empty() {
            // All or nothing: a partial package sum would under-report.
            return Err(problems.join("; "));
        }
        Ok(Self { root: root.clone(), zones })
    }
}

impl EnergySource for Rapl {
    fn method(&self) -> &str {
        "rapl"
    }

    fn sensors(&self) -> Vec<String> {
        self.zones.iter().map(|z| z.label.clone()).collect()
    }

    fn scope(&self) -> String {
        "CPU package energy counters (RAPL): SoC package, not the wall".into()
    }

    fn read(&mut self) -> Result<Reading, String> {
        let mut out = Vec::with_capacity(self.zones.len());
        for z in &self.zones {
            let p = format!("{}/energy_uj", z.dir);
            let uj = self.root.read_u64(&p).map_err(|e| io_reason(&self.root.path(&p), &e))?;
            out.push(Counter { uj, max_uj: z.max_uj });
        }
        Ok(Reading::Counters(out))
    }
}
