//! Float64 reference of `cross_entropy` (SPEC.md).

use crate::error::Result;
use crate::losses::{CrossEntropyConfig, HostInputs};
use crate::reference::{Reference, log_softmax, pixels, reduce};

/// Value and gradient of `cross_entropy`.
pub fn evaluate(config: &CrossEntropyConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let shape = &inputs.logits.shape;
    let c = shape[1];
    let x = inputs.logits.to_f64();
    let labels = inputs.target.as_i32("target")?;
    let w: Vec<f64> = config.class_weights.clone().unwrap_or_else(|| vec![1.0; c]);
    let w_total: f64 = w.iter().sum();
    let eps = config.label_smoothing;
    let mut losses = vec![0.0; labels.len()];
    let mut grad = vec![0.0; x.len()];
    let mut denominator = 0.0;
    for (p, idx) in pixels(shape) {
        let y = labels[p];
        if config.ignore_index == Some(y as i64) {
            continue;
        }
        let y = y as usize;
        let lsm = log_softmax(&idx.iter().map(|&i| x[i]).collect::<Vec<_>>());
        let smooth: f64 = (0..c).map(|k| w[k] * -lsm[k]).sum();
        losses[p] = (1.0 - eps) * w[y] * -lsm[y] + eps / c as f64 * smooth;
        denominator += w[y];
        for k in 0..c {
            let pk = lsm[k].exp();
            let delta = if k == y { 1.0 } else { 0.0 };
            grad[idx[k]] = (1.0 - eps) * w[y] * (pk - delta) + eps / c as f64 * (w_total * pk - w[k]);
        }
    }
    Ok(reduce(config.reduction, losses, grad, &inputs.target.shape, denominator))
}
