//! Loading a model for the CLI: memory-map the GGUF, choose kernels, size and allocate the arena.

use memmap2::{Mmap, MmapMut};
use std::fs::File;
use std::path::Path;
use tern_kernels::{CpuFeatures, KernelSet, Tier};
use tern_runtime::engine::Superseded;
use tern_runtime::gguf::Gguf;
use tern_runtime::session::{MemoryPlan, Session, SessionOptions};

/// A model file mapped into memory.
pub struct ModelFile {
    map: Mmap,
}

impl ModelFile {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> Result<Self, String> {
        let f =
            File::open(path).map_err(|e| format!("cannot open model {}: {e}", path.display()))?;
        // SAFETY: the map is read-only and private to this process; tern never writes the file.
        // If another process truncates or rewrites it while mapped, reads may fault (SIGBUS) —
        // the documented limitation of memory-mapped model files, shared with llama.cpp.
        let map = unsafe { Mmap::map(&f) }
            .map_err(|e| format!("cannot map model {}: {e}", path.display()))?;
        Ok(ModelFile { map })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Releases the pages of `s` (a piece of this file the engine copied into its arena and
    /// never reads again) from this process: the whole pages inside it are unmapped from the
    /// resident set, so the copy does not leave the file's bytes counted twice. The page cache
    /// keeps them while the system has room. Pieces outside the mapping are ignored.
    pub fn release(&self, s: Superseded) {
        let base = self.map.as_ptr() as usize;
        let Some(off) = s.addr.checked_sub(base) else { return };
        if off.checked_add(s.len).is_none_or(|end| end > self.map.len()) {
            return;
        }
        let page = page_size();
        let (start, end) = (off.next_multiple_of(page), (off + s.len) / page * page);
        if end <= start {
            return;
        }
        #[cfg(unix)]
        {
            use memmap2::UncheckedAdvice;
            // SAFETY: `MADV_DONTNEED` drops this process's page-table entries for `start..end`
            // of a read-only private file mapping (whole pages, inside the map: checked above).
            // It never changes what the bytes read as: a later access faults the same file
            // contents back in, so any live `&[u8]` into the map stays valid.
            let _ = unsafe {
                self.map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }

    /// Parses the GGUF.
    pub fn gguf(&self, path: &Path) -> Result<Gguf<'_>, String> {
        Gguf::parse(&self.map).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The board we run on: the device-tree model string, else the MIDR part of `/proc/cpuinfo`
/// ("CPU part : 0xd08"). Returns the model string too (empty off boards).
pub fn board() -> (Option<&'static tern_boards::BoardConfig>, String) {
    let model = std::fs::read_to_string("/proc/device-tree/model").unwrap_or_default();
    let model = model.trim_end_matches('\0').trim().to_string();
    let part = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines()
            .find(|l| l.starts_with("CPU part"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| u16::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok())
    });
    (tern_boards::detect(&model, part), model)
}

/// Picks the kernel set: the best this CPU runs (the TL1 lookup set where the board's core
/// measured it faster, [`tern_boards::CpuKind::tl1_lut_wins`]), or exactly `--kernel NAME` (which
/// may only lower the tier).
pub fn kernels(name: Option<&str>) -> Result<KernelSet, String> {
    let f = CpuFeatures::detect();
    match name {
        None => {
            let lut = board().0.is_some_and(|b| b.cpu.tl1_lut_wins());
            Ok(lut
                .then(|| KernelSet::for_tier(f, Tier::Tl1))
                .flatten()
                .unwrap_or_else(|| KernelSet::select(f, None)))
        }
        Some(n) => {
            let tier = Tier::from_name(n).ok_or_else(|| {
                format!("unknown kernel '{n}' (choose from {})", tier_names().join(", "))
            })?;
            KernelSet::for_tier(f, tier).ok_or_else(|| {
                let avail: Vec<&str> = Tier::ALL
                    .iter()
                    .filter(|t| KernelSet::for_tier(f, **t).is_some())
                    .map(|t| t.name())
                    .collect();
                format!(
                    "kernel '{n}' is not available on this CPU (available: {})",
                    avail.join(", ")
                )
            })
        }
    }
}

fn tier_names() -> Vec<&'static str> {
    Tier::ALL.iter().map(|t| t.name()).collect()
}

/// The arena's memory: an anonymous mapping (zero pages until written), asking the kernel for
/// transparent huge pages where it has them.
#[derive(Default)]
pub struct ArenaMem(Option<MmapMut>);

impl ArenaMem {
    /// `bytes` of zeroed memory, the previous allocation released.
    pub fn alloc(&mut self, bytes: usize) -> Result<&mut [u8], String> {
        self.0 = None;
        let m = MmapMut::map_anon(bytes.max(1)).map_err(|e| {
            format!(
                "cannot allocate the {} MiB arena this model and context need: {e}",
                bytes >> 20
            )
        })?;
        // Decode streams the weights in the arena once per token: with 4 KiB pages every page
        // is a TLB miss and a page walk (a nested one in a VM). Huge pages are a hint; the
        // kernel may decline (THP off), which only costs speed.
        #[cfg(target_os = "linux")]
        let _ = m.advise(memmap2::Advice::HugePage);
        Ok(&mut self.0.insert(m)[..bytes])
    }

    /// The first `bytes` of the memory.
    pub fn bytes(&self, bytes: usize) -> &[u8] {
        self.0.as_deref().map_or(&[], |m| &m[..bytes])
    }
}

/// The system's page size (4 KiB where it cannot be read).
fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| usize::try_from(p).ok())
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096)
}

/// Whether the kernel gives this process transparent huge pages when asked (`madvise` or
/// `always` in `/sys/kernel/mm/transparent_hugepage/enabled`).
pub fn huge_pages_available() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| s.contains("[always]") || s.contains("[madvise]"))
}

/// Where decode reads the LM head from (`--head`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HeadPlace {
    /// Copied into the arena when the kernel gives huge pages, else read from the file mapping.
    Auto,
    /// Copied into the arena at load.
    Arena,
    /// Read from the file mapping.
    Mapped,
}

impl HeadPlace {
    /// Whether the head is copied into the arena.
    ///
    /// The head (the tied f16 embedding) is the largest tensor decode reads per token: 656 MB of
    /// the 2B4T model's 1.18 GB. Streamed from the file's 4 KiB pages, every page is a TLB miss
    /// (a nested page walk in a VM); from the arena's huge pages it is not. On the 2-vCPU Zen 4
    /// guest the f16 GEMV over the head read at 0.81–0.91 of a streaming read at 1 thread from
    /// the file's pages and 0.92–0.99 from huge pages; at 2 threads, when the guest's bandwidth
    /// was high (49–57 GB/s), 0.74–0.84 against 0.88–0.99. Anonymous 4 KiB pages gave no gain,
    /// so without huge pages the copy would only cost load time.
    pub fn copies(self) -> bool {
        match self {
            HeadPlace::Auto => huge_pages_available(),
            HeadPlace::Arena => true,
            HeadPlace::Mapped => false,
        }
    }
}

/// Plans and allocates an arena, then builds a session; the file's pages of the tensors the
/// engine copies into the arena (relayouted or repacked layers, the head) are released as it goes.
pub fn session<'a>(
    file: &ModelFile,
    g: Gguf<'a>,
    opts: SessionOptions,
    arena: &'a mut ArenaMem,
) -> Result<(Session<'a>, MemoryPlan), String> {
    let plan = Session::plan(&g, &opts).map_err(|e| e.to_string())?;
    let mem = arena.alloc(plan.total)?;
    let s = Session::new_with(g, mem, opts, &mut |piece| file.release(piece))
        .map_err(|e| e.to_string())?;
    Ok((s, plan))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Resident KiB of the mapping that starts at `base` (`/proc/self/smaps`).
    fn rss_kib(base: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut mine = false;
        for l in smaps.lines() {
            if let Some((range, _)) = l.split_once(' ')
                && let Some((start, _)) = range.split_once('-')
                && let Ok(a) = usize::from_str_radix(start, 16)
            {
                mine = a == base;
                continue;
            }
            if mine && let Some(v) = l.strip_prefix("Rss:") {
                return v.trim().trim_end_matches("kB").trim().parse().unwrap();
            }
        }
        panic!("mapping at {base:#x} not in smaps");
    }

    #[test]
    fn release_drops_whole_pages_and_keeps_the_bytes() {
        let path = std::env::temp_dir().join(format!("tern-release-{}.bin", std::process::id()));
        let bytes: Vec<u8> = (0..8usize << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let f = ModelFile::open(&path).unwrap();
        let base = f.bytes().as_ptr() as usize;
        assert_eq!(f.bytes(), &bytes[..]);
        let before = rss_kib(base);
        assert!(before >= 8 << 10, "all 8 MiB resident after reading: {before} KiB");
        // 4 MiB from an unaligned start: at least every whole page inside goes (a file folio
        // mapped by one huge-page entry leaves whole, neighbours included: they fault back in).
        f.release(Superseded { addr: base + (1 << 20) + 100, len: 4 << 20 });
        let after = rss_kib(base);
        let page = page_size() as u64 / 1024;
        assert!(before - after >= (4 << 10) - page, "{before} → {after} KiB");
        // Pieces outside the map, or reaching past its end, are ignored.
        f.release(Superseded { addr: base.wrapping_sub(1 << 20), len: 4096 });
        f.release(Superseded { addr: base + (7 << 20), len: 2 << 20 });
        assert_eq!(rss_kib(base), after);
        // The bytes read the same (faulted back in from the file).
        assert_eq!(f.bytes(), &bytes[..]);
        drop(f);
        let _ = std::fs::remove_file(&path);
    }
}
