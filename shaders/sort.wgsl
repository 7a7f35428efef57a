// Bitonic key-value sort of many segments at once, in place: each segment
// ends up ordered by key descending, equal keys by value ascending (when the
// values are the elements' positions, ties keep their original order).
//
// Keys are f32 bits. Compared as `to_order` maps them, an unsigned order in
// which larger floats come first, −0 equals +0, and NaNs sit at the ends; no
// float arithmetic touches them, so no device can flush or reorder them.
//
// A segment of `len` elements is sorted by the network for the next power
// of two, 2^log_size positions. The network is the "flip" form of bitonic
// sort: every comparator puts the smaller element at the lower position, so
// positions ≥ len act as +∞ that never move and are never stored.
//
// Two kernels, one workgroup per TILE positions of a segment:
// - sort_tiles sorts each tile in workgroup memory (merges 1 … 11);
// - merge_pass runs some steps of merge `merge` (blocks of 2^merge): the
//   steps whose comparators span bits hi_bit … lo_bit. Seen through the
//   relabelling r → r ^ (2^(merge−1) − 1) of each block's upper half, the
//   merge's first (flip) step is a plain half-cleaner and every later step
//   keeps its pairs, sorting that half descending: so any run of steps on
//   consecutive bits works on one tile-sized set of positions (the pass's
//   bits, plus the lowest bits as a contiguous run for coalesced access).
// The host issues one sort_tiles, then per merge above the tile the passes
// down to bit 11 and a last pass on bits 10 … 0. Every invocation runs a
// few hundred loop iterations at most, whatever the sizes.

//#include "lib/grid.wgsl"

const THREADS: u32 = 256u;
const LOG_TILE: u32 = 11u;
const TILE: u32 = 2048u;       // positions per workgroup: 2 × 8 KiB of workgroup memory
const PER_THREAD: u32 = 8u;    // positions each invocation loads and stores
const PAIRS: u32 = 4u;         // comparators each invocation runs per step
const SENTINEL: u32 = 0xFFFFFFFFu;

struct Segment {
    offset: u32,    // first element in the bindings
    len: u32,       // elements
    tile0: u32,     // first workgroup of the segment
    log_size: u32,  // the network sorts 2^log_size positions
}

struct Params {
    tiles: u32,         // workgroups in the dispatch
    segments: u32,
    merge: u32,         // merge_pass: log2 of the blocks being merged
    hi_bit: u32,        // merge_pass: comparator bits of this pass, hi_bit … lo_bit
    lo_bit: u32,
    index_values: u32,  // sort_tiles: values start as positions in the segment
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> segments: array<Segment>;
@group(0) @binding(2) var<storage, read_write> keys: array<u32>;
@group(0) @binding(3) var<storage, read_write> values: array<u32>;

var<workgroup> tile_keys: array<u32, TILE>;
var<workgroup> tile_values: array<u32, TILE>;

// f32 bits → an unsigned key that orders descending floats ascending.
fn to_order(bits: u32) -> u32 {
    var b = bits;
    if ((b & 0x7FFFFFFFu) == 0u) {
        b = 0u;
    }
    let ascending = select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
    return ~ascending;
}

fn from_order(order: u32) -> u32 {
    let ascending = ~order;
    return select(~ascending, ascending & 0x7FFFFFFFu, (ascending & 0x80000000u) != 0u);
}

// The segment holding workgroup `t`: the last whose first tile is ≤ t.
fn find_segment(t: u32) -> Segment {
    var lo = 0u;
    var hi = params.segments - 1u;
    for (var step = 0u; step < 32u && lo < hi; step++) {
        let mid = (lo + hi + 1u) / 2u;
        if (segments[mid].tile0 <= t) {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    return segments[lo];
}

// Orders tile positions a < b: the smaller (key, value) at a when ascending.
fn compare_exchange(a: u32, b: u32, ascending: bool) {
    let ka = tile_keys[a];
    let kb = tile_keys[b];
    let va = tile_values[a];
    let vb = tile_values[b];
    let b_less = kb < ka || (kb == ka && vb < va);
    let a_less = ka < kb || (ka == kb && va < vb);
    if (select(a_less, b_less, ascending)) {
        tile_keys[a] = kb;
        tile_keys[b] = ka;
        tile_values[a] = vb;
        tile_values[b] = va;
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
    if (t >= params.tiles) {
        return;
    }
    let seg = find_segment(t);
    let start = (t - seg.tile0) * TILE;
    for (var q = 0u; q < PER_THREAD; q++) {
        let l = q * THREADS + lid;
        let pos = start + l;
        if (pos < seg.len) {
            tile_keys[l] = to_order(keys[seg.offset + pos]);
            tile_values[l] = select(values[seg.offset + pos], pos, params.index_values != 0u);
        } else {
            tile_keys[l] = SENTINEL;
            tile_values[l] = SENTINEL;
        }
    }
    workgroupBarrier();
    // A segment shorter than the tile needs only its own merges.
    let top = min(LOG_TILE, seg.log_size);
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
    for (var q = 0u; q < PER_THREAD; q++) {
        let l = q * THREADS + lid;
        let pos = start + l;
        if (pos < seg.len) {
            keys[seg.offset + pos] = from_order(tile_keys[l]);
            values[seg.offset + pos] = tile_values[l];
        }
    }
}

@compute @workgroup_size(256)
fn merge_pass(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = linear_workgroup(wid, nwg);
    if (t >= params.tiles) {
        return;
    }
    let seg = find_segment(t);
    let k = params.merge;
    // A segment shorter than the blocks is already sorted.
    if (seg.log_size < k) {
        return;
    }
    let w = t - seg.tile0;
    let lo_bit = params.lo_bit;
    let hi_bit = params.hi_bit;
    // Local position l: its low `run` bits are the low bits of the index,
    // its high bits are the pass's bits; the workgroup number fills the rest.
    let run = LOG_TILE - (hi_bit - lo_bit + 1u);
    let gap = lo_bit - run;
    let base = ((w & ((1u << gap) - 1u)) << run) | ((w >> gap) << (hi_bit + 1u));
    let run_mask = (1u << run) - 1u;
    let half = k - 1u;
    let mirror = (1u << half) - 1u;
    for (var q = 0u; q < PER_THREAD; q++) {
        let l = q * THREADS + lid;
        let r = base | ((l >> run) << lo_bit) | (l & run_mask);
        let pos = select(r, r ^ mirror, ((r >> half) & 1u) != 0u);
        if (pos < seg.len) {
            tile_keys[l] = to_order(keys[seg.offset + pos]);
            tile_values[l] = values[seg.offset + pos];
        } else {
            tile_keys[l] = SENTINEL;
            tile_values[l] = SENTINEL;
        }
    }
    workgroupBarrier();
    for (var b = hi_bit + 1u; b > lo_bit; b--) {
        let m = run + (b - 1u - lo_bit);
        for (var q = 0u; q < PAIRS; q++) {
            let c = q * THREADS + lid;
            let lo = lower_of(c, m);
            let r = base | ((lo >> run) << lo_bit) | (lo & run_mask);
            compare_exchange(lo, lo | (1u << m), ((r >> half) & 1u) == 0u);
        }
        workgroupBarrier();
    }
    for (var q = 0u; q < PER_THREAD; q++) {
        let l = q * THREADS + lid;
        let r = base | ((l >> run) << lo_bit) | (l & run_mask);
        let pos = select(r, r ^ mirror, ((r >> half) & 1u) != 0u);
        if (pos < seg.len) {
            keys[seg.offset + pos] = from_order(tile_keys[l]);
            values[seg.offset + pos] = tile_values[l];
        }
    }
}
