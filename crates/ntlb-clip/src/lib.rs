//! OpenAI CLIP in burn 0.22, exact to the reference PyTorch code in float32.
//!
//! Data flows files -> [`weights::WeightMap`] (canonical names) -> [`model::Clip`];
//! text -> [`tokenizer::ClipTokenizer`] -> ids; image files -> [`preprocess`] -> tensors.

pub mod architecture;
pub mod bpe_vocab;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod files;
pub mod hf_cache;
pub mod hub;
pub mod key_names;
pub mod load_error;
pub mod model;
pub mod names;
pub mod preprocess;
pub mod tensor_file;
pub mod text_clean;
pub mod tokenizer;
pub mod torchscript;
pub mod weights;

pub use config::ClipConfig;
pub use model::{l2_normalize, Clip, LoadOptions};
