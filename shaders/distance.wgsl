// Distance maps of label maps, for every (image, class) mask of a batch in
// one set of dispatches. Host side: src/primitives/distance.rs. A mask is
// G = [label = class]; with d the Euclidean distance between pixel centres in
// physical units, its map is one of two fields (`FIELD_*`, chosen by the host):
//
//   signed (SPEC.md `boundary`):      q outside G:  φ = d(q, G)
//                                     q inside G:   φ = 1 − d(q, outside G)
//   two-sided (SPEC.md `hausdorff_dt`): q outside G: d(q, G);  q inside G: d(q, outside G)
//
// and 0 everywhere when G is empty or fills the image (no pixel of the other
// side). Masks are [D, H, W] (2D images have D = 1), laid out mask after mask.
//
// Both squared distances a mask needs — A = d²(·, G) on the pixels outside G
// and B = d²(·, outside G) on the pixels inside — live in one word per pixel
// between passes: its sign bit is the pixel's membership, the rest the
// squared distance to the other side found so far (FAR: none yet). So every
// pass after the first reads one word per pixel and no label.

//#include "lib/workgroup.wgsl"

const LINE_WG: u32 = 64u;
const FIELD_SIGNED: u32 = 0u;
const FIELD_TWO_SIDED: u32 = 1u;
// A pixel's membership, in the sign bit of its word (both transforms).
const INSIDE_BIT: u32 = 0x80000000u;
// "No pixel of the other side yet": above any squared distance the host allows
// (lines ≤ 7,168 pixels of ≤ 1e6 units, three axes: < 1.6e32).
const FAR: f32 = 1.0e38;

// ---------------------------------------------------------------------------
// exact: the separable transform of Felzenszwalb & Huttenlocher (2012). One
// pass per axis; one invocation per line of the pass, lines independent. The
// first pass needs no envelope (the distance along one line is to the nearest
// pixel of the other side: a forward and a backward sweep); later passes build
// the lower envelopes of both sides in one sweep and query them in another.
// Per line of n pixels an invocation runs at most 6n loop iterations (see
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
    last: u32,         // 1: write the map instead of squared distances
    field_kind: u32,   // FIELD_SIGNED or FIELD_TWO_SIDED
    _pad: u32,
}

@group(0) @binding(0) var<uniform> pass_params: PassParams;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> class_ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> field: array<f32>;
// The lower envelopes of each line, one per side (0: the sites the pixels
// outside G query, 1: those the pixels inside query), each as site positions
// and values: entry j of line L at j·lines + L, so that neighbouring lines
// touch neighbouring words. Four bindings of one word per pixel, so that a
// map as large as one binding fits.
@group(0) @binding(4) var<storage, read_write> outside_sites: array<u32>;
@group(0) @binding(5) var<storage, read_write> outside_values: array<f32>;
@group(0) @binding(9) var<storage, read_write> inside_sites: array<u32>;
@group(0) @binding(10) var<storage, read_write> inside_values: array<f32>;

struct Line {
    index: u32,       // chunk-local line number
    field: u32,       // field element of pixel 0 (binding-relative)
    label: u32,       // label element of pixel 0 (binding-relative)
    mask_class: u32,  // which of the image's K masks: its class is class_ids[mask_class]
}

fn field_at(line: Line, i: u32) -> u32 {
    return line.field + i * pass_params.stride;
}

// The word of a pixel between passes: membership in the sign bit, d² in the rest.
fn encode(inside: bool, d2: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(d2) | select(0u, INSIDE_BIT, inside));
}

fn is_inside(word: f32) -> bool {
    return (bitcast<u32>(word) & INSIDE_BIT) != 0u;
}

fn squared(word: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(word) & ~INSIDE_BIT);
}

// What the pass leaves at pixel i: the next pass's word, or the map itself.
fn write_result(line: Line, i: u32, inside: bool, d2: f32) {
    let at = field_at(line, i);
    if (pass_params.last == 0u) {
        field[at] = encode(inside, d2);
    } else if (d2 >= FAR) {
        // No pixel of the other side anywhere: the class is empty or full.
        field[at] = 0.0;
    } else if (inside && pass_params.field_kind == FIELD_SIGNED) {
        field[at] = 1.0 - sqrt(d2);
    } else {
        field[at] = sqrt(d2);
    }
}

// The first pass: along the line, the distance from each pixel to the nearest
// pixel of the other side, by a forward sweep (the nearest before it, kept in
// the field as a pixel count) and a backward one (the nearest after it). The
// labels are read once, in the forward sweep. 2n loop iterations.
fn first_pass(line: Line, class_id: i32) {
    let n = pass_params.len;
    let s = pass_params.spacing;
    var last = vec2<i32>(-1, -1);  // latest pixel outside, inside
    for (var i = 0u; i < n; i++) {
        let inside = labels[line.label + i * pass_params.stride] == class_id;
        if (inside) { last.y = i32(i); } else { last.x = i32(i); }
        let other = select(last.y, last.x, inside);
        field[field_at(line, i)] = encode(inside, select(f32(i32(i) - other), FAR, other < 0));
    }
    var next = vec2<i32>(-1, -1);  // nearest pixel outside, inside at or after i
    for (var r = 0u; r < n; r++) {
        let i = n - 1u - r;
        let word = field[field_at(line, i)];
        let inside = is_inside(word);
        if (inside) { next.y = i32(i); } else { next.x = i32(i); }
        let other = select(next.y, next.x, inside);
        var steps = squared(word);
        if (other >= 0) {
            steps = min(steps, f32(other - i32(i)));
        }
        var d2 = FAR;
        if (steps < FAR) {
            d2 = (steps * s) * (steps * s);
        }
        write_result(line, i, inside, d2);
    }
}

// A site of an envelope: its position along the line and its value there.
struct Site {
    x: u32,
    f: f32,
}

fn envelope_slot(line: Line, j: u32) -> u32 {
    return j * pass_params.lines + line.index;
}

fn entry(line: Line, side: u32, j: u32) -> Site {
    let at = envelope_slot(line, j);
    if (side == 0u) {
        return Site(outside_sites[at], outside_values[at]);
    }
    return Site(inside_sites[at], inside_values[at]);
}

fn store(line: Line, side: u32, j: u32, site: Site) {
    let at = envelope_slot(line, j);
    if (side == 0u) {
        outside_sites[at] = site.x;
        outside_values[at] = site.f;
    } else {
        inside_sites[at] = site.x;
        inside_values[at] = site.f;
    }
}

// The parabola of site e at pixel q: f(v) + ((q − v)·s)².
fn parabola_at(e: Site, q: u32) -> f32 {
    let t = f32(i32(q) - i32(e.x)) * pass_params.spacing;
    return e.f + t * t;
}

// Where the parabolas of sites a < b meet, in pixels along the line. Written
// around their midpoint, not as ((f_b + b²) − (f_a + a²)) / 2(b − a): that form
// loses all precision to cancellation far from the line's start.
fn meet(a: Site, b: Site) -> f32 {
    let s2 = pass_params.spacing * pass_params.spacing;
    return 0.5 * (f32(a.x) + f32(b.x)) + (b.f - a.f) / (2.0 * s2 * f32(b.x - a.x));
}

// One side's lower envelope while it is built: its entries live in the
// envelope buffers; the top one, and where it starts to be the lowest, stay
// in registers so that a push reads nothing.
struct Stack {
    k: u32,
    top: Site,
    top_start: f32,
}

// Offers site c to the envelope: pops the top if c hides it (returns true:
// offer c again), else pushes c.
fn offer(line: Line, side: u32, st: ptr<function, Stack>, c: Site) -> bool {
    let k = (*st).k;
    if (k == 0u) {
        store(line, side, 0u, c);
        *st = Stack(1u, c, -FAR);
        return false;
    }
    let start = meet((*st).top, c);
    if (k >= 2u && start <= (*st).top_start) {
        let top = entry(line, side, k - 2u);
        var top_start = -FAR;
        if (k >= 3u) {
            top_start = meet(entry(line, side, k - 3u), top);
        }
        *st = Stack(k - 1u, top, top_start);
        return true;
    }
    store(line, side, k, c);
    *st = Stack(k + 1u, c, start);
    return false;
}

// One side's envelope while it is queried: the parabola the next pixel of
// that side starts from, and the one after it.
struct Cursor {
    j: u32,
    here: Site,
    next: Site,
}

fn cursor(line: Line, side: u32, k: u32) -> Cursor {
    var c = Cursor(0u, Site(0u, FAR), Site(0u, FAR));
    if (k > 0u) {
        c.here = entry(line, side, 0u);
    }
    if (k > 1u) {
        c.next = entry(line, side, 1u);
    }
    return c;
}

// Moves the cursor on when the next parabola is as low at q (returns true:
// ask again); else leaves it, its parabola the lowest at q.
fn advance(line: Line, side: u32, c: ptr<function, Cursor>, k: u32, q: u32) -> bool {
    let j = (*c).j;
    if (j + 1u < k && parabola_at((*c).next, q) <= parabola_at((*c).here, q)) {
        (*c).j = j + 1u;
        (*c).here = (*c).next;
        if (j + 2u < k) {
            (*c).next = entry(line, side, j + 2u);
        }
        return true;
    }
    return false;
}

// A later pass: every pixel's squared distance to the other side, combining
// what earlier passes found across the other axes (the words) with this axis:
// g(q) = min over the line of f(x) + ((q − x)·s)², where for the pixels
// outside G, f is A there and 0 on G, and for those inside, B there and 0
// outside. A pixel of the other side is a site of value 0; inside a run of
// them only the two ends can be the nearest, so only those are offered. One
// sweep builds both sides' lower envelopes (each iteration pushes the pixel's
// sites, or pops one: ≤ 3n), one queries them (each iteration finishes a
// pixel or moves its side's cursor on: ≤ 3n).
fn later_pass(line: Line) {
    let n = pass_params.len;
    var outside = Stack(0u, Site(0u, 0.0), -FAR);
    var inside = Stack(0u, Site(0u, 0.0), -FAR);
    var x = 0u;
    var word = field[field_at(line, 0u)];
    var next_word = word;
    if (n > 1u) {
        next_word = field[field_at(line, 1u)];
    }
    var before = !is_inside(word);  // membership of pixel x − 1 (the other side's for x = 0)
    var outside_done = false;       // pixel x's outside site offered and pushed
    loop {
        if (x >= n) {
            break;
        }
        let member = is_inside(word);
        let d2 = squared(word);
        let after = select(!member, is_inside(next_word), x + 1u < n);
        let run_end = before != member || after != member;
        // The outside pixels' envelope: A at pixels outside, 0 at the ends of runs inside.
        if (!outside_done) {
            if ((member && run_end) || (!member && d2 < FAR)) {
                if (offer(line, 0u, &outside, Site(x, select(d2, 0.0, member)))) {
                    continue;
                }
            }
            outside_done = true;
        }
        // The inside pixels' envelope: B at pixels inside, 0 at the ends of runs outside.
        if ((!member && run_end) || (member && d2 < FAR)) {
            if (offer(line, 1u, &inside, Site(x, select(0.0, d2, member)))) {
                continue;
            }
        }
        x++;
        before = member;
        outside_done = false;
        word = next_word;
        if (x + 1u < n) {
            next_word = field[field_at(line, x + 1u)];
        }
    }
    var outside_cursor = cursor(line, 0u, outside.k);
    var inside_cursor = cursor(line, 1u, inside.k);
    var q = 0u;
    var member = is_inside(field[field_at(line, 0u)]);
    loop {
        if (q >= n) {
            break;
        }
        var d2 = FAR;
        if (member) {
            if (advance(line, 1u, &inside_cursor, inside.k, q)) {
                continue;
            }
            if (inside.k > 0u) {
                d2 = parabola_at(inside_cursor.here, q);
            }
        } else {
            if (advance(line, 0u, &outside_cursor, outside.k, q)) {
                continue;
            }
            if (outside.k > 0u) {
                d2 = parabola_at(outside_cursor.here, q);
            }
        }
        write_result(line, q, member, d2);
        q++;
        if (q < n) {
            member = is_inside(field[field_at(line, q)]);
        }
    }
}

// The line an invocation of a pass takes, or false past the chunk's lines.
fn line_of(index: u32, line: ptr<function, Line>) -> bool {
    let p = pass_params;
    if (index >= p.lines) {
        return false;
    }
    let per_mask = p.spatial / p.len;
    let local_mask = index / per_mask;
    let r = index % per_mask;
    let offset = (r / p.stride) * p.len * p.stride + r % p.stride;
    let mask = p.mask0 + local_mask;
    *line = Line(index, mask * p.spatial + offset - p.first_field, (mask / p.classes) * p.spatial + offset - p.first_label, mask % p.classes);
    return true;
}

// The first pass along the first axis: 2n loop iterations per invocation.
@compute @workgroup_size(64)
fn edt_first(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    var line: Line;
    if (line_of(linear_workgroup(wid, nwg) * LINE_WG + lid, &line)) {
        first_pass(line, class_ids[line.mask_class]);
    }
}

// A pass along each further axis: at most 6n loop iterations per invocation.
@compute @workgroup_size(64)
fn edt_later(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    var line: Line;
    if (line_of(linear_workgroup(wid, nwg) * LINE_WG + lid, &line)) {
        later_pass(line);
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
    flags: u32,        // bit 0: first step (no features yet); bit 1: last step (write the map); bit 2: two-sided
    dims: vec4<u32>,   // D, H, W
    spacing: vec4<f32>,
    packing: vec4<u32>, // where H and D start in a packed pixel (W at bit 0), and the W and H masks
}

// A pixel's word: bit 31 its membership (1: inside the mask), bits 0–30 the
// nearest pixel of the other side found so far, its coordinates packed
// (w | h << packing.x | d << packing.y, at most 30 bits), or NO_FEATURE.
// Carrying the membership spares every later step the labels; packing the
// coordinates spares it integer divisions, which dominate a step on lavapipe.
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
    } else if (me && (jump.flags & 4u) == 0u) {
        field[at] = 1.0 - sqrt(best_d2);
    } else {
        field[at] = sqrt(best_d2);
    }
}
