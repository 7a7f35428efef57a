// `hausdorff_dt` (Karimi & Salcudean 2019, SPEC.md), value and gradient.
// Host side: src/losses/hausdorff_dt.rs. With p = softmax(x) or σ(x), g the
// one-hot or dense target, and d_P, d_G the two-sided distance fields of the
// masks [p > 0.5] and [g > 0.5] (shaders/distance.wgsl), for every kept
// channel c:
//
//   e[n,c,q] = (p − g)²·(d_P^α + d_G^α)
//   l = Σ e / |S| per (image, channel), or Σ e / (N·|S|) per channel ("batch")
//   out = f(v), v = mean or sum of l, or each l ("none"); f = log1p under LOG
//   ∂out/∂p = f'(v)·2(p − g)·(d_P^α + d_G^α) / |S| (or N·|S|) · 1/#groups for "mean"
//
// the fields held constant, then through the softmax,
// ∂/∂x_j = p_j·(u_j − Σ_c u_c·p_c) (u_c = 0 for a channel left out), or the
// sigmoid, ∂/∂x = u·σ(x)·σ(−x). Stages, all in one encoder:
//
//  1. `class_masks` (softmax: each pixel's class, −1 where none exceeds 0.5)
//     or `dense_masks` (x > 0, or g > 0.5 for dense targets): the masks the
//     distance transform reads.
//  2. The transforms (distance.wgsl), both fields.
//  3. `pixel_loss`: a workgroup per tile of one image's pixels: the value's
//     partial sums (one per tile, or per tile and channel for "none"), and,
//     unless LOG, the gradient in the same pass; with LOG it runs again for
//     the gradient once `finish_value` has the factors f'(v) = 1/(1 + v).
//  4. The segmented sum (reduce.wgsl), then `finish_value`.
//
// `pixel_loss` reads every input the value depends on, so it flags the
// non-finite ones (lib/finite.wgsl): every logit (softmax), the kept
// channels' logits and dense targets (sigmoid), and the target's fields
// (the caller's, when given). `finish_value` then writes NaN.
//
// Loop budget (lavapipe cuts an invocation after 65,535 loop iterations):
// `pixel_loss` makes at most 8·C (softmax of its 4 pixels) + 12·K (the
// per-channel sums of "none") + 8·C (the gradient) ≤ 28·C; the host caps C at
// 1,024. The mask kernels loop 2·C or K times.

//#include "lib/numerics.wgsl"
//#include "lib/workgroup.wgsl"
//#include "lib/loss_io.wgsl"
//#include "lib/softmax.wgsl"
//#include "lib/labels.wgsl"

// Multiclass: softmax and class-index targets; else sigmoid and dense targets.
override SOFTMAX: bool = true;
// This pass adds up the value's partial sums.
override VALUE: bool = true;
// This pass writes the gradient.
override GRAD: bool = true;
// Reduction "none": partial sums per group (else one per tile).
override PER_GROUP: bool = false;
// out = log1p(v): the gradient's factor comes from `factors`.
override LOG: bool = false;
// Aggregate "batch": one group per channel over the whole batch.
override BATCH: bool = false;

struct LossParams {
    chunk: Chunk,       // units: tiles (tile t of image n is unit n·tiles + t)
    images: u32,        // N
    tiles: u32,         // tiles per image
    kept: u32,          // K: channels kept
    first: u32,         // the first kept channel (1 without the background)
    first_pred: u32,    // element at which the prediction's fields ([N, K, S]) are bound
    alpha: f32,
    inv_size: f32,      // 1/|S| ("image") or 1/(N·|S|) ("batch")
    grad_scale: f32,    // 2·inv_size, times 1/#groups for "mean"
}

struct MaskParams {
    chunk: Chunk,       // units: pixels
    first: u32,         // source channel of output channel 0
    channels_out: u32,  // channels of the masks (dense_masks)
    first_out: u32,     // element at which the masks are bound
    threshold: f32,     // inside: source > threshold
}

struct ValueParams {
    count: u32,         // value entries: groups for "none", else 1
    mean_scale: f32,    // 1/#groups for "mean", else 1
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: LossParams;
@group(0) @binding(1) var<uniform> io: LossIo;
//#elements logits @binding(2) read
// Class indices (i32) or dense targets (f32), read as bits.
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read> pred_maps: array<f32>;
@group(0) @binding(5) var<storage, read> target_maps: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad: array<f32>;
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;
@group(0) @binding(8) var<storage, read_write> factors: array<f32>;
@group(0) @binding(9) var<storage, read_write> status: atomic<u32>;
@group(0) @binding(10) var<uniform> mask_params: MaskParams;
@group(0) @binding(11) var<storage, read_write> masks: array<i32>;
@group(0) @binding(12) var<storage, read> source: array<f32>;
@group(0) @binding(13) var<uniform> value_params: ValueParams;
@group(0) @binding(14) var<storage, read> sums: array<f32>;
@group(0) @binding(15) var<storage, read_write> value: array<f32>;

// The pixel (n·S + q) that invocation `lid` of a mask pass takes, or −1 past the chunk.
fn mask_pixel(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> i32 {
    let i = linear_item(wid, nwg, lid);
    return select(-1, i32(mask_params.chunk.item0 + i), i < mask_params.chunk.count);
}

// The softmax prediction's mask labels: a pixel lies in the mask of the
// class whose probability exceeds 0.5, if one does. Only the argmax can:
// p_max = 1 / Σ_c e^{x_c − max} > 0.5 exactly when log Σ_c e^{x_c − max} < ln 2.
@compute @workgroup_size(256)
fn class_masks(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = mask_pixel(wid, nwg, lid);
    if (at < 0) {
        return;
    }
    let ch = mask_params.chunk;
    let pixel = u32(at);
    let base = (pixel / ch.spatial) * ch.classes * ch.spatial + pixel % ch.spatial - ch.first_elem;
    var best = 0u;
    var top = load_logits(base);
    for (var c = 1u; c < ch.classes; c++) {
        let v = load_logits(base + c * ch.spatial);
        if (v > top) {
            top = v;
            best = c;
        }
    }
    let inside = log_sum_exp_shifted(base, ch.spatial, ch.classes, top) < LN_2;
    masks[pixel - mask_params.first_out] = select(-1, i32(best), inside);
}

const LN_2: f32 = 0.6931471805599453;

// Per-channel masks of a dense tensor [N, C, S]: 1 where source > threshold
// (σ(x) > 0.5 is x > 0; a dense target's g > 0.5), for channels_out channels from `first`.
@compute @workgroup_size(256)
fn dense_masks(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = mask_pixel(wid, nwg, lid);
    if (at < 0) {
        return;
    }
    let ch = mask_params.chunk;
    let pixel = u32(at);
    let n = pixel / ch.spatial;
    let q = pixel % ch.spatial;
    let out = mask_params.channels_out;
    for (var k = 0u; k < out; k++) {
        let v = source[(n * ch.classes + mask_params.first + k) * ch.spatial + q - ch.first_elem];
        masks[(n * out + k) * ch.spatial + q - mask_params.first_out] = select(0, 1, v > mask_params.threshold);
    }
}

// d^α, 0 at d = 0 (an empty or full mask's field, or the pixels next to the
// other side at 0 distance: none, as d ≥ one pixel there).
fn distance_weight(d: f32) -> f32 {
    if (d <= 0.0) {
        return 0.0;
    }
    if (params.alpha == 2.0) {
        return d * d;
    }
    if (params.alpha == 1.0) {
        return d;
    }
    return exp2(params.alpha * log2(d));
}

fn write_grad(at: u32, g: f32) {
    if (io.accumulate_grad != 0u) {
        grad[at] += g;
    } else {
        grad[at] = g;
    }
}

// The value entry (group) of image n's kept channel j.
fn group_of(n: u32, j: u32) -> u32 {
    return select(n * params.kept + j, j, BATCH);
}

// f'(v) of channel j's group: 1 without LOG.
fn log_factor(n: u32, j: u32) -> f32 {
    if (!LOG) {
        return 1.0;
    }
    return factors[select(0u, group_of(n, j), PER_GROUP)];
}

@compute @workgroup_size(256)
fn pixel_loss(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let local = linear_workgroup(wid, nwg);
    let ch = params.chunk;
    if (local >= ch.count) {
        return;
    }
    let tile = ch.item0 + local;
    let n = tile / params.tiles;
    let t = tile % params.tiles;
    let spatial = ch.spatial;
    let classes = ch.classes;
    let kept = params.kept;
    let first = params.first;
    // Per pixel: where its logits and its prediction fields start, its class
    // (softmax; −1 for a label outside [0, C), in no class), and its largest
    // logit and log Σ_c e^{x_c − max}, so that each p_c costs one exp.
    var present: array<bool, ITEMS>;
    var base: array<u32, ITEMS>;
    var pred_base: array<u32, ITEMS>;
    var label: array<i32, ITEMS>;
    var top: array<f32, ITEMS>;
    var lse: array<f32, ITEMS>;
    for (var k = 0u; k < ITEMS; k++) {
        let q = tile_item(t, k, lid);
        present[k] = q < spatial;
        if (present[k]) {
            base[k] = n * classes * spatial + q - ch.first_elem;
            pred_base[k] = n * kept * spatial + q - params.first_pred;
            if (SOFTMAX) {
                label[k] = checked_label(bitcast<i32>(targets[n * spatial + q - ch.first_item]), classes, 0u, 0);
                top[k] = checked_class_max(base[k], spatial, classes).m;
                lse[k] = log_sum_exp_shifted(base[k], spatial, classes, top[k]);
            }
        }
    }

    // "none": every group's partial sum of this tile, channel by channel.
    if (VALUE && PER_GROUP) {
        for (var j = 0u; j < kept; j++) {
            let c = first + j;
            var acc = 0.0;
            for (var k = 0u; k < ITEMS; k++) {
                if (!present[k]) {
                    continue;
                }
                let at = base[k] + c * spatial;
                var p: f32;
                var g: f32;
                if (SOFTMAX) {
                    p = exp(load_logits(at) - top[k] - lse[k]);
                    g = select(0.0, 1.0, label[k] == i32(c));
                } else {
                    let x = load_logits(at);
                    g = bitcast<f32>(targets[at]);
                    _ = flag_non_finite(x) | flag_non_finite(g);
                    p = sigmoid(x);
                }
                let d_g = target_maps[at];
                _ = flag_non_finite(d_g);
                let w = distance_weight(pred_maps[pred_base[k] + j * spatial]) + distance_weight(d_g);
                acc += (p - g) * (p - g) * w * params.inv_size;
            }
            let tile_sum = workgroup_sum(lid, acc);
            if (lid == 0u) {
                let segment = select(params.tiles, params.images * params.tiles, BATCH);
                let pos = select(t, n * params.tiles + t, BATCH);
                partials[group_of(n, j) * segment + pos] = tile_sum;
            }
        }
    }

    // Pixel by pixel: the tile's total (mean, sum) and the gradient.
    if (GRAD || (VALUE && !PER_GROUP)) {
        let scale = io.scale * params.grad_scale;
        var total = 0.0;
        for (var k = 0u; k < ITEMS; k++) {
            if (!present[k]) {
                continue;
            }
            var dot = 0.0;  // Σ_c u_c·p_c (softmax)
            for (var j = 0u; j < kept; j++) {
                let c = first + j;
                let at = base[k] + c * spatial;
                let x = load_logits(at);
                var p: f32;
                var g: f32;
                if (SOFTMAX) {
                    p = exp(x - top[k] - lse[k]);
                    g = select(0.0, 1.0, label[k] == i32(c));
                } else {
                    p = sigmoid(x);
                    g = bitcast<f32>(targets[at]);
                    _ = flag_non_finite(x) | flag_non_finite(g);
                }
                let d_g = target_maps[at];
                _ = flag_non_finite(d_g);
                let w = distance_weight(pred_maps[pred_base[k] + j * spatial]) + distance_weight(d_g);
                let diff = p - g;
                total += diff * diff * w * params.inv_size;
                if (GRAD) {
                    let u = scale * log_factor(n, j) * diff * w;
                    if (SOFTMAX) {
                        dot += u * p;
                        write_grad(at, u * p);
                    } else {
                        write_grad(at, u * p * sigmoid(-x));
                    }
                }
            }
            if (GRAD) {
                if (SOFTMAX) {
                    // p_j·u_j is in place for the kept channels; every channel gets −p_j·Σ u_c·p_c.
                    for (var c = 0u; c < classes; c++) {
                        let at = base[k] + c * spatial;
                        let g = -exp(load_logits(at) - top[k] - lse[k]) * dot;
                        if (c >= first) {
                            grad[at] += g;
                        } else {
                            write_grad(at, g);
                        }
                    }
                } else {
                    for (var c = 0u; c < first; c++) {
                        write_grad(base[k] + c * spatial, 0.0);
                    }
                }
            }
        }
        if (VALUE && !PER_GROUP) {
            let tile_sum = workgroup_sum(lid, total);
            if (lid == 0u) {
                partials[tile] = tile_sum;
            }
        }
    }
}

// Each value entry: v = its sum (times 1/#groups for "mean"), out = f(v),
// written or accumulated with the term's scale, and the gradient's factor
// f'(v) = 1/(1 + v) under LOG.
@compute @workgroup_size(64)
fn finish_value(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_workgroup(wid, nwg) * 64u + lid;
    if (i >= value_params.count) {
        return;
    }
    let v = sums[i] * value_params.mean_scale;
    var out = v;
    if (LOG) {
        out = log1p_pos(v);
    }
    store_value(i, io.scale * out, flagged());
    factors[i] = 1.0 / (1.0 + v);
}
