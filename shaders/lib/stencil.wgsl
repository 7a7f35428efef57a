// Neighbourhood stencils over stacks of maps (primitives/stencil.rs, whose
// CPU twins these match): the cross sum with zero padding, the cross
// minimum and the box maximum with absent padding.
//
// One workgroup takes a strip of up to ST_STRIP 16×16 tiles of one map, one
// tile after another, so that a kernel's per-map reductions run once per
// strip, not once per tile (their barriers are what costs on a CPU device).
// Each thread takes one pixel of each tile and reads its neighbours
// straight through `stencil_input(map, q)`, which the including kernel
// defines: the value of pixel q of the map after whatever pointwise step
// the kernel applies (a threshold, a normalisation). There is no
// workgroup tile and no barrier. On lavapipe a 16×16 tile with its halo in
// workgroup memory, one barrier per tile, ran the cross sum 2.7× slower than
// these direct reads (BENCHMARKS.md); on a GPU the neighbours' reads hit the
// cache that the tile would have stood in for. Outside the map the sum
// counts 0 (zero padding); the minimum and the maximum skip it (absent
// padding).
//
// The includer passes in a StencilGeometry from its uniforms. 2D maps are
// maps of depth 1: the selections never reach the planes above and below.
// Loops: ST_STRIP tiles per workgroup, 27 for the box.

//#include "lib/workgroup.wgsl"

const ST_TILE: u32 = 16u;
// Tiles per workgroup (STRIP in primitives/stencil.rs).
const ST_STRIP: u32 = 16u;

// Rust twin: `primitives::stencil::StencilGeometry`.
struct StencilGeometry {
    depth: u32,
    height: u32,
    width: u32,
    plane: u32,           // height · width
    tiles_y: u32,
    tiles_x: u32,
    tiles_per_map: u32,   // depth · tiles_y · tiles_x
    groups_per_map: u32,  // strips: ⌈tiles_per_map / ST_STRIP⌉
}

// The tile a workgroup takes: its map (relative to the dispatch's first) and its corner.
struct StencilTile {
    map: u32,
    z: u32,
    y0: u32,
    x0: u32,
}

// How many tiles workgroup `group`'s strip holds (uniform over the workgroup).
fn stencil_strip_len(geo: StencilGeometry, group: u32) -> u32 {
    let first = (group % geo.groups_per_map) * ST_STRIP;
    return min(ST_STRIP, geo.tiles_per_map - first);
}

// The first tile of workgroup `group`'s strip; stencil_next_tile walks on
// from it, so that the divisions are done once per strip.
fn stencil_first_tile(geo: StencilGeometry, group: u32) -> StencilTile {
    let r = (group % geo.groups_per_map) * ST_STRIP;
    let per_plane = geo.tiles_y * geo.tiles_x;
    let t = r % per_plane;
    return StencilTile(group / geo.groups_per_map, r / per_plane, (t / geo.tiles_x) * ST_TILE, (t % geo.tiles_x) * ST_TILE);
}

// The tile after `tile` in its map, row by row and plane by plane (a strip
// never runs past its map: stencil_strip_len).
fn stencil_next_tile(geo: StencilGeometry, tile: StencilTile) -> StencilTile {
    var next = tile;
    next.x0 += ST_TILE;
    if (next.x0 >= geo.width) {
        next.x0 = 0u;
        next.y0 += ST_TILE;
        if (next.y0 >= geo.height) {
            next.y0 = 0u;
            next.z += 1u;
        }
    }
    return next;
}

fn stencil_inside(geo: StencilGeometry, z: i32, y: i32, x: i32) -> bool {
    return z >= 0 && y >= 0 && x >= 0 && u32(z) < geo.depth && u32(y) < geo.height && u32(x) < geo.width;
}

// The pixel a thread takes in its workgroup's tile.
struct StencilPixel {
    inside: bool,   // within the map (edge tiles overhang it)
    map: u32,       // the tile's map
    q: u32,         // index within the map
    z: i32,
    y: i32,
    x: i32,
}

fn stencil_pixel(geo: StencilGeometry, tile: StencilTile, lid: u32) -> StencilPixel {
    let z = i32(tile.z);
    let y = i32(tile.y0 + lid / ST_TILE);
    let x = i32(tile.x0 + lid % ST_TILE);
    let inside = stencil_inside(geo, z, y, x);
    let q = select(0u, u32(z) * geo.plane + u32(y) * geo.width + u32(x), inside);
    return StencilPixel(inside, tile.map, q, z, y, x);
}

// The index in its map of the pixel at offset o = (dz, dy, dx) from px, or
// −1 outside the map.
fn stencil_neighbour(geo: StencilGeometry, px: StencilPixel, o: vec3<i32>) -> i32 {
    if (!stencil_inside(geo, px.z + o.x, px.y + o.y, px.x + o.z)) {
        return -1;
    }
    return i32(px.q) + o.x * i32(geo.plane) + o.y * i32(geo.width) + o.z;
}

// stencil_input at offset o from px, 0 outside the map.
fn stencil_at(geo: StencilGeometry, px: StencilPixel, o: vec3<i32>) -> f32 {
    let q = stencil_neighbour(geo, px, o);
    if (q < 0) {
        return 0.0;
    }
    return stencil_input(px.map, u32(q));
}

// The pixel and its face neighbours, 0 outside the map.
fn stencil_cross_sum(geo: StencilGeometry, px: StencilPixel) -> f32 {
    var s = stencil_at(geo, px, vec3<i32>(0, 0, 0))
        + stencil_at(geo, px, vec3<i32>(0, -1, 0)) + stencil_at(geo, px, vec3<i32>(0, 1, 0))
        + stencil_at(geo, px, vec3<i32>(0, 0, -1)) + stencil_at(geo, px, vec3<i32>(0, 0, 1));
    if (geo.depth > 1u) {
        s += stencil_at(geo, px, vec3<i32>(-1, 0, 0)) + stencil_at(geo, px, vec3<i32>(1, 0, 0));
    }
    return s;
}

// The cross's pixels as (dz, dy, dx): the pixel itself, then −z, +z, −y,
// +y, −x, +x (primitives/stencil.rs's order).
fn stencil_cross_offset(e: u32) -> vec3<i32> {
    var offsets = array<vec3<i32>, 7>(
        vec3<i32>(0, 0, 0), vec3<i32>(-1, 0, 0), vec3<i32>(1, 0, 0), vec3<i32>(0, -1, 0),
        vec3<i32>(0, 1, 0), vec3<i32>(0, 0, -1), vec3<i32>(0, 0, 1),
    );
    return offsets[e];
}

// The box's pixels row-major as (dz, dy, dx); 13 is the pixel itself.
fn stencil_box_offset(k: u32) -> vec3<i32> {
    return vec3<i32>(i32(k / 9u) - 1, i32((k / 3u) % 3u) - 1, i32(k % 3u) - 1);
}

const ST_BOX_CENTRE: u32 = 13u;

// The box indices a map's depth can reach: the middle plane's 9 in 2D, all 27 in 3D.
fn stencil_box_span(geo: StencilGeometry) -> vec2<u32> {
    return select(vec2<u32>(0u, 27u), vec2<u32>(9u, 18u), geo.depth == 1u);
}

// The first cross index past the pixel itself that a map's depth can
// reach: 3 in 2D (past −z and +z), else 1.
fn stencil_cross_first(geo: StencilGeometry) -> u32 {
    return select(1u, 3u, geo.depth == 1u);
}

// Which in-map pixel of the cross holds its minimum (an index for
// stencil_cross_offset): the pixel itself on a tie with it, else the first.
fn stencil_cross_argmin(geo: StencilGeometry, px: StencilPixel) -> u32 {
    var best = 0u;
    var m = stencil_input(px.map, px.q);
    for (var e = stencil_cross_first(geo); e < 7u; e++) {
        let q = stencil_neighbour(geo, px, stencil_cross_offset(e));
        if (q >= 0) {
            let v = stencil_input(px.map, u32(q));
            if (v < m) {
                m = v;
                best = e;
            }
        }
    }
    return best;
}

// Which in-map pixel of the box holds its maximum (an index for
// stencil_box_offset), ties as in stencil_cross_argmin.
fn stencil_box_argmax(geo: StencilGeometry, px: StencilPixel) -> u32 {
    var best = ST_BOX_CENTRE;
    var m = stencil_input(px.map, px.q);
    let span = stencil_box_span(geo);
    for (var k = span.x; k < span.y; k++) {
        let q = stencil_neighbour(geo, px, stencil_box_offset(k));
        if (q >= 0) {
            let v = stencil_input(px.map, u32(q));
            if (v > m) {
                m = v;
                best = k;
            }
        }
    }
    return best;
}

// The minimum of the pixel and its in-map face neighbours.
fn stencil_cross_min(geo: StencilGeometry, px: StencilPixel) -> f32 {
    return stencil_at(geo, px, stencil_cross_offset(stencil_cross_argmin(geo, px)));
}

// The maximum over the in-map pixels of the 3×3 (3×3×3) box around the pixel.
fn stencil_box_max(geo: StencilGeometry, px: StencilPixel) -> f32 {
    return stencil_at(geo, px, stencil_box_offset(stencil_box_argmax(geo, px)));
}
