//! Float64 reference of `mask_giou` (SPEC.md). The enclosing region is found
//! the textbook way, independently of the GPU's per-row method: Andrew's
//! monotone chain over all the support's pixels, then a test of each pixel
//! against the hull's edges, all in exact integer arithmetic.

use crate::error::Result;
use crate::losses::mask_giou::{Enclosing, MaskGiouConfig};
use crate::losses::{HostInputs, Reduction};
use crate::reference::{Reference, reduce, sigmoid};

/// A lattice point (row, column).
type Point = (i64, i64);

/// (a − o) × (b − o): positive when o → a → b turns counter-clockwise.
fn cross(o: Point, a: Point, b: Point) -> i64 {
    (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
}

/// The convex hull of `points` by Andrew's monotone chain: its vertices
/// counter-clockwise without collinear ones; one point, or the two ends of a
/// segment, when the points span no area.
pub fn convex_hull(points: &[Point]) -> Vec<Point> {
    let mut pts = points.to_vec();
    pts.sort_unstable();
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let mut hull: Vec<Point> = Vec::with_capacity(2 * pts.len());
    for pass in [&pts[..], &pts.iter().rev().copied().collect::<Vec<_>>()[..]] {
        let floor = hull.len();
        for &p in pass {
            while hull.len() >= floor + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0 {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop(); // each chain's last point starts the other
    }
    hull
}

/// Whether `q` lies in the closed convex polygon `hull` (as [`convex_hull`]
/// returns it), its boundary included.
pub fn in_hull(hull: &[Point], q: Point) -> bool {
    match hull.len() {
        0 => false,
        1 => hull[0] == q,
        2 => {
            let (a, b) = (hull[0], hull[1]);
            cross(a, b, q) == 0 && q.0 >= a.0.min(b.0) && q.0 <= a.0.max(b.0) && q.1 >= a.1.min(b.1) && q.1 <= a.1.max(b.1)
        }
        n => (0..n).all(|i| cross(hull[i], hull[(i + 1) % n], q) >= 0),
    }
}

/// Membership in C of every pixel of an `h`×`w` map whose support is `support`.
pub fn enclosing_region(support: &[bool], h: usize, w: usize, enclosing: Enclosing) -> Vec<bool> {
    let points: Vec<Point> = (0..h * w).filter(|&q| support[q]).map(|q| ((q / w) as i64, (q % w) as i64)).collect();
    let mut region = vec![false; h * w];
    if points.is_empty() {
        return region;
    }
    let (r0, r1) = (points.iter().map(|p| p.0).min().unwrap(), points.iter().map(|p| p.0).max().unwrap());
    let (c0, c1) = (points.iter().map(|p| p.1).min().unwrap(), points.iter().map(|p| p.1).max().unwrap());
    let hull = convex_hull(&points);
    for r in r0..=r1 {
        for c in c0..=c1 {
            region[r as usize * w + c as usize] = match enclosing {
                Enclosing::BoundingBox => true,
                Enclosing::ConvexHull => in_hull(&hull, (r, c)),
            };
        }
    }
    region
}

/// The support of one instance: σ(x) ≥ τ, decided as x ≥ logit(τ) (exact), or g = 1.
pub fn support(threshold: f64, logits: &[f64], target: &[f64]) -> Vec<bool> {
    let t = (threshold / (1.0 - threshold)).ln();
    logits.iter().zip(target).map(|(&x, &g)| x >= t || g == 1.0).collect()
}

/// Value and gradient of `mask_giou`, with `enclosing_count` (#C per instance) as an extra.
pub fn evaluate(config: &MaskGiouConfig, inputs: &HostInputs<'_>) -> Result<Reference> {
    let (x, y) = (inputs.logits.to_f64(), inputs.target.to_f64());
    let (m, h, w) = (inputs.logits.shape[0], inputs.logits.shape[1], inputs.logits.shape[2]);
    let eps = config.eps;
    let mut losses = Vec::with_capacity(m);
    let mut counts = Vec::with_capacity(m);
    let mut grad = vec![0.0; x.len()];
    for k in 0..m {
        let px = k * h * w..(k + 1) * h * w;
        let (xm, ym) = (&x[px.clone()], &y[px.clone()]);
        let region = enclosing_region(&support(config.threshold, xm, ym), h, w, config.enclosing);
        let p: Vec<f64> = xm.iter().map(|&v| sigmoid(v)).collect();
        let inter: f64 = p.iter().zip(ym).map(|(p, g)| p * g).sum();
        let union: f64 = p.iter().zip(ym).map(|(p, g)| p + g - p * g).sum();
        let count = region.iter().filter(|&&c| c).count();
        let outside: f64 = p.iter().zip(&region).filter(|(_, c)| !**c).map(|(p, _)| p).sum();
        let enclosing = count as f64 + outside;
        losses.push(1.0 - (inter / (union + eps) - (enclosing - union) / (enclosing + eps)));
        counts.push(count as f64);
        // ∂l/∂p_q, membership in C constant: ∂I = g, ∂U = 1 − g, ∂C~ = [q ∉ C].
        for q in 0..h * w {
            let (g, d_c) = (ym[q], if region[q] { 0.0 } else { 1.0 });
            let d_iou = g / (union + eps) - inter * (1.0 - g) / (union + eps).powi(2);
            let d_pen = (d_c - (1.0 - g)) / (enclosing + eps) - (enclosing - union) * d_c / (enclosing + eps).powi(2);
            grad[px.start + q] = (-d_iou + d_pen) * p[q] * sigmoid(-xm[q]);
        }
    }
    let denominator = if config.reduction == Reduction::Mean { m as f64 } else { 1.0 };
    let mut out = reduce(config.reduction, losses, grad, &[m], denominator);
    out.extras.push(("enclosing_count", counts));
    Ok(out)
}
