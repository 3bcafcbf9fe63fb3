//! Loading a model for the CLI: memory-map the GGUF, choose kernels, size and allocate the arena.

use memmap2::{Mmap, MmapMut};
use std::fs::File;
use std::path::Path;
use tern_kernels::{CpuFeatures, KernelSet, Tier};
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

/// Plans and allocates an arena, then builds a session.
pub fn session<'a>(
    g: Gguf<'a>,
    opts: SessionOptions,
    arena: &'a mut ArenaMem,
) -> Result<(Session<'a>, MemoryPlan), String> {
    let plan = Session::plan(&g, &opts).map_err(|e| e.to_string())?;
    let mem = arena.alloc(plan.total)?;
    let s = Session::new(g, mem, opts).map_err(|e| e.to_string())?;
    Ok((s, plan))
}
