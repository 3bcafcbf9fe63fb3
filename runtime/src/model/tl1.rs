//! TL1 tiling inference: which `(BM, BK, bm)` a bitnet.cpp TL1 tensor was packed with.
//!
//! bitnet.cpp never stores the tiling in the GGUF. Its converter and its kernels both take
//! `(BM, BK, bm)` from a table compiled in for the model's shapes (`kernel_config.ini`, written
//! by `codegen_tl1.py`), so a TL1 file is only readable by a build generated for exactly that
//! table. tern does not carry such a table as the source of truth; it works the tiling out per
//! shape, in this order:
//!
//! 1. **Override.** Metadata key [`OVERRIDE_KEY`] (`tern.tl1.tiling`): an integer array of
//!    5-tuples `[M, K, BM, BK, bm, …]`. A tuple naming the tensor's `(M, K)` is used as is; one that
//!    does not fit the shape (or has `bm ∉ {32, 64}`) is a [`ModelError::Tl1BadTiling`].
//! 2. **Enumerate** every tiling the format allows for `(M, K)`: `bm ∈ {32, 64}` (codegen asserts
//!    it), `by = 256/bm`, `BM` a multiple of `bm` dividing `M`, `BK` a multiple of `by` dividing
//!    `K`. None: [`ModelError::Tl1NoTiling`].
//! 3. **Merge equivalent tilings.** The byte order is a mixed-radix number over the digits
//!    `[M/BM] [K/BK] [BM/bm] [BK/by] [bm/16] [by/4] [16 rows] [2 pairs]`. Digits of size 1 vanish
//!    and adjacent digits of the same axis merge, so many tilings give the *same* permutation
//!    (e.g. with `BK = K` every `BM` does). Such tilings are one class; any member decodes the
//!    tensor identically. One class: done (the file determines the tiling, no guessing).
//! 4. **Score the classes on the data.** Every tiling is a bijection onto the nibbles, so the
//!    value check (indices 9..15 are invalid) cannot rule a tiling out: it rejects the *file*
//!    ([`ModelError::Tl1BadIndex`]) whatever the tiling. What a wrong tiling does is mix
//!    segments of different rows into one decoded row (and likewise columns). Trained weight
//!    matrices have row structure (output features differ in how many of their weights are zero)
//!    and column structure (so do input features). Mixing averages it away: a decoded row's
//!    non-zero count is a sum of segments of several true rows, and by Cauchy–Schwarz its
//!    variance over rows can only fall below the true layout's. The [`score`] is therefore the
//!    excess dispersion (variance over the binomial variance, minus 1) of the per-row plus the
//!    per-column non-zero counts, on up to [`SAMPLE`] rows × [`SAMPLE`] pairs; about 0 for
//!    unstructured data, largest for the true layout in expectation. The class with the best
//!    score summed over the tensors of the shape (bitnet.cpp keys its table by shape, so they
//!    share a tiling; at most 8 are scored) is taken when it also wins on at least two thirds of
//!    those tensors and beats every other class's sum by [`MARGIN`] (a single tensor:
//!    [`SINGLE_MARGIN`]).
//! 5. **Known bitnet.cpp configurations** (the `setup_env.py` and pre-tuned tables of FORMATS
//!    §2.3) only break ties: when the score is not decisive and exactly one class within
//!    [`MARGIN`] of the best holds a known configuration for this shape, it is taken.
//! 6. Otherwise: [`ModelError::Tl1AmbiguousTiling`], naming the tensor and the leading
//!    candidates; the fix is the override key.
//!
//! **Limits.** Step 4 is statistics, not proof. A candidate that only permutes whole rows (or
//! whole columns) keeps the marginals and ties; the margin and the vote turn ties and noise
//! into step 5–6, never into a silent guess, but a matrix whose rows and columns are
//! statistically alike (random ternary weights) cannot be decided from its data at all. On the
//! tiny-trained fixture (4 shapes, 29–86 layouts each) the score picks the converter's layout
//! for every shape, winning on 27 of the 28 tensors individually; the summed margins are
//! printed by the `tl1` integration test. Cost: `SAMPLE²` lookups per class and tensor, a few
//! hundred million for the largest published shapes (seconds on a Cortex-A72), once per load.

use super::{ModelError, TensorName};
use crate::gguf::{GgmlType, Gguf};
use tern_kernels::formats::tl1::Tiling;

/// Metadata key of the tiling override: integer array `[M, K, BM, BK, bm, …]`.
pub const OVERRIDE_KEY: &str = "tern.tl1.tiling";

/// Sub-tile heights codegen accepts (`codegen_tl1.py` asserts `bm in [32, 64]`).
pub const BMS: [usize; 2] = [32, 64];

/// Rows and pairs sampled per tensor when scoring (all of them when the tensor is smaller).
pub const SAMPLE: usize = 256;

/// How many times the best class's summed score must exceed every other class's, when it also
/// wins on at least two thirds of the tensors of the shape.
pub const MARGIN: f32 = 1.05;

/// The margin when a single tensor has the shape (no vote).
pub const SINGLE_MARGIN: f32 = 1.5;

/// Most tensors of one shape that are scored.
const MAX_SCORED: usize = 8;

/// Most distinct byte orders considered per shape (more: ambiguous).
const MAX_CLASSES: usize = 256;

/// Candidates kept for the ambiguity error.
pub const SHOWN: usize = 3;

/// Known bitnet.cpp TL1 configurations `[M, K, BM, BK, bm]`: `setup_env.py`'s and the pre-tuned
/// `preset_kernels` tables (FORMATS §2.3). Tie-breakers only (step 5).
const KNOWN: [[usize; 5]; 14] = [
    // bitnet_b1_58-large
    [1536, 4096, 256, 128, 32],
    [1536, 1536, 128, 64, 64],
    [4096, 1536, 256, 128, 32],
    // Llama3-8B / Falcon3, setup_env.py
    [14336, 4096, 256, 128, 32],
    [4096, 14336, 128, 64, 64],
    [1024, 4096, 256, 128, 32],
    [4096, 4096, 128, 64, 64],
    // Llama3-8B, pre-tuned (bm swapped)
    [14336, 4096, 256, 128, 64],
    [4096, 14336, 128, 64, 32],
    [1024, 4096, 256, 128, 64],
    // bitnet_b1_58-3B (and 2B4T's table)
    [3200, 8640, 160, 64, 32],
    [3200, 3200, 320, 128, 64],
    [8640, 3200, 320, 64, 32],
    // Llama3 pre-tuned [4096, 4096]
    [4096, 4096, 128, 64, 32],
];

/// How a tiling was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Source {
    /// The [`OVERRIDE_KEY`] metadata.
    Override,
    /// Every tiling the format allows for the shape packs the same way.
    Unique,
    /// The data score (step 4).
    Score,
    /// A known bitnet.cpp configuration broke a tie of the score.
    Known,
}

/// The outcome of [`infer`] for one shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inference {
    /// The tiling (a representative of its class).
    pub tiling: Tiling,
    /// How it was decided.
    pub source: Source,
    /// Tilings the format allows for the shape.
    pub n_candidates: usize,
    /// Distinct byte orders among them.
    pub n_classes: usize,
    /// Score of the chosen class (0 when not scored).
    pub score: f32,
    /// Best score among the other classes (0 when not scored or none).
    pub runner_up: f32,
}

/// Calls `f` on every tiling the format allows for an `m × k` tensor (step 2).
pub fn for_each_candidate(m: usize, k: usize, mut f: impl FnMut(Tiling)) {
    for bm in BMS {
        let by = 256 / bm;
        let mut big_m = bm;
        while big_m <= m {
            if m.is_multiple_of(big_m) {
                let mut big_k = by;
                while big_k <= k {
                    if k.is_multiple_of(big_k) {
                        let t = Tiling { big_m, big_k, bm };
                        if t.validate(m, k).is_ok() {
                            f(t);
                        }
                    }
                    big_k += by;
                }
            }
            big_m += bm;
        }
    }
}

/// The byte order of a tiling in reduced form: `(axis, size)` digits, outermost first, with
/// size-1 digits dropped and adjacent digits of one axis merged (axis `true` = rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    digits: [(bool, usize); 8],
    n: usize,
}

impl Layout {
    /// The reduced digit sequence of `t` for an `m × k` tensor (`t` valid for the shape).
    pub fn of(t: Tiling, m: usize, k: usize) -> Self {
        let by = t.by();
        let raw = [
            (true, m / t.big_m),
            (false, k / t.big_k),
            (true, t.big_m / t.bm),
            (false, t.big_k / by),
            (true, t.bm / 16),
            (false, by / 4),
            (true, 16),
            (false, 2),
        ];
        let mut l = Layout { digits: [(false, 0); 8], n: 0 };
        for (axis, size) in raw {
            if size == 1 {
                continue;
            }
            if l.n > 0 && l.digits[l.n - 1].0 == axis {
                l.digits[l.n - 1].1 *= size;
            } else {
                l.digits[l.n] = (axis, size);
                l.n += 1;
            }
        }
        l
    }
}

fn is_known(m: usize, k: usize, t: Tiling) -> bool {
    KNOWN.contains(&[m, k, t.big_m, t.big_k, t.bm])
}

/// Reads the [`OVERRIDE_KEY`] entry for `(m, k)`, if any.
fn override_for(g: &Gguf<'_>, m: usize, k: usize) -> Option<[usize; 3]> {
    let arr = g.metadata(OVERRIDE_KEY)?.as_array()?;
    let mut it = arr.ints();
    loop {
        let mut e = [0usize; 5];
        for v in &mut e {
            *v = usize::try_from(it.next()?).unwrap_or(usize::MAX);
        }
        if e[0] == m && e[1] == k {
            return Some([e[2], e[3], e[4]]);
        }
    }
}

/// Rejects a packed tensor holding an index 9..=15 (never written by the converter). Independent
/// of the tiling: every tiling is a bijection onto the nibbles.
pub fn check_indices(packed: &[u8]) -> bool {
    packed.iter().all(|&b| (b >> 4) <= 8 && (b & 15) <= 8)
}

/// Structure score of `packed` (an `m × k` tensor) decoded with `t` (step 4): the excess
/// dispersion (variance over the binomial variance, minus 1) of the per-row plus the per-column
/// non-zero counts, on up to [`SAMPLE`] rows × [`SAMPLE`] pairs. About 0 for unstructured data.
pub fn score(packed: &[u8], m: usize, k: usize, t: Tiling) -> f32 {
    let np = k / 2;
    let nr = m.min(SAMPLE);
    let npc = np.min(SAMPLE);
    let mut row_nz = [0u32; SAMPLE];
    let mut col_nz = [0u32; 2 * SAMPLE];
    for (i, rn) in row_nz.iter_mut().take(nr).enumerate() {
        let row = i * m / nr;
        for j in 0..npc {
            let p = j * np / npc;
            let (byte, shift) = t.locate(k, row, p);
            let idx = (packed[byte] >> shift) & 15;
            let (w0, w1) = tern_kernels::formats::tl1::pair_values(idx);
            let (a, b) = (u32::from(w0 != 0), u32::from(w1 != 0));
            *rn += a + b;
            col_nz[2 * j] += a;
            col_nz[2 * j + 1] += b;
        }
    }
    let (row_n, col_n) = ((2 * npc) as f64, nr as f64);
    let total: u32 = row_nz[..nr].iter().sum();
    let p = f64::from(total) / (row_n * col_n);
    if p <= 0.0 || p >= 1.0 {
        return 0.0;
    }
    fn var(v: &[u32]) -> f64 {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        v.iter().map(|&x| (f64::from(x) - mean) * (f64::from(x) - mean)).sum::<f64>() / n
    }
    let bin = p * (1.0 - p);
    let d = var(&row_nz[..nr]) / (row_n * bin) + var(&col_nz[..2 * npc]) / (col_n * bin) - 2.0;
    if d > 0.0 { d as f32 } else { 0.0 }
}

fn shape_tensors<'a>(
    g: &Gguf<'a>,
    m: usize,
    k: usize,
) -> impl Iterator<Item = crate::gguf::TensorInfo<'a>> {
    g.tensors().filter_map(Result::ok).filter(move |t| {
        t.ty == GgmlType::TL1 && t.ne == [k as u64, m as u64, 1, 1] && t.data.len() >= m * k / 4
    })
}

/// Works out the tiling of the TL1 tensors of shape `m × k` (`M` = `ne1` rows, `K` = `ne0`)
/// in `g`; `tensor` names the tensor being loaded (for errors). See the module docs.
///
/// # Errors
/// [`ModelError::Tl1BadTiling`], [`ModelError::Tl1NoTiling`], [`ModelError::Tl1AmbiguousTiling`].
pub fn infer(
    g: &Gguf<'_>,
    m: usize,
    k: usize,
    tensor: TensorName,
) -> Result<Inference, ModelError> {
    let mut n_candidates = 0;
    for_each_candidate(m, k, |_| n_candidates += 1);
    if let Some([big_m, big_k, bm]) = override_for(g, m, k) {
        let t = Tiling { big_m, big_k, bm };
        if !BMS.contains(&bm) || t.validate(m, k).is_err() {
            return Err(ModelError::Tl1BadTiling {
                tensor,
                m: m as u32,
                k: k as u32,
                tiling: [big_m as u32, big_k as u32, bm as u32],
            });
        }
        return Ok(Inference {
            tiling: t,
            source: Source::Override,
            n_candidates,
            n_classes: 0,
            score: 0.0,
            runner_up: 0.0,
        });
    }
    if n_candidates == 0 {
        return Err(ModelError::Tl1NoTiling { tensor, m: m as u32, k: k as u32 });
    }
    // Class representatives, in enumeration order; a class's representative is its known
    // configuration when it has one.
    // (representative, holds a known configuration, score); 20 bytes each, on the stack.
    let mut classes: heapless::Vec<(Tiling, bool, f32), MAX_CLASSES> = heapless::Vec::new();
    let mut overflow = false;
    for_each_candidate(m, k, |t| {
        let l = Layout::of(t, m, k);
        let known = is_known(m, k, t);
        if let Some(c) = classes.iter_mut().find(|c| Layout::of(c.0, m, k) == l) {
            if known && !c.1 {
                c.0 = t;
                c.1 = true;
            }
        } else if classes.push((t, known, 0.0)).is_err() {
            overflow = true;
        }
    });
    let n_classes = classes.len();
    if n_classes == 1 && !overflow {
        return Ok(Inference {
            tiling: classes[0].0,
            source: Source::Unique,
            n_candidates,
            n_classes,
            score: 0.0,
            runner_up: 0.0,
        });
    }
    // Score every class on every tensor of the shape; count per-tensor wins.
    let mut n_tensors = 0;
    let mut wins = [0u8; MAX_CLASSES];
    for ti in shape_tensors(g, m, k).take(MAX_SCORED) {
        n_tensors += 1;
        let packed = &ti.data[..m * k / 4];
        let (mut best_i, mut best_s) = (0, f32::MIN);
        for (i, c) in classes.iter_mut().enumerate() {
            let s = score(packed, m, k, c.0);
            c.2 += s;
            if s > best_s {
                (best_i, best_s) = (i, s);
            }
        }
        wins[best_i] += 1;
    }
    let (mut top, mut best, mut runner_up) = (0, f32::MIN, f32::MIN);
    for (i, c) in classes.iter().enumerate() {
        if c.2 > best {
            (runner_up, best, top) = (best, c.2, i);
        } else if c.2 > runner_up {
            runner_up = c.2;
        }
    }
    let inf = |t: Tiling, source, score, runner_up| Inference {
        tiling: t,
        source,
        n_candidates,
        n_classes,
        score,
        runner_up,
    };
    let votes = usize::from(wins[top]);
    let decisive = if n_tensors >= 2 {
        3 * votes >= 2 * n_tensors && best >= MARGIN * runner_up
    } else {
        best >= SINGLE_MARGIN * runner_up
    };
    if best > 0.0 && decisive && !overflow {
        return Ok(inf(classes[top].0, Source::Score, best, runner_up));
    }
    classes.sort_unstable_by(|a, b| b.2.total_cmp(&a.2));
    let near = |c: &&(Tiling, bool, f32)| c.2 * MARGIN > best;
    let mut known = classes.iter().filter(near).filter(|c| c.1);
    if let (Some(kc), None, false) = (known.next(), known.next(), overflow) {
        let other = classes.iter().filter(|c| c.0 != kc.0).map(|c| c.2).fold(0.0, f32::max);
        return Ok(inf(kc.0, Source::Known, kc.2, other));
    }
    let mut shown = [[0u32; 3]; SHOWN];
    for (s, c) in shown.iter_mut().zip(classes.iter()) {
        *s = [c.0.big_m as u32, c.0.big_k as u32, c.0.bm as u32];
    }
    Err(ModelError::Tl1AmbiguousTiling {
        tensor,
        m: m as u32,
        k: k as u32,
        n_classes: n_classes as u32,
        near: classes.iter().filter(near).count() as u32,
        candidates: shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_merge_equivalent_tilings() {
        // BK = K: the BM split is invisible.
        let a = Layout::of(Tiling { big_m: 64, big_k: 256, bm: 32 }, 256, 256);
        let b = Layout::of(Tiling { big_m: 128, big_k: 256, bm: 32 }, 256, 256);
        assert_eq!(a, b);
        let c = Layout::of(Tiling { big_m: 128, big_k: 64, bm: 32 }, 256, 256);
        assert_ne!(a, c);
    }

    #[test]
    fn equal_layouts_locate_identically() {
        let (m, k) = (256, 256);
        let mut all: heapless::Vec<Tiling, 128> = heapless::Vec::new();
        for_each_candidate(m, k, |t| all.push(t).expect("room"));
        for a in &all {
            for b in &all {
                let same =
                    (0..m).all(|r| (0..k / 2).all(|p| a.locate(k, r, p) == b.locate(k, r, p)));
                assert_eq!(same, Layout::of(*a, m, k) == Layout::of(*b, m, k), "{a:?} {b:?}");
            }
        }
    }
}
