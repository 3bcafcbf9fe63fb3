//! `tern bench` end to end on the bundled model, with fake sysfs trees and a fake `vcgencmd`.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

/// Every key of a `tern-bench/1` record (runtime/energy/SCHEMA.md).
const KEYS: &[&str] = &[
    "schema",
    "test",
    "model",
    "n_prompt",
    "n_gen",
    "threads",
    "kernel",
    "reps",
    "tok_s_mean",
    "tok_s_sd",
    "ms_per_tok",
    "ttft_ms",
    "peak_rss_bytes",
    "arena_bytes",
    "bytes_per_token",
    "effective_gbps",
    "board",
    "cpu",
    "midr",
    "governor",
    "cur_freq_khz",
    "max_freq_khz",
    "temp_c",
    "throttled",
    "valid",
    "invalid_reason",
    "energy",
    "bandwidth_gbps",
    "bandwidth_fraction",
];

const MEASURED_KEYS: &[&str] = &[
    "method",
    "sensors",
    "scope",
    "window_s",
    "samples",
    "avg_w",
    "joules",
    "tokens",
    "j_per_token",
    "idle_w",
    "j_per_token_idle_subtracted",
];

/// The small settings every test uses.
const TINY: &[&str] = &["-p", "8", "-n", "4", "-r", "2", "-t", "1,2"];

fn model() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/tiny-trained.i2_s.gguf")
        .to_string_lossy()
        .into_owned()
}

/// Tests write scripts and spawn processes; a script being written while another thread forks
/// can make exec fail with ETXTBSY, so they run one at a time (each takes well under a second).
fn lock() -> MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|p| p.into_inner())
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "tern-bench-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn s(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    fn file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    fn script(&self, rel: &str, body: &str) -> String {
        let p = self.file(rel, &format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tern(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tern")).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// Runs `tern bench --json` on the tiny model with `extra` and returns the parsed lines.
fn bench_json(extra: &[&str]) -> Vec<Value> {
    let m = model();
    let mut args = vec!["bench", "-m", m.as_str(), "--json"];
    args.extend_from_slice(TINY);
    args.extend_from_slice(extra);
    let (code, out, err) = tern(&args);
    assert_eq!(code, 0, "tern {args:?}: {err}");
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn sorted(k: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

/// A fake `vcgencmd` answering `pmic_read_adc` (3.45 W in all), `get_throttled` and `measure_temp`.
fn fake_vcgencmd(dir: &TempDir, throttled: &str) -> String {
    dir.script(
        "bin/vcgencmd",
        &format!(
            r#"case "$1" in
pmic_read_adc) printf '   3V7_WL_SW_A current(0)=0.50000000A\n     VDD_CORE_A current(7)=2.00000000A\n   3V7_WL_SW_V volt(8)=3.70000000V\n     VDD_CORE_V volt(15)=0.80000000V\n       EXT5V_V volt(24)=5.10000000V\n' ;;
get_throttled) echo 'throttled={throttled}' ;;
measure_temp) echo "temp=50.5'C" ;;
*) exit 1 ;;
esac"#
        ),
    )
}

#[test]
fn json_lines_carry_every_schema_key() {
    let _l = lock();
    let empty = TempDir::new("empty");
    let recs = bench_json(&[
        "--energy",
        "none",
        "--sysroot",
        &empty.s(),
        "--vcgencmd",
        "/nonexistent/vcgencmd",
    ]);
    let tests: Vec<(&str, u64)> = recs
        .iter()
        .map(|r| (r["test"].as_str().unwrap(), r["threads"].as_u64().unwrap()))
        .collect();
    assert_eq!(tests, [("pp8", 1), ("tg4", 1), ("pp8", 2), ("tg4", 2)]);
    for r in &recs {
        assert_eq!(keys(r), sorted(KEYS), "{r}");
        assert_eq!(r["schema"], "tern-bench/1");
        assert_eq!(r["model"], "tiny-trained.i2_s.gguf");
        assert_eq!(r["reps"], 2);
        assert_eq!(r["valid"], true, "{r}");
        assert!(r["invalid_reason"].is_null());
        assert!(r["tok_s_mean"].as_f64().unwrap() > 0.0);
        assert!(r["tok_s_sd"].as_f64().unwrap() >= 0.0);
        let ms = r["ms_per_tok"].as_f64().unwrap();
        assert!((ms - 1000.0 / r["tok_s_mean"].as_f64().unwrap()).abs() < 1e-6 * ms);
        assert!(r["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
        assert!(r["arena_bytes"].as_u64().unwrap() > 0);
        let bpt = r["bytes_per_token"].as_f64().unwrap();
        assert!(bpt > 0.0);
        let gbps = r["effective_gbps"].as_f64().unwrap();
        assert!(
            (gbps - bpt * r["tok_s_mean"].as_f64().unwrap() / 1e9).abs() <= 1e-9 * gbps.max(1.0)
        );
        // Not a Pi, no vcgencmd: unknown facts are null, never guessed.
        assert!(r["board"].is_null() && r["throttled"].is_null() && r["temp_c"].is_null());
        assert!(r["bandwidth_gbps"].is_null() && r["bandwidth_fraction"].is_null());
        // --energy none: the unavailable form, with no number anywhere.
        let e = r["energy"].as_object().unwrap();
        assert!(e["method"].is_null());
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e["unavailable"][0]["source"], "none");
    }
    let (pp, tg) = (&recs[0], &recs[1]);
    assert_eq!((pp["n_prompt"].as_u64(), pp["n_gen"].as_u64()), (Some(8), Some(0)));
    assert_eq!((tg["n_prompt"].as_u64(), tg["n_gen"].as_u64()), (Some(0), Some(4)));
    assert!(pp["ttft_ms"].is_null());
    assert!(tg["ttft_ms"].as_f64().unwrap() > 0.0);
    // The prompt is batched: weights are read once per batch, so fewer bytes per prompt token.
    assert!(pp["bytes_per_token"].as_u64() < tg["bytes_per_token"].as_u64());
    assert!(
        ["avx2", "vnni", "neon", "dotprod", "reference"].contains(&pp["kernel"].as_str().unwrap())
    );
}

#[test]
fn rapl_counter_from_a_fake_sysfs_tree() {
    let _l = lock();
    let root = TempDir::new("rapl");
    root.file("sys/class/powercap/intel-rapl:0/name", "package-0\n");
    root.file("sys/class/powercap/intel-rapl:0/energy_uj", "123456789\n");
    root.file("sys/class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n");
    root.file("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
    root.file("sys/class/thermal/thermal_zone0/temp", "45250\n");
    root.file("proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\0");
    root.file(
        "proc/cpuinfo",
        "processor\t: 0\nCPU implementer\t: 0x41\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n",
    );
    root.file("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n");
    let vc = fake_vcgencmd(&root, "0x0");
    let recs = bench_json(&[
        "--energy",
        "rapl",
        "--idle-secs",
        "0.05",
        "--sysroot",
        &root.s(),
        "--vcgencmd",
        &vc,
    ]);
    assert_eq!(recs.len(), 4);
    for r in &recs {
        let e = &r["energy"];
        assert_eq!(e["method"], "rapl", "{r}");
        assert_eq!(keys(e), sorted(MEASURED_KEYS));
        assert_eq!(e["sensors"][0], "intel-rapl:0 (package-0)");
        // The fake counter never moves: zero joules, but measured numbers, not null.
        assert_eq!(e["joules"].as_f64(), Some(0.0));
        assert_eq!(e["j_per_token"].as_f64(), Some(0.0));
        assert!(e["window_s"].as_f64().unwrap() > 0.0);
        assert!(e["samples"].as_u64().unwrap() >= 2);
        assert_eq!(e["tokens"].as_u64(), Some(2 * if r["test"] == "pp8" { 8 } else { 4 }));
        assert_eq!(e["idle_w"].as_f64(), Some(0.0));
        assert_eq!(r["board"], "Raspberry Pi 5 Model B Rev 1.0");
        assert_eq!(r["cpu"], "Cortex-A76");
        assert_eq!(r["governor"], "performance");
        assert_eq!(r["temp_c"].as_f64(), Some(45.25));
        assert_eq!(r["throttled"]["raw"], 0);
        assert_eq!(r["valid"], true);
    }
}

#[test]
fn pmic_power_from_a_fake_vcgencmd() {
    let _l = lock();
    let dir = TempDir::new("pmic");
    let vc = fake_vcgencmd(&dir, "0x50000");
    let watts = 0.5 * 3.7 + 2.0 * 0.8;
    // With --bandwidth every repetition has a window of its own (the streaming reads between
    // them left out) and the test's energy is their sum: the same power and tokens either way.
    for extra in [&[][..], &["--bandwidth"]] {
        let root = dir.s();
        let mut args =
            vec!["--energy", "pmic", "--idle-secs", "0.15", "--sysroot", &root, "--vcgencmd", &vc];
        args.extend_from_slice(extra);
        let recs = bench_json(&args);
        assert_eq!(recs.len(), 4);
        for r in &recs {
            let e = &r["energy"];
            assert_eq!(e["method"], "pmic", "{r}");
            assert_eq!(keys(e), sorted(MEASURED_KEYS));
            assert!(e["scope"].as_str().unwrap().contains("not the wall"));
            let avg = e["avg_w"].as_f64().unwrap();
            assert!((avg - watts).abs() < 1e-9, "{avg}");
            let j = e["joules"].as_f64().unwrap();
            assert!((j - watts * e["window_s"].as_f64().unwrap()).abs() < 1e-9);
            let jpt = e["j_per_token"].as_f64().unwrap();
            assert!((jpt - j / e["tokens"].as_f64().unwrap()).abs() < 1e-12);
            assert_eq!(e["tokens"].as_u64(), Some(2 * if r["test"] == "pp8" { 8 } else { 4 }));
            // At least two readings per window.
            assert!(e["samples"].as_u64().unwrap() >= 2 * (1 + extra.len() as u64), "{e}");
            assert!((e["idle_w"].as_f64().unwrap() - watts).abs() < 1e-9);
            // Constant power: the idle-subtracted energy is zero (within rounding).
            assert!(e["j_per_token_idle_subtracted"].as_f64().unwrap().abs() < 1e-9);
            assert_eq!(r["temp_c"].as_f64(), Some(50.5));
            // Throttling occurred since boot (bits 16, 18) but is not active: still valid.
            assert_eq!(r["throttled"]["throttled_occurred"], true);
            assert_eq!(r["valid"], true);
            assert_eq!(r["bandwidth_gbps"].is_null(), extra.is_empty());
        }
    }
}

#[test]
fn active_throttling_marks_records_invalid() {
    let _l = lock();
    let dir = TempDir::new("throttle");
    let vc = fake_vcgencmd(&dir, "0x4");
    let recs = bench_json(&["--energy", "none", "--sysroot", &dir.s(), "--vcgencmd", &vc]);
    for r in &recs {
        assert_eq!(r["valid"], false);
        assert!(r["invalid_reason"].as_str().unwrap().contains("throttled"), "{r}");
    }
}

#[test]
fn table_bandwidth_and_plot() {
    let _l = lock();
    let dir = TempDir::new("plot");
    let png = dir.path().join("bench.png");
    let png_s = png.to_string_lossy().into_owned();
    let m = model();
    let mut args =
        vec!["bench", "-m", m.as_str(), "--energy", "none", "--bandwidth", "--plot", &png_s];
    args.extend_from_slice(TINY);
    let (code, out, err) = tern(&args);
    assert_eq!(code, 0, "{err}");
    for want in
        ["| pp8 | 1 |", "| tg4 | 2 |", "not measured", "stream GB/s", "bit-identical to reference"]
    {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // Three streaming reads per test (-r 2): before each repetition and after the last.
    let line = out.lines().find(|l| l.starts_with("stream: before each repetition")).unwrap();
    let tests: Vec<&str> = line.split_once("GB/s: ").unwrap().1.split("; ").collect();
    assert_eq!(tests.len(), 4, "{line}");
    for t in tests {
        assert_eq!(t.matches(" → ").count(), 2, "{t}");
    }
    assert!(err.contains("correctness gate passed"), "{err}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1000);
    assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");

    // The same numbers as JSON: bandwidth on every record, the ceiling fraction on tg only.
    let recs = bench_json(&["--energy", "none", "--bandwidth"]);
    for r in &recs {
        let bw = r["bandwidth_gbps"].as_f64().unwrap();
        assert!(bw > 0.1, "{r}");
        if r["test"] == "tg4" {
            // The mean of per-repetition fractions, each against its own ceiling.
            let f = r["bandwidth_fraction"].as_f64().unwrap();
            assert!(f > 0.0 && f.is_finite(), "{r}");
        } else {
            assert!(r["bandwidth_fraction"].is_null());
        }
    }
}

#[test]
fn reference_kernel_skips_the_gate() {
    let _l = lock();
    let recs = bench_json(&["--energy", "none", "--kernel", "reference"]);
    assert_eq!(recs.len(), 4);
    assert!(recs.iter().all(|r| r["kernel"] == "reference" && r["valid"] == true));
}

#[test]
fn bad_arguments_give_one_clear_line() {
    let _l = lock();
    let m = model();
    for (args, want) in [
        (vec!["--kernel", "bogus"], "unknown kernel 'bogus'"),
        (vec!["-t", "1,x"], "bad -t value '1,x'"),
        (vec!["-t", "0"], "bad -t value '0'"),
        (vec!["--energy", "joulemeter"], "unknown energy source"),
        (vec!["-p", "0", "-n", "0"], "nothing to run"),
        (vec!["-p", "8", "-c", "4"], "-c 4 is too small"),
    ] {
        let mut a = vec!["bench", "-m", m.as_str()];
        a.extend_from_slice(&args);
        let (code, out, err) = tern(&a);
        assert_ne!(code, 0, "{args:?}");
        assert!(out.is_empty(), "{args:?}: stdout {out:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.starts_with("tern: error: ") && err.contains(want), "{args:?}: {err:?}");
    }
    let (code, _, err) = tern(&["bench", "-m", "/nonexistent/model.gguf", "-t", "1"]);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err:?}");
}
