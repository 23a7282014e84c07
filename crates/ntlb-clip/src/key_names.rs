//! Hugging Face `CLIPModel` <-> canonical (OpenAI state-dict) names: one table, `KEY_TABLE`
//! below, read in both directions. Besides renames, `text_projection` and `visual_projection`
//! are stored `[E, W]` there (transposed), `pre_layrnorm` is spelled so, and the `position_ids`
//! index buffers are ignored. Of an OpenAI / open_clip file, the integer entries
//! `input_resolution`, `context_length`, `vocab_size` of the TorchScript state dict and
//! BatchNorm's `num_batches_tracked` are ignored, as `build_model` does.

/// The two-way key table, the one place the Hugging Face remap is written: (canonical,
/// Hugging Face, stored transposed in Hugging Face). Read left to right when loading a Hugging
/// Face file, right to left when writing one (`ntlb pretrain-synth`). `{i}` is a layer index; a
/// pattern ending in `.` covers every tensor of that module (`weight`, `bias`).
#[rustfmt::skip]
const KEY_TABLE: &[(&str, &str, bool)] = &[
    ("token_embedding.weight",                          "text_model.embeddings.token_embedding.weight",         false),
    ("positional_embedding",                            "text_model.embeddings.position_embedding.weight",      false),
    ("transformer.resblocks.{i}.ln_1.",                 "text_model.encoder.layers.{i}.layer_norm1.",           false),
    ("transformer.resblocks.{i}.attn.q_proj.",          "text_model.encoder.layers.{i}.self_attn.q_proj.",      false),
    ("transformer.resblocks.{i}.attn.k_proj.",          "text_model.encoder.layers.{i}.self_attn.k_proj.",      false),
    ("transformer.resblocks.{i}.attn.v_proj.",          "text_model.encoder.layers.{i}.self_attn.v_proj.",      false),
    ("transformer.resblocks.{i}.attn.out_proj.",        "text_model.encoder.layers.{i}.self_attn.out_proj.",    false),
    ("transformer.resblocks.{i}.ln_2.",                 "text_model.encoder.layers.{i}.layer_norm2.",           false),
    ("transformer.resblocks.{i}.mlp.c_fc.",             "text_model.encoder.layers.{i}.mlp.fc1.",               false),
    ("transformer.resblocks.{i}.mlp.c_proj.",           "text_model.encoder.layers.{i}.mlp.fc2.",               false),
    ("ln_final.weight",                                 "text_model.final_layer_norm.weight",                   false),
    ("ln_final.bias",                                   "text_model.final_layer_norm.bias",                     false),
    ("text_projection",                                 "text_projection.weight",                               true),
    ("visual.class_embedding",                          "vision_model.embeddings.class_embedding",              false),
    ("visual.conv1.weight",                             "vision_model.embeddings.patch_embedding.weight",       false),
    ("visual.positional_embedding",                     "vision_model.embeddings.position_embedding.weight",    false),
    ("visual.ln_pre.weight",                            "vision_model.pre_layrnorm.weight",                     false),
    ("visual.ln_pre.bias",                              "vision_model.pre_layrnorm.bias",                       false),
    ("visual.transformer.resblocks.{i}.ln_1.",          "vision_model.encoder.layers.{i}.layer_norm1.",         false),
    ("visual.transformer.resblocks.{i}.attn.q_proj.",   "vision_model.encoder.layers.{i}.self_attn.q_proj.",    false),
    ("visual.transformer.resblocks.{i}.attn.k_proj.",   "vision_model.encoder.layers.{i}.self_attn.k_proj.",    false),
    ("visual.transformer.resblocks.{i}.attn.v_proj.",   "vision_model.encoder.layers.{i}.self_attn.v_proj.",    false),
    ("visual.transformer.resblocks.{i}.attn.out_proj.", "vision_model.encoder.layers.{i}.self_attn.out_proj.",  false),
    ("visual.transformer.resblocks.{i}.ln_2.",          "vision_model.encoder.layers.{i}.layer_norm2.",         false),
    ("visual.transformer.resblocks.{i}.mlp.c_fc.",      "vision_model.encoder.layers.{i}.mlp.fc1.",             false),
    ("visual.transformer.resblocks.{i}.mlp.c_proj.",    "vision_model.encoder.layers.{i}.mlp.fc2.",             false),
    ("visual.ln_post.weight",                           "vision_model.post_layernorm.weight",                   false),
    ("visual.ln_post.bias",                             "vision_model.post_layernorm.bias",                     false),
    ("visual.proj",                                     "visual_projection.weight",                             true),
    ("logit_scale",                                     "logit_scale",                                          false),
];

/// `key` rewritten from table pattern `from` to pattern `to`, if it matches.
fn rewrite(key: &str, from: &str, to: &str) -> Option<String> {
    let (to, rest) = match from.split_once("{i}") {
        Some((before, after)) => {
            let r = key.strip_prefix(before)?;
            let digits = r.len() - r.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return None;
            }
            (to.replacen("{i}", &r[..digits], 1), r[digits..].strip_prefix(after)?)
        }
        None => (to.to_string(), key.strip_prefix(from)?),
    };
    (rest.is_empty() || from.ends_with('.')).then(|| format!("{to}{rest}"))
}

/// The other layout's name of `key` by [`KEY_TABLE`], and whether Hugging Face stores it transposed.
fn remap(key: &str, to_hf: bool) -> Option<(String, bool)> {
    KEY_TABLE.iter().find_map(|&(canonical, hf, transposed)| {
        let (from, to) = if to_hf { (canonical, hf) } else { (hf, canonical) };
        rewrite(key, from, to).map(|k| (k, transposed))
    })
}

/// The canonical name of a Hugging Face key; `None` = ignored key, `Err` = a key no CLIP
/// checkpoint has.
pub(crate) fn hf_to_canonical(key: &str) -> Result<Option<(String, bool)>, ()> {
    if key.ends_with("position_ids") {
        return Ok(None);
    }
    remap(key, false).map(Some).ok_or(())
}

/// The Hugging Face key of a canonical key (ViT models only), and whether the tensor is stored
/// transposed there.
pub fn canonical_to_hf(key: &str) -> Option<(String, bool)> {
    remap(key, true)
}

/// Integer metadata or BatchNorm counters that OpenAI's `build_model` drops.
pub(crate) fn openai_ignored(key: &str) -> bool {
    matches!(key, "input_resolution" | "context_length" | "vocab_size") || key.ends_with("num_batches_tracked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClipConfig, TextConfig, VisionConfig};
    use std::collections::BTreeSet;

    /// Every tensor of a ViT CLIP gets a Hugging Face name no other tensor gets, and reads back
    /// as itself: the one table is consistent in both directions.
    #[test]
    fn key_table_round_trips_every_vit_tensor() {
        let config = ClipConfig {
            embed_dim: 8,
            vision: VisionConfig::Vit {
                width: 16,
                layers: 2,
                heads: 2,
                patch_size: 8,
                image_resolution: 16,
                activation: crate::config::Activation::QuickGelu,
            },
            text: TextConfig {
                context_length: 5,
                vocab_size: 10,
                width: 16,
                layers: 11,
                heads: 2,
                activation: crate::config::Activation::QuickGelu,
            },
        };
        let keys = crate::Clip::parameter_shapes(&config);
        let mut seen = BTreeSet::new();
        for (key, _) in &keys {
            let (hf, transposed) = canonical_to_hf(key).unwrap_or_else(|| panic!("no Hugging Face name for `{key}`"));
            assert!(seen.insert(hf.clone()), "`{hf}` named twice");
            assert_eq!(hf_to_canonical(&hf), Ok(Some((key.clone(), transposed))), "{key} -> {hf}");
        }
        assert_eq!(
            canonical_to_hf("transformer.resblocks.10.mlp.c_fc.bias").unwrap().0,
            "text_model.encoder.layers.10.mlp.fc1.bias"
        );
        assert_eq!(hf_to_canonical("text_model.encoder.layers.x.mlp.fc1.bias"), Err(()));
        assert_eq!(hf_to_canonical("text_model.final_layer_norm.weight.extra"), Err(()));
    }
}
