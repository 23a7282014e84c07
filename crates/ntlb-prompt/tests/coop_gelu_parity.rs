//! One CoOp + explainability step with exact-GELU towers equals the PyTorch re-implementation
//! of the original objective (the original only knows QuickGELU): coop_middle.json's inputs,
//! fixture `coop_middle_gelu.json` by `scripts/make_gelu_fixtures.py` (in
//! crates/ntlb-clip/tests/fixtures/gelu/, with the HF config that declares GELU). The model
//! folder is assembled in a tempdir from ../shared/golden. The QuickGELU model on the same
//! weights must miss it: the check can fail.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ntlb_clip::config::Activation;
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_golden::compare::{compare, FieldCheck};
use ntlb_golden::coop_cases::compute_coop_case_with;
use ntlb_prompt::objective::Pass1;
use serde_json::Value;

fn golden_dir(test: &str) -> Option<PathBuf> {
    ntlb_golden::fixtures::golden_dir_or_skip(test)
}

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ntlb-clip/tests/fixtures/gelu")
        .join(name)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture with coop_middle.json's inputs put back (it names the case and its digest).
fn fixture_case(golden: &Path) -> Value {
    let mut case = read_json(&fixture_path("coop_middle_gelu.json"));
    let source = case["inputs"]["golden_case"].as_str().expect("inputs.golden_case").to_string();
    let digest = ntlb_core::digest::sha256_file(&golden.join(&source)).unwrap();
    assert_eq!(
        case["inputs"]["golden_sha256"].as_str(),
        Some(digest.as_str()),
        "coop_middle_gelu.json was made from another {source}: rerun scripts/make_gelu_fixtures.py"
    );
    let source_case = read_json(&golden.join(&source));
    assert_eq!(case["config"], source_case["config"], "same settings as {source}");
    case["inputs"] = source_case["inputs"].clone();
    case
}

/// The case as `ntlb parity` hands it to the computation: outputs removed except the variants' settings.
fn inputs_only(case: &Value) -> Value {
    let mut c = case.clone();
    let variants: serde_json::Map<String, Value> = case["outputs"]["variants"]["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!({"config_changes": v["config_changes"]})))
        .collect();
    c["outputs"] = serde_json::json!({"variants": {"data": variants}});
    c
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

fn checks(model: &Path, golden: &Path, case: &Value, pass1: Pass1, want: Activation) -> Vec<FieldCheck> {
    let device = Device::flex().autodiff();
    let clip = Clip::load(model, None, &device).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    assert_eq!((clip.config.text.activation, clip.config.vision.activation()), (want, Some(want)));
    let tok = ClipTokenizer::from_file(&golden.join("tiny-clip/hf/tokenizer.json")).unwrap();
    let ours = compute_coop_case_with(&inputs_only(case), &clip, &tok, &device, pass1)
        .unwrap()
        .unwrap();
    let checks = compare(case["experiment"].as_str().unwrap(), &ours, &case["outputs"], "");
    // Every output of the fixture (variants: each field of each) must have been compared.
    for field in case["outputs"].as_object().unwrap().keys() {
        assert!(
            checks
                .iter()
                .any(|c| c.field == *field || c.field.starts_with(&format!("{field}."))),
            "`{field}` not compared"
        );
    }
    for must in [
        "logits",
        "expl_scores",
        "text_relevance_full",
        "ce_loss",
        "expl_loss",
        "total_loss",
        "grad_ctx",
        "grad_ctx_ce_part",
        "grad_ctx_expl_part",
        "variants.also_minimize_false.grad_ctx",
        "variants.expl_weight_0.grad_ctx",
    ] {
        assert!(checks.iter().any(|c| c.field == must), "{must} not compared");
    }
    checks
}

fn run_with(pass1: Pass1) {
    let Some(golden) = golden_dir(&format!("coop_middle_gelu via an HF GELU folder, pass 1 {pass1:?}")) else {
        return;
    };
    let case = fixture_case(&golden);
    let dir = hf_folder(&golden, &read_json(&fixture_path("hf_config.json")));
    for c in checks(dir.path(), &golden, &case, pass1, Activation::Gelu) {
        eprintln!(
            "GELU coop_middle {pass1:?} {}: max abs {:.2e} rel {:.2e} (tol {:.0e})",
            c.field, c.deviation.max_abs, c.deviation.rel, c.tolerance
        );
        assert!(c.ok(), "coop_middle_gelu, pass 1 {pass1:?}: {} off: {:?}", c.field, c.deviation);
    }
}

#[test]
fn coop_middle_gelu_shared_pass1() {
    run_with(Pass1::Shared);
}

#[test]
fn coop_middle_gelu_replicated_pass1() {
    run_with(Pass1::Replicated);
}

/// Fields the activation does not move (prompt assembly; here also the argmax positions and the
/// accuracy, which happen to agree).
fn activation_free(field: &str) -> bool {
    [
        "name_lens",
        "classnames_idx",
        "tokenized_prompts",
        "eot_positions",
        "prompt_token_source",
        "classname_explainability_weights",
        "prompt_embedding_row_norms",
        "expl_argmax_position",
        "acc",
    ]
    .contains(&field)
        || field.contains("config_changes")
}

#[test]
fn coop_middle_gelu_is_missed_by_the_quick_gelu_model() {
    let Some(golden) = golden_dir("coop_middle_gelu_is_missed_by_the_quick_gelu_model") else {
        return;
    };
    let case = fixture_case(&golden);
    let main = [
        "logits",
        "expl_scores",
        "text_relevance_full",
        "expl_loss",
        "grad_ctx",
        "grad_ctx_ce_part",
        "grad_ctx_expl_part",
        "variants.also_minimize_false.grad_ctx",
        "variants.expl_weight_0.grad_ctx",
    ];
    for c in checks(&golden.join("tiny-clip/hf"), &golden, &case, Pass1::Shared, Activation::QuickGelu) {
        if activation_free(&c.field) {
            continue;
        }
        let factor = if main.contains(&c.field.as_str()) { 100.0 } else { 10.0 };
        eprintln!(
            "QuickGELU model vs coop_middle_gelu {} (must miss by {factor}x): max abs {:.2e} rel {:.2e} = {:.0}x the tolerance",
            c.field,
            c.deviation.max_abs,
            c.deviation.rel,
            c.deviation.rel / c.tolerance
        );
        assert!(
            c.deviation.rel > factor * c.tolerance,
            "the QuickGELU model comes within {factor}x the tolerance of coop_middle_gelu {}: {:?}",
            c.field,
            c.deviation
        );
    }
}
