//! What the machine is and what it can do, measured the same way by `edgegemma bench` and
//! by the criterion benches (`benches/`): the CPU, the process's peak RSS, this thread's CPU
//! time, and the memory-read bandwidth a decode step is bounded by.

use rayon::prelude::*;
use std::time::Instant;

/// The CPU: model name, the SIMD features it has, and how many threads can run at once.
#[derive(Clone, Debug)]
pub struct CpuInfo {
    /// `/proc/cpuinfo`'s model name (or the closest the platform offers).
    pub model: String,
    /// The features of [`crate::kernels::dispatch::cpu_features`] this CPU has.
    pub features: Vec<&'static str>,
    pub n_cpus: usize,
}

impl CpuInfo {
    pub fn detect() -> CpuInfo {
        use crate::kernels::dispatch;
        CpuInfo {
            model: dispatch::cpu_model(),
            features: dispatch::cpu_features()
                .into_iter()
                .filter_map(|(f, has)| has.then_some(f))
                .collect(),
            n_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// `CPU: <model> (<n> threads available) | features: <f> <f> …` (`-` for none): the
    /// machine line `edgegemma bench` prints under its table and the benches print first.
    pub fn summary(&self) -> String {
        format!(
            "CPU: {} ({} threads available) | features: {}",
            self.model,
            self.n_cpus,
            if self.features.is_empty() {
                "-".to_string()
            } else {
                self.features.join(" ")
            }
        )
    }
}

/// The kernel's peak-RSS high-water mark of this process (`VmHWM`), in bytes; `None` where
/// `/proc/self/status` does not exist (not Linux).
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// The `VmHWM` line of a `/proc/<pid>/status` text, in bytes.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line["VmHWM:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0), so the next model's peak is its own.
/// Returns whether the kernel accepted it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time this thread has run, in ns (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`); `None`
/// off 64-bit Linux. Times one-thread work without counting the time the machine gave to
/// other processes.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn thread_cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec (64-bit time_t and long on the 64-bit Linux targets).
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    (rc == 0).then(|| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

/// CPU time this thread has run: not available here.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn thread_cpu_ns() -> Option<u64> {
    None
}

/// Timed passes of [`read_pass_secs_per_byte`] after its warm-up pass.
pub const READ_BW_REPS: usize = 8;

/// Smallest buffer the bandwidth is measured over, so the last-level cache cannot hold it.
pub const READ_BW_MIN_BYTES: u64 = 32 << 20;

/// Seconds per byte of [`READ_BW_REPS`] passes (after one warm-up pass) that sum a buffer of
/// about `bytes` bytes (at least [`READ_BW_MIN_BYTES`]), split into one contiguous share
/// per thread of the current rayon pool; one thread sums it on the calling thread without
/// rayon. `time_pass` runs one pass and returns its seconds (the wall clock in
/// [`measure_read_bw`]; the benches may count thread CPU time instead).
pub fn read_pass_secs_per_byte(
    bytes: u64,
    mut time_pass: impl FnMut(&dyn Fn()) -> f64,
) -> Vec<f64> {
    let threads = rayon::current_num_threads().max(1);
    let words = (bytes.max(READ_BW_MIN_BYTES) / 8) as usize;
    // In 2 MiB pages where the OS has them, as the weights are once packed at load
    // (`model::weights::PackArena`): over 4 KiB pages the same loop reads ~30% slower
    // (1 thread, 11.3 vs 15.5 GB/s), so a probe in small pages would understate the
    // machine's limit.
    let mut pages = match memmap2::MmapMut::map_anon(words * 8) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    #[cfg(target_os = "linux")]
    let _ = pages.advise(memmap2::Advice::HugePage);
    // SAFETY: the mapping is page-aligned and `words` u64s long.
    let buf: &mut [u64] =
        unsafe { std::slice::from_raw_parts_mut(pages.as_mut_ptr().cast(), words) };
    // Written, so every page is really backed (an untouched mapping reads one shared page).
    buf.iter_mut().zip(0u64..).for_each(|(w, i)| *w = i);
    let buf: &[u64] = buf;
    let chunk = words.div_ceil(threads);
    let pass = || {
        let sum: u64 = if threads == 1 {
            sum_words(buf)
        } else {
            buf.par_chunks(chunk)
                .map(sum_words)
                .reduce(|| 0, u64::wrapping_add)
        };
        std::hint::black_box(sum);
    };
    let mut secs = Vec::with_capacity(READ_BW_REPS);
    for rep in 0..=READ_BW_REPS {
        let s = time_pass(&pass);
        // The first pass is a warm-up.
        if rep > 0 {
            secs.push(s / (words * 8) as f64);
        }
    }
    secs
}

/// Best read bandwidth (bytes/s) over a buffer of about `bytes` bytes with the current
/// pool's threads, by the wall clock ([`read_pass_secs_per_byte`]).
pub fn measure_read_bw(bytes: u64) -> f64 {
    let secs = read_pass_secs_per_byte(bytes, |pass| {
        let t = Instant::now();
        pass();
        t.elapsed().as_secs_f64()
    });
    secs.iter()
        .filter(|&&s| s > 0.0)
        .fold(0.0f64, |best, &s| best.max(1.0 / s))
}

/// Wrapping sum of `w` with the widest loads the CPU has, so the sum never limits the
/// bandwidth it is used to measure.
pub fn sum_words(w: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected on this CPU.
        return unsafe { sum_words_avx2(w) };
    }
    sum_words_portable(w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_words_avx2(w: &[u64]) -> u64 {
    sum_words_portable(w)
}

/// Sum with eight independent accumulators, so the loop is bound by loads, not by an add chain.
#[inline(always)]
fn sum_words_portable(w: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut it = w.chunks_exact(8);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(x);
        }
    }
    let tail = it.remainder().iter().fold(0u64, |a, &x| a.wrapping_add(x));
    acc.iter().fold(tail, |a, &x| a.wrapping_add(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_parsed_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t   1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1234 * 1024));
        assert_eq!(parse_vm_hwm("VmRSS: 5 kB\n"), None);
    }

    #[test]
    fn sum_words_adds_everything() {
        let v: Vec<u64> = (1..=1003).collect();
        assert_eq!(sum_words_portable(&v), 1003 * 1004 / 2);
        assert_eq!(sum_words(&v), 1003 * 1004 / 2);
    }
}
