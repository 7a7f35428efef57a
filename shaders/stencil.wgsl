// The stencils of lib/stencil.wgsl over a buffer of maps, one pass:
// `output[m, q] = OP(input[m, ·])[q]`. Planned by primitives/stencil.rs
// (`record_stencil`), whose CPU twins the suite checks it against.

//#include "lib/stencil.wgsl"

// 0: cross sum (zero padding), 1: cross minimum, 2: box maximum (absent
// padding); 3 and 4: which pixel the minimum and the maximum take.
override OP: u32 = 0u;

struct Params {
    geometry: StencilGeometry,
    maps: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

fn stencil_input(map: u32, q: u32) -> f32 {
    return input[map * params.geometry.depth * params.geometry.plane + q];
}

@compute @workgroup_size(256)
fn stencil_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let geo = params.geometry;
    let group = linear_workgroup(wid, nwg);
    if (group >= params.maps * geo.groups_per_map) {
        return;
    }
    let strip = stencil_strip_len(geo, group);
    var tile = stencil_first_tile(geo, group);
    for (var k = 0u; k < strip; k++) {
        let px = stencil_pixel(geo, tile, lid);
        if (px.inside) {
            var v: f32;
            if (OP == 0u) {
                v = stencil_cross_sum(geo, px);
            } else if (OP == 1u) {
                v = stencil_cross_min(geo, px);
            } else if (OP == 2u) {
                v = stencil_box_max(geo, px);
            } else if (OP == 3u) {
                v = f32(stencil_cross_argmin(geo, px));
            } else {
                v = f32(stencil_box_argmax(geo, px));
            }
            output[tile.map * geo.depth * geo.plane + px.q] = v;
        }
        tile = stencil_next_tile(geo, tile);
    }
}
