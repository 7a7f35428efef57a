// Log-softmax over the class axis, by max subtraction. The including kernel
// declares `//#elements logits` (`load_logits`); a pixel's logits sit at base, base + stride,
// …, base + (classes − 1)·stride. (And what lib/finite.wgsl needs: `status`,
// `io`, `value`.)

//#include "lib/finite.wgsl"

fn class_max(base: u32, stride: u32, classes: u32) -> f32 {
    var m = load_logits(base);
    for (var c = 1u; c < classes; c++) {
        m = max(m, load_logits(base + c * stride));
    }
    return m;
}

// A pixel's largest logit, and whether any of its logits is NaN or ±Inf.
struct CheckedMax {
    m: f32,
    non_finite: bool,
}

// class_max for the first pass over a pixel's logits: it flags non-finite
// ones in `status` (lib/finite.wgsl) in the same loop. Pixels whose label
// does not count call it too, so that the GPU refuses what the host does.
fn checked_class_max(base: u32, stride: u32, classes: u32) -> CheckedMax {
    var m = load_logits(base);
    var bits = 0u;
    for (var c = 0u; c < classes; c++) {
        let x = load_logits(base + c * stride);
        m = max(m, x);
        bits |= select(0u, 1u, is_non_finite(x));
    }
    let bad = bits != 0u;
    if (bad) {
        atomicOr(&status, NON_FINITE);
    }
    return CheckedMax(m, bad);
}

// log Σ_c exp(x_c − m).
fn log_sum_exp_shifted(base: u32, stride: u32, classes: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var c = 0u; c < classes; c++) {
        s += exp(load_logits(base + c * stride) - m);
    }
    return log(s);
}
