//! CLIP's ModifiedResNet image tower (RN50, RN101): a 3-convolution stem with an average pool,
//! anti-aliased bottlenecks (strided convolutions replaced by an average pool before the last
//! 1x1 convolution), and attention pooling with the mean token as the query.

use burn::tensor::activation::{relu, softmax};
use burn::tensor::module::{avg_pool2d, conv2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions};
use burn::tensor::{Device, Tensor};

use super::layers::{load, tensor, Linear, WeightSource};
use crate::weights::LoadError;

/// Convolution without bias followed by an eval-mode BatchNorm folded into scale and shift
/// (checkpoint keys `convN.weight` + `bnN.*`, or `downsample.0` + `downsample.1`).
#[derive(Debug, Clone)]
pub struct ConvBn {
    pub weight: Tensor<4>,
    pub padding: usize,
    pub scale: Tensor<4>,
    pub shift: Tensor<4>,
}

impl ConvBn {
    fn load(
        src: &mut dyn WeightSource,
        conv: &str,
        bn: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let weight = load(src, &format!("{conv}.weight"), [c_out, c_in, k, k], device)?;
        let g = src.take(&format!("{bn}.weight"), &[c_out])?;
        let b = src.take(&format!("{bn}.bias"), &[c_out])?;
        let m = src.take(&format!("{bn}.running_mean"), &[c_out])?;
        let v = src.take(&format!("{bn}.running_var"), &[c_out])?;
        // torch's eval BatchNorm: (x - mean) / sqrt(var + 1e-5) * weight + bias.
        let scale: Vec<f32> = g.iter().zip(&v).map(|(g, v)| g / (v + 1e-5).sqrt()).collect();
        let shift: Vec<f32> = b.iter().zip(&m).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        Ok(ConvBn {
            weight,
            padding: k / 2,
            scale: tensor(scale, [1, c_out, 1, 1], device),
            shift: tensor(shift, [1, c_out, 1, 1], device),
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let p = self.padding;
        let y = conv2d(x, self.weight.clone(), None, ConvOptions::new([1, 1], [p, p], [1, 1], 1));
        y * self.scale.clone() + self.shift.clone()
    }
}

fn avg_pool(x: Tensor<4>, k: usize) -> Tensor<4> {
    if k == 1 {
        x
    } else {
        avg_pool2d(x, AvgPoolOptions::new([k, k]))
    }
}

#[derive(Debug, Clone)]
pub struct Bottleneck {
    /// `convN` with the `bnN` after it folded in.
    pub conv1: ConvBn,
    pub conv2: ConvBn,
    pub conv3: ConvBn,
    pub stride: usize,
    pub downsample: Option<ConvBn>,
}

impl Bottleneck {
    fn load(
        src: &mut dyn WeightSource,
        p: &str,
        inplanes: usize,
        planes: usize,
        stride: usize,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let downsample = if stride > 1 || inplanes != planes * 4 {
            Some(ConvBn::load(
                src,
                &format!("{p}.downsample.0"),
                &format!("{p}.downsample.1"),
                inplanes,
                planes * 4,
                1,
                device,
            )?)
        } else {
            None
        };
        Ok(Bottleneck {
            conv1: ConvBn::load(src, &format!("{p}.conv1"), &format!("{p}.bn1"), inplanes, planes, 1, device)?,
            conv2: ConvBn::load(src, &format!("{p}.conv2"), &format!("{p}.bn2"), planes, planes, 3, device)?,
            conv3: ConvBn::load(src, &format!("{p}.conv3"), &format!("{p}.bn3"), planes, planes * 4, 1, device)?,
            stride,
            downsample,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.conv1.forward(x.clone()));
        let out = relu(self.conv2.forward(out));
        let out = self.conv3.forward(avg_pool(out, self.stride));
        let identity = match &self.downsample {
            Some(d) => d.forward(avg_pool(x, self.stride)),
            None => x,
        };
        relu(out + identity)
    }
}

#[derive(Debug, Clone)]
pub struct AttentionPool {
    pub positional_embedding: Tensor<2>,
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub c_proj: Linear,
    pub heads: usize,
}

impl AttentionPool {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [n, c, h, w] = x.dims();
        let x = x.reshape([n, c, h * w]).swap_dims(1, 2);
        let x = Tensor::cat(vec![x.clone().mean_dim(1), x], 1) + self.positional_embedding.clone().unsqueeze::<3>();
        let l = h * w + 1;
        let heads = self.heads;
        let dh = c / heads;
        let q = self
            .q_proj
            .forward3(x.clone().narrow(1, 0, 1))
            .reshape([n, 1, heads, dh])
            .swap_dims(1, 2)
            * (dh as f64).powf(-0.5);
        let k = self.k_proj.forward3(x.clone()).reshape([n, l, heads, dh]).swap_dims(1, 2);
        let v = self.v_proj.forward3(x).reshape([n, l, heads, dh]).swap_dims(1, 2);
        let attn = softmax(q.matmul(k.swap_dims(2, 3)), 3);
        let out = attn.matmul(v).swap_dims(1, 2).reshape([n, c]);
        self.c_proj.forward2(out)
    }
}

#[derive(Debug, Clone)]
pub struct ResNetTower {
    /// The stem: `convN` with the `bnN` after it folded in.
    pub conv1: ConvBn,
    pub conv2: ConvBn,
    pub conv3: ConvBn,
    pub layer1: Vec<Bottleneck>,
    pub layer2: Vec<Bottleneck>,
    pub layer3: Vec<Bottleneck>,
    pub layer4: Vec<Bottleneck>,
    pub attnpool: AttentionPool,
}

impl ResNetTower {
    pub fn load(
        src: &mut dyn WeightSource,
        width: usize,
        layers: [usize; 4],
        heads: usize,
        resolution: usize,
        embed_dim: usize,
        device: &Device,
    ) -> Result<Self, LoadError> {
        let conv1 = ConvBn::load(src, "visual.conv1", "visual.bn1", 3, width / 2, 3, device)?;
        let conv2 = ConvBn::load(src, "visual.conv2", "visual.bn2", width / 2, width / 2, 3, device)?;
        let conv3 = ConvBn::load(src, "visual.conv3", "visual.bn3", width / 2, width, 3, device)?;
        let mut inplanes = width;
        let mut stages = Vec::new();
        for (s, &blocks) in layers.iter().enumerate() {
            let planes = width << s;
            let mut stage = Vec::new();
            for j in 0..blocks {
                let stride = if s > 0 && j == 0 { 2 } else { 1 };
                stage.push(Bottleneck::load(
                    src,
                    &format!("visual.layer{}.{j}", s + 1),
                    inplanes,
                    planes,
                    stride,
                    device,
                )?);
                inplanes = planes * 4;
            }
            stages.push(stage);
        }
        let c = width * 32;
        let spatial = resolution / 32;
        let attnpool = AttentionPool {
            positional_embedding: load(src, "visual.attnpool.positional_embedding", [spatial * spatial + 1, c], device)?,
            q_proj: Linear::load(src, "visual.attnpool.q_proj", c, c, true, device)?,
            k_proj: Linear::load(src, "visual.attnpool.k_proj", c, c, true, device)?,
            v_proj: Linear::load(src, "visual.attnpool.v_proj", c, c, true, device)?,
            c_proj: Linear::load(src, "visual.attnpool.c_proj", c, embed_dim, true, device)?,
            heads,
        };
        let [layer1, layer2, layer3, layer4] = stages.try_into().expect("four stages");
        Ok(ResNetTower {
            conv1,
            conv2,
            conv3,
            layer1,
            layer2,
            layer3,
            layer4,
            attnpool,
        })
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        // The first stem convolution has stride 2.
        let c1 = &self.conv1;
        let x = conv2d(images, c1.weight.clone(), None, ConvOptions::new([2, 2], [1, 1], [1, 1], 1));
        let x = relu(x * c1.scale.clone() + c1.shift.clone());
        let x = relu(self.conv2.forward(x));
        let x = relu(self.conv3.forward(x));
        let mut x = avg_pool(x, 2);
        for blk in self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4) {
            x = blk.forward(x);
        }
        self.attnpool.forward(x)
    }
}
