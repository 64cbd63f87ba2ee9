//! Writing the output crash-safely: the GGUF is written to a temporary file in the
//! destination's folder, fsynced, moved into place in one step and the folder fsynced, so the
//! destination is always either absent, the previous complete file or the new complete file.
//! An existing destination is only replaced with `--force`.
//!
//! On Linux the temporary is an unnamed `O_TMPFILE` inode: it has no directory entry until
//! `linkat` gives it the destination's name, so even SIGKILL, a power cut or an ENOSPC
//! leaves nothing behind (the kernel frees the inode with the last descriptor). Where the
//! filesystem refuses `O_TMPFILE` (EOPNOTSUPP: some network and FUSE filesystems; EISDIR
//! before Linux 3.11; or `/proc` unmounted, which `linkat` needs) and on other systems, the
//! fallback is a named `.<name>.<pid>.tmp` beside the destination, removed on every error
//! and on Ctrl-C / SIGTERM; only SIGKILL can leave it behind. On this machine (Linux 6.18,
//! ext4 and tmpfs) `O_TMPFILE` works; `tests/crash_safe.rs` kills the converter at several
//! points on both paths (`EDGEGEMMA_CONVERT_NAMED_TEMP=1` forces the fallback).
//!
//! Replacing (`--force`) cannot link an unnamed file over an existing name, so the inode is
//! first linked as `.<name>.<pid>.tmp` and renamed over the destination: a kill between
//! those two system calls leaves that complete temporary, never a partial destination.
//!
//! Ctrl-C / SIGTERM stop the conversion at the next chunk and remove a named temporary (a
//! second signal removes it and exits at once).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CURRENT_TEMP: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Environment variable: use the named temporary even where `O_TMPFILE` works (tests).
pub const NAMED_TEMP_ENV: &str = "EDGEGEMMA_CONVERT_NAMED_TEMP";
/// Environment variable (tests): once this many bytes of the output are written, print
/// [`PAUSE_MESSAGE`] and the count to stderr and wait until killed, so a test can SIGKILL the
/// converter at an exact point of the file.
pub const PAUSE_ENV: &str = "EDGEGEMMA_CONVERT_TEST_PAUSE_AT";
pub const PAUSE_MESSAGE: &str = "edgegemma-convert: test pause after";

/// Installs the Ctrl-C / SIGTERM handler (once per process).
pub fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            if let Ok(guard) = CURRENT_TEMP.lock() {
                if let Some(p) = guard.as_ref() {
                    let _ = std::fs::remove_file(p);
                }
            }
            eprintln!("\nedgegemma-convert: interrupted");
            std::process::exit(130);
        }
    });
}

/// A file-size limit (`ulimit -f`) then makes writes fail with EFBIG, reported as one
/// error line with the temporary removed, instead of SIGXFSZ killing the process.
pub fn ignore_file_size_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// True once Ctrl-C or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Refuses an existing destination unless `force`, before any work is done.
pub fn check_destination(dest: &Path, force: bool) -> Result<()> {
    if dest.is_dir() {
        return Err(Error::at(dest, "is a directory"));
    }
    if dest.exists() && !force {
        return Err(Error::at(
            dest,
            "already exists (pass --force to replace it)",
        ));
    }
    let dir = parent_dir(dest);
    if !dir.is_dir() {
        return Err(Error::at(dest, "the output folder does not exist"));
    }
    Ok(())
}

fn parent_dir(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The temporary file's kind.
enum Temp {
    /// `O_TMPFILE`: no name until committed.
    Unnamed,
    /// `.<name>.<pid>.tmp` beside the destination.
    Named(PathBuf),
}

/// The output file being written: counts bytes (for the size and the test pause) and
/// passes writes to the temporary.
pub struct OutputFile {
    file: File,
    written: u64,
    pause_at: Option<u64>,
}

impl OutputFile {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Waits until killed, or interrupted (then the write fails).
    fn pause(&self) -> std::io::Error {
        eprintln!("{PAUSE_MESSAGE} {} bytes", self.written);
        while !interrupted() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::io::Error::other("interrupted")
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Stop exactly at the pause point: write only up to it, then wait.
        let limit = match self.pause_at {
            Some(at) if at > self.written => (at - self.written).min(buf.len() as u64) as usize,
            Some(_) => return Err(self.pause()),
            None => buf.len(),
        };
        let n = self.file.write(&buf[..limit])?;
        self.written += n as u64;
        if self.pause_at == Some(self.written) {
            self.file.flush()?;
            return Err(self.pause());
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The temporary file of an output in progress; removed on drop unless committed.
pub struct PendingOutput {
    temp: Temp,
    dest: PathBuf,
    force: bool,
    committed: bool,
}

impl PendingOutput {
    /// Creates the temporary in the destination's folder.
    pub fn create(dest: &Path, force: bool) -> Result<(PendingOutput, OutputFile)> {
        check_destination(dest, force)?;
        let dir = parent_dir(dest);
        let pause_at = std::env::var(PAUSE_ENV).ok().and_then(|v| v.parse().ok());
        let named = std::env::var_os(NAMED_TEMP_ENV).is_some_and(|v| v != "0");
        let unnamed = if named { None } else { unnamed_temp(&dir) };
        let (temp, file) = match unnamed {
            Some(file) => (Temp::Unnamed, file),
            None => {
                let tmp = named_temp_path(dest)?;
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .map_err(|e| Error::io(&tmp, "cannot create the temporary output", e))?;
                *CURRENT_TEMP.lock().unwrap_or_else(|e| e.into_inner()) = Some(tmp.clone());
                (Temp::Named(tmp), file)
            }
        };
        Ok((
            PendingOutput {
                temp,
                dest: dest.to_path_buf(),
                force,
                committed: false,
            },
            OutputFile {
                file,
                written: 0,
                pause_at,
            },
        ))
    }

    /// Whether the temporary is an unnamed `O_TMPFILE` (nothing to clean up, ever).
    pub fn is_unnamed(&self) -> bool {
        matches!(self.temp, Temp::Unnamed)
    }

    /// Flushes `out` to disk, moves it to the destination and makes that durable.
    pub fn commit(mut self, out: OutputFile) -> Result<()> {
        let OutputFile { mut file, .. } = out;
        file.flush()
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&self.dest, "fsync of the new output failed", e))?;
        match &self.temp {
            Temp::Unnamed => self.commit_unnamed(&file)?,
            Temp::Named(tmp) => {
                drop(file);
                let tmp = tmp.clone();
                self.commit_named(&tmp)?;
            }
        }
        self.committed = true;
        // The new directory entry is only durable once the folder is synced.
        #[cfg(unix)]
        File::open(parent_dir(&self.dest))
            .and_then(|d| d.sync_all())
            .map_err(|e| {
                Error::io(
                    &self.dest,
                    "written, but syncing its folder failed (the file may not survive a power cut)",
                    e,
                )
            })?;
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn commit_unnamed(&mut self, file: &File) -> Result<()> {
        if !self.force {
            // linkat fails with EEXIST on an existing name: no clobbering even if the
            // destination appeared while converting.
            return link_fd(file, &self.dest).map_err(|e| self.link_error(e));
        }
        let tmp = named_temp_path(&self.dest)?;
        link_fd(file, &tmp).map_err(|e| Error::io(&tmp, "cannot name the temporary output", e))?;
        self.temp = Temp::Named(tmp.clone());
        *CURRENT_TEMP.lock().unwrap_or_else(|e| e.into_inner()) = Some(tmp.clone());
        std::fs::rename(&tmp, &self.dest)
            .map_err(|e| Error::io(&self.dest, "cannot move the output into place", e))
    }

    #[cfg(not(target_os = "linux"))]
    fn commit_unnamed(&mut self, _file: &File) -> Result<()> {
        unreachable!("unnamed temporaries are only made on Linux")
    }

    fn commit_named(&self, tmp: &Path) -> Result<()> {
        if self.force {
            return std::fs::rename(tmp, &self.dest)
                .map_err(|e| Error::io(&self.dest, "cannot move the output into place", e));
        }
        // No-clobber even if the destination appeared meanwhile: a hard link fails on an
        // existing name. Filesystems without hard links get check-then-rename.
        match std::fs::hard_link(tmp, &self.dest) {
            Ok(()) => {
                let _ = std::fs::remove_file(tmp);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(self.link_error(e)),
            Err(_) => {
                if self.dest.exists() {
                    return Err(self.link_error(std::io::ErrorKind::AlreadyExists.into()));
                }
                std::fs::rename(tmp, &self.dest)
                    .map_err(|e| Error::io(&self.dest, "cannot move the output into place", e))
            }
        }
    }

    fn link_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::at(
                &self.dest,
                "appeared while converting; not replaced (pass --force)",
            )
        } else {
            Error::io(&self.dest, "cannot move the output into place", e)
        }
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        if let Temp::Named(tmp) = &self.temp {
            if !self.committed || tmp.exists() {
                let _ = std::fs::remove_file(tmp);
            }
        }
        if let Ok(mut g) = CURRENT_TEMP.lock() {
            *g = None;
        }
    }
}

fn named_temp_path(dest: &Path) -> Result<PathBuf> {
    let name = dest
        .file_name()
        .ok_or_else(|| Error::at(dest, "not a file name"))?;
    Ok(parent_dir(dest).join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// An unnamed file in `dir`, or `None` where the filesystem (or a missing `/proc`, which
/// [`link_fd`] needs) rules it out; the caller then uses a named temporary.
#[cfg(target_os = "linux")]
fn unnamed_temp(dir: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    OpenOptions::new()
        .write(true)
        .mode(0o666)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn unnamed_temp(_dir: &Path) -> Option<File> {
    None
}

/// Gives the unnamed `file` the name `dest` (fails with EEXIST if `dest` exists).
#[cfg(target_os = "linux")]
fn link_fd(file: &File, dest: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    // linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; following the /proc
    // descriptor link works for any user.
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(std::io::Error::other)?;
    let to = CString::new(dest.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: both paths are NUL-terminated C strings that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
