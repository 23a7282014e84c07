//! Exact-GELU parity against the libraries researchers load CLIP checkpoints with: transformers
//! (`hidden_act: "gelu"`) and open_clip (`model_cfg` without `quick_gelu`), on the golden tiny
//! CLIP's weights. Fixtures by `scripts/make_gelu_fixtures.py` (in repo: features + config files,
//! no weights); the model folders are assembled in a tempdir from `../shared/golden`.
//! A QuickGELU model on the same weights must miss the GELU fixtures by far: the check can fail.

mod common;

use common::{golden_dir, hf_folder, load, open_clip_folder, read_json, FixtureSet};
use ntlb_clip::config::Activation;
use ntlb_clip::Clip;
use serde_json::Value;

const FIXTURES: FixtureSet = FixtureSet {
    dir: "gelu",
    script: "scripts/make_gelu_fixtures.py",
    what: "GELU",
};

fn activations(clip: &Clip) -> (Activation, Option<Activation>) {
    (clip.config.text.activation, clip.config.vision.activation())
}

#[test]
fn hf_gelu_matches_transformers() {
    let Some(golden) = golden_dir("hf_gelu_matches_transformers") else {
        return;
    };
    let dir = hf_folder(&golden, &read_json(&FIXTURES.path("hf_config.json")));
    let clip = load(dir.path());
    assert_eq!(activations(&clip), (Activation::Gelu, Some(Activation::Gelu)));
    FIXTURES.assert_matches("HF folder, hidden_act gelu", &clip, "hf_gelu", &golden);
}

#[test]
fn open_clip_gelu_matches_open_clip() {
    let Some(golden) = golden_dir("open_clip_gelu_matches_open_clip") else {
        return;
    };
    let config = read_json(&FIXTURES.path("openclip_gelu_config.json"));
    assert!(
        config["model_cfg"].get("quick_gelu").is_none(),
        "the GELU config leaves quick_gelu out, as open_clip's"
    );
    let (_dir, weights) = open_clip_folder(&golden, &config);
    let clip = load(&weights);
    assert_eq!(activations(&clip), (Activation::Gelu, Some(Activation::Gelu)));
    FIXTURES.assert_matches("open_clip folder, no quick_gelu", &clip, "openclip_gelu", &golden);
    // open_clip reads `quick_gelu: false` as absent: nn.GELU.
    let mut explicit = config.clone();
    explicit["model_cfg"]["quick_gelu"] = Value::Bool(false);
    let (_dir, weights) = open_clip_folder(&golden, &explicit);
    let clip = load(&weights);
    assert_eq!(activations(&clip), (Activation::Gelu, Some(Activation::Gelu)));
    FIXTURES.assert_matches("open_clip folder, quick_gelu false", &clip, "openclip_gelu", &golden);
}

#[test]
fn open_clip_quick_gelu_matches_open_clip() {
    let Some(golden) = golden_dir("open_clip_quick_gelu_matches_open_clip") else {
        return;
    };
    let config = read_json(&FIXTURES.path("openclip_quickgelu_config.json"));
    assert_eq!(config["model_cfg"]["quick_gelu"], Value::Bool(true));
    let (_dir, weights) = open_clip_folder(&golden, &config);
    let clip = load(&weights);
    assert_eq!(activations(&clip), (Activation::QuickGelu, Some(Activation::QuickGelu)));
    FIXTURES.assert_matches("open_clip folder, quick_gelu true", &clip, "openclip_quickgelu", &golden);
    // The bare OpenAI file (no config beside it) is OpenAI's QuickGELU: the same numbers.
    let bare = load(&golden.join("tiny-clip/openai.safetensors"));
    assert_eq!(activations(&bare), (Activation::QuickGelu, Some(Activation::QuickGelu)));
    FIXTURES.assert_matches("bare openai.safetensors", &bare, "openclip_quickgelu", &golden);
}

#[test]
fn gelu_fixtures_are_missed_by_a_quick_gelu_model() {
    let Some(golden) = golden_dir("gelu_fixtures_are_missed_by_a_quick_gelu_model") else {
        return;
    };
    let bare = load(&golden.join("tiny-clip/openai.safetensors"));
    assert_eq!(activations(&bare), (Activation::QuickGelu, Some(Activation::QuickGelu)));
    let hf_quick = load(&golden.join("tiny-clip/hf"));
    assert_eq!(activations(&hf_quick), (Activation::QuickGelu, Some(Activation::QuickGelu)));
    let (_dir, weights) = open_clip_folder(&golden, &read_json(&FIXTURES.path("openclip_quickgelu_config.json")));
    let oc_quick = load(&weights);
    for prefix in ["hf_gelu", "openclip_gelu"] {
        FIXTURES.assert_misses("bare openai.safetensors (QuickGELU)", &bare, prefix, &golden);
        FIXTURES.assert_misses("golden hf/ (quick_gelu)", &hf_quick, prefix, &golden);
        FIXTURES.assert_misses("open_clip folder, quick_gelu true", &oc_quick, prefix, &golden);
    }
    // ... and the other way round: a GELU model misses the QuickGELU fixtures.
    let dir = hf_folder(&golden, &read_json(&FIXTURES.path("hf_config.json")));
    FIXTURES.assert_misses("HF folder, hidden_act gelu", &load(dir.path()), "openclip_quickgelu", &golden);
}
