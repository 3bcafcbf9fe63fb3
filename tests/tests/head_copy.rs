//! The LM head copied into the arena at load (`SessionOptions::copy_head`, `tern --head arena`):
//! the same logits bit for bit as reading it from the file, an arena of exactly the planned
//! bytes, the head read from the arena afterwards (tied: the embedding too; untied: only the
//! head), and every piece of the file the engine copied reported once, right after its copy, so
//! that the host can release those pages.

use std::path::PathBuf;
use tern_kernels::{CpuFeatures, KernelSet};
use tern_runtime::arena::{Arena, slot_bytes};
use tern_runtime::engine::{Engine, Logits, Plan, PlanOptions, Superseded};
use tern_runtime::gguf::Gguf;
use tern_runtime::model::{Config, Embedding, Weights};
use tern_runtime::par::{Parallel, Serial};
use tern_runtime::session::{Session, SessionOptions};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join(name)
}

include!("common/two_threads.rs");

fn addr_range(e: Embedding<'_>) -> std::ops::Range<usize> {
    let (p, n) = match e {
        Embedding::F16(w) | Embedding::Bf16(w) => (w.as_ptr() as usize, w.len() * 2),
        Embedding::F32(w) => (w.as_ptr() as usize, w.len() * 4),
    };
    p..p + n
}

fn inside(r: &std::ops::Range<usize>, buf: &[u8]) -> bool {
    let b = buf.as_ptr() as usize;
    r.start >= b && r.end <= b + buf.len()
}

/// Prompt logits (batched) and five greedy steps.
fn logits(s: &mut Session<'_>, par: &dyn Parallel) -> Vec<f32> {
    s.engine.eval(&[2043, 100, 200, 7, 99], Logits::Last, par).unwrap();
    let mut out = s.engine.last_logits().to_vec();
    for _ in 0..5 {
        let id = tern_runtime::sampler::argmax(s.engine.last_logits()) as u32;
        s.engine.eval(&[id], Logits::Last, par).unwrap();
        out.extend_from_slice(s.engine.last_logits());
    }
    out
}

#[test]
fn copied_head_gives_the_same_logits_from_an_arena_of_exactly_its_plan() {
    let file = std::fs::read(data("tiny-trained.i2_s.gguf")).unwrap();
    // The best tier here: on x86 with VNNI it relayouts every I2_S layer, which is reported too.
    let kernels = KernelSet::select(CpuFeatures::detect(), None);
    let opts = |copy_head| SessionOptions { n_ctx: 64, kernels, copy_head, ..Default::default() };

    let g = Gguf::parse(&file).unwrap();
    let mapped_plan = Session::plan(&g, &opts(false)).unwrap();
    let plan = Session::plan(&g, &opts(true)).unwrap();
    let head_file = {
        let c = Config::from_gguf(&g).unwrap();
        addr_range(Weights::from_gguf(&g, &c).unwrap().head())
    };
    let head_bytes = head_file.len();
    assert_eq!(mapped_plan.engine.head, 0);
    assert_eq!(plan.engine.head, slot_bytes::<u16>(head_bytes / 2));
    assert_eq!(plan.total, mapped_plan.total + plan.engine.head);

    for par in [&Serial as &dyn Parallel, &TwoThreads] {
        let mut arena = vec![0u8; mapped_plan.total];
        let mut s = Session::new(Gguf::parse(&file).unwrap(), &mut arena, opts(false)).unwrap();
        assert!(inside(&addr_range(s.engine.weights.head()), &file), "mapped head in the file");
        let want = logits(&mut s, par);
        drop(s);

        // Exactly the planned bytes are enough.
        let mut arena = vec![0u8; plan.total];
        let arena_range = arena.as_ptr() as usize..arena.as_ptr() as usize + arena.len();
        let mut pieces: Vec<Superseded> = Vec::new();
        let mut s =
            Session::new_with(Gguf::parse(&file).unwrap(), &mut arena, opts(true), &mut |p| {
                pieces.push(p)
            })
            .unwrap();
        let head = addr_range(s.engine.weights.head());
        assert!(
            head.start >= arena_range.start && head.end <= arena_range.end,
            "the head is read from the arena"
        );
        // Tied: the embedding is the same copy.
        assert_eq!(addr_range(s.engine.weights.token_embd), head);
        let got = logits(&mut s, par);
        assert!(
            got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits())
                && got.len() == want.len(),
            "logits differ with the head copied ({} threads)",
            par.threads()
        );

        // The reported pieces: inside the file, disjoint, the head whole in pieces of at most
        // 16 MiB, plus exactly the layers the engine relayouted.
        let mut sorted = pieces.clone();
        sorted.sort_by_key(|p| p.addr);
        for w in sorted.windows(2) {
            assert!(w[0].addr + w[0].len <= w[1].addr, "pieces overlap: {w:?}");
        }
        let fb = file.as_ptr() as usize;
        assert!(pieces.iter().all(|p| p.addr >= fb && p.addr + p.len <= fb + file.len()));
        let in_head: Vec<&Superseded> = pieces
            .iter()
            .filter(|p| p.addr >= head_file.start && p.addr + p.len <= head_file.end)
            .collect();
        assert_eq!(in_head.iter().map(|p| p.len).sum::<usize>(), head_bytes);
        assert!(in_head.iter().all(|p| p.len <= 16 << 20));
        let others: usize = pieces.iter().map(|p| p.len).sum::<usize>() - head_bytes;
        assert_eq!(others, plan.engine.repacked, "relayouted layers reported");
    }
}

#[test]
fn untied_head_is_copied_alone() {
    let file = std::fs::read(data("tiny-trained.i2_s.gguf")).unwrap();
    let g = Gguf::parse(&file).unwrap();
    let c = Config::from_gguf(&g).unwrap();
    let mut w = Weights::from_gguf(&g, &c).unwrap();
    // An untied head (as llama-arch files have) that holds the same values as the embedding.
    w.output = Some(w.token_embd);
    let opts = PlanOptions { n_ctx: 64, n_batch: 8, logits_rows: 1 };
    let run = |copy: bool| {
        let mut w = w.clone();
        w.copy_head = copy;
        let plan = Plan::for_weights(&c, &opts, &w);
        let mut buf = vec![0u8; plan.total() + 64];
        let pad = buf.as_ptr().align_offset(64);
        let mut a = Arena::new(&mut buf[pad..]);
        let mut n = 0;
        let mut e =
            Engine::new_with(c, w, KernelSet::REFERENCE, opts, &mut a, &mut |_| n += 1).unwrap();
        assert_eq!(a.used(), plan.total(), "the plan must count every arena byte");
        let in_file = |x: Embedding<'_>| inside(&addr_range(x), &file);
        assert!(in_file(e.weights.token_embd), "the embedding stays in the file");
        assert_eq!(in_file(e.weights.head()), !copy, "the head copied or not");
        assert_eq!(n > 0, copy);
        e.eval(&[2043, 100, 200], Logits::Last, &Serial).unwrap();
        e.last_logits().to_vec()
    };
    let (mapped, copied) = (run(false), run(true));
    assert!(mapped.iter().zip(&copied).all(|(a, b)| a.to_bits() == b.to_bits()));
}
