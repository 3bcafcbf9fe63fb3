//! Energy sources against fake sysfs trees and fake commands (no real sensors needed).

mod common;

use std::time::Duration;

use common::{TempDir, process_lock};
use tern_energy::hwmon::Hwmon;
use tern_energy::pmic::Pmic;
use tern_energy::rapl::Rapl;
use tern_energy::{
    Counter, Energy, EnergyChoice, EnergySource, Integrator, ProbeConfig, Reading, Sampler,
    SysRoot, probe,
};

fn rapl_zone(t: &TempDir, zone: &str, name: &str, uj: u64, max: u64) {
    let d = format!("sys/class/powercap/{zone}");
    t.file(&format!("{d}/name"), &format!("{name}\n"));
    t.file(&format!("{d}/energy_uj"), &format!("{uj}\n"));
    t.file(&format!("{d}/max_energy_range_uj"), &format!("{max}\n"));
}

fn cfg(t: &TempDir) -> ProbeConfig {
    ProbeConfig {
        root: SysRoot::new(t.path()),
        vcgencmd: t.path().join("no-such-vcgencmd"),
        meter_period: Duration::from_millis(20),
        meter_first_value: Duration::from_secs(3),
    }
}

#[test]
fn rapl_top_level_only_and_wraparound() {
    let t = TempDir::new("rapl");
    rapl_zone(&t, "intel-rapl:0", "package-0", 262_000_000_000, 262_143_328_850);
    rapl_zone(&t, "intel-rapl:0:0", "core", 5, 262_143_328_850);
    rapl_zone(&t, "intel-rapl:1", "package-1", 1_000_000, 262_143_328_850);
    t.file("sys/class/powercap/intel-rapl-mmio:0/energy_uj", "1\n");
    let root = SysRoot::new(t.path());
    let mut r = Rapl::probe(&root).expect("rapl available");
    assert_eq!(r.sensors(), vec!["intel-rapl:0 (package-0)", "intel-rapl:1 (package-1)"]);
    assert_eq!(r.method(), "rapl");
    let first = r.read().expect("read");
    assert_eq!(
        first,
        Reading::Counters(vec![
            Counter { uj: 262_000_000_000, max_uj: 262_143_328_850 },
            Counter { uj: 1_000_000, max_uj: 262_143_328_850 }
        ])
    );
    let mut integ = Integrator::new();
    integ.push(0.0, Ok(first));
    // package-0 wraps: 143_328_850 µJ to the top, then 6_671_150 past zero = 150 J.
    t.file("sys/class/powercap/intel-rapl:0/energy_uj", "6671150\n");
    t.file("sys/class/powercap/intel-rapl:1/energy_uj", "11000000\n"); // +10 J
    integ.push(2.0, r.read());
    let m = integ.finish(&r).expect("measurement");
    assert!((m.joules - 160.0).abs() < 1e-6, "{}", m.joules);
    assert!((m.avg_w - 80.0).abs() < 1e-6);
    assert_eq!(m.wraps, 1);
}

#[test]
fn rapl_subzones_used_when_no_package() {
    let t = TempDir::new("rapl-sub");
    rapl_zone(&t, "intel-rapl:0:0", "core", 10, 1000);
    let r = Rapl::probe(&SysRoot::new(t.path())).expect("rapl");
    assert_eq!(r.sensors(), vec!["intel-rapl:0:0 (core)"]);
}

#[test]
fn rapl_permission_denied_is_explained() {
    let t = TempDir::new("rapl-eacces");
    rapl_zone(&t, "intel-rapl:0", "package-0", 10, 1000);
    let root = SysRoot::new(t.path()).deny("/sys/class/powercap/intel-rapl:0/energy_uj");
    let e = Rapl::probe(&root).expect_err("must be unavailable");
    assert!(e.contains("permission denied") && e.contains("root"), "{e}");
    // Same through `auto`, which then falls through to the next sources with reasons.
    let mut c = cfg(&t);
    c.root = root;
    let p = probe(&EnergyChoice::Auto, &c);
    assert!(p.source.is_none());
    let srcs: Vec<&str> = p.unavailable.iter().map(|u| u.source.as_str()).collect();
    assert_eq!(srcs, ["rapl", "pmic", "hwmon", "meter"]);
    assert!(p.unavailable[0].reason.contains("permission denied"));
}

#[test]
fn rapl_unreadable_file_even_as_root() {
    // A directory where energy_uj should be: read fails for root too.
    let t = TempDir::new("rapl-dir");
    t.file("sys/class/powercap/intel-rapl:0/energy_uj/x", "");
    t.file("sys/class/powercap/intel-rapl:0/max_energy_range_uj", "1000\n");
    let e = Rapl::probe(&SysRoot::new(t.path())).expect_err("unreadable");
    assert!(e.contains("energy_uj"), "{e}");
}

fn hwmon_dev(t: &TempDir, hw: &str, name: &str, files: &[(&str, &str)]) {
    t.file(&format!("sys/class/hwmon/{hw}/name"), &format!("{name}\n"));
    for (f, v) in files {
        t.file(&format!("sys/class/hwmon/{hw}/{f}"), &format!("{v}\n"));
    }
}

#[test]
fn hwmon_power_input_preferred_over_in_curr() {
    let t = TempDir::new("hwmon-power");
    hwmon_dev(&t, "hwmon0", "cpu_thermal", &[("temp1_input", "45000")]);
    hwmon_dev(
        &t,
        "hwmon1",
        "ina226",
        &[("power1_input", "2500000"), ("in1_input", "5000"), ("curr1_input", "1000")],
    );
    let mut h = Hwmon::probe(&SysRoot::new(t.path()), None).expect("hwmon");
    assert_eq!(h.sensors(), vec!["ina226@hwmon1:power1"]);
    assert_eq!(h.read(), Ok(Reading::Watts(2.5)));
}

#[test]
fn hwmon_in_times_curr_by_index() {
    let t = TempDir::new("hwmon-vi");
    hwmon_dev(
        &t,
        "hwmon3",
        "ina219",
        &[
            ("in0_input", "12"),
            ("in1_input", "5000"),
            ("curr1_input", "400"),
            ("curr2_input", "999"),
        ],
    );
    let mut h = Hwmon::probe(&SysRoot::new(t.path()), None).expect("hwmon");
    assert_eq!(h.sensors(), vec!["ina219@hwmon3:in1"]);
    assert_eq!(h.read(), Ok(Reading::Watts(2.0)));
}

fn jetson(t: &TempDir) {
    hwmon_dev(
        t,
        "hwmon1",
        "ina3221",
        &[
            ("in1_label", "VDD_IN"),
            ("in1_input", "5000"),
            ("curr1_input", "1200"),
            ("in2_label", "VDD_CPU_GPU_CV"),
            ("in2_input", "5000"),
            ("curr2_input", "400"),
            ("in3_label", "VDD_SOC"),
            ("in3_input", "5000"),
            ("curr3_input", "300"),
            ("in4_input", "40"),
            ("in5_input", "12"),
            ("in6_input", "9"),
        ],
    );
}

#[test]
fn ina3221_uses_input_rail_and_filters() {
    let t = TempDir::new("ina3221");
    jetson(&t);
    let root = SysRoot::new(t.path());
    let mut h = Hwmon::probe(&root, None).expect("hwmon");
    assert_eq!(h.sensors(), vec!["ina3221:VDD_IN"]);
    assert_eq!(h.read(), Ok(Reading::Watts(6.0)));
    assert!(h.scope().contains("input rail"), "{}", h.scope());
    let mut soc = Hwmon::probe(&root, Some("ina3221:VDD_SOC")).expect("filtered");
    assert_eq!(soc.sensors(), vec!["ina3221:VDD_SOC"]);
    assert_eq!(soc.read(), Ok(Reading::Watts(1.5)));
    let all = Hwmon::probe(&root, Some("ina3221")).expect("device filter");
    assert_eq!(all.sensors().len(), 3);
    let e = Hwmon::probe(&root, Some("nope")).expect_err("no such sensor");
    assert!(e.contains("VDD_SOC"), "lists what exists: {e}");
}

#[test]
fn hwmon_without_power_explains() {
    let t = TempDir::new("hwmon-none");
    hwmon_dev(&t, "hwmon0", "cpu_thermal", &[("temp1_input", "45000")]);
    hwmon_dev(&t, "hwmon1", "rpi_volt", &[("in0_lcrit_alarm", "0")]);
    let e = Hwmon::probe(&SysRoot::new(t.path()), None).expect_err("none");
    assert!(e.contains("cpu_thermal") && e.contains("rpi_volt"), "{e}");
}

#[test]
fn auto_prefers_rapl_then_hwmon() {
    let t = TempDir::new("auto");
    jetson(&t);
    let p = probe(&EnergyChoice::Auto, &cfg(&t));
    assert_eq!(p.source.as_ref().map(|s| s.method().to_string()).as_deref(), Some("hwmon"));
    let srcs: Vec<&str> = p.unavailable.iter().map(|u| u.source.as_str()).collect();
    assert_eq!(srcs, ["rapl", "pmic"]);
    rapl_zone(&t, "intel-rapl:0", "package-0", 10, 1000);
    let p = probe(&EnergyChoice::Auto, &cfg(&t));
    assert_eq!(p.source.as_ref().map(|s| s.method().to_string()).as_deref(), Some("rapl"));
    assert!(p.unavailable.is_empty());
}

#[test]
fn none_and_nothing_give_reasons_never_numbers() {
    let t = TempDir::new("nothing");
    let p = probe(&EnergyChoice::None, &cfg(&t));
    assert!(p.source.is_none());
    assert_eq!(p.unavailable[0].source, "none");
    let p = probe(&EnergyChoice::Auto, &cfg(&t));
    assert!(p.source.is_none());
    assert_eq!(p.unavailable.len(), 4);
    let pmic = &p.unavailable[1];
    assert!(pmic.reason.contains("cannot run"), "{pmic:?}");
    let json = serde_json::to_value(Energy::unavailable(p.unavailable)).expect("json");
    assert!(json["method"].is_null());
    assert_eq!(json["unavailable"].as_array().map(Vec::len), Some(4));
    assert!(json.get("joules").is_none() && json.get("avg_w").is_none());
}

#[test]
fn choice_parsing() {
    assert_eq!("auto".parse(), Ok(EnergyChoice::Auto));
    assert_eq!("hwmon:ina3221".parse(), Ok(EnergyChoice::Hwmon(Some("ina3221".into()))));
    assert_eq!("meter:echo 3".parse(), Ok(EnergyChoice::Meter("echo 3".into())));
    assert!("meter:".parse::<EnergyChoice>().is_err());
    assert!("estimate".parse::<EnergyChoice>().is_err());
}

const PMIC_OUT: &str = r#"cat <<'X'
     3V7_WL_SW_A current(0)=0.10000000A
       3V3_SYS_A current(1)=0.50000000A
      VDD_CORE_A current(7)=2.00000000A
     3V7_WL_SW_V volt(8)=3.70000000V
       3V3_SYS_V volt(9)=3.30000000V
      VDD_CORE_V volt(15)=0.80000000V
         EXT5V_V volt(24)=5.10000000V
X"#;

#[test]
fn pmic_fake_vcgencmd() {
    let _g = process_lock();
    let t = TempDir::new("pmic");
    let vc = t.script("bin/vcgencmd", &format!("[ \"$1\" = pmic_read_adc ] || exit 2\n{PMIC_OUT}"));
    let mut p = Pmic::probe(&vc).expect("pmic");
    assert_eq!(p.sensors(), vec!["pmic:3V3_SYS", "pmic:3V7_WL_SW", "pmic:VDD_CORE"]);
    assert!(p.scope().contains("not the wall"), "{}", p.scope());
    let Ok(Reading::Watts(w)) = p.read() else { panic!("no reading") };
    assert!((w - (0.37 + 1.65 + 1.6)).abs() < 1e-9, "{w}");
    // Through probe() and a sampler window.
    let mut c = cfg(&t);
    c.vcgencmd = vc;
    let probed = probe(&EnergyChoice::Pmic, &c);
    let (s, _) = probed.into_sampler();
    let mut s = s.expect("sampler");
    s.start().expect("start");
    std::thread::sleep(Duration::from_millis(250));
    let m = s.stop().expect("window");
    assert_eq!(m.method, "pmic");
    assert!((m.avg_w - 3.62).abs() < 1e-6, "{m:?}");
}

#[test]
fn pmic_on_older_pi_explains() {
    let _g = process_lock();
    let t = TempDir::new("pmic-old");
    let vc = t.script("bin/vcgencmd", "echo 'error=1 error_msg=\"Command not registered\"'");
    let e = Pmic::probe(&vc).expect_err("not a Pi 5");
    assert!(e.contains("no current/voltage pairs"), "{e}");
    let vc = t.script("bin/vcgencmd2", "echo 'VCHI init failed' >&2; exit 255");
    let e = Pmic::probe(&vc).expect_err("broken");
    assert!(e.contains("255") && e.contains("VCHI"), "{e}");
}

#[test]
fn meter_one_shot_and_stream() {
    let _g = process_lock();
    let t = TempDir::new("meter");
    let one = t.script("one.sh", "echo 3.5");
    let mut c = cfg(&t);
    let p = probe(&EnergyChoice::Meter(one.display().to_string()), &c);
    let mut s = Sampler::new(p.source.expect("meter"), Duration::from_millis(20));
    let m = s.measure_idle(Duration::from_millis(200)).expect("window");
    assert_eq!(m.method, "meter");
    assert!((m.avg_w - 3.5).abs() < 1e-9, "{m:?}");
    drop(s);

    let stream =
        t.script("stream.sh", "echo header; while true; do echo 'P=5.25 W'; sleep 0.01; done");
    c.meter_period = Duration::from_millis(50);
    let p = probe(&EnergyChoice::Meter(stream.display().to_string()), &c);
    let mut s = Sampler::new(p.source.expect("meter"), Duration::from_millis(20));
    let m = s.measure_idle(Duration::from_millis(150)).expect("window");
    assert!((m.avg_w - 5.25).abs() < 1e-9, "{m:?}");
    assert_eq!(m.sensors, vec![format!("meter:{}", stream.display())]);
}

#[test]
fn meter_failures_are_reasons() {
    let _g = process_lock();
    let t = TempDir::new("meter-bad");
    let mut c = cfg(&t);
    c.meter_first_value = Duration::from_millis(500);
    let p = probe(&EnergyChoice::Meter("echo oops >&2; exit 3".into()), &c);
    assert!(p.source.is_none());
    assert!(
        p.unavailable[0].reason.contains("exited with 3")
            && p.unavailable[0].reason.contains("oops")
    );
    let p = probe(&EnergyChoice::Meter("echo hello".into()), &c);
    assert!(p.source.is_none());
    assert_eq!(p.unavailable[0].source, "meter");
}
