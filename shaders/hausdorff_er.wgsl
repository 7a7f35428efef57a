// hausdorff_er (SPEC.md): kornia's erosion-based Hausdorff loss. Per map
// (image n, class c), with p the softmax or sigmoid and g the target:
//
//     B_0 = (p − g)²;  for i < k:  D_i = w·cross_sum(B_i)   (zero padding, w = 1/5 or 1/7)
//                                  E'_i = D_i − ½ where D_i ≥ ½, else 0
//                                  E_i = (E'_i − lo_i)/(hi_i − lo_i) when hi_i > lo_i, else E'_i
//                                  B_{i+1} = E_i
//     out = Σ_i (i+1)^α·E_i
//
// The passes, each over one chunk of whole images (planned by
// losses/hausdorff_er.rs; the map buffers are the chunk's own):
//  1. `er_input`, per pixel: B_0 of every class into `work`; flags
//     non-finite inputs and bad labels.
//  2. for i = 0..=k, `er_forward` (a stencil pass, lib/stencil.wgsl) and
//     `er_range` (a workgroup per map). The stencil's input is B_0, or
//     E_{i−1} formed from the stored D_{i−1} and its range as each
//     neighbour is read. It stores D_i and each strip's min and max of E'_i, and adds
//     up E_{i−1}; `er_range` reduces them to (lo_i, hi_i) and the map's
//     share of the value. Step i = k only adds up E_{k−1} (and writes the
//     elements for "none").
//  3. for i = k−1 down to 0, the reverse pass: `er_back_stats`, a stencil
//     pass, forms as it reads each neighbour
//         ∂/∂D_{i+1} = [D_{i+1} ≥ ½]·(∂E/r + [E' = lo]·Σ∂E·(E−1)/(r·#lo) − [E' = hi]·Σ∂E·E/(r·#hi))
//     (r = hi − lo; just [D ≥ ½]·∂E when r = 0) from the stored ∂/∂E_{i+1},
//     D_{i+1} and the sums of erosion i+1, and writes
//         ∂/∂E_i = (i+1)^α·u + w·cross_sum(∂/∂D_{i+1})   (u = ∂value/∂out)
//     and per strip the four sums erosion i's own gradient through lo and
//     hi needs: Σ ∂E·(E − 1), Σ ∂E·E, and how many elements attain lo and
//     hi (ties share evenly, as torch.amax). The segmented sum
//     (reduce.wgsl) adds them per map. ∂/∂E ping-pongs between `work` and
//     `carry`.
//  4. `er_back_stats` once more as the input pass: ∂/∂B_0 = w·cross_sum(∂/∂D_0);
//     then `er_grad`, per pixel: ∂/∂p = 2(p − g)·∂/∂B_0 through the
//     softmax or the sigmoid.
//
// What is kept: every D_i (k floats per map pixel), and two working maps,
// `work` (B_0, then ∂/∂E) and `carry` (the running sum for "none", then
// ∂/∂E): (k + 2)·4 bytes per map pixel. The selections (the threshold's
// mask, which elements attain lo and hi) are recomputed from the stored
// D_i with the same f32 operations as the forward pass, so they agree
// bit for bit.
// Loops: the stencil's (lib/stencil.wgsl), 3·C per pixel in the pointwise
// passes (C ≤ 1,024), strips/256 per thread in `er_range`.

//#include "lib/stencil.wgsl"
//#include "lib/class_pixel.wgsl"

// Softmax over C classes and labels ("multiclass"), else a sigmoid per channel and dense targets.
override SOFTMAX: bool = true;

struct ErParams {
    geometry: StencilGeometry,
    chunk: Chunk,       // the chunk's pixels (pointwise passes over images)
    maps: u32,          // maps in the chunk
    map0: u32,          // global index of its first map
    step: u32,          // i
    steps: u32,         // k
    average: f32,       // w
    weight: f32,        // (i+1)^α: the weight of E_i
    prev_weight: f32,   // i^α: the weight of E_{i−1}
    upstream: f32,      // ∂value/∂out: 1/(N·C·|S|) for "mean", else 1 (times io.scale in the kernels)
    elements: u32,      // "none": write out[n, c, q]
    source_step: u32,   // the reverse pass: the erosion whose ∂/∂D the stencil forms
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> up: ErParams;
@group(0) @binding(1) var<uniform> io: LossIo;
//#elements logits @binding(2) read
// Class indices (i32, multiclass) or dense targets (f32, binary), read as bits.
@group(0) @binding(3) var<storage, read> targets: array<u32>;
// B_0, then ∂/∂E_i, then ∂/∂B_0: [maps, S].
@group(0) @binding(4) var<storage, read_write> work: array<f32>;
// The stencil's input map: B_0 or D_{i−1} (forward), ∂/∂D_{i+1} (reverse).
@group(0) @binding(5) var<storage, read> source: array<f32>;
// D_i: written by the forward pass, read by the reverse one.
@group(0) @binding(6) var<storage, read_write> dmap: array<f32>;
// D_{i+1}, for the reverse pass's ∂/∂D_{i+1}.
@group(0) @binding(15) var<storage, read> dnext: array<f32>;
// Per map, the reverse pass's four sums (a segmented sum of its partials
// writes them: [sum][map]), then per erosion and map its (lo, hi): one
// binding for both keeps er_forward within WebGPU's 8 storage buffers.
@group(0) @binding(7) var<storage, read_write> map_terms: array<f32>;
// Per tile: [sum][map][tile].
@group(0) @binding(8) var<storage, read_write> partials: array<f32>;
// The running Σ (i+1)^α·E_i ("none"), then ∂/∂D_i: [maps, S].
@group(0) @binding(9) var<storage, read_write> carry: array<f32>;
// Each map's share of the value (global maps).
@group(0) @binding(10) var<storage, read_write> contrib: array<f32>;
@group(0) @binding(12) var<storage, read_write> grad: array<f32>;
@group(0) @binding(13) var<storage, read_write> status: atomic<u32>;
@group(0) @binding(14) var<storage, read_write> value: array<f32>;

// Sum k of map `map` (er_back_stats' BACK_SUMS, summed over the strips).
fn back_sum(k: u32, map: u32) -> f32 {
    return map_terms[k * up.maps + map];
}

// Erosion i's (lo, hi) over map `map`, after the sums.
fn range_index(i: u32, map: u32) -> u32 {
    return BACK_SUMS * up.maps + 2u * (i * up.maps + map);
}

fn erosion_range(i: u32, map: u32) -> vec2<f32> {
    let at = range_index(i, map);
    return vec2<f32>(map_terms[at], map_terms[at + 1u]);
}

fn map_len() -> u32 {
    return up.geometry.depth * up.geometry.plane;
}

fn threshold(d: f32) -> f32 {
    return select(0.0, d - 0.5, d >= 0.5);
}

// E from D and its map's (lo, hi): the one formula both directions use.
fn eroded(d: f32, range: vec2<f32>) -> f32 {
    let e = threshold(d);
    if (range.y > range.x) {
        return (e - range.x) / (range.y - range.x);
    }
    return e;
}

// The stencil's input: B_0, E_{i−1} (forward, i ≥ 1) or ∂/∂D_{i+1} (reverse), by the pass's step.
var<private> input_kind: u32;
// What the input needs of the strip's map, read once per workgroup
// (load_map_terms): the range (lo, hi) of E_{i−1} or E_j, and for ∂/∂D_j
// the shares Σ∂E·(E−1)/(r·#lo) and Σ∂E·E/(r·#hi).
var<private> map_range: vec2<f32>;
var<private> lo_share: f32;
var<private> hi_share: f32;
const INPUT_RAW: u32 = 0u;
const INPUT_ERODED: u32 = 1u;
// ∂/∂D_j of erosion j = up.source_step, from ∂/∂E_j (source) and D_j (dnext).
const INPUT_GRAD: u32 = 2u;
// Nothing flows in (the last erosion's reverse step).
const INPUT_ZERO: u32 = 3u;

fn load_map_terms(map: u32) {
    if (input_kind == INPUT_ERODED) {
        map_range = erosion_range(up.step - 1u, map);
    } else if (input_kind == INPUT_GRAD) {
        map_range = erosion_range(up.source_step, map);
        let r = map_range.y - map_range.x;
        lo_share = back_sum(0u, map) / (r * back_sum(2u, map));
        hi_share = back_sum(1u, map) / (r * back_sum(3u, map));
    }
}

fn stencil_input(map: u32, q: u32) -> f32 {
    if (input_kind == INPUT_ZERO) {
        return 0.0;
    }
    let at = map * map_len() + q;
    let v = source[at];
    if (input_kind == INPUT_ERODED) {
        return eroded(v, map_range);
    }
    if (input_kind == INPUT_GRAD) {
        return grad_of_average(v, dnext[at]);
    }
    return v;
}

// ---- 1. B_0 ----

@compute @workgroup_size(256)
fn er_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_item(wid, nwg, lid);
    if (i >= up.chunk.count) {
        return;
    }
    let pixel = up.chunk.item0 + i;
    let px = class_pixel(up.chunk, pixel, true);
    let first_map = (pixel / up.chunk.spatial) * up.chunk.classes - up.map0;
    for (var c = 0u; c < up.chunk.classes; c++) {
        let pg = class_prob(up.chunk, px, c, true);
        let e = pg.x - pg.y;
        work[(first_map + c) * map_len() + pixel % up.chunk.spatial] = e * e;
    }
}

// ---- 2. The erosions ----

// Min and max of the workgroup, (lo, hi), and its sum, by the fixed trees of lib/workgroup.wgsl.
var<workgroup> wg_lo: array<f32, WG_SIZE>;
var<workgroup> wg_hi: array<f32, WG_SIZE>;

fn workgroup_range(lid: u32, lo: f32, hi: f32) -> vec2<f32> {
    wg_lo[lid] = lo;
    wg_hi[lid] = hi;
    workgroupBarrier();
    for (var stride = WG_SIZE / 2u; stride > 0u; stride = stride >> 1u) {
        if (lid < stride) {
            wg_lo[lid] = min(wg_lo[lid], wg_lo[lid + stride]);
            wg_hi[lid] = max(wg_hi[lid], wg_hi[lid + stride]);
        }
        workgroupBarrier();
    }
    let r = vec2<f32>(wg_lo[0], wg_hi[0]);
    workgroupBarrier();
    return r;
}

const BIG: f32 = 3.0e38;

// A pixel's part of `er_forward`'s per-strip sums.
struct ForwardAcc {
    lo: f32,     // min and max of E'_i
    hi: f32,
    prev: f32,   // Σ E_{i−1}
}

@compute @workgroup_size(256)
fn er_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let geo = up.geometry;
    let group = linear_workgroup(wid, nwg);
    if (group >= up.maps * geo.groups_per_map) {
        return;
    }
    input_kind = select(INPUT_RAW, INPUT_ERODED, up.step > 0u);
    let map = group / geo.groups_per_map;
    let g = group % geo.groups_per_map;
    load_map_terms(map);
    var acc = ForwardAcc(BIG, -BIG, 0.0);
    let strip = stencil_strip_len(geo, group);
    var tile = stencil_first_tile(geo, group);
    for (var t = 0u; t < strip; t++) {
        let px = stencil_pixel(geo, tile, lid);
        if (px.inside) {
            forward_pixel(tile.map, px, &acc);
        }
        tile = stencil_next_tile(geo, tile);
    }
    let r = workgroup_range(lid, acc.lo, acc.hi);
    let total = workgroup_sum(lid, acc.prev);
    if (lid == 0u) {
        let groups = geo.groups_per_map;
        partials[map * groups + g] = r.x;
        partials[(up.maps + map) * groups + g] = r.y;
        partials[(2u * up.maps + map) * groups + g] = total;
    }
}

// Erosion i at one pixel: D_i and E'_i (i < k), and E_{i−1} added to the
// value (i ≥ 1; the elements for "none").
fn forward_pixel(map: u32, px: StencilPixel, acc: ptr<function, ForwardAcc>) {
    let i = up.step;
    let at = map * map_len() + px.q;
    let out = (up.map0 + map) * map_len() + px.q - up.chunk.first_elem;
    if (i > 0u) {
        let prev = stencil_input(map, px.q);
        (*acc).prev += prev;
        if (up.elements != 0u) {
            var h = up.prev_weight * prev;
            if (i > 1u) {
                h += carry[at];
            }
            if (i < up.steps) {
                carry[at] = h;
            } else {
                store_value(out, io.scale * h, flagged());
            }
        }
    } else if (up.elements != 0u && up.steps == 0u) {
        store_value(out, 0.0, flagged());
    }
    if (i < up.steps) {
        let d = up.average * stencil_cross_sum(up.geometry, px);
        dmap[at] = d;
        let e = threshold(d);
        (*acc).lo = min((*acc).lo, e);
        (*acc).hi = max((*acc).hi, e);
    }
}

// One workgroup per map: its (lo_i, hi_i) from the tiles' ranges, and its
// share of the value, i^α·Σ E_{i−1}, added in.
@compute @workgroup_size(256)
fn er_range(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let map = linear_workgroup(wid, nwg);
    if (map >= up.maps) {
        return;
    }
    let tiles = up.geometry.groups_per_map;
    var lo = BIG;
    var hi = -BIG;
    var total = 0.0;
    for (var t = lid; t < tiles; t += WG_SIZE) {
        lo = min(lo, partials[map * tiles + t]);
        hi = max(hi, partials[(up.maps + map) * tiles + t]);
        total += partials[(2u * up.maps + map) * tiles + t];
    }
    let r = workgroup_range(lid, lo, hi);
    total = workgroup_sum(lid, total);
    if (lid == 0u) {
        let i = up.step;
        if (i < up.steps) {
            let at = range_index(i, map);
            map_terms[at] = r.x;
            map_terms[at + 1u] = r.y;
        }
        let g = up.map0 + map;
        if (i == 0u) {
            contrib[g] = 0.0;
        } else {
            contrib[g] += up.prev_weight * total;
        }
    }
}

// ---- 3. The reverse pass ----

// The four sums per map of `er_back_stats` (SUMS in losses/hausdorff_er.rs).
const BACK_SUMS: u32 = 4u;

// `up.step` = k marks the input pass: ∂/∂B_0 only.
@compute @workgroup_size(256)
fn er_back_stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let geo = up.geometry;
    let group = linear_workgroup(wid, nwg);
    if (group >= up.maps * geo.groups_per_map) {
        return;
    }
    // ∂/∂B_{i+1} = w·cross_sum(∂/∂D_{i+1}), each ∂/∂D formed as it is read.
    input_kind = select(INPUT_GRAD, INPUT_ZERO, up.step + 1u == up.steps);
    let map = group / geo.groups_per_map;
    let g = group % geo.groups_per_map;
    load_map_terms(map);
    var acc = vec4<f32>(0.0);
    let strip = stencil_strip_len(geo, group);
    var tile = stencil_first_tile(geo, group);
    for (var t = 0u; t < strip; t++) {
        let px = stencil_pixel(geo, tile, lid);
        if (px.inside) {
            acc += back_pixel(tile.map, px);
        }
        tile = stencil_next_tile(geo, tile);
    }
    if (up.step < up.steps) {
        for (var k = 0u; k < BACK_SUMS; k++) {
            let total = workgroup_sum(lid, acc[k]);
            if (lid == 0u) {
                partials[(k * up.maps + map) * geo.groups_per_map + g] = total;
            }
        }
    }
}

// ∂/∂E_i at one pixel into `work`, and its part of the four sums (or, in
// the input pass, ∂/∂B_0 alone).
fn back_pixel(map: u32, px: StencilPixel) -> vec4<f32> {
    let i = up.step;
    let input_pass = i == up.steps;
    let at = map * map_len() + px.q;
    let gb = up.average * stencil_cross_sum(up.geometry, px);
    if (input_pass) {
        work[at] = gb;
        return vec4<f32>(0.0);
    }
    let ge = io.scale * up.upstream * up.weight + gb;
    work[at] = ge;
    let range = erosion_range(i, map);
    let d = dmap[at];
    let e = eroded(d, range);
    let t = threshold(d);
    return vec4<f32>(ge * (e - 1.0), ge * e, select(0.0, 1.0, t == range.x), select(0.0, 1.0, t == range.y));
}

// ∂/∂D_j at a pixel from ∂/∂E_j there (`ge`), D_j (`d`), and the map's
// range and shares (load_map_terms):
//     [D_j ≥ ½]·(∂E/r + [E' = lo]·Σ∂E·(E−1)/(r·#lo) − [E' = hi]·Σ∂E·E/(r·#hi)),
// r = hi − lo (just [D_j ≥ ½]·∂E when r = 0).
fn grad_of_average(ge: f32, d: f32) -> f32 {
    if (d < 0.5) {
        return 0.0;
    }
    let r = map_range.y - map_range.x;
    if (r <= 0.0) {
        return ge;
    }
    let t = threshold(d);
    var g = ge / r;
    if (t == map_range.x) {
        g += lo_share;
    }
    if (t == map_range.y) {
        g -= hi_share;
    }
    return g;
}

// ---- 4. Through the softmax or the sigmoid ----

@compute @workgroup_size(256)
fn er_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_item(wid, nwg, lid);
    if (i >= up.chunk.count) {
        return;
    }
    let pixel = up.chunk.item0 + i;
    grad_pixel = pixel;
    class_backward(up.chunk, class_pixel(up.chunk, pixel, false));
}

// The pixel `er_grad` takes, for class_dp.
var<private> grad_pixel: u32;

// ∂value/∂p_c = 2(p_c − g_c)·∂/∂B_0 (nothing when k = 0).
fn class_dp(px: ClassPixel, c: u32) -> f32 {
    if (up.steps == 0u) {
        return 0.0;
    }
    let ch = up.chunk;
    let pg = class_prob(ch, px, c, false);
    let map = (grad_pixel / ch.spatial) * ch.classes - up.map0 + c;
    return 2.0 * (pg.x - pg.y) * work[map * map_len() + grad_pixel % ch.spatial];
}
