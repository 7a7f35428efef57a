//! Float64 reference of `unified_focal` (SPEC.md), written from the
//! formulas as MONAI evaluates them: both classes' probabilities clamped
//! apart, each class's confusion counts summed from its own clamped p.

use crate::error::Result;
use crate::losses::{HostInputs, OverlapMode, UnifiedFocalConfig};
use crate::reference::{Reference, log_softmax, sigmoid};

/// Value and gradient of `unified_focal`.
pub fn evaluate(config: &UnifiedFocalConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let shape = &inputs.logits.shape;
    let (n, s) = (shape[0], shape[2..].iter().product::<usize>());
    let softmax = config.mode == OverlapMode::Multiclass;
    let x = inputs.logits.to_f64();
    let y: Vec<f64> = if softmax {
        inputs.target.as_i32("target")?.iter().map(|&v| (v == 1) as u8 as f64).collect()
    } else {
        inputs.target.to_f64()
    };
    let (lambda, delta, gamma, eps) = (config.weight, config.delta, config.gamma, config.eps);
    let clamp = |p: f64| (p.clamp(eps, 1.0 - eps), (p > eps && p < 1.0 - eps) as u8 as f64);

    // Per pixel: the unclamped (p0, p1), the clamped (q0, q1), and the
    // clamp's derivatives (m0, m1).
    let mut px = Vec::with_capacity(n * s);
    for img in 0..n {
        for sp in 0..s {
            let (p0, p1) = if softmax {
                let l = log_softmax(&[x[img * 2 * s + sp], x[img * 2 * s + s + sp]]);
                (l[0].exp(), l[1].exp())
            } else {
                let v = x[img * s + sp];
                (sigmoid(-v), sigmoid(v))
            };
            let ((q0, m0), (q1, m1)) = (clamp(p0), clamp(p1));
            px.push([p0, p1, q0, q1, m0, m1]);
        }
    }

    let count = (n * s) as f64;
    let mut afl = 0.0;
    // ∂L/∂q_c per pixel.
    let mut dq = vec![[0.0f64; 2]; n * s];
    for (k, &[_, _, q0, q1, _, _]) in px.iter().enumerate() {
        let (g0, g1) = (1.0 - y[k], y[k]);
        afl += (1.0 - delta) * (1.0 - q0).powf(gamma) * (-g0 * q0.ln()) + delta * (-g1 * q1.ln());
        let scale = lambda / (2.0 * count);
        dq[k][0] += scale * (1.0 - delta) * g0 * (gamma * (1.0 - q0).powf(gamma - 1.0) * q0.ln() - (1.0 - q0).powf(gamma) / q0);
        dq[k][1] += scale * (-delta * g1 / q1);
    }
    let mut aftl = 0.0;
    for img in 0..n {
        let pixels = img * s..(img + 1) * s;
        for c in 0..2 {
            let g = |k: usize| if c == 1 { y[k] } else { 1.0 - y[k] };
            let q = |k: usize| px[k][2 + c];
            let tp: f64 = pixels.clone().map(|k| g(k) * q(k)).sum();
            let fneg: f64 = pixels.clone().map(|k| g(k) * (1.0 - q(k))).sum();
            let fpos: f64 = pixels.clone().map(|k| (1.0 - g(k)) * q(k)).sum();
            let b = tp + delta * fneg + (1.0 - delta) * fpos + eps;
            let t = (tp + eps) / b;
            // The class's term and its derivative by T.
            let (term, dterm) = if c == 0 { (1.0 - t, -1.0) } else { ((1.0 - t).powf(1.0 - gamma), -(1.0 - gamma) * (1.0 - t).powf(-gamma)) };
            aftl += term;
            let r = (1.0 - lambda) / (2.0 * n as f64) * dterm;
            let (dt_tp, dt_fn, dt_fp) = ((b - (tp + eps)) / (b * b), -(tp + eps) * delta / (b * b), -(tp + eps) * (1.0 - delta) / (b * b));
            for k in pixels.clone() {
                dq[k][c] += r * (g(k) * dt_tp - g(k) * dt_fn + (1.0 - g(k)) * dt_fp);
            }
        }
    }
    let value = lambda * afl / (2.0 * count) + (1.0 - lambda) * aftl / (2.0 * n as f64);

    let mut grad = vec![0.0; x.len()];
    for img in 0..n {
        for sp in 0..s {
            let k = img * s + sp;
            let [p0, p1, _, _, m0, m1] = px[k];
            // dp_1/dz = p0·p1 and dp_0/dz = −p0·p1 for z = x (binary) or x_1 − x_0 (softmax).
            let dz = p0 * p1 * (m1 * dq[k][1] - m0 * dq[k][0]);
            if softmax {
                grad[img * 2 * s + sp] = -dz;
                grad[img * 2 * s + s + sp] = dz;
            } else {
                grad[k] = dz;
            }
        }
    }
    Ok(Reference { value: vec![value], value_shape: vec![1], grad, ..Default::default() })
}
