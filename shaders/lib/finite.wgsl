// Non-finite inputs, as every loss kernel flags them. The including kernel
// declares `status: atomic<u32>`, which the host reads back
// (`LossPlan::status_buffer`), and its `io: LossIo` and `value: array<f32>`.
// Rust twin of the bit: `STATUS_NON_FINITE`.
//
// The policy (README, "Decisions"): the pass that reads an input anyway
// flags NaN and ±Inf in it; the step that writes the value then writes NaN,
// so that an engine's NaN check on the loss sees it. No extra pass, and no
// extra load: the flag costs a test of bits already in registers.

// Bit 31 of the status word: a logit, dense target, weight, distance map or
// box coordinate held NaN or ±Inf. The low bits stay each loss's own rules.
const NON_FINITE: u32 = 0x80000000u;

// Whether x is NaN or ±Inf, tested on its bits: a compiler may assume that
// floats are finite (fast math) and fold `x != x` or `abs(x) > MAX` away.
fn is_non_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7F800000u) == 0x7F800000u;
}

// Flags x in `status` when it is NaN or ±Inf; returns whether it was.
fn flag_non_finite(x: f32) -> bool {
    let bad = is_non_finite(x);
    if (bad) {
        atomicOr(&status, NON_FINITE);
    }
    return bad;
}

// A quiet NaN. WGSL has no NaN literal, and a const-expression that is NaN
// is a shader-creation error, so the bits pass through a value only known
// at run time (the status word, masked out).
fn nan_f32() -> f32 {
    return bitcast<f32>(0x7FC00000u | (atomicLoad(&status) & 0u));
}

// Whether an earlier dispatch of the plan flagged a non-finite input.
fn flagged() -> bool {
    return (atomicLoad(&status) & NON_FINITE) != 0u;
}

// Writes `v` into value[at], or adds it there as `io` says; NaN instead
// when `bad` (the element's inputs, or any input, held NaN or ±Inf),
// whatever the element held: NaN + x is not relied on, since a device may
// treat NaN as it likes in arithmetic but not in a store.
fn store_value(at: u32, v: f32, bad: bool) {
    if (bad) {
        value[at] = nan_f32();
    } else if (io.accumulate_value != 0u) {
        value[at] += v;
    } else {
        value[at] = v;
    }
}
