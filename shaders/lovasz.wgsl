// The Lovász losses (SPEC.md `lovasz_softmax`, `lovasz_hinge`) around the
// sort and scan primitives. Pixels fall into G groups (each image, or the
// whole batch) of L pixels; each group has K slots (the classes considered;
// one for the hinge), and each (group, slot) is a segment of L positions:
//
//   errors_*         per pixel: the segment keys (errors; IGNORED for ignored
//                    pixels, which sort last) and values (j << 1 | fg, j the
//                    pixel within its group: the sort is stable, so ties
//                    keep pixel order)
//   [sort]           each segment by error descending (primitives::sort)
//   [scan.wgsl]      cs = inclusive count of fg along each sorted segment,
//                    totals = the segment's fg count
//   contributions    Σ e·lovasz_grad per tile        [reduce.wgsl] per segment
//   finalize         which segments count (present classes), their weights,
//                    and the value
//   scatter          ∂loss/∂e back to each pixel through the permutation
//   backward_*       through |fg − p| and the softmax (or the hinge) to the logits
//
// The hinge sorts only what needs an order. An error e ≤ 0 has relu(e) = 0
// and a zero gradient, and every positive error sorts before it, so their
// ranks, and the foreground counts before them, do not depend on how the
// rest is ordered: hinge_flags marks the pixels with e > 0 (or NaN),
// [scan.wgsl] counts them, errors_hinge_partitioned writes those first (in
// pixel order) and the rest after, and the sort orders the first
// `positives[segment]` of each segment only. Every positive error lands
// where the full sort puts it, so value and gradient are bit for bit those
// of the full sort.
//
// The first pass over the logits (errors_*, hinge_flags) flags non-finite
// ones (lib/finite.wgsl), and finalize then writes NaN.
//
// lovasz_grad needs no neighbour: with U_k = G + (k + 1) − cs_k,
// J_k = (k + 1)/U_k, and its increment is 1/U_k for a foreground element,
// (G − cs_k)/(U_k·(U_k − 1)) for a background one, 1/U_0 at k = 0: exact
// integer counts, no cancellation between neighbouring J.

//#include "lib/workgroup.wgsl"
//#include "lib/loss_io.wgsl"
//#include "lib/softmax.wgsl"
//#include "lib/labels.wgsl"

// Keys of ignored pixels: −∞'s bits, below every error, never read as a float.
const IGNORED: u32 = 0xFF800000u;
const SEG_TILE: u32 = 2048u;
const SEG_ITEMS: u32 = 8u;

struct Params {
    pixels: u32,        // N·S
    spatial: u32,       // S
    classes: u32,       // C (1 for the hinge)
    label_classes: u32, // labels lie in [0, label_classes) (2 for the hinge)
    slots: u32,         // K
    groups: u32,        // G
    seg_len: u32,       // L = pixels / G
    seg_tiles: u32,     // workgroups per segment in the segment kernels
    ignore_index: i32,
    has_ignore: u32,
    present: u32,       // only classes with foreground in the group count
    hinge: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> io: LossIo;
//#elements logits @binding(2) read
@group(0) @binding(3) var<storage, read> labels: array<i32>;
@group(0) @binding(4) var<storage, read> slot_class: array<u32>;
@group(0) @binding(5) var<storage, read> class_slot: array<i32>;
@group(0) @binding(6) var<storage, read_write> keys: array<u32>;
@group(0) @binding(7) var<storage, read_write> values: array<u32>;
@group(0) @binding(8) var<storage, read> cs: array<u32>;
@group(0) @binding(9) var<storage, read> totals: array<u32>;
@group(0) @binding(10) var<storage, read_write> partials: array<f32>;
@group(0) @binding(11) var<storage, read> seg_loss: array<f32>;
@group(0) @binding(12) var<storage, read_write> weights: array<f32>;
@group(0) @binding(13) var<storage, read_write> value: array<f32>;
@group(0) @binding(14) var<storage, read_write> grad_e: array<f32>;
@group(0) @binding(15) var<storage, read_write> grad: array<f32>;
@group(0) @binding(16) var<storage, read_write> status: atomic<u32>;
@group(0) @binding(17) var<storage, read_write> flags: array<u32>;
@group(0) @binding(18) var<storage, read> ranks: array<u32>;
@group(0) @binding(19) var<storage, read> positives: array<u32>;

// The label of pixel p, or −1 when it does not count. A label outside
// [0, label_classes) that is not ignored counts as ignored and sets bit 0
// of `status`, which the host reads back.
fn label_of(p: u32) -> i32 {
    return checked_label(labels[p], params.label_classes, params.has_ignore, params.ignore_index);
}

// Increment k of lovasz_grad (see the top of the file).
fn lovasz_grad(k: u32, cum_fg: u32, fg: u32, total: u32) -> f32 {
    let u = f32(total + k + 1u - cum_fg);
    if (k == 0u || fg != 0u) {
        return 1.0 / u;
    }
    return f32(total - cum_fg) / (u * f32(total + k - cum_fg));
}

// d|fg − p|/dp as autograd takes it: 0 where the error is exactly 0.
fn abs_sign(fg: bool, p: f32) -> f32 {
    if (fg) {
        return select(0.0, -1.0, p < 1.0);
    }
    return select(0.0, 1.0, p > 0.0);
}

@compute @workgroup_size(256)
fn errors_softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = linear_item(wid, nwg, lid);
    if (p >= params.pixels) {
        return;
    }
    let s = params.spatial;
    let base = (p / s) * params.classes * s + p % s;
    let g = p / params.seg_len;
    let j = p % params.seg_len;
    let y = label_of(p);
    // Every pixel's logits are checked, counted or not (lib/finite.wgsl).
    let m = checked_class_max(base, s, params.classes).m;
    if (y < 0) {
        for (var k = 0u; k < params.slots; k++) {
            let at = (g * params.slots + k) * params.seg_len + j;
            keys[at] = IGNORED;
            values[at] = j << 1u;
        }
        return;
    }
    let lse = log_sum_exp_shifted(base, s, params.classes, m);
    for (var k = 0u; k < params.slots; k++) {
        let c = slot_class[k];
        let pc = exp(load_logits(base + c * s) - m - lse);
        let fg = u32(y) == c;
        let at = (g * params.slots + k) * params.seg_len + j;
        keys[at] = bitcast<u32>(select(pc, 1.0 - pc, fg));
        values[at] = (j << 1u) | u32(fg);
    }
}

// The hinge's key of pixel p (its error's bits, or IGNORED) and value.
struct HingeError {
    key: u32,
    value: u32,
}

// Every pass that calls it flags a non-finite logit (ignored pixels' too):
// the first is the pass that reads the logits.
fn hinge_error(p: u32) -> HingeError {
    let y = label_of(p);
    let x = load_logits(p);
    _ = flag_non_finite(x);
    var key = IGNORED;
    if (y >= 0) {
        key = bitcast<u32>(1.0 - x * f32(2 * y - 1));
    }
    return HingeError(key, ((p % params.seg_len) << 1u) | u32(max(y, 0)));
}

// e > 0 or NaN, from the bits: what the hinge must sort.
fn needs_order(key: u32) -> bool {
    let positive = (key & 0x80000000u) == 0u && key != 0u;
    return positive || (key & 0x7FFFFFFFu) > 0x7F800000u;
}

@compute @workgroup_size(256)
fn errors_hinge(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = linear_item(wid, nwg, lid);
    if (p >= params.pixels) {
        return;
    }
    let e = hinge_error(p);
    keys[p] = e.key;
    values[p] = e.value;
}

@compute @workgroup_size(256)
fn hinge_flags(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = linear_item(wid, nwg, lid);
    if (p >= params.pixels) {
        return;
    }
    flags[p] = u32(needs_order(hinge_error(p).key));
}

// ranks: the inclusive scan of hinge_flags in each segment; positives: its totals.
@compute @workgroup_size(256)
fn errors_hinge_partitioned(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = linear_item(wid, nwg, lid);
    if (p >= params.pixels) {
        return;
    }
    let e = hinge_error(p);
    let g = p / params.seg_len;
    let j = p % params.seg_len;
    let before = ranks[p];          // sorted pixels up to and including j
    var at = positives[g] + j - before;
    if (needs_order(e.key)) {
        at = before - 1u;
    }
    keys[g * params.seg_len + at] = e.key;
    values[g * params.seg_len + at] = e.value;
}

@compute @workgroup_size(256)
fn contributions(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = linear_workgroup(wid, nwg);
    let segment = w / params.seg_tiles;
    if (segment >= params.slots * params.groups) {
        return;
    }
    let total = totals[segment];
    var acc = 0.0;
    for (var q = 0u; q < SEG_ITEMS; q++) {
        let pos = (w % params.seg_tiles) * SEG_TILE + q * WG_SIZE + lid;
        if (pos < params.seg_len) {
            let at = segment * params.seg_len + pos;
            let bits = keys[at];
            if (bits != IGNORED) {
                var e = bitcast<f32>(bits);
                if (params.hinge != 0u) {
                    e = max(e, 0.0);
                }
                acc += e * lovasz_grad(pos, cs[at], values[at] & 1u, total);
            }
        }
    }
    let sum = workgroup_sum(lid, acc);
    if (lid == 0u) {
        partials[w] = sum;
    }
}

// One workgroup: each group's classes that count share its weight 1/G
// equally; the value is Σ weight·loss in a fixed order.
@compute @workgroup_size(256)
fn finalize(@builtin(local_invocation_index) lid: u32) {
    let groups = params.groups;
    let slots = params.slots;
    var acc = 0.0;
    for (var g = lid; g < groups; g += WG_SIZE) {
        var count = 0u;
        for (var k = 0u; k < slots; k++) {
            if (params.present == 0u || totals[g * slots + k] > 0u) {
                count += 1u;
            }
        }
        let w = select(0.0, 1.0 / (f32(count) * f32(groups)), count > 0u);
        for (var k = 0u; k < slots; k++) {
            let segment = g * slots + k;
            let counts = params.present == 0u || totals[segment] > 0u;
            let ws = select(0.0, w, counts);
            weights[segment] = ws;
            acc += ws * seg_loss[segment];
        }
    }
    let sum = workgroup_sum(lid, acc);
    if (lid == 0u) {
        store_value(0u, io.scale * sum, flagged());
    }
}

@compute @workgroup_size(256)
fn scatter(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = linear_workgroup(wid, nwg);
    let segment = w / params.seg_tiles;
    if (segment >= params.slots * params.groups) {
        return;
    }
    let total = totals[segment];
    let weight = weights[segment];
    for (var q = 0u; q < SEG_ITEMS; q++) {
        let pos = (w % params.seg_tiles) * SEG_TILE + q * WG_SIZE + lid;
        if (pos < params.seg_len) {
            let at = segment * params.seg_len + pos;
            let v = values[at];
            // Ignored pixels get a finite number here that nothing reads.
            grad_e[segment * params.seg_len + (v >> 1u)] = weight * lovasz_grad(pos, cs[at], v & 1u, total);
        }
    }
}

@compute @workgroup_size(256)
fn backward_softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = linear_item(wid, nwg, lid);
    if (p >= params.pixels) {
        return;
    }
    let s = params.spatial;
    let classes = params.classes;
    let base = (p / s) * classes * s + p % s;
    let y = label_of(p);
    if (y < 0) {
        if (io.accumulate_grad == 0u) {
            for (var c = 0u; c < classes; c++) {
                grad[base + c * s] = 0.0;
            }
        }
        return;
    }
    let first = (p / params.seg_len) * params.slots * params.seg_len + p % params.seg_len;
    let m = class_max(base, s, classes);
    let lse = log_sum_exp_shifted(base, s, classes, m);
    // dot = Σ_c p_c·∂loss/∂p_c over the considered classes.
    var dot = 0.0;
    for (var k = 0u; k < params.slots; k++) {
        let c = slot_class[k];
        let pc = exp(load_logits(base + c * s) - m - lse);
        dot += pc * grad_e[first + k * params.seg_len] * abs_sign(u32(y) == c, pc);
    }
    for (var c = 0u; c < classes; c++) {
        let pc = exp(load_logits(base + c * s) - m - lse);
        let k = class_slot[c];
        var d = 0.0;
        if (k >= 0) {
            d = grad_e[first + u32(k) * params.seg_len] * abs_sign(u32(y) == c, pc);
        }
        let g = io.scale * pc * (d - dot);
        let at = base + c * s;
        if (io.accumulate_grad != 0u) { grad[at] += g; } else { grad[at] = g; }
    }
}

@compute @workgroup_size(256)
fn backward_hinge(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = linear_item(wid, nwg, lid);
    if (p >= params.pixels) {
        return;
    }
    let y = label_of(p);
    var g = 0.0;
    if (y >= 0) {
        let sign = f32(2 * y - 1);
        // relu's derivative is 0 at 0, as autograd takes it.
        if (1.0 - load_logits(p) * sign > 0.0) {
            g = -io.scale * sign * grad_e[p];
        }
    }
    if (io.accumulate_grad != 0u) { grad[p] += g; } else { grad[p] = g; }
}
