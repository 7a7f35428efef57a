// Element-type conversion around a loss (losses/convert.rs): for the tensors
// a loss's kernels do not read in their own type (`//#elements`,
// gpu/shaders.rs), a plan recording on f16, bf16, u8, u16 or i64 tensors
// widens them into f32 / i32 scratch first and narrows the f32 gradient
// into the caller's f16 / bf16 one last. Packed tensors are bound as u32
// words: element e of a type of `bits` bits sits in word e·bits/32 of the
// tensor, at bit (e·bits) mod 32 (little-endian, as every wgpu backend lays
// out storage). One invocation writes one element (widening) or one word
// (narrowing: two halves, so no two invocations share a word). The bits
// are converted by lib/half.wgsl.

//#include "lib/grid.wgsl"
//#include "lib/half.wgsl"

struct ConvertParams {
    count: u32,       // elements (widen) or words (narrow) of this chunk
    first: u32,       // the chunk's first element (widen) or word (narrow) in the tensor
    src_word0: u32,   // the tensor word at which the source binding starts
    dst_word0: u32,   // the tensor word at which the destination binding starts
    elements: u32,    // elements in the whole tensor (narrow: the last word may be half)
    accumulate: u32,  // narrow: add into the caller's gradient instead of overwriting it
    _pad0: u32,
    _pad1: u32,
}

// What `widen` reads: 0 f16, 1 bf16, 2 u8, 3 u16, 4 i64 (primitives/convert.rs).
override SOURCE: u32 = 0u;
// Whether `narrow` writes bf16 (else f16).
override BF16: bool = false;

@group(0) @binding(0) var<uniform> p: ConvertParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

const WG: u32 = 256u;
// What an i64 outside i32 becomes (tensor.rs's I64_OUT_OF_RANGE, i32::MIN).
const I64_OUT_OF_RANGE: u32 = 0x80000000u;

fn item(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return linear_workgroup(wid, nwg) * WG + lid;
}

// Bits [shift, shift + width) of tensor word `word` of the source.
fn src_bits(word: u32, shift: u32, width: u32) -> u32 {
    let w = src[word - p.src_word0];
    return (w >> shift) & ((1u << width) - 1u);
}

fn store(element: u32, bits: u32) {
    dst[element - p.dst_word0] = bits;
}

// The caller's element e in the widened type's bits.
fn widened(e: u32) -> u32 {
    switch SOURCE {
        case 0u: {
            return bitcast<u32>(f16_to_f32(src_bits(e / 2u, 16u * (e & 1u), 16u)));
        }
        case 1u: {
            return src_bits(e / 2u, 16u * (e & 1u), 16u) << 16u;
        }
        case 2u: {
            return src_bits(e / 4u, 8u * (e & 3u), 8u);
        }
        case 3u: {
            return src_bits(e / 2u, 16u * (e & 1u), 16u);
        }
        default: {
            let lo = src[2u * e - p.src_word0];
            let hi = src[2u * e + 1u - p.src_word0];
            // It fits i32 when the high word is the low word's sign extension.
            let fits = hi == select(0u, 0xFFFFFFFFu, lo >= 0x80000000u);
            return select(I64_OUT_OF_RANGE, lo, fits);
        }
    }
}

@compute @workgroup_size(256)
fn widen(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if (i >= p.count) {
        return;
    }
    let e = p.first + i;
    store(e, widened(e));
}

// The f32 gradient's elements 2w and 2w + 1 (the second only if it exists).
fn gradient_pair(w: u32) -> vec2<f32> {
    let e = 2u * w;
    var g = vec2<f32>(bitcast<f32>(src[e - p.src_word0]), 0.0);
    if (e + 1u < p.elements) {
        g.y = bitcast<f32>(src[e + 1u - p.src_word0]);
    }
    return g;
}

// A word of two f16 or bf16 halves, and back.
fn pack_pair(g: vec2<f32>) -> u32 {
    if (BF16) {
        return f32_to_bf16(g.x) | (f32_to_bf16(g.y) << 16u);
    }
    return f32_to_f16(g.x) | (f32_to_f16(g.y) << 16u);
}

fn unpack_pair(w: u32) -> vec2<f32> {
    if (BF16) {
        return vec2<f32>(bf16_to_f32(w & 0xFFFFu), bf16_to_f32(w >> 16u));
    }
    return vec2<f32>(f16_to_f32(w & 0xFFFFu), f16_to_f32(w >> 16u));
}

@compute @workgroup_size(256)
fn narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = item(wid, nwg, lid);
    if (i >= p.count) {
        return;
    }
    let w = p.first + i;
    let old = dst[w - p.dst_word0];
    var g = gradient_pair(w);
    if (p.accumulate != 0u) {
        g += unpack_pair(old);
    }
    var word = pack_pair(g);
    if (2u * w + 1u >= p.elements) {
        // An odd tensor's last word: its upper half is padding, left as it was.
        word = (word & 0xFFFFu) | (old & 0xFFFF0000u);
    }
    dst[w - p.dst_word0] = word;
}
