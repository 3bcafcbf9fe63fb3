//! Token sampling without allocation: greedy, temperature, top-k, top-p, min-p and a repetition
//! penalty, with a seeded RNG so a run is reproducible.
//!
//! Order (llama.cpp's default chain): repetition penalty → top-k → top-p → min-p → temperature →
//! draw. `temperature <= 0` is greedy (argmax after the penalty; ties go to the lowest id).
#![deny(unsafe_code)]

use crate::arena::{Arena, ArenaError, slot_bytes};

/// Sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SamplerConfig {
    /// Temperature; `<= 0` means greedy.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `top_p` (1 = all).
    pub top_p: f32,
    /// Drop tokens with probability below `min_p · p_max` (0 = off).
    pub min_p: f32,
    /// Divide positive / multiply negative logits of recent tokens by this (1 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        // llama-cli's defaults.
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x5eed,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }
}

/// xorshift64* seeded through splitmix64.
#[derive(Debug, Clone, Copy)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value, zero included).
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A sampler with its candidate buffer (from the arena).
pub struct Sampler<'a> {
    /// Settings (may be changed between tokens).
    pub config: SamplerConfig,
    rng: Rng,
    ids: &'a mut [u32],
    vals: &'a mut [f32],
}

impl<'a> Sampler<'a> {
    /// Arena bytes for a vocabulary of `n_vocab`.
    pub fn arena_bytes(n_vocab: usize) -> usize {
        slot_bytes::<u32>(n_vocab) + slot_bytes::<f32>(n_vocab)
    }

    /// A sampler for `n_vocab` tokens.
    pub fn new(
        config: SamplerConfig,
        n_vocab: usize,
        arena: &mut Arena<'a>,
    ) -> Result<Self, ArenaError> {
        Ok(Self {
            config,
            rng: Rng::new(config.seed),
            ids: arena.alloc(n_vocab)?,
            vals: arena.alloc(n_vocab)?,
        })
    }

    /// Re-seeds the RNG.
    pub fn reseed(&mut self, seed: u64) {
        self.config.seed = seed;
        self.rng = Rng::new(seed);
    }

    /// Picks the next token from `logits`, penalising the tokens in `recent` (oldest first).
    pub fn sample(&mut self, logits: &[f32], recent: &[u32]) -> u32 {
        let cfg = self.config;
        let n = logits.len().min(self.ids.len());
        let vals = &mut self.vals[..n];
        vals.copy_from_slice(&logits[..n]);
        if cfg.repeat_penalty != 1.0 && cfg.repeat_last_n > 0 {
            let start = recent.len().saturating_sub(cfg.repeat_last_n);
            // Apply once per distinct token (llama.cpp penalises presence, not count).
            for (i, &t) in recent[start..].iter().enumerate() {
                let t = t as usize;
                if t >= n || recent[start..start + i].contains(&(t as u32)) {
                    continue;
                }
                let v = &mut vals[t];
                *v = if *v > 0.0 { *v / cfg.repeat_penalty } else { *v * cfg.repeat_penalty };
            }
        }
        if cfg.temperature <= 0.0 || n == 1 {
            return argmax(vals) as u32;
        }
        let ids = &mut self.ids[..n];
        for (i, id) in ids.iter_mut().enumerate() {
            *id = i as u32;
        }
        // Work on (id, logit) pairs sorted by descending logit, ties by id.
        let mut len = n;
        let cmp =
            |a: &u32, b: &u32, v: &[f32]| v[*b as usize].total_cmp(&v[*a as usize]).then(a.cmp(b));
        if cfg.top_k > 0 && cfg.top_k < len {
            ids.select_nth_unstable_by(cfg.top_k - 1, |a, b| cmp(a, b, vals));
            len = cfg.top_k;
        }
        ids[..len].sort_unstable_by(|a, b| cmp(a, b, vals));
        // Probabilities at temperature 1 for top-p / min-p.
        let max = vals[ids[0] as usize];
        let mut sum = 0.0f64;
        for &id in &ids[..len] {
            sum += f64::from(libm::expf(vals[id as usize] - max));
        }
        if cfg.top_p < 1.0 {
            let mut cum = 0.0f64;
            let mut keep = len;
            for (i, &id) in ids[..len].iter().enumerate() {
                cum += f64::from(libm::expf(vals[id as usize] - max)) / sum;
                if cum >= f64::from(cfg.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            len = keep.max(1);
        }
        if cfg.min_p > 0.0 {
            // p_i >= min_p * p_max  <=>  logit_i >= max + ln(min_p)
            let thresh = max + libm::logf(cfg.min_p);
            let keep = ids[..len].iter().take_while(|&&id| vals[id as usize] >= thresh).count();
            len = keep.max(1);
        }
        // Temperature, then draw.
        let inv_t = 1.0 / cfg.temperature;
        let mut total = 0.0f64;
        for &id in &ids[..len] {
            total += f64::from(libm::expf((vals[id as usize] - max) * inv_t));
        }
        let r = f64::from(self.rng.next_f32()) * total;
        let mut acc = 0.0f64;
        for &id in &ids[..len] {
            acc += f64::from(libm::expf((vals[id as usize] - max) * inv_t));
            if acc > r {
                return id;
            }
        }
        ids[len - 1]
    }
}

/// Index of the largest value (first one on ties; NaN never wins).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    let mut bv = f32::NEG_INFINITY;
    for (i, &x) in v.iter().enumerate() {
        if x > bv {
            bv = x;
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(buf: &mut [u8], cfg: SamplerConfig, n: usize) -> Sampler<'_> {
        let mut a = Arena::new(buf);
        Sampler::new(cfg, n, &mut a).unwrap()
    }

    #[test]
    fn greedy_takes_argmax_and_penalty_applies() {
        let mut buf = std::vec![0u8; 4096];
        let mut s = sampler(&mut buf, SamplerConfig::greedy(), 4);
        assert_eq!(s.sample(&[0.1, 2.0, 1.9, -1.0], &[]), 1);
        s.config.repeat_penalty = 1.1;
        assert_eq!(s.sample(&[0.1, 2.0, 1.9, -1.0], &[1]), 2);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_respects_top_k() {
        let logits: std::vec::Vec<f32> = (0..100).map(|i| (i % 7) as f32 * 0.3).collect();
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 3,
            top_p: 1.0,
            min_p: 0.0,
            ..SamplerConfig::default()
        };
        let mut b1 = std::vec![0u8; 8192];
        let mut b2 = std::vec![0u8; 8192];
        let mut s1 = sampler(&mut b1, cfg, 100);
        let mut s2 = sampler(&mut b2, cfg, 100);
        for _ in 0..50 {
            let a = s1.sample(&logits, &[]);
            assert_eq!(a, s2.sample(&logits, &[]));
            // top-3 logits are the ids with i % 7 == 6 and the lowest ids on ties: 6, 13, 20.
            assert!([6, 13, 20].contains(&a), "{a}");
        }
    }

    #[test]
    fn min_p_and_top_p_cut_the_tail() {
        let logits = [10.0f32, 9.9, 0.0, -5.0];
        let cfg = SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            ..SamplerConfig::default()
        };
        let mut b = std::vec![0u8; 4096];
        let mut s = sampler(&mut b, cfg, 4);
        for _ in 0..100 {
            assert!(s.sample(&logits, &[]) < 2);
        }
        s.config.min_p = 0.0;
        s.config.top_p = 0.4;
        for _ in 0..100 {
            assert_eq!(s.sample(&logits, &[]), 0);
        }
    }
}
