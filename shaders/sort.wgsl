// Bitonic sort of short segments, in place: one workgroup per segment of
// at most TILE elements, ordered by key descending (lib/sort_keys.wgsl),
// equal keys in their input order. Longer segments go to the radix sort
// (radix_sort.wgsl); for one tile, one dispatch of this network is cheaper
// than the radix sort's four passes of three dispatches each.
//
// The network sorts (key, position) pairs in workgroup memory: ordering
// equal keys by position is what makes it stable. A segment of `len`
// elements is sorted by the network for the next power of two, 2^log_size
// positions, in its "flip" form: every comparator puts the smaller pair at
// the lower position, so positions ≥ len act as +∞ that never move and are
// never stored. The values follow the positions at the end: each
// invocation reads its elements' values before any is written.

//#include "lib/grid.wgsl"
//#include "lib/sort_keys.wgsl"

const THREADS: u32 = 256u;
const TILE: u32 = 2048u;       // positions per workgroup: 2 × 8 KiB of workgroup memory
const PER_THREAD: u32 = 8u;    // positions each invocation loads and stores
const PAIRS: u32 = 4u;         // comparators each invocation runs per step
const SENTINEL: u32 = 0xFFFFFFFFu;

struct Segment {
    offset: u32,    // first element in the bindings
    len: u32,       // elements, at most TILE
    log_size: u32,  // the network sorts 2^log_size positions
    _pad: u32,
}

struct Params {
    segments: u32,      // workgroups in the dispatch
    index_values: u32,  // values come out as positions in the segment
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> segments: array<Segment>;
@group(0) @binding(2) var<storage, read_write> keys: array<u32>;
@group(0) @binding(3) var<storage, read_write> values: array<u32>;

var<workgroup> tile_keys: array<u32, TILE>;
var<workgroup> tile_positions: array<u32, TILE>;

// Orders tile positions a < b: the smaller (key, position) at a when ascending.
fn compare_exchange(a: u32, b: u32, ascending: bool) {
    let ka = tile_keys[a];
    let kb = tile_keys[b];
    let pa = tile_positions[a];
    let pb = tile_positions[b];
    let b_less = kb < ka || (kb == ka && pb < pa);
    let a_less = ka < kb || (ka == kb && pa < pb);
    if (select(a_less, b_less, ascending)) {
        tile_keys[a] = kb;
        tile_keys[b] = ka;
        tile_positions[a] = pb;
        tile_positions[b] = pa;
    }
}

// The lower position of comparator c of a half-cleaner on bit `bit`.
fn lower_of(c: u32, bit: u32) -> u32 {
    return ((c >> bit) << (bit + 1u)) | (c & ((1u << bit) - 1u));
}

@compute @workgroup_size(256)
fn sort_tiles(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_workgroup(wid, nwg);
    if (t >= params.segments) {
        return;
    }
    let seg = segments[t];
    for (var q = 0u; q < PER_THREAD; q++) {
        let l = q * THREADS + lid;
        if (l < seg.len) {
            tile_keys[l] = to_order(keys[seg.offset + l]);
            tile_positions[l] = l;
        } else {
            tile_keys[l] = SENTINEL;
            tile_positions[l] = SENTINEL;
        }
    }
    workgroupBarrier();
    let top = seg.log_size;
    let pairs = (1u << top) >> 1u;
    for (var k = 1u; k <= top; k++) {
        // The flip: position i of each 2^k block against its mirror.
        let h = k - 1u;
        for (var q = 0u; q < PAIRS; q++) {
            let c = q * THREADS + lid;
            if (c < pairs) {
                let block = (c >> h) << k;
                let within = c & ((1u << h) - 1u);
                compare_exchange(block + within, block + (1u << k) - 1u - within, true);
            }
        }
        workgroupBarrier();
        for (var b = h; b > 0u; b--) {
            for (var q = 0u; q < PAIRS; q++) {
                let c = q * THREADS + lid;
                if (c < pairs) {
                    let lo = lower_of(c, b - 1u);
                    compare_exchange(lo, lo | (1u << (b - 1u)), true);
                }
            }
            workgroupBarrier();
        }
    }
    var moved: array<u32, PER_THREAD>;
    for (var q = 0u; q < PER_THREAD; q++) {
        let l = q * THREADS + lid;
        if (l < seg.len) {
            let origin = tile_positions[l];
            moved[q] = select(values[seg.offset + origin], origin, params.index_values != 0u);
        }
    }
    storageBarrier();               // every value of the segment is read before any is written
    for (var q = 0u; q < PER_THREAD; q++) {
        let l = q * THREADS + lid;
        if (l < seg.len) {
            keys[seg.offset + l] = from_order(tile_keys[l]);
            values[seg.offset + l] = moved[q];
        }
    }
}
