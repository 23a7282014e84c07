//! `[loss] name_score`: the class-name score as the max (the paper's), mean or min of the
//! relevance over the name positions. The objective's gradient w.r.t. the context, for each
//! aggregation and both pass-1 modes, against central finite differences in float64 of the
//! same objective (pass 1's G frozen at the base context, as the method and the reference
//! treat it); max ≥ mean ≥ min on the scores; three different gradients. The committed tiny
//! CLIP (`models/synth-clip`) with its tokenizer; nothing from ../shared.

use std::path::PathBuf;

use burn::tensor::{Device, FloatDType, Tensor, TensorData};
use ntlb_clip::model::Probe;
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::{l2_normalize, Clip};
use ntlb_prompt::class_text::{ClassChunk, ClassTextEncoder};
use ntlb_prompt::objective::{step, LossConfig, NameScore, Pass1, StepOptions, StepResult};
use ntlb_prompt::prompt::{ClassPosition, PromptConfig, PromptLayout};
use ntlb_prompt::relevance::{attention_gradients, relevance_rows};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

const AGGS: [NameScore; 3] = [NameScore::Max, NameScore::Mean, NameScore::Min];
const LAMBDA: f64 = 5.0;

fn f64s<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
}

/// The model, its prompt layout (names of 1 to 4 tokens), the base context, image features and
/// labels, on a float64 autodiff CPU device.
struct Setup {
    clip: Clip,
    layout: PromptLayout,
    ctx: Vec<f32>,
    shape: [usize; 2],
    img: Tensor<2>,
    labels: Vec<usize>,
}

fn setup(position: ClassPosition) -> Setup {
    // A device's precision is set once per process, before its first tensor: tests share it.
    static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    let device = DEVICE
        .get_or_init(|| {
            let mut d = Device::flex();
            d.configure(FloatDType::F64).expect("flex computes in float64");
            d.autodiff()
        })
        .clone();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/synth-clip");
    let clip = Clip::load(&dir, None, &device).unwrap();
    let tok = ClipTokenizer::for_model(&dir, None).unwrap();
    let names: Vec<String> = [
        "red circle",
        "blue",
        "green star",
        "yellow heart square",
        "purple striped cross triangle",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cfg = PromptConfig {
        n_ctx: 4,
        class_position: position,
        ..PromptConfig::default()
    };
    let layout = PromptLayout::new(&tok, &names, &cfg).unwrap();
    assert!(
        layout.name_lens.contains(&1) && layout.name_lens.iter().filter(|&&n| n >= 2).count() >= 3,
        "{:?}",
        layout.name_lens
    );
    let ctx = layout.initial_context(&clip, 7);
    let shape = [4, clip.config.text.width];
    // Pictures are not the point: random unit features in the embedding space.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let normal = Normal::new(0.0f64, 1.0).unwrap();
    let b = 3;
    let e = clip.config.embed_dim;
    let x: Vec<f64> = (0..b * e).map(|_| normal.sample(&mut rng)).collect();
    let img = l2_normalize(Tensor::<2>::from_data(TensorData::new(x, [b, e]), &device));
    Setup {
        clip,
        layout,
        ctx,
        shape,
        img,
        labels: vec![0, 3, 4],
    }
}

fn loss(agg: NameScore) -> LossConfig {
    LossConfig {
        expl_weight: LAMBDA,
        name_score: agg,
        ..LossConfig::default()
    }
}

fn run_step(s: &Setup, agg: NameScore, pass1: Pass1) -> StepResult {
    let opts = StepOptions {
        want_scores: true,
        want_rows: true,
        pass1,
        ..StepOptions::default()
    };
    step(&s.clip, &s.layout, &s.ctx, s.shape, s.img.clone(), &s.labels, &loss(agg), &opts).unwrap()
}

/// The objective as a function of the context with pass 1's G fixed: what `step`
/// differentiates. Written from the public pieces, all classes in one chunk in class order.
struct Frozen<'a> {
    s: &'a Setup,
    chunk: ClassChunk,
    g: Vec<Tensor<5>>,
}

impl<'a> Frozen<'a> {
    fn new(s: &'a Setup) -> Frozen<'a> {
        let enc = ClassTextEncoder::new(&s.clip, &s.layout);
        let all: Vec<usize> = (0..s.layout.n_classes()).collect();
        let chunk = enc.chunk(&all);
        let device = s.img.device();
        let ctx = Tensor::<2>::from_data(TensorData::new(s.ctx.clone(), s.shape), &device);
        let g = attention_gradients(
            &s.clip,
            enc.prompts(&chunk, ctx),
            &chunk.eot,
            s.img.clone(),
            s.clip.logit_scale_exp(),
        );
        Frozen { s, chunk, g }
    }

    /// (loss, the name position each score reads: argmax / argmin of the row on the name). The
    /// aggregation is computed here on the host from the relevance rows, not by the crate's
    /// `name_scores_with`, so the check is of the crate's scores too.
    fn eval(&self, ctx: &[f64], agg: NameScore) -> (f64, Vec<usize>) {
        let s = self.s;
        let device = s.img.device();
        let enc = ClassTextEncoder::new(&s.clip, &s.layout);
        let ctx = Tensor::<2>::from_data(TensorData::new(ctx.to_vec(), s.shape), &device);
        let out = enc.encode(&self.chunk, ctx, Probe::Record);
        let tau = s.clip.logit_scale_exp() as f64;
        let logits = f64s(s.img.clone().matmul(l2_normalize(out.features).transpose()));
        let (b, c) = (s.labels.len(), s.layout.n_classes());
        let rows = relevance_rows(&out.attention, &self.g, &self.chunk.eot, b);
        let mask = s.layout.name_mask();
        let rows = f64s(rows);
        let len = self.chunk.len;
        let mut total = 0.0;
        let mut picks = Vec::new();
        for (bi, &y) in s.labels.iter().enumerate() {
            let z: Vec<f64> = (0..c).map(|k| tau * logits[bi * c + k]).collect();
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            total += (lse - z[y]) / b as f64;
            for k in 0..c {
                let w = if k == y { -1.0 / b as f64 } else { 1.0 / (b * c) as f64 };
                let r = &rows[(bi * c + k) * len..(bi * c + k + 1) * len];
                let on: Vec<usize> = (0..len).filter(|&p| mask[k][p] > 0.0).collect();
                let pick = match agg {
                    NameScore::Min => on.iter().copied().min_by(|&p, &q| r[p].total_cmp(&r[q])),
                    _ => on.iter().copied().max_by(|&p, &q| r[p].total_cmp(&r[q])),
                }
                .unwrap();
                let score = match agg {
                    NameScore::Mean => on.iter().map(|&p| r[p]).sum::<f64>() / on.len() as f64,
                    _ => r[pick],
                };
                total += LAMBDA * w * score;
                picks.push(pick);
            }
        }
        (total, picks)
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Central differences along unit directions (random, and the coordinates of the largest
/// gradient entries) against ⟨∇, v⟩, for every aggregation and both pass-1 modes.
fn gradients_match_finite_differences(position: ClassPosition) {
    let s = setup(position);
    let frozen = Frozen::new(&s);
    let base: Vec<f64> = s.ctx.iter().map(|&v| v as f64).collect();
    let n = base.len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let normal = Normal::new(0.0f64, 1.0).unwrap();
    let mut grads = Vec::new();
    for agg in AGGS {
        let shared = run_step(&s, agg, Pass1::Shared);
        let replicated = run_step(&s, agg, Pass1::Replicated);
        let (l0, picks0) = frozen.eval(&base, agg);
        // `step` reads logits and scores back as float32: its loss agrees to that rounding.
        assert!(
            (l0 - shared.total).abs() < 1e-6 * l0.abs().max(1.0),
            "{agg}: frozen objective {l0} vs step {}",
            shared.total
        );
        let g: Vec<f64> = shared.grad_ctx.iter().map(|&v| v as f64).collect();
        let gn = norm(&g);
        let mut dirs: Vec<Vec<f64>> = (0..3)
            .map(|_| {
                let v: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
                let k = norm(&v);
                v.into_iter().map(|x| x / k).collect()
            })
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| g[b].abs().total_cmp(&g[a].abs()));
        for &i in &order[..3] {
            let mut v = vec![0.0; n];
            v[i] = 1.0;
            dirs.push(v);
        }
        // Coordinate directions have third derivatives of ~10³: h = 1e-4 leaves a 5e-6 truncation
        // error, 1e-5 a 100 times smaller one; float64 rounding (1e-16/h) stays far below.
        let h = 1e-5;
        for (pass1, r) in [(Pass1::Shared, &shared), (Pass1::Replicated, &replicated)] {
            let gr: Vec<f64> = r.grad_ctx.iter().map(|&v| v as f64).collect();
            for (d, v) in dirs.iter().enumerate() {
                let at = |t: f64| -> Vec<f64> { base.iter().zip(v).map(|(x, dv)| x + t * dv).collect() };
                let ((lp, pp), (lm, pm)) = (frozen.eval(&at(h), agg), frozen.eval(&at(-h), agg));
                assert!(
                    pp == picks0 && pm == picks0,
                    "{agg}: a selected position changes within ±h: no derivative to check"
                );
                let fd = (lp - lm) / (2.0 * h);
                let an: f64 = gr.iter().zip(v).map(|(a, b)| a * b).sum();
                let err = (fd - an).abs();
                eprintln!("{position:?} {agg} {pass1:?} dir {d}: fd {fd:+.9e} grad {an:+.9e} |diff| {err:.2e} (|grad| {gn:.3e})");
                // float64 throughout; what is left is the gradient's float32 read-back
                // (6e-8 relative) and the differences' O(h²) truncation.
                assert!(
                    err <= 1e-6 * gn,
                    "{position:?} {agg} {pass1:?} direction {d}: fd {fd} vs grad {an} (|grad| {gn})"
                );
            }
        }
        grads.push(g);
    }
    // The three aggregations move the context differently: by at least 1000 times the
    // finite-difference tolerance above (the cross-entropy's share is common to all three).
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let d: Vec<f64> = grads[i].iter().zip(&grads[j]).map(|(a, b)| a - b).collect();
        let rel = norm(&d) / norm(&grads[i]);
        eprintln!("{position:?}: |g_{} − g_{}| / |g_{}| = {rel:.3e}", AGGS[i], AGGS[j], AGGS[i]);
        assert!(rel > 1e-3, "{} and {} give the same gradient ({rel})", AGGS[i], AGGS[j]);
    }
}

#[test]
fn gradients_match_finite_differences_middle() {
    gradients_match_finite_differences(ClassPosition::Middle);
}

#[test]
fn gradients_match_finite_differences_end() {
    gradients_match_finite_differences(ClassPosition::End);
}

/// max ≥ mean ≥ min entry by entry (equal on a one-token name, strictly apart somewhere), the
/// mean is the average of the row over the name, and each position names the entry it reads.
#[test]
fn scores_are_ordered_and_positions_point_at_them() {
    let s = setup(ClassPosition::Middle);
    let r: Vec<StepResult> = AGGS.iter().map(|&a| run_step(&s, a, Pass1::Shared)).collect();
    let (max, mean, min) = (&r[0], &r[1], &r[2]);
    let c = s.layout.n_classes();
    let mask = s.layout.name_mask();
    let mut strict = 0;
    for e in 0..max.scores.len() {
        let k = e % c;
        let (a, m, b) = (max.scores[e], mean.scores[e], min.scores[e]);
        assert!(a >= m && m >= b, "entry {e}: max {a} mean {m} min {b}");
        if s.layout.name_lens[k] == 1 {
            assert!(a == b && (a - m).abs() <= 1e-6 * a, "one-token name {k}: {a} {m} {b}");
        } else if a > m && m > b {
            strict += 1;
        }
        let l = s.clip.config.text.context_length;
        let row = &mean.relevance[e * l..(e + 1) * l];
        let avg = (0..l)
            .filter(|&p| p < mask[k].len() && mask[k][p] > 0.0)
            .map(|p| row[p] as f64)
            .sum::<f64>()
            / s.layout.name_lens[k] as f64;
        assert!(
            (avg - m as f64).abs() <= 1e-6 * avg.abs(),
            "entry {e}: mean {m} vs row average {avg}"
        );
        for (res, name) in [(max, "max"), (min, "min")] {
            let p = res.score_positions[e];
            assert!(mask[k][p] > 0.0, "{name} entry {e}: position {p} is not on the name");
            assert_eq!(res.relevance[e * l + p], res.scores[e], "{name} entry {e}: position {p}");
        }
        assert_eq!(mean.score_positions[e], max.score_positions[e], "mean reports the argmax position");
    }
    assert!(strict >= 5, "only {strict} entries with max > mean > min");
    // The name score changes only the explainability term.
    assert_eq!(max.logits, min.logits);
    assert_eq!(max.ce, mean.ce);
}

#[test]
fn config_spellings() {
    let l: LossConfig = toml::from_str("expl_weight = 1.0\nname_score = \"mean\"\n").unwrap();
    assert_eq!(l.name_score, NameScore::Mean);
    let old: LossConfig = toml::from_str("expl_weight = 1.0\n").unwrap();
    assert_eq!(old.name_score, NameScore::Max);
    assert!(toml::from_str::<LossConfig>("name_score = \"median\"\n").is_err());
    // Left out at max: serialised configs (and the job keys hashing them) are what they were.
    assert!(!serde_json::to_string(&LossConfig::default()).unwrap().contains("name_score"));
    assert!(serde_json::to_string(&loss(NameScore::Min))
        .unwrap()
        .contains("\"name_score\":\"min\""));
    for n in NameScore::NAMES {
        assert_eq!(n.parse::<NameScore>().unwrap().to_string(), n);
    }
    assert!("Max".parse::<NameScore>().is_err());
}
