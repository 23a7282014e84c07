//! Datasets on disk: class lists, ImageNet-style folders, WebDataset shards and parquet files
//! (one image reference type for all: [`image::ImageRef`]), few-shot splits.

pub mod canonical;
pub mod classes;
pub mod coop_pickle;
pub mod fewshot;
pub mod folder;
pub mod image;
pub mod index;
pub mod parquet;
pub mod pyrandom;
pub mod registry;
pub mod source;
pub mod split;
pub mod split_file;
pub mod split_item;
pub mod variants;
pub mod wds;
pub mod write;
pub mod write_split;
