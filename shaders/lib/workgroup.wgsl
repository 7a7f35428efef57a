// Workgroup geometry and the deterministic workgroup sum every reduction uses.

const WG_SIZE: u32 = 256u;

var<workgroup> wg_scratch: array<f32, WG_SIZE>;

//#include "lib/grid.wgsl"

// One item per invocation: the item of thread `lid` in a (2D-folded) dispatch.
fn linear_item(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return linear_workgroup(wid, nwg) * WG_SIZE + lid;
}

// Sum of `v` over the workgroup, by a fixed binary tree so the result is
// bitwise the same on every run. Call it from uniform control flow.
fn workgroup_sum(lid: u32, v: f32) -> f32 {
    wg_scratch[lid] = v;
    workgroupBarrier();
    for (var stride = WG_SIZE / 2u; stride > 0u; stride = stride >> 1u) {
        if (lid < stride) {
            wg_scratch[lid] = wg_scratch[lid] + wg_scratch[lid + stride];
        }
        workgroupBarrier();
    }
    let total = wg_scratch[0];
    workgroupBarrier();
    return total;
}
