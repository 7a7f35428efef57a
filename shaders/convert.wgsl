// Element-type conversion around a loss (gpu/convert.rs): the kernels read
// f32 and i32, so a plan recording on f16, bf16, u8, u16 or i64 tensors
// widens them into f32 / i32 scratch first and narrows the f32 gradient
// into the caller's f16 / bf16 one last. Packed tensors are bound as u32
// words: element e of a type of `bits` bits sits in word e·bits/32 of the
// tensor, at bit (e·bits) mod 32 (little-endian, as every wgpu backend lays
// out storage). One invocation writes one element (widening) or one word
// (narrowing: two halves, so no two invocations share a word). f16 is
// converted on its bits, not with WGSL's pack2x16float / unpack2x16float:
// those need naga's SHADER_FLOAT16_IN_FLOAT32 capability, which not every
// backend offers, and pack2x16float may round either way.

//#include "lib/grid.wgsl"

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
const F16_MAX: f32 = 65504.0;
// bf16's largest finite value, 0x7F7F as the upper half of an f32.
const BF16_MAX_BITS: u32 = 0x7F7Fu;
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

// Whether x is NaN or ±Inf, on its bits (lib/finite.wgsl's test; that file
// needs a loss's status binding).
fn non_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7F800000u) == 0x7F800000u;
}

// f16 bits (the low 16 of h) to f32, exactly.
fn f16_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let exponent = (h >> 10u) & 0x1Fu;
    let mantissa = h & 0x3FFu;
    if (exponent == 0u) {
        // Zero or subnormal: mantissa × 2^-24, exact in f32.
        return bitcast<f32>(bitcast<u32>(f32(mantissa) * 5.9604644775390625e-8) | sign);
    }
    if (exponent == 31u) {
        return bitcast<f32>(sign | 0x7F800000u | (mantissa << 13u));
    }
    return bitcast<f32>(sign | ((exponent + 112u) << 23u) | (mantissa << 13u));
}

// f32 to f16 bits, rounding to nearest even: finite values that would round
// past f16's range saturate to ±65504, so a gradient stays finite; ±∞ stays
// ±∞ and NaN becomes f16's quiet NaN (a non-finite input's gradient).
fn f32_to_f16(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    let sign = (bits >> 16u) & 0x8000u;
    let magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u) {
        return sign | 0x7E00u;
    }
    if (magnitude == 0x7F800000u) {
        return sign | 0x7C00u;
    }
    if (magnitude >= 0x477FF000u) {
        // 65520 and up round to +∞ in f16.
        return sign | 0x7BFFu;
    }
    if (magnitude >= 0x38800000u) {
        // A normal f16 (≥ 2^-14): rebias the exponent (127 → 15), round 23
        // mantissa bits to 10; a carry into the exponent is still in range.
        let rebiased = magnitude - 0x38000000u;
        return sign | ((rebiased + 0xFFFu + ((rebiased >> 13u) & 1u)) >> 13u);
    }
    // A subnormal f16 (or zero): the nearest multiple of 2^-24, ties to even
    // (WGSL's round); 1024 of them is the smallest normal, encoded alike.
    return sign | u32(round(abs(v) * 16777216.0));
}

// f32 to bf16 bits, rounding to nearest even; finite values that would
// round past bf16's range saturate to its largest, ±∞ stays ±∞, NaN becomes
// a quiet NaN.
fn to_bf16(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    if (non_finite(v)) {
        if ((bits & 0x7FFFFFu) != 0u) {
            return ((bits >> 16u) & 0x8000u) | 0x7FC0u;
        }
        return bits >> 16u;
    }
    let rounded = (bits + 0x7FFFu + ((bits >> 16u) & 1u)) >> 16u;
    if ((rounded & 0x7FFFu) >= 0x7F80u) {
        return (rounded & 0x8000u) | BF16_MAX_BITS;
    }
    return rounded;
}

fn from_bf16(bits: u32) -> f32 {
    return bitcast<f32>(bits << 16u);
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
        return to_bf16(g.x) | (to_bf16(g.y) << 16u);
    }
    return f32_to_f16(g.x) | (f32_to_f16(g.y) << 16u);
}

fn unpack_pair(w: u32) -> vec2<f32> {
    if (BF16) {
        return vec2<f32>(from_bf16(w & 0xFFFFu), from_bf16(w >> 16u));
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
