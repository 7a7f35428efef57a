// unified_focal (SPEC.md): MONAI's asymmetric unified focal loss,
// L = λ·AFL + (1−λ)·AFTL, for two classes, with p_c ← min(max(p_c, ε), 1 − ε):
//
//  1. `unified_stats`, one pass over the logits: a workgroup takes one tile
//     of one image's pixels and writes its partial sums of
//         TP_0 = Σ g_0·p_0,  TP_1 = Σ g_1·p_1,  X = Σ g_0·p_1,  Y = Σ g_1·p_0,
//         A = Σ (1−δ)·(1 − p_0)^γ·(−g_0·log p_0) + δ·(−g_1·log p_1)   (AFL's terms)
//     into the slot of its image; the segmented sum (reduce.wgsl) then adds
//     each image's partials in a fixed order. Since p_0 + p_1 = 1 and
//     g_0 + g_1 = 1, X is FP_1 and FN_0, and Y is FN_1 and FP_0.
//  2. `unified_groups`, one invocation per image n:
//         T_c = (TP_c + ε) / (TP_c + δ·FN_c + (1−δ)·FP_c + ε),
//     the image's share of the value, λ·A/(2·N·|S|) + (1−λ)/(2N)·[(1 − T_0) + (1 − T_1)^(1−γ)],
//     and per class the coefficients (a_c, b_c) of ∂AFTL/∂p_c = a_c·g_c + b_c.
//  3. `unified_pixels`, a second pass over the logits for the gradient:
//         d_c = [ε < p_c < 1−ε]·(λ·∂AFL/∂p_c + (1−λ)·∂AFTL/∂p_c),
//     through the softmax or the sigmoid, which both give
//         ∂/∂x_1 = p_0·p_1·(d_1 − d_0)   (∂/∂x_0 = −∂/∂x_1).
//
// Why not the overlap family's I = Σ p·g, P = Σ p, G = Σ g: FN = G − I and
// FP = P − I are differences of f32 sums, and on a confident prediction
// they are ε-sized counts under sums of size |S|, lost to rounding. Then
// 1 − T, and (1 − T_1)^(1−γ) above all, are noise. Summed directly, each
// count is as exact as its terms.
//
// Precision of the terms: p_0 and p_1 are each computed from the logits
// (1 − p_0 is p_1, never a subtraction), and log p_c comes from the
// log-softmax or softplus where p_c is inside the clamp. 1 − T_c is formed
// as (δ·FN_c + (1−δ)·FP_c)/B_c and floored at min(δ, 1−δ)·ε, its exact
// lower bound (SPEC.md: FN_1 ≥ ε·#foreground, FP_1 ≥ ε·#background), so
// (1 − T_1)^(−γ) stays finite.
//
// Non-finite logits and targets, and labels outside {0, 1}, are flagged by
// `unified_stats` (lib/finite.wgsl, lib/labels.wgsl); the value is then NaN.
// Loops: 8 pixels per invocation in the passes, none in the group stage.

//#include "lib/numerics.wgsl"
//#include "lib/workgroup.wgsl"
//#include "lib/loss_io.wgsl"
//#include "lib/softmax.wgsl"
//#include "lib/labels.wgsl"

// Two channels and a softmax ("multiclass"), else one channel and a sigmoid ("binary").
override SOFTMAX: bool = false;

// Pixels per thread in `unified_stats`; a workgroup covers STATS_TILE pixels of one image.
const STATS_ITEMS: u32 = 8u;
const STATS_TILE: u32 = WG_SIZE * STATS_ITEMS;
// TP_0, TP_1, X, Y, A.
const SUMS: u32 = 5u;

struct UnifiedParams {
    chunk: Chunk,       // the pass's chunk: tiles (stats) or pixels (gradient); unused by the group stage
    images: u32,        // N
    tiles: u32,         // stats tiles per image
    _pad0: u32,
    _pad1: u32,
    delta: f32,         // δ
    gamma: f32,         // γ
    eps: f32,           // ε
    afl_scale: f32,     // λ / (2·N·|S|)
    aftl_scale: f32,    // (1 − λ) / (2N)
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
}

@group(0) @binding(0) var<uniform> up: UnifiedParams;
@group(0) @binding(1) var<uniform> io: LossIo;
//#elements logits @binding(2) read
// Class indices (i32, multiclass) or dense targets (f32, binary), read as bits.
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<storage, read> targets: array<u32>;
// Every image's TP_0, then every image's TP_1, then X, Y and A.
@group(0) @binding(5) var<storage, read> stats: array<f32>;
// Per image: (a_0, b_0, a_1, b_1), already scaled by io.scale.
@group(0) @binding(6) var<storage, read_write> coef: array<vec4<f32>>;
// Each image's share of the value.
@group(0) @binding(7) var<storage, read_write> contrib: array<f32>;
//#elements grad @binding(8) read_write
@group(0) @binding(9) var<storage, read_write> status: atomic<u32>;
// Never written: lib/finite.wgsl's store_value needs it declared.
@group(0) @binding(10) var<storage, read_write> value: array<f32>;

// One pixel as both passes see it: the clamped probabilities, their logs,
// the clamp's derivative (inside it or not), g_1, and where x_1 lives.
struct Pixel {
    q0: f32,
    q1: f32,
    lq0: f32,
    lq1: f32,
    in0: bool,
    in1: bool,
    g1: f32,
    p01: f32,   // p_0·p_1 unclamped: ∂p_1/∂x_1
    at1: u32,   // x_1 (binary: x) in the logits' binding
}

// Pixel `s` of image `n`. `checked`: flag non-finite inputs and bad labels
// (the stats pass, which reads every input first).
fn read_pixel(n: u32, s: u32, checked: bool) -> Pixel {
    let ch = up.chunk;
    let spatial = ch.spatial;
    var out: Pixel;
    var p0: f32;
    var p1: f32;
    var lp0: f32;
    var lp1: f32;
    if (SOFTMAX) {
        let base = n * 2u * spatial + s - ch.first_elem;
        out.at1 = base + spatial;
        let y = bitcast<i32>(targets[n * spatial + s - ch.first_item]);
        var m: f32;
        if (checked) {
            m = checked_class_max(base, spatial, 2u).m;
            _ = checked_label(y, 2u, 0u, 0);
        } else {
            m = class_max(base, spatial, 2u);
        }
        let lse = log_sum_exp_shifted(base, spatial, 2u, m);
        lp0 = load_logits(base) - m - lse;
        lp1 = load_logits(out.at1) - m - lse;
        p0 = exp(lp0);
        p1 = exp(lp1);
        out.g1 = select(0.0, 1.0, y == 1);
    } else {
        out.at1 = n * spatial + s - ch.first_elem;
        let x = load_logits(out.at1);
        out.g1 = bitcast<f32>(targets[out.at1]);
        if (checked) {
            _ = flag_non_finite(x);
            _ = flag_non_finite(out.g1);
        }
        let parts = sigmoid_parts(x);
        p1 = parts.p;
        p0 = parts.q;
        lp1 = -parts.softplus_neg;
        lp0 = -parts.softplus_pos;
    }
    let e = up.eps;
    out.p01 = p0 * p1;
    out.in0 = p0 > e && p0 < 1.0 - e;
    out.in1 = p1 > e && p1 < 1.0 - e;
    out.q0 = clamp(p0, e, 1.0 - e);
    out.q1 = clamp(p1, e, 1.0 - e);
    out.lq0 = select(log(out.q0), lp0, out.in0);
    out.lq1 = select(log(out.q1), lp1, out.in1);
    return out;
}

@compute @workgroup_size(256)
fn unified_stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let local = linear_workgroup(wid, nwg);
    let ch = up.chunk;
    if (local >= ch.count) {
        return;
    }
    let tile = ch.item0 + local;
    let n = tile / up.tiles;
    let t = tile % up.tiles;
    let d = up.delta;
    var acc = array<f32, SUMS>(0.0, 0.0, 0.0, 0.0, 0.0);
    for (var k = 0u; k < STATS_ITEMS; k++) {
        let s = t * STATS_TILE + k * WG_SIZE + lid;
        if (s < ch.spatial) {
            let px = read_pixel(n, s, true);
            let g0 = 1.0 - px.g1;
            acc[0] += g0 * px.q0;
            acc[1] += px.g1 * px.q1;
            acc[2] += g0 * px.q1;
            acc[3] += px.g1 * px.q0;
            // (1 − q_0)^γ with 1 − q_0 = q_1.
            acc[4] += (1.0 - d) * exp(up.gamma * px.lq1) * (-g0 * px.lq0) + d * (-px.g1 * px.lq1);
        }
    }
    let slots = up.images * up.tiles;
    for (var q = 0u; q < SUMS; q++) {
        let total = workgroup_sum(lid, acc[q]);
        if (lid == 0u) {
            partials[q * slots + tile] = total;
        }
    }
}

// One class's Tversky index from its counts: 1 − T and ∂T/∂(TP, FN, FP).
struct Tversky {
    miss: f32,        // 1 − T
    dt: vec3<f32>,
}

fn tversky(tp: f32, fn_: f32, fp: f32) -> Tversky {
    let d = up.delta;
    let a = tp + up.eps;
    let r = max(d * fn_ + (1.0 - d) * fp, min(d, 1.0 - d) * up.eps);
    let b = a + r;
    let bb = b * b;
    return Tversky(r / b, vec3<f32>(r / bb, -a * d / bb, -a * (1.0 - d) / bb));
}

// (a, b) of ∂/∂p_c = a·g_c + b, for a term with ∂term/∂T = u: through
// ∂TP/∂p = g, ∂FN/∂p = −g, ∂FP/∂p = 1 − g.
fn class_coef(t: Tversky, u: f32) -> vec2<f32> {
    return u * vec2<f32>(t.dt.x - t.dt.y - t.dt.z, t.dt.z);
}

@compute @workgroup_size(64)
fn unified_groups(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = linear_workgroup(wid, nwg) * 64u + lid;
    let images = up.images;
    if (n >= images) {
        return;
    }
    let tp0 = stats[n];
    let tp1 = stats[images + n];
    let x = stats[2u * images + n];
    let y = stats[3u * images + n];
    let afl = stats[4u * images + n];
    let t0 = tversky(tp0, x, y);
    let t1 = tversky(tp1, y, x);
    // (1 − T_1)^(1−γ) and its derivative by T_1, −(1−γ)·(1 − T_1)^(−γ).
    let log_miss = log(t1.miss);
    let focal = exp((1.0 - up.gamma) * log_miss);
    let u1 = -(1.0 - up.gamma) * exp(-up.gamma * log_miss);
    contrib[n] = up.afl_scale * afl + up.aftl_scale * (t0.miss + focal);
    coef[n] = (io.scale * up.aftl_scale) * vec4<f32>(class_coef(t0, -1.0), class_coef(t1, u1));
}

@compute @workgroup_size(256)
fn unified_pixels(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = linear_workgroup(wid, nwg);
    let ch = up.chunk;
    if (tile_is_past(tile, ch.count)) {
        return;
    }
    let d = up.delta;
    let k_afl = io.scale * up.afl_scale;
    for (var k = 0u; k < ITEMS; k++) {
        let i = tile_item(tile, k, lid);
        if (i >= ch.count) {
            break;
        }
        let pixel = ch.item0 + i;
        let n = pixel / ch.spatial;
        let px = read_pixel(n, pixel % ch.spatial, false);
        let g0 = 1.0 - px.g1;
        let ab = coef[n];
        // ∂AFL/∂q_0 = (1−δ)·g_0·(γ·(1 − q_0)^(γ−1)·log q_0 − (1 − q_0)^γ/q_0), 1 − q_0 = q_1.
        let dafl0 = (1.0 - d) * g0 * (up.gamma * exp((up.gamma - 1.0) * px.lq1) * px.lq0 - exp(up.gamma * px.lq1) / px.q0);
        let dafl1 = -d * px.g1 / px.q1;
        let d0 = select(0.0, k_afl * dafl0 + ab.x * g0 + ab.y, px.in0);
        let d1 = select(0.0, k_afl * dafl1 + ab.z * px.g1 + ab.w, px.in1);
        let g = px.p01 * (d1 - d0);
        if (SOFTMAX) {
            write_grad(px.at1 - ch.spatial, -g);
        }
        write_grad(px.at1, g);
    }
}

fn write_grad(at: u32, v: f32) {
    if (io.accumulate_grad != 0u) {
        add_grad(at, v);
    } else {
        store_grad(at, v);
    }
}
