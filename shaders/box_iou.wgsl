// `box_iou`: GIoU, DIoU and CIoU losses of box pairs (SPEC.md), one box per
// item: each thread writes its boxes' losses and the gradients w.r.t. the
// predicted boxes, and its workgroup's partial sum for the reduction.
//
// The gradient is reverse-mode differentiation written out by hand (d_v is
// ∂l/∂v). It follows torchvision's autograd: max/min split the gradient in
// half at a tie (torch.maximum's rule), the intersection is 0, and passes no
// gradient, unless both its sides are positive, and CIoU's α is a constant.
//
// Widths and heights enter as max(x2 − x1, 0) (gradient only where positive)
// and a box's aspect angle as atan(w/h), π/2 when h = 0 < w, 0 when w = h = 0:
// on valid boxes this is torchvision's formula; on degenerate boxes (the
// `degenerate = "clamp"` opt-in) it keeps union ≥ 0, the enclosing area ≥ 0
// and every quotient finite. In the default mode a degenerate box also sets
// bit 0 of `status`; a coordinate that is not finite sets NON_FINITE
// (lib/finite.wgsl) and makes its box's value NaN; one beyond ±1e15, or a
// side in (0, 1e-30), sets bit 1. Within those bounds and eps ≥ 1e-20 every
// term stays finite: each reciprocal is at most 1e20 (of a sum with eps) or
// 1e30 (of a side), and multiplies lengths of at most 2e15 or ratios ≤ 1;
// indicator derivatives are applied with `select`, never as 0·x.

//#include "lib/workgroup.wgsl"
//#include "lib/loss_io.wgsl"
//#include "lib/finite.wgsl"

struct Params {
    chunk: Chunk,           // items are boxes; first_elem counts f32s (4 per box)
    kind: u32,              // 0 giou, 1 diou, 2 ciou
    eps: f32,
    flag_degenerate: u32,   // degenerate = "error"
    write_elements: u32,    // reduction "none": one value per box
    write_grad: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> io: LossIo;
@group(0) @binding(2) var<storage, read> denom: array<f32>;   // the mean's denominator (1 for sum, none)
@group(0) @binding(3) var<storage, read> pred: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> target_boxes: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> grad: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> value: array<f32>;
@group(0) @binding(8) var<storage, read_write> partials: array<f32>;
@group(0) @binding(9) var<storage, read_write> status: atomic<u32>;

const GIOU: u32 = 0u;
const CIOU: u32 = 2u;
const FOUR_OVER_PI2: f32 = 0.40528473456935108578;
const HALF_PI: f32 = 1.57079632679489661923;
const COORD_LIMIT: f32 = 1.0e15;
const MIN_SIDE: f32 = 1.0e-30;

// ∂max(a, b)/∂a and ∂min(a, b)/∂a, half at a tie.
fn dmax(a: f32, b: f32) -> f32 {
    return select(select(0.0, 0.5, a == b), 1.0, a > b);
}

fn dmin(a: f32, b: f32) -> f32 {
    return select(select(0.0, 0.5, a == b), 1.0, a < b);
}

// max(v, 0); its derivative (1 where v > 0, else 0) is applied with `select`.
fn pos(v: f32) -> f32 {
    return select(0.0, v, v > 0.0);
}

// atan(w/h) for w, h ≥ 0, finite at h = 0.
fn aspect(w: f32, h: f32) -> f32 {
    if (h > 0.0) {
        return atan(w / h);
    }
    return select(0.0, HALF_PI, w > 0.0);
}

struct BoxLoss {
    value: f32,
    grad: vec4<f32>,
}

fn box_loss(p: vec4<f32>, t: vec4<f32>) -> BoxLoss {
    let eps = params.eps;
    let w = pos(p.z - p.x);
    let h = pos(p.w - p.y);
    let tw = pos(t.z - t.x);
    let th = pos(t.w - t.y);
    let iw = min(p.z, t.z) - max(p.x, t.x);
    let ih = min(p.w, t.w) - max(p.y, t.y);
    let overlap = iw > 0.0 && ih > 0.0;
    let inter = select(0.0, iw * ih, overlap);
    let uni = w * h + tw * th - inter;
    let ue = uni + eps;
    let iou = inter / ue;
    let cw = max(p.z, t.z) - min(p.x, t.x);
    let ch = max(p.w, t.w) - min(p.y, t.y);

    var l = 1.0 - iou;
    var g = vec4<f32>(0.0);
    let d_iou = -1.0;
    var d_uni = 0.0;
    var d_w = 0.0;
    var d_h = 0.0;
    var d_cw = 0.0;
    var d_ch = 0.0;
    if (params.kind == GIOU) {
        // + (area(C) − union) / (area(C) + eps)
        let ac = pos(cw) * pos(ch);
        let ace = ac + eps;
        let r = (ac - uni) / ace;
        l += r;
        d_uni -= 1.0 / ace;
        let d_ac = (1.0 - r) / ace;
        // ac = pos(cw)·pos(ch): each side's derivative carries the other's clamped length.
        d_cw = select(0.0, d_ac * pos(ch), cw > 0.0);
        d_ch = select(0.0, d_ac * pos(cw), ch > 0.0);
    } else {
        // + ρ² / (diag(C)² + eps)
        let diag = cw * cw + ch * ch + eps;
        let dx = 0.5 * (p.x + p.z) - 0.5 * (t.x + t.z);
        let dy = 0.5 * (p.y + p.w) - 0.5 * (t.y + t.w);
        let r = (dx * dx + dy * dy) / diag;
        l += r;
        let d_rho = 1.0 / diag;
        let d_diag = -r / diag;
        d_cw = 2.0 * cw * d_diag;
        d_ch = 2.0 * ch * d_diag;
        // ρ² = dx² + dy², each centre the mean of two corners
        g += vec4<f32>(dx, dy, dx, dy) * d_rho;
        if (params.kind == CIOU) {
            // + α·v, α held constant
            let delta = aspect(tw, th) - aspect(w, h);
            let v = FOUR_OVER_PI2 * delta * delta;
            let alpha = v / (1.0 - iou + v + eps);
            l += alpha * v;
            let d_angle = -2.0 * FOUR_OVER_PI2 * delta * alpha;
            if (h > 0.0) {
                // ∂atan(q)/∂w = t/h, ∂atan(q)/∂h = −q·t/h with q = w/h, t = 1/(1 + q²),
                // and q·t = 1/(q + 1/q) where q² would overflow.
                let q = w / h;
                let t = 1.0 / (1.0 + q * q);
                let qt = select(q * t, 1.0 / (q + 1.0 / q), q > 1.0);
                d_w += (d_angle * t) / h;
                d_h -= (d_angle * qt) / h;
            }
        }
    }
    // iou = inter / (union + eps);  union = w·h + w'·h' − inter
    d_uni -= d_iou * iou / ue;
    d_w += d_uni * h;
    d_h += d_uni * w;
    let d_inter = d_iou / ue - d_uni;
    if (overlap) {
        let d_iw = d_inter * ih;
        let d_ih = d_inter * iw;
        g += vec4<f32>(-d_iw * dmax(p.x, t.x), -d_ih * dmax(p.y, t.y), d_iw * dmin(p.z, t.z), d_ih * dmin(p.w, t.w));
    }
    let gw = select(0.0, d_w, p.z - p.x > 0.0);
    let gh = select(0.0, d_h, p.w - p.y > 0.0);
    g += vec4<f32>(-gw, -gh, gw, gh);
    // cw = max(x2, x2') − min(x1, x1')
    g += vec4<f32>(-d_cw * dmin(p.x, t.x), -d_ch * dmin(p.y, t.y), d_cw * dmax(p.z, t.z), d_ch * dmax(p.w, t.w));
    return BoxLoss(l, g);
}

fn in_range(b: vec4<f32>) -> bool {
    // NaN fails every comparison.
    let sides = b.zw - b.xy;
    return all(abs(b) <= vec4<f32>(COORD_LIMIT)) && !any((sides > vec2<f32>(0.0)) & (sides < vec2<f32>(MIN_SIDE)));
}

fn proper(b: vec4<f32>) -> bool {
    return b.z > b.x && b.w > b.y;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = linear_workgroup(wid, nwg);
    let ch = params.chunk;
    if (tile_is_past(tile, ch.count)) {
        return;
    }
    let out_scale = mean_scale(io.scale, denom[0]);
    var acc = 0.0;
    for (var k = 0u; k < ITEMS; k++) {
        let i = tile_item(tile, k, lid);
        if (i < ch.count) {
            let b = ch.item0 + i;
            let e = b - ch.first_elem / 4u;
            let p = pred[e];
            let t = target_boxes[e];
            // A NaN or ±Inf coordinate: the shared non-finite bit (lib/finite.wgsl), and a NaN value.
            var bits = 0u;
            for (var j = 0u; j < 4u; j++) {
                bits |= select(0u, 1u, is_non_finite(p[j]) || is_non_finite(t[j]));
            }
            let bad = bits != 0u;
            if (bad) {
                atomicOr(&status, NON_FINITE);
            } else if (!(in_range(p) && in_range(t))) {
                atomicOr(&status, 2u);
            } else if (params.flag_degenerate != 0u && !(proper(p) && proper(t))) {
                atomicOr(&status, 1u);
            }
            let r = box_loss(p, t);
            acc += r.value;
            if (params.write_elements != 0u) {
                store_value(b - ch.first_item, io.scale * r.value, bad);
            }
            if (params.write_grad != 0u) {
                let gv = out_scale * r.grad;
                if (io.accumulate_grad != 0u) { grad[e] += gv; } else { grad[e] = gv; }
            }
        }
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u && params.write_elements == 0u) {
        partials[ch.tile0 + tile] = total;
    }
}
