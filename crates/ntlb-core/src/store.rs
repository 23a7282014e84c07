//! Named float32 tensors in a safetensors file (learned contexts, optimiser state).

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
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, s, d)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), d)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, metadata)?)
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

/// [`read_tensors_with_metadata`] of bytes already read (`path` names them in errors).
pub fn parse_tensors(bytes: &[u8], path: &Path) -> Result<(NamedTensors, std::collections::HashMap<String, String>)> {
    let (_, header) = SafeTensors::read_metadata(bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
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
