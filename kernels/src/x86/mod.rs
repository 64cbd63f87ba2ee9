//! x86_64 SIMD kernels: `avx2` (AVX2 + FMA + F16C, Haswell / Zen 1 and later) and `avx512`
//! (AVX-512 BW/VL + VNNI, Ice Lake / Zen 4 and later). Everything here is compiled with
//! `#[target_feature]` and reached only through a dispatch table whose features were detected.

pub(crate) mod avx2;
pub(crate) mod avx512;
