//! Attention per call at model shapes: the kernels crate's attention (`kernels::attention`,
//! the process's best path) against the scalar closure it replaced (kept here, verbatim in
//! substance, as the baseline: online softmax with libm `exp` per score, every key converted
//! from f16 element by element, decode split over query heads so every thread re-reads the
//! keys). One layer, f16 cache of random keys, best of N wall-clock runs, old and new
//! alternating.
//!
//!     cargo bench --bench attention [-- --threads 1,2 --depths 100,2048,8000 --reps 5]
//!
//! Shapes (n_head, n_head_kv, head_dim, window): Gemma 3 270M global layer (4, 1, 256),
//! Gemma-2B (8, 1, 256), RecurrentGemma-2B (10, 1, 256, ring of 2048). `pp512` is a 512-token
//! batch from position 0 on the 270M shape (a global layer).

use edgegemma::kernels::attention::{self, Attention, KvCache, KvFormat};
use rayon::prelude::*;
use std::time::Instant;

struct Shape {
    name: &'static str,
    n_head: usize,
    n_head_kv: usize,
    hd: usize,
    window: Option<usize>,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "gemma3-270m",
        n_head: 4,
        n_head_kv: 1,
        hd: 256,
        window: None,
    },
    Shape {
        name: "gemma-2b",
        n_head: 8,
        n_head_kv: 1,
        hd: 256,
        window: None,
    },
    Shape {
        name: "recurrentgemma-2b",
        n_head: 10,
        n_head_kv: 1,
        hd: 256,
        window: Some(2049),
    },
];

fn rand_vec(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The replaced implementation (src/model/shared.rs before the kernel), reading an f16 ring.
#[allow(clippy::too_many_arguments)]
fn old_attend(
    s: &Shape,
    ring: &[u16],
    ring_v: &[u16],
    slots: usize,
    pos0: usize,
    n: usize,
    q: &[f32],
    k_new: &[f32],
    v_new: &[f32],
    out: &mut [f32],
) {
    let hd = s.hd;
    let group = s.n_head / s.n_head_kv;
    let q_dim = s.n_head * hd;
    let kv_dim = s.n_head_kv * hd;
    let scale = 1.0 / (hd as f32).sqrt();
    let threads = rayon::current_num_threads();
    let base = n * s.n_head_kv;
    let splits = if base >= threads {
        1
    } else {
        let want = threads.div_ceil(base);
        (want..=group)
            .find(|&x| group.is_multiple_of(x))
            .unwrap_or(group)
    };
    let heads = group / splits;
    let task = |(i, out_g): (usize, &mut [f32])| {
        let (t, g, sp) = (
            i / (s.n_head_kv * splits),
            (i / splits) % s.n_head_kv,
            i % splits,
        );
        let pos = pos0 + t;
        let first = match s.window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        };
        let q0 = t * q_dim + (g * group + sp * heads) * hd;
        let q_g = &q[q0..q0 + heads * hd];
        let mut kbuf = [0.0f32; 512];
        let mut vbuf = [0.0f32; 512];
        let mut max = [f32::NEG_INFINITY; 64];
        let mut sum = [0.0f32; 64];
        out_g.iter_mut().for_each(|v| *v = 0.0);
        for j in first..=pos {
            let (k, v): (&[f32], &[f32]) = if j >= pos0 {
                let o = (j - pos0) * kv_dim + g * hd;
                (&k_new[o..o + hd], &v_new[o..o + hd])
            } else {
                let o = ((j % slots) * s.n_head_kv + g) * hd;
                for d in 0..hd {
                    kbuf[d] = half::f16::from_bits(ring[o + d]).to_f32();
                    vbuf[d] = half::f16::from_bits(ring_v[o + d]).to_f32();
                }
                (&kbuf[..hd], &vbuf[..hd])
            };
            for h in 0..heads {
                let qh = &q_g[h * hd..(h + 1) * hd];
                let score = qh.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                let acc = &mut out_g[h * hd..(h + 1) * hd];
                if score > max[h] {
                    let r = (max[h] - score).exp();
                    sum[h] *= r;
                    acc.iter_mut().for_each(|a| *a *= r);
                    max[h] = score;
                }
                let w = (score - max[h]).exp();
                sum[h] += w;
                for (a, &vv) in acc.iter_mut().zip(v) {
                    *a += w * vv;
                }
            }
        }
        for h in 0..heads {
            let inv = 1.0 / sum[h];
            out_g[h * hd..(h + 1) * hd]
                .iter_mut()
                .for_each(|a| *a *= inv);
        }
    };
    if base * splits > 1 && threads > 1 {
        out[..n * q_dim]
            .par_chunks_mut(heads * hd)
            .enumerate()
            .for_each(task);
    } else {
        out[..n * q_dim]
            .chunks_mut(heads * hd)
            .enumerate()
            .for_each(task);
    }
}

fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn list(s: &str) -> Vec<usize> {
    s.split(',').map(|x| x.trim().parse().unwrap()).collect()
}

/// Times one call of each implementation at `pos0`, `n` tokens; returns (old, new) seconds.
fn measure(s: &Shape, pos0: usize, n: usize, reps: usize) -> (f64, f64) {
    let mut seed = 0x1234_5678u64;
    let hd = s.hd;
    let slots = match s.window {
        Some(w) => w - 1,
        None => pos0 + n,
    }
    .max(1);
    let kv_dim = s.n_head_kv * hd;
    let bits = |x: Vec<f32>| -> Vec<u16> {
        x.iter()
            .map(|&v| half::f16::from_f32(v).to_bits())
            .collect()
    };
    let ring_k = bits(rand_vec(slots * kv_dim, &mut seed));
    let ring_v = bits(rand_vec(slots * kv_dim, &mut seed));
    let q = rand_vec(n * s.n_head * hd, &mut seed);
    let k_new = rand_vec(n * kv_dim, &mut seed);
    let v_new = rand_vec(n * kv_dim, &mut seed);
    let mut out = vec![0.0; n * s.n_head * hd];
    let a = Attention {
        n_head: s.n_head,
        n_head_kv: s.n_head_kv,
        head_dim: hd,
        scale: 1.0 / (hd as f32).sqrt(),
        softcap: None,
        window: s.window,
        pos0,
        n,
        q: &q,
        k_new: &k_new,
        v_new: &v_new,
        cache: KvCache {
            format: KvFormat::F16,
            k: bytemuck::cast_slice(&ring_k),
            v: bytemuck::cast_slice(&ring_v),
            slots,
            slot_stride: kv_dim * 2,
            head_stride: hd * 2,
        },
    };
    let (mut old, mut new) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..2 {
        old = old.min(best_of(reps, || {
            old_attend(
                s, &ring_k, &ring_v, slots, pos0, n, &q, &k_new, &v_new, &mut out,
            )
        }));
        new = new.min(best_of(reps, || attention::attend(&a, &mut out).unwrap()));
    }
    (old, new)
}

fn main() {
    let threads = list(&arg("--threads", "1,2"));
    let depths = list(&arg("--depths", "100,2048,8000"));
    let reps: usize = arg("--reps", "5").parse().unwrap();
    println!(
        "attention, one layer, f16 cache, path {}",
        edgegemma::kernels::kernels().name
    );
    println!("{}", edgegemma::probe::CpuInfo::detect().summary());
    println!("| shape | test | threads | old ms | new ms | old/new |");
    println!("|---|---|---|---|---|---|");
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap();
        pool.install(|| {
            for s in &SHAPES {
                for &d in &depths {
                    let (o, n) = measure(s, d, 1, reps);
                    println!(
                        "| {} | tg @ d{d} | {t} | {:.3} | {:.3} | {:.1} |",
                        s.name,
                        o * 1e3,
                        n * 1e3,
                        o / n
                    );
                }
            }
            let (o, n) = measure(&SHAPES[0], 0, 512, reps.min(3));
            println!(
                "| {} | pp512 | {t} | {:.3} | {:.3} | {:.1} |",
                SHAPES[0].name,
                o * 1e3,
                n * 1e3,
                o / n
            );
        });
    }
}
