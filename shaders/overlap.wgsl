// The overlap losses of SPEC.md: dice, jaccard, tversky, generalized_dice and
// the confusion-count loss mcc, value and gradient, in three stages that
// record into one encoder:
//
//  1. `pixel_stats`, one pass over the logits: a workgroup takes one tile of
//     one image's pixels, computes p = softmax(x) or σ(x) once per pixel, and
//     writes for every class its tile's partial sums
//         I = Σ m·p·g,   P = Σ m·p  (Σ m·p² squared),   G = Σ m·g  (Σ m·g² squared)
//     into the slot of its group: (image, class), or (class) for aggregate
//     "batch". The segmented sum (reduce.wgsl) then adds each group's
//     partials in a fixed order.
//  2. `overlap_groups` or `mcc_groups` (one invocation per group), or
//     `generalized_groups` (one per image, or one for the batch): each group's loss, its share of
//     the value, and the coefficients (a, b) = io.scale·(∂value/∂I, ∂value/∂P).
//     `pixel_stats` also flags non-finite logits and targets (lib/finite.wgsl),
//     and every value written after it is then NaN.
//  3. `pixel_grad`, a second pass over the logits:
//         d_c = ∂value/∂p_c = m·(a·g + b·(1, or 2p squared))   (G holds no p)
//     then through the softmax, ∂/∂x_j = p_j·(d_j − Σ_c p_c·d_c), or the
//     sigmoid, ∂/∂x = d·σ(x)·σ(−x).
//
// Loop budget (lavapipe cuts an invocation after 65,535 loop iterations):
// counting every loop, `pixel_stats` makes about 33·C (16·C for the
// softmax, 17·C for the sums), `pixel_grad` 16·C, `generalized_groups` 3·C;
// the host caps C at 1,024, which leaves room for a compiler that unrolls nothing.

//#include "lib/numerics.wgsl"
//#include "lib/workgroup.wgsl"
//#include "lib/loss_io.wgsl"
//#include "lib/softmax.wgsl"
//#include "lib/labels.wgsl"

// Multiclass: softmax over the class axis and class-index targets; else
// sigmoid and dense targets (binary, multilabel).
override SOFTMAX: bool = true;
// P and G sum squares.
override SQUARED: bool = false;
// Aggregate "batch": one group per class over the whole batch.
override BATCH: bool = false;

// Pixels per thread in `pixel_stats`; a workgroup covers STATS_TILE pixels of one image.
const STATS_ITEMS: u32 = 8u;
const STATS_TILE: u32 = WG_SIZE * STATS_ITEMS;
// `pixel_stats` reduces the I, P, G of CLASS_BATCH classes together: STREAMS
// sums over the workgroup with three barriers, where one tree per sum would
// take eight barriers each.
const CLASS_BATCH: u32 = 4u;
const STREAMS: u32 = 3u * CLASS_BATCH;
var<workgroup> wg_streams: array<f32, STREAMS * WG_SIZE>;  // 12 KiB

// The pixel passes' parameters. `chunk` counts tiles in `pixel_stats`,
// pixels in `pixel_grad`.
struct PixelParams {
    chunk: Chunk,
    images: u32,        // N
    tiles: u32,         // stats tiles per image
    ignore_index: i32,  // class-index targets
    ignore_value: f32,  // dense targets: the same value as a float
    has_ignore: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// The per-group stage's parameters.
struct GroupParams {
    count: u32,          // invocations: groups, or generalized dice's images
    classes: u32,        // C
    stat_groups: u32,    // groups in `stats`: N·C, or C for "batch"
    first_class: u32,    // 1 when the background is left out, else 0
    kind: u32,           // dice 0, jaccard 1, tversky 2; generalized: square 0, simple 1, uniform 2
    write_elements: u32, // reduction "none"
    log_loss: u32,
    empty_zero: u32,
    smooth_nr: f32,
    smooth_dr: f32,
    eps: f32,
    alpha: f32,
    beta: f32,
    mean_scale: f32,     // factor on a weighted loss in the value: 1/Σw for "mean", else 1
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> px: PixelParams;
@group(0) @binding(1) var<uniform> io: LossIo;
//#elements logits @binding(2) read
// Class indices (i32) or dense targets (f32), read as bits.
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<storage, read_write> status: atomic<u32>;
// I of every group, then P of every group, then G; then M, a group's pixels
// (mcc's TN = M − P − G + I): a count like the others, so that a
// data-parallel plan adds it across devices with them (losses/shards.rs).
@group(0) @binding(6) var<storage, read> stats: array<f32>;
@group(0) @binding(7) var<storage, read_write> coef: array<vec2<f32>>;
//#elements grad @binding(8) read_write
@group(0) @binding(9) var<storage, read> class_weights: array<f32>;
@group(0) @binding(10) var<uniform> gp: GroupParams;
@group(0) @binding(11) var<storage, read_write> contrib: array<f32>;
@group(0) @binding(12) var<storage, read_write> value: array<f32>;

// The class of `pixel` (n·S + s), or −1 when it does not count: ignored, or
// outside [0, C), which also sets bit 0 of `status` for the host to report.
fn label_of(pixel: u32) -> i32 {
    return checked_label(bitcast<i32>(targets[pixel - px.chunk.first_item]), px.chunk.classes, px.has_ignore, px.ignore_index);
}

// Whether a dense target is the ignore value.
fn ignored(y: f32) -> bool {
    return px.has_ignore != 0u && y == px.ignore_value;
}

@compute @workgroup_size(256)
fn pixel_stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let local = linear_workgroup(wid, nwg);
    let ch = px.chunk;
    if (local >= ch.count) {
        return;
    }
    let tile = ch.item0 + local;
    let n = tile / px.tiles;
    let t = tile % px.tiles;
    let spatial = ch.spatial;
    let classes = ch.classes;
    // Per pixel: its class-0 logit, whether it counts (softmax: its label),
    // its largest logit m and log Σ_c e^{x_c − m}, so that each p_c below
    // costs one exp. (m and the log stay apart: their f32 sum would lose the
    // log's digits once |m| is large.)
    var base: array<u32, STATS_ITEMS>;
    var label: array<i32, STATS_ITEMS>;
    var top: array<f32, STATS_ITEMS>;
    var lse: array<f32, STATS_ITEMS>;
    for (var k = 0u; k < STATS_ITEMS; k++) {
        let s = t * STATS_TILE + k * WG_SIZE + lid;
        label[k] = -1;
        if (s < spatial) {
            base[k] = n * classes * spatial + s - ch.first_elem;
            if (SOFTMAX) {
                let y = label_of(n * spatial + s);
                label[k] = y;
                // Every pixel's logits are checked, counted or not (lib/finite.wgsl).
                top[k] = checked_class_max(base[k], spatial, classes).m;
                if (y >= 0) {
                    lse[k] = log_sum_exp_shifted(base[k], spatial, classes, top[k]);
                }
            } else {
                label[k] = 0;
            }
        }
    }
    let groups = select(px.images * classes, classes, BATCH);
    let seg_len = select(px.tiles, px.images * px.tiles, BATCH);
    let pos = select(t, n * px.tiles + t, BATCH);
    let stride = groups * seg_len;
    // Classes reduced together, and their sums: stream 3·j + quantity.
    let width = min(CLASS_BATCH, classes);
    let streams = 3u * width;
    for (var c0 = 0u; c0 < classes; c0 += width) {
        for (var j = 0u; j < width; j++) {
            let c = c0 + j;
            var acc = vec3<f32>(0.0);
            for (var k = 0u; k < STATS_ITEMS; k++) {
                if (label[k] < 0 || c >= classes) {
                    continue;
                }
                let at = base[k] + c * spatial;
                var p: f32;
                var g: f32;
                if (SOFTMAX) {
                    p = exp(load_logits(at) - top[k] - lse[k]);
                    g = select(0.0, 1.0, u32(label[k]) == c);
                } else {
                    g = bitcast<f32>(targets[at]);
                    let x = load_logits(at);
                    _ = flag_non_finite(x);
                    _ = flag_non_finite(g);
                    if (ignored(g)) {
                        continue;
                    }
                    p = sigmoid(x);
                }
                if (SQUARED) {
                    acc += vec3<f32>(p * g, p * p, g * g);
                } else {
                    acc += vec3<f32>(p * g, p, g);
                }
            }
            wg_streams[(3u * j) * WG_SIZE + lid] = acc.x;
            wg_streams[(3u * j + 1u) * WG_SIZE + lid] = acc.y;
            wg_streams[(3u * j + 2u) * WG_SIZE + lid] = acc.z;
        }
        workgroupBarrier();
        // Two fixed-order levels: 16 threads per stream each add 16 values
        // (reading consecutive addresses together), then one thread adds the 16.
        if (lid < streams * 16u) {
            let at = (lid / 16u) * WG_SIZE + lid % 16u;
            var sum = 0.0;
            for (var i = 0u; i < 16u; i++) {
                sum += wg_streams[at + 16u * i];
            }
            wg_streams[at] = sum;
        }
        workgroupBarrier();
        if (lid < streams) {
            let c = c0 + lid / 3u;
            if (c < classes) {
                var sum = 0.0;
                for (var q = 0u; q < 16u; q++) {
                    sum += wg_streams[lid * WG_SIZE + q];
                }
                let slot = select(n * classes + c, c, BATCH) * seg_len + pos;
                partials[(lid % 3u) * stride + slot] = sum;
            }
        }
        workgroupBarrier();
    }
}

// ∂value/∂p for one class of one pixel, before the mask.
fn dvalue_dp(ab: vec2<f32>, p: f32, g: f32) -> f32 {
    return ab.x * g + ab.y * select(1.0, 2.0 * p, SQUARED);
}

fn write_grad(at: u32, v: f32) {
    if (io.accumulate_grad != 0u) {
        add_grad(at, v);
    } else {
        store_grad(at, v);
    }
}

@compute @workgroup_size(256)
fn pixel_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = linear_workgroup(wid, nwg);
    let ch = px.chunk;
    if (tile_is_past(tile, ch.count)) {
        return;
    }
    let spatial = ch.spatial;
    let classes = ch.classes;
    for (var k = 0u; k < ITEMS; k++) {
        let i = tile_item(tile, k, lid);
        if (i >= ch.count) {
            break;
        }
        let pixel = ch.item0 + i;
        let n = pixel / spatial;
        let base = n * classes * spatial + pixel % spatial - ch.first_elem;
        // The coefficients of this pixel's class 0; class c's follow.
        let g0 = select(n * classes, 0u, BATCH);
        if (SOFTMAX) {
            let y = label_of(pixel);
            if (y < 0) {
                if (io.accumulate_grad == 0u) {
                    for (var c = 0u; c < classes; c++) {
                        store_grad(base + c * spatial, 0.0);
                    }
                }
                continue;
            }
            let m = class_max(base, spatial, classes);
            let lse = log_sum_exp_shifted(base, spatial, classes, m);
            var dot = 0.0;
            for (var c = 0u; c < classes; c++) {
                let p = exp(load_logits(base + c * spatial) - m - lse);
                dot += p * dvalue_dp(coef[g0 + c], p, select(0.0, 1.0, c == u32(y)));
            }
            for (var c = 0u; c < classes; c++) {
                let at = base + c * spatial;
                let p = exp(load_logits(at) - m - lse);
                write_grad(at, p * (dvalue_dp(coef[g0 + c], p, select(0.0, 1.0, c == u32(y))) - dot));
            }
        } else {
            for (var c = 0u; c < classes; c++) {
                let at = base + c * spatial;
                let g = bitcast<f32>(targets[at]);
                var v = 0.0;
                if (!ignored(g)) {
                    let x = load_logits(at);
                    let p = sigmoid(x);
                    v = dvalue_dp(coef[g0 + c], p, g) * p * sigmoid(-x);
                }
                write_grad(at, v);
            }
        }
    }
}

// The groups run after `pixel_stats` has flagged every input: NaN for all
// of them when any input held NaN or ±Inf.
fn write_value(at: u32, l: f32) {
    store_value(at, io.scale * l, flagged());
}

// The per-group stages' shared steps. `group_counted` clears a left-out
// background group (no contribution, no gradient) and says whether group k
// counts.
fn group_counted(k: u32) -> bool {
    if (k % gp.classes < gp.first_class) {
        coef[k] = vec2<f32>(0.0);
        contrib[k] = 0.0;
        return false;
    }
    return true;
}

// Group k's (I, P, G).
fn group_stats(k: u32) -> vec3<f32> {
    return vec3<f32>(stats[k], stats[gp.stat_groups + k], stats[2u * gp.stat_groups + k]);
}

// Group k's loss l with weight w and ∂l/∂(I, P) = dl: its element of a
// "none" value (unweighted), its contribution w·l to a reduced one, and the
// coefficients io.scale·r·dl, r its factor in the value (w/Σw for "mean",
// w for "sum", 1 for "none").
fn finish_group(k: u32, w: f32, l: f32, dl: vec2<f32>) {
    var r = w * gp.mean_scale;
    if (gp.write_elements != 0u) {
        r = 1.0;
        let c = k % gp.classes;
        let n = k / gp.classes;
        write_value(n * (gp.classes - gp.first_class) + c - gp.first_class, l);
    }
    contrib[k] = w * l;
    coef[k] = (io.scale * r) * dl;
}

// dice, jaccard, tversky: score = num / max(raw, eps), l = 1 − score or
// −log(max(score, eps)). A group whose denominator is 0 (possible only with
// eps = 0) scores 1 with no gradient: nothing predicted, nothing to find.
@compute @workgroup_size(64)
fn overlap_groups(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = linear_workgroup(wid, nwg) * 64u + lid;
    if (k >= gp.count || !group_counted(k)) {
        return;
    }
    let ipg = group_stats(k);
    let i = ipg.x;
    let p = ipg.y;
    let g = ipg.z;
    // num, raw, and the derivatives of num and raw by I and by P.
    var num: f32;
    var raw: f32;
    var dnum_di = 1.0;
    var draw_di: f32;
    var draw_dp = 1.0;
    switch gp.kind {
        case 0u: {
            num = 2.0 * i + gp.smooth_nr;
            raw = p + g + gp.smooth_dr;
            dnum_di = 2.0;
            draw_di = 0.0;
        }
        case 1u: {
            num = i + gp.smooth_nr;
            raw = p + g - i + gp.smooth_dr;
            draw_di = -1.0;
        }
        default: {
            num = i + gp.smooth_nr;
            raw = i + gp.alpha * (p - i) + gp.beta * (g - i) + gp.smooth_dr;
            draw_di = 1.0 - gp.alpha - gp.beta;
            draw_dp = gp.alpha;
        }
    }
    let den = max(raw, gp.eps);
    var score = 1.0;
    var ds = vec2<f32>(0.0);  // ∂score/∂(I, P)
    if (den > 0.0) {
        score = num / den;
        // max(raw, eps) passes the gradient where raw ≥ eps (as torch's clamp_min does).
        let through = select(0.0, score / den, raw >= gp.eps);
        ds = vec2<f32>(dnum_di / den - through * draw_di, -through * draw_dp);
    }
    var l = 1.0 - score;
    var dl_ds = -1.0;
    if (gp.log_loss != 0u) {
        // Validation keeps score > 0 or eps > 0; the floor guards f32 underflow.
        l = -log(max(max(score, gp.eps), 1.17549435e-38));
        dl_ds = select(0.0, -1.0 / score, score >= gp.eps && score > 0.0);
    }
    if (gp.empty_zero != 0u && g == 0.0) {
        l = 0.0;
        dl_ds = 0.0;
    }
    finish_group(k, class_weights[k % gp.classes], l, dl_ds * ds);
}

// Generalized dice's weight of a class with target sum G; `fill` stands in
// for the infinite weights of absent classes.
fn gdl_weight(g: f32, fill: f32) -> f32 {
    if (gp.kind == 2u) {
        return 1.0;
    }
    let w = select(1.0 / g, 1.0 / (g * g), gp.kind == 0u);
    // G = 0, or a soft G so small its weight overflows f32: infinite, replaced by the fill.
    if (g == 0.0 || w > 3.4e38) {
        return fill;
    }
    return w;
}

// generalized_dice, one invocation per image (one for the batch):
// score = (2·Σ_c w_c·I_c + smooth_nr) / (Σ_c w_c·(P_c + G_c) + smooth_dr),
// l = 1 − score, the weights held constant. A zero denominator (every weight
// 0 and smooth_dr 0) scores 1 with no gradient.
@compute @workgroup_size(64)
fn generalized_groups(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let u = linear_workgroup(wid, nwg) * 64u + lid;
    if (u >= gp.count) {
        return;
    }
    let classes = gp.classes;
    let k0 = u * classes;
    let gs = 2u * gp.stat_groups;
    // Infinite weights (absent classes) become the largest finite one.
    var fill = 0.0;
    for (var c = gp.first_class; c < classes; c++) {
        let g = stats[gs + k0 + c];
        if (g != 0.0) {
            fill = max(fill, gdl_weight(g, 0.0));
        }
    }
    var num = 0.0;
    var den = 0.0;
    for (var c = gp.first_class; c < classes; c++) {
        let k = k0 + c;
        let w = gdl_weight(stats[gs + k], fill);
        num += w * stats[k];
        den += w * (stats[gp.stat_groups + k] + stats[gs + k]);
    }
    let numer = 2.0 * num + gp.smooth_nr;
    let denom = den + gp.smooth_dr;
    var score = 1.0;
    if (denom > 0.0) {
        score = numer / denom;
    }
    let l = 1.0 - score;
    var r = gp.mean_scale;
    if (gp.write_elements != 0u) {
        r = 1.0;
        write_value(u, l);
    }
    contrib[u] = l;
    let s = io.scale * r;
    for (var c = 0u; c < classes; c++) {
        let k = k0 + c;
        var ab = vec2<f32>(0.0);
        if (c >= gp.first_class && denom > 0.0) {
            let w = gdl_weight(stats[gs + k], fill);
            ab = s * vec2<f32>(-2.0 * w / denom, score * w / denom);
        }
        coef[k] = ab;
    }
}

// mcc (one invocation per group): the soft confusion counts of the group
// from I, P, G and its pixel count M, each plus eps,
//     TP = I,  FP = P − I,  FN = G − I,  TN = M − P − G + I,
//     l = 1 − (TP·TN − FP·FN + s_nr) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN) + s_dr),
// and (a, b) = ∂value/∂(I, P) through all four counts:
//     ∂/∂I = ∂/∂TP − ∂/∂FP − ∂/∂FN + ∂/∂TN,   ∂/∂P = ∂/∂FP − ∂/∂TN.
// A perfect group (FP = FN = 0 exactly) scores 0 with no gradient. An empty
// or a full group with eps = 0 has a gradient of exactly 0 (SPEC.md): it is
// written as 0 rather than formed from partials that are large and cancel.
// The differences are clamped at 0 against f32 rounding (P − I is never
// negative in exact arithmetic).
@compute @workgroup_size(64)
fn mcc_groups(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = linear_workgroup(wid, nwg) * 64u + lid;
    if (k >= gp.count || !group_counted(k)) {
        return;
    }
    let ipg = group_stats(k);
    let i = ipg.x;
    let p = ipg.y;
    let g = ipg.z;
    let e = gp.eps;
    let tp = i + e;
    let f_p = max(p - i, 0.0) + e;
    let f_n = max(g - i, 0.0) + e;
    let pixels = stats[3u * gp.stat_groups];
    let tn = max(pixels - p - g + i, 0.0) + e;
    // The four factors under the root: predicted, actual, and their complements.
    let pred = tp + f_p;
    let act = tp + f_n;
    let not_act = tn + f_p;
    let not_pred = tn + f_n;
    let q = (pred * act) * (not_act * not_pred) + gp.smooth_dr;
    let den = sqrt(q);
    let score = (tp * tn - f_p * f_n + gp.smooth_nr) / den;
    var l = 1.0 - score;
    var ds = vec2<f32>(0.0);  // ∂l/∂(I, P)
    let perfect = f_p == 0.0 && f_n == 0.0;
    let degenerate = e == 0.0 && (g == 0.0 || g >= pixels);
    if (perfect) {
        l = 0.0;
    } else if (!degenerate) {
        // ∂l/∂X = −(∂num/∂X)/den + score·(∂q/∂X)/(2q)
        let half = score / (2.0 * q);
        let d_tp = -tn / den + half * (not_act * not_pred) * (pred + act);
        let d_fp = f_n / den + half * (act * not_pred) * (pred + not_act);
        let d_fn = f_p / den + half * (pred * not_act) * (act + not_pred);
        let d_tn = -tp / den + half * (pred * act) * (not_act + not_pred);
        ds = vec2<f32>(d_tp - d_fp - d_fn + d_tn, d_fp - d_tn);
    }
    finish_group(k, 1.0, l, ds);
}
