//! Directories for test files: a scratch directory under cargo's per-target temp dir
//! (kept after the run, for looking at a failure) and a temporary one removed on drop.

use std::path::{Path, PathBuf};

/// `<root>/<name>`, emptied first. Use [`scratch_dir!`](crate::scratch_dir) for a directory
/// under cargo's `CARGO_TARGET_TMPDIR`.
pub fn scratch_dir_in(root: impl AsRef<Path>, name: &str) -> PathBuf {
    let dir = root.as_ref().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `scratch_dir!("name")`: a directory under cargo's per-target temp dir, emptied first.
/// A macro because `CARGO_TARGET_TMPDIR` is set only while cargo compiles an integration
/// test or bench, so it must be read in the caller's crate.
#[macro_export]
macro_rules! scratch_dir {
    ($name:expr) => {
        $crate::dirs::scratch_dir_in(env!("CARGO_TARGET_TMPDIR"), $name)
    };
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "edgegemma-{prefix}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("cannot create a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the files of a folder (not its subfolders).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
