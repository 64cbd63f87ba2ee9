//! Portable helpers shared by the SIMD paths.

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
/// f16 bits to f32 bits, exactly (subnormals normalized, NaNs quieted like F16C and `half` do).
const fn f16_to_f32_bits(h: u16) -> u32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    if exp == 0 {
        if man == 0 {
            return sign;
        }
        let (mut e, mut m) = (-14i32, man);
        while m & 0x400 == 0 {
            m <<= 1;
            e -= 1;
        }
        return sign | (((e + 127) as u32) << 23) | ((m & 0x3ff) << 13);
    }
    if exp == 31 {
        return if man == 0 {
            sign | 0x7f80_0000
        } else {
            sign | 0x7fc0_0000 | (man << 13)
        };
    }
    sign | ((exp + 112) << 23) | (man << 13)
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const fn f16_table() -> [f32; 65536] {
    let mut t = [0.0f32; 65536];
    let mut i = 0;
    while i < 65536 {
        t[i] = f32::from_bits(f16_to_f32_bits(i as u16));
        i += 1;
    }
    t
}

/// Every f16 value as f32, indexed by its bits (256 KiB, built at compile time). The x86
/// kernels read block scales through it: one load that can broadcast straight into a vector,
/// where a `vcvtph2ps` of a scalar costs several vector-pipe operations per block (measured
/// 25-30% of a Q4_0 / Q8_0 row-block on Zen 4). Only the pages holding a model's scale
/// values are ever touched.
#[cfg(target_arch = "x86_64")]
pub(crate) static F16_TO_F32: [f32; 65536] = f16_table();

/// The 8 six-bit scales and 8 six-bit minimums of a Q4_K / Q5_K block, unpacked from the 12
/// packed bytes at `p` with a few 32-bit operations (same values as
/// `formats::q4_k::get_scale_min_k4(j)` for `j` in 0..8). Returns `(scales, mins)` as 8 bytes
/// each, little-endian in a u64.
///
/// # Safety
/// `p` must be valid for 12 bytes of reads (no alignment needed).
#[inline(always)]
pub(crate) unsafe fn unpack_q4k_scales(p: *const u8) -> (u64, u64) {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let rd = |i: usize| unsafe { std::ptr::read_unaligned(p.add(4 * i) as *const u32) };
    let (q0, q1, q2) = (rd(0), rd(1), rd(2));
    // Scales 0-3: low 6 bits of bytes 0-3; 4-7: low nibble of bytes 8-11 plus the top two bits
    // of bytes 0-3. Minimums likewise from bytes 4-7 and the high nibbles of bytes 8-11.
    let sc_lo = q0 & KMASK1;
    let sc_hi = (q2 & KMASK2) | (((q0 >> 6) & KMASK3) << 4);
    let m_lo = q1 & KMASK1;
    let m_hi = ((q2 >> 4) & KMASK2) | (((q1 >> 6) & KMASK3) << 4);
    (
        sc_lo as u64 | (sc_hi as u64) << 32,
        m_lo as u64 | (m_hi as u64) << 32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::q4_k::get_scale_min_k4;

    #[test]
    fn f16_table_matches_half() {
        let t = f16_table();
        for h in 0..=u16::MAX {
            let want = crate::formats::f16_bits_to_f32(h);
            let got = t[h as usize];
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}");
                assert_eq!(got.is_sign_negative(), want.is_sign_negative());
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
            }
        }
    }

    #[test]
    fn unpacked_scales_match_the_reference() {
        let mut state = 0x1234_5678_9abc_def0u64;
        for _ in 0..1000 {
            let mut packed = [0u8; 12];
            for b in packed.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = state as u8;
            }
            let (sc, m) = unsafe { unpack_q4k_scales(packed.as_ptr()) };
            for j in 0..8 {
                let (want_sc, want_m) = get_scale_min_k4(j, &packed);
                assert_eq!((sc >> (8 * j)) as u8, want_sc, "scale {j} of {packed:?}");
                assert_eq!((m >> (8 * j)) as u8, want_m, "min {j} of {packed:?}");
            }
        }
    }
}
