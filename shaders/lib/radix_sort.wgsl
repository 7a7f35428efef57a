// The body of the segmented LSD radix sort (see radix_sort.wgsl, which runs
// it with a workgroup scan, and radix_sort_subgroup.wgsl, with subgroup
// scans). One pass orders every segment stably by one 8-bit digit of the
// keys, from the *_in buffers into the *_out ones; four passes sort by all
// 32 bits. Per pass the host records:
//
//   upsweep    each tile's digit histogram into counts[segment][digit][tile]
//   [scan.wgsl] one inclusive scan of the whole counts table: at entry
//              (segment, digit, tile) it holds the number of elements of the
//              segments before, of the smaller digits in this segment, and
//              of this digit in the tiles up to this one, so the exclusive
//              value minus the segment's first is where the tile's run of
//              that digit starts inside its segment
//   downsweep  each tile ranked locally (stable), then scattered
//
// The local ranking sorts the tile's (digit, position) pairs in workgroup
// memory by two stable 4-bit splits: each invocation counts the sub-digits
// of its ITEMS consecutive elements into sixteen 16-bit fields packed in
// eight words (struct Counters), and one exclusive scan of those words
// across the invocations (scan_counts, defined by the including file)
// gives every element its new place.
// Nothing waits on another workgroup; every loop is bounded by a constant
// or by the number of subgroups.

//#include "lib/grid.wgsl"
//#include "lib/sort_keys.wgsl"

const WG: u32 = 128u;
const ITEMS: u32 = 16u;
const TILE: u32 = 2048u;          // elements per workgroup: WG × ITEMS
const WORDS: u32 = 8u;            // sixteen 16-bit counters
const PAD_DIGIT: u32 = 0xFFu;     // past the tile's end: sorts after every digit-255 element

// Params.flags
const KEYS_ARE_FLOATS: u32 = 1u;  // keys_in holds f32 bits (the first pass)
const WRITE_FLOATS: u32 = 2u;     // keys_out gets f32 bits (the last pass)
const DYNAMIC_LENGTHS: u32 = 4u;  // a segment holds min(len, lengths[segment]) elements
const INDEX_VALUES: u32 = 8u;     // values start as positions in the segment (the first pass)

struct Params {
    tiles: u32,      // workgroups in the dispatch: Σ tiles over the segments
    segments: u32,
    shift: u32,      // the pass's digit: bits shift … shift + 7 of the order key
    flags: u32,
}

struct Segment {
    offset: u32,     // first element in the bindings
    len: u32,        // elements (at most, with DYNAMIC_LENGTHS)
    tile0: u32,      // first workgroup of the segment
    tiles: u32,      // its workgroups: ⌈len / TILE⌉
    table0: u32,     // its first counts entry: 256 × tiles entries, digit-major
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Sixteen 16-bit counters packed in eight words: sub-digit n in the
// (n & 1) half of word n >> 1, words 0 … 3 in `lo`, 4 … 7 in `hi`. Kept in
// vectors and updated by selects, since indexing an array by a per-lane
// value is slow on SIMD CPUs (lavapipe) and in GPU registers alike.
struct Counters {
    lo: vec4<u32>,
    hi: vec4<u32>,
}

// The counters scanned across the workgroup.
struct Scanned {
    prefix: Counters,   // of the invocations before this one
    total: Counters,    // of the whole tile
}

const WORD_LO: vec4<u32> = vec4<u32>(0u, 1u, 2u, 3u);
const WORD_HI: vec4<u32> = vec4<u32>(4u, 5u, 6u, 7u);

// The lanes are picked by multiplying with a 0/1 mask, not by a vector
// select: naga writes a select of integer vectors as GLSL's mix(), which
// desktop GLSL has only from 4.50 (gpu/translation.rs found it).

// A one in sub-digit n's counter.
fn unit(n: u32) -> Counters {
    let word = vec4<u32>(n >> 1u);
    let one = vec4<u32>(1u << ((n & 1u) * 16u));
    return Counters(vec4<u32>(word == WORD_LO) * one, vec4<u32>(word == WORD_HI) * one);
}

fn add(a: Counters, b: Counters) -> Counters {
    return Counters(a.lo + b.lo, a.hi + b.hi);
}

// Sub-digit n's counter.
fn field(c: Counters, n: u32) -> u32 {
    let word = vec4<u32>(n >> 1u);
    let picked = vec4<u32>(word == WORD_LO) * c.lo | vec4<u32>(word == WORD_HI) * c.hi;
    return ((picked.x | picked.y | picked.z | picked.w) >> ((n & 1u) * 16u)) & 0xFFFFu;
}

fn word(c: Counters, w: u32) -> u32 {
    return select(c.hi[w & 3u], c.lo[w & 3u], w < 4u);
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> segments: array<Segment>;
@group(0) @binding(2) var<storage, read> lengths: array<u32>;
@group(0) @binding(3) var<storage, read> keys_in: array<u32>;
@group(0) @binding(4) var<storage, read> values_in: array<u32>;
@group(0) @binding(5) var<storage, read_write> keys_out: array<u32>;
@group(0) @binding(6) var<storage, read_write> values_out: array<u32>;
@group(0) @binding(7) var<storage, read_write> counts: array<u32>;
@group(0) @binding(8) var<storage, read> offsets: array<u32>;

// The tile's (digit << 16 | position) pairs; the workgroup scan borrows it
// while every invocation holds its elements in registers.
var<workgroup> tile: array<u32, TILE>;
var<workgroup> partial: array<u32, WG>;
var<workgroup> row_total: array<u32, WORDS>;
// Where the tile's run of each digit lands, less the run's start in the tile.
var<workgroup> digit_dest: array<u32, 256>;
var<workgroup> digit_start: array<u32, 256>;
var<workgroup> histogram: array<atomic<u32>, 256>;

// The segment holding workgroup `w`: the last whose first tile is ≤ w.
fn find_segment(w: u32) -> u32 {
    var lo = 0u;
    var hi = params.segments - 1u;
    for (var step = 0u; step < 32u && lo < hi; step++) {
        let mid = (lo + hi + 1u) / 2u;
        if (segments[mid].tile0 <= w) {
            lo = mid;
        } else {
            hi = mid - 1u;
        }
    }
    return lo;
}

// Elements in tile t of segment s.
fn tile_len(s: u32, seg: Segment, t: u32) -> u32 {
    var len = seg.len;
    if ((params.flags & DYNAMIC_LENGTHS) != 0u) {
        len = min(len, lengths[s]);
    }
    return min(TILE, max(len, t * TILE) - t * TILE);
}

fn order_key(word: u32) -> u32 {
    return select(word, to_order(word), (params.flags & KEYS_ARE_FLOATS) != 0u);
}

fn digit_of(word: u32) -> u32 {
    return (order_key(word) >> params.shift) & 0xFFu;
}

@compute @workgroup_size(128)
fn upsweep(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let w = linear_workgroup(wid, nwg);
    if (w >= params.tiles) {
        return;
    }
    let s = find_segment(w);
    let seg = segments[s];
    let t = w - seg.tile0;
    let n = tile_len(s, seg, t);
    let base = seg.offset + t * TILE;
    atomicStore(&histogram[lid], 0u);
    atomicStore(&histogram[lid + WG], 0u);
    workgroupBarrier();
    for (var q = 0u; q < ITEMS; q++) {
        let i = q * WG + lid;
        if (i < n) {
            atomicAdd(&histogram[digit_of(keys_in[base + i])], 1u);
        }
    }
    workgroupBarrier();
    for (var d = lid; d < 256u; d += WG) {
        counts[seg.table0 + d * seg.tiles + t] = atomicLoad(&histogram[d]);
    }
}

// The workgroup scan: the counters of invocation `me` go to column `me` of
// an 8 × WG matrix in `tile`, each row is scanned by raking (16 invocations
// per row, 8 entries each, then one invocation per row over the 16 sums).
fn scan_workgroup(c: Counters, me: u32) -> Scanned {
    workgroupBarrier();             // every invocation has read its elements out of `tile`
    for (var w = 0u; w < WORDS; w++) {
        tile[w * WG + me] = word(c, w);
    }
    workgroupBarrier();
    let first = (me >> 4u) * WG + (me & 15u) * 8u;
    var sum = 0u;
    for (var j = 0u; j < 8u; j++) {
        sum += tile[first + j];
    }
    partial[me] = sum;
    workgroupBarrier();
    if (me < WORDS) {
        var acc = 0u;
        for (var j = 0u; j < 16u; j++) {
            let v = partial[me * 16u + j];
            partial[me * 16u + j] = acc;
            acc += v;
        }
        row_total[me] = acc;
    }
    workgroupBarrier();
    var acc = partial[me];
    for (var j = 0u; j < 8u; j++) {
        let v = tile[first + j];
        tile[first + j] = acc;
        acc += v;
    }
    workgroupBarrier();
    let at = vec4<u32>(me) + WORD_LO * WG;
    let prefix = Counters(
        vec4<u32>(tile[at.x], tile[at.y], tile[at.z], tile[at.w]),
        vec4<u32>(tile[at.x + 4u * WG], tile[at.y + 4u * WG], tile[at.z + 4u * WG], tile[at.w + 4u * WG]),
    );
    let total = Counters(
        vec4<u32>(row_total[0], row_total[1], row_total[2], row_total[3]),
        vec4<u32>(row_total[4], row_total[5], row_total[6], row_total[7]),
    );
    workgroupBarrier();             // every invocation has read the matrix before `tile` is written
    return Scanned(prefix, total);
}

// One stable split of the tile by the 4 bits at `shift` of its pairs.
// `me` is the invocation's place in the workgroup's order: it owns the
// pairs me·ITEMS … me·ITEMS + ITEMS − 1.
fn split(me: u32, shift: u32) {
    var items: array<u32, ITEMS>;
    var c = Counters(vec4<u32>(0u), vec4<u32>(0u));
    for (var q = 0u; q < ITEMS; q++) {
        let e = tile[me * ITEMS + q];
        items[q] = e;
        c = add(c, unit((e >> shift) & 15u));
    }
    let scanned = scan_counts(c, me);
    // Each sub-digit's first place in the tile, plus the invocations before this one.
    var starts = Counters(vec4<u32>(0u), vec4<u32>(0u));
    var run = 0u;
    for (var nib = 0u; nib < 16u; nib++) {
        starts = add(starts, Counters(vec4<u32>(run) * unit(nib).lo, vec4<u32>(run) * unit(nib).hi));
        run += field(scanned.total, nib);
    }
    var place = add(scanned.prefix, starts);
    for (var q = 0u; q < ITEMS; q++) {
        let nib = (items[q] >> shift) & 15u;
        tile[field(place, nib)] = items[q];
        place = add(place, unit(nib));
    }
    workgroupBarrier();
}

// One tile of one pass: ranked in workgroup memory, then scattered.
// `me` as in split().
fn downsweep_tile(w: u32, lid: u32, me: u32) {
    let s = find_segment(w);
    let seg = segments[s];
    let t = w - seg.tile0;
    let n = tile_len(s, seg, t);
    let base = seg.offset + t * TILE;
    // offsets is the inclusive scan of counts: exclusive = inclusive − count.
    let segment_first = offsets[seg.table0] - counts[seg.table0];
    for (var d = lid; d < 256u; d += WG) {
        let entry = seg.table0 + d * seg.tiles + t;
        digit_dest[d] = seg.offset + (offsets[entry] - counts[entry] - segment_first);
    }
    for (var q = 0u; q < ITEMS; q++) {
        let i = q * WG + lid;
        var d = PAD_DIGIT;
        if (i < n) {
            d = digit_of(keys_in[base + i]);
        }
        tile[i] = (d << 16u) | i;
    }
    workgroupBarrier();
    split(me, 16u);
    split(me, 20u);
    for (var q = 0u; q < ITEMS; q++) {
        let i = q * WG + lid;
        let d = tile[i] >> 16u;
        if (i == 0u || (tile[i - 1u] >> 16u) != d) {
            digit_start[d] = i;
        }
    }
    workgroupBarrier();
    for (var q = 0u; q < ITEMS; q++) {
        let i = q * WG + lid;
        let e = tile[i];
        let origin = e & 0xFFFFu;
        if (origin < n) {
            let d = e >> 16u;
            let at = digit_dest[d] + i - digit_start[d];
            var key = order_key(keys_in[base + origin]);
            if ((params.flags & WRITE_FLOATS) != 0u) {
                key = from_order(key);
            }
            keys_out[at] = key;
            if ((params.flags & INDEX_VALUES) != 0u) {
                values_out[at] = t * TILE + origin;
            } else {
                values_out[at] = values_in[base + origin];
            }
        }
    }
}
