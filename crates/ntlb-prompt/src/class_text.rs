//! Class prompts -> text features. Classes are chunked by prompt length (each chunk is padded
//! only to its longest prompt, and memory is bounded by the chunk size), each chunk's prompts are
//! assembled with the context by one gather, and encoded in one forward. Every path that encodes
//! class prompts (the objective's passes, the evaluation features, relevance maps, `ntlb
//! explain`, zero-shot templates) goes through here, so they agree on which classes share a
//! forward and on its length.

use burn::tensor::{Int, Tensor, TensorData};
use ntlb_clip::model::text::{TextCache, TextOutput};
use ntlb_clip::model::Probe;
use ntlb_clip::{l2_normalize, Clip};

use crate::prompt::PromptLayout;

/// Classes encoded in one forward, padded to the longest of their prompts.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassChunk {
    pub classes: Vec<usize>,
    /// End-of-text position of each class's prompt (where the text tower pools).
    pub eot: Vec<usize>,
    /// Assembled length: the largest end-of-text position + 1.
    pub len: usize,
}

pub struct ClassTextEncoder<'a> {
    pub clip: &'a Clip,
    pub layout: &'a PromptLayout,
}

impl<'a> ClassTextEncoder<'a> {
    pub fn new(clip: &'a Clip, layout: &'a PromptLayout) -> Self {
        ClassTextEncoder { clip, layout }
    }

    /// Every class, ordered by prompt length (ties by index) and cut into chunks of at most `size`.
    pub fn chunks(&self, size: usize) -> Vec<ClassChunk> {
        let mut order: Vec<usize> = (0..self.layout.n_classes()).collect();
        order.sort_by_key(|&c| (self.layout.eot[c], c));
        order.chunks(size.max(1)).map(|c| self.chunk(c)).collect()
    }

    /// The given (non-empty) classes as one chunk.
    pub fn chunk(&self, classes: &[usize]) -> ClassChunk {
        let eot: Vec<usize> = classes.iter().map(|&c| self.layout.eot[c]).collect();
        let len = eot.iter().max().expect("a chunk has classes") + 1;
        ClassChunk {
            classes: classes.to_vec(),
            eot,
            len,
        }
    }

    /// Prompt embeddings `[K, len, W]` of a chunk with the context `ctx` in place.
    pub fn prompts(&self, chunk: &ClassChunk, ctx: Tensor<2>) -> Tensor<3> {
        self.layout.assemble(self.clip, ctx, &chunk.classes, chunk.len)
    }

    pub fn encode(&self, chunk: &ClassChunk, ctx: Tensor<2>, probe: Probe<'_>) -> TextOutput {
        self.clip.text.encode_embeddings(self.prompts(chunk, ctx), &chunk.eot, probe)
    }

    /// [`Self::encode`], keeping the activations the shared relevance backward reads.
    pub fn encode_cached(&self, chunk: &ClassChunk, ctx: Tensor<2>, probe: Probe<'_>) -> (TextOutput, TextCache) {
        self.clip.text.encode_embeddings_cached(self.prompts(chunk, ctx), &chunk.eot, probe)
    }

    /// Normalised, detached text features `[C, E]` of every class, in class order, encoded in
    /// chunks of at most `chunk_size` classes.
    pub fn features(&self, ctx: Tensor<2>, chunk_size: usize) -> Tensor<2> {
        let chunks = self.chunks(chunk_size);
        let parts: Vec<Tensor<2>> = chunks
            .iter()
            .map(|ch| self.encode(ch, ctx.clone(), Probe::Off).features.detach())
            .collect();
        // Row r of the concatenation is class `order[r]`; gather the rows back into class order.
        let order: Vec<usize> = chunks.iter().flat_map(|ch| ch.classes.iter().copied()).collect();
        let mut row_of = vec![0i64; order.len()];
        for (r, &c) in order.iter().enumerate() {
            row_of[c] = r as i64;
        }
        let index = Tensor::<1, Int>::from_data(TensorData::new(row_of, [order.len()]), &ctx.device());
        l2_normalize(Tensor::cat(parts, 0).select(0, index))
    }
}
