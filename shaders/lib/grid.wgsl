// Dispatches larger than 65,535 workgroups are folded into a 2D grid
// (see gpu/chunks.rs); this recovers the linear workgroup index. Kept apart
// from lib/workgroup.wgsl so kernels that need all 16 KiB of workgroup
// memory (sort.wgsl) can use it without that file's scratch array.

fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}
