//! The one error type of the GGUF module: which file, and what is wrong with it.

use std::fmt;
use std::path::{Path, PathBuf};

/// A GGUF read, validation, lookup or write error. `Display` is one line:
/// `<file>: <problem>`.
#[derive(Debug)]
pub struct GgufError {
    path: PathBuf,
    message: String,
    source: Option<std::io::Error>,
}

impl GgufError {
    pub(crate) fn new(path: &Path, message: impl Into<String>) -> Self {
        GgufError {
            path: path.to_path_buf(),
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn io(path: &Path, what: &str, err: std::io::Error) -> Self {
        GgufError {
            path: path.to_path_buf(),
            message: format!("{what}: {err}"),
            source: Some(err),
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The problem, without the file name.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for GgufError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
