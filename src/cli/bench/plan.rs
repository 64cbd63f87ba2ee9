//! What to measure: the tests in llama-bench's order, the settings every run shares, and
//! what each model file is (read from its header before anything runs).

use super::{BenchArgs, BoxErr};
use edgegemma::gguf::{names, GgufFile};
use edgegemma::model::RunConfig;
use std::path::{Path, PathBuf};

/// Largest context a test may need when the file names none (bounds the KV cache allocation).
pub(super) const DEFAULT_CTX_LIMIT: usize = 131_072;

/// One timed test: `n_prompt` tokens in batches, then `n_gen` tokens one at a time, after
/// `n_depth` tokens already in the context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TestSpec {
    pub(super) n_prompt: usize,
    pub(super) n_gen: usize,
    pub(super) n_depth: usize,
}

impl TestSpec {
    /// llama-bench's name: `pp512`, `tg128`, `pp512+tg128`, with ` @ d4096` at depth.
    pub(super) fn name(&self) -> String {
        let mut s = match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, g) => format!("tg{g}"),
            (p, g) => format!("pp{p}+tg{g}"),
        };
        if self.n_depth > 0 {
            s.push_str(&format!(" @ d{}", self.n_depth));
        }
        s
    }

    pub(super) fn tokens(&self) -> usize {
        self.n_prompt + self.n_gen
    }

    /// Positions the test occupies.
    pub(super) fn ctx_needed(&self) -> usize {
        self.n_depth + self.n_prompt + self.n_gen
    }

    /// Pure generation: the case the memory-bandwidth limit describes.
    pub(super) fn is_decode(&self) -> bool {
        self.n_prompt == 0 && self.n_gen > 0
    }
}

/// Tests in llama-bench's order: per depth, the pp tests, the tg tests, the pp+tg pairs.
pub(super) fn plan_tests(
    n_prompt: &[usize],
    n_gen: &[usize],
    pg: &[(usize, usize)],
    depths: &[usize],
) -> Vec<TestSpec> {
    let mut tests = Vec::new();
    for &n_depth in depths {
        let pp = n_prompt.iter().filter(|&&p| p > 0).map(|&p| (p, 0));
        let tg = n_gen.iter().filter(|&&g| g > 0).map(|&g| (0, g));
        for (n_prompt, n_gen) in pp.chain(tg).chain(pg.iter().copied()) {
            tests.push(TestSpec {
                n_prompt,
                n_gen,
                n_depth,
            });
        }
    }
    tests
}

/// What a model file is, read from its header only.
pub(super) struct ModelInfo {
    pub(super) path: PathBuf,
    /// llama.cpp's model description, e.g. "gemma3 270M Q4_K - Medium".
    pub(super) desc: String,
    pub(super) arch: String,
    /// Bytes of all tensors (what llama-bench calls the model size).
    pub(super) size: u64,
    pub(super) n_params: u64,
    /// Weight bytes one decode step streams: every tensor, except that an untied token
    /// embedding is only looked up (one row), not read in full.
    pub(super) bytes_per_token: u64,
    /// Bytes per tensor type, and the token embedding's type (what a file's name hides).
    pub(super) type_bytes: std::collections::BTreeMap<String, u64>,
    pub(super) embd_type: Option<String>,
    /// First token of every run, as llama-bench does when the model adds BOS.
    pub(super) bos: Option<u32>,
    pub(super) ctx_limit: usize,
}

impl ModelInfo {
    pub(super) fn read(path: &Path) -> Result<ModelInfo, BoxErr> {
        let f = GgufFile::open(path)?;
        edgegemma::model::hparams_check::check(&f)?;
        let arch = f.architecture()?.to_string();
        let (size, n_params) = f.tensor_infos().iter().fold((0u64, 0u64), |(s, n), t| {
            (s + t.byte_size(), n + t.n_elements())
        });
        let mut type_bytes = std::collections::BTreeMap::new();
        for t in f.tensor_infos() {
            *type_bytes.entry(t.ggml_type().to_string()).or_insert(0) += t.byte_size();
        }
        let embd_type = f
            .tensor(names::tensor::TOKEN_EMBD)
            .map(|t| t.ggml_type().to_string());
        let mut bytes_per_token = size;
        if f.tensor(names::tensor::OUTPUT).is_some() {
            if let Some(e) = f.tensor(names::tensor::TOKEN_EMBD) {
                bytes_per_token -= e.info().byte_size() - e.info().row_bytes();
            }
        }
        let size_label = f
            .get_str_opt(names::general::SIZE_LABEL)
            .ok()
            .flatten()
            .map(str::to_string)
            .unwrap_or_else(|| params_label(n_params));
        let ftype = f
            .get_u32_opt(names::general::FILE_TYPE)
            .ok()
            .flatten()
            .map_or("unknown type", ftype_name);
        let add_bos = f
            .get_bool_opt(names::tokenizer::ADD_BOS)
            .ok()
            .flatten()
            .unwrap_or(true);
        let bos = f
            .get_u32_opt(names::tokenizer::BOS_ID)
            .ok()
            .flatten()
            .filter(|_| add_bos);
        // RecurrentGemma's state is bounded: its context_length is informational.
        let ctx_limit = if arch == names::Arch::RecurrentGemma.name() {
            usize::MAX
        } else {
            f.get_u32_opt(&names::key(&arch, names::key::CONTEXT_LENGTH))
                .ok()
                .flatten()
                .map_or(DEFAULT_CTX_LIMIT, |c| c as usize)
        };
        Ok(ModelInfo {
            path: path.to_path_buf(),
            desc: format!("{arch} {size_label} {ftype}"),
            arch,
            size,
            n_params,
            bytes_per_token,
            type_bytes,
            embd_type,
            bos,
            ctx_limit,
        })
    }

    pub(super) fn file_name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

/// "270M" / "2.6B", as a size label from an element count.
pub(super) fn params_label(n: u64) -> String {
    if n < 1_000_000_000 {
        format!("{}M", (n as f64 / 1e6).round())
    } else {
        format!("{:.1}B", n as f64 / 1e9)
    }
}

/// llama.cpp's names for `general.file_type` (what its `model` column shows).
pub(super) fn ftype_name(ftype: u32) -> &'static str {
    match ftype {
        0 => "all F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K - Medium",
        11 => "Q3_K - Small",
        12 => "Q3_K - Medium",
        13 => "Q3_K - Large",
        14 => "Q4_K - Small",
        15 => "Q4_K - Medium",
        16 => "Q5_K - Small",
        17 => "Q5_K - Medium",
        18 => "Q6_K",
        32 => "BF16",
        _ => "unknown type",
    }
}

/// Settings every instance shares.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) tests: Vec<TestSpec>,
    pub(super) threads: Vec<usize>,
    pub(super) reps: usize,
    pub(super) run: RunConfig,
    pub(super) warmup: bool,
    pub(super) mem_bw: bool,
    pub(super) seed: u64,
}

impl Plan {
    pub(super) fn from_args(args: &BenchArgs) -> Result<Plan, String> {
        let tests = plan_tests(&args.n_prompt, &args.n_gen, &args.pg, &args.depth);
        if tests.is_empty() {
            return Err("nothing to measure: -p and -n are all 0 and no --pg was given".into());
        }
        if args.reps == 0 {
            return Err("-r/--repetitions must be at least 1".into());
        }
        if args.batch == 0 {
            return Err("-b/--batch must be at least 1".into());
        }
        let threads = if args.threads.is_empty() {
            vec![crate::cli::common::default_threads()]
        } else {
            args.threads.clone()
        };
        if let Some(&t) = threads.iter().find(|&&t| t == 0 || t > 1024) {
            return Err(format!("-t/--threads {t}: must be between 1 and 1024"));
        }
        // Warm-ups fit too: they feed at most what the test itself feeds. The load check's one
        // token is fed into an empty context and then forgotten.
        let n_ctx = tests
            .iter()
            .map(TestSpec::ctx_needed)
            .max()
            .unwrap_or(1)
            .max(1);
        Ok(Plan {
            tests,
            threads,
            reps: args.reps,
            run: RunConfig {
                n_ctx,
                n_batch: args.batch,
                cache_type: args.cache_type,
            },
            warmup: !args.no_warmup,
            mem_bw: args.mem_bw,
            seed: args.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n_prompt: usize, n_gen: usize, n_depth: usize) -> TestSpec {
        TestSpec {
            n_prompt,
            n_gen,
            n_depth,
        }
    }

    #[test]
    fn test_names_follow_llama_bench() {
        assert_eq!(spec(512, 0, 0).name(), "pp512");
        assert_eq!(spec(0, 128, 0).name(), "tg128");
        assert_eq!(spec(512, 128, 0).name(), "pp512+tg128");
        assert_eq!(spec(0, 128, 4096).name(), "tg128 @ d4096");
    }

    #[test]
    fn plan_orders_by_depth_then_pp_tg_pg_and_skips_zeros() {
        let t = plan_tests(&[512, 0], &[128], &[(64, 16)], &[0, 256]);
        assert_eq!(
            t,
            vec![
                spec(512, 0, 0),
                spec(0, 128, 0),
                spec(64, 16, 0),
                spec(512, 0, 256),
                spec(0, 128, 256),
                spec(64, 16, 256),
            ]
        );
        assert!(plan_tests(&[0], &[0], &[], &[0]).is_empty());
    }
}
