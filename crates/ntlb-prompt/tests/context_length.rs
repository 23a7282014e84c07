//! A model whose text tower declares another context than CLIP's 77 positions: the objective's
//! relevance rows are laid out at the model's stride, each score reads its own row, and a prompt
//! past the model's context is refused by the tokenizer rather than reaching the encoder. The
//! committed tiny CLIP's architecture (`models/synth-clip`) with the context changed and seeded
//! random weights; nothing from ../shared.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::{l2_normalize, Clip};
use ntlb_prompt::objective::{step, LossConfig, StepOptions};
use ntlb_prompt::prompt::{PromptConfig, PromptLayout};

fn model_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/synth-clip")
}

fn names() -> Vec<String> {
    ["red circle", "blue", "green star"].iter().map(|s| s.to_string()).collect()
}

/// Rows, scores and positions of one step on a model with `context_length` positions.
fn rows_at(context_length: usize) {
    let device = Device::flex().autodiff();
    let base = Clip::load(&model_dir(), None, &device).unwrap();
    let mut config = base.config.clone();
    config.text.context_length = context_length;
    let clip = Clip::random(&config, 3, &device);
    let tok = ClipTokenizer::for_model(&model_dir(), None)
        .unwrap()
        .with_context_length(context_length);
    let cfg = PromptConfig {
        n_ctx: 4,
        ..PromptConfig::default()
    };
    let layout = PromptLayout::new(&tok, &names(), &cfg).unwrap();
    assert!(layout.tokenized.iter().all(|t| t.len() == context_length));
    let ctx = layout.initial_context(&clip, 7);
    let (b, e) = (2, clip.config.embed_dim);
    let x: Vec<f32> = (0..b * e).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
    let img = l2_normalize(Tensor::<2>::from_data(TensorData::new(x, [b, e]), &device));
    let opts = StepOptions {
        want_scores: true,
        want_rows: true,
        ..StepOptions::default()
    };
    let loss = LossConfig {
        expl_weight: 1.0,
        ..LossConfig::default()
    };
    let r = step(&clip, &layout, &ctx, [4, config.text.width], img, &[0, 2], &loss, &opts).unwrap();
    let c = layout.n_classes();
    assert_eq!(r.relevance.len(), b * c * context_length, "rows [B·C·L] at the model's L");
    for entry in 0..b * c {
        let row = &r.relevance[entry * context_length..(entry + 1) * context_length];
        let eot = layout.eot[entry % c];
        let sum: f64 = row.iter().map(|&v| v as f64).sum();
        assert!((sum - 1.0).abs() < 1e-5, "entry {entry}: row sums to {sum}");
        assert!(
            row[eot..].iter().all(|&v| v == 0.0),
            "entry {entry}: nothing at or past end-of-text"
        );
        assert_eq!(
            row[r.score_positions[entry]], r.scores[entry],
            "entry {entry}: the score is its own row's"
        );
    }
}

#[test]
fn relevance_rows_follow_a_shorter_context() {
    rows_at(64);
}

#[test]
fn relevance_rows_follow_a_longer_context() {
    rows_at(96);
}

#[test]
fn a_prompt_past_the_models_context_is_refused() {
    let tok = ClipTokenizer::for_model(&model_dir(), None).unwrap().with_context_length(8);
    let cfg = PromptConfig {
        n_ctx: 4,
        ..PromptConfig::default()
    };
    let err = PromptLayout::new(&tok, &["purple striped cross triangle".to_string()], &cfg).unwrap_err();
    assert!(format!("{err:#}").contains("too long"), "{err:#}");
}
