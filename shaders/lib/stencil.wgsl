// Neighbourhood stencils over stacks of maps (primitives/stencil.rs, whose
// CPU twins these match): the cross sum with zero padding, the cross
// minimum and the box maximum with absent padding.
//
// One workgroup takes a strip of up to ST_STRIP 16×16 tiles of one map, one
// tile after another, so that a kernel's per-map reductions run once per
// strip, not once per tile (their barriers are what costs on a CPU
// device). For each tile it loads the tile with a one-pixel halo, and in
// 3D the same window of the planes above and below, into workgroup memory,
// by calling `stencil_input(map, q)`, which the including kernel defines:
// the value of pixel q of the map after whatever pointwise step the kernel
// applies (a threshold, a normalisation). Each pixel is thus formed once
// per workgroup that needs it, not once per neighbour. Cells outside the
// map hold 0, which is the zero padding of the sum; the minimum and the
// maximum skip them (absent padding).
//
// The includer passes in a StencilGeometry from its uniforms. 2D maps
// (depth 1) load the middle plane only, and the sum then leaves out the
// planes above and below, which the selections never reach there.
// Loops: ST_STRIP tiles per workgroup, 4 steps to load a tile, 27 for the box.

//#include "lib/workgroup.wgsl"

const ST_TILE: u32 = 16u;
const ST_SPAN: u32 = 18u;
const ST_PLANE: u32 = 324u;
const ST_CELLS: u32 = 972u;
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

// Two windows, used in turn by a strip's tiles: the load of tile k + 1
// cannot overwrite what tile k's readers still read, so one barrier per
// tile suffices.
var<workgroup> st_tile: array<f32, 1944>;

// The tile a workgroup takes: its map (relative to the dispatch's first) and its corner.
struct StencilTile {
    map: u32,
    z: u32,
    y0: u32,
    x0: u32,
}

// The window tile `k` of a strip uses.
fn stencil_window(k: u32) -> u32 {
    return (k & 1u) * ST_CELLS;
}

// How many tiles workgroup `group`'s strip holds (uniform over the workgroup).
fn stencil_strip_len(geo: StencilGeometry, group: u32) -> u32 {
    let first = (group % geo.groups_per_map) * ST_STRIP;
    return min(ST_STRIP, geo.tiles_per_map - first);
}

// Tile `k` of workgroup `group`'s strip.
fn stencil_tile(geo: StencilGeometry, group: u32, k: u32) -> StencilTile {
    let r = (group % geo.groups_per_map) * ST_STRIP + k;
    let per_plane = geo.tiles_y * geo.tiles_x;
    let t = r % per_plane;
    return StencilTile(group / geo.groups_per_map, r / per_plane, (t / geo.tiles_x) * ST_TILE, (t % geo.tiles_x) * ST_TILE);
}

fn stencil_inside(geo: StencilGeometry, z: i32, y: i32, x: i32) -> bool {
    return z >= 0 && y >= 0 && x >= 0 && u32(z) < geo.depth && u32(y) < geo.height && u32(x) < geo.width;
}

// Fills window `stencil_window(k)` for tile k of the strip through
// `stencil_input`. Call it from uniform control flow: it ends with a
// barrier, which also tells that tile k − 1's readers of the other window
// are done (tile k − 2's, of this one, finished before the last barrier).
fn stencil_load(geo: StencilGeometry, tile: StencilTile, lid: u32, k: u32) {
    let window = stencil_window(k);
    // 2D maps need the middle plane only (the sum and the selections never read the others there).
    let planes = select(ST_CELLS, ST_PLANE, geo.depth == 1u);
    let skip = select(0u, ST_PLANE, geo.depth == 1u);
    for (var j = lid; j < planes; j += WG_SIZE) {
        let i = j + skip;
        let r = i % ST_PLANE;
        let z = i32(tile.z + i / ST_PLANE) - 1;
        let y = i32(tile.y0 + r / ST_SPAN) - 1;
        let x = i32(tile.x0 + r % ST_SPAN) - 1;
        var v = 0.0;
        if (stencil_inside(geo, z, y, x)) {
            v = stencil_input(tile.map, u32(z) * geo.plane + u32(y) * geo.width + u32(x));
        }
        st_tile[window + i] = v;
    }
    workgroupBarrier();
}

// The pixel a thread takes in its workgroup's tile.
struct StencilPixel {
    inside: bool,   // within the map (edge tiles overhang it)
    q: u32,         // index within the map
    z: i32,
    y: i32,
    x: i32,
    cell: u32,      // its cell in st_tile
}

fn stencil_pixel(geo: StencilGeometry, tile: StencilTile, lid: u32, k: u32) -> StencilPixel {
    let ly = lid / ST_TILE;
    let lx = lid % ST_TILE;
    let z = i32(tile.z);
    let y = i32(tile.y0 + ly);
    let x = i32(tile.x0 + lx);
    let inside = stencil_inside(geo, z, y, x);
    let q = select(0u, u32(z) * geo.plane + u32(y) * geo.width + u32(x), inside);
    return StencilPixel(inside, q, z, y, x, stencil_window(k) + ST_PLANE + (ly + 1u) * ST_SPAN + lx + 1u);
}

fn stencil_at(px: StencilPixel, dz: i32, dy: i32, dx: i32) -> f32 {
    return st_tile[u32(i32(px.cell) + dz * i32(ST_PLANE) + dy * i32(ST_SPAN) + dx)];
}

fn stencil_in(geo: StencilGeometry, px: StencilPixel, dz: i32, dy: i32, dx: i32) -> bool {
    return stencil_inside(geo, px.z + dz, px.y + dy, px.x + dx);
}

// The pixel and its face neighbours, 0 outside the map.
fn stencil_cross_sum(geo: StencilGeometry, px: StencilPixel) -> f32 {
    var s = stencil_at(px, 0, 0, 0)
        + stencil_at(px, 0, -1, 0) + stencil_at(px, 0, 1, 0)
        + stencil_at(px, 0, 0, -1) + stencil_at(px, 0, 0, 1);
    if (geo.depth > 1u) {
        s += stencil_at(px, -1, 0, 0) + stencil_at(px, 1, 0, 0);
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
    let i = i32(k);
    return vec3<i32>(i / 9 - 1, (i / 3) % 3 - 1, i % 3 - 1);
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
    var m = stencil_at(px, 0, 0, 0);
    for (var e = stencil_cross_first(geo); e < 7u; e++) {
        let o = stencil_cross_offset(e);
        if (stencil_in(geo, px, o.x, o.y, o.z)) {
            let v = stencil_at(px, o.x, o.y, o.z);
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
    var m = stencil_at(px, 0, 0, 0);
    let span = stencil_box_span(geo);
    for (var k = span.x; k < span.y; k++) {
        let o = stencil_box_offset(k);
        if (stencil_in(geo, px, o.x, o.y, o.z)) {
            let v = stencil_at(px, o.x, o.y, o.z);
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
    let o = stencil_cross_offset(stencil_cross_argmin(geo, px));
    return stencil_at(px, o.x, o.y, o.z);
}

// The maximum over the in-map pixels of the 3×3 (3×3×3) box around the pixel.
fn stencil_box_max(geo: StencilGeometry, px: StencilPixel) -> f32 {
    let o = stencil_box_offset(stencil_box_argmax(geo, px));
    return stencil_at(px, o.x, o.y, o.z);
}

// For gathers that read another map at the offsets a stencil chose (no
// tile): the index of pixel q − o in its map, or −1 outside it.
fn stencil_source_of(geo: StencilGeometry, q: u32, o: vec3<i32>) -> i32 {
    let z = i32(q / geo.plane) - o.x;
    let y = i32((q % geo.plane) / geo.width) - o.y;
    let x = i32(q % geo.width) - o.z;
    if (!stencil_inside(geo, z, y, x)) {
        return -1;
    }
    return i32(u32(z) * geo.plane + u32(y) * geo.width + u32(x));
}
