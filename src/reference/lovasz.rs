//! Float64 references of `lovasz_softmax` and `lovasz_hinge` (SPEC.md),
//! written the way Berman et al.'s reference code reads: per group of
//! pixels (the batch, or each image) and per class, a stable sort of the
//! errors, `lovasz_grad` of the sorted labels, and the dot product.

use crate::error::Result;
use crate::losses::{HostInputs, LovaszClasses, LovaszHingeConfig, LovaszSoftmaxConfig};
use crate::reference::{Reference, log_softmax, pixels};

/// `lovasz_grad` of SPEC.md: the Jaccard loss's increments along labels
/// sorted by decreasing error.
pub fn lovasz_grad(gt_sorted: &[f64]) -> Vec<f64> {
    let total: f64 = gt_sorted.iter().sum();
    let (mut cum_fg, mut cum_bg) = (0.0, 0.0);
    let mut jaccard = Vec::with_capacity(gt_sorted.len());
    for &g in gt_sorted {
        cum_fg += g;
        cum_bg += 1.0 - g;
        let intersection = total - cum_fg;
        let union = total + cum_bg;
        jaccard.push(1.0 - intersection / union);
    }
    for k in (1..jaccard.len()).rev() {
        jaccard[k] -= jaccard[k - 1];
    }
    jaccard
}

/// Indices of `errors` by decreasing error, equal errors in index order.
fn order_descending(errors: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..errors.len()).collect();
    order.sort_by(|&a, &b| errors[b].total_cmp(&errors[a]));
    order
}

/// The Lovász extension of the errors (`Σ_k relu?(e_σ(k))·grad_k`) and, per
/// element, `grad` at its rank: ∂loss/∂e with `lovasz_grad` held constant.
fn lovasz_flat(errors: &[f64], labels: &[f64], relu: bool) -> (f64, Vec<f64>) {
    let order = order_descending(errors);
    let sorted: Vec<f64> = order.iter().map(|&i| labels[i]).collect();
    let grad = lovasz_grad(&sorted);
    let mut loss = 0.0;
    let mut per_element = vec![0.0; errors.len()];
    for (rank, &i) in order.iter().enumerate() {
        let e = if relu { errors[i].max(0.0) } else { errors[i] };
        loss += e * grad[rank];
        per_element[i] = grad[rank];
    }
    (loss, per_element)
}

/// Pixel ranges of the groups: each image, or the whole batch.
fn groups(images: usize, spatial: usize, per_image: bool) -> Vec<std::ops::Range<usize>> {
    if per_image { (0..images).map(|n| n * spatial..(n + 1) * spatial).collect() } else { std::iter::once(0..images * spatial).collect() }
}

/// d|a|/da as autograd takes it: the sign, 0 at 0.
fn sign(a: f64) -> f64 {
    if a > 0.0 {
        1.0
    } else if a < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Value and gradient of `lovasz_softmax`.
pub fn evaluate_softmax(config: &LovaszSoftmaxConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let shape = &inputs.logits.shape;
    let (n, c, s) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
    let x = inputs.logits.to_f64();
    let labels = inputs.target.as_i32("target")?;
    // probs[pixel][class], and each pixel's logit indices.
    let mut probs = vec![Vec::new(); n * s];
    let mut index = vec![Vec::new(); n * s];
    for (p, idx) in pixels(shape) {
        probs[p] = log_softmax(&idx.iter().map(|&i| x[i]).collect::<Vec<_>>()).iter().map(|l| l.exp()).collect();
        index[p] = idx;
    }
    let classes: Vec<usize> = match &config.classes {
        LovaszClasses::List(list) => list.iter().map(|&k| k as usize).collect(),
        _ => (0..c).collect(),
    };
    let present_only = config.classes == LovaszClasses::Present;
    let group_list = groups(n, s, config.per_image);
    let group_weight = 1.0 / group_list.len() as f64;
    let mut value = 0.0;
    // ∂loss/∂p[pixel][class]
    let mut dp = vec![vec![0.0; c]; n * s];
    for range in group_list {
        let valid: Vec<usize> = range.filter(|&p| config.ignore_index != Some(labels[p] as i64)).collect();
        let mut terms = Vec::new();
        for &class in &classes {
            let fg: Vec<f64> = valid.iter().map(|&p| if labels[p] as usize == class { 1.0 } else { 0.0 }).collect();
            if present_only && fg.iter().sum::<f64>() == 0.0 {
                continue;
            }
            let errors: Vec<f64> = valid.iter().zip(&fg).map(|(&p, &f)| (f - probs[p][class]).abs()).collect();
            let (loss, grad) = lovasz_flat(&errors, &fg, false);
            terms.push((class, fg, loss, grad));
        }
        if terms.is_empty() {
            continue;
        }
        let w = group_weight / terms.len() as f64;
        for (class, fg, loss, grad) in terms {
            value += w * loss;
            for (i, &p) in valid.iter().enumerate() {
                dp[p][class] += w * grad[i] * sign(probs[p][class] - fg[i]);
            }
        }
    }
    // Through the softmax: ∂/∂x_k = p_k (∂/∂p_k − Σ_c p_c ∂/∂p_c).
    let mut grad = vec![0.0; x.len()];
    for p in 0..n * s {
        let dot: f64 = (0..c).map(|k| probs[p][k] * dp[p][k]).sum();
        for k in 0..c {
            grad[index[p][k]] = probs[p][k] * (dp[p][k] - dot);
        }
    }
    Ok(Reference { value: vec![value], value_shape: vec![1], grad, extras: Vec::new() })
}

/// Value and gradient of `lovasz_hinge`.
pub fn evaluate_hinge(config: &LovaszHingeConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let x = inputs.logits.to_f64();
    let labels = inputs.target.as_i32("target")?;
    let n = inputs.target.shape[0];
    let s = labels.len() / n.max(1);
    let group_list = groups(n, s, config.per_image);
    let group_weight = 1.0 / group_list.len() as f64;
    let mut value = 0.0;
    let mut grad = vec![0.0; x.len()];
    for range in group_list {
        let valid: Vec<usize> = range.filter(|&p| config.ignore_index != Some(labels[p] as i64)).collect();
        let y: Vec<f64> = valid.iter().map(|&p| labels[p] as f64).collect();
        let errors: Vec<f64> = valid.iter().zip(&y).map(|(&p, &yi)| 1.0 - x[p] * (2.0 * yi - 1.0)).collect();
        let (loss, lg) = lovasz_flat(&errors, &y, true);
        value += group_weight * loss;
        for (i, &p) in valid.iter().enumerate() {
            // relu's derivative is 0 at 0, as autograd takes it.
            if errors[i] > 0.0 {
                grad[p] = -group_weight * lg[i] * (2.0 * y[i] - 1.0);
            }
        }
    }
    Ok(Reference { value: vec![value], value_shape: vec![1], grad, extras: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lovasz_grad_of_small_sequences() {
        // G = 2: J = 1 − I/U along [1, 0, 1]: I = 1, 1, 0; U = 2, 3, 3.
        let g = lovasz_grad(&[1.0, 0.0, 1.0]);
        let want = [0.5, (1.0 - 1.0 / 3.0) - 0.5, 1.0 - (1.0 - 1.0 / 3.0)];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-15);
        }
        // No foreground: J = 1 everywhere, all weight on the largest error.
        assert_eq!(lovasz_grad(&[0.0, 0.0, 0.0]), vec![1.0, 0.0, 0.0]);
        assert_eq!(lovasz_grad(&[]), Vec::<f64>::new());
    }

    #[test]
    fn ties_keep_index_order() {
        assert_eq!(order_descending(&[0.5, 1.0, 0.5, 1.0]), vec![1, 3, 0, 2]);
    }
}
