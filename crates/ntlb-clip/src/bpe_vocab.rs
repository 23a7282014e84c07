//! CLIP's BPE vocabulary, shipped: `assets/bpe_simple_vocab_16e6.txt.gz`, byte for byte the file
//! OpenAI's `clip` package and open_clip ship (MIT; sha256 in [`SHA256`], provenance in
//! `assets/PROVENANCE.md`), turned into the `tokenizer.json` Hugging Face writes for CLIP (the
//! same normaliser, pre-tokeniser and BPE settings as `openai/clip-vit-base-patch32`'s), so an
//! OpenAI `.pt` needs no tokenizer file beside it.
//!
//! The vocabulary is `SimpleTokenizer`'s: the 256 byte symbols of `bytes_to_unicode`, the same
//! with `</w>`, one token per merge (lines 1..=48894 of the file: 49152 - 256 - 2 merges), then
//! `<|startoftext|>` and `<|endoftext|>` (49406, 49407).

use std::io::Read;

use serde_json::{json, Map, Value};

pub const FILE: &str = "bpe_simple_vocab_16e6.txt.gz";
/// SHA-256 of the shipped file (that of openai-clip 1.0.1's and open_clip_torch 3.3.0's copy).
pub const SHA256: &str = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a";
const GZ: &[u8] = include_bytes!("../assets/bpe_simple_vocab_16e6.txt.gz");
const MERGES: usize = 49152 - 256 - 2;

/// `bytes_to_unicode()` of CLIP's `simple_tokenizer.py`: printable bytes as themselves, the
/// others shifted past 255, in its order.
fn byte_symbols() -> Vec<char> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut bs: Vec<u32> = (0..256).filter(|&b| printable(b)).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256 {
        if !printable(b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    cs.into_iter().map(|c| char::from_u32(c).expect("a valid scalar")).collect()
}

/// The `tokenizer.json` text of CLIP's tokenizer.
pub fn tokenizer_json() -> Result<String, String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(GZ)
        .read_to_string(&mut text)
        .map_err(|e| format!("{FILE}: {e}"))?;
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.len() < MERGES + 1 {
        return Err(format!("{FILE}: {} lines, fewer than {} merges", lines.len(), MERGES));
    }
    let mut merges = Vec::with_capacity(MERGES);
    for (i, line) in lines[1..=MERGES].iter().enumerate() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [a, b] = parts[..] else {
            return Err(format!("{FILE}: line {}: `{line}` is not a merge of two symbols", i + 2));
        };
        merges.push((a, b));
    }
    let mut tokens: Vec<String> = byte_symbols().iter().map(|c| c.to_string()).collect();
    tokens.extend(byte_symbols().iter().map(|c| format!("{c}</w>")));
    tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
    tokens.extend(["<|startoftext|>".to_string(), "<|endoftext|>".to_string()]);
    let mut vocab = Map::new();
    for (i, t) in tokens.iter().enumerate() {
        if vocab.insert(t.clone(), json!(i)).is_some() {
            return Err(format!("{FILE}: token `{t}` made twice"));
        }
    }
    let special = |id: usize, content: &str| json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
    let v: Value = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(49406, "<|startoftext|>"), special(49407, "<|endoftext|>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "Lowercase"}
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"},
             "behavior": "Removed", "invert": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<|endoftext|>", "continuing_subword_prefix": "",
            "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab,
            "merges": merges.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
        }
    });
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_file_is_the_one_named() {
        assert_eq!(ntlb_core::digest::sha256_bytes(super::GZ), super::SHA256);
    }
}
