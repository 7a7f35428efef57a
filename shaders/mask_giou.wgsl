// `mask_giou`: generalized IoU of M instance masks of H×W (SPEC.md), with the
// enclosing region C the lattice points in the convex hull (or bounding box)
// of the support S = {σ(x) ≥ τ} ∪ {g = 1}. The passes, in one compute pass:
//
//   clear_extents  zero the per-row extents
//   (extents also flags non-finite logits and targets in `status`, and the
//   value is then NaN: lib/finite.wgsl)
//   extents        per tile of 1,024 pixels of one instance: the leftmost and
//                  rightmost support pixel of each row, by integer atomic max
//                  (order-free, so deterministic) in workgroup memory, then
//                  once per (tile, row) into the global extents
//   enclose        one workgroup per instance: C's column interval in every
//                  row, and #C (see below)
//   sums           per tile: partial sums of I = Σpg, U = Σ(p + g − pg) and
//                  O = Σ_{q∉C} p, then the segmented sum (reduce.wgsl)
//   instance       per instance: the loss and the three coefficients of its
//                  gradient
//   gradient       per pixel: ∂l/∂x with membership in C held constant
//
// The hull. C is convex, so each row holds an interval of it, and because the
// points of a row lie between that row's extents, the hull's left boundary is
// the lower convex chain of the points (r, leftmost_r) and its right boundary
// the upper chain of (r, rightmost_r), over rows r in order (already sorted:
// a monotone chain needs no sort). Two threads build the two chains in
// place in the extents buffer (a chain never holds more points than have
// been read); then every thread, for its rows, finds the chain segment
// holding the row by binary search and rounds the boundary inward with exact
// integer division. Cross products and interpolations stay below 2^31 since
// the host ensures H ≤ 8,192 and W ≤ 65,536. Collinear points are dropped from
// the chains, which changes no boundary; a hull of one point or of a segment
// comes out as the lattice points on it.
//
// Loop bounds (lavapipe cuts an invocation after 65,535 iterations): a chain
// thread reads each of the H rows once and pops each point at most once
// (≤ 2H), plus ⌈H/64⌉ rows of ~30 iterations each; H ≤ 8,192 (host-checked)
// keeps it near 20,000.

//#include "lib/numerics.wgsl"
//#include "lib/workgroup.wgsl"
//#include "lib/loss_io.wgsl"
//#include "lib/finite.wgsl"

struct Params {
    instances: u32,      // M
    height: u32,         // H
    width: u32,          // W
    pixels: u32,         // H·W
    tiles: u32,          // tiles per instance
    tile0: u32,          // global index (m·tiles + t) of the chunk's first tile
    count: u32,          // tiles in the chunk
    first_elem: u32,     // element at which the chunk's logit-shaped bindings start
    support_logit: f32,  // σ(x) ≥ τ  ⟺  x ≥ support_logit (exact for f32 x)
    eps: f32,
    hull: u32,           // 1 convex hull, 0 bounding box
    write_elements: u32, // reduction "none": one value per instance
    inv_denom: f32,      // 1/M for the mean, else 1
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> io: LossIo;
//#elements logits @binding(2) read
@group(0) @binding(3) var<storage, read> targets: array<f32>;
// Per (instance, row), two words: W − leftmost and rightmost + 1 (0: no
// support in the row); `enclose` then reuses them for the chains.
@group(0) @binding(4) var<storage, read_write> extents: array<atomic<u32>>;
// Per (instance, row): C's columns [lo, hi] (empty when lo > hi).
@group(0) @binding(5) var<storage, read_write> rows: array<vec2<i32>>;
@group(0) @binding(6) var<storage, read_write> counts: array<i32>;
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;
@group(0) @binding(8) var<storage, read> sums: array<f32>;
@group(0) @binding(9) var<storage, read_write> coef: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> value: array<f32>;
@group(0) @binding(11) var<storage, read_write> losses: array<f32>;
@group(0) @binding(12) var<storage, read_write> grad: array<f32>;
@group(0) @binding(13) var<storage, read_write> status: atomic<u32>;

const TILE: u32 = WG_SIZE * ITEMS;
const EMPTY: u32 = 0xffffffffu;

@compute @workgroup_size(256)
fn clear_extents(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_item(wid, nwg, lid);
    if (i < 2u * params.instances * params.height) {
        atomicStore(&extents[i], 0u);
    }
}

fn in_support(x: f32, y: f32) -> bool {
    return x >= params.support_logit || y == 1.0;
}

var<workgroup> tile_left: array<atomic<u32>, TILE>;
var<workgroup> tile_right: array<atomic<u32>, TILE>;

// The chunk's tile `local`: its instance, and the first and one-past-last
// pixel it covers within that instance's H·W.
fn tile_of(local: u32) -> vec3<u32> {
    let g = params.tile0 + local;
    let begin = (g % params.tiles) * TILE;
    return vec3<u32>(g / params.tiles, begin, min(begin + TILE, params.pixels));
}

@compute @workgroup_size(256)
fn extents_pass(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = linear_workgroup(wid, nwg);
    if (local >= params.count) {
        return;
    }
    let t = tile_of(local);
    let m = t.x;
    let begin = t.y;
    let end = t.z;
    let w = params.width;
    let row0 = begin / w;
    let nrows = (end - 1u) / w - row0 + 1u;
    for (var k = lid; k < nrows; k += WG_SIZE) {
        atomicStore(&tile_left[k], 0u);
        atomicStore(&tile_right[k], 0u);
    }
    workgroupBarrier();
    for (var k = 0u; k < ITEMS; k++) {
        let i = begin + k * WG_SIZE + lid;
        if (i < end) {
            let e = m * params.pixels + i - params.first_elem;
            // The first pass over the inputs flags non-finite ones (lib/finite.wgsl).
            let x = load_logits(e);
            let y = targets[e];
            _ = flag_non_finite(x);
            _ = flag_non_finite(y);
            if (in_support(x, y)) {
                let c = i % w;
                let r = i / w - row0;
                atomicMax(&tile_left[r], w - c);
                atomicMax(&tile_right[r], c + 1u);
            }
        }
    }
    workgroupBarrier();
    for (var k = lid; k < nrows; k += WG_SIZE) {
        let left = atomicLoad(&tile_left[k]);
        if (left != 0u) {
            let at = 2u * (m * params.height + row0 + k);
            atomicMax(&extents[at], left);
            atomicMax(&extents[at + 1u], atomicLoad(&tile_right[k]));
        }
    }
}

// ---- enclose: one workgroup per instance ----

const ENCLOSE_WG: u32 = 64u;

var<workgroup> row_min: atomic<u32>;
var<workgroup> row_max: atomic<u32>;
var<workgroup> col_min: atomic<u32>;
var<workgroup> col_max: atomic<u32>;
var<workgroup> enclosed: atomic<u32>;
var<workgroup> chain_len: array<u32, 2>;

// Chain points are packed row << 16 | column (H ≤ 8,192, W ≤ 65,536).
fn chain_point(m: u32, side: u32, k: u32) -> vec2<i32> {
    let v = atomicLoad(&extents[2u * (m * params.height + k) + side]);
    return vec2<i32>(i32(v >> 16u), i32(v & 0xffffu));
}

// (a − o) × (b − o) with rows as the first axis: > 0 for a left turn.
fn turn(o: vec2<i32>, a: vec2<i32>, b: vec2<i32>) -> i32 {
    return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);
}

// ⌊a/b⌋ for b > 0, dividing unsigned magnitudes: naga writes a signed
// `%` or `/` as GLSL's, undefined there for a negative operand (on Mesa's
// GL the remainder test this once made gave wrong hulls; gpu/translation.rs
// now refuses signed division in every kernel).
fn floor_div(a: i32, b: i32) -> i32 {
    let d = u32(b);
    if (a >= 0) {
        return i32(u32(a) / d);
    }
    return -i32((u32(-a) + d - 1u) / d);
}

// Builds, in place in the extents' `side` words, side 0: the lower chain of
// (r, leftmost_r) (keeps left turns), side 1: the upper chain of
// (r, rightmost_r) (keeps right turns). Returns the number of points.
fn build_chain(m: u32, side: u32, r0: u32, r1: u32) -> u32 {
    var k = 0u;
    for (var r = r0; r <= r1; r++) {
        let at = 2u * (m * params.height + r) + side;
        let word = atomicLoad(&extents[at]);
        if (word == 0u) {
            continue;
        }
        let col = select(word - 1u, params.width - word, side == 0u);
        let p = vec2<i32>(i32(r), i32(col));
        loop {
            if (k < 2u) {
                break;
            }
            let t = turn(chain_point(m, side, k - 2u), chain_point(m, side, k - 1u), p);
            if ((side == 0u && t > 0) || (side == 1u && t < 0)) {
                break;
            }
            k -= 1u;
        }
        // k ≤ the number of rows read before this one, so the slot written
        // is this row's or an earlier row's, already read.
        atomicStore(&extents[2u * (m * params.height + k) + side], (r << 16u) | col);
        k += 1u;
    }
    return k;
}

// The chain's boundary column at row r, rounded inward: up on the left
// (side 0), down on the right (side 1). The chain spans r.
fn boundary(m: u32, side: u32, n: u32, r: i32) -> i32 {
    // The last point at or above row r.
    var lo = 0u;
    var hi = n - 1u;
    while (lo < hi) {
        let mid = (lo + hi + 1u) / 2u;
        if (chain_point(m, side, mid).x <= r) {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    let a = chain_point(m, side, lo);
    if (a.x == r) {
        return a.y;
    }
    let b = chain_point(m, side, lo + 1u);
    let num = (b.y - a.y) * (r - a.x);
    let den = b.x - a.x;
    if (side == 0u) {
        return a.y - floor_div(-num, den);
    }
    return a.y + floor_div(num, den);
}

@compute @workgroup_size(64)
fn enclose(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = linear_workgroup(wid, nwg);
    if (m >= params.instances) {
        return;
    }
    let h = params.height;
    if (lid == 0u) {
        atomicStore(&row_min, EMPTY);
        atomicStore(&row_max, 0u);
        atomicStore(&col_min, EMPTY);
        atomicStore(&col_max, 0u);
        atomicStore(&enclosed, 0u);
    }
    workgroupBarrier();
    for (var r = lid; r < h; r += ENCLOSE_WG) {
        let at = 2u * (m * h + r);
        let left = atomicLoad(&extents[at]);
        if (left != 0u) {
            atomicMin(&row_min, r);
            atomicMax(&row_max, r);
            atomicMin(&col_min, params.width - left);
            atomicMax(&col_max, atomicLoad(&extents[at + 1u]) - 1u);
        }
    }
    // Every read of the extents above comes before the chains overwrite them.
    storageBarrier();
    workgroupBarrier();
    let r0 = atomicLoad(&row_min);
    let r1 = atomicLoad(&row_max);
    let c0 = i32(atomicLoad(&col_min));
    let c1 = i32(atomicLoad(&col_max));
    let empty = r0 == EMPTY;
    let hull = params.hull != 0u && !empty;
    if (hull && lid < 2u) {
        chain_len[lid] = build_chain(m, lid, r0, r1);
    }
    // The chains live in storage memory: make them visible to the workgroup.
    storageBarrier();
    workgroupBarrier();
    for (var r = lid; r < h; r += ENCLOSE_WG) {
        var span = vec2<i32>(1, 0);
        if (!empty && r >= r0 && r <= r1) {
            if (hull) {
                span = vec2<i32>(boundary(m, 0u, chain_len[0], i32(r)), boundary(m, 1u, chain_len[1], i32(r)));
            } else {
                span = vec2<i32>(c0, c1);
            }
        }
        rows[m * h + r] = span;
        if (span.y >= span.x) {
            atomicAdd(&enclosed, u32(span.y - span.x + 1));
        }
    }
    workgroupBarrier();
    if (lid == 0u) {
        counts[m] = i32(atomicLoad(&enclosed));
    }
}

// ---- per-pixel passes ----

fn outside(m: u32, i: u32) -> bool {
    let span = rows[m * params.height + i / params.width];
    let c = i32(i % params.width);
    return c < span.x || c > span.y;
}

@compute @workgroup_size(256)
fn sums_pass(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = linear_workgroup(wid, nwg);
    if (local >= params.count) {
        return;
    }
    let g = params.tile0 + local;  // this tile's partial-sum slot
    let t = tile_of(local);
    let m = t.x;
    let begin = t.y;
    let end = t.z;
    var inter = 0.0;
    var uni = 0.0;
    var out = 0.0;
    for (var k = 0u; k < ITEMS; k++) {
        let i = begin + k * WG_SIZE + lid;
        if (i < end) {
            let e = m * params.pixels + i - params.first_elem;
            let p = sigmoid(load_logits(e));
            let y = targets[e];
            inter += p * y;
            uni += p + y - p * y;
            if (outside(m, i)) {
                out += p;
            }
        }
    }
    // Segment (statistic, instance) holds that instance's tiles: [3][M][tiles].
    let stride = params.instances * params.tiles;
    let ti = workgroup_sum(lid, inter);
    let tu = workgroup_sum(lid, uni);
    let to = workgroup_sum(lid, out);
    if (lid == 0u) {
        partials[g] = ti;
        partials[stride + g] = tu;
        partials[2u * stride + g] = to;
    }
}

// l = 1 − I/(U + ε) + (C~ − U)/(C~ + ε),  C~ = #C + O.  With a = U + ε, c = C~ + ε:
//   ∂l/∂p = k0 + k1·g + k2·[q ∉ C],
//   k0 = I/a² − 1/c,   k1 = −1/a − I/a² + 1/c,   k2 = a/c²
// (I/a² as (I/a)/a and a/c² as (a/c)/c: both quotients are ≤ 1, so nothing
// overflows for any ε the host accepts).
@compute @workgroup_size(64)
fn instance(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m = linear_workgroup(wid, nwg) * 64u + lid;
    if (m >= params.instances) {
        return;
    }
    let n = params.instances;
    let inter = sums[m];
    let uni = sums[n + m];
    let enclosing = f32(counts[m]) + sums[2u * n + m];
    let a = uni + params.eps;
    let c = enclosing + params.eps;
    let l = 1.0 - inter / a + (enclosing - uni) / c;
    if (params.write_elements != 0u) {
        store_value(m, io.scale * l, flagged());
    } else {
        losses[m] = l;
    }
    let s = io.scale * params.inv_denom;
    let ia2 = (inter / a) / a;
    coef[m] = s * vec4<f32>(ia2 - 1.0 / c, -1.0 / a - ia2 + 1.0 / c, (a / c) / c, 0.0);
}

@compute @workgroup_size(256)
fn gradient(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let local = linear_workgroup(wid, nwg);
    if (local >= params.count) {
        return;
    }
    let t = tile_of(local);
    let m = t.x;
    let begin = t.y;
    let end = t.z;
    let k = coef[m];
    for (var j = 0u; j < ITEMS; j++) {
        let i = begin + j * WG_SIZE + lid;
        if (i < end) {
            let e = m * params.pixels + i - params.first_elem;
            let x = load_logits(e);
            let y = targets[e];
            let d = k.x + k.y * y + select(0.0, k.z, outside(m, i));
            let v = d * sigmoid(x) * sigmoid(-x);
            if (io.accumulate_grad != 0u) { grad[e] += v; } else { grad[e] = v; }
        }
    }
}
