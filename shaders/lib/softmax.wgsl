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
