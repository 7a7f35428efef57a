//! Float64 reference of `cl_dice` (SPEC.md): MONAI's soft skeleton and
//! centreline Dice, with the Dice term for α < 1, and the gradient by
//! reverse mode through the skeleton's ReLUs and its min/max selections
//! (each selected value passes its gradient to the pixel it was taken from).

use crate::error::Result;
use crate::losses::{ClDiceConfig, HostInputs, OverlapMode, Reduction};
use crate::primitives::stencil::{StencilGrid, StencilOp, stencil_select_cpu};
use crate::reference::{Reference, class_probabilities, through_activation};

/// The soft skeleton of one map with what its reverse pass needs: every
/// erosion's sources, every opening's sources, every δ, and the skeleton.
pub(crate) struct Skeleton {
    /// erode_sources[j][q]: the pixel of J_j that J_{j+1}[q] is taken from.
    erode_sources: Vec<Vec<usize>>,
    /// open_sources[j][q]: the pixel of J_{j+1} that dilate(J_{j+1})[q] is taken from.
    open_sources: Vec<Vec<usize>>,
    /// δ_j = relu(J_j − open(J_j)), j = 0..=K.
    deltas: Vec<Vec<f64>>,
    /// S_j after each update, j = 0..=K.
    partial: Vec<Vec<f64>>,
}

impl Skeleton {
    /// skel(I) of SPEC.md, on one map laid out as `grid` (one map).
    pub(crate) fn new(grid: &StencilGrid, map: &[f64], iterations: usize) -> Result<Skeleton> {
        let mut j = map.to_vec();
        let mut sk = Skeleton { erode_sources: Vec::new(), open_sources: Vec::new(), deltas: Vec::new(), partial: Vec::new() };
        for _ in 0..=iterations {
            // open(J_j) = dilate(erode(J_j)) = dilate(J_{j+1}).
            let (next, erode_src) = stencil_select_cpu(StencilOp::CrossMin, grid, &j)?;
            let (opened, open_src) = stencil_select_cpu(StencilOp::BoxMax, grid, &next)?;
            let delta: Vec<f64> = j.iter().zip(&opened).map(|(a, o)| (a - o).max(0.0)).collect();
            let s = match sk.partial.last() {
                None => delta.clone(),
                Some(prev) => prev.iter().zip(&delta).map(|(s, d)| s + (d - s * d).max(0.0)).collect(),
            };
            sk.erode_sources.push(erode_src);
            sk.open_sources.push(open_src);
            sk.deltas.push(delta);
            sk.partial.push(s);
            j = next;
        }
        Ok(sk)
    }

    /// The skeleton S.
    pub(crate) fn value(&self) -> &[f64] {
        self.partial.last().expect("K + 1 updates")
    }

    /// ∂/∂I of Σ gs·S, given gs = ∂/∂S.
    pub(crate) fn backward(&self, gs: &[f64]) -> Vec<f64> {
        let k = self.deltas.len() - 1;
        let len = gs.len();
        // ∂/∂δ_j through the updates S_j = S_{j−1} + relu(δ_j − S_{j−1}·δ_j).
        let mut g = gs.to_vec();
        let mut gdelta = vec![vec![0.0; len]; k + 1];
        for j in (1..=k).rev() {
            for q in 0..len {
                let (s, d) = (self.partial[j - 1][q], self.deltas[j][q]);
                if d - s * d > 0.0 {
                    gdelta[j][q] = g[q] * (1.0 - s);
                    g[q] *= 1.0 - d;
                }
            }
        }
        gdelta[0] = g;
        // Through δ_j = relu(J_j − dilate(J_{j+1})) and J_{j+1} = erode(J_j), from the deepest J down.
        let mut gj_next = vec![0.0; len];
        for j in (0..=k).rev() {
            // ∂/∂J_{j+1} gets the opening's part of δ_j.
            for q in 0..len {
                if self.deltas[j][q] > 0.0 {
                    gj_next[self.open_sources[j][q]] -= gdelta[j][q];
                }
            }
            // ∂/∂J_j: δ_j's own part, and the erosion's.
            let mut gj: Vec<f64> = (0..len).map(|q| if self.deltas[j][q] > 0.0 { gdelta[j][q] } else { 0.0 }).collect();
            for q in 0..len {
                gj[self.erode_sources[j][q]] += gj_next[q];
            }
            gj_next = gj;
        }
        gj_next
    }
}

/// Value and gradient of `cl_dice`.
pub fn evaluate(config: &ClDiceConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let shape = &inputs.logits.shape;
    let (n, c) = (shape[0], shape[1]);
    let spatial = &shape[2..];
    let s: usize = spatial.iter().product();
    let softmax = config.mode == OverlapMode::Multiclass;
    let at = |img: usize, k: usize, q: usize| img * c * s + k * s + q;
    let (p, g) = class_probabilities(inputs, softmax)?;
    let first = config.first_channel(c);
    let kept = c - first;
    let grid = StencilGrid::new(1, spatial)?;
    let alpha = config.alpha;
    let (nr, dr, smooth) = (config.smooth_nr, config.smooth_dr, config.smooth);
    // ∂value/∂cl[n] and ∂value/∂d[n, c] (SPEC.md's reductions).
    let per_image = if config.reduction == Reduction::Mean { 1.0 / n as f64 } else { 1.0 };
    let dice_weight = if config.reduction == Reduction::Sum { 1.0 } else { 1.0 / kept as f64 };
    let mut values = vec![0.0; n];
    let mut dp = vec![0.0; n * c * s];
    for img in 0..n {
        let maps: Vec<usize> = (first..c).collect();
        let range = |k: usize| at(img, k, 0)..at(img, k, 0) + s;
        let sp: Vec<Skeleton> = maps.iter().map(|&k| Skeleton::new(&grid, &p[range(k)], config.iterations)).collect::<Result<_>>()?;
        let sg: Vec<Skeleton> = maps.iter().map(|&k| Skeleton::new(&grid, &g[range(k)], config.iterations)).collect::<Result<_>>()?;
        let (mut a, mut b, mut cs, mut dg) = (0.0, 0.0, 0.0, 0.0);
        for (i, &k) in maps.iter().enumerate() {
            let (pk, gk) = (&p[range(k)], &g[range(k)]);
            a += sp[i].value().iter().zip(gk).map(|(s, g)| s * g).sum::<f64>();
            b += sp[i].value().iter().sum::<f64>();
            cs += sg[i].value().iter().zip(pk).map(|(s, p)| s * p).sum::<f64>();
            dg += sg[i].value().iter().sum::<f64>();
        }
        let tprec = (a + nr) / (b + dr);
        let tsens = (cs + nr) / (dg + dr);
        let h = tprec + tsens + smooth;
        let cl = 1.0 - 2.0 * tprec * tsens / h;
        let gcl = per_image * alpha;
        let (dcl_da, dcl_db) = (-2.0 * tsens * (tsens + smooth) / (h * h), -2.0 * tprec * (tprec + smooth) / (h * h));
        let (u_a, u_b, u_c) = (gcl * dcl_da / (b + dr), -gcl * dcl_da * tprec / (b + dr), gcl * dcl_db / (dg + dr));
        let mut dice_sum = 0.0;
        for (i, &k) in maps.iter().enumerate() {
            let r = range(k);
            let (pk, gk) = (&p[r.clone()], &g[r.clone()]);
            // Through the predicted skeleton (tprec), then directly (tsens).
            let gs: Vec<f64> = gk.iter().map(|g| u_a * g + u_b).collect();
            let through = sp[i].backward(&gs);
            let (inter, psum, gsum) = (pk.iter().zip(gk).map(|(p, g)| p * g).sum::<f64>(), pk.iter().sum::<f64>(), gk.iter().sum::<f64>());
            let den = psum + gsum + dr;
            dice_sum += 1.0 - (2.0 * inter + nr) / den;
            let gd = per_image * (1.0 - alpha) * dice_weight;
            for q in 0..s {
                let dice = if alpha < 1.0 { gd * (-2.0 * gk[q] / den + (2.0 * inter + nr) / (den * den)) } else { 0.0 };
                dp[r.start + q] = through[q] + u_c * sg[i].value()[q] + dice;
            }
        }
        values[img] = if alpha < 1.0 { alpha * cl + (1.0 - alpha) * dice_weight * dice_sum } else { cl };
    }

    let grad = through_activation(shape, &p, &dp, softmax);
    let (value, value_shape) = match config.reduction {
        Reduction::None => (values, vec![n]),
        Reduction::Sum => (vec![values.iter().sum()], vec![1]),
        Reduction::Mean => (vec![values.iter().sum::<f64>() / n as f64], vec![1]),
    };
    Ok(Reference { value, value_shape, grad, extras: Vec::new() })
}
