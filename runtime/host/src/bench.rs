//! `tern bench`: llama-bench's pp/tg protocol, plus what nobody publishes (DESIGN §9).
//!
//! Per thread count (`-t 1,2,4`), after one short warm-up:
//! - `ppN`: N prompt tokens (BOS, then fixed pseudo-random ids) evaluated in `-b` chunks through
//!   the GEMM path, logits for the last token only; tok/s = N ÷ wall time.
//! - `tgM`: M decode steps one token at a time from an empty context: BOS first, then the argmax
//!   of each step's logits fed back; tok/s = M ÷ wall time.
//! - TTFT (on the `tg` record): the prompt of N tokens plus the first decode step (the prompt's
//!   argmax fed back), measured in its own repetitions outside the energy windows.
//!
//! Each test runs `-r` times; records carry mean ± sd tok/s, ms/token, peak RSS (`VmHWM`), arena
//! bytes, weight bytes per token and the effective GB/s, the kernel tier and the system state
//! read after the test (`tern_energy::SystemState`; a throttled Pi marks the record invalid).
//!
//! **Correctness gate.** Before timing, the chosen kernels and [`KernelSet::REFERENCE`] run the
//! same few tokens (BOS + ids, batched and one at a time); every tier is bit-exact by design, so
//! the logits must be identical bit for bit. A mismatch marks every record invalid.
//!
//! **Energy** is measured or not reported (`tern_energy`): one probe, an idle baseline over
//! `--idle-secs`, and a sampler window around all repetitions of each test.
//!
//! **`--bandwidth`** adds a streaming-read benchmark with the same threads — a plain sum over an
//! anonymous buffer far larger than the last-level cache (512 MiB, or half the available memory
//! when that is less), best of three passes — and, for `tg`, the fraction of the memory-bound
//! ceiling (bandwidth ÷ bytes per token) that decode reached. The stream is read before each
//! repetition and after the last; each repetition is held against the mean of the reads on either
//! side of it, and the record carries the mean of those ceilings and of the repetitions'
//! fractions. A VM's or a throttling board's bandwidth drifts over a run — the 2-vCPU guest this
//! was written on switches between ~30 and ~60 GB/s at 2 threads, sometimes within one test — and
//! a ceiling measured seconds away from the decode it divides says little. The reads stay outside
//! the energy windows: with `--bandwidth`, each repetition has a window of its own and the test's
//! energy is their sum. The buffer is allocated (and filled) once, after the model; the records'
//! peak RSS leaves it out: the larger of the peak before it existed and the peak since minus its
//! bytes, which is exact while it stays resident. (The model file's own mapped pages stream 6–16 %
//! slower than anonymous memory on the x86 VM this was written on, so they would make a lower,
//! flattering ceiling.)

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use tern_energy::{
    BenchRecord, Energy, EnergyChoice, Measurement, ProbeConfig, Sampler, SysRoot, SystemState,
    Unavailable,
};
use tern_kernels::KernelSet;
use tern_runtime::engine::{Engine, Logits};
use tern_runtime::par::Parallel;
use tern_runtime::sampler::argmax;
use tern_runtime::session::SessionOptions;

use crate::{load, pool::Pool};

/// Arguments of `tern bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// GGUF model file.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Prompt tokens of the `pp` test (0 = no pp test).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
    n_prompt: usize,
    /// Generated tokens of the `tg` test (0 = no tg test).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    n_gen: usize,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// Thread counts, comma-separated (e.g. 1,2,4; default: all cores).
    #[arg(short = 't', long = "threads")]
    threads: Option<String>,
    /// Kernel tier: reference, neon, dotprod, tl1, avx2, vnni (may only lower the detected tier).
    #[arg(long = "kernel")]
    kernel: Option<String>,
    /// Where decode reads the LM head: copied into the arena (huge pages) or from the file
    /// mapping; `auto` copies it when the kernel gives transparent huge pages.
    #[arg(long = "head", value_enum, default_value_t = load::HeadPlace::Auto)]
    head: load::HeadPlace,
    /// Energy source: auto, none, rapl, pmic, hwmon[:NAME], meter:CMD.
    #[arg(long = "energy", default_value = "auto")]
    energy: String,
    /// Seconds of idle power measured before the runs (0 = skip).
    #[arg(long = "idle-secs", default_value_t = 2.0)]
    idle_secs: f64,
    /// Print one JSON object per line (schema tern-bench/1) instead of the table.
    #[arg(long = "json")]
    json: bool,
    /// Also write a PNG plot of tok/s and J/token against threads.
    #[arg(long = "plot")]
    plot: Option<PathBuf>,
    /// Context length (0 = just what the tests need).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0)]
    ctx: usize,
    /// Prompt batch size (tokens per GEMM pass).
    #[arg(short = 'b', long = "batch-size", default_value_t = 64)]
    batch: usize,
    /// Root of the sysfs/procfs tree read for energy and system state (testing).
    #[arg(long = "sysroot")]
    sysroot: Option<PathBuf>,
    /// The vcgencmd program (Raspberry Pi throttling, temperature and the Pi 5 PMIC).
    #[arg(long = "vcgencmd", default_value = "vcgencmd")]
    vcgencmd: PathBuf,
    /// Also measure streaming-read memory bandwidth and decode's fraction of that ceiling.
    #[arg(long = "bandwidth")]
    bandwidth: bool,
}

/// Positions of the correctness gate's batch (BOS + ids): the batched GEMM path over several
/// positions, checked through the last position's logits (which depend on every earlier one).
const GATE_POSITIONS: usize = 3;

/// Above this many weight bytes per token, the gate's one-at-a-time run covers BOS only: the
/// reference kernels take seconds per token on a 2B model, and one decode step already runs
/// every GEMV, quantisation and LM-head kernel.
const GATE_BIG_MODEL_BYTES: u64 = 256 << 20;

/// Parses `-t 1,2,4`: thread counts ≥ 1, duplicates dropped, order kept.
fn parse_threads(s: &str) -> Result<Vec<usize>, String> {
    let bad = |why: &str| {
        format!(
            "bad -t value '{s}': {why} (expected thread counts separated by commas, e.g. 1,2,4)"
        )
    };
    let mut v = Vec::new();
    for part in s.split(',') {
        let p = part.trim();
        if p.is_empty() {
            return Err(bad("empty entry"));
        }
        let n: usize = p.parse().map_err(|_| bad(&format!("'{p}' is not a number")))?;
        if n == 0 || n > 1024 {
            return Err(bad(&format!("{n} is not between 1 and 1024")));
        }
        if !v.contains(&n) {
            v.push(n);
        }
    }
    Ok(v)
}

/// xorshift64*: fixed pseudo-random prompt ids (the same on every run and board).
fn prompt_ids(n: usize, bos: u32, n_tok: usize) -> Vec<u32> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        if i == 0 {
            v.push(bos);
            continue;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
        v.push((r % n_tok as u64) as u32);
    }
    v
}

fn eval(e: &mut Engine<'_>, ids: &[u32], which: Logits, par: &dyn Parallel) -> Result<(), String> {
    e.eval(ids, which, par).map_err(|err| err.to_string())
}

/// The prompt in `nb`-token chunks; logits for the last token only.
fn feed_prompt(
    e: &mut Engine<'_>,
    ids: &[u32],
    nb: usize,
    par: &dyn Parallel,
) -> Result<(), String> {
    let chunks = ids.len().div_ceil(nb);
    for (i, c) in ids.chunks(nb).enumerate() {
        eval(e, c, if i + 1 == chunks { Logits::Last } else { Logits::None }, par)?;
    }
    Ok(())
}

fn next_token(e: &Engine<'_>) -> u32 {
    argmax(e.last_logits()) as u32
}

/// One `pp` repetition: seconds for the prompt.
fn run_pp(e: &mut Engine<'_>, ids: &[u32], nb: usize, par: &dyn Parallel) -> Result<f64, String> {
    e.reset();
    let t0 = Instant::now();
    feed_prompt(e, ids, nb, par)?;
    Ok(t0.elapsed().as_secs_f64())
}

/// One `tg` repetition: (seconds for all `n` steps, seconds of the first step).
fn run_tg(
    e: &mut Engine<'_>,
    bos: u32,
    n: usize,
    par: &dyn Parallel,
) -> Result<(f64, f64), String> {
    e.reset();
    let mut tok = bos;
    let t0 = Instant::now();
    let mut first = 0.0;
    for i in 0..n {
        eval(e, &[tok], Logits::Last, par)?;
        tok = next_token(e);
        if i == 0 {
            first = t0.elapsed().as_secs_f64();
        }
    }
    Ok((t0.elapsed().as_secs_f64(), first))
}

/// One TTFT repetition: the prompt, then the first decode step.
fn run_ttft(e: &mut Engine<'_>, ids: &[u32], nb: usize, par: &dyn Parallel) -> Result<f64, String> {
    e.reset();
    let t0 = Instant::now();
    feed_prompt(e, ids, nb, par)?;
    let tok = next_token(e);
    eval(e, &[tok], Logits::Last, par)?;
    let _ = next_token(e);
    Ok(t0.elapsed().as_secs_f64())
}

/// With kernels `k`: the last logits of `ids` run as one batch, and the logits of the first
/// `n_single` of `ids` run one at a time.
fn gate_logits(
    e: &mut Engine<'_>,
    k: KernelSet,
    ids: &[u32],
    n_single: usize,
    par: &dyn Parallel,
) -> Result<(Vec<f32>, Vec<f32>), String> {
    e.kernels = k;
    e.reset();
    eval(e, ids, Logits::Last, par)?;
    let batched = e.last_logits().to_vec();
    e.reset();
    let mut single = Vec::with_capacity(n_single * batched.len());
    for &t in &ids[..n_single] {
        eval(e, &[t], Logits::Last, par)?;
        single.extend_from_slice(e.last_logits());
    }
    e.reset();
    Ok((batched, single))
}

/// The first difference between two logit sets, described; `None` when bit-identical.
fn first_diff(what: &str, a: &[f32], b: &[f32], n_vocab: usize) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{what}: {} vs {} logits", a.len(), b.len()));
    }
    let n = a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
    let i = a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits())?;
    let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    Some(format!(
        "{what}: {n} of {} logits differ, first at row {} id {} ({:e} vs reference {:e}), max |diff| {max:e}",
        a.len(),
        i / n_vocab,
        i % n_vocab,
        a[i],
        b[i]
    ))
}

/// Runs the correctness gate; `Ok(None)` when the chosen kernels match the reference bit for bit.
fn gate(
    e: &mut Engine<'_>,
    ids: &[u32],
    n_single: usize,
    par: &dyn Parallel,
) -> Result<Option<String>, String> {
    let chosen = e.kernels;
    let (rb, rs) = gate_logits(e, KernelSet::REFERENCE, ids, n_single, par)?;
    let (cb, cs) = gate_logits(e, chosen, ids, n_single, par)?;
    e.kernels = chosen;
    let v = e.config.n_vocab;
    let diffs: Vec<String> =
        [first_diff("batched", &cb, &rb, v), first_diff("one at a time", &cs, &rs, v)]
            .into_iter()
            .flatten()
            .collect();
    Ok((!diffs.is_empty()).then(|| diffs.join("; ")))
}

/// The energy context of a run: a sampler (or the reasons there is none) and the idle baseline.
struct EnergyCtx {
    sampler: Option<Sampler>,
    reasons: Vec<Unavailable>,
    idle: Option<Measurement>,
}

impl EnergyCtx {
    /// Runs `f` inside a sampler window; `tokens` are the tokens processed in it.
    fn window<T>(
        &mut self,
        tokens: u64,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Result<(T, Energy), String> {
        let Some(s) = self.sampler.as_mut() else {
            return Ok((f()?, Energy::unavailable(self.reasons.clone())));
        };
        if let Err(e) = s.start() {
            return Ok((
                f()?,
                Energy::unavailable(vec![Unavailable::new("sampler", e.to_string())]),
            ));
        }
        let r = f();
        let stopped = s.stop();
        let v = r?;
        let energy = match stopped {
            Ok(m) => Energy::measured(&m, self.idle.as_ref(), tokens),
            Err(e) => Energy::unavailable(vec![Unavailable::new("sampler", e.to_string())]),
        };
        Ok((v, energy))
    }
}

impl EnergyCtx {
    /// Runs `f` `reps` times; `tokens` are the tokens of one repetition. Without `between`, one
    /// sampler window covers all repetitions ([`EnergyCtx::window`]). With it, `between()` runs
    /// before the first repetition and after each one, outside the windows: every repetition has
    /// a window of its own and the energy is their sum ([`Measurement::combine`]).
    fn reps<T>(
        &mut self,
        tokens: u64,
        reps: usize,
        between: Option<&mut dyn FnMut()>,
        mut f: impl FnMut() -> Result<T, String>,
    ) -> Result<(Vec<T>, Energy), String> {
        let Some(between) = between else {
            return self.window(tokens * reps as u64, || (0..reps).map(|_| f()).collect());
        };
        let mut out = Vec::with_capacity(reps);
        let mut windows = Vec::with_capacity(reps);
        let mut failed: Option<Unavailable> = None;
        between();
        for _ in 0..reps {
            match self.sampler.as_mut() {
                Some(s) if failed.is_none() => {
                    if let Err(e) = s.start() {
                        failed = Some(Unavailable::new("sampler", e.to_string()));
                        out.push(f()?);
                    } else {
                        let r = f();
                        let stopped = s.stop();
                        out.push(r?);
                        match stopped {
                            Ok(m) => windows.push(m),
                            Err(e) => failed = Some(Unavailable::new("sampler", e.to_string())),
                        }
                    }
                }
                _ => out.push(f()?),
            }
            between();
        }
        let energy = match (&self.sampler, failed, Measurement::combine(&windows)) {
            (None, ..) => Energy::unavailable(self.reasons.clone()),
            (_, Some(why), _) => Energy::unavailable(vec![why]),
            (_, None, Some(m)) => Energy::measured(&m, self.idle.as_ref(), tokens * reps as u64),
            (_, None, None) => Energy::unavailable(vec![Unavailable::new("sampler", "no windows")]),
        };
        Ok((out, energy))
    }
}

/// Streaming-read bandwidth over `words` with `pool`'s threads: best of `passes`, GB/s.
fn stream_read_gbps(words: &[[u8; 8]], pool: &Pool, passes: usize) -> f64 {
    let tasks = pool.threads();
    let sums: Vec<AtomicU64> = (0..tasks).map(|_| AtomicU64::new(0)).collect();
    let mut best = 0.0f64;
    for _ in 0..passes {
        let t0 = Instant::now();
        pool.run(tasks, &|i| {
            let (a, b) = tern_runtime::par::split_rows(words.len(), tasks, 64, i);
            sums[i].store(sum_u64(&words[a..b]), Ordering::Relaxed);
        });
        let dt = t0.elapsed().as_secs_f64();
        std::hint::black_box(
            sums.iter().map(|s| s.load(Ordering::Relaxed)).fold(0u64, u64::wrapping_add),
        );
        best = best.max((words.len() * 8) as f64 / dt.max(1e-9) / 1e9);
    }
    best
}

/// Wrapping sum of native-endian words with eight independent accumulators (vectorises;
/// memory-bound).
fn sum_u64(x: &[[u8; 8]]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(u64::from_ne_bytes(*v));
        }
    }
    let tail = chunks.remainder().iter().fold(0u64, |s, v| s.wrapping_add(u64::from_ne_bytes(*v)));
    acc.iter().fold(tail, |s, v| s.wrapping_add(*v))
}

/// Bytes of the bandwidth buffer: 512 MiB, or half the available memory when that is less.
fn bandwidth_buffer_bytes() -> usize {
    const MAX: usize = 512 << 20;
    let avail = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines().find_map(|l| {
            let v = l.strip_prefix("MemAvailable:")?.trim();
            v.strip_suffix("kB").unwrap_or(v).trim().parse::<usize>().ok()
        })
    });
    match avail {
        Some(kb) => MAX.min(kb.saturating_mul(1024) / 2).max(32 << 20),
        None => MAX,
    }
}

/// The bandwidth buffer, and the peak RSS of the process before it was allocated.
struct StreamBuf {
    /// Allocated like the arena ([`load::ArenaMem`], the same huge-page request), so that the
    /// ceiling reads memory mapped as the weights decode streams are.
    mem: load::ArenaMem,
    bytes: usize,
    peak_before: Option<u64>,
}

impl StreamBuf {
    /// Allocates and fills the buffer (every page resident).
    fn new(host: &SysRoot) -> Result<Self, String> {
        let peak_before = tern_energy::peak_rss_bytes(host);
        let bytes = bandwidth_buffer_bytes() & !7;
        let mut mem = load::ArenaMem::default();
        let buf = mem
            .alloc(bytes)
            .map_err(|e| format!("bandwidth buffer of {} MiB: {e}", bytes >> 20))?;
        for (i, w) in buf.as_chunks_mut::<8>().0.iter_mut().enumerate() {
            *w = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_ne_bytes();
        }
        Ok(Self { mem, bytes, peak_before })
    }

    /// The buffer as 8-byte words.
    fn words(&self) -> &[[u8; 8]] {
        self.mem.bytes(self.bytes).as_chunks::<8>().0
    }

    /// The process's peak RSS without this buffer (see the module docs).
    fn model_peak(&self, peak_now: Option<u64>) -> Option<u64> {
        let mine = self.bytes as u64;
        let since = peak_now.map(|p| p.saturating_sub(mine));
        match (self.peak_before, since) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Passes of each streaming-read measurement (the best counts).
const STREAM_PASSES: usize = 3;

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "?".to_string(), |v| v.to_string())
}

/// `tern bench`.
pub fn cmd_bench(a: &BenchArgs) -> Result<(), String> {
    // Validate everything before loading anything.
    let threads = match &a.threads {
        Some(s) => parse_threads(s)?,
        None => vec![crate::threads(None)],
    };
    let kernels = load::kernels(a.kernel.as_deref())?;
    let choice: EnergyChoice = a.energy.parse()?;
    if !(a.idle_secs.is_finite() && a.idle_secs >= 0.0) {
        return Err(format!("bad --idle-secs {}: expected seconds ≥ 0", a.idle_secs));
    }
    if a.n_prompt == 0 && a.n_gen == 0 {
        return Err("nothing to run: -p and -n are both 0".into());
    }
    if a.reps == 0 {
        return Err("-r must be at least 1".into());
    }
    let (p, n, reps) = (a.n_prompt, a.n_gen, a.reps);
    let needed = (if p > 0 { p + 1 } else { 0 }).max(n).max(GATE_POSITIONS);
    if a.ctx != 0 && a.ctx < needed {
        return Err(format!(
            "-c {} is too small: this run needs {needed} positions (prompt + 1 for TTFT, or the generated tokens)",
            a.ctx
        ));
    }
    let n_ctx = if a.ctx == 0 { needed } else { a.ctx };
    let nb = a.batch.max(1).min(n_ctx);

    // Load.
    let mf = load::ModelFile::open(&a.model)?;
    let g = mf.gguf(&a.model)?;
    let opts = SessionOptions {
        n_ctx,
        n_batch: nb,
        kernels,
        copy_head: a.head.copies(),
        ..SessionOptions::default()
    };
    let mut arena = load::ArenaMem::default();
    let (mut s, plan) = load::session(&mf, g, opts, &mut arena)?;
    let n_tok = s.tokenizer.n_vocab().clamp(1, s.engine.config.n_vocab);
    let bos = s
        .tokenizer
        .bos()
        .filter(|&b| (b as usize) < s.engine.config.n_vocab)
        .unwrap_or(1 % n_tok as u32);
    let e = &mut s.engine;
    let cfg = e.config;
    let bpt = e.weights.bytes_per_token(&cfg) as u64;
    let head = e.weights.head().bytes() as u64;
    let tier = e.kernels.info.tier.name();
    let kname = e.kernels.info.name;
    let model_name = a.model.file_name().map(|f| f.to_string_lossy().into_owned());
    let root = a.sysroot.as_ref().map_or_else(SysRoot::host, SysRoot::new);
    let host = SysRoot::host();

    // Correctness gate, on the largest thread count (results must not depend on it).
    let max_t = threads.iter().copied().max().unwrap_or(1);
    let gate_ids = prompt_ids(GATE_POSITIONS.min(nb), bos, n_tok);
    let n_single = if bpt > GATE_BIG_MODEL_BYTES { 1 } else { gate_ids.len() };
    let gate_what = format!(
        "a {}-token batch and {n_single} token{} one at a time",
        gate_ids.len(),
        if n_single == 1 { "" } else { "s" }
    );
    let gate_result = {
        let pool = Pool::new(max_t);
        if e.kernels.info.tier == tern_kernels::Tier::Reference {
            eprintln!(
                "tern bench: correctness gate skipped (the chosen kernels are the reference)"
            );
            None
        } else {
            let t0 = Instant::now();
            let r = gate(e, &gate_ids, n_single, &pool)?;
            match &r {
                None => eprintln!(
                    "tern bench: correctness gate passed: {tier} logits bit-identical to reference on {gate_what} ({:.1} s)",
                    t0.elapsed().as_secs_f64()
                ),
                Some(d) => eprintln!(
                    "tern bench: correctness gate FAILED: {tier} differs from the reference kernels ({d}); every record is marked invalid"
                ),
            }
            r
        }
    };

    // Energy: probe once, idle baseline once.
    let cfg_probe =
        ProbeConfig { root: root.clone(), vcgencmd: a.vcgencmd.clone(), ..ProbeConfig::default() };
    let (sampler, reasons) = tern_energy::probe(&choice, &cfg_probe).into_sampler();
    let mut energy = EnergyCtx { sampler, reasons, idle: None };
    if let Some(smp) = energy.sampler.as_mut()
        && a.idle_secs > 0.0
    {
        match smp.measure_idle(Duration::from_secs_f64(a.idle_secs)) {
            Ok(m) => energy.idle = Some(m),
            Err(err) => eprintln!(
                "tern bench: idle power not measured ({err}); idle-subtracted J/token will be null"
            ),
        }
    }
    let vcgencmd = Some(a.vcgencmd.as_path());

    let pp_ids = prompt_ids(p, bos, n_tok);
    let mut records: Vec<BenchRecord> = Vec::new();
    // After the load and the gate (which touched the weights), before the first test.
    let sbuf = if a.bandwidth { Some(StreamBuf::new(&host)?) } else { None };
    let finish = |mut r: BenchRecord, energy: Energy, bytes: u64| {
        r.model = model_name.clone();
        r.arena_bytes = plan.total as u64;
        r.set_bytes_per_token(bytes);
        r.energy = energy;
        let peak = tern_energy::peak_rss_bytes(&host);
        r.peak_rss_bytes = match &sbuf {
            Some(b) => b.model_peak(peak),
            None => peak,
        };
        r.apply_system(&SystemState::read(&root, vcgencmd));
        if let Some(d) = &gate_result {
            r.mark_invalid(format!("output differs from the reference kernels ({d})"));
        }
        r
    };
    let mut bw: Vec<Bracket> = Vec::new();
    for &t in &threads {
        let pool = Pool::new(t);
        let t32 = u32::try_from(t).unwrap_or(u32::MAX);
        // Warm-up (llama-bench: a short prompt and one decode step).
        if p > 0 {
            run_pp(e, &pp_ids[..p.min(nb).min(32)], nb, &pool)?;
        }
        if n > 0 {
            run_tg(e, bos, 1, &pool)?;
        }
        // The streaming read before each repetition and after the last, outside the energy
        // windows (see the module docs).
        let mut reads: Vec<f64> = Vec::new();
        let stream = |reads: &mut Vec<f64>| {
            if let Some(b) = &sbuf {
                reads.push(stream_read_gbps(b.words(), &pool, STREAM_PASSES));
            }
        };
        let mut bracket = |r: &mut BenchRecord, tps: &[f64], reads: &mut Vec<f64>| {
            if reads.len() == tps.len() + 1 {
                let ceilings: Vec<f64> = reads.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
                r.set_bandwidth_per_rep(tps, &ceilings);
                bw.push(Bracket { test: r.test.clone(), threads: t, reads: std::mem::take(reads) });
            }
            reads.clear();
        };
        if p > 0 {
            let mut read = || stream(&mut reads);
            let between = sbuf.is_some().then_some(&mut read as &mut dyn FnMut());
            let (secs, en) =
                energy.reps(p as u64, reps, between, || run_pp(e, &pp_ids, nb, &pool))?;
            let tps: Vec<f64> = secs.iter().map(|s| p as f64 / s.max(1e-12)).collect();
            // Ternary weights once per batch of the prompt, the LM head once.
            let chunks = p.div_ceil(nb) as u64;
            let bytes = ((bpt - head) * chunks + head) / p as u64;
            let r = BenchRecord::new(format!("pp{p}"), p as u32, 0, t32, tier, &tps);
            let mut r = finish(r, en, bytes);
            bracket(&mut r, &tps, &mut reads);
            records.push(r);
        }
        if n > 0 {
            let mut read = || stream(&mut reads);
            let between = sbuf.is_some().then_some(&mut read as &mut dyn FnMut());
            let (runs, en) = energy.reps(n as u64, reps, between, || run_tg(e, bos, n, &pool))?;
            let tps: Vec<f64> = runs.iter().map(|(s, _)| n as f64 / s.max(1e-12)).collect();
            let ttft: Vec<f64> = if p > 0 {
                (0..reps).map(|_| run_ttft(e, &pp_ids, nb, &pool)).collect::<Result<_, _>>()?
            } else {
                runs.iter().map(|(_, f)| *f).collect()
            };
            let mut r = BenchRecord::new(format!("tg{n}"), 0, n as u32, t32, tier, &tps);
            r.ttft_ms = Some(ttft.iter().sum::<f64>() / ttft.len() as f64 * 1e3);
            let mut r = finish(r, en, bpt);
            bracket(&mut r, &tps, &mut reads);
            records.push(r);
        }
    }

    // Output.
    if a.json {
        let mut out = String::new();
        for r in &records {
            out.push_str(&r.to_json_line());
            out.push('\n');
        }
        print!("{out}");
    } else {
        print!(
            "{}",
            human(
                a,
                &records,
                &HumanCtx {
                    plan_total: plan.total as u64,
                    head_copied: plan.engine.head > 0,
                    bpt,
                    kname,
                    gate: &gate_result,
                    gate_what: &gate_what,
                    nb,
                    bw: &bw,
                    energy: &energy
                }
            )
        );
    }
    if let Some(path) = &a.plot {
        tern_energy::plot::write_png(path, &records)
            .map_err(|err| format!("cannot write plot {}: {err}", path.display()))?;
        if !a.json {
            println!("plot: {}", path.display());
        }
    }
    Ok(())
}

/// The streaming reads of one test: before each repetition and after the last, GB/s.
struct Bracket {
    test: String,
    threads: usize,
    reads: Vec<f64>,
}

struct HumanCtx<'a> {
    plan_total: u64,
    head_copied: bool,
    bpt: u64,
    kname: &'a str,
    gate: &'a Option<String>,
    gate_what: &'a str,
    nb: usize,
    bw: &'a [Bracket],
    energy: &'a EnergyCtx,
}

/// The human report: a header, `format_table`, a details table and the energy status.
fn human(a: &BenchArgs, records: &[BenchRecord], h: &HumanCtx<'_>) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let r0 = records.first();
    let _ = writeln!(
        o,
        "model: {} — {:.1} MiB of weights read per decoded token, arena {:.1} MiB, LM head {}",
        a.model.display(),
        mib(h.bpt),
        mib(h.plan_total),
        if h.head_copied { "copied into the arena" } else { "read from the file mapping" }
    );
    let gate = match h.gate {
        None if r0.is_some_and(|r| r.kernel == "reference") => {
            "gate skipped (reference)".to_string()
        }
        None => format!("logits bit-identical to reference on {}", h.gate_what),
        Some(d) => format!("DIFFERS FROM REFERENCE ({d}); results INVALID"),
    };
    let _ = writeln!(o, "kernel: {} ({}); {gate}", r0.map_or("?", |r| r.kernel.as_str()), h.kname);
    if let Some(r) = r0 {
        let _ = writeln!(
            o,
            "system: board {}, cpu {}, governor {}, {} / {} kHz, {} °C, throttled {}",
            opt(r.board.as_deref()),
            opt(r.cpu.as_deref()),
            opt(r.governor.as_deref()),
            opt(r.cur_freq_khz),
            opt(r.max_freq_khz),
            opt(r.temp_c),
            r.throttled.map_or_else(|| "?".to_string(), |t| format!("0x{:x}", t.raw))
        );
    }
    let _ = writeln!(o, "protocol: llama-bench pp/tg, {} repetitions, batch {}", a.reps, h.nb);
    o.push('\n');
    o.push_str(&tern_energy::format_table(records));
    o.push('\n');
    let _ = writeln!(
        o,
        "| test | threads | TTFT ms | peak RSS MiB | MiB/token | stream GB/s | fraction of ceiling |"
    );
    let _ = writeln!(o, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in records {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {:.1} | {} | {} |",
            r.test,
            r.threads,
            r.ttft_ms.map_or_else(|| "-".into(), |v| format!("{v:.1}")),
            r.peak_rss_bytes.map_or_else(|| "?".into(), |v| format!("{:.1}", mib(v))),
            mib(r.bytes_per_token),
            r.bandwidth_gbps.map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            r.bandwidth_fraction.map_or_else(|| "-".into(), |v| format!("{:.1} %", v * 100.0)),
        );
    }
    if !h.bw.is_empty() {
        o.push_str("(fraction of ceiling = decode tok/s ÷ (stream GB/s ÷ bytes per token); target ≥ 85 %)\n");
        let each: Vec<String> =
            h.bw.iter()
                .map(|b| {
                    let v: Vec<String> = b.reads.iter().map(|g| format!("{g:.2}")).collect();
                    format!("{} {}T {}", b.test, b.threads, v.join(" → "))
                })
                .collect();
        let _ = writeln!(
            o,
            "stream: before each repetition and after the last, GB/s: {}",
            each.join("; ")
        );
    }
    match records.iter().find_map(|r| r.energy.as_measured()) {
        Some(m) => {
            let _ = writeln!(
                o,
                "energy: measured by {} ({}); sensors: {}",
                m.method,
                m.scope,
                m.sensors.join(", ")
            );
            if h.energy.idle.is_none() {
                o.push_str("energy: idle power not measured, so no idle-subtracted J/token\n");
            }
        }
        None => {
            let why: Vec<String> =
                h.energy.reasons.iter().map(|u| format!("{}: {}", u.source, u.reason)).collect();
            let _ = writeln!(
                o,
                "energy: not measured ({})",
                if why.is_empty() { "sampler failed".into() } else { why.join("; ") }
            );
        }
    }
    for r in records.iter().filter(|r| !r.valid) {
        let _ = writeln!(
            o,
            "INVALID {} t={}: {}",
            r.test,
            r.threads,
            r.invalid_reason.as_deref().unwrap_or("?")
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_parse() {
        assert_eq!(parse_threads("1,2,4"), Ok(vec![1, 2, 4]));
        assert_eq!(parse_threads(" 2 , 2,1"), Ok(vec![2, 1]));
        for bad in ["", "0", "1,,2", "x", "1,-2", "99999"] {
            let e = parse_threads(bad).expect_err(bad);
            assert!(e.starts_with("bad -t value") && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn prompt_ids_are_fixed_and_in_range() {
        let a = prompt_ids(50, 7, 100);
        assert_eq!(a, prompt_ids(50, 7, 100));
        assert_eq!(a[0], 7);
        assert!(a.iter().all(|&t| t < 100));
        assert!(a[1..].windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn gate_diff_is_bitwise() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        assert_eq!(first_diff("batched", &a, &a, 2), None);
        let mut b = a;
        b[3] = f32::from_bits(a[3].to_bits() + 1);
        let d = first_diff("batched", &b, &a, 2).expect("one ulp differs");
        assert!(d.contains("1 of 4 logits differ, first at row 1 id 1"), "{d}");
        assert!(first_diff("x", &[0.0], &[-0.0], 1).is_some());
    }

    #[test]
    fn peak_rss_leaves_the_stream_buffer_out() {
        let b = StreamBuf { mem: load::ArenaMem::default(), bytes: 100, peak_before: Some(1000) };
        // The model grew by 50 while the buffer existed: HWM = 1000 + 50 + 100.
        assert_eq!(b.model_peak(Some(1150)), Some(1050));
        // The peak was before the buffer: HWM − buffer is lower, the earlier peak counts.
        assert_eq!(b.model_peak(Some(1020)), Some(1000));
        assert_eq!(b.model_peak(None), Some(1000));
        let unknown = StreamBuf { peak_before: None, ..b };
        assert_eq!(unknown.model_peak(Some(1150)), Some(1050));
    }

    #[test]
    fn sum_matches_iterator() {
        let v: Vec<u64> = (0..1003u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let b: Vec<[u8; 8]> = v.iter().map(|x| x.to_ne_bytes()).collect();
        assert_eq!(sum_u64(&b), v.iter().fold(0u64, |s, x| s.wrapping_add(*x)));
    }
}
