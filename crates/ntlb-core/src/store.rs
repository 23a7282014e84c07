//! Named float32 tensors in a safetensors file (learned contexts, optimiser state). Every file
//! written here carries the SHA-256 of its tensors and metadata (metadata key [`DIGEST_KEY`]),
//! checked on every read: changed bytes that still parse are refused, naming the file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

pub fn write_tensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    write_tensors_with_metadata(path, tensors, None)
}

/// Tensors and string metadata in one file, written atomically: a reader sees both from the
/// same write or neither (what a resumable checkpoint needs).
pub fn write_tensors_with_metadata(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<()> {
    let out = serialize_tensors(tensors, metadata)?;
    crate::atomic::write_atomic(path, &out).with_context(|| format!("writing {}", path.display()))
}

/// The bytes of a safetensors file of `tensors` (for callers that digest what they write).
pub fn serialize_tensors(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| (n.clone(), s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let mut metadata = metadata.unwrap_or_default();
    metadata.remove(DIGEST_KEY);
    let digest = content_digest(bytes.iter().map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice())), &metadata);
    metadata.insert(DIGEST_KEY.to_string(), digest);
    let metadata = Some(metadata);
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, d)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), d)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, metadata)?)
}

/// The metadata key of the content digest.
pub const DIGEST_KEY: &str = "ntlb.sha256";

/// SHA-256 over the tensors (name order: name, shape, little-endian bytes) and the metadata
/// (key order), independent of how the file lays them out.
fn content_digest<'a>(
    tensors: impl Iterator<Item = (&'a str, &'a [usize], &'a [u8])>,
    metadata: &std::collections::HashMap<String, String>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut t: Vec<_> = tensors.collect();
    t.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (name, shape, data) in t {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((shape.len() as u64).to_le_bytes());
        for &d in shape {
            h.update((d as u64).to_le_bytes());
        }
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    }
    let meta: std::collections::BTreeMap<_, _> = metadata.iter().filter(|(k, _)| k.as_str() != DIGEST_KEY).collect();
    for (k, v) in meta {
        h.update((k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// Name -> (shape, values).
pub type NamedTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

pub fn read_tensors(path: &Path) -> Result<NamedTensors> {
    Ok(read_tensors_with_metadata(path)?.0)
}

/// The tensors and the file's string metadata (empty when it has none).
pub fn read_tensors_with_metadata(path: &Path) -> Result<(NamedTensors, std::collections::HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    parse_tensors(&bytes, path)
}

/// [`read_tensors_with_metadata`] of a file that must carry its digest (one this module wrote):
/// a file without one is refused like a damaged one.
pub fn read_tensors_checked(path: &Path) -> Result<(NamedTensors, std::collections::HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    if !header.metadata().as_ref().is_some_and(|m| m.contains_key(DIGEST_KEY)) {
        anyhow::bail!(
            "{}: no digest of its tensors (`{DIGEST_KEY}`: written before digests were kept)",
            path.display()
        );
    }
    parse_tensors(&bytes, path)
}

/// [`read_tensors_with_metadata`] of bytes already read (`path` names them in errors). The
/// digest, where the file has one, is checked and left out of the metadata returned.
pub fn parse_tensors(bytes: &[u8], path: &Path) -> Result<(NamedTensors, std::collections::HashMap<String, String>)> {
    let (_, header) = SafeTensors::read_metadata(bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let mut metadata = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    if let Some(want) = metadata.remove(DIGEST_KEY) {
        let views = st.tensors();
        let got = content_digest(views.iter().map(|(n, v)| (n.as_str(), v.shape(), v.data())), &metadata);
        if got != want {
            anyhow::bail!(
                "{}: its tensors do not match their SHA-256 (the file changed after it was written)",
                path.display()
            );
        }
    }
    let mut out = BTreeMap::new();
    for (name, v) in st.tensors() {
        if v.dtype() != Dtype::F32 {
            anyhow::bail!("{}: tensor `{name}` is {:?}, expected F32", path.display(), v.dtype());
        }
        let data = v
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(name.to_string(), (v.shape().to_vec(), data));
    }
    Ok((out, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_tensor_bytes_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.safetensors");
        let meta = std::collections::HashMap::from([("manifest".to_string(), "{\"epoch\": 3}".to_string())]);
        write_tensors_with_metadata(&p, &[("ctx".into(), vec![2, 3], vec![0.5; 6])], Some(meta.clone())).unwrap();
        let (t, m) = read_tensors_checked(&p).unwrap();
        assert_eq!((t["ctx"].1.clone(), m), (vec![0.5; 6], meta));
        let good = std::fs::read(&p).unwrap();
        // The last float's last byte, then one byte of the metadata: both refused by name.
        let mut b = good.clone();
        *b.last_mut().unwrap() ^= 0x01;
        std::fs::write(&p, &b).unwrap();
        let e = format!("{:#}", read_tensors_checked(&p).unwrap_err());
        assert!(e.contains("s.safetensors") && e.contains("SHA-256"), "{e}");
        let mut b = good.clone();
        let at = b.windows(5).position(|w| w == b"epoch").unwrap();
        b[at] = b'E';
        std::fs::write(&p, &b).unwrap();
        assert!(read_tensors_checked(&p).is_err());
        // A file without a digest: read by the lenient reader, refused by the checked one.
        let views = vec![("ctx".to_string(), TensorView::new(Dtype::F32, vec![1], &[0u8; 4][..]).unwrap())];
        std::fs::write(&p, safetensors::serialize(views, None).unwrap()).unwrap();
        assert!(read_tensors(&p).is_ok());
        assert!(format!("{:#}", read_tensors_checked(&p).unwrap_err()).contains("no digest"));
    }
}
