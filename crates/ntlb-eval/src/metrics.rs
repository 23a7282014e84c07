//! Classification accuracy from normalised features and class weights.

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

/// Scores = features `[N, E]` · weightsᵀ `[C, E]`; ties go to the lower class index (argmax).
/// The host reference; sweeps score on the model's device ([`crate::scores`]).
pub fn accuracy(features: &[f32], labels: &[usize], dim: usize, weights: &[f32], n_classes: usize) -> Accuracy {
    let mut scores = vec![0f32; n_classes];
    let ranks: Vec<usize> = labels
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let f = &features[i * dim..(i + 1) * dim];
            for (c, s) in scores.iter_mut().enumerate() {
                *s = f.iter().zip(&weights[c * dim..(c + 1) * dim]).map(|(a, b)| a * b).sum();
            }
            let target = scores[y];
            // Rank of the true class: classes scoring higher, or equal with a lower index.
            scores
                .iter()
                .enumerate()
                .filter(|&(c, &s)| s > target || (s == target && c < y))
                .count()
        })
        .collect();
    accuracy_from_ranks(&ranks, labels, n_classes)
}

/// Top-1, top-5 and per-class accuracy from the rank of each image's true class.
pub fn accuracy_from_ranks(ranks: &[usize], labels: &[usize], n_classes: usize) -> Accuracy {
    let n = labels.len();
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
    Accuracy {
        top1: 100.0 * correct1 as f64 / n.max(1) as f64,
        top5: 100.0 * correct5 as f64 / n.max(1) as f64,
        mean_per_class: present.iter().sum::<f64>() / present.len().max(1) as f64,
        per_class,
        n,
    }
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
        let a = accuracy(&f, &[0, 2, 2], 2, &w, 3);
        assert!((a.top1 - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(a.top5, 100.0);
        assert_eq!(a.per_class, vec![Some(100.0), None, Some(50.0)]);
        assert_eq!(a.mean_per_class, 75.0);
    }
}
