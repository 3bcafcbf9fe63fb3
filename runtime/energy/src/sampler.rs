//! Integrating a source over a time window on a background thread.
//!
//! [`Integrator`] is the pure part (explicit timestamps, so it is tested without threads):
//! power readings are integrated with the trapezoid rule; counter readings are differenced with
//! wrap-around. [`Sampler`] runs a source on a thread with a fixed period between
//! [`Sampler::start`] and [`Sampler::stop`], reading once at each edge of the window.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::source::{Counter, EnergySource, Reading};

/// The energy measured over one window.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// Source method (`rapl`, `pmic`, `hwmon`, `meter`).
    pub method: String,
    /// Sensor names summed.
    pub sensors: Vec<String>,
    /// What the measurement covers (see [`EnergySource::scope`]).
    pub scope: String,
    /// Window length in seconds (first to last successful reading).
    pub seconds: f64,
    /// Energy in joules over the window.
    pub joules: f64,
    /// `joules / seconds`.
    pub avg_w: f64,
    /// Successful readings.
    pub samples: u32,
    /// Failed readings (skipped; power is held between good readings).
    pub read_errors: u32,
    /// Counter wrap-arounds handled.
    pub wraps: u32,
}

impl Measurement {
    /// Several windows of the same source as one: joules, seconds and counts summed, the average
    /// power recomputed (the time between windows is left out). `None` for no windows.
    pub fn combine(windows: &[Measurement]) -> Option<Measurement> {
        let (first, rest) = windows.split_first()?;
        let mut m = first.clone();
        for w in rest {
            m.seconds += w.seconds;
            m.joules += w.joules;
            m.samples += w.samples;
            m.read_errors += w.read_errors;
            m.wraps += w.wraps;
        }
        m.avg_w = if m.seconds > 0.0 { m.joules / m.seconds } else { 0.0 };
        Some(m)
    }
}

/// Errors of the sampler.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SampleError {
    /// `start` while a window is open.
    AlreadyRunning,
    /// `stop` without `start`.
    NotRunning,
    /// Fewer than two good readings: nothing to integrate. Carries the last read error.
    TooFewSamples {
        /// Good readings.
        samples: u32,
        /// The last read error, if any.
        last_error: Option<String>,
    },
    /// The sampling thread panicked (a bug in a source).
    ThreadPanicked,
}

impl std::fmt::Display for SampleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlreadyRunning => f.write_str("energy sampler already running"),
            Self::NotRunning => f.write_str("energy sampler not running"),
            Self::TooFewSamples { samples, last_error } => {
                write!(f, "only {samples} good energy readings")?;
                if let Some(e) = last_error {
                    write!(f, " (last error: {e})")?;
                }
                Ok(())
            }
            Self::ThreadPanicked => f.write_str("energy sampling thread panicked"),
        }
    }
}

impl std::error::Error for SampleError {}

/// Accumulates readings taken at known times.
#[derive(Clone, Debug, Default)]
pub struct Integrator {
    joules: f64,
    first_t: Option<f64>,
    last_t: Option<f64>,
    last_w: Option<f64>,
    last_counters: Option<Vec<Counter>>,
    samples: u32,
    errors: u32,
    wraps: u32,
    last_error: Option<String>,
}

impl Integrator {
    /// An empty integrator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reading taken at `t` seconds (monotonic, any origin).
    pub fn push(&mut self, t: f64, reading: Result<Reading, String>) {
        let reading = match reading {
            Ok(r) => r,
            Err(e) => {
                self.errors += 1;
                self.last_error = Some(e);
                return;
            }
        };
        match reading {
            Reading::Watts(w) if w.is_finite() => {
                if let (Some(t0), Some(w0)) = (self.last_t, self.last_w) {
                    self.joules += 0.5 * (w0 + w) * (t - t0).max(0.0);
                }
                self.last_w = Some(w);
            }
            Reading::Watts(w) => {
                self.errors += 1;
                self.last_error = Some(format!("non-finite power reading {w}"));
                return;
            }
            Reading::Counters(now) => {
                if let Some(prev) = &self.last_counters {
                    if prev.len() != now.len() {
                        self.errors += 1;
                        self.last_error = Some("counter set changed between readings".into());
                        return;
                    }
                    let mut uj: u64 = 0;
                    for (p, n) in prev.iter().zip(&now) {
                        let (d, wrapped) = n.delta_uj(p);
                        uj = uj.saturating_add(d);
                        self.wraps += u32::from(wrapped);
                    }
                    self.joules += uj as f64 * 1e-6;
                }
                self.last_counters = Some(now);
            }
        }
        self.samples += 1;
        self.first_t.get_or_insert(t);
        self.last_t = Some(t);
    }

    /// Finishes the window.
    pub fn finish(self, src: &dyn EnergySource) -> Result<Measurement, SampleError> {
        let (Some(t0), Some(t1)) = (self.first_t, self.last_t) else {
            return Err(SampleError::TooFewSamples {
                samples: self.samples,
                last_error: self.last_error,
            });
        };
        if self.samples < 2 || t1 <= t0 {
            return Err(SampleError::TooFewSamples {
                samples: self.samples,
                last_error: self.last_error,
            });
        }
        let seconds = t1 - t0;
        Ok(Measurement {
            method: src.method().to_string(),
            sensors: src.sensors(),
            scope: src.scope(),
            seconds,
            joules: self.joules,
            avg_w: self.joules / seconds,
            samples: self.samples,
            read_errors: self.errors,
            wraps: self.wraps,
        })
    }
}

type Worker = JoinHandle<(Box<dyn EnergySource>, Integrator)>;

/// Runs an [`EnergySource`] on a thread between `start` and `stop`.
pub struct Sampler {
    source: Option<Box<dyn EnergySource>>,
    period: Duration,
    running: Option<(mpsc::Sender<()>, Worker)>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("period", &self.period)
            .field("running", &self.running.is_some())
            .finish()
    }
}

impl Sampler {
    /// Default period for power sources (PMIC, hwmon, meters).
    pub const POWER_PERIOD: Duration = Duration::from_millis(100);
    /// Default period for counters (RAPL): only needed to catch wrap-around.
    pub const COUNTER_PERIOD: Duration = Duration::from_millis(1000);

    /// A sampler reading `source` every `period`.
    pub fn new(source: Box<dyn EnergySource>, period: Duration) -> Self {
        Self { source: Some(source), period, running: None }
    }

    /// A sampler with the default period for the source's method.
    pub fn with_default_period(source: Box<dyn EnergySource>) -> Self {
        let period =
            if source.method() == "rapl" { Self::COUNTER_PERIOD } else { Self::POWER_PERIOD };
        Self::new(source, period)
    }

    /// Source method name.
    pub fn method(&self) -> Option<&str> {
        self.source.as_deref().map(|s| s.method())
    }

    /// Opens a window: reads once now, then every period on a background thread.
    pub fn start(&mut self) -> Result<(), SampleError> {
        let Some(mut source) = self.source.take() else {
            return Err(SampleError::AlreadyRunning);
        };
        let (tx, rx) = mpsc::channel::<()>();
        let period = self.period;
        let handle = std::thread::Builder::new().name("tern-energy".into()).spawn(move || {
            let t0 = Instant::now();
            let mut integ = Integrator::new();
            loop {
                let r = source.read();
                integ.push(t0.elapsed().as_secs_f64(), r);
                match rx.recv_timeout(period) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => {
                        let r = source.read();
                        integ.push(t0.elapsed().as_secs_f64(), r);
                        break;
                    }
                }
            }
            (source, integ)
        });
        match handle {
            Ok(h) => {
                self.running = Some((tx, h));
                Ok(())
            }
            Err(_) => Err(SampleError::ThreadPanicked),
        }
    }

    /// Closes the window (reads once more) and returns the measurement.
    pub fn stop(&mut self) -> Result<Measurement, SampleError> {
        let Some((tx, handle)) = self.running.take() else {
            return Err(SampleError::NotRunning);
        };
        let _ = tx.send(());
        let (source, integ) = handle.join().map_err(|_| SampleError::ThreadPanicked)?;
        let m = integ.finish(source.as_ref());
        self.source = Some(source);
        m
    }

    /// Measures for `window` with nothing else running: the idle baseline.
    pub fn measure_idle(&mut self, window: Duration) -> Result<Measurement, SampleError> {
        self.start()?;
        std::thread::sleep(window);
        self.stop()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        if let Some((tx, h)) = self.running.take() {
            let _ = tx.send(());
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl EnergySource for Fixed {
        fn method(&self) -> &str {
            "test"
        }
        fn sensors(&self) -> Vec<String> {
            vec!["s".into()]
        }
        fn scope(&self) -> String {
            "test".into()
        }
        fn read(&mut self) -> Result<Reading, String> {
            Ok(Reading::Watts(2.0))
        }
    }

    #[test]
    fn trapezoid() {
        let mut i = Integrator::new();
        i.push(0.0, Ok(Reading::Watts(1.0)));
        i.push(1.0, Ok(Reading::Watts(3.0)));
        i.push(1.5, Err("glitch".into()));
        i.push(2.0, Ok(Reading::Watts(3.0)));
        let m = i.finish(&Fixed).expect("two samples");
        assert!((m.joules - 5.0).abs() < 1e-12, "{}", m.joules);
        assert!((m.avg_w - 2.5).abs() < 1e-12);
        assert_eq!((m.samples, m.read_errors), (3, 1));
    }

    #[test]
    fn counters_with_wrap() {
        let c = |a: u64, b: u64| {
            Ok(Reading::Counters(vec![
                Counter { uj: a, max_uj: 1_000_000 },
                Counter { uj: b, max_uj: 2_000_000 },
            ]))
        };
        let mut i = Integrator::new();
        i.push(0.0, c(900_000, 10));
        i.push(1.0, c(100_000, 500_010)); // first wrapped: +200_000; second +500_000
        i.push(2.0, c(300_000, 500_010)); // +200_000
        let m = i.finish(&Fixed).expect("ok");
        assert!((m.joules - 0.9).abs() < 1e-9, "{}", m.joules);
        assert_eq!(m.wraps, 1);
    }

    #[test]
    fn combined_windows_sum_energy_and_time() {
        let w = |seconds: f64, joules: f64| Measurement {
            method: "test".into(),
            sensors: vec!["s".into()],
            scope: "test".into(),
            seconds,
            joules,
            avg_w: joules / seconds,
            samples: 3,
            read_errors: 1,
            wraps: 0,
        };
        let m = Measurement::combine(&[w(1.0, 2.0), w(3.0, 10.0)]).expect("two windows");
        assert_eq!((m.seconds, m.joules, m.avg_w), (4.0, 12.0, 3.0));
        assert_eq!((m.samples, m.read_errors), (6, 2));
        assert_eq!(Measurement::combine(&[w(2.0, 5.0)]), Some(w(2.0, 5.0)));
        assert_eq!(Measurement::combine(&[]), None);
    }

    #[test]
    fn one_sample_is_an_error() {
        let mut i = Integrator::new();
        i.push(0.0, Ok(Reading::Watts(1.0)));
        i.push(0.5, Err("gone".into()));
        let e = i.finish(&Fixed).err();
        assert_eq!(
            e,
            Some(SampleError::TooFewSamples { samples: 1, last_error: Some("gone".into()) })
        );
    }

    #[test]
    fn thread_window() {
        let mut s = Sampler::new(Box::new(Fixed), Duration::from_millis(10));
        assert_eq!(s.stop().err(), Some(SampleError::NotRunning));
        s.start().expect("start");
        assert_eq!(s.start().err(), Some(SampleError::AlreadyRunning));
        std::thread::sleep(Duration::from_millis(60));
        let m = s.stop().expect("stop");
        assert!(m.samples >= 3, "{m:?}");
        assert!((m.avg_w - 2.0).abs() < 1e-9);
        assert!((m.joules - 2.0 * m.seconds).abs() < 1e-9);
        // reusable
        let m2 = s.measure_idle(Duration::from_millis(20)).expect("idle");
        assert!(m2.seconds > 0.0);
    }
}
