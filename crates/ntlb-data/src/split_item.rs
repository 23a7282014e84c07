//! One entry of a dataset's split list, as the reference's split files state it.

use serde::{Deserialize, Serialize};

/// An image of a split list (`train`, `val` or `test`) in the list's own order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SplitItem {
    /// The image path exactly as the split file lists it (relative to the dataset's image
    /// folder for most sets); joined onto the local root only when an image is read.
    pub path: String,
    pub label: usize,
    /// The class name as the split file states it (underscores kept: they become spaces only
    /// when a prompt is built, as the reference does).
    pub classname: String,
}
