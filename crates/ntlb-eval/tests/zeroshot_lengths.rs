//! Zero-shot classifiers are encoded through `ClassTextEncoder` (chunks of similar length, each
//! only as long as its longest prompt); they must equal, bit for bit, the text tower run over all
//! 77 positions as the reference runs it (the path the golden `encode_text` case checks).

mod common;

use burn::tensor::Device;
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::{l2_normalize, Clip};
use ntlb_core::host::to_f32_vec;
use ntlb_eval::zeroshot::template_weights_on_device;

const WORDS: [&str; 14] = [
    "red", "green", "blue", "yellow", "purple", "orange", "circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon",
];

#[test]
fn template_weights_equal_the_full_length_encoding() {
    let dir = common::synth_clip();
    let device = Device::flex();
    let clip = Clip::load(&dir, None, &device).unwrap();
    let tok = ClipTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    // 300 names of 1 to 4 words: several chunks of 256 and of different lengths.
    let names: Vec<String> = (0..300)
        .map(|i| {
            (0..1 + i % 4)
                .map(|j| WORDS[(i * 7 + j * 3) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    for template in ["a photo of a {}.", "a {} in a video game.", "{}"] {
        let ours = to_f32_vec(template_weights_on_device(&clip, &tok, template, &names).unwrap());
        let texts: Vec<String> = names.iter().map(|n| template.replace("{}", n)).collect();
        let toks = tok.tokenize_all(&texts, true).unwrap();
        let ids: Vec<Vec<u32>> = toks.iter().map(|t| t.ids.clone()).collect();
        let eot: Vec<usize> = toks.iter().map(|t| t.eot).collect();
        assert!(
            eot.iter().min() < eot.iter().max(),
            "the names must give prompts of different lengths"
        );
        let full = to_f32_vec(l2_normalize(clip.encode_text(&ids, &eot)));
        assert_eq!(ours.len(), full.len());
        let differing = ours.iter().zip(&full).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(
            differing,
            0,
            "{template:?}: {differing} of {} values differ from the 77-position encoding",
            full.len()
        );
    }
}
