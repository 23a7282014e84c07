//! `torch.save`'d state dicts (fixtures made by scripts/make_pytorch_fixture.py; in repo) load
//! to exactly the tensors of their safetensors twin; broken and TorchScript files are refused
//! with the file named.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use ntlb_clip::weights::{weights_file, Layout, WeightMap};
use ntlb_clip::Clip;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch").join(name)
}

/// Every canonical tensor of a checkpoint: (key, shape, f32 bits).
fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    let mut w = WeightMap::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let keys: Vec<String> = w.keys().map(str::to_string).collect();
    keys.into_iter()
        .map(|k| {
            let shape = w.shape(&k).unwrap().to_vec();
            let data = w.take(&k, &shape).unwrap();
            (k, shape, data.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

/// Image and text features of a checkpoint on fixed inputs.
fn features(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let device = Device::flex();
    let clip = Clip::load(path, None, &device).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = clip.config.vision.image_resolution();
    let pixels: Vec<f32> = (0..2 * 3 * n * n).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let img = clip.encode_image(Tensor::<4>::from_data(TensorData::new(pixels, [2, 3, n, n]), &device));
    let ctx = clip.config.text.context_length;
    let ids: Vec<Vec<u32>> = [3usize, 9]
        .iter()
        .map(|&len| {
            (0..ctx)
                .map(|i| {
                    if i < len {
                        (i as u32 * 7) % 48 + 1
                    } else if i == len {
                        49
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    let txt = clip.encode_text(&ids, &[3, 9]);
    (
        img.into_data().try_to_vec::<f32>().unwrap(),
        txt.into_data().try_to_vec::<f32>().unwrap(),
    )
}

#[test]
fn torch_files_hold_the_twin_tensors_bit_for_bit() {
    let twin_path = fixture("tiny_openai.safetensors");
    let twin = tensors(&twin_path);
    assert!(twin.iter().any(|(k, _, _)| k == "transformer.resblocks.0.attn.q_proj.weight"));
    let twin_features = features(&twin_path);
    for name in ["tiny_openai.bin", "tiny_openai_legacy.bin", "tiny_checkpoint.pt", "tiny_hf"] {
        let p = fixture(name);
        let ours = tensors(&p);
        assert_eq!(ours.len(), twin.len(), "{name}");
        for (a, b) in ours.iter().zip(&twin) {
            assert_eq!(a, b, "{name}: tensor `{}` differs from the safetensors twin", a.0);
        }
        let expected = if name == "tiny_hf" { Layout::HuggingFace } else { Layout::OpenAi };
        assert_eq!(WeightMap::open(&p).unwrap().layout, expected, "{name}");
        assert_eq!(features(&p), twin_features, "{name}");
    }
}

#[test]
fn a_folder_reads_pytorch_model_bin_when_it_has_no_safetensors() {
    let hf = fixture("tiny_hf");
    assert_eq!(weights_file(&hf).unwrap(), hf.join("pytorch_model.bin"));
    let file = fixture("tiny_openai.bin");
    assert_eq!(weights_file(&file).unwrap(), file);
    // With both, the safetensors file is the one read.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(hf.join("pytorch_model.bin"), dir.path().join("pytorch_model.bin")).unwrap();
    assert_eq!(weights_file(dir.path()).unwrap(), dir.path().join("pytorch_model.bin"));
    std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
    assert_eq!(weights_file(dir.path()).unwrap(), dir.path().join("model.safetensors"));
    // A folder with neither says what it looked for; one with open_clip files says to name the file.
    let empty = tempfile::tempdir().unwrap();
    let e = weights_file(empty.path()).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("pytorch_model.bin"), "{e}");
    std::fs::write(empty.path().join("open_clip_pytorch_model.bin"), b"").unwrap();
    let e = weights_file(empty.path()).unwrap_err().to_string();
    assert!(e.contains("named by its file"), "{e}");
}

#[test]
fn truncated_torch_files_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tiny_openai.bin", "tiny_openai_legacy.bin"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let n = bytes.len();
        for cut in [0, 1, 4, 30, 100, 1000, n / 4, n / 2, 3 * n / 4, n - 4096, n - 100, n - 22, n - 1] {
            let p = dir.path().join(format!("cut{cut}_{name}"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            match Clip::load(&p, None, &Device::flex()) {
                Ok(_) => panic!("{name} cut at {cut} of {n} bytes loaded"),
                Err(e) => {
                    let e = e.to_string();
                    if cut == n / 2 {
                        eprintln!("{name} cut at {cut}: {e}");
                    }
                    assert!(e.contains(&format!("cut{cut}_{name}")), "{name} cut at {cut}: {e}");
                }
            }
        }
    }
}

#[test]
fn a_torchscript_archive_of_another_model_is_refused_by_name() {
    // A scripted nn.Linear: read as TorchScript, then refused as no CLIP, naming its class.
    let p = fixture("torchscript.pt");
    let e = match WeightMap::open(&p) {
        Ok(_) => panic!("a TorchScript nn.Linear was read as a CLIP"),
        Err(e) => e.to_string(),
    };
    eprintln!("{e}");
    assert!(
        e.contains("torchscript.pt") && e.contains("TorchScript archive of `__torch__.torch.nn.modules.linear.Linear"),
        "{e}"
    );
    assert!(e.contains("`weight`") && e.contains("not of CLIP"), "{e}");
}

#[test]
fn a_file_that_is_neither_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.pth");
    std::fs::write(&p, b"this is not a checkpoint").unwrap();
    let e = WeightMap::open(&p).err().expect("junk refused").to_string();
    assert!(e.contains("junk.pth") && e.contains("PyTorch"), "{e}");
}
