// Per-pixel softmax losses, value and gradient in one pass: `cross_entropy`
// and the multiclass mode of `focal` (see SPEC.md). With p = softmax(x),
// lp = log p, y the pixel's class, q = 1 − p_y, v = [y ≠ ignore_index]:
//
//   l = v·( (1−ε)·w_y·q^γ·(−lp_y) + (ε/C)·Σ_c w_c·(−lp_c) )
//   cross_entropy: γ = 0;   focal: ε = 0
//
//   ∂l/∂x_k = v·( (1−ε)·w_y·(p_k − δ_ky)·F + (ε/C)·(W·p_k − w_k) ),
//   F = q^γ·(1 − γ·p_y·lp_y/q),  W = Σ_c w_c
//
// lp_y/q tends to −1 as q → 0, so F stays finite for γ < 1.
// A label outside [0, C) that is not ignored contributes nothing and sets
// bit 0 of `status`, which the host reads back; a non-finite logit sets
// NON_FINITE (lib/finite.wgsl) and makes the pixel's value NaN.

//#include "lib/numerics.wgsl"
//#include "lib/workgroup.wgsl"
//#include "lib/loss_io.wgsl"
//#include "lib/softmax.wgsl"
//#include "lib/labels.wgsl"

struct Params {
    chunk: Chunk,
    gamma: f32,
    smoothing: f32,       // ε
    weight_total: f32,    // W
    ignore_index: i32,
    has_ignore: u32,
    write_elements: u32,  // reduction "none": per-pixel values
    write_grad: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> io: LossIo;
@group(0) @binding(2) var<storage, read> denom: array<f32>;
//#elements logits @binding(3) read
@group(0) @binding(4) var<storage, read> labels: array<i32>;
@group(0) @binding(5) var<storage, read> class_weights: array<f32>;
//#elements grad @binding(6) read_write
@group(0) @binding(7) var<storage, read_write> value: array<f32>;
@group(0) @binding(8) var<storage, read_write> partials: array<f32>;
@group(0) @binding(9) var<storage, read_write> status: atomic<u32>;

// The class of pixel `i` (chunk-relative), or −1 when it does not count.
fn class_of(i: u32) -> i32 {
    let ch = params.chunk;
    return checked_label(labels[ch.item0 + i - ch.first_item], ch.classes, params.has_ignore, params.ignore_index);
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
    let classes = ch.classes;
    let eps_c = params.smoothing / f32(classes);
    var acc = 0.0;
    for (var k = 0u; k < ITEMS; k++) {
        let i = tile_item(tile, k, lid);
        if (i < ch.count) {
            let pixel = ch.item0 + i;
            let n = pixel / ch.spatial;
            let base = n * classes * ch.spatial + pixel % ch.spatial - ch.first_elem;
            let y = class_of(i);
            // Every pixel's logits are checked, counted or not (lib/finite.wgsl).
            let checked = checked_class_max(base, ch.spatial, classes);
            var l = 0.0;
            if (y >= 0) {
                // One pass for the normaliser, q = Σ_{c≠y} p_c (accurate where 1 − p_y
                // would cancel) and Σ_c w_c·(m − x_c), which with W·log s gives Σ_c w_c·(−lp_c).
                let m = checked.m;
                var s = 0.0;
                var q_raw = 0.0;
                var weighted_gap = 0.0;
                for (var c = 0u; c < classes; c++) {
                    let x = load_logits(base + c * ch.spatial);
                    let e = exp(x - m);
                    s += e;
                    if (c != u32(y)) {
                        q_raw += e;
                    }
                    weighted_gap += class_weights[c] * (m - x);
                }
                let log_s = log(s);
                // When y holds the largest logit, log p_y = −log(1 + q_raw) exactly; the
                // general form would cancel as p_y → 1, where focal's F needs lp_y/q.
                let x_y = load_logits(base + u32(y) * ch.spatial);
                let lp_y = select(x_y - m - log_s, -log1p_pos(q_raw), x_y == m);
                let p_y = exp(lp_y);
                let q = q_raw / s;
                let smooth_sum = weighted_gap + params.weight_total * log_s;
                let w_y = class_weights[y];
                let f = pow_from_log(log(q), params.gamma);
                l = (1.0 - params.smoothing) * w_y * f * (-lp_y) + eps_c * smooth_sum;
                if (params.write_grad != 0u) {
                    var ratio = -1.0;  // lp_y / q → −1 as q → 0
                    if (q > 1.0e-4) {
                        ratio = lp_y / q;
                    }
                    let big_f = f * (1.0 - params.gamma * p_y * ratio);
                    let hard = (1.0 - params.smoothing) * w_y * big_f;
                    for (var c = 0u; c < classes; c++) {
                        let at = base + c * ch.spatial;
                        let p = exp(load_logits(at) - m - log_s);
                        let delta = select(0.0, 1.0, c == u32(y));
                        let g = out_scale * (hard * (p - delta) + eps_c * (params.weight_total * p - class_weights[c]));
                        if (io.accumulate_grad != 0u) { add_grad(at, g); } else { store_grad(at, g); }
                    }
                }
            } else if (params.write_grad != 0u && io.accumulate_grad == 0u) {
                for (var c = 0u; c < classes; c++) {
                    store_grad(base + c * ch.spatial, 0.0);
                }
            }
            acc += l;
            if (params.write_elements != 0u) {
                let at = ch.item0 + i - ch.first_item;
                store_value(at, io.scale * l, checked.non_finite);
            }
        }
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u && params.write_elements == 0u) {
        partials[ch.tile0 + tile] = total;
    }
}

// Σ v·w_y per tile: cross_entropy's mean denominator when it depends on the labels.
@compute @workgroup_size(256)
fn weight_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = linear_workgroup(wid, nwg);
    let ch = params.chunk;
    if (tile_is_past(tile, ch.count)) {
        return;
    }
    var acc = 0.0;
    for (var k = 0u; k < ITEMS; k++) {
        let i = tile_item(tile, k, lid);
        if (i < ch.count) {
            let y = class_of(i);
            if (y >= 0) {
                acc += class_weights[y];
            }
        }
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        partials[ch.tile0 + tile] = total;
    }
}
