//! Token sampling: repetition penalty → top-k → top-p → min-p → temperature → draw, in
//! llama.cpp's order; greedy when the temperature is ≤ 0. Buffers are reused across tokens.

/// Sampling settings (llama.cpp's defaults).
#[derive(Clone, Debug)]
pub struct SamplerConfig {
    pub temp: f32,
    /// 0 disables.
    pub top_k: usize,
    /// 1.0 disables.
    pub top_p: f32,
    /// 0.0 disables.
    pub min_p: f32,
    /// 1.0 disables.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0x5eed,
        }
    }
}

/// SplitMix64: small, fast, and reproducible from a seed on every platform.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    /// (logit or probability, token id), reused every call.
    cand: Vec<(f32, u32)>,
    /// The most recent tokens, oldest first.
    recent: Vec<u32>,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Sampler {
        let rng = Rng(cfg.seed);
        Sampler {
            recent: Vec::with_capacity(cfg.repeat_last_n),
            cfg,
            rng,
            cand: Vec::new(),
        }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Records a token that is now part of the context (prompt or generated).
    pub fn accept(&mut self, token: u32) {
        if self.cfg.repeat_last_n == 0 {
            return;
        }
        if self.recent.len() == self.cfg.repeat_last_n {
            self.recent.remove(0);
        }
        self.recent.push(token);
    }

    /// Forgets the recorded context.
    pub fn reset(&mut self) {
        self.recent.clear();
    }

    /// Picks the next token from `logits`, considering only ids `< n_valid` (the tokenizer's
    /// size: embedding rows beyond it are never sampled).
    pub fn sample(&mut self, logits: &[f32], n_valid: usize) -> u32 {
        let n = n_valid.min(logits.len());
        let penalty = self.cfg.repeat_penalty;
        let penalized = |id: usize, l: f32, recent: &[u32]| -> f32 {
            if penalty != 1.0 && recent.contains(&(id as u32)) {
                if l > 0.0 {
                    l / penalty
                } else {
                    l * penalty
                }
            } else {
                l
            }
        };
        if self.cfg.temp <= 0.0 {
            let mut best = (f32::NEG_INFINITY, 0u32);
            for (id, &l) in logits[..n].iter().enumerate() {
                let l = penalized(id, l, &self.recent);
                if l > best.0 {
                    best = (l, id as u32);
                }
            }
            return best.1;
        }
        self.cand.clear();
        self.cand.extend(
            logits[..n]
                .iter()
                .enumerate()
                .map(|(id, &l)| (penalized(id, l, &self.recent), id as u32)),
        );
        let desc = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if self.cfg.top_k > 0 && self.cfg.top_k < self.cand.len() {
            self.cand.select_nth_unstable_by(self.cfg.top_k - 1, desc);
            self.cand.truncate(self.cfg.top_k);
        }
        self.cand.sort_unstable_by(desc);
        // Probabilities at temperature 1 for top-p / min-p (as llama.cpp's chain computes them).
        softmax_pairs(&mut self.cand, 1.0);
        if self.cfg.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = self.cand.len();
            for (i, c) in self.cand.iter().enumerate() {
                cum += c.0;
                if cum >= self.cfg.top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep.max(1));
        }
        if self.cfg.min_p > 0.0 {
            let floor = self.cand[0].0 * self.cfg.min_p;
            let keep = self.cand.iter().take_while(|c| c.0 >= floor).count();
            self.cand.truncate(keep.max(1));
        }
        // Temperature on the survivors: p^(1/T), renormalized.
        let inv_t = 1.0 / self.cfg.temp;
        for c in self.cand.iter_mut() {
            c.0 = c.0.max(f32::MIN_POSITIVE).ln() * inv_t;
        }
        softmax_pairs(&mut self.cand, 1.0);
        let r = self.rng.next_f32();
        let mut cum = 0.0;
        for c in &self.cand {
            cum += c.0;
            if r < cum {
                return c.1;
            }
        }
        self.cand.last().map(|c| c.1).unwrap_or(0)
    }
}

fn softmax_pairs(c: &mut [(f32, u32)], temp: f32) {
    let max = c.iter().map(|x| x.0).fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in c.iter_mut() {
        x.0 = ((x.0 - max) / temp).exp();
        sum += x.0;
    }
    for x in c.iter_mut() {
        x.0 /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![0.1, 2.0, 1.9, -1.0, 0.5, 1.0]
    }

    #[test]
    fn greedy_takes_the_argmax_within_the_valid_range() {
        let mut s = Sampler::new(SamplerConfig {
            temp: 0.0,
            ..Default::default()
        });
        assert_eq!(s.sample(&logits(), 6), 1);
        assert_eq!(s.sample(&[0.0, 1.0, 9.0], 2), 1);
    }

    #[test]
    fn repeat_penalty_demotes_recent_tokens() {
        let mut s = Sampler::new(SamplerConfig {
            temp: 0.0,
            repeat_penalty: 2.0,
            ..Default::default()
        });
        s.accept(1);
        assert_eq!(s.sample(&logits(), 6), 2);
    }

    #[test]
    fn same_seed_same_draws_and_top_k_one_is_greedy() {
        let cfg = SamplerConfig {
            temp: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 42,
            ..Default::default()
        };
        let mut a = Sampler::new(cfg.clone());
        let mut b = Sampler::new(cfg);
        let da: Vec<u32> = (0..50).map(|_| a.sample(&logits(), 6)).collect();
        let db: Vec<u32> = (0..50).map(|_| b.sample(&logits(), 6)).collect();
        assert_eq!(da, db);
        // A hot temperature over 6 tokens must visit more than one.
        assert!(da.iter().any(|&t| t != da[0]));
        let mut k1 = Sampler::new(SamplerConfig {
            temp: 5.0,
            top_k: 1,
            ..Default::default()
        });
        assert!((0..20).all(|_| k1.sample(&logits(), 6) == 1));
    }

    #[test]
    fn min_p_cuts_unlikely_tokens() {
        let mut s = Sampler::new(SamplerConfig {
            temp: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.5,
            seed: 7,
            ..Default::default()
        });
        // Only ids 1 and 2 are within half the top probability.
        for _ in 0..100 {
            let t = s.sample(&logits(), 6);
            assert!(t == 1 || t == 2, "sampled {t}");
        }
    }
}
