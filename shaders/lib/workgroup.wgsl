// Workgroup geometry and the deterministic workgroup sum every reduction uses.

const WG_SIZE: u32 = 256u;

var<workgroup> wg_scratch: array<f32, WG_SIZE>;

//#include "lib/grid.wgsl"

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
