//! CLIP's ViT image tower: patch convolution, class token, positional embedding, `ln_pre`,
//! transformer, `ln_post` on the class token, `proj`.

use burn::tensor::{Device, Tensor};

use super::layers::{load, LayerNorm, Probe, Transformer, WeightSource};
use crate::config::Activation;
use crate::weights::LoadError;

#[derive(Debug, Clone)]
pub struct VitTower {
    pub patch_size: usize,
    pub conv1: Tensor<4>,
    pub class_embedding: Tensor<1>,
    pub positional_embedding: Tensor<2>,
    pub ln_pre: LayerNorm,
    pub transformer: Transformer,
    pub ln_post: LayerNorm,
    pub proj: Tensor<2>,
}

impl VitTower {
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        src: &mut dyn WeightSource,
        width: usize,
        layers: usize,
        heads: usize,
        patch: usize,
        resolution: usize,
        embed_dim: usize,
        act: Activation,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let grid = resolution / patch;
        Ok(VitTower {
            patch_size: patch,
            conv1: load(src, "visual.conv1.weight", [width, 3, patch, patch], device)?,
            class_embedding: load(src, "visual.class_embedding", [width], device)?,
            positional_embedding: load(src, "visual.positional_embedding", [grid * grid + 1, width], device)?,
            ln_pre: LayerNorm::load(src, "visual.ln_pre", width, device)?,
            transformer: Transformer::load(src, "visual.transformer", width, layers, heads, act, device)?,
            ln_post: LayerNorm::load(src, "visual.ln_post", width, device)?,
            proj: load(src, "visual.proj", [width, embed_dim], device)?,
        })
    }

    /// `images`: `[B, 3, R, R]`, already normalised. Returns `[B, embed_dim]`, unnormalised.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        // The stride-p patch convolution as one matmul over flattened patches: the same sums,
        // and plain GEMM everywhere (cuDNN would run the convolution in TF32 on NVIDIA GPUs).
        let p = self.patch_size;
        let [b, c, h, wi] = images.dims();
        let (gh, gw) = (h / p, wi / p);
        let w = self.conv1.dims()[0];
        let patches = images
            .reshape([b, c, gh, p, gw, p])
            .permute([0, 2, 4, 1, 3, 5])
            .reshape([b * gh * gw, c * p * p]);
        let kernel = self.conv1.clone().reshape([w, c * p * p]).transpose();
        let x = patches.matmul(kernel).reshape([b, gh * gw, w]);
        let cls = self.class_embedding.clone().reshape([1, 1, w]).expand([b, 1, w]);
        let x = Tensor::cat(vec![cls, x], 1) + self.positional_embedding.clone().unsqueeze::<3>();
        let x = self.ln_pre.forward(x);
        let (x, _) = self.transformer.forward(x, None, Probe::Off);
        let cls = x.narrow(1, 0, 1).reshape([b, w]);
        self.ln_post.forward(cls).matmul(self.proj.clone())
    }
}
