//! System state from a fake Pi 5 tree, the `tern-bench/1` JSON schema, and the PNG plot.

mod common;

use common::{TempDir, process_lock};
use tern_energy::{
    BenchRecord, Energy, Measurement, SCHEMA, SysRoot, SystemState, Unavailable, format_table,
    peak_rss_bytes, plot,
};

fn fake_pi5(t: &TempDir) {
    t.file("proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\0");
    let mut cpuinfo = String::new();
    for i in 0..4 {
        cpuinfo.push_str(&format!(
            "processor\t: {i}\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU architecture: 8\n\
             CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n"
        ));
    }
    cpuinfo.push_str("Revision\t: d04170\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n");
    t.file("proc/cpuinfo", &cpuinfo);
    for i in 0..4 {
        let gov = if i == 3 { "ondemand" } else { "performance" };
        t.file(
            &format!("sys/devices/system/cpu/cpu{i}/cpufreq/scaling_governor"),
            &format!("{gov}\n"),
        );
    }
    t.file("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "2400000\n");
    t.file("sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq", "2400000\n");
    t.file("sys/devices/system/cpu/cpufreq/policy0/x", "");
    t.file("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
    t.file("sys/class/thermal/thermal_zone0/temp", "61250\n");
    t.file(
        "proc/self/status",
        "Name:\ttern\nVmPeak:\t  900000 kB\nVmHWM:\t  524288 kB\nVmRSS:\t 1000 kB\n",
    );
}

#[test]
fn system_state_from_fake_pi5() {
    let _g = process_lock();
    let t = TempDir::new("sys");
    fake_pi5(&t);
    let vc = t.script(
        "bin/vcgencmd",
        "case \"$1\" in get_throttled) echo throttled=0x50005;; measure_temp) echo \"temp=70.1'C\";; *) exit 1;; esac",
    );
    let root = SysRoot::new(t.path());
    let s = SystemState::read(&root, Some(&vc));
    assert_eq!(s.board.as_deref(), Some("Raspberry Pi 5 Model B Rev 1.0"));
    assert_eq!(s.cpu.as_deref(), Some("Cortex-A76"));
    assert_eq!(s.midr.as_deref(), Some("0x414fd0b1"));
    assert_eq!(s.cpus, Some(4));
    assert_eq!(s.governor.as_deref(), Some("mixed(performance,ondemand)"));
    assert_eq!((s.cur_freq_khz, s.max_freq_khz), (Some(2_400_000), Some(2_400_000)));
    assert_eq!(s.temp_c, Some(61.25));
    assert_eq!(s.temp_source.as_deref(), Some("thermal_zone0 (cpu-thermal)"));
    let th = s.throttled.expect("throttled");
    assert!(th.under_voltage && th.throttled && th.under_voltage_occurred && !th.freq_capped);
    assert_eq!(peak_rss_bytes(&root), Some(524_288 * 1024));

    // No thermal zone: temperature falls back to vcgencmd.
    std::fs::remove_dir_all(t.path().join("sys/class/thermal")).expect("rm");
    let s = SystemState::read(&root, Some(&vc));
    assert_eq!(s.temp_c, Some(70.1));
    assert_eq!(s.temp_source.as_deref(), Some("vcgencmd measure_temp"));

    // A record marks itself invalid when the board is throttling now.
    let mut r = BenchRecord::new("tg128", 0, 128, 4, "dotprod", &[10.0]);
    r.apply_system(&s);
    assert!(!r.valid);
    assert!(r.invalid_reason.as_deref().is_some_and(|m| m.contains("0x50005")));
}

#[test]
fn empty_tree_gives_nothing_not_guesses() {
    let t = TempDir::new("sys-empty");
    let s = SystemState::read(&SysRoot::new(t.path()), None);
    assert_eq!(s, SystemState::default());
    assert_eq!(peak_rss_bytes(&SysRoot::new(t.path())), None);
}

#[test]
fn real_peak_rss_is_positive() {
    // /proc/self/status exists on any Linux test machine; no sensors are needed.
    assert!(peak_rss_bytes(&SysRoot::host()).is_some_and(|b| b > 0));
}

fn measurement() -> Measurement {
    Measurement {
        method: "pmic".into(),
        sensors: vec!["pmic:VDD_CORE".into()],
        scope: "rails".into(),
        seconds: 10.0,
        joules: 50.0,
        avg_w: 5.0,
        samples: 101,
        read_errors: 0,
        wraps: 0,
    }
}

fn idle() -> Measurement {
    Measurement { seconds: 2.0, joules: 6.0, avg_w: 3.0, samples: 21, ..measurement() }
}

fn record(threads: u32, test: &str, tok: &[f64], energy: bool) -> BenchRecord {
    let mut r = BenchRecord::new(
        test,
        if test.starts_with("pp") { 128 } else { 0 },
        128,
        threads,
        "neon",
        tok,
    );
    r.model = Some("ggml-model-i2_s.gguf".into());
    r.ttft_ms = Some(120.5);
    r.peak_rss_bytes = Some(1_200_000_000);
    r.arena_bytes = 150_000_000;
    r.set_bytes_per_token(1_000_000_000);
    r.board = Some("Raspberry Pi 5 Model B Rev 1.0".into());
    r.energy = if energy {
        let mut m = measurement();
        m.joules = 50.0 / f64::from(threads).sqrt();
        Energy::measured(&m, Some(&idle()), 128)
    } else {
        Energy::unavailable(vec![Unavailable::new("rapl", "no powercap")])
    };
    r
}

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
const ENERGY_KEYS: &[&str] = &[
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

#[test]
fn schema_keys_are_stable() {
    let r = record(1, "tg128", &[8.0, 10.0, 12.0], true);
    let line = r.to_json_line();
    assert!(!line.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&line).expect("valid json");
    let obj = v.as_object().expect("object");
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    let mut want = KEYS.to_vec();
    want.sort_unstable();
    let mut got = keys.clone();
    got.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(v["schema"], SCHEMA);
    assert_eq!(v["tok_s_mean"], 10.0);
    assert_eq!(v["tok_s_sd"], 2.0);
    assert_eq!(v["ms_per_tok"], 100.0);
    assert_eq!(v["effective_gbps"], 10.0);
    let e = v["energy"].as_object().expect("energy");
    let mut ek: Vec<&str> = e.keys().map(String::as_str).collect();
    ek.sort_unstable();
    let mut want = ENERGY_KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(ek, want);
    assert_eq!(v["energy"]["j_per_token"], 50.0 / 128.0);
    // (50 J - 3 W * 10 s) / 128
    assert_eq!(v["energy"]["j_per_token_idle_subtracted"], 20.0 / 128.0);
    // Round trip.
    let back: BenchRecord = serde_json::from_str(&line).expect("deserialize");
    assert_eq!(back, r);

    let u = record(2, "pp128", &[20.0], false);
    let v: serde_json::Value = serde_json::from_str(&u.to_json_line()).expect("json");
    assert!(v["energy"]["method"].is_null());
    assert_eq!(v["energy"]["unavailable"][0]["source"], "rapl");
    assert_eq!(v["energy"].as_object().map(|o| o.len()), Some(2));
    let back: BenchRecord = serde_json::from_str(&u.to_json_line()).expect("deserialize");
    assert_eq!(back, u);
}

#[test]
fn schema_md_documents_every_key() {
    let doc = include_str!("../SCHEMA.md");
    assert!(doc.contains(SCHEMA));
    for k in KEYS.iter().chain(ENERGY_KEYS).chain(&[
        "unavailable",
        "source",
        "reason",
        "under_voltage_occurred",
    ]) {
        assert!(doc.contains(&format!("`{k}`")), "SCHEMA.md does not document `{k}`");
    }
}

#[test]
fn table_says_not_measured() {
    let t = format_table(&[record(1, "tg128", &[10.0], false)]);
    assert!(t.contains("not measured") && t.contains("n/a"), "{t}");
}

fn check_png(bytes: &[u8]) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]), 1000);
    assert!(bytes.len() < 200_000, "compressed size {}", bytes.len());
}

#[test]
fn plot_png_written() {
    let mut recs = Vec::new();
    for (i, th) in [1u32, 2, 4].iter().enumerate() {
        let f = f64::from(*th);
        recs.push(record(
            *th,
            "pp128",
            &[9.0 * f.powf(0.8), 9.5 * f.powf(0.8), 8.8 * f.powf(0.8)],
            true,
        ));
        recs.push(record(*th, "tg128", &[7.0 * f.powf(0.6), 7.3 * f.powf(0.6)], true));
        let _ = i;
    }
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let p = dir.join("tern-bench-plot.png");
    plot::write_png(&p, &recs).expect("write");
    check_png(&std::fs::read(&p).expect("read"));
    let none: Vec<BenchRecord> =
        [1u32, 2, 4].iter().map(|t| record(*t, "tg128", &[5.0 * f64::from(*t)], false)).collect();
    let p2 = dir.join("tern-bench-plot-no-energy.png");
    plot::write_png(&p2, &none).expect("write");
    check_png(&std::fs::read(&p2).expect("read"));
    check_png(&plot::render_png(&[]));
}
