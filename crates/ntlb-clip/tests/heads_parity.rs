//! Attention heads that are not 64 wide, as the config declares them, against the libraries that
//! wrote the configs: transformers (`num_attention_heads`) and open_clip (`heads`,
//! `head_width`), on the golden tiny CLIP's weights. Fixtures by `scripts/make_heads_fixtures.py`
//! (in repo: features + config files, no weights); the model folders are assembled in a tempdir
//! from `../shared/golden`. The same weights split into 64-wide heads (OpenAI's `build_model`
//! rule) must miss the fixtures by far: the check can fail.

mod common;

use common::{golden_dir, hf_folder, load, open_clip_folder, read_json, FixtureSet};
use ntlb_clip::architecture::HeadRule;
use ntlb_clip::Clip;

const FIXTURES: FixtureSet = FixtureSet {
    dir: "heads",
    script: "scripts/make_heads_fixtures.py",
    what: "heads",
};

fn heads(clip: &Clip) -> (usize, usize) {
    (clip.config.text.heads, clip.config.vision.heads())
}

#[test]
fn hf_num_attention_heads_match_transformers() {
    let Some(golden) = golden_dir("hf_num_attention_heads_match_transformers") else {
        return;
    };
    let config = read_json(&FIXTURES.path("hf_config.json"));
    assert_eq!(config["text_config"]["num_attention_heads"], 4);
    assert_eq!(config["vision_config"]["num_attention_heads"], 8);
    let dir = hf_folder(&golden, &config);
    let clip = load(dir.path());
    assert_eq!(heads(&clip), (4, 8), "heads as config.json declares them, not width / 64");
    let declared = clip.numerics.heads.as_ref().expect("the run record names the declared heads");
    assert_eq!((declared.text, declared.vision), (HeadRule::Heads(4), HeadRule::Heads(8)));
    assert!(
        declared.source.contains("text_config.num_attention_heads = 4"),
        "{}",
        declared.source
    );
    FIXTURES.assert_matches("HF folder, 4 / 8 heads", &clip, "hf", &golden);
    // The weights file named directly is the same folder: its config.json is read too.
    assert_eq!(heads(&load(&dir.path().join("model.safetensors"))), (4, 8));
}

#[test]
fn open_clip_heads_and_head_width_match_open_clip() {
    let Some(golden) = golden_dir("open_clip_heads_and_head_width_match_open_clip") else {
        return;
    };
    let config = read_json(&FIXTURES.path("openclip_config.json"));
    assert_eq!(config["model_cfg"]["text_cfg"]["heads"], 4);
    assert_eq!(config["model_cfg"]["vision_cfg"]["head_width"], 32);
    let (_dir, weights) = open_clip_folder(&golden, &config);
    let clip = load(&weights);
    assert_eq!(heads(&clip), (4, 4), "text heads 4; image 128 / head_width 32");
    let declared = clip.numerics.heads.as_ref().expect("declared heads recorded");
    assert_eq!((declared.text, declared.vision), (HeadRule::Heads(4), HeadRule::HeadWidth(32)));
    FIXTURES.assert_matches("open_clip folder, heads 4 / head_width 32", &clip, "openclip", &golden);
}

/// What OpenAI's `build_model` rule (heads = width / 64) computes on the same weights is far
/// from both fixtures; so is the golden folder, whose config declares 2 heads of 64.
#[test]
fn heads_fixtures_are_missed_by_64_wide_heads() {
    let Some(golden) = golden_dir("heads_fixtures_are_missed_by_64_wide_heads") else {
        return;
    };
    let bare = load(&golden.join("tiny-clip/openai.safetensors"));
    assert_eq!(heads(&bare), (2, 2));
    assert!(bare.numerics.heads.is_none(), "no config: nothing declared");
    let hf_64 = load(&golden.join("tiny-clip/hf"));
    assert_eq!(heads(&hf_64), (2, 2));
    for prefix in ["hf", "openclip"] {
        FIXTURES.assert_misses("bare openai.safetensors (width / 64)", &bare, prefix, &golden);
        FIXTURES.assert_misses("golden hf/ (2 heads declared)", &hf_64, prefix, &golden);
    }
    // The declared heads are in the keys: a cache entry of one split is never another's.
    let dir = hf_folder(&golden, &read_json(&FIXTURES.path("hf_config.json")));
    assert_ne!(load(dir.path()).numerics.identity(), hf_64.numerics.identity());
    // ... while a model without a config, or whose config declares 64-wide heads, keeps the
    // key it always had.
    for clip in [&bare, &hf_64] {
        assert!(!clip.numerics.identity().contains("heads"), "{}", clip.numerics.identity());
    }
}
