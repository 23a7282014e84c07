//! Attention heads that are not 64 wide, as the config declares them, against the libraries that
//! wrote the configs: transformers (`num_attention_heads`) and open_clip (`heads`,
//! `head_width`), on the golden tiny CLIP's weights. Fixtures by `scripts/make_heads_fixtures.py`
//! (in repo: features + config files, no weights); the model folders are assembled in a tempdir
//! from `../shared/golden`. The same weights split into 64-wide heads (OpenAI's `build_model`
//! rule) must miss the fixtures by far: the check can fail.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ntlb_clip::architecture::HeadRule;
use ntlb_clip::Clip;
use ntlb_golden::clip_cases::compute_clip_case;
use ntlb_golden::compare::{compare, FieldCheck};
use serde_json::Value;

const CASES: [&str; 2] = ["encode_text", "encode_image"];

fn golden_dir(test: &str) -> Option<PathBuf> {
    ntlb_golden::fixtures::golden_dir_or_skip(test)
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/heads").join(name)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture with the golden case's inputs put back (the fixture names the case and its
/// digest instead of copying them).
fn fixture_case(name: &str, golden: &Path) -> Value {
    let mut case = read_json(&fixture_path(name));
    let source = case["inputs"]["golden_case"].as_str().expect("inputs.golden_case").to_string();
    let digest = ntlb_core::digest::sha256_file(&golden.join(&source)).unwrap();
    assert_eq!(
        case["inputs"]["golden_sha256"].as_str(),
        Some(digest.as_str()),
        "{name} was made from another {source}: rerun scripts/make_heads_fixtures.py"
    );
    case["inputs"] = read_json(&golden.join(&source))["inputs"].clone();
    case
}

/// A Hugging Face folder: the golden hf/ weights and tokenizer with `config` as config.json.
fn hf_folder(golden: &Path, config: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(golden.join("tiny-clip/hf").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("config.json"), serde_json::to_string_pretty(config).unwrap()).unwrap();
    dir
}

/// An open_clip hub layout: the golden OpenAI-named weights as open_clip_model.safetensors with
/// `config` as open_clip_config.json beside them. Returns the folder and the weights' path.
fn open_clip_folder(golden: &Path, config: &Value) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("open_clip_model.safetensors");
    std::fs::copy(golden.join("tiny-clip/openai.safetensors"), &weights).unwrap();
    std::fs::write(
        dir.path().join("open_clip_config.json"),
        serde_json::to_string_pretty(config).unwrap(),
    )
    .unwrap();
    (dir, weights)
}

fn heads(clip: &Clip) -> (usize, usize) {
    (clip.config.text.heads, clip.config.vision.heads())
}

/// Our outputs for `{prefix}_{case}.json`, compared field by field at the golden tolerances;
/// every output of the fixture must have been compared.
fn checks(clip: &Clip, prefix: &str, golden: &Path) -> Vec<(String, FieldCheck)> {
    let device = Device::flex();
    let mut all = Vec::new();
    for case_name in CASES {
        let name = format!("{prefix}_{case_name}.json");
        let case = fixture_case(&name, golden);
        let ours = compute_clip_case(&case, clip, None, &device).unwrap().expect("case is covered");
        let checks = compare(case["experiment"].as_str().unwrap(), &ours, &case["outputs"], "");
        for field in case["outputs"].as_object().unwrap().keys() {
            assert!(checks.iter().any(|c| c.field == *field), "{name}: `{field}` not compared");
        }
        all.extend(checks.into_iter().map(|c| (name.clone(), c)));
    }
    all
}

fn assert_matches(label: &str, clip: &Clip, prefix: &str, golden: &Path) {
    for (name, c) in checks(clip, prefix, golden) {
        eprintln!(
            "{label} vs {name} {}: max abs {:.3e}, rel {:.3e} (tol {:.0e})",
            c.field, c.deviation.max_abs, c.deviation.rel, c.tolerance
        );
        assert!(c.ok(), "{label} vs {name}: {} off: {:?}", c.field, c.deviation);
    }
}

/// A model with 64-wide heads misses every field by at least 100x the tolerance.
fn assert_misses(label: &str, clip: &Clip, prefix: &str, golden: &Path) {
    for (name, c) in checks(clip, prefix, golden) {
        eprintln!(
            "{label} vs {name} {} (must miss): rel {:.3e} = {:.0}x the tolerance",
            c.field,
            c.deviation.rel,
            c.deviation.rel / c.tolerance
        );
        assert!(
            c.deviation.rel > 100.0 * c.tolerance,
            "{label} comes within 100x the tolerance of {name} {}: {:?}: the heads check could not tell",
            c.field,
            c.deviation
        );
    }
}

fn load(path: &Path) -> Clip {
    Clip::load(path, None, &Device::flex()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn hf_num_attention_heads_match_transformers() {
    let Some(golden) = golden_dir("hf_num_attention_heads_match_transformers") else {
        return;
    };
    let config = read_json(&fixture_path("hf_config.json"));
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
    assert_matches("HF folder, 4 / 8 heads", &clip, "hf", &golden);
    // The weights file named directly is the same folder: its config.json is read too.
    assert_eq!(heads(&load(&dir.path().join("model.safetensors"))), (4, 8));
}

#[test]
fn open_clip_heads_and_head_width_match_open_clip() {
    let Some(golden) = golden_dir("open_clip_heads_and_head_width_match_open_clip") else {
        return;
    };
    let config = read_json(&fixture_path("openclip_config.json"));
    assert_eq!(config["model_cfg"]["text_cfg"]["heads"], 4);
    assert_eq!(config["model_cfg"]["vision_cfg"]["head_width"], 32);
    let (_dir, weights) = open_clip_folder(&golden, &config);
    let clip = load(&weights);
    assert_eq!(heads(&clip), (4, 4), "text heads 4; image 128 / head_width 32");
    let declared = clip.numerics.heads.as_ref().expect("declared heads recorded");
    assert_eq!((declared.text, declared.vision), (HeadRule::Heads(4), HeadRule::HeadWidth(32)));
    assert_matches("open_clip folder, heads 4 / head_width 32", &clip, "openclip", &golden);
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
        assert_misses("bare openai.safetensors (width / 64)", &bare, prefix, &golden);
        assert_misses("golden hf/ (2 heads declared)", &hf_64, prefix, &golden);
    }
    // The declared heads are in the keys: a cache entry of one split is never another's.
    let dir = hf_folder(&golden, &read_json(&fixture_path("hf_config.json")));
    assert_ne!(load(dir.path()).numerics.identity(), hf_64.numerics.identity());
    // ... while a model without a config, or whose config declares 64-wide heads, keeps the
    // key it always had.
    for clip in [&bare, &hf_64] {
        assert!(!clip.numerics.identity().contains("heads"), "{}", clip.numerics.identity());
    }
}
