//! The embedded default world: synthetic classes in ImageNet's layouts, a BPE tokenizer and a
//! tiny CLIP trained on them by ntlb itself, so that the demo runs every real code path on CPU.

pub mod bpe;
pub mod pretrain;

pub mod render;
pub mod world;
