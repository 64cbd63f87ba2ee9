//! Deterministic random numbers without a dependency: the same stream for a seed on every
//! machine, so a failing case can be rerun.

/// xorshift64* (Vigna); the state is the tuple field, so `Rng(seed)` starts a stream (the
/// seed must not be 0).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in (0, 1), 53 bits.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller of two [`Rng::unit`] draws).
    pub fn gauss(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }

    /// `n` normal values with standard deviation `sigma`.
    pub fn gauss_vec(&mut self, n: usize, sigma: f32) -> Vec<f32> {
        (0..n).map(|_| self.gauss() * sigma).collect()
    }

    /// Uniform in `[lo, hi)`, 24 bits (`uniform(-1.0, 1.0)` is exactly `k / 2^23 - 1`).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    /// `n` values of [`Rng::uniform`].
    pub fn uniform_vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i32
    }

    /// `n` bytes, the low byte of each draw.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Deterministic pseudo-random values (xorshift, the sum of four uniforms), roughly
/// N(0, scale²)-shaped: weights for synthetic checkpoints.
pub fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            let mut acc = 0.0f32;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                acc += (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            }
            acc * scale * 1.7
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_minus_one_to_one_is_the_23_bit_form() {
        let (mut a, mut b) = (Rng(99), Rng(99));
        for _ in 0..1000 {
            let k = (b.next_u64() >> 40) as f32;
            assert_eq!(a.uniform(-1.0, 1.0), k / (1u64 << 23) as f32 - 1.0);
        }
    }

    #[test]
    fn streams_repeat_per_seed_and_stay_in_range() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            let u = a.unit();
            assert!(u > 0.0 && u < 1.0);
            b.unit();
            let i = a.int(-3, 5);
            assert!((-3..=5).contains(&i));
            b.int(-3, 5);
        }
        assert_eq!(random(5, 1, 1.0), random(5, 1, 1.0));
        assert_ne!(random(5, 1, 1.0), random(5, 2, 1.0));
    }
}
