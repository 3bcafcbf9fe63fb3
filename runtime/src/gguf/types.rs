//! ggml tensor types that can appear in a GGUF file, and their exact byte sizes.
//!
//! ggml's generic `ne * type_size / block_size` is wrong for bitnet.cpp's I2_S/TL1/TL2 (block 1,
//! size 1): their real sizes are special cases (FORMATS §1.1), reproduced by [`GgmlType::nbytes`].

/// A tensor element type. The numeric value is the GGUF type id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// 4-bit, 32-element blocks.
    Q4_0,
    /// 4-bit with min, 32-element blocks.
    Q4_1,
    /// 5-bit.
    Q5_0,
    /// 5-bit with min.
    Q5_1,
    /// 8-bit, 32-element blocks with an f16 scale (34 bytes).
    Q8_0,
    /// 8-bit with sum.
    Q8_1,
    /// k-quant 2-bit.
    Q2K,
    /// k-quant 3-bit.
    Q3K,
    /// k-quant 4-bit.
    Q4K,
    /// k-quant 5-bit.
    Q5K,
    /// k-quant 6-bit (210 bytes per 256; `--quant-embd` files store `token_embd` in it).
    Q6K,
    /// k-quant 8-bit.
    Q8K,
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 64-bit float.
    F64,
    /// bfloat16.
    BF16,
    /// Ternary, 5 trits per byte (upstream ggml, 54 bytes per 256).
    TQ1_0,
    /// Ternary, 2 bits low-first (upstream ggml, 66 bytes per 256).
    TQ2_0,
    /// bitnet.cpp I2_S (id 36 in BitNet files).
    I2S,
    /// bitnet.cpp TL1 (id 38 in BitNet files).
    TL1,
    /// bitnet.cpp TL2 (id 39 in BitNet files).
    TL2,
}

impl GgmlType {
    /// Maps a GGUF type id. Ids 36/38/39 are the BitNet types only when `bitnet_ids` is set
    /// (upstream ggml reused those numbers later; see DESIGN §3).
    pub fn from_id(id: u32, bitnet_ids: bool) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2K,
            11 => Q3K,
            12 => Q4K,
            13 => Q5K,
            14 => Q6K,
            15 => Q8K,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            36 if bitnet_ids => I2S,
            38 if bitnet_ids => TL1,
            39 if bitnet_ids => TL2,
            _ => return None,
        })
    }

    /// The GGUF type id.
    pub const fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2K => 10,
            Q3K => 11,
            Q4K => 12,
            Q5K => 13,
            Q6K => 14,
            Q8K => 15,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            I2S => 36,
            TL1 => 38,
            TL2 => 39,
        }
    }

    /// ggml's `type_name`.
    pub const fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "f32",
            F16 => "f16",
            Q4_0 => "q4_0",
            Q4_1 => "q4_1",
            Q5_0 => "q5_0",
            Q5_1 => "q5_1",
            Q8_0 => "q8_0",
            Q8_1 => "q8_1",
            Q2K => "q2_K",
            Q3K => "q3_K",
            Q4K => "q4_K",
            Q5K => "q5_K",
            Q6K => "q6_K",
            Q8K => "q8_K",
            I8 => "i8",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            F64 => "f64",
            BF16 => "bf16",
            TQ1_0 => "tq1_0",
            TQ2_0 => "tq2_0",
            I2S => "i2_s",
            TL1 => "tl1",
            TL2 => "tl2",
        }
    }

    /// `(elements per block, bytes per block)` for the regular types; `None` for I2_S/TL1/TL2.
    pub const fn block(self) -> Option<(u64, u64)> {
        use GgmlType::*;
        Some(match self {
            F32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            I8 => (1, 1),
            I32 => (1, 4),
            I64 | F64 => (1, 8),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q8_1 => (32, 36),
            Q2K => (256, 84),
            Q3K => (256, 110),
            Q4K => (256, 144),
            Q5K => (256, 176),
            Q6K => (256, 210),
            Q8K => (256, 292),
            TQ1_0 => (256, 54),
            TQ2_0 => (256, 66),
            I2S | TL1 | TL2 => return None,
        })
    }

    /// Exact byte size of a tensor with dimensions `ne` (ggml order, `ne[0]` fastest).
    /// `None` on overflow or when `ne[0]` is not a multiple of the block size.
    pub fn nbytes(self, ne: &[u64]) -> Option<u64> {
        let mut n: u64 = 1;
        for &d in ne {
            n = n.checked_mul(d)?;
        }
        let ne0 = ne.first().copied().unwrap_or(1);
        match self {
            GgmlType::I2S | GgmlType::TL1 => {
                // ne0*ne1/4 + 32 (higher dims multiply in, as ggml's nelements does).
                Some(n / 4 + 32)
            }
            GgmlType::TL2 => {
                let ne1 = n.checked_div(ne0.max(1))?;
                // (ne0-256)*ne1/3*5/8 + 256*ne1/2*4/8, integer arithmetic left to right.
                let a = ne0.checked_sub(256)?.checked_mul(ne1)? / 3;
                let a = a.checked_mul(5)? / 8;
                let b = 256u64.checked_mul(ne1)? / 2;
                let b = b.checked_mul(4)? / 8;
                let nb = a.checked_add(b)?;
                let nb = nb.div_ceil(32).checked_mul(32)?;
                nb.checked_add(32)
            }
            _ => {
                let (bs, bytes) = self.block()?;
                if ne0 % bs != 0 {
                    return None;
                }
                (n / bs).checked_mul(bytes)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_the_2b4t_tensors() {
        // FORMATS §3.1 table.
        assert_eq!(GgmlType::I2S.nbytes(&[2560, 2560]), Some(1_638_432));
        assert_eq!(GgmlType::I2S.nbytes(&[2560, 640]), Some(409_632));
        assert_eq!(GgmlType::I2S.nbytes(&[2560, 6912]), Some(4_423_712));
        assert_eq!(GgmlType::I2S.nbytes(&[6912, 2560]), Some(4_423_712));
        assert_eq!(GgmlType::F16.nbytes(&[2560, 128256]), Some(656_670_720));
        assert_eq!(GgmlType::F32.nbytes(&[2560]), Some(10240));
    }

    #[test]
    fn block_types() {
        assert_eq!(GgmlType::Q8_0.nbytes(&[64, 2]), Some(4 * 34));
        assert_eq!(GgmlType::TQ2_0.nbytes(&[256, 3]), Some(3 * 66));
        assert_eq!(GgmlType::Q8_0.nbytes(&[33]), None);
        assert_eq!(GgmlType::F32.nbytes(&[u64::MAX, 2]), None);
    }

    #[test]
    fn tl2_formula() {
        // K = 3200, M = 3200 (bitnet 3B): nb = (2944*3200/3)*5/8 + 256*3200/2*4/8
        let n = GgmlType::TL2.nbytes(&[3200, 3200]).unwrap();
        let a = (2944u64 * 3200 / 3) * 5 / 8;
        let b = 256u64 * 3200 / 2 * 4 / 8;
        assert_eq!(n, (a + b).div_ceil(32) * 32 + 32);
    }

    #[test]
    fn bitnet_ids_only_when_asked() {
        assert_eq!(GgmlType::from_id(36, true), Some(GgmlType::I2S));
        assert_eq!(GgmlType::from_id(36, false), None);
        for t in [GgmlType::F32, GgmlType::Q6K, GgmlType::TQ1_0, GgmlType::TL2] {
            assert_eq!(GgmlType::from_id(t.id(), true), Some(t));
        }
    }
}
