//! The index of a container set (WebDataset shards, parquet files): every sample's place and
//! label as the format readers produce them, cached beside the feature cache. A leaf: the
//! format readers and the source that dispatches to them share these types.

use serde::{Deserialize, Serialize};

/// How a dataset's images are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Folder,
    Wds,
    Parquet,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Folder => "folder",
            Format::Wds => "wds",
            Format::Parquet => "parquet",
        }
    }
}

/// A sample's label as stored: a class index, or a class id (a wnid) to look up in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Label {
    Index(i64),
    Name(String),
}

/// One sample of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Which file of the index.
    pub file: u32,
    /// wds: the offset of the image member's data; parquet: the row.
    pub at: u64,
    /// The image's size in bytes: a member's, or the bytes of a row's image.
    pub size: u64,
    /// wds: the image member's name (empty for a row).
    pub name: String,
    pub label: Label,
}

/// A file of a container set: its name relative to the dataset root, its size and the SHA-256
/// of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexedFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// Bumped when the index's content or rules change (older cached indexes are then rebuilt).
/// 3: parquet rows carry their image's size in bytes (the canonical order sorts by it).
pub(crate) const INDEX_SCHEME: u32 = 3;

/// Every sample of a container set, in file order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub scheme: u32,
    pub format: Format,
    pub files: Vec<IndexedFile>,
    pub samples: Vec<Sample>,
}
