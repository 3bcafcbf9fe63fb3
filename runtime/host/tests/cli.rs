//! End-to-end tests of the `tern` binary on the bundled model (llama2.c `test_all.py` style).

use std::path::PathBuf;
use std::process::Command;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(name)
}

fn model() -> String {
    data("tiny-trained.i2_s.gguf").to_string_lossy().into_owned()
}

fn tern(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tern")).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn reference() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data("tiny-trained.ref.json")).unwrap()).unwrap()
}

#[test]
fn run_reproduces_the_fixture_greedy_text() {
    let r = reference();
    let p = r["prompts"].as_array().unwrap().iter().find(|p| p["name"] == "sort").unwrap();
    let want = format!("{}\n", p["greedy"]["text"].as_str().unwrap());
    let prompt = p["text"].as_str().unwrap();
    for extra in [
        &["-t", "1"][..],
        &["-t", "2"],
        &["--kernel", "reference", "-t", "2"],
        &["-b", "3"],
        &["--head", "arena", "-t", "2"],
        &["--head", "mapped"],
    ] {
        let m = model();
        let mut args = vec!["run", "-m", &m, "-p", prompt, "-n", "32", "--temp", "0"];
        args.extend_from_slice(extra);
        let (code, out, err) = tern(&args);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, want, "tern run {extra:?}");
        assert!(err.contains("tok/s"), "timings go to stderr: {err}");
    }
}

#[test]
fn tokenize_prints_hugging_face_ids() {
    let cases = std::fs::read_to_string(data("small-bpe-cases.jsonl")).unwrap();
    for line in cases.lines().take(12) {
        let c: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = c["text"].as_str().unwrap();
        let (code, out, err) = tern(&["tokenize", "-m", &model(), "--text", text]);
        assert_eq!(code, 0, "{err}");
        let got: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(got, c["ids"], "{text:?}");
    }
}

#[test]
fn eval_dumps_logits_in_the_fixture_layout() {
    let r = reference();
    let p = r["prompts"].as_array().unwrap().iter().find(|p| p["name"] == "perl").unwrap();
    let ids: Vec<String> = p["ids"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    let dir = std::env::temp_dir().join(format!("tern-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("logits.f32");
    let (code, stdout, err) = tern(&[
        "eval",
        "-m",
        &model(),
        "--tokens",
        &ids.join(","),
        "--dump-logits",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let got: Vec<f32> = std::fs::read(&out)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let want: Vec<f32> = std::fs::read(data("tiny-trained.ref/perl.prompt.f16"))
        .unwrap()
        .chunks_exact(2)
        .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
        .collect();
    assert_eq!(got.len(), ids.len() * 2048);
    assert_eq!(got.len(), want.len());
    let d = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(d < 0.36, "max |Δ| {d}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["argmax"], p["prompt_argmax"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn info_shows_plan_and_tensors() {
    let (code, out, err) = tern(&["info", "-m", &model(), "-c", "128"]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "bitnet-b1.58",
        "blk.3.ffn_down.weight",
        "i2_s",
        "KV cache (f16)",
        "arena total",
        "kernels:",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // KV cache: 2 * 4 layers * 128 ctx * 128 kv_dim * 2 bytes = 256 KiB.
    assert!(out.contains("KV cache (f16)                      0.25 MiB"), "{out}");
    // The head copy is a line of the plan when asked for (2048 × 256 f16 = 1 MiB), and
    // counted in the arena total.
    let total = |out: &str| -> f64 {
        let l = out.lines().find(|l| l.contains("arena total")).unwrap();
        l.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let (_, copied, _) = tern(&["info", "-m", &model(), "-c", "128", "--head", "arena"]);
    let (_, mapped, _) = tern(&["info", "-m", &model(), "-c", "128", "--head", "mapped"]);
    assert!(copied.contains("LM head copy (arena)"), "{copied}");
    assert!(!mapped.contains("LM head copy"), "{mapped}");
    assert!((total(&copied) - total(&mapped) - 1.0).abs() < 0.01, "{copied}\n{mapped}");
}

#[test]
fn bad_input_gives_one_clear_line() {
    let (code, out, err) = tern(&["run", "-m", "/nonexistent.gguf", "-p", "x"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("tern: error: cannot open model /nonexistent.gguf"), "{err}");

    let dir = std::env::temp_dir().join(format!("tern-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("cut.gguf");
    std::fs::write(&cut, &std::fs::read(data("tiny-trained.i2_s.gguf")).unwrap()[..40_000])
        .unwrap();
    let (code, _, err) = tern(&["run", "-m", cut.to_str().unwrap(), "-p", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("truncated GGUF") && err.contains("offset"), "{err}");

    let (code, _, err) = tern(&["run", "-m", &model(), "-p", "x", "--kernel", "sparc"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown kernel 'sparc'"), "{err}");

    let long = "word ".repeat(100);
    let (code, _, err) = tern(&["run", "-m", &model(), "-p", &long, "-c", "16"]);
    assert_eq!(code, 1);
    assert!(err.contains("context full"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn chat_keeps_context_between_turns_and_resets() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["chat", "-m", &model(), "--temp", "0", "-n", "8", "--system", "Be brief."])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"How do I sort a file?\nAnd in reverse?\n/reset\nHow do I sort a file?\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let replies: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert!(replies.len() >= 3, "{out}");
    // After /reset the same first question gets the same (greedy) answer.
    assert_eq!(replies.first(), replies.last(), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("conversation reset"));
}
