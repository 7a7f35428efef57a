// Segmented LSD radix sort, the path that needs no subgroups: the body is
// lib/radix_sort.wgsl; here the local ranking's scan is the workgroup one.

//#include "lib/radix_sort.wgsl"

fn scan_counts(c: Counters, me: u32) -> Scanned {
    return scan_workgroup(c, me);
}

@compute @workgroup_size(128)
fn downsweep(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = linear_workgroup(wid, nwg);
    if (w >= params.tiles) {
        return;
    }
    downsweep_tile(w, lid, lid);
}
