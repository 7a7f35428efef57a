// Log-softmax over the class axis, by max subtraction. The including kernel
// declares `logits: array<f32>`; a pixel's logits sit at base, base + stride,
// …, base + (classes − 1)·stride.

fn class_max(base: u32, stride: u32, classes: u32) -> f32 {
    var m = logits[base];
    for (var c = 1u; c < classes; c++) {
        m = max(m, logits[base + c * stride]);
    }
    return m;
}

// log Σ_c exp(x_c − m).
fn log_sum_exp_shifted(base: u32, stride: u32, classes: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var c = 0u; c < classes; c++) {
        s += exp(logits[base + c * stride] - m);
    }
    return log(s);
}
