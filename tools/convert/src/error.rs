//! One error type: a single line naming the file (and tensor or key) and the problem.

use std::fmt;
use std::path::Path;

#[derive(Debug)]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }

    /// `path: message`.
    pub fn at(path: &Path, message: impl fmt::Display) -> Error {
        Error(format!("{}: {message}", path.display()))
    }

    /// `path: what: io error`.
    pub fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
        Error(format!("{}: {what}: {e}", path.display()))
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<edgegemma::gguf::GgufError> for Error {
    fn from(e: edgegemma::gguf::GgufError) -> Error {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
