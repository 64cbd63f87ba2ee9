//! x86_64 SIMD kernels: `avx2` (AVX2 + FMA + F16C, Haswell / Zen 1 and later) and `avx512`
//! (AVX-512 BW/VL + VNNI, Ice Lake / Zen 4 and later). Everything here is compiled with
//! `#[target_feature]` and reached only through a dispatch table whose features were detected.

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod gemm;

/// Implements [`RowKernel`](crate::rows::RowKernel) for a unit struct by forwarding to a
/// `#[target_feature]` function generic over the tile shape.
macro_rules! row_kernel {
    ($(#[$doc:meta])* $name:ident => $f:ident) => {
        $(#[$doc])*
        pub(crate) struct $name;
        impl crate::rows::RowKernel for $name {
            #[inline]
            unsafe fn dot<const NW: usize, const NA: usize>(
                cols: usize,
                w: [*const u8; NW],
                a: [*const u8; NA],
            ) -> [[f32; NA]; NW] {
                unsafe { $f::<NW, NA>(cols, w, a) }
            }
        }
    };
}
pub(crate) use row_kernel;
