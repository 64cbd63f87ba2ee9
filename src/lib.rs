//! edgegemma: Gemma-family inference from GGUF on edge CPUs.

pub use edgegemma_kernels as kernels;

pub mod chat_template;
pub mod generate;
pub mod gguf;
pub mod kv;
pub mod model;
pub mod npy;
pub mod ops;
pub mod probe;
pub mod prompt_cache;
pub mod sampler;
#[cfg(feature = "server")]
pub mod server;
pub mod tokenizer;
