// Workgroup geometry and the deterministic workgroup sum every reduction uses.

const WG_SIZE: u32 = 256u;

var<workgroup> wg_scratch: array<f32, WG_SIZE>;

// Dispatches larger than 65,535 workgroups are folded into a 2D grid
// (see gpu/chunks.rs); this recovers the linear workgroup index.
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
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
