//! Options shared by the subcommands that load a model.

use clap::Args;
use edgegemma::gguf::GgufFile;
use edgegemma::kv::CacheType;
use edgegemma::model::{LanguageModel, ModelError, RunConfig};
use std::path::PathBuf;

/// Context length when `-c` is not given (at most the model's trained length).
pub const DEFAULT_CTX: usize = 4096;

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// GGUF model file
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Threads (default: one per core; on big.LITTLE CPUs only the performance cores)
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Context length in tokens [default: 4096] (0 = the model's trained length); more than
    /// the model's trained length is clamped to it, with a warning
    #[arg(short = 'c', long = "ctx")]
    pub ctx: Option<usize>,
    /// Tokens per batch during prompt processing
    #[arg(short = 'b', long = "batch", default_value_t = 256)]
    pub batch: usize,
    /// KV cache storage: f16, q8_0 or f32
    #[arg(long = "cache-type", default_value = "f16", value_parser = parse_cache_type)]
    pub cache_type: CacheType,
}

fn parse_cache_type(s: &str) -> Result<CacheType, String> {
    CacheType::parse(s).ok_or_else(|| format!("unknown cache type {s:?} (use f16, q8_0 or f32)"))
}

impl ModelArgs {
    /// The requested context length (`-c`, or the default).
    pub fn ctx(&self) -> usize {
        self.ctx.unwrap_or(DEFAULT_CTX)
    }

    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            n_ctx: self.ctx(),
            n_batch: self.batch.max(1),
            cache_type: self.cache_type,
        }
    }
}

/// Loads the model. The loader clamps the context to the model's trained length (a KV cache
/// is never sized beyond what the model was trained for); an explicit `-c` above it is said
/// so on stderr, the default is clamped silently.
pub fn load_model(args: &ModelArgs) -> Result<(Box<dyn LanguageModel>, GgufFile), ModelError> {
    let (model, file) = edgegemma::model::load(&args.model, &args.run_config())?;
    if let Some(c) = args.ctx.filter(|&c| c > model.n_ctx()) {
        eprintln!(
            "edgegemma: warning: {}: -c {c} is more than the model's trained context ({} positions, {}.context_length); using {}",
            args.model.display(),
            model.n_ctx(),
            model.arch(),
            model.n_ctx()
        );
    }
    Ok((model, file))
}

/// Runs a command's `body` inside a rayon pool of `threads` workers (default:
/// [`default_threads`]).
/// The whole command runs on the pool: a matmul issued from a worker forks in well under a
/// microsecond, one issued from outside pays 15-27 µs to enter the pool (measured), which at
/// ~130 matmuls per token would cost 2-3 ms a token.
pub fn with_threads(
    threads: Option<usize>,
    body: impl FnOnce() -> super::CliResult + Send,
) -> super::CliResult {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        if n == 0 {
            return Err("--threads must be at least 1".into());
        }
        builder = builder.num_threads(n);
    } else {
        builder = builder.num_threads(default_threads());
    }
    let pool = builder
        .build()
        .map_err(|e| format!("cannot start the thread pool: {e}"))?;
    // `CliResult` is not `Send`; carry the message across.
    pool.install(|| body().map_err(|e| e.to_string()))
        .map_err(Into::into)
}

/// Where Linux describes the CPUs (`cpuN/cpu_capacity`, `cpuN/cpufreq/cpuinfo_max_freq`).
const SYSFS_CPU: &str = "/sys/devices/system/cpu";

/// The thread count when `-t` is not given: one per CPU the process may run on, except on
/// CPUs with slow efficiency cores, where only the faster cores get a thread (see
/// [`performance_cores`]). A thread on a little core holds every matmul back: work is split
/// evenly, so the slowest thread sets the pace (on a Snapdragon 8 Gen 3 going from 8 to 6
/// threads doubled llama.cpp's decode).
pub fn default_threads() -> usize {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    match performance_cores(std::path::Path::new(SYSFS_CPU)) {
        Some(big) => big.clamp(1, all),
        None => all,
    }
}

/// Cores a slowest cluster is set apart from: cores within this factor of the slowest core's
/// capacity (or maximum frequency) are its cluster; a CPU whose fastest core is within it of
/// the slowest is uniform. 10% keeps Intel's "favoured" cores (a few % more turbo) with their
/// peers, while every big.LITTLE design separates its little cores by far more.
const SAME_CLUSTER: f64 = 1.1;

/// How many cores of the CPUs under `sysfs_cpu` (a `/sys/devices/system/cpu`-shaped tree) are
/// not efficiency cores: all but the slowest cluster, judged by `cpu_capacity` (ARM's
/// scheduler capacity) or else `cpufreq/cpuinfo_max_freq`. `None` when the CPU is uniform or
/// the files are missing or unreadable for any CPU (then every core is used).
///
/// Not just the cores at the maximum: phones have one "prime" core above the big ones (1+3+4
/// on a Snapdragon 8 Gen 1, 1+5+2 on an 8 Gen 3), and one thread would leave the big cores
/// idle.
pub fn performance_cores(sysfs_cpu: &std::path::Path) -> Option<usize> {
    let mut cpus: Vec<std::path::PathBuf> = std::fs::read_dir(sysfs_cpu)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path())
        .collect();
    cpus.sort();
    if cpus.is_empty() {
        return None;
    }
    let read_all = |file: &str| -> Option<Vec<u64>> {
        cpus.iter()
            .map(|c| {
                std::fs::read_to_string(c.join(file))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            })
            .collect()
    };
    let speed = read_all("cpu_capacity").or_else(|| read_all("cpufreq/cpuinfo_max_freq"))?;
    let slowest = *speed.iter().min()? as f64;
    let fastest = *speed.iter().max()? as f64;
    if slowest <= 0.0 || fastest <= slowest * SAME_CLUSTER {
        return None;
    }
    Some(
        speed
            .iter()
            .filter(|&&s| s as f64 > slowest * SAME_CLUSTER)
            .count(),
    )
}

/// Restores `--load-state FILE` into the model.
pub fn load_state(
    model: &mut dyn edgegemma::model::LanguageModel,
    path: &std::path::Path,
) -> Result<(), String> {
    let f =
        std::fs::File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let mut r = std::io::BufReader::new(f);
    model
        .load_state(&mut r)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes the model's state to `path` through a temporary file and a rename, so a failed
/// write never leaves a partial state file behind.
pub fn save_state(
    model: &dyn edgegemma::model::LanguageModel,
    path: &std::path::Path,
) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension("state-tmp");
    let res = (|| -> Result<(), String> {
        let f = std::fs::File::create(&tmp).map_err(|e| format!("cannot create: {e}"))?;
        let mut w = std::io::BufWriter::new(f);
        model.save_state(&mut w).map_err(|e| e.to_string())?;
        let f = w.into_inner().map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename into place: {e}"))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::stderr().flush().ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::performance_cores;
    use std::path::{Path, PathBuf};

    /// A fake `/sys/devices/system/cpu` in a fresh temporary directory, removed on drop.
    struct FakeSysfs(PathBuf);

    impl FakeSysfs {
        fn new(name: &str) -> FakeSysfs {
            let dir =
                std::env::temp_dir().join(format!("edgegemma-sysfs-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            // Entries that are not CPUs must be ignored.
            std::fs::create_dir_all(dir.join("cpufreq")).unwrap();
            std::fs::create_dir_all(dir.join("cpuidle")).unwrap();
            std::fs::write(dir.join("online"), "0-7\n").unwrap();
            FakeSysfs(dir)
        }

        fn cpu(&self, i: usize, file: &str, value: &str) -> &Self {
            let path = self.0.join(format!("cpu{i}")).join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, value).unwrap();
            self
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for FakeSysfs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn snapdragon_like_prime_big_little_uses_prime_and_big() {
        // 4 little, 3 big, 1 prime core (a Snapdragon 8 Gen 1's layout), capacities of that
        // shape, and one frequency for all so that only the capacities can tell them apart.
        let fs = FakeSysfs::new("sd8g1");
        for (i, cap) in [
            (0, 260),
            (1, 260),
            (2, 260),
            (3, 260),
            (4, 871),
            (5, 871),
            (6, 871),
            (7, 1024),
        ] {
            fs.cpu(i, "cpu_capacity", &format!("{cap}\n"));
            fs.cpu(i, "cpufreq/cpuinfo_max_freq", "1800000\n");
        }
        assert_eq!(performance_cores(fs.path()), Some(4));
    }

    #[test]
    fn max_frequency_is_used_without_capacities() {
        // Snapdragon 8 Gen 3 frequencies: 2 × 2.27, 3 × 3.15, 2 × 2.96, 1 × 3.3 GHz → 6.
        let fs = FakeSysfs::new("sd8g3");
        let khz = [
            2_265_600, 2_265_600, 3_148_800, 3_148_800, 3_148_800, 2_956_800, 2_956_800, 3_302_400,
        ];
        for (i, f) in khz.iter().enumerate() {
            fs.cpu(i, "cpufreq/cpuinfo_max_freq", &f.to_string());
        }
        assert_eq!(performance_cores(fs.path()), Some(6));
    }

    #[test]
    fn uniform_cpus_and_missing_files_give_no_answer() {
        // Raspberry Pi 4/5: four equal cores, capacities 1024.
        let pi = FakeSysfs::new("pi");
        for i in 0..4 {
            pi.cpu(i, "cpu_capacity", "1024\n");
            pi.cpu(i, "cpufreq/cpuinfo_max_freq", "2400000\n");
        }
        assert_eq!(performance_cores(pi.path()), None);
        // Favoured Intel cores a few % faster are not a separate cluster.
        let intel = FakeSysfs::new("tbm3");
        for i in 0..8 {
            let f = if i < 2 { "5300000" } else { "5100000" };
            intel.cpu(i, "cpufreq/cpuinfo_max_freq", f);
        }
        assert_eq!(performance_cores(intel.path()), None);
        // A VM: CPU directories without either file.
        let vm = FakeSysfs::new("vm");
        vm.cpu(0, "topology/core_id", "0");
        vm.cpu(1, "topology/core_id", "1");
        assert_eq!(performance_cores(vm.path()), None);
        // One CPU lacks its capacity: fall back to frequencies, which say 2 big of 6.
        let mixed = FakeSysfs::new("mixed");
        for i in 0..6 {
            if i != 3 {
                mixed.cpu(i, "cpu_capacity", "garbage");
            }
            let f = if i >= 4 { "1800000" } else { "1416000" };
            mixed.cpu(i, "cpufreq/cpuinfo_max_freq", f);
        }
        assert_eq!(performance_cores(mixed.path()), Some(2));
        assert_eq!(performance_cores(Path::new("/nonexistent/sysfs")), None);
    }
}
