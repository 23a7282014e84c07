//! A CLIP-style BPE tokenizer trained with `tokenizers` on the world's captions: CLIP's
//! normaliser and pre-tokeniser, `</w>` word ends, and `<|startoftext|>` / `<|endoftext|>` as
//! the two largest ids (CLIP pools the text at the largest id).

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tokenizers::models::bpe::BpeTrainerBuilder;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

const SOT: &str = "<|startoftext|>";
const EOT: &str = "<|endoftext|>";

fn template() -> Value {
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"}, "behavior": "Removed", "invert": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "", "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": {}, "merges": []}
    })
}

/// Train on `texts` and return the tokenizer.json text.
pub fn train_tokenizer(texts: &[String], vocab_size: usize) -> Result<String> {
    let mut tok = Tokenizer::from_bytes(serde_json::to_vec(&template())?).map_err(|e| anyhow::anyhow!("tokenizer template: {e}"))?;
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(1)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(SOT, true), AddedToken::from(EOT, true)])
        .end_of_word_suffix("</w>".into())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut wrapped: tokenizers::models::TrainerWrapper = trainer.into();
    tok.train(&mut wrapped, texts.iter().cloned())
        .map_err(|e| anyhow::anyhow!("BPE training: {e}"))?;
    let mut j: Value = serde_json::from_str(&tok.to_string(false).map_err(|e| anyhow::anyhow!("{e}"))?)?;
    // Renumber: ordinary tokens first, then <|startoftext|>, <|endoftext|> as the largest ids.
    let vocab = j["model"]["vocab"].as_object().context("trained model has a vocab")?.clone();
    let mut tokens: Vec<(String, u64)> = vocab
        .into_iter()
        .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
        .filter(|(k, _)| k != SOT && k != EOT)
        .collect();
    tokens.sort_by_key(|t| t.1);
    let mut new_vocab = serde_json::Map::new();
    for (i, (k, _)) in tokens.iter().enumerate() {
        new_vocab.insert(k.clone(), json!(i));
    }
    let (sot, eot) = (tokens.len(), tokens.len() + 1);
    new_vocab.insert(SOT.into(), json!(sot));
    new_vocab.insert(EOT.into(), json!(eot));
    j["model"]["vocab"] = Value::Object(new_vocab);
    j["model"]["unk_token"] = json!(EOT);
    j["added_tokens"] = json!([
        {"id": sot, "content": SOT, "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": true},
        {"id": eot, "content": EOT, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
    ]);
    let text = serde_json::to_string(&j)?;
    // The result must load and keep the special ids last.
    let check = Tokenizer::from_bytes(text.as_bytes()).map_err(|e| anyhow::anyhow!("trained tokenizer does not load: {e}"))?;
    anyhow::ensure!(check.token_to_id(EOT) == Some(eot as u32), "end-of-text must be the largest id");
    Ok(text)
}
