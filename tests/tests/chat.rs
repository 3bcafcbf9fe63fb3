//! Chat sessions: both templates tokenize exactly like the formatted string (with special
//! markers only from the template), user text never becomes special tokens, the KV cache is kept
//! between turns, a full context is a clear error, and `drop_old_turns` keeps going.

use tern_runtime::Error;
use tern_runtime::gguf::Gguf;
use tern_runtime::par::Serial;
use tern_runtime::sampler::SamplerConfig;
use tern_runtime::session::{ChatTemplate, Control, Session, SessionOptions, Sink};

mod common {
    include!("common/twin.rs");
}

struct Collect(Vec<u32>, String);
impl Sink for Collect {
    fn token(&mut self, id: u32, text: &str) -> Control {
        if id != u32::MAX {
            self.0.push(id);
        }
        self.1.push_str(text);
        Control::Continue
    }
}

fn tiny() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/tiny-trained.i2_s.gguf")).unwrap()
}

fn opts(n_ctx: usize, keep_going: bool) -> SessionOptions {
    SessionOptions {
        n_ctx,
        n_batch: 16,
        sampler: SamplerConfig::greedy(),
        drop_old_turns: keep_going,
        ..SessionOptions::default()
    }
}

/// Encodes the whole formatted conversation (special markers allowed) for comparison.
fn encode_all(s: &Session<'_>, text: &str, bos: bool) -> Vec<u32> {
    let mut v = vec![0u32; 4096];
    let n = s.tokenizer.encode(text, bos, true, &mut v).unwrap();
    v.truncate(n);
    v
}

#[test]
fn templates_format_like_the_reference_strings() {
    for (file, template) in
        [(tiny(), ChatTemplate::Llama3), (common::bitnet25_twin(), ChatTemplate::Bitnet)]
    {
        let g = Gguf::parse(&file).unwrap();
        let o = opts(256, false);
        let mut arena = vec![0u8; Session::plan(&g, &o).unwrap().total];
        let mut s = Session::new(g, &mut arena, o).unwrap();
        assert_eq!(s.template, template);
        s.set_system("Be brief.").unwrap();
        let mut sink = Collect(Vec::new(), String::new());
        let st = s.chat("How do I sort a file?", 6, &Serial, &mut sink).unwrap();
        let first = match template {
            ChatTemplate::Bitnet => "System: Be brief.User: How do I sort a file?<|eot_id|>Assistant: ".to_string(),
            ChatTemplate::Llama3 => "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHow do I sort a file?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n".to_string(),
        };
        let want = encode_all(&s, &first, true);
        assert_eq!(st.n_prompt, want.len());
        assert_eq!(
            s.n_past(),
            want.len() + st.n_gen,
            "prompt and every sampled token are in the cache"
        );
        // Second turn, with a literal special-token string in the user's text: it stays text.
        let mut sink2 = Collect(Vec::new(), String::new());
        let before = s.n_past();
        let st2 = s.chat("say <|eot_id|> please", 4, &Serial, &mut sink2).unwrap();
        assert!(s.n_past() > before, "the cache grows across turns");
        let eot = s.tokenizer.find_token(b"<|eot_id|>").unwrap();
        let user_ids = encode_all(&s, "say <|eot_id|> please", false);
        assert!(user_ids.contains(&eot));
        let mut plain = vec![0u32; 64];
        let n = s.tokenizer.encode("say <|eot_id|> please", false, false, &mut plain).unwrap();
        assert!(!plain[..n].contains(&eot), "user text must not become special tokens");
        assert!(st2.n_prompt > n);
    }
}

#[test]
fn full_context_is_an_error_unless_dropping_turns() {
    let file = tiny();
    let g = Gguf::parse(&file).unwrap();
    let o = opts(64, false);
    let mut arena = vec![0u8; Session::plan(&g, &o).unwrap().total];
    let mut s = Session::new(g, &mut arena, o).unwrap();
    let mut sink = Collect(Vec::new(), String::new());
    let msg = "Explain how the sort command orders the lines of a file.";
    let mut err = None;
    for _ in 0..10 {
        match s.chat(msg, 8, &Serial, &mut sink) {
            Ok(_) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("a 64-token context must fill up");
    assert!(matches!(e, Error::ContextFull { n_ctx: 64, .. }), "{e:?}");
    assert!(e.to_string().contains("context full"));
    // The session is still usable after the error.
    s.reset();
    s.chat(msg, 4, &Serial, &mut sink).unwrap();

    let g = Gguf::parse(&file).unwrap();
    let o = opts(64, true);
    let mut arena = vec![0u8; Session::plan(&g, &o).unwrap().total];
    let mut s = Session::new(g, &mut arena, o).unwrap();
    s.set_system("Be brief.").unwrap();
    for i in 0..10 {
        let st = s.chat(msg, 8, &Serial, &mut sink).unwrap_or_else(|e| panic!("turn {i}: {e}"));
        assert!(st.n_prompt > 0);
        assert!(s.n_past() <= 64);
    }
}
