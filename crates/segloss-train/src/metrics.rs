//! Scores on held-out images: IoU and Dice per class, from the predicted classes.

use burn::tensor::Tensor;

use crate::data::Batch;

/// Each class's share of the pixels of `batch`.
pub fn class_frequency(batch: &Batch, classes: usize) -> Vec<f64> {
    let mut counts = vec![0usize; classes];
    for &l in &batch.labels {
        counts[l as usize] += 1;
    }
    counts.iter().map(|&c| c as f64 / batch.labels.len() as f64).collect()
}

/// Predicted classes `[N·H·W]` from logits `[N, C, H, W]`: `z > 0` for one
/// logit per pixel, the largest logit otherwise.
pub fn predict(logits: Tensor<4>) -> Vec<i32> {
    let [n, c, h, w] = logits.dims();
    let values = logits.into_data().try_to_vec::<f32>().expect("f32 logits");
    let pixels = h * w;
    let mut out = Vec::with_capacity(n * pixels);
    for img in 0..n {
        for p in 0..pixels {
            let at = |k: usize| values[(img * c + k) * pixels + p];
            let class = if c == 1 {
                (at(0) > 0.0) as i32
            } else {
                (0..c).max_by(|&a, &b| at(a).total_cmp(&at(b))).expect("a class") as i32
            };
            out.push(class);
        }
    }
    out
}

/// IoU and Dice of every class over all held-out pixels.
#[derive(Clone, Debug)]
pub struct Scores {
    pub iou: Vec<f64>,
    pub dice: Vec<f64>,
}

impl Scores {
    pub fn new(predicted: &[i32], labels: &[i32], classes: usize) -> Self {
        let (mut tp, mut fp, mut fn_) = (vec![0usize; classes], vec![0usize; classes], vec![0usize; classes]);
        for (&p, &l) in predicted.iter().zip(labels) {
            if p == l {
                tp[p as usize] += 1;
            } else {
                fp[p as usize] += 1;
                fn_[l as usize] += 1;
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
        Scores {
            iou: (0..classes).map(|c| ratio(tp[c], tp[c] + fp[c] + fn_[c])).collect(),
            dice: (0..classes).map(|c| ratio(2 * tp[c], 2 * tp[c] + fp[c] + fn_[c])).collect(),
        }
    }

    /// The mean IoU of the classes other than the background (class 0).
    pub fn foreground_iou(&self) -> f64 {
        mean(&self.iou[1..])
    }

    /// The mean Dice of the classes other than the background.
    pub fn foreground_dice(&self) -> f64 {
        mean(&self.dice[1..])
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_count_overlaps() {
        // class 1: predicted at 1, 2; labelled at 1, 3 → IoU 1/3, Dice 2/4.
        let s = Scores::new(&[0, 1, 1, 0], &[0, 1, 0, 1], 2);
        assert!((s.iou[1] - 1.0 / 3.0).abs() < 1e-12 && (s.dice[1] - 0.5).abs() < 1e-12);
    }
}
