//! Float64 reference of `boundary` (SPEC.md): an exact Euclidean distance
//! transform written here, the signed distance maps built from it, and the
//! loss `mean over (n, c ∈ classes, q) of softmax(x)[n,c,q] · φ[n,c,q]`.

use crate::error::Result;
use crate::losses::{BoundaryConfig, HostInputs};
use crate::reference::{Reference, log_softmax, reduce};

/// The exact Euclidean distance from every pixel of a `dims`-shaped grid
/// (row-major) to the nearest pixel where `feature` is true, in physical
/// units (`spacing` per axis): `+∞` everywhere when no pixel is a feature.
///
/// Separable, as squared distances decompose over the axes: along the first
/// axis the squared distance to the nearest feature of each line, then along
/// each further axis `g(q) = min over the line of f(x) + ((q − x)·s)²`, taken
/// by trying every x (quadratic per line, but plain).
pub fn euclidean_distance(feature: &[bool], dims: &[usize], spacing: &[f64]) -> Vec<f64> {
    let mut f: Vec<f64> = feature.iter().map(|&b| if b { 0.0 } else { f64::INFINITY }).collect();
    for (axis, &n) in dims.iter().enumerate() {
        let stride: usize = dims[axis + 1..].iter().product();
        let s = spacing[axis];
        let mut line = vec![0.0; n];
        for start in 0..f.len() {
            // A line begins at every pixel whose coordinate along `axis` is 0.
            if !(start / stride).is_multiple_of(n) {
                continue;
            }
            for (i, v) in line.iter_mut().enumerate() {
                *v = f[start + i * stride];
            }
            for q in 0..n {
                let best = (0..n)
                    .map(|x| line[x] + ((q as f64 - x as f64) * s).powi(2))
                    .fold(f64::INFINITY, f64::min);
                f[start + q * stride] = best;
            }
        }
    }
    f.into_iter().map(f64::sqrt).collect()
}

/// Signed distance maps `[N, K, S…]` of the masks `[label = classes[k]]` of
/// `labels` (`[N, S…]` with `dims` = S): outside a mask the distance to it,
/// inside `1 − ` the distance to the outside, all 0 for an empty or full mask.
pub fn signed_distance(labels: &[i32], dims: &[usize], classes: &[usize], spacing: &[f64]) -> Vec<f64> {
    let s: usize = dims.iter().product();
    let mut out = Vec::with_capacity(labels.len() / s * classes.len() * s);
    for image in labels.chunks(s) {
        for &c in classes {
            let inside: Vec<bool> = image.iter().map(|&y| y as i64 == c as i64).collect();
            if inside.iter().all(|&b| b) || !inside.iter().any(|&b| b) {
                out.extend(std::iter::repeat_n(0.0, s));
                continue;
            }
            let outside: Vec<bool> = inside.iter().map(|&b| !b).collect();
            let to_mask = euclidean_distance(&inside, dims, spacing);
            let to_outside = euclidean_distance(&outside, dims, spacing);
            out.extend((0..s).map(|q| if inside[q] { -(to_outside[q] - 1.0) } else { to_mask[q] }));
        }
    }
    out
}

/// The spacing a configuration gives, or 1 per axis.
pub fn spacing_or_ones(config: &BoundaryConfig, axes: usize) -> Vec<f64> {
    config.spacing.clone().unwrap_or_else(|| vec![1.0; axes])
}

/// Value and gradient of `boundary`. With p = softmax(x) and φ_k the map of
/// the k-th selected class, a pixel contributes `l = Σ_k p_{c_k}·φ_k`, and
/// `∂l/∂x_j = p_j·(ψ_j − l)` where ψ_j is φ_k for j = c_k and 0 for classes not selected.
/// φ is `inputs.distance` when given, else computed from the target.
pub fn evaluate(config: &BoundaryConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let shape = &inputs.logits.shape;
    let (n, c, dims) = (shape[0], shape[1], &shape[2..]);
    let s: usize = dims.iter().product();
    let classes = config.selected_classes(c);
    let k = classes.len();
    // Every class's map, [N, C, S…], as golden cases carry it under expected.distance,
    // or the caller's (then not reported, as the plan does not report them).
    let all: Vec<usize> = (0..c).collect();
    let labels = inputs.target.as_i32("target")?;
    let phi = match inputs.distance {
        Some(d) => d.to_f64(),
        None => signed_distance(labels, dims, &all, &spacing_or_ones(config, dims.len())),
    };
    let x = inputs.logits.to_f64();
    let mut losses = vec![0.0; n * k * s];
    let mut grad = vec![0.0; x.len()];
    for img in 0..n {
        for q in 0..s {
            let at = |class: usize| (img * c + class) * s + q;
            let p: Vec<f64> = log_softmax(&(0..c).map(|j| x[at(j)]).collect::<Vec<_>>()).iter().map(|v| v.exp()).collect();
            let mut psi = vec![0.0; c];
            let mut l = 0.0;
            for (slot, &class) in classes.iter().enumerate() {
                let v = p[class] * phi[at(class)];
                losses[(img * k + slot) * s + q] = v;
                psi[class] = phi[at(class)];
                l += v;
            }
            for j in 0..c {
                grad[at(j)] = p[j] * (psi[j] - l);
            }
        }
    }
    let mut value_shape = vec![n, k];
    value_shape.extend(dims);
    let mut reference = reduce(config.reduction, losses, grad, &value_shape, (n * k * s) as f64);
    if inputs.distance.is_none() {
        reference.extras.push(("distance", phi));
    }
    Ok(reference)
}
