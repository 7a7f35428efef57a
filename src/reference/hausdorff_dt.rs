//! Float64 reference of `hausdorff_dt` (SPEC.md; Karimi & Salcudean 2019,
//! MONAI's `HausdorffDTLoss` and `LogHausdorffDTLoss`): the squared error of
//! every kept channel weighted by the two-sided distance fields of the
//! predicted mask `P = [p > 0.5]` and the target's `G = [g > 0.5]`.
//!
//! The fields are computed here with the float64 transform of
//! [`crate::reference::boundary::euclidean_distance`], never rounded to f32
//! (SPEC.md undoes MONAI's casts). Both fields are constants of the gradient:
//! the masks are piecewise constant in the logits, and MONAI computes the
//! fields under `torch.no_grad()`, so `∂e/∂p = 2(p − g)·(d_P^α + d_G^α)`.

use crate::error::Result;
use crate::losses::overlap::{Aggregate, OverlapMode};
use crate::losses::{HausdorffDtConfig, HostInputs, Reduction};
use crate::reference::boundary::euclidean_distance;
use crate::reference::{Reference, class_probabilities};

/// The two-sided distance field of `mask` (one image, row-major over `dims`):
/// for a pixel in the mask the distance to the nearest pixel outside it, for
/// a pixel outside the distance to the nearest pixel in it, in physical units
/// (`spacing` per axis); 0 everywhere when the mask is empty or full.
pub fn two_sided_field(mask: &[bool], dims: &[usize], spacing: &[f64]) -> Vec<f64> {
    if mask.iter().all(|&b| b) || !mask.iter().any(|&b| b) {
        return vec![0.0; mask.len()];
    }
    let outside: Vec<bool> = mask.iter().map(|&b| !b).collect();
    let to_mask = euclidean_distance(mask, dims, spacing);
    let to_outside = euclidean_distance(&outside, dims, spacing);
    mask.iter().enumerate().map(|(q, &inside)| if inside { to_outside[q] } else { to_mask[q] }).collect()
}

/// Two-sided fields `[N, K, S…]` of the masks `[label = classes[k]]` of
/// `labels` (`[N, S…]`, `dims` = S): the twin of the distance primitive's
/// [`DistanceField::TwoSided`](crate::primitives::distance::DistanceField::TwoSided).
pub fn two_sided_distance(labels: &[i32], dims: &[usize], classes: &[usize], spacing: &[f64]) -> Vec<f64> {
    let s: usize = dims.iter().product();
    let mut out = Vec::with_capacity(labels.len() / s * classes.len() * s);
    for image in labels.chunks(s) {
        for &c in classes {
            let mask: Vec<bool> = image.iter().map(|&y| y as i64 == c as i64).collect();
            out.extend(two_sided_field(&mask, dims, spacing));
        }
    }
    out
}

/// Value and gradient of `hausdorff_dt`, and the target's fields of every
/// channel (`[N, C, S…]`) as the extra `distance`; with `inputs.distance`
/// those fields are the caller's (and not reported).
pub fn evaluate(config: &HausdorffDtConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let shape = &inputs.logits.shape;
    let (n, c, dims) = (shape[0], shape[1], &shape[2..]);
    let s: usize = dims.iter().product();
    let first = config.first_channel(c);
    let kept = c - first;
    let spacing = config.spacing.clone().unwrap_or_else(|| vec![1.0; dims.len()]);
    let x = inputs.logits.to_f64();
    let at = |img: usize, ch: usize, q: usize| (img * c + ch) * s + q;

    // Probabilities and targets, [N, C, S].
    let (p, g) = class_probabilities(inputs, config.mode == OverlapMode::Multiclass)?;

    // Both fields of every (image, channel), and the per-pixel error weights.
    let field_of = |values: &[f64], img: usize, ch: usize| {
        let mask: Vec<bool> = (0..s).map(|q| values[at(img, ch, q)] > 0.5).collect();
        two_sided_field(&mask, dims, &spacing)
    };
    // The target's fields: the caller's ([N, C, S…]) when given.
    let given = inputs.distance.map(|d| d.to_f64());
    let mut target_fields = vec![0.0; x.len()];
    let mut weight = vec![0.0; x.len()];
    for img in 0..n {
        for ch in 0..c {
            let d_g = match &given {
                Some(d) => d[at(img, ch, 0)..at(img, ch, 0) + s].to_vec(),
                None => field_of(&g, img, ch),
            };
            target_fields[at(img, ch, 0)..at(img, ch, 0) + s].copy_from_slice(&d_g);
            if ch >= first {
                let d_p = field_of(&p, img, ch);
                for q in 0..s {
                    weight[at(img, ch, q)] = d_p[q].powf(config.alpha) + d_g[q].powf(config.alpha);
                }
            }
        }
    }

    // Group sums: l[n, k] = Σ_q e / S ("image") or l[k] = Σ_{n,q} e / (N·S) ("batch").
    let batch = config.aggregate == Aggregate::Batch;
    let groups = if batch { kept } else { n * kept };
    let size = if batch { (n * s) as f64 } else { s as f64 };
    let group_of = |img: usize, k: usize| if batch { k } else { img * kept + k };
    let mut l = vec![0.0; groups];
    for img in 0..n {
        for k in 0..kept {
            for q in 0..s {
                let i = at(img, first + k, q);
                l[group_of(img, k)] += (p[i] - g[i]).powi(2) * weight[i] / size;
            }
        }
    }

    // The reduction, the log, and each group's factor ∂out/∂l.
    let finish = |v: f64| if config.log { v.ln_1p() } else { v };
    let slope = |v: f64| if config.log { 1.0 / (1.0 + v) } else { 1.0 };
    let (value, value_shape, factor): (Vec<f64>, Vec<usize>, Vec<f64>) = match config.reduction {
        Reduction::None => {
            let shape = if batch { vec![kept] } else { vec![n, kept] };
            (l.iter().map(|&v| finish(v)).collect(), shape, l.iter().map(|&v| slope(v)).collect())
        }
        Reduction::Sum => {
            let v: f64 = l.iter().sum();
            (vec![finish(v)], vec![1], vec![slope(v); groups])
        }
        Reduction::Mean => {
            let v = l.iter().sum::<f64>() / groups as f64;
            (vec![finish(v)], vec![1], vec![slope(v) / groups as f64; groups])
        }
    };

    // u = ∂out/∂p for the kept channels, then through the softmax or the sigmoid.
    let mut u = vec![0.0; x.len()];
    for img in 0..n {
        for k in 0..kept {
            for q in 0..s {
                let i = at(img, first + k, q);
                u[i] = factor[group_of(img, k)] * 2.0 * (p[i] - g[i]) * weight[i] / size;
            }
        }
    }
    let mut grad = vec![0.0; x.len()];
    match config.mode {
        OverlapMode::Multiclass => {
            for img in 0..n {
                for q in 0..s {
                    let dot: f64 = (0..c).map(|ch| u[at(img, ch, q)] * p[at(img, ch, q)]).sum();
                    for ch in 0..c {
                        let i = at(img, ch, q);
                        grad[i] = p[i] * (u[i] - dot);
                    }
                }
            }
        }
        OverlapMode::Binary | OverlapMode::Multilabel => {
            for (i, gi) in grad.iter_mut().enumerate() {
                *gi = u[i] * p[i] * (1.0 - p[i]);
            }
        }
    }
    // The caller's fields are not reported back, as the plan does not report them.
    let extras = if given.is_some() { Vec::new() } else { vec![("distance", target_fields)] };
    Ok(Reference { value, value_shape, grad, extras })
}
