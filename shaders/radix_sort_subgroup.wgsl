// Segmented LSD radix sort with subgroup scans in the local ranking (any
// subgroup size from 4 to 128, read at run time): the body is
// lib/radix_sort.wgsl. An invocation's counters are scanned across its
// subgroup by subgroupExclusiveAdd, the subgroups' totals across the
// workgroup by one invocation per word: two barriers per split instead of
// the workgroup scan's six. Invocations are ordered subgroup by subgroup,
// lane by lane; a workgroup that is not made of whole subgroups takes the
// workgroup scan instead. The device must offer wgpu's SUBGROUP feature
// (naga takes subgroup built-ins without an `enable` directive).

//#include "lib/radix_sort.wgsl"

var<private> lane: u32;
var<private> subgroup: u32;
var<private> subgroups: u32;
var<private> lanes: u32;
var<private> whole_subgroups: bool;
var<workgroup> subgroup_total: array<u32, 256>;   // [subgroup][word], up to WG / 4 subgroups

fn scan_counts(c: Counters, me: u32) -> Scanned {
    if (!whole_subgroups) {
        return scan_workgroup(c, me);
    }
    let before = Counters(subgroupExclusiveAdd(c.lo), subgroupExclusiveAdd(c.hi));
    // The subgroup's total: the last lane's inclusive sum.
    let last = lanes - 1u;
    let sum = Counters(subgroupShuffle(before.lo + c.lo, last), subgroupShuffle(before.hi + c.hi, last));
    if (lane == 0u) {
        for (var w = 0u; w < WORDS; w++) {
            subgroup_total[subgroup * WORDS + w] = word(sum, w);
        }
    }
    workgroupBarrier();             // also: every invocation has read its elements out of `tile`
    if (me < WORDS) {
        var acc = 0u;
        for (var g = 0u; g < subgroups; g++) {
            let v = subgroup_total[g * WORDS + me];
            subgroup_total[g * WORDS + me] = acc;
            acc += v;
        }
        row_total[me] = acc;
    }
    workgroupBarrier();
    let at = subgroup * WORDS;
    let prefix = Counters(
        before.lo + vec4<u32>(subgroup_total[at], subgroup_total[at + 1u], subgroup_total[at + 2u], subgroup_total[at + 3u]),
        before.hi + vec4<u32>(subgroup_total[at + 4u], subgroup_total[at + 5u], subgroup_total[at + 6u], subgroup_total[at + 7u]),
    );
    let total = Counters(
        vec4<u32>(row_total[0], row_total[1], row_total[2], row_total[3]),
        vec4<u32>(row_total[4], row_total[5], row_total[6], row_total[7]),
    );
    return Scanned(prefix, total);
}

@compute @workgroup_size(128)
fn downsweep(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(num_subgroups) sg_count: u32,
) {
    let w = linear_workgroup(wid, nwg);
    if (w >= params.tiles) {
        return;
    }
    lane = sg_lane;
    subgroup = sg_id;
    subgroups = sg_count;
    lanes = sg_size;
    whole_subgroups = sg_count * sg_size == WG && sg_size >= 4u;
    downsweep_tile(w, lid, select(lid, sg_id * sg_size + sg_lane, whole_subgroups));
}
