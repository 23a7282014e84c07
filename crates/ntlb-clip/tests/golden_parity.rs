//! Parity with the reference implementation on the shared golden cases (needs `../shared/golden`).

mod common;

use burn::tensor::Device;
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_golden::{clip_cases::compute_clip_case, compare::compare};

fn check_layout(model: &std::path::Path, dir: &std::path::Path) {
    let device = Device::flex();
    let clip = Clip::load(model, None, &device).expect("tiny CLIP loads");
    let tok = ClipTokenizer::from_file(&dir.join("tiny-clip/hf/tokenizer.json")).expect("tokenizer loads");
    for case_name in ["tokenize.json", "encode_text.json", "encode_image.json"] {
        let case = common::read_case(dir, case_name);
        let ours = compute_clip_case(&case, &clip, Some(&tok), &device)
            .expect("case computes")
            .expect("case is covered");
        let checks = compare(case["experiment"].as_str().unwrap(), &ours, &case["outputs"], "");
        // `compare` walks the fields ntlb emits: a field it stopped emitting would go unchecked,
        // so every output of the reference must have been compared.
        let required = case["outputs"].as_object().expect("outputs object");
        for field in required.keys().filter(|k| *k != "description") {
            assert!(
                checks
                    .iter()
                    .any(|c| c.field == *field || c.field.starts_with(&format!("{field}."))),
                "{case_name}: reference output `{field}` was not compared (ntlb computed: {:?})",
                checks.iter().map(|c| c.field.as_str()).collect::<Vec<_>>()
            );
        }
        for c in &checks {
            eprintln!(
                "{} {case_name} {}: max abs {:.3e}, rel {:.3e} (tol {:.0e})",
                model.display(),
                c.field,
                c.deviation.max_abs,
                c.deviation.rel,
                c.tolerance
            );
            assert!(c.ok(), "{case_name} field {} off: {:?}", c.field, c.deviation);
        }
    }
}

#[test]
fn openai_layout_matches_reference() {
    let Some(dir) = common::golden_dir("openai_layout_matches_reference") else {
        return;
    };
    check_layout(&dir.join("tiny-clip/openai.safetensors"), &dir);
}

#[test]
fn hf_layout_matches_reference() {
    let Some(dir) = common::golden_dir("hf_layout_matches_reference") else {
        return;
    };
    check_layout(&dir.join("tiny-clip/hf"), &dir);
}

#[test]
fn both_layouts_give_the_same_model() {
    let Some(dir) = common::golden_dir("both_layouts_give_the_same_model") else {
        return;
    };
    let device = Device::flex();
    let a = Clip::load(&dir.join("tiny-clip/openai.safetensors"), None, &device).unwrap();
    let b = Clip::load(&dir.join("tiny-clip/hf"), None, &device).unwrap();
    assert_eq!(a.config, b.config);
    let ids: Vec<Vec<u32>> = vec![[49406u32, 320, 1125, 539, 320, 2368, 269, 49407]
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0, 69))
        .collect()];
    let fa = ntlb_core::host::to_f32_vec(a.encode_text(&ids, &[7]));
    let fb = ntlb_core::host::to_f32_vec(b.encode_text(&ids, &[7]));
    assert_eq!(fa, fb, "same weights, same graph: bit-identical features");
    let img = burn::tensor::Tensor::<4>::ones([1, 3, 32, 32], &device);
    assert_eq!(
        ntlb_core::host::to_f32_vec(a.encode_image(img.clone())),
        ntlb_core::host::to_f32_vec(b.encode_image(img))
    );
}
