// Neighbourhood stencils over stacks of maps (primitives/stencil.rs, whose
// CPU twins these match): the cross sum with zero padding, the cross
// minimum and the box maximum with absent padding.
//
// One workgroup takes one 16×16 tile of one plane of one map. It loads the
// tile with a one-pixel halo, and the same window of the planes above and
// below (3D), into workgroup memory, by calling `stencil_input(map, q)`,
// which the including kernel defines: the value of pixel q of the map, after
// whatever pointwise step the kernel applies (a softmax, a threshold). Each
// pixel is thus formed once per workgroup that needs it, not once per
// neighbour. Cells outside the map hold 0, which is the zero padding of the
// sum; the minimum and the maximum skip them (absent padding).
//
// The includer declares `var<uniform>` data holding a StencilGeometry and
// passes it in. With depth 1 (2D maps) the planes above and below lie
// outside, so one code path serves 2D and 3D.
// Loops: 4 steps to load the tile, 27 for the box.

//#include "lib/workgroup.wgsl"

const ST_TILE: u32 = 16u;
const ST_SPAN: u32 = 18u;
const ST_PLANE: u32 = 324u;
const ST_CELLS: u32 = 972u;

// Rust twin: `primitives::stencil::StencilGeometry`.
struct StencilGeometry {
    depth: u32,
    height: u32,
    width: u32,
    plane: u32,           // height · width
    tiles_y: u32,
    tiles_x: u32,
    groups_per_map: u32,  // depth · tiles_y · tiles_x
    _pad: u32,
}

var<workgroup> st_tile: array<f32, ST_CELLS>;

// The tile a workgroup takes: its map (relative to the dispatch's first) and its corner.
struct StencilTile {
    map: u32,
    z: u32,
    y0: u32,
    x0: u32,
}

fn stencil_tile(geo: StencilGeometry, group: u32) -> StencilTile {
    let r = group % geo.groups_per_map;
    let per_plane = geo.tiles_y * geo.tiles_x;
    let t = r % per_plane;
    return StencilTile(group / geo.groups_per_map, r / per_plane, (t / geo.tiles_x) * ST_TILE, (t % geo.tiles_x) * ST_TILE);
}

fn stencil_inside(geo: StencilGeometry, z: i32, y: i32, x: i32) -> bool {
    return z >= 0 && y >= 0 && x >= 0 && u32(z) < geo.depth && u32(y) < geo.height && u32(x) < geo.width;
}

// Fills the workgroup's window through `stencil_input`. Call it from
// uniform control flow: it ends with a barrier.
fn stencil_load(geo: StencilGeometry, tile: StencilTile, lid: u32) {
    for (var i = lid; i < ST_CELLS; i += WG_SIZE) {
        let r = i % ST_PLANE;
        let z = i32(tile.z + i / ST_PLANE) - 1;
        let y = i32(tile.y0 + r / ST_SPAN) - 1;
        let x = i32(tile.x0 + r % ST_SPAN) - 1;
        var v = 0.0;
        if (stencil_inside(geo, z, y, x)) {
            v = stencil_input(tile.map, u32(z) * geo.plane + u32(y) * geo.width + u32(x));
        }
        st_tile[i] = v;
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

fn stencil_pixel(geo: StencilGeometry, tile: StencilTile, lid: u32) -> StencilPixel {
    let ly = lid / ST_TILE;
    let lx = lid % ST_TILE;
    let z = i32(tile.z);
    let y = i32(tile.y0 + ly);
    let x = i32(tile.x0 + lx);
    let inside = stencil_inside(geo, z, y, x);
    let q = select(0u, u32(z) * geo.plane + u32(y) * geo.width + u32(x), inside);
    return StencilPixel(inside, q, z, y, x, ST_PLANE + (ly + 1u) * ST_SPAN + lx + 1u);
}

fn stencil_at(px: StencilPixel, dz: i32, dy: i32, dx: i32) -> f32 {
    return st_tile[u32(i32(px.cell) + dz * i32(ST_PLANE) + dy * i32(ST_SPAN) + dx)];
}

fn stencil_in(geo: StencilGeometry, px: StencilPixel, dz: i32, dy: i32, dx: i32) -> bool {
    return stencil_inside(geo, px.z + dz, px.y + dy, px.x + dx);
}

// The pixel and its face neighbours, 0 outside the map.
fn stencil_cross_sum(px: StencilPixel) -> f32 {
    return stencil_at(px, 0, 0, 0)
        + stencil_at(px, 0, -1, 0) + stencil_at(px, 0, 1, 0)
        + stencil_at(px, 0, 0, -1) + stencil_at(px, 0, 0, 1)
        + stencil_at(px, -1, 0, 0) + stencil_at(px, 1, 0, 0);
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

// Which in-map pixel of the cross holds its minimum (an index for
// stencil_cross_offset): the pixel itself on a tie with it, else the first.
fn stencil_cross_argmin(geo: StencilGeometry, px: StencilPixel) -> u32 {
    var best = 0u;
    var m = stencil_at(px, 0, 0, 0);
    for (var e = 1u; e < 7u; e++) {
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
    for (var k = 0u; k < 27u; k++) {
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
