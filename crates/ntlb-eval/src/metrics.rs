//! Classification accuracy from normalised features and class weights.
//!
//! A score that is not a number has no rank: comparisons with NaN are all false, so counted as
//! ranks they would put the true class first. Non-finite inputs and scores are errors naming the
//! image row and the class, and an accuracy over no image is refused rather than written as 0.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Percent.
    pub top1: f64,
    pub top5: f64,
    /// Mean over classes of the per-class top-1 (classes without images skipped).
    pub mean_per_class: f64,
    pub per_class: Vec<Option<f64>>,
    pub n: usize,
}

/// The first row of `rows` (`dim` wide) holding a value that is not finite: (row, how many of
/// its values are not, the first of them).
pub fn first_non_finite(rows: &[f32], dim: usize) -> Option<(usize, usize, f32)> {
    rows.chunks(dim.max(1)).enumerate().find_map(|(i, r)| {
        let bad: Vec<f32> = r.iter().copied().filter(|v| !v.is_finite()).collect();
        (!bad.is_empty()).then(|| (i, bad.len(), bad[0]))
    })
}

/// Scores = features `[N, E]` · weightsᵀ `[C, E]`; ties go to the lower class index (argmax).
/// The host reference; sweeps score on the model's device ([`crate::scores`]).
pub fn accuracy(features: &[f32], labels: &[usize], dim: usize, weights: &[f32], n_classes: usize) -> Result<Accuracy> {
    let mut scores = vec![0f32; n_classes];
    let mut ranks = Vec::with_capacity(labels.len());
    for (i, &y) in labels.iter().enumerate() {
        let f = &features[i * dim..(i + 1) * dim];
        for (c, s) in scores.iter_mut().enumerate() {
            *s = f.iter().zip(&weights[c * dim..(c + 1) * dim]).map(|(a, b)| a * b).sum();
        }
        if let Some(c) = scores.iter().position(|s| !s.is_finite()) {
            bail!(
                "image row {i}: its score for class {c} is {} (not a finite number): no rank",
                scores[c]
            );
        }
        let target = scores[y];
        // Rank of the true class: classes scoring higher, or equal with a lower index.
        ranks.push(
            scores
                .iter()
                .enumerate()
                .filter(|&(c, &s)| s > target || (s == target && c < y))
                .count(),
        );
    }
    accuracy_from_ranks(&ranks, labels, n_classes)
}

/// Top-1, top-5 and per-class accuracy from the rank of each image's true class.
pub fn accuracy_from_ranks(ranks: &[usize], labels: &[usize], n_classes: usize) -> Result<Accuracy> {
    let n = labels.len();
    if n == 0 {
        bail!("no image to score: an accuracy over no image is undefined");
    }
    let mut correct1 = 0usize;
    let mut correct5 = 0usize;
    let mut per_hit = vec![0usize; n_classes];
    let mut per_n = vec![0usize; n_classes];
    for (&rank, &y) in ranks.iter().zip(labels) {
        correct1 += usize::from(rank == 0);
        correct5 += usize::from(rank < 5);
        per_n[y] += 1;
        per_hit[y] += usize::from(rank == 0);
    }
    let per_class: Vec<Option<f64>> = per_n
        .iter()
        .zip(&per_hit)
        .map(|(&t, &h)| (t > 0).then(|| 100.0 * h as f64 / t as f64))
        .collect();
    let present: Vec<f64> = per_class.iter().flatten().copied().collect();
    Ok(Accuracy {
        top1: 100.0 * correct1 as f64 / n as f64,
        top5: 100.0 * correct5 as f64 / n as f64,
        mean_per_class: present.iter().sum::<f64>() / present.len() as f64,
        per_class,
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_accuracies() {
        // 3 classes in 2-d: weights e0, e1, (e0+e1)/√2.
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let w = [1.0, 0.0, 0.0, 1.0, s, s];
        // image 0 ≈ e0 (class 0 ✓), image 1 ≈ e1 labelled 2 (ranked 2nd: top-5 ✓, top-1 ✗),
        // image 2 diagonal labelled 2 ✓.
        let f = [1.0, 0.0, 0.0, 1.0, s, s];
        let a = accuracy(&f, &[0, 2, 2], 2, &w, 3).unwrap();
        assert!((a.top1 - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(a.top5, 100.0);
        assert_eq!(a.per_class, vec![Some(100.0), None, Some(50.0)]);
        assert_eq!(a.mean_per_class, 75.0);
    }

    /// One NaN weight makes every score of its class NaN; counted as a rank it would put every
    /// true class first (100 %). It is an error naming the image row and the class.
    #[test]
    fn a_nan_score_is_an_error_never_a_first_rank() {
        let w = [1.0, 0.0, f32::NAN, 1.0, 0.5, 0.5];
        let f = [0.0, 1.0, 1.0, 0.0];
        let e = accuracy(&f, &[0, 2], 2, &w, 3).unwrap_err().to_string();
        assert!(e.contains("image row 0") && e.contains("class 1") && e.contains("NaN"), "{e}");
        let inf = [f32::INFINITY, 0.0, 0.0, 1.0, 0.5, 0.5];
        let e = accuracy(&[1.0, 0.0], &[1], 2, &inf, 3).unwrap_err().to_string();
        assert!(e.contains("class 0") && e.contains("inf"), "{e}");
        assert_eq!(first_non_finite(&w, 2).map(|(r, n, _)| (r, n)), Some((1, 1)));
        assert_eq!(first_non_finite(&f, 2), None);
    }

    #[test]
    fn no_image_has_no_accuracy() {
        let e = accuracy_from_ranks(&[], &[], 3).unwrap_err().to_string();
        assert!(e.contains("no image"), "{e}");
        assert!(accuracy(&[], &[], 2, &[1.0, 0.0], 1).is_err());
    }
}
