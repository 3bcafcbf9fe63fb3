//! The bare-metal image (`cross/pi-baremetal`) booted under `qemu-system-aarch64 -M raspi3b` and
//! `-M raspi4b`, answering a prompt over the emulated PL011 UART; plus host tests of its device-tree
//! parser and model discovery, which are plain `core` code included from the image's sources.
//!
//! The boot tests build the image with `cross/build` (through `cross/run-qemu`) and drive the UART
//! with `cross/qemu/serial.py`. Each boot is bounded by a timeout. Without `qemu-system-aarch64`
//! (or python3) they are skipped with a message, unless the `CI` environment variable is set, in
//! which case they fail: CI must run them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code, missing_docs)]
#[path = "../../cross/pi-baremetal/src/fdt.rs"]
mod fdt;

#[allow(dead_code, missing_docs)]
#[path = "../../cross/pi-baremetal/src/discover.rs"]
mod discover;

// -------------------------------------------------------------------------------------------------
// Booting under QEMU
// -------------------------------------------------------------------------------------------------

/// Seconds allowed for one whole boot + prompt + exit (builds included; the first build of the
/// image takes a few seconds, a boot well under one).
const BOOT_LIMIT: Duration = Duration::from_secs(240);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `Some(reason)` when the tools for the boot tests are missing. Panics under CI.
fn missing_tools(machine: &str) -> Option<String> {
    let mut missing = Vec::new();
    for tool in ["qemu-system-aarch64", "python3", "cargo"] {
        if !have(tool) {
            missing.push(tool.to_string());
        }
    }
    if missing.is_empty() {
        let out = Command::new("qemu-system-aarch64").args(["-M", "help"]).output();
        let listed =
            out.map(|o| String::from_utf8_lossy(&o.stdout).contains(machine)).unwrap_or(false);
        if !listed {
            missing
                .push(format!("qemu-system-aarch64 -M {machine} (QEMU >= 9; bookworm-backports)"));
        }
    }
    if missing.is_empty() {
        return None;
    }
    let msg = format!("missing {}; install with .ci/setup", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("CI is set and the bare-metal QEMU test cannot run: {msg}");
    }
    Some(msg)
}

/// The model to boot with: the tiny fixture if present, else a GGUF v3 header (all the image's
/// echo stand-in checks).
fn model_path() -> PathBuf {
    let fixture = repo_root().join("tests/data/tiny-trained.i2_s.gguf");
    if fixture.is_file() {
        return fixture;
    }
    let path = std::env::temp_dir().join(format!("tern-baremetal-{}.gguf", std::process::id()));
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.resize(4096, 0);
    std::fs::write(&path, bytes).expect("write a temporary GGUF");
    path
}

/// Runs `cross/run-qemu TARGET --model M --via VIA` with `input` on stdin; returns (status, stdout).
fn run_qemu(target: &str, via: &str, input: &str) -> (Option<i32>, String) {
    let root = repo_root();
    let model = model_path();
    let mut child = Command::new(root.join("cross/run-qemu"))
        .args([target, "--model"])
        .arg(&model)
        .args(["--via", via, "--timeout", "60"])
        .env("TERN_DIST", root.join("target/baremetal-qemu-test-dist").join(via))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cross/run-qemu");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write prompt");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("poll").is_some() {
            break;
        }
        if start.elapsed() > BOOT_LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "{target} ({via}): no exit within {BOOT_LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("collect output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!("stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.code(), stdout)
}

fn boot_and_prompt(target: &str, machine: &str, via: &str, core: &str) {
    if let Some(why) = missing_tools(machine) {
        eprintln!("skipping bare-metal QEMU test ({target}, {via}): {why}");
        return;
    }
    let (status, out) = run_qemu(target, via, "Once upon a time\n");
    let expect = [
        "tern bare-metal",
        core,
        "now EL1, mmu=true",
        "GGUF v3",
        "arena: ",
        "> Once upon a time",
        "tokens in",
        "tok/s",
        "bye",
    ];
    for needle in expect {
        assert!(out.contains(needle), "{target} ({via}): output lacks {needle:?}:\n{out}");
    }
    // Exactly the tokens the host produces for the same prompt (greedy, 64 new tokens).
    let expected = host_greedy("Once upon a time", 64);
    assert!(
        out.contains(&format!("> Once upon a time\n{expected}"))
            || out.contains(&format!("> Once upon a time\r\n{expected}")),
        "{target} ({via}): the UART answer differs from the host's greedy output {expected:?}:\n{out}"
    );
    match via {
        "initrd" => assert!(out.contains("model: DeviceTreeInitrd"), "{out}"),
        _ => assert!(out.contains("model: FixedAddress"), "{out}"),
    }
    assert_eq!(status, Some(0), "{target} ({via}): semihosting exit status\n{out}");
}

/// The host's greedy completion, computed with the same runtime core on x86 (the text the
/// `tern run --temp 0 -n 64` command prints).
fn host_greedy(prompt: &str, n: usize) -> String {
    use tern_runtime::session::{Control, Session, SessionOptions, Sink};
    struct Text(String);
    impl Sink for Text {
        fn token(&mut self, _id: u32, t: &str) -> Control {
            self.0.push_str(t);
            Control::Continue
        }
    }
    let file = std::fs::read(repo_root().join("tests/data/tiny-trained.i2_s.gguf")).expect("model");
    let g = tern_runtime::gguf::Gguf::parse(&file).expect("parse");
    let opts = SessionOptions {
        n_ctx: 256,
        sampler: tern_runtime::sampler::SamplerConfig::greedy(),
        ..SessionOptions::default()
    };
    let mut arena = vec![0u8; Session::plan(&g, &opts).expect("plan").total];
    let mut s = Session::new(g, &mut arena, opts).expect("session");
    let mut t = Text(String::new());
    s.complete(prompt, false, n, &tern_runtime::par::Serial, &mut t).expect("complete");
    t.0
}

// The four boots share cross/pi-baremetal/target; cargo's lock serialises the builds.

#[test]
fn raspi3b_answers_over_uart_with_dtb_initrd() {
    boot_and_prompt("rpi3-baremetal", "raspi3b", "initrd", "Cortex-A53");
}

#[test]
fn raspi4b_answers_over_uart_with_dtb_initrd() {
    boot_and_prompt("rpi4-baremetal", "raspi4b", "initrd", "Cortex-A72");
}

#[test]
fn raspi3b_answers_over_uart_with_fixed_address_blob() {
    boot_and_prompt("rpi3-baremetal", "raspi3b", "loader", "Cortex-A53");
}

#[test]
fn raspi4b_answers_over_uart_with_fixed_address_blob() {
    boot_and_prompt("rpi4-baremetal", "raspi4b", "loader", "Cortex-A72");
}

// -------------------------------------------------------------------------------------------------
// Device-tree parser and discovery (host)
// -------------------------------------------------------------------------------------------------

/// A minimal FDT writer for the tests (devicetree spec v0.4, chapter 5).
#[derive(Default)]
struct DtbWriter {
    structs: Vec<u8>,
    strings: Vec<u8>,
}

impl DtbWriter {
    fn pad(&mut self) {
        while !self.structs.len().is_multiple_of(4) {
            self.structs.push(0);
        }
    }
    fn begin(&mut self, name: &str) -> &mut Self {
        self.structs.extend_from_slice(&1u32.to_be_bytes());
        self.structs.extend_from_slice(name.as_bytes());
        self.structs.push(0);
        self.pad();
        self
    }
    fn end(&mut self) -> &mut Self {
        self.structs.extend_from_slice(&2u32.to_be_bytes());
        self
    }
    fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.structs.extend_from_slice(&3u32.to_be_bytes());
        self.structs.extend_from_slice(&(value.len() as u32).to_be_bytes());
        self.structs.extend_from_slice(&off.to_be_bytes());
        self.structs.extend_from_slice(value);
        self.pad();
        self
    }
    fn finish(&mut self) -> Vec<u8> {
        self.structs.extend_from_slice(&9u32.to_be_bytes());
        let off_struct = 40 + 16;
        let off_strings = off_struct + self.structs.len();
        let total = off_strings + self.strings.len();
        let mut out = Vec::new();
        for v in [
            fdt::FDT_MAGIC,
            total as u32,
            off_struct as u32,
            off_strings as u32,
            40,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structs.len() as u32,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&self.structs);
        out.extend_from_slice(&self.strings);
        out
    }
}

fn be(vals: &[u32]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// A tree shaped like the firmware's: decoy `chosen`/`memory` nodes deeper down, 64-bit initrd
/// cells, `#address-cells = 1`.
fn sample_dtb() -> Vec<u8> {
    let mut w = DtbWriter::default();
    w.begin("")
        .prop("#address-cells", &be(&[1]))
        .prop("#size-cells", &be(&[1]))
        .prop("model", b"Raspberry Pi 4 Model B Rev 1.4\0")
        .begin("soc")
        .begin("chosen")
        .prop("linux,initrd-start", &be(&[0x1234]))
        .end()
        .begin("memory@0")
        .prop("reg", &be(&[0x5000, 0x10]))
        .end()
        .end()
        .begin("chosen")
        .prop("bootargs", b"console=ttyAMA0\0")
        .prop("linux,initrd-start", &be(&[0, 0x0200_0000]))
        .prop("linux,initrd-end", &be(&[0x0210_0000]))
        .end()
        .begin("memory@0")
        .prop("device_type", b"memory\0")
        .prop("reg", &be(&[0, 0x3b40_0000]))
        .end()
        .end();
    w.finish()
}

#[test]
fn fdt_reads_model_initrd_and_memory() {
    let blob = sample_dtb();
    let fdt = fdt::Fdt::new(&blob).expect("valid blob");
    let info = discover::read_device_tree(&fdt).expect("readable");
    assert_eq!(info.model, Some("Raspberry Pi 4 Model B Rev 1.4"));
    assert_eq!(info.initrd, Some(0x0200_0000..0x0210_0000));
    assert_eq!(info.memory, Some(0..0x3b40_0000));
    assert_eq!(info.total_size, blob.len());
    assert_eq!(fdt.property_str("/chosen", "bootargs").unwrap(), Some("console=ttyAMA0"));
    assert_eq!(fdt.property("/chosen", "absent").unwrap(), None);
    assert_eq!(fdt.property("/nothere", "model").unwrap(), None);
    // The nested decoys are reachable only by their full path.
    assert_eq!(fdt.property_u64("/soc/chosen", "linux,initrd-start").unwrap(), Some(0x1234));
    assert_eq!(fdt.property("/memory@0", "device_type").unwrap(), Some(&b"memory\0"[..]));
    assert_eq!(fdt.property("/memory@1", "device_type").unwrap(), None);
}

#[test]
fn fdt_never_panics_on_damaged_blobs() {
    let blob = sample_dtb();
    let probe = |b: &[u8]| {
        if let Ok(f) = fdt::Fdt::new(b) {
            let _ = discover::read_device_tree(&f);
            let _ = f.property("/a/b/c/d", "x");
        }
    };
    for len in 0..blob.len() {
        probe(&blob[..len]);
    }
    // Every single-byte corruption, with a few values each.
    for i in 0..blob.len() {
        for v in [0x00, 0x01, 0x03, 0x09, 0x7f, 0xff] {
            let mut b = blob.clone();
            b[i] = v;
            probe(&b);
        }
    }
    assert!(matches!(fdt::Fdt::new(&[0u8; 64]), Err(fdt::FdtError::BadMagic { found: 0 })));
    assert!(matches!(fdt::total_size(&[0xd0, 0x0d]), Err(fdt::FdtError::Truncated { .. })));
}

#[test]
fn fdt_rejects_deep_nesting() {
    let mut w = DtbWriter::default();
    w.begin("");
    for _ in 0..40 {
        w.begin("n");
    }
    for _ in 0..40 {
        w.end();
    }
    w.end();
    let blob = w.finish();
    let f = fdt::Fdt::new(&blob).expect("header ok");
    assert_eq!(f.property("/chosen", "x"), Err(fdt::FdtError::TooDeep));
}

#[test]
fn ternblob_header_and_ranges() {
    let payload = b"GGUF\x03\0\0\0 some model bytes";
    let mut blob = b"TERNBLOB".to_vec();
    blob.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    blob.extend_from_slice(&discover::fnv1a64(payload).to_le_bytes());
    blob.extend_from_slice(&0u64.to_le_bytes());
    let h = discover::parse_blob_header(&blob).expect("header");
    assert_eq!(h.len, payload.len() as u64);
    assert_eq!(h.fnv1a, discover::fnv1a64(payload));
    assert_eq!(discover::parse_blob_header(&blob[..31]), None);
    assert_eq!(discover::parse_blob_header(&[0u8; 32]), None);
    // FNV-1a 64 reference values.
    assert_eq!(discover::fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(discover::fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);

    let image = 0x8_0000..0x9_1000;
    assert!(discover::check_range(&(0x0800_0000..0x0900_0000), 0x3c00_0000, &image).is_ok());
    assert!(discover::check_range(&(0x9_0000..0x10_0000), 0x3c00_0000, &image).is_err());
    assert!(discover::check_range(&(0x3b00_0000..0x3d00_0000), 0x3c00_0000, &image).is_err());
    assert!(discover::check_range(&(0x100..0x100), 0x3c00_0000, &image).is_err());
    assert_eq!(discover::align_up(0x81d_5ea0, 2 << 20), 0x820_0000);
}
