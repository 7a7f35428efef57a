//! The bench's other side: bce, cross-entropy and Dice written with burn's
//! tensor ops (a chain of kernels differentiated by burn's autodiff), as a
//! burn user would write them without segloss. Their definitions are
//! SPEC.md's; segloss-burn's tests check the same formulas against segloss.

use burn::tensor::activation::{log_softmax, softmax, softplus};
use burn::tensor::{Int, Tensor};

/// Mean binary cross-entropy with logits: softplus(x) − y·x.
pub fn bce(logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (softplus(logits.clone(), 1.0) - target * logits).mean()
}

/// One-hot `[N, C, H, W]` of class indices `[N, H, W]`.
pub fn one_hot(classes: Tensor<3, Int>, count: usize) -> Tensor<4> {
    classes.one_hot::<4>(count).float().permute([0, 3, 1, 2])
}

/// Mean cross-entropy of softmax logits against class indices.
pub fn cross_entropy(logits: Tensor<4>, classes: Tensor<3, Int>) -> Tensor<1> {
    let [n, c, h, w] = logits.dims();
    -(log_softmax(logits, 1) * one_hot(classes, c)).sum() / (n * h * w) as f32
}

/// Multiclass soft Dice per (image, class), averaged: SPEC.md's defaults.
pub fn dice(logits: Tensor<4>, classes: Tensor<3, Int>) -> Tensor<1> {
    let c = logits.dims()[1];
    let g = one_hot(classes, c);
    let p = softmax(logits, 1);
    let i = (p.clone() * g.clone()).sum_dims(&[2, 3]);
    let den = (p.sum_dims(&[2, 3]) + g.sum_dims(&[2, 3]) + 1e-5).clamp_min(1e-7);
    (-(i * 2.0 + 1e-5) / den + 1.0).mean()
}
