//! Six steps of the reference trainer (golden `coop_trajectory.json`: its forward_backward with
//! Dassl's SGD, warm-up and cosine schedule on fixed images) equal ntlb's training loop, the
//! one `ntlb train` runs, through both checkpoint layouts (needs ../shared/golden).

use burn::tensor::Device;
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_golden::compare::compare;
use ntlb_golden::trajectory::compute_trajectory_case;

fn run(model: &str) {
    let Some(dir) = ntlb_golden::fixtures::golden_dir_or_skip(&format!("trajectory parity via {model}")) else {
        return;
    };
    let device = Device::flex().autodiff();
    let clip = Clip::load(&dir.join("tiny-clip").join(model), None, &device).unwrap();
    let tok = ClipTokenizer::from_file(&dir.join("tiny-clip/hf/tokenizer.json")).unwrap();
    let case: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("coop_trajectory.json")).unwrap()).unwrap();
    let mut inputs = case.clone();
    inputs.as_object_mut().unwrap().remove("outputs");
    let ours = compute_trajectory_case(&inputs, &clip, &tok, &device).unwrap().unwrap();
    let checks = compare("coop_trajectory", &ours, &case["outputs"], "");
    for must in ["lr", "loss", "ce", "expl", "displacement", "momentum_final"] {
        assert!(checks.iter().any(|c| c.field == must), "{must} not compared");
    }
    for c in &checks {
        eprintln!(
            "{model} {}: max abs {:.2e} rel {:.2e} (tol {:.0e})",
            c.field, c.deviation.max_abs, c.deviation.rel, c.tolerance
        );
        assert!(
            c.ok(),
            "trajectory via {model}: {} off: {:?} (tolerance {})",
            c.field,
            c.deviation,
            c.tolerance
        );
    }
}

#[test]
fn trajectory_openai_layout() {
    run("openai.safetensors");
}

#[test]
fn trajectory_hf_layout() {
    run("hf");
}
