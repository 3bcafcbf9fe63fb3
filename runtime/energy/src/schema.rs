//! The `tern bench --json` record, schema `tern-bench/1` (documented in `SCHEMA.md`).
//!
//! One JSON object per line per test (`pp128`, `tg128`, ...) and thread count. Every key is
//! always present (unknown values are `null`), so consumers can rely on the key set; the test
//! `schema_keys_are_stable` pins it. Adding a key is a minor change; renaming or removing one
//! bumps the schema string.

use serde::{Deserialize, Serialize};

use crate::sampler::Measurement;
use crate::source::Unavailable;
use crate::system::{SystemState, Throttled};

/// Schema identifier written into every record.
pub const SCHEMA: &str = "tern-bench/1";

/// A measured energy result for one test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnergyMeasured {
    /// `rapl`, `pmic`, `hwmon` or `meter`.
    pub method: String,
    /// Sensors summed.
    pub sensors: Vec<String>,
    /// What the number covers (e.g. PMIC rails, not the wall).
    pub scope: String,
    /// Seconds in the measured window.
    pub window_s: f64,
    /// Good readings in the window.
    pub samples: u32,
    /// Mean power over the window, W.
    pub avg_w: f64,
    /// Energy over the window, J.
    pub joules: f64,
    /// Tokens processed in the window.
    pub tokens: u64,
    /// `joules / tokens` (gross: includes idle power). `null` when `tokens` is 0.
    pub j_per_token: Option<f64>,
    /// Idle power measured just before the run, W (`null` if not measured).
    pub idle_w: Option<f64>,
    /// `(joules - idle_w * window_s) / tokens`. May be negative when the run's power is within
    /// the noise of the idle power; it is reported as computed, not clamped.
    pub j_per_token_idle_subtracted: Option<f64>,
}

/// No energy was measured: `method` is `null` and every source tried says why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(clippy::manual_non_exhaustive)] // the private unit field *is* the JSON `"method": null`
pub struct EnergyUnavailable {
    /// Always JSON `null`.
    method: (),
    /// One entry per source tried.
    pub unavailable: Vec<Unavailable>,
}

/// The `energy` member of a record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Energy {
    /// Measured by a named method.
    Measured(EnergyMeasured),
    /// Not measured, with reasons.
    Unavailable(EnergyUnavailable),
}

impl Energy {
    /// "Not measured", with the probe's reasons.
    pub fn unavailable(reasons: Vec<Unavailable>) -> Self {
        Self::Unavailable(EnergyUnavailable { method: (), unavailable: reasons })
    }

    /// From a run window, an optional idle window, and the tokens processed in the run window.
    pub fn measured(run: &Measurement, idle: Option<&Measurement>, tokens: u64) -> Self {
        let per = |j: f64| (tokens > 0).then(|| j / tokens as f64);
        let idle_w = idle.map(|m| m.avg_w);
        Self::Measured(EnergyMeasured {
            method: run.method.clone(),
            sensors: run.sensors.clone(),
            scope: run.scope.clone(),
            window_s: run.seconds,
            samples: run.samples,
            avg_w: run.avg_w,
            joules: run.joules,
            tokens,
            j_per_token: per(run.joules),
            idle_w,
            j_per_token_idle_subtracted: idle_w.and_then(|w| per(run.joules - w * run.seconds)),
        })
    }

    /// The measured part, if any.
    pub fn as_measured(&self) -> Option<&EnergyMeasured> {
        match self {
            Self::Measured(m) => Some(m),
            Self::Unavailable(_) => None,
        }
    }
}

/// One `tern bench` result line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchRecord {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// `pp<N>` (prompt processing) or `tg<N>` (generation), llama-bench style.
    pub test: String,
    /// Model file name.
    pub model: Option<String>,
    /// Prompt tokens.
    pub n_prompt: u32,
    /// Generated tokens.
    pub n_gen: u32,
    /// Worker threads.
    pub threads: u32,
    /// Kernel tier name (`reference`, `neon`, `dotprod`, ...).
    pub kernel: String,
    /// Repetitions averaged.
    pub reps: u32,
    /// Mean over repetitions of tokens/s.
    pub tok_s_mean: f64,
    /// Sample standard deviation of tokens/s (0 with one repetition).
    pub tok_s_sd: f64,
    /// `1000 / tok_s_mean`.
    pub ms_per_tok: f64,
    /// Time to first token, ms (generation tests; `null` otherwise).
    pub ttft_ms: Option<f64>,
    /// Peak RSS of the process (`VmHWM`), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Arena bytes planned for the model (activations + KV cache).
    pub arena_bytes: u64,
    /// Bytes streamed from weights per token.
    pub bytes_per_token: u64,
    /// `bytes_per_token * tok_s_mean / 1e9`.
    pub effective_gbps: f64,
    /// Board model.
    pub board: Option<String>,
    /// CPU description.
    pub cpu: Option<String>,
    /// MIDR_EL1 of cpu0 (ARM).
    pub midr: Option<String>,
    /// cpufreq governor.
    pub governor: Option<String>,
    /// cpu0 frequency after the run, kHz.
    pub cur_freq_khz: Option<u64>,
    /// cpu0 maximum frequency, kHz.
    pub max_freq_khz: Option<u64>,
    /// Temperature after the run, °C.
    pub temp_c: Option<f64>,
    /// Pi throttle state after the run (`null` when not a Pi / no `vcgencmd`).
    pub throttled: Option<Throttled>,
    /// False when the result must not be compared: output diverged from the reference kernel,
    /// or the board throttled during the run.
    pub valid: bool,
    /// Why `valid` is false (`null` when valid).
    pub invalid_reason: Option<String>,
    /// Energy, measured or with reasons why not.
    pub energy: Energy,
    /// Streaming-read memory bandwidth measured in the same run with the same thread count, GB/s
    /// (`tern bench --bandwidth`; `null` when not measured).
    #[serde(default)]
    pub bandwidth_gbps: Option<f64>,
    /// Generation tests: `effective_gbps / bandwidth_gbps`, the fraction of the memory-bandwidth
    /// ceiling (`bandwidth / bytes_per_token` tok/s) that decode reached. `null` for prompt tests
    /// and when the bandwidth was not measured.
    #[serde(default)]
    pub bandwidth_fraction: Option<f64>,
}

impl BenchRecord {
    /// A record with the timing fields computed from per-repetition tokens/s; system fields
    /// empty, energy "not measured" with no reasons (fill both in).
    pub fn new(
        test: impl Into<String>,
        n_prompt: u32,
        n_gen: u32,
        threads: u32,
        kernel: impl Into<String>,
        tok_s: &[f64],
    ) -> Self {
        let (mean, sd) = mean_sd(tok_s);
        Self {
            schema: SCHEMA.into(),
            test: test.into(),
            model: None,
            n_prompt,
            n_gen,
            threads,
            kernel: kernel.into(),
            reps: u32::try_from(tok_s.len()).unwrap_or(u32::MAX),
            tok_s_mean: mean,
            tok_s_sd: sd,
            ms_per_tok: if mean > 0.0 { 1000.0 / mean } else { f64::NAN },
            ttft_ms: None,
            peak_rss_bytes: None,
            arena_bytes: 0,
            bytes_per_token: 0,
            effective_gbps: 0.0,
            board: None,
            cpu: None,
            midr: None,
            governor: None,
            cur_freq_khz: None,
            max_freq_khz: None,
            temp_c: None,
            throttled: None,
            valid: true,
            invalid_reason: None,
            energy: Energy::unavailable(Vec::new()),
            bandwidth_gbps: None,
            bandwidth_fraction: None,
        }
    }

    /// Sets `bytes_per_token` and recomputes `effective_gbps`.
    pub fn set_bytes_per_token(&mut self, bytes: u64) {
        self.bytes_per_token = bytes;
        self.effective_gbps = bytes as f64 * self.tok_s_mean / 1e9;
    }

    /// Sets `bandwidth_gbps` and, for a generation test (`n_gen > 0`, `n_prompt == 0`), the
    /// fraction of that bandwidth decode reached (`effective_gbps / gbps`). Call after
    /// [`BenchRecord::set_bytes_per_token`].
    pub fn set_bandwidth(&mut self, gbps: f64) {
        self.bandwidth_gbps = Some(gbps);
        self.bandwidth_fraction = (self.n_gen > 0 && self.n_prompt == 0 && gbps > 0.0)
            .then(|| self.effective_gbps / gbps);
    }

    /// Sets `bandwidth_gbps` to the mean of `ceilings` (one streaming read per repetition, taken
    /// around it) and, for a generation test, the fraction as the mean over repetitions of
    /// `tok_s[i] · bytes_per_token / ceilings[i]`: each repetition is held against the bandwidth
    /// measured next to it. Call after [`BenchRecord::set_bytes_per_token`]; ignored when the
    /// slices are empty or of different lengths.
    pub fn set_bandwidth_per_rep(&mut self, tok_s: &[f64], ceilings: &[f64]) {
        if tok_s.is_empty() || tok_s.len() != ceilings.len() {
            return;
        }
        let n = ceilings.len() as f64;
        self.bandwidth_gbps = Some(ceilings.iter().sum::<f64>() / n);
        let decode = self.n_gen > 0 && self.n_prompt == 0 && ceilings.iter().all(|&c| c > 0.0);
        self.bandwidth_fraction = decode.then(|| {
            let bytes = self.bytes_per_token as f64;
            tok_s.iter().zip(ceilings).map(|(t, c)| t * bytes / 1e9 / c).sum::<f64>() / n
        });
    }

    /// Copies board, CPU, governor, frequency, temperature and throttle state. A throttle
    /// condition active now marks the record invalid.
    pub fn apply_system(&mut self, s: &SystemState) {
        self.board = s.board.clone();
        self.cpu = s.cpu.clone();
        self.midr = s.midr.clone();
        self.governor = s.governor.clone();
        self.cur_freq_khz = s.cur_freq_khz;
        self.max_freq_khz = s.max_freq_khz;
        self.temp_c = s.temp_c;
        self.throttled = s.throttled;
        if let Some(t) = s.throttled
            && t.active_now()
        {
            self.mark_invalid(format!("board throttled during run (get_throttled=0x{:x})", t.raw));
        }
    }

    /// Marks the record invalid, appending to any earlier reason.
    pub fn mark_invalid(&mut self, reason: impl Into<String>) {
        self.valid = false;
        let r = reason.into();
        self.invalid_reason = Some(match self.invalid_reason.take() {
            Some(prev) => format!("{prev}; {r}"),
            None => r,
        });
    }

    /// One JSON line (no trailing newline). Non-finite floats become `null`.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"schema\":\"{SCHEMA}\",\"error\":\"{e}\"}}"))
    }
}

/// Mean and sample standard deviation (n − 1; 0 for fewer than two values). Empty → (0, 0).
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// A human table of records (what `tern bench` prints without `--json`).
pub fn format_table(records: &[BenchRecord]) -> String {
    let mut s = String::from(
        "| test | threads | kernel | tok/s | ms/tok | GB/s | J/token | J/token (-idle) | method |\n",
    );
    s.push_str("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for r in records {
        let (jpt, jpti, method) = match &r.energy {
            Energy::Measured(m) => (
                m.j_per_token.map_or("-".into(), |v| format!("{v:.4}")),
                m.j_per_token_idle_subtracted.map_or("-".into(), |v| format!("{v:.4}")),
                m.method.clone(),
            ),
            Energy::Unavailable(_) => ("n/a".into(), "n/a".into(), "not measured".into()),
        };
        let flag = if r.valid { "" } else { " (INVALID)" };
        s.push_str(&format!(
            "| {}{flag} | {} | {} | {:.2} ± {:.2} | {:.1} | {:.2} | {jpt} | {jpti} | {method} |\n",
            r.test, r.threads, r.kernel, r.tok_s_mean, r.tok_s_sd, r.ms_per_tok, r.effective_gbps
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sd_values() {
        assert_eq!(mean_sd(&[]), (0.0, 0.0));
        assert_eq!(mean_sd(&[3.0]), (3.0, 0.0));
        let (m, sd) = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert!((m - 5.0).abs() < 1e-12);
        assert!((sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn bandwidth_fraction_only_for_generation() {
        let mut tg = BenchRecord::new("tg128", 0, 128, 4, "neon", &[8.0]);
        tg.set_bytes_per_token(1_000_000_000);
        tg.set_bandwidth(10.0);
        assert_eq!((tg.bandwidth_gbps, tg.bandwidth_fraction), (Some(10.0), Some(0.8)));
        let mut pp = BenchRecord::new("pp128", 128, 0, 4, "neon", &[50.0]);
        pp.set_bytes_per_token(1_000_000);
        pp.set_bandwidth(10.0);
        assert_eq!((pp.bandwidth_gbps, pp.bandwidth_fraction), (Some(10.0), None));
        // Per repetition: 8 tok/s against 10 GB/s, 12 against 20 → mean of 0.8 and 0.6.
        let mut tg = BenchRecord::new("tg128", 0, 128, 4, "neon", &[8.0, 12.0]);
        tg.set_bytes_per_token(1_000_000_000);
        tg.set_bandwidth_per_rep(&[8.0, 12.0], &[10.0, 20.0]);
        assert_eq!(tg.bandwidth_gbps, Some(15.0));
        assert!((tg.bandwidth_fraction.expect("tg") - 0.7).abs() < 1e-12);
        let mut pp = BenchRecord::new("pp128", 128, 0, 4, "neon", &[50.0]);
        pp.set_bytes_per_token(1_000_000);
        pp.set_bandwidth_per_rep(&[50.0], &[10.0]);
        assert_eq!((pp.bandwidth_gbps, pp.bandwidth_fraction), (Some(10.0), None));
        // Lines written before these keys existed still parse.
        let mut v: serde_json::Value = serde_json::from_str(&tg.to_json_line()).expect("json");
        let o = v.as_object_mut().expect("object");
        o.remove("bandwidth_gbps");
        o.remove("bandwidth_fraction");
        let old: BenchRecord = serde_json::from_value(v).expect("old line");
        assert_eq!(old.bandwidth_gbps, None);
    }
}
