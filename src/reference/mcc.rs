//! Float64 reference of `mcc` (SPEC.md), on the overlap family's element
//! quantities and group statistics (reference/overlap.rs).

use crate::error::Result;
use crate::losses::{Aggregate, HostInputs, MccConfig, Reduction};
use crate::reference::Reference;
use crate::reference::overlap::Elements;

/// One group's loss and its derivatives by I and by P, from its I, P, G and
/// pixel count M.
fn group_loss(config: &MccConfig, [i, p, g]: [f64; 3], m: f64) -> (f64, [f64; 2]) {
    let e = config.eps;
    // Clamped at 0 as the kernel clamps its f32 differences; exact
    // arithmetic never goes below.
    let tp = i + e;
    let fp = (p - i).max(0.0) + e;
    let fneg = (g - i).max(0.0) + e;
    let tn = (m - p - g + i).max(0.0) + e;
    let (pred, act, not_act, not_pred) = (tp + fp, tp + fneg, tn + fp, tn + fneg);
    let q = pred * act * not_act * not_pred + config.smooth_dr;
    let den = q.sqrt();
    let score = (tp * tn - fp * fneg + config.smooth_nr) / den;
    if fp == 0.0 && fneg == 0.0 {
        // Perfect: a constant 0 (MONAI's rule).
        return (0.0, [0.0, 0.0]);
    }
    if e == 0.0 && (g == 0.0 || g == m) {
        // Empty or full: the gradient is exactly 0 (SPEC.md).
        return (1.0 - score, [0.0, 0.0]);
    }
    // ∂l/∂X = −(∂num/∂X)/den + score·(∂q/∂X)/(2q), X each count.
    let half = score / (2.0 * q);
    let d_tp = -tn / den + half * not_act * not_pred * (pred + act);
    let d_fp = fneg / den + half * act * not_pred * (pred + not_act);
    let d_fn = fp / den + half * pred * not_act * (act + not_pred);
    let d_tn = -tp / den + half * pred * act * (not_act + not_pred);
    // I enters TP and TN with +1 and FP and FN with −1; P enters FP with +1, TN with −1.
    (1.0 - score, [d_tp - d_fp - d_fn + d_tn, d_fp - d_tn])
}

/// Value and gradient of `mcc`.
pub fn evaluate(config: &MccConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let el = Elements::new(config.mode, None, inputs)?;
    let aggregate = config.aggregate;
    let stats = el.stats(aggregate, false);
    let first = !config.include_background as usize;
    let images = if aggregate == Aggregate::Image { el.n } else { 1 };
    let pixels = (el.s * if aggregate == Aggregate::Image { 1 } else { el.n }) as f64;
    let r = match config.reduction {
        Reduction::Mean => 1.0 / (images * (el.c - first)) as f64,
        _ => 1.0,
    };
    let mut losses = Vec::new();
    let mut coef = vec![[0.0; 2]; stats.len()];
    for img in 0..images {
        for class in first..el.c {
            let k = el.group(img, class, aggregate);
            let (l, d) = group_loss(config, stats[k], pixels);
            losses.push(l);
            coef[k] = [r * d[0], r * d[1]];
        }
    }
    let grad = el.backward(&coef, aggregate, false);
    let kept = el.c - first;
    Ok(match config.reduction {
        Reduction::None => {
            let value_shape = if aggregate == Aggregate::Image { vec![el.n, kept] } else { vec![kept] };
            Reference { value: losses, value_shape, grad, ..Default::default() }
        }
        _ => Reference { value: vec![r * losses.iter().sum::<f64>()], value_shape: vec![1], grad, ..Default::default() },
    })
}
