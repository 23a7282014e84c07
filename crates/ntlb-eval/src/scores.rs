//! Accuracy on the model's device: one matrix product per block of images and the rank of the
//! true class counted there, with the tie rule of [`crate::metrics::accuracy`] (equal scores
//! go to the lower class index). Only one integer per image comes back to the host.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::features::Features;
use crate::metrics::{accuracy_from_ranks, Accuracy};

/// Images per block: bounds the `[block, C]` score matrix (64 MiB at 1000 classes).
const BLOCK: usize = 16_384;

/// A dataset's features uploaded once, reused by every classifier evaluated on it.
pub struct DeviceFeatures {
    blocks: Vec<(Tensor<2>, Tensor<2, Int>)>,
    pub labels: Vec<usize>,
    pub dim: usize,
}

impl DeviceFeatures {
    pub fn upload(data: &[f32], labels: &[usize], dim: usize, device: &Device) -> DeviceFeatures {
        let blocks = labels
            .chunks(BLOCK)
            .enumerate()
            .map(|(b, ls)| {
                let rows = &data[b * BLOCK * dim..(b * BLOCK + ls.len()) * dim];
                let x = Tensor::<2>::from_data(TensorData::new(rows.to_vec(), [ls.len(), dim]), device);
                let y = Tensor::<2, Int>::from_data(
                    TensorData::new(ls.iter().map(|&l| l as i64).collect::<Vec<_>>(), [ls.len(), 1]),
                    device,
                );
                (x, y)
            })
            .collect();
        DeviceFeatures {
            blocks,
            labels: labels.to_vec(),
            dim,
        }
    }

    pub fn from_features(f: &Features, device: &Device) -> DeviceFeatures {
        DeviceFeatures::upload(&f.data, &f.labels, f.dim, device)
    }

    /// Rank of the true class of every image under `weights` `[C, E]` (0 = top-1).
    pub fn ranks(&self, weights: &Tensor<2>) -> Vec<usize> {
        let c = weights.dims()[0];
        let wt = weights.clone().transpose();
        let mut out = Vec::with_capacity(self.labels.len());
        for (x, y) in &self.blocks {
            let b = x.dims()[0];
            let device = x.device();
            let s = x.clone().matmul(wt.clone());
            let target = s.clone().gather(1, y.clone()).expand([b, c]);
            let higher = s.clone().greater(target.clone());
            let index = Tensor::<1, Int>::arange(0..c as i64, &device).reshape([1, c]).expand([b, c]);
            let lower_index = index.lower(y.clone().expand([b, c]));
            let tied_before = s.equal(target).bool_and(lower_index);
            let rank = higher.int().sum_dim(1) + tied_before.int().sum_dim(1);
            let v = rank.into_data().convert::<i64>().try_to_vec::<i64>().expect("int data");
            out.extend(v.into_iter().map(|r| r as usize));
        }
        out
    }

    pub fn accuracy(&self, weights: &Tensor<2>, n_classes: usize) -> Accuracy {
        accuracy_from_ranks(&self.ranks(weights), &self.labels, n_classes)
    }
}

/// Host weights `[C, E]` onto `device`.
pub fn weights_on(w: &[f32], dim: usize, device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(w.to_vec(), [w.len() / dim, dim]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::accuracy;

    /// Multiples of 1/8 in [-1, 1]: every dot product is exact in any summation order, so the
    /// host loop and the device matmul must agree exactly, and ties are frequent.
    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) % 17) as f32 / 8.0 - 1.0
    }

    #[test]
    fn device_ranks_match_the_host_loop_including_ties_and_blocks() {
        let (n, c, e) = (BLOCK + 300, 37, 8);
        let mut seed = 7;
        let mut f: Vec<f32> = (0..n * e).map(|_| lcg(&mut seed)).collect();
        let mut w: Vec<f32> = (0..c * e).map(|_| lcg(&mut seed)).collect();
        // Exact ties: class 5 duplicates class 2 and some images are all zeros (every score ties).
        let (a, b) = (w[2 * e..3 * e].to_vec(), 5 * e);
        w[b..b + e].copy_from_slice(&a);
        for i in (0..n).step_by(97) {
            f[i * e..(i + 1) * e].fill(0.0);
        }
        let labels: Vec<usize> = (0..n).map(|i| (i * 7 + i / 3) % c).collect();
        let host = accuracy(&f, &labels, e, &w, c);
        let dev = Device::flex();
        let d = DeviceFeatures::upload(&f, &labels, e, &dev).accuracy(&weights_on(&w, e, &dev), c);
        assert_eq!(d, host);
        assert!(host.top1 > 0.0 && host.top5 > host.top1 && host.top5 < 100.0);
    }
}
