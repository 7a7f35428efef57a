// Segmented inclusive prefix sum of u32 (wrapping), reduce-then-scan over
// several dispatches: `segments` runs of `len` values, each cut into tiles
// of TILE values, one workgroup per tile. reduce_tiles sums each tile; the
// host scans those sums (recursively, the same way) and scan_tiles then
// scans each tile in workgroup memory, starting from the inclusive sum of
// the tiles before it. No atomics and no inter-workgroup waiting, so
// nothing depends on the order workgroups run in, and every invocation
// runs a few dozen loop iterations.
//
// Inputs are read as `input & mask` (mask 1 counts the low bits, as the
// Lovász losses pack their labels).

//#include "lib/grid.wgsl"

const THREADS: u32 = 256u;
const ITEMS: u32 = 8u;
const TILE: u32 = 2048u;

struct Params {
    len: u32,           // values per segment
    tiles: u32,         // tiles per segment
    groups: u32,        // workgroups: segments × tiles
    mask: u32,
    has_carry: u32,     // scan_tiles: add carries[tile − 1]
    write_totals: u32,  // scan_tiles: the last tile writes the segment's total
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read> carries: array<u32>;
@group(0) @binding(4) var<storage, read_write> totals: array<u32>;

var<workgroup> values: array<u32, TILE>;
var<workgroup> partial: array<u32, THREADS>;

// Loads tile `tile` of segment `segment` into `values`, zero past the end.
fn load_tile(segment: u32, tile: u32, lid: u32) {
    let begin = tile * TILE;
    let base = segment * params.len;
    for (var q = 0u; q < ITEMS; q++) {
        let l = q * THREADS + lid;
        var v = 0u;
        if (begin + l < params.len) {
            v = input[base + begin + l] & params.mask;
        }
        values[l] = v;
    }
    workgroupBarrier();
}

// Inclusive scan of `partial` by doubling strides (8 steps).
fn scan_partials(lid: u32) {
    for (var d = 1u; d < THREADS; d = d << 1u) {
        var v = partial[lid];
        if (lid >= d) {
            v += partial[lid - d];
        }
        workgroupBarrier();
        partial[lid] = v;
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn reduce_tiles(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    if (g >= params.groups) {
        return;
    }
    load_tile(g / params.tiles, g % params.tiles, lid);
    var run = 0u;
    for (var i = 0u; i < ITEMS; i++) {
        run += values[lid * ITEMS + i];
    }
    partial[lid] = run;
    workgroupBarrier();
    for (var stride = THREADS / 2u; stride > 0u; stride = stride >> 1u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        output[g] = partial[0];
    }
}

@compute @workgroup_size(256)
fn scan_tiles(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    if (g >= params.groups) {
        return;
    }
    let segment = g / params.tiles;
    let tile = g % params.tiles;
    load_tile(segment, tile, lid);
    // Each invocation scans its ITEMS consecutive values, then the
    // invocations' totals are scanned across the workgroup.
    var run = 0u;
    for (var i = 0u; i < ITEMS; i++) {
        run += values[lid * ITEMS + i];
        values[lid * ITEMS + i] = run;
    }
    partial[lid] = run;
    workgroupBarrier();
    scan_partials(lid);
    var carry = 0u;
    if (params.has_carry != 0u && tile > 0u) {
        carry = carries[g - 1u];
    }
    let add = carry + partial[lid] - run;
    for (var i = 0u; i < ITEMS; i++) {
        values[lid * ITEMS + i] += add;
    }
    workgroupBarrier();
    let begin = tile * TILE;
    let base = segment * params.len;
    for (var q = 0u; q < ITEMS; q++) {
        let l = q * THREADS + lid;
        if (begin + l < params.len) {
            output[base + begin + l] = values[l];
        }
    }
    if (params.write_totals != 0u && tile + 1u == params.tiles && lid == THREADS - 1u) {
        totals[segment] = carry + partial[THREADS - 1u];
    }
}
