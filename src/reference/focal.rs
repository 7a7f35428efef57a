//! Float64 reference of `focal` (SPEC.md), written straight from the definition.

use crate::error::Result;
use crate::losses::{FocalConfig, FocalMode, HostInputs, Reduction};
use crate::reference::{Reference, log_softmax, pixels, reduce, sigmoid, softplus};

/// Value and gradient of `focal`.
pub fn evaluate(config: &FocalConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let g = config.gamma;
    let x = inputs.logits.to_f64();
    if config.mode == FocalMode::Multiclass {
        let shape = &inputs.logits.shape;
        let c = shape[1];
        let labels = inputs.target.as_i32("target")?;
        let w: Vec<f64> = config.class_weights.clone().unwrap_or_else(|| vec![1.0; c]);
        let mut losses = vec![0.0; labels.len()];
        let mut grad = vec![0.0; x.len()];
        for (p, idx) in pixels(shape) {
            let y = labels[p] as usize;
            let lsm = log_softmax(&idx.iter().map(|&i| x[i]).collect::<Vec<_>>());
            let p_y = lsm[y].exp();
            // 1 − p_y as the sum of the other classes' probabilities: exact where p_y ≈ 1.
            let q: f64 = (0..c).filter(|&k| k != y).map(|k| lsm[k].exp()).sum();
            losses[p] = -w[y] * q.powf(g) * lsm[y];
            // ∂l/∂x_k = w_y (p_k − δ_ky) (q^γ − γ p_y lp_y q^(γ−1)), the last term's limit 0 as q → 0.
            let tail = if q > 0.0 { g * p_y * lsm[y] * q.powf(g - 1.0) } else { 0.0 };
            let factor = q.powf(g) - tail;
            for k in 0..c {
                let delta = if k == y { 1.0 } else { 0.0 };
                grad[idx[k]] = w[y] * (lsm[k].exp() - delta) * factor;
            }
        }
        let pixels = labels.len() as f64;
        return Ok(reduce(config.reduction, losses, grad, &inputs.target.shape, mean_over(config, pixels)));
    }
    let y = inputs.target.to_f64();
    let alpha = config.effective_alpha();
    let mut losses = Vec::with_capacity(x.len());
    let mut grad = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let (xi, yi) = (x[i], y[i]);
        let (p, one_minus_p) = (sigmoid(xi), sigmoid(-xi));
        let ce = yi * softplus(-xi) + (1.0 - yi) * softplus(xi);
        let q = p * (1.0 - yi) + one_minus_p * yi; // 1 − p_t
        let a_t = alpha.map_or(1.0, |a| a * yi + (1.0 - a) * (1.0 - yi));
        let dce = p - yi;
        // ∂q^γ/∂x = γ q^(γ−1) (1−2y) p(1−p); for hard targets p(1−p)/q is p or 1−p.
        let r = if yi == 1.0 { p } else if yi == 0.0 { one_minus_p } else if q > 0.0 { p * one_minus_p / q } else { 0.0 };
        let f = if g == 0.0 { 1.0 } else { q.powf(g) };
        losses.push(a_t * f * ce);
        grad.push(a_t * (f * dce + ce * g * f * (1.0 - 2.0 * yi) * r));
    }
    Ok(reduce(config.reduction, losses, grad, &inputs.logits.shape, mean_over(config, x.len() as f64)))
}

fn mean_over(config: &FocalConfig, count: f64) -> f64 {
    if config.reduction == Reduction::Mean { count } else { 1.0 }
}
