//! Float64 reference of `generalized_dice` (SPEC.md).

use crate::error::Result;
use crate::losses::{Aggregate, GeneralizedDiceConfig, HostInputs, Reduction, WeightType};
use crate::reference::Reference;
use crate::reference::overlap::Elements;

/// Value and gradient of `generalized_dice`.
pub fn evaluate(config: &GeneralizedDiceConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let el = Elements::new(config.mode, None, inputs)?;
    let aggregate = config.aggregate;
    let stats = el.stats(aggregate, false);
    let first = !config.include_background as usize;
    let units = if aggregate == Aggregate::Image { el.n } else { 1 };
    let r = match config.reduction {
        Reduction::Mean => 1.0 / units as f64,
        _ => 1.0,
    };
    let mut losses = Vec::new();
    let mut coef = vec![[0.0; 2]; stats.len()];
    for u in 0..units {
        let groups: Vec<usize> = (first..el.c).map(|class| el.group(u, class, aggregate)).collect();
        // In float32, as the anchor (MONAI, `w_func(ground_o.float())`) computes them:
        // the golden cases' values hold that rounding at 1e-8.
        let raw: Vec<f64> = groups
            .iter()
            .map(|&k| {
                let g = stats[k][2] as f32;
                (match config.weight_type {
                    WeightType::Square => 1.0 / (g * g),
                    WeightType::Simple => 1.0 / g,
                    WeightType::Uniform => 1.0,
                }) as f64
            })
            .collect();
        // Infinite weights (absent classes) become the largest finite one (0 if none is finite).
        let fill = raw.iter().copied().filter(|w| w.is_finite()).fold(0.0, f64::max);
        let w: Vec<f64> = raw.iter().map(|&w| if w.is_finite() { w } else { fill }).collect();
        let numer = 2.0 * groups.iter().zip(&w).map(|(&k, w)| w * stats[k][0]).sum::<f64>() + config.smooth_nr;
        let denom = groups.iter().zip(&w).map(|(&k, w)| w * (stats[k][1] + stats[k][2])).sum::<f64>() + config.smooth_dr;
        // A zero denominator (every weight 0 and smooth_dr 0) scores 1.
        let score = if denom > 0.0 { numer / denom } else { 1.0 };
        losses.push(1.0 - score);
        if denom > 0.0 {
            for (&k, w) in groups.iter().zip(&w) {
                coef[k] = [r * -2.0 * w / denom, r * numer * w / (denom * denom)];
            }
        }
    }
    let grad = el.backward(&coef, aggregate, false);
    Ok(match config.reduction {
        Reduction::None => Reference { value_shape: vec![units], value: losses, grad, ..Default::default() },
        _ => Reference { value: vec![r * losses.iter().sum::<f64>()], value_shape: vec![1], grad, ..Default::default() },
    })
}
