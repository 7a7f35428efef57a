//! Float64 CPU references, one per loss, written for clarity rather than
//! speed: the oracle the GPU kernels are tested against, and a CPU fallback.

//!
//! This layer sits above the configurations: it reads them, and they never
//! call it. [`LossConfig::reference`] is its one dispatch over the losses.

pub mod bce;
pub mod boundary;
pub mod box_iou;
pub mod cl_dice;
pub mod compound;
pub mod cross_entropy;
pub mod focal;
pub mod generalized_dice;
pub mod hausdorff_dt;
pub mod hausdorff_er;
pub mod lovasz;
pub mod mask_giou;
pub mod mcc;
pub mod overlap;
pub mod unified_focal;

use crate::error::Result;
use crate::losses::{HostInputs, LossConfig, Reduction, Score};

impl LossConfig {
    /// The float64 CPU reference: value and gradient, after the same checks
    /// of parameters, shapes and values the GPU path makes.
    pub fn reference(&self, inputs: &HostInputs<'_>) -> Result<Reference> {
        inputs.check()?;
        self.validate()?;
        self.check_shapes(&inputs.shapes())?;
        self.check_values(inputs)?;
        match self {
            LossConfig::Bce(c) => bce::evaluate(c, inputs),
            LossConfig::CrossEntropy(c) => cross_entropy::evaluate(c, inputs),
            LossConfig::Focal(c) => focal::evaluate(c, inputs),
            LossConfig::Dice(c) => overlap::evaluate(c, Score::Dice, inputs),
            LossConfig::Jaccard(c) => overlap::evaluate(c, Score::Jaccard, inputs),
            LossConfig::Tversky(c) => overlap::evaluate(&c.overlap, c.score(), inputs),
            LossConfig::GeneralizedDice(c) => generalized_dice::evaluate(c, inputs),
            LossConfig::BoxIou(c) => box_iou::evaluate(c, inputs),
            LossConfig::MaskGiou(c) => mask_giou::evaluate(c, inputs),
            LossConfig::Boundary(c) => boundary::evaluate(c, inputs),
            LossConfig::LovaszSoftmax(c) => lovasz::evaluate_softmax(c, inputs),
            LossConfig::LovaszHinge(c) => lovasz::evaluate_hinge(c, inputs),
            LossConfig::HausdorffDt(c) => hausdorff_dt::evaluate(c, inputs),
            LossConfig::ClDice(c) => cl_dice::evaluate(c, inputs),
            LossConfig::Mcc(c) => mcc::evaluate(c, inputs),
            LossConfig::HausdorffEr(c) => hausdorff_er::evaluate(c, inputs),
            LossConfig::UnifiedFocal(c) => unified_focal::evaluate(c, inputs),
        }
    }
}

/// A loss's value and its gradient with respect to the logits, in float64.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reference {
    /// The value: one number, or one per element / pixel / group for reduction "none".
    pub value: Vec<f64>,
    /// The value's shape (`[1]` when reduced).
    pub value_shape: Vec<usize>,
    /// ∂(Σ value)/∂logits, the logits' shape.
    pub grad: Vec<f64>,
    /// Named results beside value and gradient, flattened (`mask_giou`'s
    /// `enclosing_count`); golden cases hold them as `expected.NAME`.
    pub extras: Vec<(&'static str, Vec<f64>)>,
}

/// log(1 + e^z) without overflow.
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// σ(x) without overflow.
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) }
}

/// log softmax of one pixel's logits, as (x − m) − log Σ exp(x − m): adding
/// the log-sum back onto m first would lose it on logits near f32's largest
/// (3e38 + log 2 is 3e38 in f64), making two tied top classes each p = 1.
pub fn log_softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let log_sum = x.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    x.iter().map(|v| (v - m) - log_sum).collect()
}

/// Probabilities and targets `[N, C, S]` of the losses that take a softmax
/// with class-index targets (`softmax`) or a sigmoid per channel with dense
/// targets: (p, g).
pub(crate) fn class_probabilities(inputs: &HostInputs<'_>, softmax: bool) -> Result<(Vec<f64>, Vec<f64>)> {
    let shape = &inputs.logits.shape;
    let x = inputs.logits.to_f64();
    if !softmax {
        return Ok((x.iter().map(|&v| sigmoid(v)).collect(), inputs.target.to_f64()));
    }
    let labels = inputs.target.as_i32("target")?;
    let (mut p, mut g) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    for (pixel, at) in pixels(shape) {
        let logp = log_softmax(&at.iter().map(|&i| x[i]).collect::<Vec<_>>());
        for (k, &i) in at.iter().enumerate() {
            p[i] = logp[k].exp();
            g[i] = (labels[pixel] == k as i32) as u8 as f64;
        }
    }
    Ok((p, g))
}

/// ∂/∂x from ∂/∂p `dp`, through the softmax of each pixel (`softmax`) or
/// the sigmoid of each element, p as [`class_probabilities`] gives it.
pub(crate) fn through_activation(shape: &[usize], p: &[f64], dp: &[f64], softmax: bool) -> Vec<f64> {
    if !softmax {
        return p.iter().zip(dp).map(|(p, d)| p * (1.0 - p) * d).collect();
    }
    let mut grad = vec![0.0; p.len()];
    for (_, at) in pixels(shape) {
        let dot: f64 = at.iter().map(|&i| p[i] * dp[i]).sum();
        at.iter().for_each(|&i| grad[i] = p[i] * (dp[i] - dot));
    }
    grad
}

/// Iterates the pixels of `[N, C, S]` logits: (pixel index n·S + s, logit indices of its C classes).
pub(crate) fn pixels(shape: &[usize]) -> impl Iterator<Item = (usize, Vec<usize>)> + '_ {
    let (n, c, s) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
    (0..n * s).map(move |p| {
        let (img, sp) = (p / s, p % s);
        (p, (0..c).map(|k| img * c * s + k * s + sp).collect())
    })
}

/// Applies a reduction to per-element losses and their gradients: sums
/// (and divides by `denominator` for the mean).
pub(crate) fn reduce(
    reduction: Reduction,
    losses: Vec<f64>,
    mut grad: Vec<f64>,
    shape: &[usize],
    denominator: f64,
) -> Reference {
    match reduction {
        Reduction::None => Reference { value: losses, value_shape: shape.to_vec(), grad, extras: Vec::new() },
        Reduction::Sum => Reference { value: vec![losses.iter().sum()], value_shape: vec![1], grad, extras: Vec::new() },
        Reduction::Mean => {
            let inv = if denominator > 0.0 { 1.0 / denominator } else { 0.0 };
            grad.iter_mut().for_each(|g| *g *= inv);
            Reference { value: vec![losses.iter().sum::<f64>() * inv], value_shape: vec![1], grad, extras: Vec::new() }
        }
    }
}
