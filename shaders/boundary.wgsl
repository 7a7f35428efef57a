// `boundary` (Kervadec et al. 2019, SPEC.md), value and gradient in one pass
// over the pixels. With p = softmax(x) and φ the signed distance maps:
//
//   l = Σ_{k} p_{c_k}·φ_k                       (c_k: the k-th selected class)
//   ∂l/∂x_j = p_j·(ψ_j − l),   ψ_j = φ_k if j = c_k, else 0
//
// The maps come either from this plan's own distance transform ([N, K, S],
// channel k) or from the caller ([N, C, S], channel c_k): `table` says, for
// every class j, its slot k among the selected classes (−1 if not selected)
// and the channel of its map. A label outside [0, C) sets bit 0 of `status`;
// a non-finite logit or map value sets NON_FINITE and makes the values it
// enters NaN (lib/finite.wgsl). Only the selected classes' maps are read.
// Loop iterations per invocation: ITEMS · (4C) plus the workgroup sum; the
// host keeps C small enough for lavapipe's 65,535 cut-off.

//#include "lib/numerics.wgsl"
//#include "lib/workgroup.wgsl"
//#include "lib/loss_io.wgsl"
//#include "lib/softmax.wgsl"
//#include "lib/labels.wgsl"

struct Params {
    chunk: Chunk,
    map_channels: u32,    // channels of the distance tensor (K or C)
    first_map: u32,       // element at which the distance binding starts
    selected: u32,        // K
    first_value: u32,     // element at which the per-element value binding starts
    write_elements: u32,  // reduction "none": values [N, K, S]
    write_grad: u32,
    inv_denominator: f32, // 1 / (N·K·S) for "mean", 1 otherwise
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> io: LossIo;
//#elements logits @binding(3) read
@group(0) @binding(4) var<storage, read> labels: array<i32>;
@group(0) @binding(5) var<storage, read> table: array<vec2<i32>>;
@group(0) @binding(6) var<storage, read> maps: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad: array<f32>;
@group(0) @binding(8) var<storage, read_write> value: array<f32>;
@group(0) @binding(9) var<storage, read_write> partials: array<f32>;
@group(0) @binding(10) var<storage, read_write> status: atomic<u32>;

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
    let out_scale = io.scale * params.inv_denominator;
    let classes = ch.classes;
    var acc = 0.0;
    for (var it = 0u; it < ITEMS; it++) {
        let i = tile_item(tile, it, lid);
        if (i < ch.count) {
            let pixel = ch.item0 + i;
            let n = pixel / ch.spatial;
            let q = pixel % ch.spatial;
            // The label only vouches for the maps: reported when out of range, not otherwise read.
            _ = checked_label(labels[pixel - ch.first_item], classes, 0u, 0);
            let base = n * classes * ch.spatial + q - ch.first_elem;
            let map_base = n * params.map_channels * ch.spatial + q - params.first_map;
            let checked = checked_class_max(base, ch.spatial, classes);
            let m = checked.m;
            let log_s = log_sum_exp_shifted(base, ch.spatial, classes, m);
            var l = 0.0;
            for (var c = 0u; c < classes; c++) {
                let t = table[c];
                if (t.x >= 0) {
                    // The maps a caller passes in are checked where they are read.
                    let phi = maps[map_base + u32(t.y) * ch.spatial];
                    let bad = flag_non_finite(phi) | checked.non_finite;
                    let v = exp(load_logits(base + c * ch.spatial) - m - log_s) * phi;
                    l += v;
                    if (params.write_elements != 0u) {
                        let at = (n * params.selected + u32(t.x)) * ch.spatial + q - params.first_value;
                        store_value(at, io.scale * v, bad);
                    }
                }
            }
            if (params.write_grad != 0u) {
                for (var c = 0u; c < classes; c++) {
                    let t = table[c];
                    var psi = 0.0;
                    if (t.x >= 0) {
                        psi = maps[map_base + u32(t.y) * ch.spatial];
                    }
                    let at = base + c * ch.spatial;
                    let g = out_scale * exp(load_logits(at) - m - log_s) * (psi - l);
                    if (io.accumulate_grad != 0u) { grad[at] += g; } else { grad[at] = g; }
                }
            }
            acc += l;
        }
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u && params.write_elements == 0u) {
        partials[ch.tile0 + tile] = total;
    }
}
