//! Float64 reference of `bce` (SPEC.md).

use crate::error::Result;
use crate::losses::{BceConfig, HostInputs, Reduction};
use crate::reference::{Reference, reduce, sigmoid, softplus};

/// Value and gradient of `bce`.
pub fn evaluate(config: &BceConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let x = inputs.logits.to_f64();
    let y = inputs.target.to_f64();
    let w = inputs.weight.map(|w| w.to_f64());
    let (a, b) = config.coefficients();
    let mut losses = Vec::with_capacity(x.len());
    let mut grad = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let wi = w.as_ref().map_or(1.0, |w| w[i]);
        // −log σ(x) = softplus(−x), −log(1−σ(x)) = softplus(x)
        losses.push(wi * (a * y[i] * softplus(-x[i]) + b * (1.0 - y[i]) * softplus(x[i])));
        grad.push(wi * (b * (1.0 - y[i]) * sigmoid(x[i]) - a * y[i] * sigmoid(-x[i])));
    }
    let n = x.len() as f64;
    Ok(reduce(config.reduction, losses, grad, &inputs.logits.shape, if config.reduction == Reduction::Mean { n } else { 1.0 }))
}
