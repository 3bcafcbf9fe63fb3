//! Reading `/sys`, `/proc` and `/dev`-style trees under a configurable root.
//!
//! Every file the crate reads goes through [`SysRoot`], so tests (and `tern bench --sysroot`) can
//! point it at a fake tree in a temporary directory. Tests usually run as root, where `chmod 000`
//! does not make a file unreadable; [`SysRoot::deny`] injects a `PermissionDenied` error for a path
//! instead, which is exactly what a non-root user sees on RAPL counters since Linux 5.10.

use std::io;
use std::path::{Path, PathBuf};

/// A filesystem root (default `/`) plus optional injected "permission denied" paths.
#[derive(Clone, Debug)]
pub struct SysRoot {
    root: PathBuf,
    denied: Vec<PathBuf>,
}

impl Default for SysRoot {
    fn default() -> Self {
        Self::host()
    }
}

impl SysRoot {
    /// The real system (`/`).
    pub fn host() -> Self {
        Self::new("/")
    }

    /// A tree rooted at `root`: `/sys/class/...` is read from `root/sys/class/...`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), denied: Vec::new() }
    }

    /// Makes every read of `abs` (an absolute path inside the tree, e.g.
    /// `/sys/class/powercap/intel-rapl:0/energy_uj`) fail with `PermissionDenied`,
    /// as if the file were mode 0400 root and we were not root. A path prefix denies a subtree.
    #[must_use]
    pub fn deny(mut self, abs: impl AsRef<Path>) -> Self {
        self.denied.push(self.path(abs));
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps an absolute in-tree path (`/proc/cpuinfo`) to the real path under the root.
    pub fn path(&self, abs: impl AsRef<Path>) -> PathBuf {
        let abs = abs.as_ref();
        let rel = abs.strip_prefix("/").unwrap_or(abs);
        self.root.join(rel)
    }

    fn check(&self, real: &Path) -> io::Result<()> {
        if self.denied.iter().any(|d| real.starts_with(d)) {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "permission denied"));
        }
        Ok(())
    }

    /// Reads a file (an in-tree absolute path such as `/proc/cpuinfo`) as lossy UTF-8 text.
    pub fn read(&self, abs: impl AsRef<Path>) -> io::Result<String> {
        let real = self.resolve(abs.as_ref());
        self.check(&real)?;
        let bytes = std::fs::read(&real)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Reads a file and trims surrounding whitespace and NULs (device-tree strings end in `\0`).
    pub fn read_trim(&self, abs: impl AsRef<Path>) -> io::Result<String> {
        Ok(self.read(abs)?.trim_matches(|c: char| c.is_whitespace() || c == '\0').to_string())
    }

    /// Reads a file holding one unsigned integer.
    pub fn read_u64(&self, abs: impl AsRef<Path>) -> io::Result<u64> {
        let s = self.read_trim(abs)?;
        s.parse::<u64>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{s:?}: {e}")))
    }

    /// Reads a file holding one signed integer.
    pub fn read_i64(&self, abs: impl AsRef<Path>) -> io::Result<i64> {
        let s = self.read_trim(abs)?;
        s.parse::<i64>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{s:?}: {e}")))
    }

    /// Whether the path exists in the tree.
    pub fn exists(&self, abs: impl AsRef<Path>) -> bool {
        self.resolve(abs.as_ref()).exists()
    }

    /// Entry names of a directory, sorted naturally (`hwmon2` before `hwmon10`).
    pub fn list(&self, abs: impl AsRef<Path>) -> io::Result<Vec<String>> {
        let real = self.resolve(abs.as_ref());
        self.check(&real)?;
        let mut names: Vec<String> = std::fs::read_dir(&real)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort_by(|a, b| natural_cmp(a, b));
        Ok(names)
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        self.path(p)
    }
}

/// Compares strings so that embedded decimal numbers sort by value (`cpu2` < `cpu10`).
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(s: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut text = String::new();
        let mut num: Option<u64> = None;
        for c in s.chars() {
            if let Some(d) = c.to_digit(10) {
                num = Some(num.unwrap_or(0).saturating_mul(10).saturating_add(u64::from(d)));
            } else {
                if let Some(n) = num.take() {
                    out.push((std::mem::take(&mut text), n));
                }
                text.push(c);
            }
        }
        out.push((text, num.unwrap_or(0)));
        out
    }
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

/// A short human reason for an I/O error on `what` (used in "why not available" lists).
pub fn io_reason(what: &Path, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => format!("{}: permission denied", what.display()),
        io::ErrorKind::NotFound => format!("{}: not found", what.display()),
        _ => format!("{}: {e}", what.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["hwmon10", "hwmon2", "hwmon1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["hwmon1", "hwmon2", "hwmon10"]);
    }

    #[test]
    fn path_mapping_and_deny() {
        let r = SysRoot::new("/tmp/x").deny("/sys/a");
        assert_eq!(r.path("/proc/cpuinfo"), PathBuf::from("/tmp/x/proc/cpuinfo"));
        let e = r.read("/sys/a/b").err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::PermissionDenied));
    }
}
