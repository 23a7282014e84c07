//! Accuracy on the model's device: one matrix product per block of images and the rank of the
//! true class counted there, with the tie rule of [`crate::metrics::accuracy`] (equal scores
//! go to the lower class index). Only one integer per image comes back to the host.
//!
//! Nothing that is not a number is ranked: features and class weights are checked when they
//! reach the device, and an image with a non-finite score comes back marked and is an error.

use anyhow::{bail, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ntlb_core::host::to_f32_vec;

use crate::features::Features;
use crate::metrics::{accuracy_from_ranks, first_non_finite, Accuracy};

/// Images per block: bounds the `[block, C]` score matrix (64 MiB at 1000 classes).
const BLOCK: usize = 16_384;

/// A dataset's features uploaded once, reused by every classifier evaluated on it.
pub struct DeviceFeatures {
    blocks: Vec<(Tensor<2>, Tensor<2, Int>)>,
    pub labels: Vec<usize>,
    pub dim: usize,
}

impl DeviceFeatures {
    pub fn upload(data: &[f32], labels: &[usize], dim: usize, device: &Device) -> Result<DeviceFeatures> {
        if let Some((row, n, v)) = first_non_finite(data, dim) {
            bail!(
                "image feature row {row} (label {}): {n} of its {dim} values are not finite (first: {v})",
                labels[row]
            );
        }
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
        Ok(DeviceFeatures {
            blocks,
            labels: labels.to_vec(),
            dim,
        })
    }

    pub fn from_features(f: &Features, device: &Device) -> Result<DeviceFeatures> {
        DeviceFeatures::upload(&f.data, &f.labels, f.dim, device)
    }

    /// Rank of the true class of every image under `weights` `[C, E]` (0 = top-1); an image
    /// with a score that is not finite is an error naming its row.
    pub fn ranks(&self, weights: &Tensor<2>) -> Result<Vec<usize>> {
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
            let tied_before = s.clone().equal(target).bool_and(lower_index);
            // Images with non-finite scores come back as ranks past the last class (C + 1 per
            // such score), so that they cannot pass for a rank in the one integer read back.
            let bad = s.is_finite().bool_not().int().sum_dim(1);
            let rank = higher.int().sum_dim(1) + tied_before.int().sum_dim(1) + bad.mul_scalar(c as i64 + 1);
            let v = rank.into_data().convert::<i64>().try_to_vec::<i64>().expect("int data");
            for r in v {
                let r = r as usize;
                if r >= c {
                    let row = out.len();
                    bail!(
                        "image feature row {row} (label {}): {} of its {c} class scores are not finite",
                        self.labels[row],
                        r / (c + 1)
                    );
                }
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Accuracy under `weights` `[C, E]`, one row per class of `classes` (errors name them).
    pub fn accuracy(&self, weights: &Tensor<2>, classes: &[String]) -> Result<Accuracy> {
        check_class_weights(weights, classes)?;
        accuracy_from_ranks(&self.ranks(weights)?, &self.labels, classes.len())
    }
}

/// Class weights must be finite: one NaN row would make every score of its class NaN. The
/// error names the first such class.
pub fn check_class_weights(weights: &Tensor<2>, classes: &[String]) -> Result<()> {
    let [c, e] = weights.dims();
    if c != classes.len() {
        bail!("{c} class weight rows for {} classes", classes.len());
    }
    let not_finite = weights.clone().is_finite().bool_not().int().sum().into_scalar::<i64>();
    if not_finite == 0 {
        return Ok(());
    }
    let host = to_f32_vec(weights.clone());
    let (row, n, v) = first_non_finite(&host, e).expect("a non-finite value was counted");
    bail!(
        "class {row} `{}`: {n} of the {e} values of its text features are not finite (first: {v})",
        classes[row]
    )
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
        let host = accuracy(&f, &labels, e, &w, c).unwrap();
        let dev = Device::flex();
        let d = DeviceFeatures::upload(&f, &labels, e, &dev)
            .unwrap()
            .accuracy(&weights_on(&w, e, &dev), &names(c))
            .unwrap();
        assert_eq!(d, host);
        assert!(host.top1 > 0.0 && host.top5 > host.top1 && host.top5 < 100.0);
    }

    fn names(c: usize) -> Vec<String> {
        (0..c).map(|i| format!("class{i}")).collect()
    }

    /// A NaN weight, feature or score never counts as a rank (comparisons with NaN are false:
    /// every true class would come first, 100 %): each is an error naming the class or row.
    #[test]
    fn non_finite_weights_features_and_scores_are_errors_not_ranks() {
        let dev = Device::flex();
        let (f, labels) = (vec![1.0, 0.0, 0.0, 1.0], vec![0, 1]);
        let mut w = vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5];
        w[3] = f32::NAN;
        let x = DeviceFeatures::upload(&f, &labels, 2, &dev).unwrap();
        let e = x.accuracy(&weights_on(&w, 2, &dev), &names(3)).unwrap_err().to_string();
        assert!(e.contains("class 1 `class1`") && e.contains("NaN"), "{e}");
        // The ranks alone (weights not checked): the image is refused, not ranked first.
        let e = x.ranks(&weights_on(&w, 2, &dev)).unwrap_err().to_string();
        assert!(e.contains("image feature row 0") && e.contains("1 of its 3 class scores"), "{e}");
        let mut bad = f.clone();
        bad[2] = f32::INFINITY;
        let e = DeviceFeatures::upload(&bad, &labels, 2, &dev).err().unwrap().to_string();
        assert!(e.contains("image feature row 1 (label 1)") && e.contains("inf"), "{e}");
        let e = x.accuracy(&weights_on(&w[..4], 2, &dev), &names(3)).unwrap_err().to_string();
        assert!(e.contains("2 class weight rows for 3 classes"), "{e}");
    }
}
