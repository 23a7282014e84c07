//! What a checkpoint declares beside its tensors decides how it computes: read from the
//! file's own config, refused by name when ntlb does not implement it, never assumed against
//! the file. Runs on the committed `models/synth-clip` (nothing from ../shared).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ntlb_clip::config::Activation;
use ntlb_clip::{Clip, LoadOptions};
use serde_json::{json, Value};

fn synth() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/synth-clip")
}

/// A copy of the synthetic HF folder with its config.json edited by `edit`.
fn hf_with(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(synth().join(f), dir.path().join(f)).unwrap();
    }
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(synth().join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    dir
}

fn load(path: &Path, activation: Option<Activation>) -> Result<Clip, String> {
    Clip::load_with(
        path,
        LoadOptions {
            expected: None,
            activation,
        },
        &Device::flex(),
    )
    .map_err(|e| e.to_string())
}

fn features(clip: &Clip) -> Vec<f32> {
    let tok = ntlb_clip::tokenizer::ClipTokenizer::for_model(&synth(), None).unwrap();
    let t = tok.tokenize("red circle", false).unwrap();
    ntlb_core::host::to_f32_vec(clip.encode_text(&[t.ids.clone()], &[t.eot]))
}

#[test]
fn the_hf_config_decides_the_activation_and_gelu_computes_other_features() {
    let quick = load(&synth(), None).unwrap();
    assert_eq!(quick.numerics.text_activation, Activation::QuickGelu);
    assert!(quick.numerics.activation_source.contains("text_config.hidden_act = \"quick_gelu\""));
    let dir = hf_with(|c| {
        c["text_config"]["hidden_act"] = json!("gelu");
        c["vision_config"]["hidden_act"] = json!("gelu");
    });
    let gelu = load(dir.path(), None).unwrap();
    assert_eq!(
        (gelu.numerics.text_activation, gelu.numerics.vision_activation),
        (Activation::Gelu, Activation::Gelu)
    );
    assert_eq!(gelu.config.text.activation, Activation::Gelu);
    assert_eq!(gelu.config.vision.activation(), Some(Activation::Gelu));
    let (a, b) = (features(&quick), features(&gelu));
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff > 1e-4, "GELU and QuickGELU gave the same features (max diff {diff})");
    // Asking for what the file says is fine; the keys of the two readings differ.
    assert!(load(dir.path(), Some(Activation::Gelu)).is_ok());
    assert_ne!(quick.numerics.identity(), gelu.numerics.identity());
}

#[test]
fn a_contradiction_with_the_file_is_an_error_naming_both() {
    let e = load(&synth(), Some(Activation::Gelu)).unwrap_err();
    assert!(
        e.contains("set to gelu") && e.contains("config.json") && e.contains("quick_gelu"),
        "{e}"
    );
}

#[test]
fn an_activation_ntlb_does_not_implement_is_refused_by_file_key_and_value() {
    for value in ["gelu_new", "gelu_pytorch_tanh", "relu"] {
        let dir = hf_with(|c| c["vision_config"]["hidden_act"] = json!(value));
        let e = load(dir.path(), None).unwrap_err();
        assert!(
            e.contains("config.json") && e.contains("vision_config.hidden_act") && e.contains(value),
            "{e}"
        );
    }
    let dir = hf_with(|c| c["text_config"]["layer_norm_eps"] = json!(1e-6));
    let e = load(dir.path(), None).unwrap_err();
    assert!(e.contains("text_config.layer_norm_eps"), "{e}");
}

#[test]
fn an_absent_hidden_act_is_transformers_default() {
    let dir = hf_with(|c| {
        c["text_config"].as_object_mut().unwrap().remove("hidden_act");
    });
    let clip = load(dir.path(), None).unwrap();
    assert_eq!(clip.numerics.text_activation, Activation::QuickGelu);
    assert!(
        clip.numerics.activation_source.contains("absent"),
        "{}",
        clip.numerics.activation_source
    );
}

/// The synthetic weights in OpenAI naming, as an open_clip hub folder would hold them.
fn open_clip_dir(config: Option<Value>) -> (tempfile::TempDir, PathBuf) {
    let clip = Clip::load(&synth(), None, &Device::flex()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("open_clip_model.safetensors");
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = {
        let mut w = ntlb_clip::weights::WeightMap::open(&synth()).unwrap();
        Clip::parameter_shapes(&clip.config)
            .into_iter()
            .map(|(k, s)| {
                let d = w.take(&k, &s).unwrap();
                (k, s, d)
            })
            .collect()
    };
    // Fuse q/k/v back into OpenAI's in_proj (the canonical names split them).
    let by_key: std::collections::HashMap<&str, &Vec<f32>> = tensors.iter().map(|(k, _, d)| (k.as_str(), d)).collect();
    let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (k, s, d) in &tensors {
        if let Some(prefix) = k.strip_suffix(".q_proj.weight") {
            let cat = |part: &str| -> Vec<f32> {
                ["q_proj", "k_proj", "v_proj"]
                    .iter()
                    .flat_map(|p| by_key[format!("{prefix}.{p}.{part}").as_str()].iter().copied())
                    .collect()
            };
            out.push((format!("{prefix}.in_proj_weight"), vec![3 * s[0], s[1]], cat("weight")));
            out.push((format!("{prefix}.in_proj_bias"), vec![3 * s[0]], cat("bias")));
        } else if !(k.contains(".q_proj.") || k.contains(".k_proj.") || k.contains(".v_proj.")) {
            out.push((k.clone(), s.clone(), d.clone()));
        }
    }
    ntlb_core::store::write_tensors(&file, &out).unwrap();
    if let Some(c) = config {
        std::fs::write(dir.path().join("open_clip_config.json"), c.to_string()).unwrap();
    }
    (dir, file)
}

#[test]
fn open_clip_configs_decide_the_activation_and_unimplemented_settings_are_refused() {
    let (_bare_dir, bare) = open_clip_dir(None);
    let bare_clip = load(&bare, None).unwrap();
    assert_eq!(bare_clip.numerics.text_activation, Activation::QuickGelu);
    assert!(
        bare_clip.numerics.activation_source.contains("OpenAI"),
        "{}",
        bare_clip.numerics.activation_source
    );
    // The bare file is the HF folder's weights: same features.
    assert_eq!(features(&bare_clip), features(&load(&synth(), None).unwrap()));
    // An explicit setting where nothing is declared is taken, and said so.
    let set = load(&bare, Some(Activation::Gelu)).unwrap();
    assert!(
        set.numerics.activation_source.contains("set explicitly"),
        "{}",
        set.numerics.activation_source
    );

    let cfg = |model_cfg: Value| json!({"model_cfg": model_cfg, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 0.5]}});
    let (_d, f) = open_clip_dir(Some(cfg(json!({"embed_dim": 64}))));
    let c = load(&f, None).unwrap();
    assert_eq!(
        c.numerics.text_activation,
        Activation::Gelu,
        "open_clip builds nn.GELU without quick_gelu"
    );
    assert_eq!(c.numerics.normalization.mean, [0.5; 3]);
    assert_eq!(c.numerics.normalization.std, [0.25, 0.5, 0.5]);
    assert!(c.numerics.normalization_source.contains("preprocess_cfg.mean"));
    let (_d, f) = open_clip_dir(Some(cfg(json!({"quick_gelu": true}))));
    assert_eq!(load(&f, None).unwrap().numerics.text_activation, Activation::QuickGelu);
    let e = load(&f, Some(Activation::Gelu)).unwrap_err();
    assert!(e.contains("open_clip_config.json") && e.contains("quick_gelu = true"), "{e}");

    for (model_cfg, key) in [
        (json!({"text_cfg": {"hf_model_name": "xlm-roberta-base"}}), "text_cfg.hf_model_name"),
        (json!({"vision_cfg": {"ls_init_value": 1e-5}}), "vision_cfg.ls_init_value"),
        (json!({"text_cfg": {"pool_type": "last"}}), "text_cfg.pool_type"),
        (json!({"init_logit_bias": -10}), "init_logit_bias"),
        (json!({"quick_gelu": "yes"}), "quick_gelu"),
    ] {
        let (_d, f) = open_clip_dir(Some(json!({ "model_cfg": model_cfg })));
        let e = load(&f, None).unwrap_err();
        assert!(e.contains("open_clip_config.json") && e.contains(key), "{key}: {e}");
    }
    for (pre, key) in [
        (json!({"interpolation": "bilinear"}), "preprocess_cfg.interpolation"),
        (json!({"resize_mode": "squash"}), "preprocess_cfg.resize_mode"),
        (json!({"mean": [0.5, 0.5]}), "preprocess_cfg.mean"),
        (json!({"size": 224}), "size 224"),
    ] {
        let (_d, f) = open_clip_dir(Some(json!({"model_cfg": {}, "preprocess_cfg": pre})));
        let e = load(&f, None).unwrap_err();
        assert!(e.contains(key), "{key}: {e}");
    }
}

#[test]
fn hf_preprocessor_configs_are_read_or_refused_by_key() {
    let with_pre = |pre: Value| {
        let dir = hf_with(|_| {});
        std::fs::write(dir.path().join("preprocessor_config.json"), pre.to_string()).unwrap();
        dir
    };
    let ok = with_pre(json!({"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.2, 0.2], "resample": 3,
                             "size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}, "do_center_crop": true}));
    let c = load(ok.path(), None).unwrap();
    assert_eq!(c.numerics.normalization.mean, [0.5, 0.4, 0.3]);
    assert!(c.numerics.identity().contains("0.4"));
    for (pre, key) in [
        (json!({"resample": 2}), "resample"),
        (json!({"do_center_crop": false}), "do_center_crop"),
        (json!({"crop_size": {"height": 32, "width": 40}}), "crop_size"),
        (json!({"size": {"shortest_edge": 36}, "crop_size": 32}), "size"),
        (json!({"crop_size": 64}), "size 64"),
        (json!({"rescale_factor": 0.5}), "rescale_factor"),
    ] {
        let e = load(with_pre(pre).path(), None).unwrap_err();
        assert!(e.contains("preprocessor_config.json") || e.contains("preprocessing"), "{key}: {e}");
        assert!(e.contains(key), "{key}: {e}");
    }
}

/// The synthetic folder with `config.json` holding exactly `text` (not necessarily JSON).
fn hf_with_raw(text: &str) -> tempfile::TempDir {
    let dir = hf_with(|_| {});
    std::fs::write(dir.path().join("config.json"), text).unwrap();
    dir
}

fn heads(clip: &Clip) -> (usize, usize) {
    (clip.config.text.heads, clip.config.vision.heads())
}

#[test]
fn the_hf_config_decides_the_heads_and_they_change_the_features() {
    let two = load(&synth(), None).unwrap();
    assert_eq!(heads(&two), (2, 2));
    let dir = hf_with(|c| {
        c["text_config"]["num_attention_heads"] = json!(4);
        c["vision_config"]["num_attention_heads"] = json!(8);
    });
    let declared = load(dir.path(), None).unwrap();
    assert_eq!(heads(&declared), (4, 8), "heads as declared, not width / 64");
    let (a, b) = (features(&two), features(&declared));
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(diff > 1e-3, "4 and 2 heads gave the same features (max diff {diff})");
    assert_ne!(two.numerics.identity(), declared.numerics.identity());
    assert!(declared.numerics.describe().contains("8 heads"), "{}", declared.numerics.describe());
    // Absent: transformers' defaults (8 text heads, 12 image heads), which 128 takes and does
    // not take.
    let dir = hf_with(|c| {
        c["text_config"].as_object_mut().unwrap().remove("num_attention_heads");
    });
    assert_eq!(load(dir.path(), None).unwrap().config.text.heads, 8);
    let dir = hf_with(|c| {
        c["vision_config"].as_object_mut().unwrap().remove("num_attention_heads");
    });
    let e = load(dir.path(), None).unwrap_err();
    assert!(
        e.contains("config.json") && e.contains("vision_config.num_attention_heads absent") && e.contains("12") && e.contains("128"),
        "{e}"
    );
}

#[test]
fn heads_that_do_not_divide_the_width_are_refused_by_key() {
    for (section, value) in [("text_config", json!(3)), ("vision_config", json!(48)), ("text_config", json!(0))] {
        let dir = hf_with(|c| c[section]["num_attention_heads"] = value.clone());
        let e = load(dir.path(), None).unwrap_err();
        assert!(
            e.contains("config.json") && e.contains(&format!("{section}.num_attention_heads")) && e.contains(&value.to_string()),
            "{section} {value}: {e}"
        );
    }
    let (_d, f) = open_clip_dir(Some(json!({"model_cfg": {"vision_cfg": {"head_width": 48}}})));
    let e = load(&f, None).unwrap_err();
    assert!(
        e.contains("open_clip_config.json") && e.contains("model_cfg.vision_cfg.head_width = 48") && e.contains("128"),
        "{e}"
    );
    let (_d, f) = open_clip_dir(Some(json!({"model_cfg": {"text_cfg": {"heads": 5}}})));
    let e = load(&f, None).unwrap_err();
    assert!(e.contains("model_cfg.text_cfg.heads = 5"), "{e}");
}

#[test]
fn declared_sizes_that_contradict_the_tensors_are_refused_by_file_key_value_and_tensor() {
    for (section, key, value, tensor) in [
        ("text_config", "hidden_size", 256, "`text_model.final_layer_norm.weight` [128]"),
        (
            "text_config",
            "intermediate_size",
            1024,
            "`text_model.encoder.layers.0.mlp.fc1.weight` [512, 128]",
        ),
        ("text_config", "num_hidden_layers", 3, "text_model.encoder.layers."),
        (
            "text_config",
            "vocab_size",
            49408,
            "`text_model.embeddings.token_embedding.weight` [456, 128]",
        ),
        (
            "vision_config",
            "hidden_size",
            768,
            "`vision_model.embeddings.patch_embedding.weight` [128, 3, 8, 8]",
        ),
        (
            "vision_config",
            "image_size",
            224,
            "`vision_model.embeddings.position_embedding.weight` [17, 128]",
        ),
        (
            "vision_config",
            "patch_size",
            16,
            "`vision_model.embeddings.patch_embedding.weight` [128, 3, 8, 8]",
        ),
        ("vision_config", "num_hidden_layers", 12, "vision_model.encoder.layers."),
        (
            "vision_config",
            "num_channels",
            1,
            "`vision_model.embeddings.patch_embedding.weight` [128, 3, 8, 8]",
        ),
        ("", "projection_dim", 512, "`text_projection.weight` [64, 128]"),
    ] {
        let dir = hf_with(|c| {
            if section.is_empty() {
                c[key] = json!(value);
            } else {
                c[section][key] = json!(value);
            }
        });
        let e = load(dir.path(), None).unwrap_err();
        let dotted = if section.is_empty() {
            key.to_string()
        } else {
            format!("{section}.{key}")
        };
        assert!(
            e.contains("config.json") && e.contains(&format!("`{dotted}` = {value}")) && e.contains(tensor),
            "{dotted}: {e}"
        );
    }
    for (cfg, key, tensor) in [
        (
            json!({"text_cfg": {"width": 512}}),
            "model_cfg.text_cfg.width",
            "`ln_final.weight` [128]",
        ),
        (
            json!({"text_cfg": {"layers": 12}}),
            "model_cfg.text_cfg.layers",
            "transformer.resblocks.",
        ),
        (
            json!({"vision_cfg": {"image_size": 224}}),
            "model_cfg.vision_cfg.image_size",
            "`visual.positional_embedding` [17, 128]",
        ),
        (
            json!({"vision_cfg": {"image_size": [64, 64]}}),
            "model_cfg.vision_cfg.image_size",
            "`visual.conv1.weight`",
        ),
        (
            json!({"vision_cfg": {"patch_size": 32}}),
            "model_cfg.vision_cfg.patch_size",
            "`visual.conv1.weight` [128, 3, 8, 8]",
        ),
        (
            json!({"vision_cfg": {"width": 768}}),
            "model_cfg.vision_cfg.width",
            "`visual.conv1.weight` [128, 3, 8, 8]",
        ),
        (
            json!({"vision_cfg": {"layers": [3, 4, 6, 3]}}),
            "model_cfg.vision_cfg.layers",
            "visual.transformer.resblocks.",
        ),
        (json!({"embed_dim": 1024}), "model_cfg.embed_dim", "`text_projection` [128, 64]"),
    ] {
        let (_d, f) = open_clip_dir(Some(json!({ "model_cfg": cfg })));
        let e = load(&f, None).unwrap_err();
        assert!(
            e.contains("open_clip_config.json") && e.contains(&format!("`{key}`")) && e.contains(tensor),
            "{key}: {e}"
        );
    }
    // What agrees with the tensors loads; open_clip's head_width sets the image heads.
    let (_d, f) = open_clip_dir(Some(json!({"model_cfg": {"embed_dim": 64, "quick_gelu": true,
        "text_cfg": {"width": 128, "heads": 2, "layers": 2, "vocab_size": 456, "context_length": 77},
        "vision_cfg": {"width": 128, "head_width": 32, "layers": 2, "patch_size": 8, "image_size": [32, 32]}}})));
    let clip = load(&f, None).unwrap();
    assert_eq!(heads(&clip), (2, 4));
    // Absent heads are open_clip's defaults: 8 text heads.
    let (_d, f) = open_clip_dir(Some(json!({"model_cfg": {}})));
    assert_eq!(heads(&load(&f, None).unwrap()), (8, 2));
}

#[test]
fn configs_of_another_architecture_or_not_an_object_are_refused() {
    for (edit, key) in [
        (json!({"model_type": "siglip"}), "model_type"),
        (
            json!({"text_config": {"model_type": "siglip_text_model"}}),
            "text_config.model_type",
        ),
        (
            json!({"vision_config": {"model_type": "siglip_vision_model"}}),
            "vision_config.model_type",
        ),
        (json!({"text_config": "clip"}), "text_config"),
        (json!({"vision_config": [1, 2]}), "vision_config"),
    ] {
        let dir = hf_with(|c| {
            for (k, v) in edit.as_object().unwrap() {
                match (c.get_mut(k), v) {
                    (Some(Value::Object(o)), Value::Object(add)) => o.extend(add.clone()),
                    _ => c[k] = v.clone(),
                }
            }
        });
        let e = load(dir.path(), None).unwrap_err();
        assert!(e.contains("config.json") && e.contains(&format!("`{key}`")), "{key}: {e}");
    }
    let e = load(hf_with(|c| c["model_type"] = json!("siglip")).path(), None).unwrap_err();
    assert!(e.contains("siglip") && e.contains("CLIP"), "{e}");
    for text in ["[]", "\"clip\"", "null", "42"] {
        let e = load(hf_with_raw(text).path(), None).unwrap_err();
        assert!(e.contains("config.json") && e.contains("JSON object"), "{text}: {e}");
    }
    for text in ["[]", "{\"model_cfg\": [1]}"] {
        let (d, f) = open_clip_dir(None);
        std::fs::write(d.path().join("open_clip_config.json"), text).unwrap();
        let e = load(&f, None).unwrap_err();
        assert!(e.contains("open_clip_config.json") && e.contains("JSON object"), "{text}: {e}");
    }
    let dir = hf_with(|_| {});
    std::fs::write(dir.path().join("preprocessor_config.json"), "[0.5]").unwrap();
    let e = load(dir.path(), None).unwrap_err();
    assert!(e.contains("preprocessor_config.json") && e.contains("JSON object"), "{e}");
}

/// A ModifiedResNet image tower: open_clip's `layers` list and `head_width` over the attention
/// pool (32 × the stem width wide), as open_clip builds it.
#[test]
fn open_clip_resnet_configs_are_checked_and_set_the_pool_heads() {
    let rn = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rn/model.safetensors");
    let bare = load(&rn, None).unwrap();
    let ntlb_clip::config::VisionConfig::ResNet {
        width,
        layers,
        heads,
        image_resolution,
    } = bare.config.vision.clone()
    else {
        panic!("the rn fixture is a ModifiedResNet")
    };
    assert_eq!(heads, width * 32 / 64, "no config: OpenAI's build_model");
    let with = |vision_cfg: Value| {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("open_clip_model.safetensors");
        std::fs::copy(&rn, &f).unwrap();
        let cfg = json!({"model_cfg": {"quick_gelu": true, "text_cfg": {"heads": bare.config.text.heads}, "vision_cfg": vision_cfg}});
        std::fs::write(dir.path().join("open_clip_config.json"), cfg.to_string()).unwrap();
        (dir, f)
    };
    let (_d, f) = with(json!({"layers": layers, "width": width, "image_size": image_resolution, "head_width": 16}));
    assert_eq!(load(&f, None).unwrap().config.vision.heads(), width * 32 / 16);
    let mut more = layers;
    more[2] += 1;
    let (_d, f) = with(json!({ "layers": more }));
    let e = load(&f, None).unwrap_err();
    assert!(e.contains("`model_cfg.vision_cfg.layers`") && e.contains("ModifiedResNet"), "{e}");
    let (_d, f) = with(json!({"layers": layers, "image_size": image_resolution * 2}));
    let e = load(&f, None).unwrap_err();
    assert!(
        e.contains("`model_cfg.vision_cfg.image_size`") && e.contains("visual.attnpool.positional_embedding"),
        "{e}"
    );
    let (_d, f) = with(json!({"layers": 12}));
    let e = load(&f, None).unwrap_err();
    assert!(
        e.contains("`model_cfg.vision_cfg.layers` = 12") && e.contains("ModifiedResNet"),
        "{e}"
    );
}
