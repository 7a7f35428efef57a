// One level of the segmented sum: `segments` runs of `len` values, each cut
// into tiles of WG_SIZE·ITEMS values; every workgroup sums one tile into
// output[segment·tiles + tile]. The host repeats levels until one value per
// segment remains. No atomics and a fixed tree, so results are bitwise
// reproducible; no spinning, so lavapipe's loop cut-off never applies.

//#include "lib/workgroup.wgsl"

const ITEMS: u32 = 8u;

struct Params {
    len: u32,       // values per segment
    tiles: u32,     // tiles per segment
    group0: u32,    // global index of this chunk's first tile
    groups: u32,    // tiles in this chunk
    first: u32,     // element at which the input binding starts
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(256)
fn segmented_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let local = linear_workgroup(wid, nwg);
    if (local >= params.groups) {
        return;
    }
    let g = params.group0 + local;
    let segment = g / params.tiles;
    let begin = (g % params.tiles) * WG_SIZE * ITEMS;
    let end = min(begin + WG_SIZE * ITEMS, params.len);
    let base = segment * params.len - params.first;
    var acc = 0.0;
    for (var k = 0u; k < ITEMS; k++) {
        let i = begin + k * WG_SIZE + lid;
        if (i < end) {
            acc += input[base + i];
        }
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        output[g] = total;
    }
}
