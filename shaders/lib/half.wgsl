// f16 and bf16 on their bits, rounding to nearest even on the GPU as the
// host does (gpu/tensor.rs): the conversion passes (convert.wgsl) and the
// kernels that read and write half-precision tensors in place
// (`//#elements` in gpu/shaders.rs) share these. Converting on bits, not
// with WGSL's pack2x16float / unpack2x16float: those need naga's
// SHADER_FLOAT16_IN_FLOAT32 capability, which not every backend offers, and
// pack2x16float may round either way.

// bf16's largest finite value, 0x7F7F as the upper half of an f32.
const BF16_MAX_BITS: u32 = 0x7F7Fu;

// Whether x is NaN or ±Inf, on its bits (lib/finite.wgsl's test; that file
// needs a loss's status binding).
fn half_non_finite(x: f32) -> bool {
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
fn f32_to_bf16(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    if (half_non_finite(v)) {
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

fn bf16_to_f32(bits: u32) -> f32 {
    return bitcast<f32>(bits << 16u);
}

