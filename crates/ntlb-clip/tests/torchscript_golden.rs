//! The golden tiny CLIP as OpenAI's TorchScript archives (both precisions of storage) reproduces
//! the reference's golden features. The archives (28 MB each: the full vocabulary) are made with
//! PyTorch, which CI does not have, so they are not committed and the test is ignored by default:
//! `make parity-torchscript` writes them into `target/torchscript-golden` and runs it (`--ignored`),
//! and then missing archives fail it. The committed small archives (`tests/torchscript.rs`) hold
//! the reader against torch's own features in every build.

mod common;

use std::path::PathBuf;

use burn::tensor::Device;
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_golden::{clip_cases::compute_clip_case, compare::compare};

fn archives(test: &str) -> PathBuf {
    let dir = std::env::var_os("NTLB_TORCHSCRIPT_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/torchscript-golden"));
    assert!(
        dir.join("openai_fp16.pt").exists() && dir.join("openai_fp32.pt").exists(),
        "{test}: no openai_fp16.pt and openai_fp32.pt in {}; make them with: make parity-torchscript",
        dir.display()
    );
    dir
}

#[test]
#[ignore = "needs the golden TorchScript archives, made with PyTorch: make parity-torchscript"]
fn golden_archives_reproduce_the_reference_features() {
    let test = "golden_archives_reproduce_the_reference_features";
    let Some(golden) = common::golden_dir(test) else {
        return;
    };
    let dir = archives(test);
    let device = Device::flex();
    let tok = ClipTokenizer::openai().unwrap();
    let twin = Clip::load(&golden.join("tiny-clip/openai.safetensors"), None, &device).unwrap();
    for file in ["openai_fp32.pt", "openai_fp16.pt"] {
        let model = dir.join(file);
        let clip = Clip::load(&model, None, &device).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
        assert_eq!(clip.config, twin.config, "{file}");
        for case_name in ["tokenize.json", "encode_text.json", "encode_image.json"] {
            let case = common::read_case(&golden, case_name);
            let ours = compute_clip_case(&case, &clip, Some(&tok), &device).unwrap().unwrap();
            let checks = compare(case["experiment"].as_str().unwrap(), &ours, &case["outputs"], "");
            for field in case["outputs"].as_object().unwrap().keys().filter(|k| *k != "description") {
                assert!(
                    checks
                        .iter()
                        .any(|c| c.field == *field || c.field.starts_with(&format!("{field}."))),
                    "{file} {case_name}: `{field}` not compared"
                );
            }
            for c in &checks {
                eprintln!(
                    "{file} {case_name} {}: max abs {:.3e}, rel {:.3e} (tol {:.0e})",
                    c.field, c.deviation.max_abs, c.deviation.rel, c.tolerance
                );
                assert!(c.ok(), "{file} {case_name} {} off: {:?}", c.field, c.deviation);
            }
        }
        // The golden weights are float16-representable where convert_weights rounds them, so
        // both archives hold the twin's numbers: the same features, bit for bit.
        let ids = vec![[49406u32, 320, 1125, 539, 320, 2368, 269, 49407]
            .into_iter()
            .chain(std::iter::repeat_n(0, 69))
            .collect()];
        assert_eq!(
            ntlb_core::host::to_f32_vec(clip.encode_text(&ids, &[7])),
            ntlb_core::host::to_f32_vec(twin.encode_text(&ids, &[7])),
            "{file}"
        );
    }
}
