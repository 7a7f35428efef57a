//! Float64 reference of `dice`, `jaccard` and `tversky` (SPEC.md), and the
//! per-element quantities and group statistics they share with
//! `generalized_dice`.

use crate::error::Result;
use crate::losses::{Aggregate, Empty, HostInputs, OverlapConfig, OverlapMode, Reduction, Score};
use crate::reference::{Reference, log_softmax, sigmoid};

/// p, g and m of every element of `[N, C, S]` logits.
pub(crate) struct Elements {
    pub n: usize,
    pub c: usize,
    pub s: usize,
    pub softmax: bool,
    /// softmax(x) over the classes, or σ(x).
    pub p: Vec<f64>,
    /// one-hot(target), or the target.
    pub g: Vec<f64>,
    /// 0 where the target is the ignore value, else 1.
    pub m: Vec<f64>,
}

impl Elements {
    pub fn new(mode: OverlapMode, ignore: Option<i64>, inputs: &HostInputs<'_>) -> Result<Self> {
        let shape = &inputs.logits.shape;
        let (n, c, s) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
        let x = inputs.logits.to_f64();
        let len = x.len();
        let (mut p, mut g, mut m) = (vec![0.0; len], vec![0.0; len], vec![1.0; len]);
        let at = |img: usize, class: usize, sp: usize| img * c * s + class * s + sp;
        if mode == OverlapMode::Multiclass {
            let labels = inputs.target.as_i32("target")?;
            for img in 0..n {
                for sp in 0..s {
                    let y = labels[img * s + sp];
                    let lsm = log_softmax(&(0..c).map(|k| x[at(img, k, sp)]).collect::<Vec<_>>());
                    for k in 0..c {
                        let e = at(img, k, sp);
                        p[e] = lsm[k].exp();
                        if ignore == Some(y as i64) {
                            m[e] = 0.0;
                        } else if y as usize == k {
                            g[e] = 1.0;
                        }
                    }
                }
            }
        } else {
            let y = inputs.target.to_f64();
            for e in 0..len {
                p[e] = sigmoid(x[e]);
                if ignore.map(|v| v as f32 as f64) == Some(y[e]) {
                    m[e] = 0.0;
                } else {
                    g[e] = y[e];
                }
            }
        }
        Ok(Elements { n, c, s, softmax: mode == OverlapMode::Multiclass, p, g, m })
    }

    /// The group of an element of image `img`, class `class`.
    pub fn group(&self, img: usize, class: usize, aggregate: Aggregate) -> usize {
        match aggregate {
            Aggregate::Image => img * self.c + class,
            Aggregate::Batch => class,
        }
    }

    /// Number of groups: N·C, or C.
    pub fn groups(&self, aggregate: Aggregate) -> usize {
        self.group(self.n - 1, self.c - 1, aggregate) + 1
    }

    /// (I, P, G) of every group: Σ m·p·g, Σ m·p (or m·p²), Σ m·g (or m·g²).
    pub fn stats(&self, aggregate: Aggregate, squared: bool) -> Vec<[f64; 3]> {
        let mut out = vec![[0.0; 3]; self.groups(aggregate)];
        for img in 0..self.n {
            for class in 0..self.c {
                let k = self.group(img, class, aggregate);
                for sp in 0..self.s {
                    let e = (img * self.c + class) * self.s + sp;
                    let (p, g, m) = (self.p[e], self.g[e], self.m[e]);
                    out[k][0] += m * p * g;
                    out[k][1] += m * if squared { p * p } else { p };
                    out[k][2] += m * if squared { g * g } else { g };
                }
            }
        }
        out
    }

    /// ∂L/∂logits, given each group's (∂L/∂I, ∂L/∂P): the chain rule
    /// through ∂I/∂p = m·g, ∂P/∂p = m (2m·p squared), then softmax or sigmoid.
    pub fn backward(&self, coef: &[[f64; 2]], aggregate: Aggregate, squared: bool) -> Vec<f64> {
        let mut grad = vec![0.0; self.p.len()];
        for img in 0..self.n {
            for sp in 0..self.s {
                let idx: Vec<usize> = (0..self.c).map(|k| (img * self.c + k) * self.s + sp).collect();
                let dp: Vec<f64> = (0..self.c)
                    .map(|k| {
                        let (e, [a, b]) = (idx[k], coef[self.group(img, k, aggregate)]);
                        self.m[e] * (a * self.g[e] + b * if squared { 2.0 * self.p[e] } else { 1.0 })
                    })
                    .collect();
                if self.softmax {
                    // ∂p_k/∂x_j = p_k (δ_kj − p_j)
                    let dot: f64 = (0..self.c).map(|k| self.p[idx[k]] * dp[k]).sum();
                    for j in 0..self.c {
                        grad[idx[j]] = self.p[idx[j]] * (dp[j] - dot);
                    }
                } else {
                    for j in 0..self.c {
                        let p = self.p[idx[j]];
                        grad[idx[j]] = dp[j] * p * (1.0 - p);
                    }
                }
            }
        }
        grad
    }
}

/// One group's loss and its derivatives by I and by P.
fn group_loss(config: &OverlapConfig, score: Score, [i, p, g]: [f64; 3]) -> (f64, [f64; 2]) {
    let (snr, sdr, eps) = (config.smooth_nr, config.smooth_dr, config.eps);
    // score = num / max(raw, eps), with ∂num/∂I, ∂raw/∂I, ∂raw/∂P.
    let (num, raw, dnum_di, draw_di, draw_dp) = match score {
        Score::Dice => (2.0 * i + snr, p + g + sdr, 2.0, 0.0, 1.0),
        Score::Jaccard => (i + snr, p + g - i + sdr, 1.0, -1.0, 1.0),
        Score::Tversky { alpha, beta } => {
            (i + snr, i + alpha * (p - i) + beta * (g - i) + sdr, 1.0, 1.0 - alpha - beta, alpha)
        }
    };
    let den = raw.max(eps);
    // A zero denominator (eps = 0, nothing predicted, nothing to find) scores 1.
    let (value, ds) = if den > 0.0 {
        let value = num / den;
        let through = if raw >= eps { value / den } else { 0.0 };
        (value, [dnum_di / den - through * draw_di, -through * draw_dp])
    } else {
        (1.0, [0.0, 0.0])
    };
    let (l, dl) = if config.log_loss {
        (-value.max(eps).ln(), if value >= eps && value > 0.0 { -1.0 / value } else { 0.0 })
    } else {
        (1.0 - value, -1.0)
    };
    if config.empty == Empty::Zero && g == 0.0 {
        return (0.0, [0.0, 0.0]);
    }
    (l, [dl * ds[0], dl * ds[1]])
}

/// Value and gradient of `dice`, `jaccard` or `tversky`.
pub fn evaluate(config: &OverlapConfig, score: Score, inputs: &HostInputs<'_>) -> Result<Reference> {
    let el = Elements::new(config.mode, config.ignore_index, inputs)?;
    let aggregate = config.aggregate;
    let stats = el.stats(aggregate, config.squared);
    let first = !config.include_background as usize;
    let weights = config.weights(el.c);
    let weight = |class: usize| weights[class];
    let images = if aggregate == Aggregate::Image { el.n } else { 1 };
    let total: f64 = images as f64 * (first..el.c).map(weight).sum::<f64>();

    let mut losses = Vec::new();
    let mut coef = vec![[0.0; 2]; stats.len()];
    let mut value = 0.0;
    for img in 0..images {
        for class in first..el.c {
            let k = el.group(img, class, aggregate);
            let (l, d) = group_loss(config, score, stats[k]);
            // The group's factor in the value; "none" returns l itself.
            let r = match config.reduction {
                Reduction::Mean => weight(class) / total,
                Reduction::Sum => weight(class),
                Reduction::None => 1.0,
            };
            losses.push(l);
            value += r * l;
            coef[k] = [r * d[0], r * d[1]];
        }
    }
    let grad = el.backward(&coef, aggregate, config.squared);
    let c_kept = el.c - first;
    Ok(match config.reduction {
        Reduction::None => {
            let value_shape = if aggregate == Aggregate::Image { vec![el.n, c_kept] } else { vec![c_kept] };
            Reference { value: losses, value_shape, grad, ..Default::default() }
        }
        _ => Reference { value: vec![value], value_shape: vec![1], grad, ..Default::default() },
    })
}
