//! Board support packages. Only the Raspberry Pi 3/4 one exists; it picks the SoC at run time.

pub mod raspberrypi;

pub use raspberrypi::*;
