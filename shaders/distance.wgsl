// Signed distance maps of label maps (SPEC.md `boundary`), for every
// (image, class) mask of a batch in one set of dispatches. Host side:
// src/primitives/distance.rs. A mask is G = [label = class]; its map is
//
//   q outside G:  φ = d(q, G)                         (0 when G is empty)
//   q inside G:   φ = 1 − d(q, outside G)             (0 when G fills the image)
//
// with d the Euclidean distance between pixel centres in physical units.
// Masks are [D, H, W] (2D images have D = 1), laid out mask after mask.
//
// Both fields a mask needs — A = d²(·, G) on the pixels outside G and
// B = d²(·, outside G) on the pixels inside — live in one f32 per pixel: A is
// 0 on G and B is 0 outside it, at every stage of the transform, so the
// pixel's own membership says which field its number belongs to and what the
// other field holds there (0). NONE stands for an infinite squared distance.

//#include "lib/workgroup.wgsl"

const NONE: f32 = -1.0;
const LINE_WG: u32 = 64u;

// ---------------------------------------------------------------------------
// exact: the separable transform of Felzenszwalb & Huttenlocher (2012). One
// pass per axis; one invocation per line of the pass, lines independent.
// Per line of n pixels the invocation runs at most 9n loop iterations (see
// `edt_pass`), which the host keeps under lavapipe's 65,535 cut-off.

struct PassParams {
    lines: u32,        // lines in this chunk (masks · S / len)
    len: u32,          // n: pixels along the axis
    stride: u32,       // element stride of the axis inside a mask
    spatial: u32,      // S: pixels per mask
    mask0: u32,        // global index (image · K + k) of the chunk's first mask
    first_field: u32,  // element at which the field binding starts
    first_label: u32,  // element at which the labels binding starts
    classes: u32,      // K: masks per image
    spacing: f32,      // physical size of one step along the axis
    first: u32,        // 1: the field holds nothing yet (its first pass)
    last: u32,         // 1: write φ instead of squared distances
    _pad: u32,
}

@group(0) @binding(0) var<uniform> pass_params: PassParams;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> class_ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> field: array<f32>;
// The lower envelope of each line: site positions and their values, entry j
// of line L at j · lines + L so that neighbouring lines touch neighbouring words.
@group(0) @binding(4) var<storage, read_write> env_sites: array<u32>;
@group(0) @binding(5) var<storage, read_write> env_values: array<f32>;

struct Line {
    index: u32,   // chunk-local line number
    field: u32,   // field element of pixel 0 (binding-relative)
    label: u32,   // label element of pixel 0 (binding-relative)
    class_id: i32,
}

fn member(line: Line, i: u32) -> bool {
    return labels[line.label + i * pass_params.stride] == line.class_id;
}

// The value of the parabola of envelope entry j at pixel q: f(v) + ((q − v)·s)².
fn envelope_at(line: Line, j: u32, q: u32) -> f32 {
    let at = j * pass_params.lines + line.index;
    let t = f32(i32(q) - i32(env_sites[at])) * pass_params.spacing;
    return env_values[at] + t * t;
}

// Where the parabolas of sites a < b meet, in pixels along the line. Written
// around their midpoint, not as ((f_b + b²) − (f_a + a²)) / 2(b − a): that form
// loses all precision to cancellation far from the line's start.
fn meet(a: u32, fa: f32, b: u32, fb: f32) -> f32 {
    let s2 = pass_params.spacing * pass_params.spacing;
    return 0.5 * (f32(a) + f32(b)) + (fb - fa) / (2.0 * s2 * f32(b - a));
}

fn write_result(line: Line, q: u32, inside: bool, d2: f32) {
    let at = line.field + q * pass_params.stride;
    if (pass_params.last == 0u) {
        field[at] = d2;
    } else if (d2 < 0.0) {
        // No pixel of the other side anywhere: the class is empty or full.
        field[at] = 0.0;
    } else if (inside) {
        field[at] = 1.0 - sqrt(d2);
    } else {
        field[at] = sqrt(d2);
    }
}

// One field along one line: the pixels on side `inside` get the squared
// distance to the nearest pixel of the other side, combining what earlier
// passes found across the other axes (their field values) with this axis.
// Loop iterations: build ≤ 2n (each one pushes or pops a site), query ≤ 2n
// (each one finishes a pixel or moves to the next parabola).
fn transform_line(line: Line, inside: bool) {
    let n = pass_params.len;
    let lines = pass_params.lines;
    var k = 0u;
    var x = 0u;
    loop {
        if (x >= n) {
            break;
        }
        var fx = 0.0;
        if (member(line, x) == inside) {
            fx = NONE;
            if (pass_params.first == 0u) {
                fx = field[line.field + x * pass_params.stride];
            }
        }
        if (fx < 0.0) {
            x++;
            continue;
        }
        if (k >= 2u) {
            let b_at = (k - 1u) * lines + line.index;
            let a_at = (k - 2u) * lines + line.index;
            let b = env_sites[b_at];
            let fb = env_values[b_at];
            if (meet(b, fb, x, fx) <= meet(env_sites[a_at], env_values[a_at], b, fb)) {
                k--;
                continue;
            }
        }
        let at = k * lines + line.index;
        env_sites[at] = x;
        env_values[at] = fx;
        k++;
        x++;
    }
    var j = 0u;
    var q = 0u;
    loop {
        if (q >= n) {
            break;
        }
        if (member(line, q) != inside) {
            q++;
            continue;
        }
        if (j + 1u < k && envelope_at(line, j + 1u, q) <= envelope_at(line, j, q)) {
            j++;
            continue;
        }
        var d2 = NONE;
        if (k > 0u) {
            d2 = envelope_at(line, j, q);
        }
        write_result(line, q, inside, d2);
        q++;
    }
}

// One pass along one axis. Loop iterations per invocation: n to count the
// line's members, then at most 4n per side: 9n in all.
@compute @workgroup_size(64)
fn edt_pass(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = pass_params;
    let index = linear_workgroup(wid, nwg) * LINE_WG + lid;
    if (index >= p.lines) {
        return;
    }
    let per_mask = p.spatial / p.len;
    let local_mask = index / per_mask;
    let r = index % per_mask;
    let offset = (r / p.stride) * p.len * p.stride + r % p.stride;
    let mask = p.mask0 + local_mask;
    let image = mask / p.classes;
    let line = Line(
        index,
        mask * p.spatial + offset - p.first_field,
        image * p.spatial + offset - p.first_label,
        class_ids[mask % p.classes],
    );
    var members = 0u;
    for (var i = 0u; i < p.len; i++) {
        if (member(line, i)) {
            members++;
        }
    }
    if (members < p.len) {
        transform_line(line, false);
    }
    if (members > 0u) {
        transform_line(line, true);
    }
}

// ---------------------------------------------------------------------------
// jump_flood: Rong & Tan (2006), run twice (JFA²: steps
// k = 2^⌈log2 max(D,H,W)⌉/2, …, 2, 1, then the same again). Every pixel keeps
// the nearest pixel of the other side found so far; a neighbour at ±k on the same side offers its own, one on the other
// side offers itself. Reads and writes go to different buffers, so the
// result does not depend on the order invocations run in. 27 neighbours at
// most: no loop comes near lavapipe's cut-off.

struct JumpParams {
    pixels: u32,       // pixels in this chunk (masks · S)
    spatial: u32,
    mask0: u32,
    first_field: u32,
    first_label: u32,
    classes: u32,
    step: u32,         // k
    flags: u32,        // bit 0: first step (no features yet); bit 1: last step (write φ)
    dims: vec4<u32>,   // D, H, W
    spacing: vec4<f32>,
    packing: vec4<u32>, // where H and D start in a packed pixel (W at bit 0), and the W and H masks
}

// A pixel's word: bit 31 its membership (1: inside the mask), bits 0–30 the
// nearest pixel of the other side found so far, its coordinates packed
// (w | h << packing.x | d << packing.y, at most 30 bits), or NO_FEATURE.
// Carrying the membership spares every later step the labels; packing the
// coordinates spares it integer divisions, which dominate a step on lavapipe.
const INSIDE_BIT: u32 = 0x80000000u;
const NO_FEATURE: u32 = 0x7fffffffu;

@group(0) @binding(6) var<uniform> jump: JumpParams;
@group(0) @binding(7) var<storage, read> features_in: array<u32>;
@group(0) @binding(8) var<storage, read_write> features_out: array<u32>;

fn coords(i: u32) -> vec3<i32> {
    let hw = jump.dims.y * jump.dims.z;
    return vec3<i32>(i32(i / hw), i32((i % hw) / jump.dims.z), i32(i % jump.dims.z));
}

fn pack(c: vec3<i32>) -> u32 {
    return u32(c.z) | (u32(c.y) << jump.packing.x) | (u32(c.x) << jump.packing.y);
}

fn unpack(w: u32) -> vec3<i32> {
    return vec3<i32>(i32(w >> jump.packing.y), i32((w >> jump.packing.x) & jump.packing.w), i32(w & jump.packing.z));
}

fn squared_distance(a: vec3<i32>, b: vec3<i32>) -> f32 {
    let t = vec3<f32>(a - b) * jump.spacing.xyz;
    return dot(t, t);
}

@compute @workgroup_size(64)
fn jump_flood_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let index = linear_workgroup(wid, nwg) * LINE_WG + lid;
    if (index >= jump.pixels) {
        return;
    }
    let s = jump.spatial;
    let local_mask = index / s;
    let q = index % s;
    let mask = jump.mask0 + local_mask;
    let class_id = class_ids[mask % jump.classes];
    let label_base = (mask / jump.classes) * s - jump.first_label;
    let feature_base = local_mask * s;
    let first = (jump.flags & 1u) != 0u;
    let here = coords(q);
    let dims = vec3<i32>(jump.dims.xyz);
    let k = i32(jump.step);
    var me = false;
    var best = NO_FEATURE;
    var best_d2 = 0.0;
    if (first) {
        me = labels[label_base + q] == class_id;
    } else {
        let word = features_in[feature_base + q];
        me = (word & INSIDE_BIT) != 0u;
        best = word & NO_FEATURE;
        if (best != NO_FEATURE) {
            best_d2 = squared_distance(here, unpack(best));
        }
    }
    let dz = select(1, 0, dims.x == 1);
    for (var a = -dz; a <= dz; a++) {
        for (var b = -1; b <= 1; b++) {
            for (var c = -1; c <= 1; c++) {
                let there = here + vec3<i32>(a, b, c) * k;
                if ((a == 0 && b == 0 && c == 0) || any(there < vec3<i32>(0)) || any(there >= dims)) {
                    continue;
                }
                let p = u32((there.x * dims.y + there.y) * dims.z + there.z);
                var inside = false;
                var offered = NO_FEATURE;
                if (first) {
                    inside = labels[label_base + p] == class_id;
                } else {
                    let word = features_in[feature_base + p];
                    inside = (word & INSIDE_BIT) != 0u;
                    offered = word & NO_FEATURE;
                }
                var d2 = 0.0;
                var candidate = NO_FEATURE;
                if (inside != me) {
                    candidate = pack(there);
                    d2 = squared_distance(here, there);
                } else if (offered != NO_FEATURE) {
                    candidate = offered;
                    d2 = squared_distance(here, unpack(offered));
                }
                if (candidate != NO_FEATURE && (best == NO_FEATURE || d2 < best_d2)) {
                    best = candidate;
                    best_d2 = d2;
                }
            }
        }
    }
    if ((jump.flags & 2u) == 0u) {
        features_out[feature_base + q] = best | select(0u, INSIDE_BIT, me);
        return;
    }
    let at = mask * s + q - jump.first_field;
    if (best == NO_FEATURE) {
        field[at] = 0.0;
    } else if (me) {
        field[at] = 1.0 - sqrt(best_d2);
    } else {
        field[at] = sqrt(best_d2);
    }
}
