//! One CoOp + explainability step equals the reference's (needs ../shared/golden).

use std::path::PathBuf;

use burn::tensor::Device;
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_golden::compare::compare;
use ntlb_golden::coop_cases::compute_coop_case_with;
use ntlb_prompt::objective::Pass1;

fn golden(test: &str) -> Option<PathBuf> {
    ntlb_golden::fixtures::golden_dir_or_skip(test)
}

/// The case as `ntlb parity` hands it to the computation: outputs removed except the variants' settings.
fn inputs_only(case: &serde_json::Value) -> serde_json::Value {
    let mut c = case.clone();
    let variants: serde_json::Map<String, serde_json::Value> = case["outputs"]["variants"]["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!({"config_changes": v["config_changes"]})))
        .collect();
    c["outputs"] = serde_json::json!({"variants": {"data": variants}});
    c
}

fn run(model: &str, case_name: &str) {
    for pass1 in [Pass1::Shared, Pass1::Replicated] {
        run_with(model, case_name, pass1);
    }
}

fn run_with(model: &str, case_name: &str, pass1: Pass1) {
    let Some(dir) = golden(&format!("coop parity {case_name} via {model}")) else {
        return;
    };
    let device = Device::flex().autodiff();
    let clip = Clip::load(&dir.join("tiny-clip").join(model), None, &device).unwrap();
    let tok = ClipTokenizer::from_file(&dir.join("tiny-clip/hf/tokenizer.json")).unwrap();
    let case: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(case_name)).unwrap()).unwrap();
    let ours = compute_coop_case_with(&inputs_only(&case), &clip, &tok, &device, pass1)
        .unwrap()
        .unwrap();
    let checks = compare(case["experiment"].as_str().unwrap(), &ours, &case["outputs"], "");
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
    for c in &checks {
        eprintln!(
            "{model} {case_name} {pass1:?} {}: max abs {:.2e} rel {:.2e}",
            c.field, c.deviation.max_abs, c.deviation.rel
        );
        assert!(
            c.ok(),
            "{case_name} via {model}, pass 1 {pass1:?}: {} off: {:?}",
            c.field,
            c.deviation
        );
    }
}

#[test]
fn coop_middle_openai_layout() {
    run("openai.safetensors", "coop_middle.json");
}

#[test]
fn coop_middle_hf_layout() {
    run("hf", "coop_middle.json");
}

#[test]
fn coop_end_openai_layout() {
    run("openai.safetensors", "coop_end.json");
}

#[test]
fn coop_end_hf_layout() {
    run("hf", "coop_end.json");
}

#[test]
fn class_name_too_long_for_the_context_is_refused() {
    let Some(dir) = golden("class_name_too_long_for_the_context_is_refused") else {
        return;
    };
    let tok = ClipTokenizer::from_file(&dir.join("tiny-clip/hf/tokenizer.json")).unwrap();
    let long = vec!["word"; 62].join(" ");
    let names = vec!["goldfish".to_string(), long];
    let err = ntlb_prompt::prompt::PromptLayout::new(&tok, &names, &ntlb_prompt::prompt::PromptConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("too long") && err.contains("16 context tokens"), "{err}");
    // The same name fits without the 16 context tokens... but not with them.
    assert!(tok.tokenize(&vec!["word"; 62].join(" "), false).is_ok());
}
