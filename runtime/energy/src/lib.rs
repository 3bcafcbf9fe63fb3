//! tern-energy: what `tern bench` needs besides the model: **measured** energy, system state,
//! the `tern-bench/1` JSON record and a PNG plot.
//!
//! # Orientation
//! - [`probe`] picks an energy source (`--energy rapl|pmic|hwmon[:NAME]|meter:CMD|none|auto`):
//!   [`rapl`] (µJ counters, wrap-aware), [`pmic`] (Pi 5 `vcgencmd pmic_read_adc`, Σ V·I over
//!   rails, not the wall), [`hwmon`] (INA219/226/3221 `power*_input` or `in*`×`curr*`),
//!   [`meter`] (a user command printing watts). When nothing works the result says so, with one
//!   reason per source ([`Unavailable`]); an estimate is never reported as a measurement
//!   (team docs FORMATS.md §5: bitnet.cpp's `test_power.sh` prints CPU% × 200 W as "power").
//! - [`Sampler`] integrates a source on a thread between `start()` and `stop()` into a
//!   [`Measurement`]; `measure_idle()` gives the idle baseline.
//! - [`SystemState`] reads board, CPU/MIDR, governor, frequency, temperature and Pi throttle bits;
//!   [`peak_rss_bytes`] reads `VmHWM`. All file access goes through [`SysRoot`] (default `/`),
//!   so tests use fake trees.
//! - [`BenchRecord`] / [`Energy`] are the `tern bench --json` lines (`SCHEMA.md`);
//!   [`plot::write_png`] draws tok/s and J/token per thread count.
//!
//! ```no_run
//! use tern_energy::{probe, Energy, EnergyChoice, ProbeConfig, BenchRecord};
//! let probed = probe(&"auto".parse::<EnergyChoice>().unwrap(), &ProbeConfig::default());
//! let (sampler, reasons) = probed.into_sampler();
//! let energy = match sampler {
//!     Some(mut s) => {
//!         let idle = s.measure_idle(std::time::Duration::from_secs(2)).ok();
//!         s.start().unwrap();
//!         let tokens = 128; // ... run the benchmark ...
//!         match s.stop() {
//!             Ok(run) => Energy::measured(&run, idle.as_ref(), tokens),
//!             Err(e) => Energy::unavailable(vec![tern_energy::Unavailable::new("sampler", e.to_string())]),
//!         }
//!     }
//!     None => Energy::unavailable(reasons),
//! };
//! let mut rec = BenchRecord::new("tg128", 0, 128, 4, "dotprod", &[10.1, 10.3, 10.2]);
//! rec.energy = energy;
//! println!("{}", rec.to_json_line());
//! ```

mod cmd;
pub mod font;
pub mod hwmon;
pub mod meter;
pub mod plot;
pub mod pmic;
pub mod png;
mod probe;
pub mod rapl;
mod sampler;
mod schema;
mod source;
mod sysfs;
mod system;

pub use cmd::{CmdOutput, run_ok, run_with_timeout};
pub use probe::{EnergyChoice, ProbeConfig, Probed, probe};
pub use sampler::{Integrator, Measurement, SampleError, Sampler};
pub use schema::{
    BenchRecord, Energy, EnergyMeasured, EnergyUnavailable, SCHEMA, format_table, mean_sd,
};
pub use source::{Counter, EnergySource, Reading, Unavailable};
pub use sysfs::SysRoot;
pub use system::{
    SystemState, Throttled, arm_core_name, parse_cpuinfo, parse_measure_temp, peak_rss_bytes,
};
