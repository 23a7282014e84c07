//! One reference type for every image a dataset holds: a file, a member of a tar shard, or a
//! row of a parquet file. The decoder reads its bytes in place ([`ImageBytes`]): shards are
//! never unpacked to disk, parquet files never converted.

use std::fmt;
use std::path::{Path, PathBuf};

use ntlb_core::image::ImageBytes;
use serde::{Deserialize, Serialize};

/// Where an image's bytes are. Serialised untagged: a file is its path (the split files and run
/// records written before containers existed read back unchanged).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageRef {
    File(PathBuf),
    /// `size` bytes at `offset` of the tar file `shard`: the data of member `name`.
    Member {
        shard: PathBuf,
        offset: u64,
        size: u64,
        name: String,
    },
    /// Row `row` (from 0) of the parquet file `file`, image in `column` (binary, or a struct
    /// with a binary `bytes` field as Hugging Face writes images).
    Row {
        file: PathBuf,
        row: u64,
        column: String,
    },
}

impl From<PathBuf> for ImageRef {
    fn from(p: PathBuf) -> ImageRef {
        ImageRef::File(p)
    }
}

impl ImageRef {
    /// The file this image is in (the image file itself, its shard, its parquet file).
    pub fn container(&self) -> &Path {
        match self {
            ImageRef::File(p) => p,
            ImageRef::Member { shard, .. } => shard,
            ImageRef::Row { file, .. } => file,
        }
    }

    fn with_container(&self, p: PathBuf) -> ImageRef {
        match self {
            ImageRef::File(_) => ImageRef::File(p),
            ImageRef::Member { offset, size, name, .. } => ImageRef::Member {
                shard: p,
                offset: *offset,
                size: *size,
                name: name.clone(),
            },
            ImageRef::Row { row, column, .. } => ImageRef::Row {
                file: p,
                row: *row,
                column: column.clone(),
            },
        }
    }

    /// The same image with its file named relative to `root` (as split files store it).
    pub fn relative_to(&self, root: &Path) -> ImageRef {
        match self.container().strip_prefix(root) {
            Ok(rel) => self.with_container(rel.to_path_buf()),
            Err(_) => self.clone(),
        }
    }

    /// The same image with a relative file read under `root`.
    pub fn under(&self, root: &Path) -> ImageRef {
        if self.container().is_relative() {
            self.with_container(root.join(self.container()))
        } else {
            self.clone()
        }
    }

    pub fn as_file(&self) -> Option<&Path> {
        match self {
            ImageRef::File(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.image_name().display())
    }
}

impl ImageBytes for ImageRef {
    fn image_bytes(&self) -> Result<Vec<u8>, String> {
        match self {
            ImageRef::File(p) => p.image_bytes(),
            ImageRef::Member { shard, offset, size, name } => crate::wds::read_member(shard, *offset, *size, name),
            ImageRef::Row { file, row, column } => crate::parquet::read_row(file, *row, column),
        }
    }

    fn image_name(&self) -> PathBuf {
        match self {
            ImageRef::File(p) => p.clone(),
            ImageRef::Member { shard, name, .. } => shard.join(name),
            ImageRef::Row { file, row, .. } => PathBuf::from(format!("{}#{row}", file.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_serialises_as_its_path_and_members_round_trip() {
        let f = ImageRef::File("a/b.jpg".into());
        assert_eq!(serde_json::to_string(&f).unwrap(), "\"a/b.jpg\"");
        let m = ImageRef::Member {
            shard: "train/0.tar".into(),
            offset: 1536,
            size: 10,
            name: "s0000001.webp".into(),
        };
        let r = ImageRef::Row {
            file: "data/train-00000-of-00001.parquet".into(),
            row: 3,
            column: "image".into(),
        };
        for x in [&f, &m, &r] {
            assert_eq!(&serde_json::from_str::<ImageRef>(&serde_json::to_string(x).unwrap()).unwrap(), x);
        }
        let root = Path::new("/data/wds");
        assert_eq!(m.under(root).relative_to(root), m);
        assert_eq!(m.under(root).image_name(), Path::new("/data/wds/train/0.tar/s0000001.webp"));
        assert_eq!(r.image_name(), Path::new("data/train-00000-of-00001.parquet#3"));
    }
}
