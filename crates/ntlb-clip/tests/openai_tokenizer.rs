//! CLIP's shipped BPE vocabulary (`ClipTokenizer::openai`) tokenizes as the reference's
//! `clip.tokenize` on every golden case (needs `../shared/golden`), and is what an OpenAI
//! checkpoint file without a tokenizer.json beside it gets.

mod common;

use std::path::PathBuf;

use ntlb_clip::tokenizer::ClipTokenizer;

#[test]
fn the_shipped_vocabulary_matches_the_reference_on_every_golden_case() {
    let Some(dir) = common::golden_dir("the_shipped_vocabulary_matches_the_reference_on_every_golden_case") else {
        return;
    };
    let case = common::read_case(&dir, "tokenize.json");
    let tok = ClipTokenizer::openai().unwrap();
    let strings = case["inputs"]["strings"]["data"].as_array().unwrap();
    let ids = case["outputs"]["ids"]["data"].as_array().unwrap();
    let eots = case["outputs"]["eot_positions"]["data"].as_array().unwrap();
    let pieces = case["outputs"]["pieces"]["data"].as_array().unwrap();
    assert_eq!(strings.len(), 43);
    for (i, s) in strings.iter().enumerate() {
        let s = s.as_str().unwrap();
        let want: Vec<u32> = ids[i].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        // The reference truncates nothing in these cases; a case past 77 tokens is an error for both.
        let got = tok.tokenize(s, false).unwrap_or_else(|e| panic!("case {i} {s:?}: {e}"));
        assert_eq!(got.ids, want, "case {i}: {s:?}");
        assert_eq!(got.eot as u64, eots[i].as_u64().unwrap(), "case {i}");
        let p: Vec<String> = got.ids[..=got.eot].iter().map(|&t| tok.id_to_token(t).unwrap()).collect();
        let want_p: Vec<&str> = pieces[i].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        assert_eq!(p, want_p, "case {i}");
    }
}

#[test]
fn an_openai_checkpoint_without_a_tokenizer_json_gets_the_shipped_vocabulary() {
    let Some(dir) = common::golden_dir("an_openai_checkpoint_without_a_tokenizer_json_gets_the_shipped_vocabulary") else {
        return;
    };
    // The golden OpenAI-layout file has CLIP's vocabulary and no tokenizer.json beside it
    // (only in hf/, which is looked in: so copy the file into a folder of its own).
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ViT-tiny.safetensors");
    std::fs::copy(dir.join("tiny-clip/openai.safetensors"), &file).unwrap();
    let tok = ClipTokenizer::for_model(&file, None).unwrap();
    assert!(tok.source.contains("bpe_simple_vocab_16e6.txt.gz"), "{}", tok.source);
    assert_eq!(
        tok.tokenize("a photo of a cat.", false).unwrap().ids[..8],
        [49406, 320, 1125, 539, 320, 2368, 269, 49407]
    );
}

#[test]
fn a_checkpoint_with_another_vocabulary_is_not_given_clips() {
    // The TorchScript fixture's vocabulary has 64 tokens: CLIP's ids would not fit it.
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchscript/tiny_fp16.pt");
    let e = match ClipTokenizer::for_model(&file, None) {
        Ok(_) => panic!("a 64-token model was given CLIP's vocabulary"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("tiny_fp16.pt") && e.contains("64 rows") && e.contains("--tokenizer"),
        "{e}"
    );
}
