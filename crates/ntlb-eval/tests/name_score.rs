//! The report's class-name score (one class at a time against its own images) equals the
//! true-class entries of the training objective's scores (all classes at once), on the
//! committed tiny CLIP: an independent path to the same numbers.

use burn::tensor::{Device, Tensor, TensorData};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;
use ntlb_eval::relevance_maps::mean_name_score;
use ntlb_prompt::objective::{step, LossConfig, StepOptions};
use ntlb_prompt::prompt::{PromptConfig, PromptLayout};
use rand::{Rng, SeedableRng};

#[test]
fn name_score_equals_the_objectives_true_class_scores() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/synth-clip");
    let device = Device::flex().autodiff();
    let clip = Clip::load(&model, None, &device).unwrap();
    let tok = ClipTokenizer::for_model(&model, None).unwrap();
    let names: Vec<String> = ["red circle", "blue star", "green square", "yellow ring", "purple cross"]
        .map(String::from)
        .to_vec();
    let cfg = PromptConfig {
        n_ctx: 6,
        ..PromptConfig::default()
    };
    let layout = PromptLayout::new(&tok, &names, &cfg).unwrap();
    let w = clip.config.text.width;
    let dim = clip.config.embed_dim;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let ctx: Vec<f32> = (0..layout.n_ctx * w).map(|_| rng.random_range(-0.05..0.05)).collect();
    let labels = vec![0, 3, 3, 1, 4, 0, 2];
    let mut feats: Vec<f32> = (0..labels.len() * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    for row in feats.chunks_mut(dim) {
        let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.iter_mut().for_each(|v| *v /= n);
    }
    let ours = mean_name_score(&clip, &layout, &ctx, [layout.n_ctx, w], &feats, &labels, dim).unwrap();
    let img = Tensor::<2>::from_data(TensorData::new(feats.clone(), [labels.len(), dim]), &device);
    let loss = LossConfig {
        expl_weight: 0.0,
        ..LossConfig::default()
    };
    let opts = StepOptions {
        chunk: 2,
        want_scores: true,
        want_rows: false,
        want_grad: false,
        // The shared pass 1 (hand-written backward): a second, independent path to the scores.
        ..StepOptions::default()
    };
    let r = step(&clip, &layout, &ctx, [layout.n_ctx, w], img, &labels, &loss, &opts).unwrap();
    let c = names.len();
    let reference = labels.iter().enumerate().map(|(b, &y)| r.scores[b * c + y] as f64).sum::<f64>() / labels.len() as f64;
    assert!(reference > 0.0 && reference <= 1.0, "{reference}");
    assert!((ours - reference).abs() < 1e-6, "name score {ours} vs objective {reference}");
}
