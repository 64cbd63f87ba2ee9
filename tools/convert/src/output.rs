//! Writing the output safely: a temporary file next to the destination, fsynced and then
//! renamed over it, so an interrupted or failed run never leaves a partial file at the
//! destination; an existing destination is only replaced with `--force`. Ctrl-C / SIGTERM
//! stop the conversion at the next chunk and remove the temporary file (a second signal
//! removes it and exits at once).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CURRENT_TEMP: Mutex<Option<PathBuf>> = Mutex::new(None);

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

/// The temporary file of an output in progress; removed on drop unless committed.
pub struct PendingOutput {
    tmp: PathBuf,
    dest: PathBuf,
    force: bool,
    committed: bool,
}

impl PendingOutput {
    /// Creates `.<name>.<pid>.tmp` beside `dest`.
    pub fn create(dest: &Path, force: bool) -> Result<(PendingOutput, File)> {
        check_destination(dest, force)?;
        let name = dest
            .file_name()
            .ok_or_else(|| Error::at(dest, "not a file name"))?;
        let tmp = parent_dir(dest).join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, "cannot create the temporary output", e))?;
        *CURRENT_TEMP.lock().unwrap_or_else(|e| e.into_inner()) = Some(tmp.clone());
        Ok((
            PendingOutput {
                tmp,
                dest: dest.to_path_buf(),
                force,
                committed: false,
            },
            file,
        ))
    }

    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Flushes `file` to disk and moves it to the destination.
    pub fn commit(mut self, file: File) -> Result<()> {
        file.sync_all()
            .map_err(|e| Error::io(&self.tmp, "fsync failed", e))?;
        drop(file);
        if self.force {
            std::fs::rename(&self.tmp, &self.dest)
                .map_err(|e| Error::io(&self.dest, "cannot move the output into place", e))?;
        } else {
            // No-clobber even if the destination appeared meanwhile: a hard link fails on
            // an existing name. Filesystems without hard links get check-then-rename.
            match std::fs::hard_link(&self.tmp, &self.dest) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&self.tmp);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::at(
                        &self.dest,
                        "appeared while converting; not replaced (pass --force)",
                    ));
                }
                Err(_) => {
                    if self.dest.exists() {
                        return Err(Error::at(
                            &self.dest,
                            "appeared while converting; not replaced (pass --force)",
                        ));
                    }
                    std::fs::rename(&self.tmp, &self.dest).map_err(|e| {
                        Error::io(&self.dest, "cannot move the output into place", e)
                    })?;
                }
            }
        }
        self.committed = true;
        // Make the rename durable too.
        #[cfg(unix)]
        if let Ok(d) = File::open(parent_dir(&self.dest)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
        if let Ok(mut g) = CURRENT_TEMP.lock() {
            *g = None;
        }
    }
}
