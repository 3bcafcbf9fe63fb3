//! Nothing allocates while decoding: a counting global allocator watches this thread while a
//! session encodes a prompt, prefills it in batches, samples and decodes, and runs a chat turn.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tern_runtime::gguf::Gguf;
use tern_runtime::par::Serial;
use tern_runtime::sampler::SamplerConfig;
use tern_runtime::session::{Control, Session, SessionOptions, Sink};

struct Counting;

thread_local! {
    static WATCH: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the thread-local bookkeeping
// uses const-initialised `Cell`s, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if WATCH.with(|w| w.get()) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if WATCH.with(|w| w.get()) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

struct Quiet(usize);
impl Sink for Quiet {
    fn token(&mut self, _id: u32, text: &str) -> Control {
        self.0 += text.len();
        Control::Continue
    }
}

#[test]
fn decoding_does_not_allocate() {
    let file =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/tiny-trained.i2_s.gguf")).unwrap();
    let g = Gguf::parse(&file).unwrap();
    let opts = SessionOptions {
        n_ctx: 256,
        n_batch: 8,
        sampler: SamplerConfig { temperature: 0.7, top_k: 20, ..SamplerConfig::default() },
        ..SessionOptions::default()
    };
    let mut arena = vec![0u8; Session::plan(&g, &opts).unwrap().total];
    let mut s = Session::new(g, &mut arena, opts).unwrap();
    let mut sink = Quiet(0);
    // Warm up once (nothing should allocate here either, but the test harness may).
    s.complete("Perl is a", false, 4, &Serial, &mut sink).unwrap();
    WATCH.with(|w| w.set(true));
    let st = s
        .complete(
            "By default, sort reads the lines of each file and",
            false,
            24,
            &Serial,
            &mut sink,
        )
        .unwrap();
    s.reset();
    s.set_system("You answer questions about GNU tools.").unwrap();
    let st2 = s.chat("How do I sort a file?", 16, &Serial, &mut sink).unwrap();
    WATCH.with(|w| w.set(false));
    let n = COUNT.with(|c| c.get());
    assert!(st.n_prompt > 8, "the prompt must span several batches");
    assert!(st.n_gen > 0 && st2.n_gen > 0);
    assert_eq!(n, 0, "{n} heap allocations while decoding");
}
