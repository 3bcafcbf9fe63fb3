//! Forward pass against bitnet.cpp's logits for the tiny-trained model (fixtures README):
//! batched prompts, one token at a time, teacher-forced greedy steps and free-running greedy ids,
//! for the `bitnet-b1.58` file and its `bitnet-25` twin, with 1 and 2 threads and every kernel
//! tier this CPU can run. Tolerances: fixtures README "Recommended tolerances".

use std::path::PathBuf;
use tern_kernels::{CpuFeatures, KernelSet, Tier};
use tern_runtime::arena::Arena;
use tern_runtime::engine::{Engine, Logits, Plan, PlanOptions};
use tern_runtime::gguf::Gguf;
use tern_runtime::model::{Config, Weights};
use tern_runtime::par::{Parallel, Serial};

/// Per-position max |Δ| (fixture tolerance 0.35, plus f16 storage rounding of the reference).
const MAX_ABS: f32 = 0.35 + 0.01;
/// Per-position max |Δ| / max |ref|.
const MAX_REL: f32 = 0.03;
/// Argmax agreement per prompt.
const MIN_ARGMAX: f64 = 0.97;
/// Free-running greedy ids must match until the reference's top-2 margin drops below this.
const GREEDY_MARGIN: f64 = 0.25;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

fn read_f16(path: &PathBuf) -> Vec<f32> {
    let b = std::fs::read(path).unwrap();
    b.chunks_exact(2)
        .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
        .collect()
}

struct Prompt {
    name: String,
    ids: Vec<u32>,
    greedy: Vec<u32>,
    margins: Vec<f64>,
    prompt: Vec<f32>,
    onebyone: Vec<f32>,
    steps: Vec<f32>,
}

fn prompts() -> Vec<Prompt> {
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("tiny-trained.ref.json")).unwrap()).unwrap();
    j["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_string();
            let ids =
                p["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let g = &p["greedy"];
            let greedy =
                g["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
            let margins =
                g["margins"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            let r = |k: &str| read_f16(&data(&format!("tiny-trained.ref/{name}.{k}.f16")));
            Prompt {
                prompt: r("prompt"),
                onebyone: r("onebyone"),
                steps: r("greedy"),
                name,
                ids,
                greedy,
                margins,
            }
        })
        .collect()
}

mod twin {
    include!("common/twin.rs");
}
use twin::bitnet25_twin;

include!("common/two_threads.rs");

struct Run<'a> {
    engine: Engine<'a>,
}

fn engine<'a>(file: &'a [u8], arena: &'a mut Vec<u8>, kernels: KernelSet, rows: usize) -> Run<'a> {
    let g = Gguf::parse(file).unwrap();
    let c = Config::from_gguf(&g).unwrap();
    let w = Weights::from_gguf(&g, &c).unwrap();
    let opts = PlanOptions { n_ctx: 256, n_batch: 256, logits_rows: rows };
    arena.resize(Plan::new(&c, &opts).total() + 64, 0);
    let mut a = Arena::new(arena);
    let engine = Engine::new(c, w, kernels, opts, &mut a).unwrap();
    Run { engine }
}

static WORST: std::sync::Mutex<Vec<(f32, String)>> = std::sync::Mutex::new(Vec::new());

fn compare(what: &str, got: &[f32], want: &[f32], want_argmax: Option<usize>) -> bool {
    let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    WORST.lock().unwrap().push((d, what.to_string()));
    assert!(d <= MAX_ABS, "{what}: max |Δ| {d} > {MAX_ABS}");
    assert!(d / max_ref <= MAX_REL, "{what}: relative Δ {} > {MAX_REL}", d / max_ref);
    let am = tern_runtime::sampler::argmax(got);
    am == want_argmax.unwrap_or_else(|| tern_runtime::sampler::argmax(want))
}

fn check_model(file: &[u8], kernels: KernelSet, par: &dyn Parallel) -> Vec<Vec<f32>> {
    let n_vocab = 2048;
    let mut all_logits = Vec::new();
    for p in prompts() {
        // Batched prompt, every position's logits.
        let mut arena = Vec::new();
        let mut r = engine(file, &mut arena, kernels, 256);
        r.engine.eval(&p.ids, Logits::All, par).unwrap();
        let got = r.engine.logits().to_vec();
        let mut agree = 0;
        for i in 0..p.ids.len() {
            let row = &got[i * n_vocab..(i + 1) * n_vocab];
            agree += compare(
                &format!("{} batch pos {i}", p.name),
                row,
                &p.prompt[i * n_vocab..(i + 1) * n_vocab],
                None,
            ) as usize;
        }
        assert!(
            agree as f64 / p.ids.len() as f64 >= MIN_ARGMAX,
            "{}: argmax agreement {agree}/{}",
            p.name,
            p.ids.len()
        );
        all_logits.push(got.clone());
        // Teacher-forced greedy: step 0 is the last batched row; step g feeds greedy id g-1 alone.
        let mut agree = 0;
        for g in 0..p.greedy.len() {
            let row: Vec<f32> = if g == 0 {
                got[(p.ids.len() - 1) * n_vocab..].to_vec()
            } else {
                r.engine.eval(&[p.greedy[g - 1]], Logits::Last, par).unwrap();
                r.engine.last_logits().to_vec()
            };
            agree += compare(
                &format!("{} greedy step {g}", p.name),
                &row,
                &p.steps[g * n_vocab..(g + 1) * n_vocab],
                Some(p.greedy[g] as usize),
            ) as usize;
        }
        assert!(
            agree as f64 / p.greedy.len() as f64 >= MIN_ARGMAX,
            "{}: teacher-forced argmax {agree}/{}",
            p.name,
            p.greedy.len()
        );
        // One token per call.
        let mut arena = Vec::new();
        let mut r = engine(file, &mut arena, kernels, 1);
        let mut agree = 0;
        for (i, &t) in p.ids.iter().enumerate() {
            r.engine.eval(&[t], Logits::Last, par).unwrap();
            agree += compare(
                &format!("{} onebyone pos {i}", p.name),
                r.engine.last_logits(),
                &p.onebyone[i * n_vocab..(i + 1) * n_vocab],
                None,
            ) as usize;
        }
        assert!(
            agree as f64 / p.ids.len() as f64 >= MIN_ARGMAX,
            "{}: onebyone argmax {agree}/{}",
            p.name,
            p.ids.len()
        );
        // Free-running greedy from the batched prompt.
        let mut arena = Vec::new();
        let mut r = engine(file, &mut arena, kernels, 1);
        r.engine.eval(&p.ids, Logits::Last, par).unwrap();
        for g in 0..p.greedy.len() {
            let id = tern_runtime::sampler::argmax(r.engine.last_logits()) as u32;
            if id != p.greedy[g] {
                assert!(
                    p.margins[g] < GREEDY_MARGIN,
                    "{}: greedy step {g} gave {id}, reference {} with margin {}",
                    p.name,
                    p.greedy[g],
                    p.margins[g]
                );
                break;
            }
            r.engine.eval(&[id], Logits::Last, par).unwrap();
        }
    }
    all_logits
}

#[test]
fn tiny_trained_matches_bitnet_cpp() {
    let file = std::fs::read(data("tiny-trained.i2_s.gguf")).unwrap();
    check_model(&file, KernelSet::REFERENCE, &Serial);
    let mut w = WORST.lock().unwrap().clone();
    w.sort_by(|a, b| b.0.total_cmp(&a.0));
    let small = w.iter().filter(|x| x.0 <= 0.01).count();
    eprintln!(
        "positions compared: {}, with max|Δ| <= 0.01 (f16 storage): {small}; worst: {:?}",
        w.len(),
        &w[..5.min(w.len())]
    );
}

#[test]
fn bitnet25_twin_matches_and_equals_b158() {
    let twin = bitnet25_twin();
    let g = Gguf::parse(&twin).unwrap();
    assert_eq!(g.get_str("general.architecture"), Some("bitnet-25"));
    let a = check_model(&twin, KernelSet::REFERENCE, &Serial);
    let file = std::fs::read(data("tiny-trained.i2_s.gguf")).unwrap();
    let mut arena = Vec::new();
    let mut r = engine(&file, &mut arena, KernelSet::REFERENCE, 256);
    let p = &prompts()[0];
    r.engine.eval(&p.ids, Logits::All, &Serial).unwrap();
    assert_eq!(
        r.engine.logits(),
        &a[0][..],
        "bitnet-25 and bitnet-b1.58 files must give identical logits"
    );
}

#[test]
fn identical_logits_for_every_tier_and_thread_count() {
    let file = std::fs::read(data("tiny-trained.i2_s.gguf")).unwrap();
    let p = &prompts()[1];
    let run = |k: KernelSet, par: &dyn Parallel| {
        let mut arena = Vec::new();
        let mut r = engine(&file, &mut arena, k, 256);
        r.engine.eval(&p.ids, Logits::All, par).unwrap();
        let mut out = r.engine.logits().to_vec();
        for _ in 0..8 {
            let id = tern_runtime::sampler::argmax(r.engine.last_logits()) as u32;
            r.engine.eval(&[id], Logits::Last, par).unwrap();
            out.extend_from_slice(r.engine.last_logits());
        }
        out
    };
    let reference = run(KernelSet::REFERENCE, &Serial);
    assert_eq!(run(KernelSet::REFERENCE, &TwoThreads), reference, "2 threads differ");
    let f = CpuFeatures::detect();
    for tier in Tier::ALL {
        if let Some(k) = KernelSet::for_tier(f, tier) {
            for par in [&Serial as &dyn Parallel, &TwoThreads] {
                let got = run(k, par);
                assert!(
                    got == reference,
                    "tier {} ({}) differs from the reference",
                    tier.name(),
                    k.info.name
                );
            }
        }
    }
}
