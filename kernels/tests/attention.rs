//! Every attention path this CPU can run (`dispatch::table`) against the f64 reference
//! (`attention::reference`), over f32 / f16 / q8_0 rings, MQA / GQA / MHA, head dims 16..512
//! (including ones that are not a multiple of the 8- or 16-lane vector), sliding windows that
//! cross chunk edges, softcap, single tokens and batches, positions that wrap the ring, and 1 or
//! 2 threads. Plus two exactness properties the model tests rely on: a batch equals the same
//! tokens decoded one at a time bit for bit, and results do not depend on the thread count.
//!
//! Tolerance, per output row: `B / 4` with `B = max|v| · (2·e_s + (keys + 32)·2^-24)`, where
//! `e_s = (hd + 8)·2^-24·scale·max_j Σ_d |q_d k_jd|` is the worst-case f32 score error (the
//! classical bound for a dot product of `hd` terms, plus a few ulp for the scale, exp and tanh
//! polynomials): a softmax weight then errs by at most `2·e_s` relative, and the weighted sum of
//! `keys` values adds at most `(keys + 32)·2^-24·max|v|` (summation and the final division).
//! Rounding errors of random data grow like the square root of the term count, not linearly, so
//! `B` is far from reached: the largest error seen over these cases (any path, the scalar one
//! being the worst) is 2.4% of `B`, hence `B / 4` leaves 10× margin while a 1e-4 error in
//! one exp coefficient (44% of `B`) already fails, and a wrong mask, chunk edge or merge
//! (errors of the order of the values) fails by orders of magnitude.

use edgegemma_kernels::attention::{self, reference, Attention, KvCache, KvFormat};
use edgegemma_kernels::dispatch::{self, Kernels};
use edgegemma_kernels::formats::{self, BlockQ8_0};
use edgegemma_test_support::rng::Rng;

/// Encodes `x` (one head vector) in `format`, returning the bytes and the decoded values.
fn encode(format: KvFormat, x: &[f32]) -> (Vec<u8>, Vec<f32>) {
    match format {
        KvFormat::F32 => (bytemuck::cast_slice(x).to_vec(), x.to_vec()),
        KvFormat::F16 => {
            let bits: Vec<u16> = x.iter().map(|&v| formats::f32_to_f16_bits(v)).collect();
            let dec = bits.iter().map(|&b| formats::f16_bits_to_f32(b)).collect();
            (bytemuck::cast_slice(&bits).to_vec(), dec)
        }
        KvFormat::Q8_0 => {
            let mut blocks = vec![<BlockQ8_0 as bytemuck::Zeroable>::zeroed(); x.len() / 32];
            formats::quantize_row_q8_0(x, &mut blocks);
            let mut dec = vec![0.0; x.len()];
            formats::dequantize_row_q8_0(&blocks, &mut dec);
            (bytemuck::cast_slice(&blocks).to_vec(), dec)
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    n_head: usize,
    n_head_kv: usize,
    hd: usize,
    format: KvFormat,
    softcap: Option<f32>,
    window: Option<usize>,
    pos0: usize,
    n: usize,
    slots: usize,
}

/// A ring of `slots` positions and the keys/values of every position `0..pos0+n` (already in
/// cache precision), with the ring holding the latest `slots` positions before `pos0`.
struct Data {
    q: Vec<f32>,
    /// Per position: `n_head_kv × hd` decoded keys / values and their encoded bytes.
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    kb: Vec<Vec<u8>>,
    vb: Vec<Vec<u8>>,
    ring_k: Vec<u8>,
    ring_v: Vec<u8>,
}

impl Case {
    fn head_bytes(&self) -> usize {
        self.format.head_bytes(self.hd)
    }

    fn make(&self, seed: u64) -> Data {
        let mut rng = Rng(seed | 1);
        let total = self.pos0 + self.n;
        let q: Vec<f32> = (0..self.n * self.n_head * self.hd)
            .map(|_| 2.0 * rng.uniform(-1.0, 1.0))
            .collect();
        let (mut k, mut v, mut kb, mut vb) = (vec![], vec![], vec![], vec![]);
        for p in 0..total {
            let (mut kp, mut vp, mut kbp, mut vbp) = (vec![], vec![], vec![], vec![]);
            for _ in 0..self.n_head_kv {
                // A few positions get large keys so some weights underflow and the maxima move.
                let big = if p % 7 == 3 { 6.0 } else { 1.5 };
                let kx: Vec<f32> = (0..self.hd).map(|_| big * rng.uniform(-1.0, 1.0)).collect();
                let vx: Vec<f32> = (0..self.hd).map(|_| rng.uniform(-1.0, 1.0)).collect();
                let (b, d) = encode(self.format, &kx);
                kbp.extend(b);
                kp.extend(d);
                let (b, d) = encode(self.format, &vx);
                vbp.extend(b);
                vp.extend(d);
            }
            k.push(kp);
            v.push(vp);
            kb.push(kbp);
            vb.push(vbp);
        }
        let stride = self.n_head_kv * self.head_bytes();
        let mut ring_k = vec![0u8; self.slots * stride];
        let mut ring_v = vec![0u8; self.slots * stride];
        for p in self.pos0.saturating_sub(self.slots)..self.pos0 {
            let s = p % self.slots;
            ring_k[s * stride..(s + 1) * stride].copy_from_slice(&kb[p]);
            ring_v[s * stride..(s + 1) * stride].copy_from_slice(&vb[p]);
        }
        Data {
            q,
            k,
            v,
            kb,
            vb,
            ring_k,
            ring_v,
        }
    }
}

impl Data {
    fn new_kv(&self, _c: &Case, pos0: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
        (
            self.k[pos0..pos0 + n].concat(),
            self.v[pos0..pos0 + n].concat(),
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn attention<'a>(
    c: &Case,
    q: &'a [f32],
    k_new: &'a [f32],
    v_new: &'a [f32],
    ring_k: &'a [u8],
    ring_v: &'a [u8],
    pos0: usize,
    n: usize,
) -> Attention<'a> {
    Attention {
        n_head: c.n_head,
        n_head_kv: c.n_head_kv,
        head_dim: c.hd,
        scale: 1.0 / (c.hd as f32).sqrt(),
        softcap: c.softcap,
        window: c.window,
        pos0,
        n,
        q,
        k_new,
        v_new,
        cache: KvCache {
            format: c.format,
            k: ring_k,
            v: ring_v,
            slots: c.slots,
            slot_stride: c.n_head_kv * c.head_bytes(),
            head_stride: c.head_bytes(),
        },
    }
}

fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// Available paths, one per distinct attention entry (the aarch64 tables share NEON's).
fn paths() -> Vec<&'static Kernels> {
    let mut p: Vec<&'static Kernels> = Vec::new();
    for k in dispatch::available_paths()
        .into_iter()
        .map(|p| dispatch::table(p).unwrap())
    {
        let entry = k.attention_entry() as usize;
        if !p.iter().any(|q| q.attention_entry() as usize == entry) {
            p.push(k);
        }
    }
    eprintln!(
        "attention paths: {:?}",
        p.iter().map(|k| k.name).collect::<Vec<_>>()
    );
    p
}

fn check_case(c: &Case, seed: u64) {
    let d = c.make(seed);
    let (k_new, v_new) = d.new_kv(c, c.pos0, c.n);
    let a = attention(c, &d.q, &k_new, &v_new, &d.ring_k, &d.ring_v, c.pos0, c.n);
    let len = c.n * c.n_head * c.hd;
    let mut want = vec![0.0; len];
    reference::attend(&a, &mut want).unwrap();
    let hd = c.hd;
    let group = c.n_head / c.n_head_kv;
    let scale = 1.0 / (hd as f64).sqrt();
    let ulp = 2f64.powi(-24);
    for k in paths() {
        for threads in [1, 2] {
            let mut got = vec![f32::NAN; len];
            with_threads(threads, || k.attend(&a, &mut got)).unwrap();
            for t in 0..c.n {
                let pos = c.pos0 + t;
                let first = a.first_visible(pos);
                for h in 0..c.n_head {
                    let g = h / group;
                    let q = &d.q[(t * c.n_head + h) * hd..][..hd];
                    let (mut qk, mut vmax) = (0f64, 0f64);
                    for j in first..=pos {
                        let kj = &d.k[j][g * hd..][..hd];
                        let s: f64 = q.iter().zip(kj).map(|(&x, &y)| (x * y).abs() as f64).sum();
                        qk = qk.max(s);
                        let vj = &d.v[j][g * hd..][..hd];
                        vmax = vj.iter().fold(vmax, |m, &x| m.max(x.abs() as f64));
                    }
                    let e_s = (hd + 8) as f64 * ulp * scale * qk;
                    let keys = (pos + 1 - first) as f64;
                    let tol = vmax * (2.0 * e_s + (keys + 32.0) * ulp) / 4.0;
                    let o = (t * c.n_head + h) * hd;
                    for i in 0..hd {
                        let (g_, w_) = (got[o + i], want[o + i]);
                        assert!(
                            ((g_ - w_) as f64).abs() <= tol,
                            "{} threads {threads} {c:?}: token {t} head {h} [{i}] = {g_}, \
                             reference {w_}, tolerance {tol:e}",
                            k.name
                        );
                    }
                }
            }
        }
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let base = Case {
        n_head: 4,
        n_head_kv: 1,
        hd: 64,
        format: KvFormat::F16,
        softcap: None,
        window: None,
        pos0: 0,
        n: 1,
        slots: 1,
    };
    for format in [KvFormat::F32, KvFormat::F16, KvFormat::Q8_0] {
        // (n_head, n_head_kv, hd): MQA as Gemma 3 270M / Gemma 2B / RecurrentGemma, GQA, MHA,
        // a group wider than a tile, the largest head.
        let mut shapes = vec![
            (4, 1, 256),
            (8, 1, 64),
            (10, 1, 32),
            (8, 2, 96),
            (3, 3, 32),
            (20, 1, 32),
            (2, 1, 512),
        ];
        if format != KvFormat::Q8_0 {
            // Not multiples of the 8 / 16 lanes (q8_0 needs whole 32-blocks).
            shapes.extend([(2, 2, 16), (4, 2, 40), (6, 3, 18), (4, 1, 200)]);
        }
        for (i, &(n_head, n_head_kv, hd)) in shapes.iter().enumerate() {
            let c = Case {
                n_head,
                n_head_kv,
                hd,
                format,
                ..base.clone()
            };
            // Prefill across a chunk edge (global): from position 0 for the first shapes, after
            // a cached prefix for the rest (shorter, to keep the emulated aarch64 run short).
            v.push(Case {
                pos0: if i < 3 { 0 } else { 100 },
                n: if i < 3 { 150 } else { 40 },
                slots: 160,
                ..c.clone()
            });
            // Decode deep into a global cache (several chunks, split over threads).
            v.push(Case {
                pos0: 300 + i,
                slots: 512,
                ..c.clone()
            });
            // A batch after a cached prefix, softcapped.
            v.push(Case {
                pos0: 130,
                n: 9,
                slots: 200,
                softcap: Some(if i % 2 == 0 { 50.0 } else { 0.7 }),
                ..c.clone()
            });
            // Sliding window ring, wrapped several times, window crossing chunk edges.
            v.push(Case {
                pos0: 700 + 3 * i,
                n: 5,
                window: Some(140),
                slots: 139,
                ..c.clone()
            });
            v.push(Case {
                pos0: 260,
                n: 1,
                window: Some(5),
                slots: 4,
                ..c.clone()
            });
        }
    }
    v
}

#[test]
fn paths_match_the_reference() {
    for (i, c) in cases().iter().enumerate() {
        check_case(c, 0x9e37_79b9 + i as u64);
    }
}

/// Small batches inside a window smaller than the batch (keys of the batch evicted from the
/// ring before the batch ends) and batches starting at position 0.
#[test]
fn windows_smaller_than_the_batch() {
    for format in [KvFormat::F32, KvFormat::F16, KvFormat::Q8_0] {
        for (pos0, n, w) in [(0, 40, 7), (50, 33, 3), (10, 1, 1), (0, 1, 1), (5, 20, 1)] {
            let c = Case {
                n_head: 4,
                n_head_kv: 2,
                hd: 32,
                format,
                softcap: None,
                window: Some(w),
                pos0,
                n,
                slots: w.max(1),
            };
            check_case(&c, 77 + pos0 as u64);
        }
    }
}

/// Token-by-token decode (writing each token to the ring as the model does) gives exactly the
/// bits of one batched call, on every path, with 1 and 2 threads; and the batch itself does not
/// depend on the thread count.
#[test]
fn decode_equals_batch_bit_for_bit() {
    // (8, 1, 64): Gemma 2B's group, whose decode rows take the 8-row score and P·V blocks of
    // the 32-register paths while the batch tiles (2 tokens × 8 heads) take two of them.
    let shapes = [
        (4, 1, 256, None),
        (8, 1, 64, None),
        (8, 2, 64, Some(60)),
        (3, 3, 40, Some(200)),
    ];
    for format in [KvFormat::F32, KvFormat::F16, KvFormat::Q8_0] {
        for &(n_head, n_head_kv, hd, window) in &shapes {
            if format == KvFormat::Q8_0 && hd % 32 != 0 {
                continue;
            }
            let slots = window.unwrap_or(256);
            let c = Case {
                n_head,
                n_head_kv,
                hd,
                format,
                softcap: Some(30.0),
                window,
                pos0: 0,
                n: 200,
                slots,
            };
            let d = c.make(5 + hd as u64);
            let (k_new, v_new) = d.new_kv(&c, 0, c.n);
            let empty = vec![0u8; slots * n_head_kv * c.head_bytes()];
            let len = c.n * n_head * hd;
            let row = n_head * hd;
            for k in paths() {
                let batch = |threads| {
                    let a = attention(&c, &d.q, &k_new, &v_new, &empty, &empty, 0, c.n);
                    let mut out = vec![0.0; len];
                    with_threads(threads, || k.attend(&a, &mut out)).unwrap();
                    out
                };
                let b1 = batch(1);
                assert!(b1 == batch(2), "{}: batch depends on threads", k.name);
                for threads in [1, 2] {
                    let (mut rk, mut rv) = (empty.clone(), empty.clone());
                    let stride = n_head_kv * c.head_bytes();
                    for t in 0..c.n {
                        let (kt, vt) = d.new_kv(&c, t, 1);
                        let a = attention(&c, &d.q[t * row..], &kt, &vt, &rk, &rv, t, 1);
                        let mut out = vec![0.0; row];
                        with_threads(threads, || k.attend(&a, &mut out)).unwrap();
                        let want = &b1[t * row..(t + 1) * row];
                        let same = out
                            .iter()
                            .zip(want)
                            .all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(
                            same,
                            "{} threads {threads} {format:?} hd {hd}: token {t} decode differs from batch",
                            k.name
                        );
                        let s = t % slots;
                        rk[s * stride..(s + 1) * stride].copy_from_slice(&d.kb[t]);
                        rv[s * stride..(s + 1) * stride].copy_from_slice(&d.vb[t]);
                    }
                }
            }
        }
    }
}

#[test]
fn bad_shapes_are_refused() {
    let q = vec![0.0; 64];
    let kv = vec![0.0; 64];
    let ring = vec![0u8; 4 * 64 * 4];
    let ok = Attention {
        n_head: 2,
        n_head_kv: 1,
        head_dim: 32,
        scale: 1.0,
        softcap: None,
        window: None,
        pos0: 0,
        n: 1,
        q: &q,
        k_new: &kv,
        v_new: &kv,
        cache: KvCache {
            format: KvFormat::F32,
            k: &ring,
            v: &ring,
            slots: 4,
            slot_stride: 128,
            head_stride: 128,
        },
    };
    let mut out = vec![0.0; 64];
    assert!(attention::attend(&ok, &mut out).is_ok());
    let bad = [
        Attention { n_head_kv: 3, ..ok },
        Attention { head_dim: 0, ..ok },
        Attention {
            head_dim: 1024,
            ..ok
        },
        Attention { n: 3, ..ok },
        Attention {
            window: Some(0),
            ..ok
        },
        Attention {
            softcap: Some(0.0),
            ..ok
        },
        // Position 9 needs 9 cached positions; the ring holds 4.
        Attention { pos0: 9, ..ok },
        Attention {
            cache: KvCache {
                format: KvFormat::Q8_0,
                ..ok.cache
            },
            head_dim: 16,
            ..ok
        },
        Attention {
            pos0: 2,
            cache: KvCache {
                k: &ring[..100],
                ..ok.cache
            },
            ..ok
        },
    ];
    for a in bad {
        let e = attention::attend(&a, &mut out).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
}
