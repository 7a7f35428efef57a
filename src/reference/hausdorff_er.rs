//! Float64 reference of `hausdorff_er` (SPEC.md): kornia's erosion loss,
//! forward as SPEC writes it, and its gradient by reverse mode through the
//! k erosions (the cross average, the threshold, the min-max
//! normalisation with its ties sharing evenly), then the softmax or sigmoid.

use crate::error::Result;
use crate::losses::{HausdorffErConfig, HostInputs, OverlapMode, Reduction};
use crate::primitives::stencil::{StencilGrid, StencilOp, stencil_cpu};
use crate::reference::{Reference, class_probabilities, through_activation};

/// One erosion of the forward pass, as the reverse pass needs it.
struct Erosion {
    /// D, the cross average.
    average: Vec<f64>,
    /// E' = D − ½ where D ≥ ½, else 0.
    thresholded: Vec<f64>,
    /// E, normalised when hi > lo.
    eroded: Vec<f64>,
    lo: f64,
    hi: f64,
}

/// Value and gradient of `hausdorff_er`.
pub fn evaluate(config: &HausdorffErConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let shape = &inputs.logits.shape;
    let (n, c) = (shape[0], shape[1]);
    let spatial = &shape[2..];
    let s: usize = spatial.iter().product();
    let softmax = config.mode == OverlapMode::Multiclass;
    // Probabilities and the one-hot (or dense) target, [N, C, S].
    let (p, g) = class_probabilities(inputs, softmax)?;

    let grid = StencilGrid::new(1, spatial)?;
    let w = if spatial.len() == 3 { 1.0 / 7.0 } else { 1.0 / 5.0 };
    let weight = |i: usize| ((i + 1) as f64).powf(config.alpha);
    let (mean, total) = (config.reduction == Reduction::Mean, (n * c * s) as f64);
    // ∂value/∂out[q]: the same for every element.
    let upstream = if mean { 1.0 / total } else { 1.0 };
    let mut out = vec![0.0; n * c * s];
    let mut dp = vec![0.0; n * c * s];
    for m in 0..n * c {
        let map = m * s..(m + 1) * s;
        let mut bound: Vec<f64> = map.clone().map(|q| (p[q] - g[q]).powi(2)).collect();
        let mut erosions = Vec::with_capacity(config.k);
        for i in 0..config.k {
            let average: Vec<f64> = stencil_cpu(StencilOp::CrossSum, &grid, &bound)?.iter().map(|v| w * v).collect();
            let thresholded: Vec<f64> = average.iter().map(|&d| if d >= 0.5 { d - 0.5 } else { 0.0 }).collect();
            let lo = thresholded.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = thresholded.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let eroded: Vec<f64> = if hi > lo { thresholded.iter().map(|e| (e - lo) / (hi - lo)).collect() } else { thresholded.clone() };
            for (o, e) in out[map.clone()].iter_mut().zip(&eroded) {
                *o += weight(i) * e;
            }
            bound = eroded.clone();
            erosions.push(Erosion { average, thresholded, eroded, lo, hi });
        }
        // Reverse: gb is ∂value/∂B of the erosion after the current one.
        let mut gb = vec![0.0; s];
        for (i, er) in erosions.iter().enumerate().rev() {
            let ge: Vec<f64> = gb.iter().map(|b| weight(i) * upstream + b).collect();
            let mut gt = ge.clone();
            if er.hi > er.lo {
                let r = er.hi - er.lo;
                let to_lo: f64 = ge.iter().zip(&er.eroded).map(|(ge, e)| ge * (e - 1.0) / r).sum();
                let to_hi: f64 = ge.iter().zip(&er.eroded).map(|(ge, e)| -ge * e / r).sum();
                let at_lo: Vec<usize> = (0..s).filter(|&q| er.thresholded[q] == er.lo).collect();
                let at_hi: Vec<usize> = (0..s).filter(|&q| er.thresholded[q] == er.hi).collect();
                gt.iter_mut().for_each(|v| *v /= r);
                at_lo.iter().for_each(|&q| gt[q] += to_lo / at_lo.len() as f64);
                at_hi.iter().for_each(|&q| gt[q] += to_hi / at_hi.len() as f64);
            }
            let gd: Vec<f64> = gt.iter().zip(&er.average).map(|(v, &d)| if d >= 0.5 { *v } else { 0.0 }).collect();
            gb = stencil_cpu(StencilOp::CrossSum, &grid, &gd)?.iter().map(|v| w * v).collect();
        }
        for (k, q) in map.enumerate() {
            dp[q] = 2.0 * (p[q] - g[q]) * gb[k];
        }
    }

    let grad = through_activation(shape, &p, &dp, softmax);
    let value = match config.reduction {
        Reduction::None => out,
        Reduction::Sum => vec![out.iter().sum()],
        Reduction::Mean => vec![out.iter().sum::<f64>() / total],
    };
    let value_shape = if config.reduction == Reduction::None { shape.clone() } else { vec![1] };
    Ok(Reference { value, value_shape, grad, extras: Vec::new() })
}
