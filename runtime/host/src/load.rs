//! Loading a model for the CLI: memory-map the GGUF, choose kernels, size and allocate the arena.

use memmap2::Mmap;
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

/// Picks the kernel set: the best this CPU runs, or exactly `--kernel NAME` (which may only
/// lower the tier).
pub fn kernels(name: Option<&str>) -> Result<KernelSet, String> {
    let f = CpuFeatures::detect();
    match name {
        None => Ok(KernelSet::select(f, None)),
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

/// Plans and allocates an arena, then builds a session.
pub fn session<'a>(
    g: Gguf<'a>,
    opts: SessionOptions,
    arena: &'a mut Vec<u8>,
) -> Result<(Session<'a>, MemoryPlan), String> {
    let plan = Session::plan(&g, &opts).map_err(|e| e.to_string())?;
    arena.clear();
    arena.try_reserve_exact(plan.total).map_err(|_| {
        format!("cannot allocate the {} MiB arena this model and context need", plan.total >> 20)
    })?;
    arena.resize(plan.total, 0);
    let s = Session::new(g, arena, opts).map_err(|e| e.to_string())?;
    Ok((s, plan))
}
