//! `tern`: run BitNet b1.58 models on Raspberry Pi-class boards (and any host).
//!
//! Subcommands: `info`, `run`, `chat`, `serve`, `tokenize`, `eval`, `bench` (see `tern --help`).
//! Errors are one line on stderr and a non-zero exit code.

mod bench;
mod load;
mod pool;
mod serve;

use clap::{Args, Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;
use tern_runtime::engine::Logits;
use tern_runtime::sampler::SamplerConfig;
use tern_runtime::session::{Control, GenStats, Session, SessionOptions, Sink, StopReason};

#[derive(Parser)]
#[command(
    name = "tern",
    version,
    about = "Run BitNet b1.58 ternary LLMs on Raspberry Pi-class boards"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Metadata summary, tensor table, memory plan and kernel choice.
    Info(InfoArgs),
    /// Complete one prompt, streaming text to stdout (timings on stderr).
    Run(RunArgs),
    /// Interactive multi-turn chat on stdin/stdout (/reset, /quit).
    Chat(ChatArgs),
    /// The chat on a serial line (or --stdio): line editing, Ctrl-C, /commands, JSON mode.
    Serve(ServeArgs),
    /// Print the token ids of a text as JSON.
    Tokenize(TokenizeArgs),
    /// Run token ids and report (or dump) the logits of every position.
    Eval(EvalArgs),
    /// Benchmark: llama-bench pp/tg tok/s, TTFT, memory, GB/s, measured energy (JSON with --json).
    Bench(bench::BenchArgs),
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// GGUF model file.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Context length (0 = the model's, capped at 4096).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0)]
    ctx: usize,
    /// Threads (default: all cores).
    #[arg(short = 't', long = "threads")]
    threads: Option<usize>,
    /// Prompt batch size.
    #[arg(short = 'b', long = "batch-size", default_value_t = 64)]
    batch: usize,
    /// Kernel tier: reference, neon, dotprod, tl1, avx2, vnni (may only lower the detected tier).
    #[arg(long = "kernel")]
    kernel: Option<String>,
    /// Where decode reads the LM head: copied into the arena (huge pages) or from the file
    /// mapping; `auto` copies it when the kernel gives transparent huge pages.
    #[arg(long = "head", value_enum, default_value_t = load::HeadPlace::Auto)]
    head: load::HeadPlace,
}

#[derive(Args, Clone)]
struct SampleArgs {
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    n: usize,
    /// Temperature (0 = greedy).
    #[arg(long = "temp", default_value_t = 0.8)]
    temp: f32,
    /// Top-k (0 = off).
    #[arg(long = "top-k", default_value_t = 40)]
    top_k: usize,
    /// Top-p (1 = off).
    #[arg(long = "top-p", default_value_t = 0.95)]
    top_p: f32,
    /// Min-p (0 = off).
    #[arg(long = "min-p", default_value_t = 0.05)]
    min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    repeat_last_n: usize,
    /// RNG seed.
    #[arg(long = "seed", default_value_t = 0x5eed)]
    seed: u64,
}

impl SampleArgs {
    fn config(&self) -> SamplerConfig {
        SamplerConfig {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed: self.seed,
        }
    }
}

#[derive(Args)]
struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sample: SampleArgs,
    /// The prompt.
    #[arg(short = 'p', long = "prompt")]
    prompt: String,
    /// Parse special tokens (e.g. <|eot_id|>) written in the prompt.
    #[arg(long = "special")]
    special: bool,
}

#[derive(Args)]
struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sample: SampleArgs,
    /// System prompt.
    #[arg(long = "system")]
    system: Option<String>,
    /// When the context is full, drop the oldest turns instead of stopping.
    #[arg(long = "keep-going")]
    keep_going: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("line").required(true).args(["serial", "stdio"])))]
struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sample: SampleArgs,
    /// Serial device: /dev/ttyAMA0, /dev/serial0, /dev/ttyGS0 (USB gadget), /dev/ttyUSB0, ...
    #[arg(long = "serial", value_name = "DEV")]
    serial: Option<PathBuf>,
    /// Line speed (8N1, no flow control).
    #[arg(long = "baud", default_value_t = 115_200, conflicts_with = "stdio")]
    baud: u32,
    /// Serve stdin/stdout instead (SSH, pipes, tests).
    #[arg(long = "stdio")]
    stdio: bool,
    /// Machine mode: one JSON object per line each way, no echo.
    #[arg(long = "machine", alias = "json")]
    machine: bool,
    /// System prompt.
    #[arg(long = "system")]
    system: Option<String>,
    /// When the context is full, drop the oldest turns instead of refusing the prompt.
    #[arg(long = "keep-going")]
    keep_going: bool,
}

#[derive(Args)]
struct TokenizeArgs {
    /// GGUF model file.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Text to tokenize.
    #[arg(long = "text", conflicts_with = "file")]
    text: Option<String>,
    /// File whose contents to tokenize.
    #[arg(long = "file")]
    file: Option<PathBuf>,
    /// Recognise special tokens written in the text.
    #[arg(long = "special")]
    special: bool,
    /// Prepend BOS.
    #[arg(long = "bos")]
    bos: bool,
}

#[derive(Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Comma-separated token ids.
    #[arg(long = "tokens")]
    tokens: String,
    /// Write every position's logits as little-endian f32 [n_pos][n_vocab].
    #[arg(long = "dump-logits")]
    dump_logits: Option<PathBuf>,
    /// Feed one token per forward call instead of one batch.
    #[arg(long = "one-by-one")]
    one_by_one: bool,
}

fn threads(n: Option<usize>) -> usize {
    n.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
}

fn session_opts(m: &ModelArgs, s: Option<&SampleArgs>) -> Result<SessionOptions, String> {
    Ok(SessionOptions {
        n_ctx: m.ctx,
        n_batch: m.batch.max(1),
        kernels: load::kernels(m.kernel.as_deref())?,
        sampler: s.map(|s| s.config()).unwrap_or_else(SamplerConfig::greedy),
        copy_head: m.head.copies(),
        ..SessionOptions::default()
    })
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Info(a) => cmd_info(&a),
        Cmd::Run(a) => cmd_run(&a),
        Cmd::Chat(a) => cmd_chat(&a),
        Cmd::Serve(a) => serve::cmd_serve(&a),
        Cmd::Tokenize(a) => cmd_tokenize(&a),
        Cmd::Eval(a) => cmd_eval(&a),
        Cmd::Bench(a) => bench::cmd_bench(&a),
    };
    if let Err(e) = r {
        let _ = std::io::stdout().flush();
        eprintln!("tern: error: {e}");
        std::process::exit(1);
    }
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn cmd_info(a: &InfoArgs) -> Result<(), String> {
    let mf = load::ModelFile::open(&a.model.model)?;
    let g = mf.gguf(&a.model.model)?;
    let mut o = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        o,
        "file: {} ({} bytes, GGUF v{}, {} metadata keys, {} tensors, alignment {})",
        a.model.model.display(),
        mf.bytes().len(),
        g.version(),
        g.n_kv(),
        g.n_tensors(),
        g.alignment()
    );
    let _ = writeln!(o, "metadata:");
    for kv in g.metadata_iter() {
        let (k, v) = kv.map_err(|e| e.to_string())?;
        let key = String::from_utf8_lossy(k);
        let val = match v {
            tern_runtime::gguf::Value::String(s) => {
                let s = String::from_utf8_lossy(s);
                let short: String = s.chars().take(60).collect();
                if short.len() < s.len() {
                    format!("{short:?}… ({} bytes)", s.len())
                } else {
                    format!("{short:?}")
                }
            }
            tern_runtime::gguf::Value::Array(arr) => {
                format!("[array of {} (type {})]", arr.len(), arr.elem_type())
            }
            other => format!("{other:?}")
                .trim_start_matches(|c: char| c.is_alphanumeric())
                .trim_matches(|c| c == '(' || c == ')')
                .to_string(),
        };
        let _ = writeln!(o, "  {key:<44} {val}");
    }
    let cfg = tern_runtime::model::Config::from_gguf(&g).map_err(|e| e.to_string())?;
    let _ = writeln!(
        o,
        "model: {} — {} layers, n_embd {}, heads {}/{} (head_dim {}), n_ff {}, vocab {}, ctx {}, rope θ {} ({}), eps {}",
        cfg.arch.name(),
        cfg.n_layer,
        cfg.n_embd,
        cfg.n_head,
        cfg.n_head_kv,
        cfg.head_dim,
        cfg.n_ff,
        cfg.n_vocab,
        cfg.n_ctx_train,
        cfg.rope_theta,
        if cfg.rope_neox { "neox" } else { "norm" },
        cfg.rms_eps
    );
    let _ = writeln!(o, "tensors:");
    let mut by_type = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for t in g.tensors() {
        let t = t.map_err(|e| e.to_string())?;
        let shape: Vec<String> = t.ne[..t.n_dims as usize].iter().map(|d| d.to_string()).collect();
        let _ = writeln!(
            o,
            "  {:<32} {:<6} [{}] {} bytes",
            t.name_str(),
            t.ty.name(),
            shape.join(", "),
            t.data.len()
        );
        let e = by_type.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.data.len();
    }
    let summary: Vec<String> =
        by_type.iter().map(|(k, (n, b))| format!("{n} {k} ({:.1} MiB)", mib(*b))).collect();
    let _ = writeln!(o, "  total: {}", summary.join(", "));
    let opts = session_opts(&a.model, None)?;
    let plan = Session::plan(&g, &opts).map_err(|e| e.to_string())?;
    let _ = writeln!(o, "memory plan (n_ctx {}, batch {}):", plan.opts.n_ctx, plan.opts.n_batch);
    let _ = writeln!(o, "  weights file (mapped)        {:>10.2} MiB", mib(mf.bytes().len()));
    let _ = writeln!(o, "  KV cache (f16)                {:>10.2} MiB", mib(plan.engine.kv_cache));
    if plan.engine.repacked > 0 {
        let _ =
            writeln!(o, "  weights repacked (arena)      {:>10.2} MiB", mib(plan.engine.repacked));
    }
    if plan.engine.head > 0 {
        let _ = writeln!(o, "  LM head copy (arena)          {:>10.2} MiB", mib(plan.engine.head));
    }
    let _ =
        writeln!(o, "  activations                   {:>10.2} MiB", mib(plan.engine.activations));
    let _ = writeln!(o, "  int8 activations + i32 out    {:>10.2} MiB", mib(plan.engine.quantized));
    let _ = writeln!(o, "  attention scratch + RoPE      {:>10.2} MiB", mib(plan.engine.attention));
    let _ = writeln!(o, "  logits                        {:>10.2} MiB", mib(plan.engine.logits));
    let _ = writeln!(o, "  tokenizer tables              {:>10.2} MiB", mib(plan.tokenizer));
    let _ = writeln!(o, "  sampler                       {:>10.2} MiB", mib(plan.sampler));
    let _ =
        writeln!(o, "  history + text                {:>10.2} MiB", mib(plan.history + plan.text));
    let _ = writeln!(
        o,
        "  arena total                   {:>10.2} MiB ({} bytes)",
        mib(plan.total),
        plan.total
    );
    let k = opts.kernels;
    let _ = writeln!(
        o,
        "kernels: {} (tier {}), CPU features: {:?}",
        k.info.name,
        k.info.tier.name(),
        tern_kernels::CpuFeatures::detect()
    );
    let (board, model) = load::board();
    let _ = writeln!(
        o,
        "board: {}",
        match board {
            Some(b) => b.name.to_string(),
            None if model.is_empty() =>
                "not a known board (no /proc/device-tree/model)".to_string(),
            None => format!("unknown ({model})"),
        }
    );
    print!("{o}");
    Ok(())
}

/// Streams tokens to stdout and timestamps events.
struct StdoutSink {
    t0: Instant,
    t_prompt: Option<Instant>,
    out: std::io::Stdout,
}

impl Sink for StdoutSink {
    fn prompt_done(&mut self, _n: usize) {
        self.t_prompt = Some(Instant::now());
    }
    fn token(&mut self, _id: u32, text: &str) -> Control {
        let mut o = self.out.lock();
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
        Control::Continue
    }
}

fn report(st: &GenStats, sink: &StdoutSink) {
    let tp = sink.t_prompt.unwrap_or(sink.t0);
    let p = tp.duration_since(sink.t0).as_secs_f64();
    let d = tp.elapsed().as_secs_f64();
    eprintln!(
        "\n[prompt: {} tokens in {:.1} ms, {:.2} tok/s | decode: {} tokens in {:.1} ms, {:.2} tok/s | stop: {:?}]",
        st.n_prompt,
        p * 1e3,
        st.n_prompt as f64 / p.max(1e-9),
        st.n_gen,
        d * 1e3,
        st.n_gen as f64 / d.max(1e-9),
        st.stop
    );
}

fn cmd_run(a: &RunArgs) -> Result<(), String> {
    let mf = load::ModelFile::open(&a.model.model)?;
    let g = mf.gguf(&a.model.model)?;
    let mut arena = load::ArenaMem::default();
    let (mut s, _plan) =
        load::session(&mf, g, session_opts(&a.model, Some(&a.sample))?, &mut arena)?;
    let pool = pool::Pool::new(threads(a.model.threads));
    let mut sink = StdoutSink { t0: Instant::now(), t_prompt: None, out: std::io::stdout() };
    let st = s
        .complete(&a.prompt, a.special, a.sample.n, &pool, &mut sink)
        .map_err(|e| e.to_string())?;
    println!();
    report(&st, &sink);
    Ok(())
}

fn cmd_chat(a: &ChatArgs) -> Result<(), String> {
    let mf = load::ModelFile::open(&a.model.model)?;
    let g = mf.gguf(&a.model.model)?;
    let mut arena = load::ArenaMem::default();
    let mut opts = session_opts(&a.model, Some(&a.sample))?;
    opts.drop_old_turns = a.keep_going;
    let (mut s, _plan) = load::session(&mf, g, opts, &mut arena)?;
    if let Some(sys) = &a.system {
        s.set_system(sys).map_err(|e| e.to_string())?;
    }
    let pool = pool::Pool::new(threads(a.model.threads));
    let tty = std::io::stdin().is_terminal();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if tty {
            eprint!("> ");
        }
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let msg = line.trim_end_matches('\r');
        match msg.trim() {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                s.reset();
                eprintln!("[conversation reset]");
                continue;
            }
            _ => {}
        }
        let mut sink = StdoutSink { t0: Instant::now(), t_prompt: None, out: std::io::stdout() };
        match s.chat(msg, a.sample.n, &pool, &mut sink) {
            Ok(st) => {
                println!();
                if st.stop == StopReason::ContextFull {
                    eprintln!(
                        "[context full ({} tokens): use /reset, or start with --keep-going]",
                        s.n_ctx()
                    );
                }
                if tty {
                    report(&st, &sink);
                }
            }
            Err(e @ tern_runtime::Error::ContextFull { .. }) => {
                eprintln!("[{e}; use /reset, or start with --keep-going]");
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

fn cmd_tokenize(a: &TokenizeArgs) -> Result<(), String> {
    let text = match (&a.text, &a.file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?
        }
        (None, None) => return Err("give --text TEXT or --file FILE".into()),
    };
    let mf = load::ModelFile::open(&a.model)?;
    let g = mf.gguf(&a.model)?;
    let mut arena = load::ArenaMem::default();
    let opts = SessionOptions { n_ctx: 1, n_batch: 1, ..SessionOptions::default() };
    let (s, _) = load::session(&mf, g, opts, &mut arena)?;
    let mut ids = vec![0u32; text.len() + 2];
    let n = s.tokenizer.encode(&text, a.bos, a.special, &mut ids).map_err(|e| e.to_string())?;
    let v: Vec<String> = ids[..n].iter().map(|i| i.to_string()).collect();
    println!("[{}]", v.join(", "));
    Ok(())
}

fn cmd_eval(a: &EvalArgs) -> Result<(), String> {
    let ids: Vec<u32> = a
        .tokens
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<u32>().map_err(|_| format!("bad token id '{s}' in --tokens")))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Err("--tokens needs at least one id".into());
    }
    let mf = load::ModelFile::open(&a.model.model)?;
    let g = mf.gguf(&a.model.model)?;
    let mut arena = load::ArenaMem::default();
    let mut opts = session_opts(&a.model, None)?;
    if opts.n_ctx == 0 {
        opts.n_ctx = ids.len().max(1);
    }
    opts.n_batch = ids.len();
    opts.logits_rows = ids.len();
    let (mut s, _) = load::session(&mf, g, opts, &mut arena)?;
    let pool = pool::Pool::new(threads(a.model.threads));
    let n_vocab = s.engine.config.n_vocab;
    let mut all = Vec::with_capacity(ids.len() * n_vocab);
    let t0 = Instant::now();
    if a.one_by_one {
        for &t in &ids {
            s.engine.eval(&[t], Logits::Last, &pool).map_err(|e| e.to_string())?;
            all.extend_from_slice(s.engine.last_logits());
        }
    } else {
        s.engine.eval(&ids, Logits::All, &pool).map_err(|e| e.to_string())?;
        all.extend_from_slice(s.engine.logits());
    }
    let dt = t0.elapsed().as_secs_f64();
    let argmax: Vec<String> =
        all.chunks_exact(n_vocab).map(|r| tern_runtime::sampler::argmax(r).to_string()).collect();
    println!(
        "{{\"n_pos\": {}, \"n_vocab\": {}, \"argmax\": [{}]}}",
        ids.len(),
        n_vocab,
        argmax.join(", ")
    );
    if let Some(p) = &a.dump_logits {
        let mut bytes = Vec::with_capacity(all.len() * 4);
        for v in &all {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(p, bytes).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    eprintln!(
        "[{} positions in {:.1} ms, kernels {}]",
        ids.len(),
        dt * 1e3,
        s.engine.kernels.info.name
    );
    Ok(())
}
