// cl_dice (SPEC.md): MONAI's soft skeleton and centreline Dice, with the
// Dice term for α < 1. Per kept (image, channel) map, for the prediction p
// and the target g alike:
//
//     J_0 = p;  J_{j+1} = erode(J_j)  (cross minimum, absent padding)
//     δ_j = relu(J_j − dilate(J_{j+1}))  (box maximum: open(J_j) = dilate(erode(J_j)))
//     S = δ_0;  S ← S + relu(δ_j − S·δ_j) for j = 1..K
//
// The passes, over one chunk of whole images (losses/cl_dice.rs); the
// chunk's 2M maps are the M prediction maps, then the M target maps:
//  1. `cl_input`, per pixel: p and g of every kept channel into level 0.
//  2. `cl_skeleton`, a stencil pass (lib/stencil.wgsl) per level L = 0..K+1
//     over J_L: J_{L+1} and which pixel each minimum took (L ≤ K), and
//     δ_{L−1} and which pixel each maximum took (L ≥ 1).
//  3. `cl_stats`, per map tile: Σ Sp·g, Σ Sp, Σ Sg·p, Σ Sg, Σ p·g, Σ p, Σ g,
//     the skeleton formed from the stored δ; then the segmented sum.
//  4. `cl_groups`, per image: tprec, tsens, clDice, Dice, the value's share,
//     and the coefficients of the gradient: ∂/∂Sp = u_A·g + u_B, and
//     ∂/∂p directly u_C·Sg + a·g + b (tsens and Dice).
//  5. `cl_chain`, per prediction pixel: back through the updates of S to
//     h_j = ∂/∂δ_j where δ_j > 0 (else 0: relu'(0) = 0), over δ_j.
//  6. `cl_back`, a stencil pass over the prediction's maps, for L = K+1 down to 0:
//         ∂/∂J_L = h_L + Σ_{q: erosion of q took this pixel} ∂/∂J_{L+1}[q]
//                      − Σ_{q: opening of q took this pixel} h_{L−1}[q],
//     a gather through the stored selections, written over J_L; level 0
//     adds the direct terms.
//  7. `cl_grad`, per pixel: through the softmax or the sigmoid.
//
// Loops: the stencil's; K + 1 per pixel to form a skeleton (K ≤ 63), 8 of
// them per thread in `cl_stats`; 34 neighbours per pixel in `cl_back`;
// C' per image in `cl_groups`, 3·C per pixel in the pointwise passes.

//#include "lib/stencil.wgsl"
//#include "lib/class_pixel.wgsl"

// Softmax over C classes and labels ("multiclass"), else a sigmoid per channel and dense targets.
override SOFTMAX: bool = true;

// K + 1 at most (MAX_ITERATIONS + 1 in losses/cl_dice.rs).
const MAX_LEVELS: u32 = 64u;
const STATS_ITEMS: u32 = 8u;
const STATS_TILE: u32 = WG_SIZE * STATS_ITEMS;
const SUMS: u32 = 7u;

struct ClParams {
    geometry: StencilGeometry,
    chunk: Chunk,        // the chunk's pixels (pointwise passes over images)
    maps: u32,           // M: prediction maps in the chunk (images · C')
    first: u32,          // first kept channel
    kept: u32,           // C'
    image0: u32,         // the chunk's first image
    images: u32,
    iterations: u32,     // K
    level: u32,          // L of this dispatch
    tiles: u32,          // stats tiles per map
    elements: u32,       // "none": write value[n]
    smooth_nr: f32,
    smooth_dr: f32,
    smooth_hm: f32,      // smooth, in the harmonic mean (a WGSL keyword)
    alpha: f32,
    per_image: f32,      // ∂value/∂(an image's term): 1/N for "mean", else 1
    dice_weight: f32,    // 1/C' ("mean", "none") or 1 ("sum")
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> up: ClParams;
@group(0) @binding(1) var<uniform> io: LossIo;
//#elements logits @binding(2) read
@group(0) @binding(3) var<storage, read> targets: array<u32>;
// J_L of the prediction's maps: [K+2][M][S]; the reverse pass writes ∂/∂J_L over them.
@group(0) @binding(4) var<storage, read_write> levels: array<f32>;
// δ_j of the prediction's maps: [K+1][M][S]; `cl_chain` writes h_j over them.
@group(0) @binding(5) var<storage, read_write> deltas: array<f32>;
// J_L and δ_j of the target's maps, apart so that each buffer is half the size.
@group(0) @binding(14) var<storage, read_write> target_levels: array<f32>;
@group(0) @binding(15) var<storage, read_write> target_deltas: array<f32>;
// [K+1][M][S]: bits 0–7 the cross index J_{j+1} took, bits 8–15 the box index dilate(J_{j+1}) took.
@group(0) @binding(6) var<storage, read_write> selections: array<u32>;
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;
@group(0) @binding(8) var<storage, read> sums: array<f32>;
// Per prediction map: (u_A, u_B, u_C, 0), (a, b, 0, 0), scaled by io.scale.
@group(0) @binding(9) var<storage, read_write> coef: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> contrib: array<f32>;
@group(0) @binding(11) var<storage, read_write> grad: array<f32>;
@group(0) @binding(12) var<storage, read_write> status: atomic<u32>;
@group(0) @binding(13) var<storage, read_write> value: array<f32>;

fn map_len() -> u32 {
    return up.geometry.depth * up.geometry.plane;
}

// Where level L of prediction map `map` (< M) keeps pixel q, in `levels`
// or `deltas`; the target's map M + m keeps it at m's place in their twins.
fn level_at(level: u32, map: u32, q: u32) -> u32 {
    return (level * up.maps + map) * map_len() + q;
}

fn get_level(level: u32, map: u32, q: u32) -> f32 {
    if (map < up.maps) {
        return levels[level_at(level, map, q)];
    }
    return target_levels[level_at(level, map - up.maps, q)];
}

fn set_level(level: u32, map: u32, q: u32, v: f32) {
    if (map < up.maps) {
        levels[level_at(level, map, q)] = v;
    } else {
        target_levels[level_at(level, map - up.maps, q)] = v;
    }
}

fn get_delta(level: u32, map: u32, q: u32) -> f32 {
    if (map < up.maps) {
        return deltas[level_at(level, map, q)];
    }
    return target_deltas[level_at(level, map - up.maps, q)];
}

fn set_delta(level: u32, map: u32, q: u32, v: f32) {
    if (map < up.maps) {
        deltas[level_at(level, map, q)] = v;
    } else {
        target_deltas[level_at(level, map - up.maps, q)] = v;
    }
}

fn selection_at(j: u32, map: u32, q: u32) -> u32 {
    return (j * up.maps + map) * map_len() + q;
}

// S at pixel q of `map`, from its stored δ_0..δ_K.
fn skeleton_at(map: u32, q: u32) -> f32 {
    var s = get_delta(0u, map, q);
    for (var j = 1u; j <= up.iterations; j++) {
        let d = get_delta(j, map, q);
        s += max(d - s * d, 0.0);
    }
    return s;
}

// ---- 1. Level 0 ----

@compute @workgroup_size(256)
fn cl_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_item(wid, nwg, lid);
    let ch = up.chunk;
    if (i >= ch.count) {
        return;
    }
    let pixel = ch.item0 + i;
    let px = class_pixel(ch, pixel, true);
    let first_map = (pixel / ch.spatial - up.image0) * up.kept;
    let q = pixel % ch.spatial;
    for (var c = 0u; c < ch.classes; c++) {
        // Every channel is read, so that every input is checked.
        let pg = class_prob(ch, px, c, true);
        if (c >= up.first) {
            let map = first_map + c - up.first;
            set_level(0u, map, q, pg.x);
            set_level(0u, up.maps + map, q, pg.y);
        }
    }
}

// ---- 2. The skeletons ----

fn stencil_input(map: u32, q: u32) -> f32 {
    return get_level(up.level, map, q);
}

@compute @workgroup_size(256)
fn cl_skeleton(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let geo = up.geometry;
    let group = linear_workgroup(wid, nwg);
    if (group >= 2u * up.maps * geo.groups_per_map) {
        return;
    }
    let strip = stencil_strip_len(geo, group);
    var tile = stencil_first_tile(geo, group);
    for (var t = 0u; t < strip; t++) {
        let px = stencil_pixel(geo, tile, lid);
        if (px.inside) {
            skeleton_pixel(geo, tile.map, px);
        }
        tile = stencil_next_tile(geo, tile);
    }
}

// Level L's work at one pixel: J_{L+1} and δ_{L−1}, and their selections.
fn skeleton_pixel(geo: StencilGeometry, map: u32, px: StencilPixel) {
    let level = up.level;
    let prediction = map < up.maps;
    if (level <= up.iterations) {
        let e = stencil_cross_argmin(geo, px);
        let o = stencil_cross_offset(e);
        set_level(level + 1u, map, px.q, stencil_at(geo, px, o));
        if (prediction) {
            selections[selection_at(level, map, px.q)] = e;
        }
    }
    if (level >= 1u) {
        let k = stencil_box_argmax(geo, px);
        let o = stencil_box_offset(k);
        let centre = get_level(level - 1u, map, px.q);
        set_delta(level - 1u, map, px.q, max(centre - stencil_at(geo, px, o), 0.0));
        if (prediction) {
            selections[selection_at(level - 1u, map, px.q)] |= k << 8u;
        }
    }
}

// ---- 3, 4. The sums and the per-image stage ----

@compute @workgroup_size(256)
fn cl_stats(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = linear_workgroup(wid, nwg);
    if (group >= up.maps * up.tiles) {
        return;
    }
    let map = group / up.tiles;
    let t = group % up.tiles;
    let len = map_len();
    var acc = array<f32, SUMS>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (var k = 0u; k < STATS_ITEMS; k++) {
        let q = t * STATS_TILE + k * WG_SIZE + lid;
        if (q < len) {
            let sp = skeleton_at(map, q);
            let sg = skeleton_at(up.maps + map, q);
            let p = get_level(0u, map, q);
            let g = get_level(0u, up.maps + map, q);
            acc[0] += sp * g;
            acc[1] += sp;
            acc[2] += sg * p;
            acc[3] += sg;
            acc[4] += p * g;
            acc[5] += p;
            acc[6] += g;
        }
    }
    for (var s = 0u; s < SUMS; s++) {
        let total = workgroup_sum(lid, acc[s]);
        if (lid == 0u) {
            partials[(s * up.maps + map) * up.tiles + t] = total;
        }
    }
}

fn map_sum(s: u32, map: u32) -> f32 {
    return sums[s * up.maps + map];
}

@compute @workgroup_size(64)
fn cl_groups(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = linear_workgroup(wid, nwg) * 64u + lid;
    if (n >= up.images) {
        return;
    }
    let first_map = n * up.kept;
    var a = 0.0;
    var b = 0.0;
    var cs = 0.0;
    var dg = 0.0;
    for (var c = 0u; c < up.kept; c++) {
        a += map_sum(0u, first_map + c);
        b += map_sum(1u, first_map + c);
        cs += map_sum(2u, first_map + c);
        dg += map_sum(3u, first_map + c);
    }
    let nr = up.smooth_nr;
    let dr = up.smooth_dr;
    let tprec = (a + nr) / (b + dr);
    let tsens = (cs + nr) / (dg + dr);
    let h = tprec + tsens + up.smooth_hm;
    let cl = 1.0 - 2.0 * tprec * tsens / h;
    // ∂cl/∂tprec and ∂cl/∂tsens, then through tprec = (A + nr)/(B + dr) and tsens = (Cs + nr)/(Dg + dr).
    let gcl = io.scale * up.per_image * up.alpha;
    let dcl_a = -2.0 * tsens * (tsens + up.smooth_hm) / (h * h);
    let dcl_b = -2.0 * tprec * (tprec + up.smooth_hm) / (h * h);
    let u = vec4<f32>(gcl * dcl_a / (b + dr), -gcl * dcl_a * tprec / (b + dr), gcl * dcl_b / (dg + dr), 0.0);
    let gd = io.scale * up.per_image * (1.0 - up.alpha) * up.dice_weight;
    var dice = 0.0;
    for (var c = 0u; c < up.kept; c++) {
        let map = first_map + c;
        let inter = map_sum(4u, map);
        let den = map_sum(5u, map) + map_sum(6u, map) + dr;
        dice += 1.0 - (2.0 * inter + nr) / den;
        coef[2u * map] = u;
        coef[2u * map + 1u] = vec4<f32>(-2.0 * gd / den, gd * (2.0 * inter + nr) / (den * den), 0.0, 0.0);
    }
    let v = up.alpha * cl + (1.0 - up.alpha) * up.dice_weight * dice;
    if (up.elements != 0u) {
        store_value(up.image0 + n, io.scale * v, flagged());
    } else {
        contrib[up.image0 + n] = v;
    }
}

// ---- 5, 6. The reverse pass ----

@compute @workgroup_size(256)
fn cl_chain(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_item(wid, nwg, lid);
    let len = map_len();
    if (i >= up.maps * len) {
        return;
    }
    let map = i / len;
    let q = i % len;
    let k = up.iterations;
    // S_j after each update, forward again from the stored δ.
    var partial: array<f32, MAX_LEVELS>;
    partial[0] = get_delta(0u, map, q);
    for (var j = 1u; j <= k; j++) {
        let d = get_delta(j, map, q);
        partial[j] = partial[j - 1u] + max(d - partial[j - 1u] * d, 0.0);
    }
    let u = coef[2u * map];
    var gs = u.x * get_level(0u, up.maps + map, q) + u.y;
    for (var j = k; j >= 1u; j--) {
        let at = level_at(j, map, q);
        let d = deltas[at];
        let s = partial[j - 1u];
        var h = 0.0;
        if (d - s * d > 0.0) {
            h = gs * (1.0 - s);
            gs *= 1.0 - d;
        }
        deltas[at] = h;
    }
    let at0 = level_at(0u, map, q);
    deltas[at0] = select(0.0, gs, deltas[at0] > 0.0);
}

// A stencil pass over the prediction's maps, so that each pixel's
// neighbours are offsets from it (lib/stencil.wgsl).
@compute @workgroup_size(256)
fn cl_back(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let geo = up.geometry;
    let group = linear_workgroup(wid, nwg);
    if (group >= up.maps * geo.groups_per_map) {
        return;
    }
    let strip = stencil_strip_len(geo, group);
    var tile = stencil_first_tile(geo, group);
    for (var t = 0u; t < strip; t++) {
        let px = stencil_pixel(geo, tile, lid);
        if (px.inside) {
            back_pixel(geo, px);
        }
        tile = stencil_next_tile(geo, tile);
    }
}

// ∂/∂J_L at one pixel, written over J_L.
fn back_pixel(geo: StencilGeometry, px: StencilPixel) {
    let level = up.level;
    let map = px.map;
    var g = 0.0;
    if (level <= up.iterations) {
        // δ_L's own part, and the erosions J_{L+1}[q] that took this pixel.
        g = get_delta(level, map, px.q);
        for (var e = 0u; e < 7u; e++) {
            if (e == 1u) {
                e = stencil_cross_first(geo);
            }
            let q = stencil_neighbour(geo, px, -stencil_cross_offset(e));
            if (q >= 0 && (selections[selection_at(level, map, u32(q))] & 0xFFu) == e) {
                g += get_level(level + 1u, map, u32(q));
            }
        }
    }
    if (level >= 1u) {
        // The openings of δ_{L−1} that took this pixel of J_L.
        let span = stencil_box_span(geo);
        for (var k = span.x; k < span.y; k++) {
            let q = stencil_neighbour(geo, px, -stencil_box_offset(k));
            if (q >= 0 && ((selections[selection_at(level - 1u, map, u32(q))] >> 8u) & 0xFFu) == k) {
                g -= get_delta(level - 1u, map, u32(q));
            }
        }
    }
    if (level == 0u) {
        // Directly: tsens through Σ Sg·p, and Dice.
        let u = coef[2u * map];
        let dice = coef[2u * map + 1u];
        g += u.z * skeleton_at(up.maps + map, px.q) + dice.x * get_level(0u, up.maps + map, px.q) + dice.y;
    }
    set_level(level, map, px.q, g);
}

// ---- 7. Through the softmax or the sigmoid ----

var<private> grad_pixel: u32;

// ∂value/∂p_c: level 0 of the kept channels after `cl_back`.
fn class_dp(px: ClassPixel, c: u32) -> f32 {
    if (c < up.first) {
        return 0.0;
    }
    let ch = up.chunk;
    let map = (grad_pixel / ch.spatial - up.image0) * up.kept + c - up.first;
    return get_level(0u, map, grad_pixel % ch.spatial);
}

@compute @workgroup_size(256)
fn cl_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_item(wid, nwg, lid);
    if (i >= up.chunk.count) {
        return;
    }
    grad_pixel = up.chunk.item0 + i;
    class_backward(up.chunk, class_pixel(up.chunk, grad_pixel, false));
}
