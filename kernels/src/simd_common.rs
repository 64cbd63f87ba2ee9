//! Portable helpers shared by the SIMD paths.

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
