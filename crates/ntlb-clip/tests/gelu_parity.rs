//! Exact-GELU parity against the libraries researchers load CLIP checkpoints with: transformers
//! (`hidden_act: "gelu"`) and open_clip (`model_cfg` without `quick_gelu`), on the golden tiny
//! CLIP's weights. Fixtures by `scripts/make_gelu_fixtures.py` (in repo: features + config files,
//! no weights); the model folders are assembled in a tempdir from `../shared/golden`.
//! A QuickGELU model on the same weights must miss the GELU fixtures by far: the check can fail.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ntlb_clip::config::Activation;
use ntlb_clip::Clip;
use ntlb_golden::clip_cases::compute_clip_case;
use ntlb_golden::compare::{compare, FieldCheck};
use serde_json::Value;

const CASES: [&str; 2] = ["encode_text", "encode_image"];

fn golden_dir(test: &str) -> Option<PathBuf> {
    ntlb_golden::fixtures::golden_dir_or_skip(test)
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gelu").join(name)
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
        "{name} was made from another {source}: rerun scripts/make_gelu_fixtures.py"
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

fn activations(clip: &Clip) -> (Activation, Option<Activation>) {
    (clip.config.text.activation, clip.config.vision.activation())
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

/// A model with the other activation misses every field by at least 100x the tolerance.
fn assert_misses(label: &str, clip: &Clip, prefix: &str, golden: &Path) {
    for (name, c) in checks(clip, prefix, golden) {
        eprintln!(
            "{label} vs {name} {} (must miss): max abs {:.3e}, rel {:.3e} = {:.0}x the tolerance {:.0e}",
            c.field,
            c.deviation.max_abs,
            c.deviation.rel,
            c.deviation.rel / c.tolerance,
            c.tolerance
        );
        assert!(
            c.deviation.rel > 100.0 * c.tolerance,
            "{label} comes within 100x the tolerance of {name} {}: {:?}: the GELU check could not tell",
            c.field,
            c.deviation
        );
    }
}

fn load(path: &Path) -> Clip {
    Clip::load(path, None, &Device::flex()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn hf_gelu_matches_transformers() {
    let Some(golden) = golden_dir("hf_gelu_matches_transformers") else {
        return;
    };
    let dir = hf_folder(&golden, &read_json(&fixture_path("hf_config.json")));
    let clip = load(dir.path());
    assert_eq!(activations(&clip), (Activation::Gelu, Some(Activation::Gelu)));
    assert_matches("HF folder, hidden_act gelu", &clip, "hf_gelu", &golden);
}

#[test]
fn open_clip_gelu_matches_open_clip() {
    let Some(golden) = golden_dir("open_clip_gelu_matches_open_clip") else {
        return;
    };
    let config = read_json(&fixture_path("openclip_gelu_config.json"));
    assert!(
        config["model_cfg"].get("quick_gelu").is_none(),
        "the GELU config leaves quick_gelu out, as open_clip's"
    );
    let (_dir, weights) = open_clip_folder(&golden, &config);
    let clip = load(&weights);
    assert_eq!(activations(&clip), (Activation::Gelu, Some(Activation::Gelu)));
    assert_matches("open_clip folder, no quick_gelu", &clip, "openclip_gelu", &golden);
    // open_clip reads `quick_gelu: false` as absent: nn.GELU.
    let mut explicit = config.clone();
    explicit["model_cfg"]["quick_gelu"] = Value::Bool(false);
    let (_dir, weights) = open_clip_folder(&golden, &explicit);
    let clip = load(&weights);
    assert_eq!(activations(&clip), (Activation::Gelu, Some(Activation::Gelu)));
    assert_matches("open_clip folder, quick_gelu false", &clip, "openclip_gelu", &golden);
}

#[test]
fn open_clip_quick_gelu_matches_open_clip() {
    let Some(golden) = golden_dir("open_clip_quick_gelu_matches_open_clip") else {
        return;
    };
    let config = read_json(&fixture_path("openclip_quickgelu_config.json"));
    assert_eq!(config["model_cfg"]["quick_gelu"], Value::Bool(true));
    let (_dir, weights) = open_clip_folder(&golden, &config);
    let clip = load(&weights);
    assert_eq!(activations(&clip), (Activation::QuickGelu, Some(Activation::QuickGelu)));
    assert_matches("open_clip folder, quick_gelu true", &clip, "openclip_quickgelu", &golden);
    // The bare OpenAI file (no config beside it) is OpenAI's QuickGELU: the same numbers.
    let bare = load(&golden.join("tiny-clip/openai.safetensors"));
    assert_eq!(activations(&bare), (Activation::QuickGelu, Some(Activation::QuickGelu)));
    assert_matches("bare openai.safetensors", &bare, "openclip_quickgelu", &golden);
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
    let (_dir, weights) = open_clip_folder(&golden, &read_json(&fixture_path("openclip_quickgelu_config.json")));
    let oc_quick = load(&weights);
    for prefix in ["hf_gelu", "openclip_gelu"] {
        assert_misses("bare openai.safetensors (QuickGELU)", &bare, prefix, &golden);
        assert_misses("golden hf/ (quick_gelu)", &hf_quick, prefix, &golden);
        assert_misses("open_clip folder, quick_gelu true", &oc_quick, prefix, &golden);
    }
    // ... and the other way round: a GELU model misses the QuickGELU fixtures.
    let dir = hf_folder(&golden, &read_json(&fixture_path("hf_config.json")));
    assert_misses("HF folder, hidden_act gelu", &load(dir.path()), "openclip_quickgelu", &golden);
}
