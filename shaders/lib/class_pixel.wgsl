// One pixel's probabilities and targets class by class, for kernels that
// take whole images (hausdorff_er, cl_dice): a softmax over the C logits
// with class-index targets, or a sigmoid per channel with dense targets.
// The includer declares `override SOFTMAX: bool`, `//#elements logits` (`load_logits`),
// `targets: array<u32>` (labels or dense targets, as bits), `grad:
// array<f32>` and `class_dp` (for class_backward), and what
// lib/softmax.wgsl and lib/labels.wgsl need.

//#include "lib/numerics.wgsl"
//#include "lib/loss_io.wgsl"
//#include "lib/softmax.wgsl"
//#include "lib/labels.wgsl"

struct ClassPixel {
    base: u32,     // class 0's logit in the binding
    m: f32,        // softmax: the largest logit, and log Σ exp(x − m)
    lse: f32,
    label: i32,    // softmax: the class
}

// Pixel `pixel` (n·S + q) of chunk `ch`. `checked`: flag non-finite logits
// and bad labels (the first pass that reads them).
fn class_pixel(ch: Chunk, pixel: u32, checked: bool) -> ClassPixel {
    let s = ch.spatial;
    var px: ClassPixel;
    px.base = (pixel / s) * ch.classes * s + pixel % s - ch.first_elem;
    if (SOFTMAX) {
        let y = bitcast<i32>(targets[pixel - ch.first_item]);
        if (checked) {
            px.m = checked_class_max(px.base, s, ch.classes).m;
            px.label = checked_label(y, ch.classes, 0u, 0);
        } else {
            px.m = class_max(px.base, s, ch.classes);
            px.label = y;
        }
        px.lse = log_sum_exp_shifted(px.base, s, ch.classes, px.m);
    }
    return px;
}

// (p_c, g_c) of the pixel; `checked` flags a non-finite logit or dense target.
fn class_prob(ch: Chunk, px: ClassPixel, c: u32, checked: bool) -> vec2<f32> {
    let at = px.base + c * ch.spatial;
    let x = load_logits(at);
    if (SOFTMAX) {
        return vec2<f32>(exp(x - px.m - px.lse), select(0.0, 1.0, px.label == i32(c)));
    }
    let g = bitcast<f32>(targets[at]);
    if (checked) {
        _ = flag_non_finite(x);
        _ = flag_non_finite(g);
    }
    return vec2<f32>(sigmoid_parts(x).p, g);
}

// ∂/∂x of the pixel from d = ∂/∂p for every class (`dp(c)` of the includer):
// p_c·(d_c − Σ_k p_k·d_k) through the softmax, σ(x)·σ(−x)·d_c through the
// sigmoid; written or added into `grad` as `io` says.
fn class_backward(ch: Chunk, px: ClassPixel) {
    var dot = 0.0;
    if (SOFTMAX) {
        for (var c = 0u; c < ch.classes; c++) {
            dot += class_prob(ch, px, c, false).x * class_dp(px, c);
        }
    }
    for (var c = 0u; c < ch.classes; c++) {
        let at = px.base + c * ch.spatial;
        var g: f32;
        if (SOFTMAX) {
            g = class_prob(ch, px, c, false).x * (class_dp(px, c) - dot);
        } else {
            // σ'(x) = σ(x)·σ(−x), each side exact.
            let parts = sigmoid_parts(load_logits(at));
            g = parts.p * parts.q * class_dp(px, c);
        }
        if (io.accumulate_grad != 0u) {
            grad[at] += g;
        } else {
            grad[at] = g;
        }
    }
}
