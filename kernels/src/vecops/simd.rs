//! The SIMD ops, written once over [`Lanes`] (a vector of f32 lanes) and instantiated per
//! instruction set by [`vec_ops_table!`] inside `#[target_feature]` wrappers. Everything here is
//! `#[inline(always)]` so it compiles into those wrappers with their features.
//!
//! Transcendentals:
//! - `exp`: `x = n·ln2 + r`, `|r| ≤ ln2/2` (ln2 split in two so `n·ln2_hi` is exact), degree-7
//!   Taylor polynomial for `e^r` (truncation `r^8/8! < 6e-9` relative), times `2^n` built in the
//!   exponent bits. Inputs are clamped to `[-87, 88]`, where `2^n` stays a normal float.
//! - `expm1`: the Taylor series through `y^8/8!` for `|y| < ln2/2` (truncation < 1e-9
//!   relative), `exp(y) − 1` beyond, where the subtraction loses at most a factor 3.5.
//! - `tanh`: the odd series through `x^11` for `|x| < 0.3` (next term `< 2e-9` relative), else
//!   `(1 − t)/(1 + t)` with `t = e^{-2|x|}` (at `|x| = 0.3`, `1 − t` amplifies `t`'s relative error by `t/(1 − t) = 1.2`); the
//!   sign is copied from `x`, so `tanh(±0) = ±0` and large inputs give exactly `±1`.
//! - GELU uses `½(1 + tanh z) = 1/(1 + e^{-2z})`: `x / (1 + e^{-2z})`, one `exp`, and none of
//!   the cancellation `1 + tanh z` has for negative `x`.

use super::scalar::{rms_scale, GELU_CUBIC, SQRT_2_OVER_PI};

/// Widest lane count of any path (AVX-512: 16 f32).
const MAX_LANES: usize = 16;

/// A vector of `N` f32 lanes and the operations the ops need.
///
/// # Safety
/// Every method needs the instruction set of its implementation; they are only called from
/// `#[target_feature]` functions reached after the features were detected.
pub(super) trait Lanes: Copy {
    const N: usize;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    unsafe fn splat(v: f32) -> Self;
    unsafe fn add(self, o: Self) -> Self;
    unsafe fn sub(self, o: Self) -> Self;
    unsafe fn mul(self, o: Self) -> Self;
    unsafe fn div(self, o: Self) -> Self;
    /// `self · b + c`, rounded once.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    unsafe fn min(self, o: Self) -> Self;
    unsafe fn max(self, o: Self) -> Self;
    unsafe fn abs(self) -> Self;
    unsafe fn sqrt(self) -> Self;
    /// To the nearest integer, ties to even.
    unsafe fn round(self) -> Self;
    /// `2^self` for integer-valued lanes in `[-126, 127]`.
    unsafe fn pow2(self) -> Self;
    /// `a` where `self < o`, else `b`.
    unsafe fn select_lt(self, o: Self, a: Self, b: Self) -> Self;
    /// `self` (non-negative) with the sign bit of `sign`.
    unsafe fn with_sign_of(self, sign: Self) -> Self;
    /// `Σ x[i]²` over `n` values, accumulated in f64 (each square is exact in f64).
    unsafe fn sum_squares(x: *const f32, n: usize) -> f64;
}

/// `m ≤ N` values at `p` (the rest of the lanes zero).
#[inline(always)]
unsafe fn load_n<V: Lanes>(p: *const f32, m: usize) -> V {
    unsafe {
        if m == V::N {
            V::load(p)
        } else {
            let mut buf = [0.0f32; MAX_LANES];
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), m);
            V::load(buf.as_ptr())
        }
    }
}

/// Stores the first `m ≤ N` lanes at `p`.
#[inline(always)]
unsafe fn store_n<V: Lanes>(v: V, p: *mut f32, m: usize) {
    unsafe {
        if m == V::N {
            v.store(p)
        } else {
            let mut buf = [0.0f32; MAX_LANES];
            v.store(buf.as_mut_ptr());
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, m);
        }
    }
}

/// Applies `f` lane-wise to `x` in place, `N` at a time, the tail through a lane buffer.
macro_rules! in_place {
    ($V:ty, $x:expr, |$v:ident| $body:expr) => {{
        let n = $x.len();
        let p = $x.as_mut_ptr();
        let mut i = 0;
        while i < n {
            let m = (n - i).min(<$V>::N);
            let $v = load_n::<$V>(p.add(i), m);
            store_n::<$V>($body, p.add(i), m);
            i += <$V>::N;
        }
    }};
}

#[inline(always)]
unsafe fn exp<V: Lanes>(x: V) -> V {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO; LN2_HI has 9 significant bits, so n · LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    unsafe {
        let x = x.max(V::splat(-87.0)).min(V::splat(88.0));
        let n = x.mul(V::splat(LOG2E)).round();
        let r = n.mul_add(V::splat(-LN2_HI), x);
        let r = n.mul_add(V::splat(-LN2_LO), r);
        let mut p = V::splat(1.0 / 5040.0);
        for c in [
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
            1.0,
        ] {
            p = p.mul_add(r, V::splat(c));
        }
        p.mul(n.pow2())
    }
}

#[inline(always)]
unsafe fn expm1<V: Lanes>(y: V) -> V {
    const LN2_HALF: f32 = std::f32::consts::LN_2 / 2.0;
    unsafe {
        let mut q = V::splat(1.0 / 40320.0);
        for c in [
            1.0 / 5040.0,
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
        ] {
            q = q.mul_add(y, V::splat(c));
        }
        let series = q.mul(y);
        let via_exp = exp(y).sub(V::splat(1.0));
        y.abs().select_lt(V::splat(LN2_HALF), series, via_exp)
    }
}

#[inline(always)]
unsafe fn tanh<V: Lanes>(x: V) -> V {
    // tanh x = x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835 − 1382x¹¹/155925 + …
    const SERIES: [f32; 4] = [62.0 / 2835.0, -17.0 / 315.0, 2.0 / 15.0, -1.0 / 3.0];
    unsafe {
        let ax = x.abs();
        let one = V::splat(1.0);
        let t = exp(ax.mul(V::splat(-2.0)));
        let far = one.sub(t).div(one.add(t));
        let x2 = ax.mul(ax);
        let mut q = V::splat(-1382.0 / 155925.0);
        for c in SERIES {
            q = q.mul_add(x2, V::splat(c));
        }
        let near = ax.mul(x2).mul_add(q, ax);
        ax.select_lt(V::splat(0.3), near, far).with_sign_of(x)
    }
}

#[inline(always)]
unsafe fn gelu_one<V: Lanes>(x: V) -> V {
    unsafe {
        let x3 = x.mul(x).mul(x);
        let z = x3
            .mul_add(V::splat(GELU_CUBIC), x)
            .mul(V::splat(SQRT_2_OVER_PI));
        x.div(V::splat(1.0).add(exp(z.mul(V::splat(-2.0)))))
    }
}

#[inline(always)]
pub(super) unsafe fn rms_norm<V: Lanes>(x: *const f32, w: &[f32], eps: f32, out: *mut f32) {
    let n = w.len();
    unsafe {
        let s = V::splat(rms_scale(V::sum_squares(x, n), n, eps));
        let mut i = 0;
        while i < n {
            let m = (n - i).min(V::N);
            let v = load_n::<V>(x.add(i), m);
            let wv = load_n::<V>(w.as_ptr().add(i), m);
            // (x · s) · w, the reference's order.
            store_n(v.mul(s).mul(wv), out.add(i), m);
            i += V::N;
        }
    }
}

#[inline(always)]
pub(super) unsafe fn gelu<V: Lanes>(x: &mut [f32]) {
    unsafe { in_place!(V, x, |v| gelu_one(v)) }
}

#[inline(always)]
pub(super) unsafe fn geglu<V: Lanes>(gate: &mut [f32], up: &[f32]) {
    let u = up.as_ptr();
    let mut i = 0;
    unsafe {
        in_place!(V, gate, |g| {
            let m = (up.len() - i).min(V::N);
            let r = gelu_one(g).mul(load_n::<V>(u.add(i), m));
            i += V::N;
            r
        })
    }
}

#[inline(always)]
pub(super) unsafe fn softcap<V: Lanes>(x: &mut [f32], cap: f32) {
    unsafe {
        let c = V::splat(cap);
        in_place!(V, x, |v| c.mul(tanh(v.div(c))))
    }
}

#[inline(always)]
pub(super) unsafe fn sigmoid<V: Lanes>(x: &mut [f32]) {
    unsafe {
        let one = V::splat(1.0);
        in_place!(V, x, |v| one.div(one.add(exp(V::splat(0.0).sub(v)))))
    }
}

#[inline(always)]
pub(super) unsafe fn decay<V: Lanes>(l: &[f32], a: &mut [f32], m: &mut [f32]) {
    let n = l.len();
    let mut i = 0;
    unsafe {
        while i < n {
            let k = (n - i).min(V::N);
            let v = load_n::<V>(l.as_ptr().add(i), k);
            store_n(exp(v), a.as_mut_ptr().add(i), k);
            let e = expm1(v.add(v));
            store_n(V::splat(0.0).sub(e).sqrt(), m.as_mut_ptr().add(i), k);
            i += V::N;
        }
    }
}

#[inline(always)]
pub(super) unsafe fn add<V: Lanes>(acc: &mut [f32], x: &[f32]) {
    let p = x.as_ptr();
    let mut i = 0;
    unsafe {
        in_place!(V, acc, |a| {
            let m = (x.len() - i).min(V::N);
            let r = a.add(load_n::<V>(p.add(i), m));
            i += V::N;
            r
        })
    }
}

#[inline(always)]
pub(super) unsafe fn scale<V: Lanes>(x: &mut [f32], s: f32) {
    unsafe {
        let s = V::splat(s);
        in_place!(V, x, |v| v.mul(s))
    }
}

#[inline(always)]
pub(super) unsafe fn rope<V: Lanes>(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    let heads = x.len() / head_dim;
    unsafe {
        for h in 0..heads {
            let lo = x.as_mut_ptr().add(h * head_dim);
            let hi = lo.add(half);
            let mut j = 0;
            while j < half {
                let m = (half - j).min(V::N);
                let a = load_n::<V>(lo.add(j), m);
                let b = load_n::<V>(hi.add(j), m);
                let c = load_n::<V>(cos.as_ptr().add(j), m);
                let s = load_n::<V>(sin.as_ptr().add(j), m);
                // Separate products and a sum, as the reference rounds them.
                store_n(a.mul(c).sub(b.mul(s)), lo.add(j), m);
                store_n(b.mul(c).add(a.mul(s)), hi.add(j), m);
                j += V::N;
            }
        }
    }
}

/// Defines a path's `VecOps` table `$table` for lane type `$V`: one `#[target_feature]`
/// wrapper per op, and safe entry points that call it (sound because [`super::table`] hands the
/// table out only after the path's features were detected).
macro_rules! vec_ops_table {
    ($table:ident, $module:ident, $path:expr, $V:ty, $features:literal) => {
        mod $module {
            use super::super::simd;
            #[allow(unused_imports)]
            use super::*;

            #[target_feature(enable = $features)]
            unsafe fn rms_norm_tf(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
                unsafe { simd::rms_norm::<$V>(x.as_ptr(), w, eps, out.as_mut_ptr()) }
            }
            #[target_feature(enable = $features)]
            unsafe fn rms_norm_in_place_tf(x: &mut [f32], w: &[f32], eps: f32) {
                // Each chunk is loaded before it is stored, so reading and writing `x` is fine.
                let p = x.as_mut_ptr();
                unsafe { simd::rms_norm::<$V>(p, w, eps, p) }
            }
            #[target_feature(enable = $features)]
            unsafe fn gelu_tf(x: &mut [f32]) {
                unsafe { simd::gelu::<$V>(x) }
            }
            #[target_feature(enable = $features)]
            unsafe fn geglu_tf(gate: &mut [f32], up: &[f32]) {
                unsafe { simd::geglu::<$V>(gate, up) }
            }
            #[target_feature(enable = $features)]
            unsafe fn softcap_tf(x: &mut [f32], cap: f32) {
                unsafe { simd::softcap::<$V>(x, cap) }
            }
            #[target_feature(enable = $features)]
            unsafe fn sigmoid_tf(x: &mut [f32]) {
                unsafe { simd::sigmoid::<$V>(x) }
            }
            #[target_feature(enable = $features)]
            unsafe fn decay_tf(l: &[f32], a: &mut [f32], m: &mut [f32]) {
                unsafe { simd::decay::<$V>(l, a, m) }
            }
            #[target_feature(enable = $features)]
            unsafe fn add_tf(acc: &mut [f32], x: &[f32]) {
                unsafe { simd::add::<$V>(acc, x) }
            }
            #[target_feature(enable = $features)]
            unsafe fn scale_tf(x: &mut [f32], s: f32) {
                unsafe { simd::scale::<$V>(x, s) }
            }
            #[target_feature(enable = $features)]
            unsafe fn rope_tf(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
                unsafe { simd::rope::<$V>(x, head_dim, cos, sin) }
            }

            // SAFETY (all below): reached only through the path's table, which `table` hands
            // out after detecting `$features`; slice lengths were checked by `VecOps`.
            pub(super) fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
                unsafe { rms_norm_tf(x, w, eps, out) }
            }
            pub(super) fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
                unsafe { rms_norm_in_place_tf(x, w, eps) }
            }
            pub(super) fn gelu(x: &mut [f32]) {
                unsafe { gelu_tf(x) }
            }
            pub(super) fn geglu(gate: &mut [f32], up: &[f32]) {
                unsafe { geglu_tf(gate, up) }
            }
            pub(super) fn softcap(x: &mut [f32], cap: f32) {
                unsafe { softcap_tf(x, cap) }
            }
            pub(super) fn sigmoid(x: &mut [f32]) {
                unsafe { sigmoid_tf(x) }
            }
            pub(super) fn decay(l: &[f32], a: &mut [f32], m: &mut [f32]) {
                unsafe { decay_tf(l, a, m) }
            }
            pub(super) fn add(acc: &mut [f32], x: &[f32]) {
                unsafe { add_tf(acc, x) }
            }
            pub(super) fn scale(x: &mut [f32], s: f32) {
                unsafe { scale_tf(x, s) }
            }
            pub(super) fn rope(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
                unsafe { rope_tf(x, head_dim, cos, sin) }
            }
        }

        pub(super) const $table: super::VecOps = super::VecOps {
            path: $path,
            rms_norm: $module::rms_norm,
            rms_norm_in_place: $module::rms_norm_in_place,
            gelu: $module::gelu,
            geglu: $module::geglu,
            softcap: $module::softcap,
            sigmoid: $module::sigmoid,
            decay: $module::decay,
            add: $module::add,
            scale: $module::scale,
            rope: $module::rope,
        };
    };
}
pub(super) use vec_ops_table;
