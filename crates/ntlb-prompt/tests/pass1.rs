//! Pass 1's shared forward with the hand-written batched backward gives burn autodiff's
//! ∂S_b/∂A_l on the replicated graph, to float32 rounding. Random weights, nothing from ../shared.

use burn::tensor::{Device, Distribution, Tensor};
use ntlb_clip::config::{Activation, TextConfig, VisionConfig};
use ntlb_clip::model::Probe;
use ntlb_clip::{l2_normalize, Clip, ClipConfig};
use ntlb_core::host::to_f32_vec;
use ntlb_prompt::relevance::{attention_gradients, attention_gradients_shared};

fn config(layers: usize, heads: usize, act: Activation) -> ClipConfig {
    ClipConfig {
        embed_dim: 64,
        vision: VisionConfig::Vit {
            width: 64,
            layers: 1,
            heads: 1,
            patch_size: 8,
            image_resolution: 16,
            activation: act,
        },
        text: TextConfig {
            context_length: 77,
            vocab_size: 1000,
            width: 128,
            layers,
            heads,
            activation: act,
        },
    }
}

#[test]
fn vjp_matches_autodiff() {
    let device = Device::flex().autodiff();
    // Both activations: the backward's derivative is written by hand for each.
    for (layers, heads, seed, act) in [
        (3, 2, 0u64, Activation::QuickGelu),
        (2, 4, 1, Activation::QuickGelu),
        (3, 2, 0, Activation::Gelu),
    ] {
        let clip = Clip::random(&config(layers, heads, act), seed, &device);
        // Prompts of different lengths in one chunk: shorter ones are padded past their end-of-text.
        let eot = [5usize, 19, 12, 9, 19];
        let prompts = Tensor::<3>::random([eot.len(), 20, 128], Distribution::Normal(0.0, 0.5), &device);
        let imgs = l2_normalize(Tensor::<2>::random([3, 64], Distribution::Normal(0.0, 1.0), &device));
        let tau = 100.0;
        let reference = attention_gradients(&clip, prompts.clone(), &eot, imgs.clone(), tau);
        let (_, cache) = clip.text.encode_embeddings_cached(prompts, &eot, Probe::Off);
        let shared = attention_gradients_shared(&clip, &cache, imgs, tau);
        assert_eq!(reference.len(), layers);
        for (l, (r, s)) in reference.iter().zip(&shared).enumerate() {
            assert_eq!(r.dims(), s.dims(), "layer {l}");
            let (r, s) = (to_f32_vec(r.clone()), to_f32_vec(s.clone()));
            let scale = r.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let diff = r.iter().zip(&s).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("{act} layers {layers} heads {heads} layer {l}: max |G| {scale:.3e}, max diff {diff:.3e}");
            assert!(scale > 1e-3, "layer {l}: gradient is trivially small ({scale})");
            assert!(
                diff <= 2e-5 * scale,
                "{act} layer {l}: shared pass 1 differs by {diff} (max |G| {scale})"
            );
        }
    }
}
