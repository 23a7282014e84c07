//! ModifiedResNet parity against open_clip (fixture made by scripts/make_rn_fixture.py; in repo).

use std::path::PathBuf;

use burn::tensor::Device;
use ntlb_clip::config::VisionConfig;
use ntlb_clip::Clip;
use ntlb_golden::{clip_cases::compute_clip_case, compare::compare};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rn").join(name)
}

#[test]
fn resnet_clip_matches_open_clip() {
    let device = Device::flex();
    let clip = Clip::load(&fixture("model.safetensors"), None, &device).expect("RN fixture loads");
    assert!(
        matches!(
            clip.config.vision,
            VisionConfig::ResNet {
                width: 8,
                layers: [1, 2, 1, 1],
                heads: 4,
                image_resolution: 64
            }
        ),
        "{:?}",
        clip.config.vision
    );
    for case in ["encode_image.json", "encode_text.json"] {
        let case: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture(case)).unwrap()).unwrap();
        let ours = compute_clip_case(&case, &clip, None, &device).unwrap().unwrap();
        let checks = compare(case["experiment"].as_str().unwrap(), &ours, &case["outputs"], "");
        assert_eq!(checks.len(), 1);
        for c in checks {
            eprintln!("RN {}: max abs {:.3e} rel {:.3e}", c.field, c.deviation.max_abs, c.deviation.rel);
            assert!(c.ok(), "{}: {:?}", c.field, c.deviation);
        }
    }
}

#[test]
fn presets_construct_the_real_sizes() {
    let device = Device::flex();
    let rn50 = ntlb_clip::ClipConfig::preset("RN50").unwrap();
    let clip = Clip::random(&rn50, 1, &device);
    let feats = clip.encode_image(burn::tensor::Tensor::<4>::zeros([1, 3, 224, 224], &device));
    assert_eq!(feats.dims(), [1, 1024]);
    let vit = ntlb_clip::ClipConfig::preset("ViT-B/32").unwrap();
    let clip = Clip::random(&vit, 1, &device);
    assert_eq!(clip.text.token_embedding.dims(), [49408, 512]);
    assert_eq!(
        clip.encode_image(burn::tensor::Tensor::<4>::zeros([1, 3, 224, 224], &device))
            .dims(),
        [1, 512]
    );
}
