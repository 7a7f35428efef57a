//! Float64 reference of `box_iou` (SPEC.md): each pair's loss evaluated on
//! dual numbers that carry the derivatives w.r.t. the predicted box's four
//! coordinates, so the gradient is forward-mode differentiation of the
//! formula as written, independent of the kernel's hand-written reverse pass.
//!
//! Conventions (those of torchvision's autograd, and of the kernel): max and
//! min split the derivative in half at a tie; the intersection is 0 unless
//! both its sides are positive; CIoU's α is a constant. Sides enter as
//! max(x2 − x1, 0) and the aspect angle as atan(w/h) (π/2 at h = 0 < w, 0 at
//! w = h = 0), which on valid boxes is the plain formula (see `losses::box_iou`).

use std::f64::consts::{FRAC_PI_2, PI};
use std::ops::{Add, Div, Mul, Sub};

use crate::error::Result;
use crate::losses::box_iou::{BoxIouConfig, BoxIouKind};
use crate::losses::{HostInputs, Reduction};
use crate::reference::{Reference, reduce};

/// A value and its derivatives w.r.t. (x1, y1, x2, y2) of the predicted box.
#[derive(Clone, Copy, Debug)]
struct Dual {
    v: f64,
    d: [f64; 4],
}

impl Dual {
    fn constant(v: f64) -> Self {
        Dual { v, d: [0.0; 4] }
    }

    fn variable(v: f64, i: usize) -> Self {
        let mut d = [0.0; 4];
        d[i] = 1.0;
        Dual { v, d }
    }

    fn scale(self, k: f64) -> Self {
        Dual { v: self.v * k, d: self.d.map(|x| x * k) }
    }

    /// `a·self + b·other` on the derivatives, with value `v`.
    fn mix(v: f64, a: f64, x: Dual, b: f64, y: Dual) -> Self {
        Dual { v, d: std::array::from_fn(|i| a * x.d[i] + b * y.d[i]) }
    }

    fn max(self, o: Dual) -> Self {
        if self.v > o.v {
            self
        } else if self.v < o.v {
            o
        } else {
            Dual::mix(self.v, 0.5, self, 0.5, o)
        }
    }

    fn min(self, o: Dual) -> Self {
        if self.v < o.v {
            self
        } else if self.v > o.v {
            o
        } else {
            Dual::mix(self.v, 0.5, self, 0.5, o)
        }
    }

    /// max(self, 0), with no derivative where self ≤ 0.
    fn positive(self) -> Self {
        if self.v > 0.0 { self } else { Dual::constant(0.0) }
    }

    fn square(self) -> Self {
        self * self
    }

    fn atan(self) -> Self {
        let k = 1.0 / (1.0 + self.v * self.v);
        Dual { v: self.v.atan(), d: self.d.map(|x| x * k) }
    }
}

impl Add for Dual {
    type Output = Dual;
    fn add(self, o: Dual) -> Dual {
        Dual::mix(self.v + o.v, 1.0, self, 1.0, o)
    }
}

impl Sub for Dual {
    type Output = Dual;
    fn sub(self, o: Dual) -> Dual {
        Dual::mix(self.v - o.v, 1.0, self, -1.0, o)
    }
}

impl Mul for Dual {
    type Output = Dual;
    fn mul(self, o: Dual) -> Dual {
        Dual::mix(self.v * o.v, o.v, self, self.v, o)
    }
}

impl Div for Dual {
    type Output = Dual;
    fn div(self, o: Dual) -> Dual {
        let q = self.v / o.v;
        Dual::mix(q, 1.0 / o.v, self, -q / o.v, o)
    }
}

/// atan(w/h) for w, h ≥ 0, finite where h = 0.
fn aspect(w: Dual, h: Dual) -> Dual {
    if h.v > 0.0 { (w / h).atan() } else { Dual::constant(if w.v > 0.0 { FRAC_PI_2 } else { 0.0 }) }
}

/// The pieces of one pair's losses, each with its derivatives w.r.t. the predicted box.
struct Terms {
    iou: Dual,
    giou: Dual,
    diou: Dual,
    /// CIoU's aspect-ratio term v.
    v: Dual,
}

fn terms(eps: f64, pred: &[f64], target: &[f64]) -> Terms {
    let [x1, y1, x2, y2]: [Dual; 4] = std::array::from_fn(|i| Dual::variable(pred[i], i));
    let [gx1, gy1, gx2, gy2]: [Dual; 4] = std::array::from_fn(|i| Dual::constant(target[i]));
    let eps = Dual::constant(eps);
    let one = Dual::constant(1.0);

    let (w, h) = ((x2 - x1).positive(), (y2 - y1).positive());
    let (gw, gh) = ((gx2 - gx1).positive(), (gy2 - gy1).positive());
    let iw = x2.min(gx2) - x1.max(gx1);
    let ih = y2.min(gy2) - y1.max(gy1);
    let inter = if iw.v > 0.0 && ih.v > 0.0 { iw * ih } else { Dual::constant(0.0) };
    let union = w * h + gw * gh - inter;
    let iou = inter / (union + eps);
    // The smallest enclosing box.
    let cw = x2.max(gx2) - x1.min(gx1);
    let ch = y2.max(gy2) - y1.min(gy1);
    let area_c = cw.positive() * ch.positive();
    let giou = one - iou + (area_c - union) / (area_c + eps);
    let rho2 = ((x1 + x2).scale(0.5) - (gx1 + gx2).scale(0.5)).square() + ((y1 + y2).scale(0.5) - (gy1 + gy2).scale(0.5)).square();
    let diou = one - iou + rho2 / (cw.square() + ch.square() + eps);
    let v = (aspect(gw, gh) - aspect(w, h)).square().scale(4.0 / (PI * PI));
    Terms { iou, giou, diou, v }
}

/// CIoU's α, a constant in the gradient.
fn ciou_alpha(t: &Terms, eps: f64) -> f64 {
    t.v.v / (1.0 - t.iou.v + t.v.v + eps)
}

/// One pair's loss and its derivatives w.r.t. the predicted box.
fn pair_loss(kind: BoxIouKind, eps: f64, pred: &[f64], target: &[f64]) -> Dual {
    let t = terms(eps, pred, target);
    match kind {
        BoxIouKind::Giou => t.giou,
        BoxIouKind::Diou => t.diou,
        BoxIouKind::Ciou => t.diou + t.v.scale(ciou_alpha(&t, eps)),
    }
}

/// Value and gradient (w.r.t. `pred_boxes`) of `box_iou`.
pub fn evaluate(config: &BoxIouConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let pred = inputs.logits.to_f64();
    let target = inputs.target.to_f64();
    let m = pred.len() / 4;
    let mut losses = Vec::with_capacity(m);
    let mut grad = Vec::with_capacity(4 * m);
    for (p, t) in pred.chunks_exact(4).zip(target.chunks_exact(4)) {
        let l = pair_loss(config.kind, config.eps, p, t);
        losses.push(l.v);
        grad.extend_from_slice(&l.d);
    }
    let denominator = if config.reduction == Reduction::Mean { m as f64 } else { 1.0 };
    Ok(reduce(config.reduction, losses, grad, &[m], denominator))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of `f` at `p` along each coordinate.
    fn numeric(f: impl Fn(&[f64]) -> f64, p: &[f64]) -> [f64; 4] {
        std::array::from_fn(|i| {
            let h = 1e-5;
            let (mut up, mut down) = (p.to_vec(), p.to_vec());
            up[i] += h;
            down[i] -= h;
            (f(&up) - f(&down)) / (2.0 * h)
        })
    }

    fn close(a: [f64; 4], b: [f64; 4]) -> bool {
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-7 + 1e-6 * y.abs())
    }

    #[test]
    fn dual_derivatives_match_finite_differences() {
        let eps = 1e-7;
        let pairs: [([f64; 4], [f64; 4]); 4] = [
            ([1.0, 2.0, 5.0, 7.5], [2.5, 1.0, 6.0, 4.0]),   // overlapping
            ([0.0, 0.0, 3.0, 2.0], [10.0, 5.0, 14.0, 9.0]), // disjoint
            ([2.0, 2.0, 9.0, 9.0], [3.0, 4.0, 5.0, 6.0]),   // target inside
            ([4.2, 1.3, 4.9, 8.8], [1.0, 1.0, 9.0, 2.0]),   // crossing
        ];
        for (p, t) in pairs {
            for kind in [BoxIouKind::Giou, BoxIouKind::Diou] {
                let analytic = pair_loss(kind, eps, &p, &t).d;
                let fd = numeric(|q| pair_loss(kind, eps, q, &t).v, &p);
                assert!(close(analytic, fd), "{kind:?} {p:?}: {analytic:?} vs {fd:?}");
            }
            // CIoU's α is a constant of the gradient: differentiate DIoU + α₀·v with α₀ frozen.
            let alpha = ciou_alpha(&terms(eps, &p, &t), eps);
            let analytic = pair_loss(BoxIouKind::Ciou, eps, &p, &t).d;
            let fd = numeric(
                |q| {
                    let s = terms(eps, q, &t);
                    s.diou.v + alpha * s.v.v
                },
                &p,
            );
            assert!(close(analytic, fd), "ciou {p:?}: {analytic:?} vs {fd:?}");
        }
    }
}
