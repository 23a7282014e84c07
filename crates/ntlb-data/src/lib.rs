//! Datasets on disk: class lists, ImageNet-style folders, few-shot splits.

pub mod classes;
pub mod folder;
pub mod split;
pub mod variants;
