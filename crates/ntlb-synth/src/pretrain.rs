//! `ntlb pretrain-synth`: a tiny CLIP trained contrastively (symmetric InfoNCE, learned
//! temperature) on captioned photos of the synthetic world, with AdamW. Every weight is a
//! leaf of the autodiff graph through a trainable weight source; the optimiser runs on the host.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use ntlb_clip::config::{ClipConfig, TextConfig, VisionConfig};
use ntlb_clip::model::WeightSource;
use ntlb_clip::preprocess::{clip_rgb, to_normalized_chw, Kind, Normalization, Raster};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::weights::LoadError;
use ntlb_clip::{l2_normalize, Clip};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::world::{caption, class_name, draw, n_classes, pretraining_domain, Domain};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainConfig {
    pub seed: u64,
    pub steps: usize,
    /// Stop earlier when this many minutes have passed.
    pub max_minutes: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    pub vocab_size: usize,
    pub width: usize,
    pub layers: usize,
    pub embed_dim: usize,
    pub eval_every: usize,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            seed: 7,
            steps: 6000,
            max_minutes: 40.0,
            lr: 1e-3,
            weight_decay: 0.05,
            warmup_steps: 100,
            vocab_size: 600,
            width: 128,
            layers: 2,
            embed_dim: 64,
            eval_every: 250,
        }
    }
}

impl PretrainConfig {
    pub fn clip_config(&self, vocab: usize) -> ClipConfig {
        ClipConfig {
            embed_dim: self.embed_dim,
            vision: VisionConfig::Vit {
                width: self.width,
                layers: self.layers,
                heads: self.width / 64,
                patch_size: 8,
                image_resolution: 32,
                activation: ntlb_clip::config::Activation::QuickGelu,
            },
            text: TextConfig {
                context_length: 77,
                vocab_size: vocab,
                width: self.width,
                layers: self.layers,
                heads: self.width / 64,
                activation: ntlb_clip::config::Activation::QuickGelu,
            },
        }
    }
}

/// Host copies of every weight, served as graph leaves while a step is built.
struct Params {
    values: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    leaves: Vec<(String, Tensor<1>)>,
}

impl WeightSource for Params {
    fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let v = self.values[key].1.clone();
        debug_assert_eq!(v.len(), shape.iter().product::<usize>());
        Ok(v)
    }

    fn take_tensor(&mut self, key: &str, _shape: &[usize], device: &Device) -> Result<Tensor<1>, LoadError> {
        let data = self.values[key].1.clone();
        let n = data.len();
        let t = Tensor::<1>::from_data(TensorData::new(data, [n]), device).require_grad();
        self.leaves.push((key.to_string(), t.clone()));
        Ok(t)
    }

    fn trainable(&self) -> bool {
        true
    }
}

fn init(config: &ClipConfig, seed: u64) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Clip::parameter_shapes(config)
        .into_iter()
        .map(|(k, shape)| {
            let n: usize = shape.iter().product();
            let fill = |std: f32, rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
                let d = Normal::new(0.0, std).expect("valid");
                (0..n).map(|_| d.sample(rng)).collect()
            };
            let v = if k == "logit_scale" {
                vec![(1.0f32 / 0.07).ln()]
            } else if k.ends_with(".bias") {
                vec![0.0; n]
            } else if k.contains("ln_") && k.ends_with(".weight") {
                vec![1.0; n]
            } else if k.contains("embedding") {
                fill(if k.contains("positional") { 0.01 } else { 0.02 }, &mut rng)
            } else if k == "text_projection" || k == "visual.proj" {
                fill((shape[0] as f32).powf(-0.5), &mut rng)
            } else {
                let fan_in: usize = shape[1..].iter().product();
                fill((fan_in as f32).powf(-0.5), &mut rng)
            };
            (k, (shape, v))
        })
        .collect()
}

/// The model input of a drawn picture: CLIP's test-time preprocessing at 32 px.
pub fn picture_tensor(c: usize, domain: Domain, rng: &mut impl Rng) -> Vec<f32> {
    let img = draw(c, domain, rng).to_rgb();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raster = Raster {
        width: w,
        height: h,
        channels: 3,
        data: img.into_raw(),
    };
    to_normalized_chw(&clip_rgb(raster, Kind::Plain, 32), &Normalization::OPENAI)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurvePoint {
    pub step: usize,
    pub loss: f64,
    pub temperature: f64,
    pub zero_shot_val: Option<f64>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PretrainManifest {
    pub ntlb_version: String,
    pub git_commit: Option<String>,
    pub config: PretrainConfig,
    pub clip: ClipConfig,
    pub steps_done: usize,
    pub minutes: f64,
    pub curve: Vec<CurvePoint>,
    pub zero_shot_val_top1: f64,
}

/// Zero-shot top-1 (%) with "a photo of a {}." on freshly drawn pictures of `domain`.
pub fn zero_shot_accuracy(clip: &Clip, tok: &ClipTokenizer, domain: Domain, per_class: usize, seed: u64) -> Result<f64> {
    let device = clip.text.token_embedding.device();
    let names: Vec<String> = (0..n_classes()).map(|c| format!("a photo of a {}.", class_name(c))).collect();
    let toks = tok.tokenize_all(&names, false)?;
    let ids: Vec<Vec<u32>> = toks.iter().map(|t| t.ids.clone()).collect();
    let eot: Vec<usize> = toks.iter().map(|t| t.eot).collect();
    let txt = l2_normalize(clip.encode_text(&ids, &eot).detach());
    let mut correct = 0;
    let total = per_class * n_classes();
    for chunk in (0..total).collect::<Vec<_>>().chunks(96) {
        let px: Vec<f32> = chunk
            .par_iter()
            .flat_map(|&i| {
                picture_tensor(
                    i % n_classes(),
                    domain,
                    &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (i as u64) << 8),
                )
            })
            .collect();
        let img = l2_normalize(
            clip.encode_image(Tensor::<4>::from_data(TensorData::new(px, [chunk.len(), 3, 32, 32]), &device))
                .detach(),
        );
        let pred = img
            .matmul(txt.clone().transpose())
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_default();
        correct += chunk.iter().zip(pred).filter(|(&i, p)| (i % n_classes()) as i64 == *p).count();
    }
    Ok(100.0 * correct as f64 / total as f64)
}

/// Train, then write `out/` in the Hugging Face layout with a manifest.
pub fn pretrain(out: &Path, cfg: &PretrainConfig, mut log: impl FnMut(&CurvePoint)) -> Result<PretrainManifest> {
    let start = Instant::now();
    std::fs::create_dir_all(out)?;
    let tokenizer_json = crate::bpe::train_tokenizer(&crate::world::corpus(), cfg.vocab_size)?;
    ntlb_core::atomic::write_atomic(&out.join("tokenizer.json"), tokenizer_json.as_bytes())?;
    let tok = ClipTokenizer::from_file(&out.join("tokenizer.json"))?;
    let vocab = tok.eot as usize + 1;
    let config = cfg.clip_config(vocab);
    let device = Device::flex().autodiff();
    let mut params = Params {
        values: init(&config, cfg.seed),
        leaves: Vec::new(),
    };
    let mut adam: BTreeMap<String, (Vec<f32>, Vec<f32>)> = params
        .values
        .iter()
        .map(|(k, (_, v))| (k.clone(), (vec![0.0; v.len()], vec![0.0; v.len()])))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let b = n_classes();
    let mut curve = Vec::new();
    let mut steps_done = 0;
    for step in 1..=cfg.steps {
        if start.elapsed().as_secs_f64() > cfg.max_minutes * 60.0 {
            break;
        }
        // One picture and one caption of every class per batch: no false negatives.
        let mut classes: Vec<usize> = (0..b).collect();
        classes.shuffle(&mut rng);
        let seeds: Vec<u64> = classes.iter().map(|_| rng.random()).collect();
        let styles: Vec<Domain> = classes.iter().map(|_| pretraining_domain(&mut rng)).collect();
        let px: Vec<f32> = classes
            .par_iter()
            .zip(&seeds)
            .zip(&styles)
            .flat_map(|((&c, &s), &d)| picture_tensor(c, d, &mut rand_chacha::ChaCha8Rng::seed_from_u64(s)))
            .collect();
        let caps: Vec<String> = classes.iter().zip(&styles).map(|(&c, &d)| caption(c, d, &mut rng)).collect();
        let toks = tok.tokenize_all(&caps, true)?;
        let ids: Vec<Vec<u32>> = toks.iter().map(|t| t.ids.clone()).collect();
        let eot: Vec<usize> = toks.iter().map(|t| t.eot).collect();

        params.leaves.clear();
        let clip = Clip::from_source(&mut params, &config, &device)?;
        let ls = Tensor::<1>::from_data(TensorData::new(params.values["logit_scale"].1.clone(), [1]), &device).require_grad();
        let img = l2_normalize(clip.encode_image(Tensor::<4>::from_data(TensorData::new(px, [b, 3, 32, 32]), &device)));
        let txt = l2_normalize(clip.encode_text(&ids, &eot));
        let logits = img.matmul(txt.transpose()) * ls.clone().exp().unsqueeze::<2>();
        let eye = Tensor::<2>::from_data(
            TensorData::new((0..b * b).map(|i| f32::from(i / b == i % b)).collect::<Vec<f32>>(), [b, b]),
            &device,
        );
        let l_img = -(log_softmax(logits.clone(), 1) * eye.clone()).sum() / b as f64;
        let l_txt = -(log_softmax(logits.transpose(), 1) * eye).sum() / b as f64;
        let loss = (l_img + l_txt) / 2.0;
        let loss_value: f64 = loss.clone().into_scalar::<f64>();
        anyhow::ensure!(loss_value.is_finite(), "pretraining loss is not finite at step {step}");
        let grads = loss.backward();
        let lr = if step <= cfg.warmup_steps {
            cfg.lr * step as f64 / cfg.warmup_steps as f64
        } else {
            let t = (step - cfg.warmup_steps) as f64 / (cfg.steps - cfg.warmup_steps).max(1) as f64;
            cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
        };
        let mut grad_of: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        for (k, leaf) in &params.leaves {
            if let Some(g) = leaf.grad(&grads) {
                let g = g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
                // Leaves of one key (none here) would add up.
                grad_of
                    .entry(k.clone())
                    .and_modify(|a| a.iter_mut().zip(&g).for_each(|(x, y)| *x += y))
                    .or_insert(g);
            }
        }
        if let Some(g) = ls.grad(&grads) {
            grad_of.insert(
                "logit_scale".into(),
                g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default(),
            );
        }
        let (b1, b2, eps) = (0.9f32, 0.98f32, 1e-6f32);
        let (bc1, bc2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for (k, g) in &grad_of {
            let (_, w) = params.values.get_mut(k).expect("known key");
            let (m, v) = adam.get_mut(k).expect("known key");
            // No decay on gains, biases, embeddings and the temperature (CLIP's recipe).
            let decay = if k.ends_with(".bias") || k.contains("ln_") || k.contains("embedding") || k == "logit_scale" {
                0.0
            } else {
                cfg.weight_decay as f32
            };
            for i in 0..w.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                w[i] -= lr as f32 * ((m[i] / bc1) / ((v[i] / bc2).sqrt() + eps) + decay * w[i]);
            }
        }
        let ls_v = &mut params.values.get_mut("logit_scale").expect("present").1[0];
        *ls_v = ls_v.clamp(0.0, 100f32.ln());
        steps_done = step;
        let zero_shot = if step % cfg.eval_every == 0 {
            let eval_clip = Clip::from_source(&mut HostOnly(&params.values), &config, &Device::flex())?;
            Some(zero_shot_accuracy(&eval_clip, &tok, Domain::Photo, 4, 99)?)
        } else {
            None
        };
        let p = CurvePoint {
            step,
            loss: loss_value,
            temperature: (params.values["logit_scale"].1[0] as f64).exp(),
            zero_shot_val: zero_shot,
            seconds: start.elapsed().as_secs_f64(),
        };
        log(&p);
        if step % 25 == 0 || zero_shot.is_some() {
            curve.push(p);
        }
    }
    let clip = Clip::from_source(&mut HostOnly(&params.values), &config, &Device::flex())?;
    let acc = zero_shot_accuracy(&clip, &tok, Domain::Photo, 10, 1234)?;
    save_hf(out, &config, &params.values)?;
    let manifest = PretrainManifest {
        ntlb_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: std::process::Command::new("git")
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()),
        config: cfg.clone(),
        clip: config,
        steps_done,
        minutes: start.elapsed().as_secs_f64() / 60.0,
        curve,
        zero_shot_val_top1: acc,
    };
    ntlb_core::atomic::write_atomic(&out.join("manifest.json"), serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    Ok(manifest)
}

/// A plain (non-trainable) source over host values.
struct HostOnly<'a>(&'a BTreeMap<String, (Vec<usize>, Vec<f32>)>);

impl WeightSource for HostOnly<'_> {
    fn take(&mut self, key: &str, _shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        Ok(self.0[key].1.clone())
    }
}

/// Write `model.safetensors` (Hugging Face names, float32) and `config.json`.
fn save_hf(out: &Path, config: &ClipConfig, values: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) -> Result<()> {
    let mut tensors = Vec::new();
    for (k, (shape, data)) in values {
        let (hf, transpose) = ntlb_clip::weights::canonical_to_hf(k).with_context(|| format!("no Hugging Face name for `{k}`"))?;
        let (shape, data) = if transpose {
            (vec![shape[1], shape[0]], ntlb_clip::weights::transpose2(data, shape[0], shape[1]))
        } else {
            (if shape.is_empty() { vec![] } else { shape.clone() }, data.clone())
        };
        tensors.push((hf, shape, data));
    }
    ntlb_core::store::write_tensors(&out.join("model.safetensors"), &tensors)?;
    let (
        VisionConfig::Vit {
            width,
            layers,
            heads,
            patch_size,
            image_resolution,
            activation,
        },
        t,
    ) = (&config.vision, &config.text)
    else {
        anyhow::bail!("the synthetic CLIP is a ViT");
    };
    let hf = serde_json::json!({
        "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": config.embed_dim, "logit_scale_init_value": 2.6592,
        "text_config": {"hidden_size": t.width, "intermediate_size": 4 * t.width, "num_attention_heads": t.heads, "num_hidden_layers": t.layers,
                        "max_position_embeddings": t.context_length, "vocab_size": t.vocab_size, "hidden_act": t.activation.name(), "layer_norm_eps": 1e-5,
                        "bos_token_id": t.vocab_size - 2, "eos_token_id": t.vocab_size - 1, "projection_dim": config.embed_dim},
        "vision_config": {"hidden_size": width, "intermediate_size": 4 * width, "num_attention_heads": heads, "num_hidden_layers": layers,
                          "patch_size": patch_size, "image_size": image_resolution, "hidden_act": activation.name(), "layer_norm_eps": 1e-5, "projection_dim": config.embed_dim}
    });
    ntlb_core::atomic::write_atomic(&out.join("config.json"), serde_json::to_string_pretty(&hf)?.as_bytes())?;
    Ok(())
}
