// Per-element sigmoid losses, value and gradient in one pass: `bce` and the
// sigmoid modes of `focal` (see SPEC.md). With p = σ(x), q = 1 − p_t:
//
//   l  = w · α_t · q^γ · ce,   ce = −(A·y·log p + B·(1−y)·log(1−p))
//   bce:   A, B = pos_weight, 1  (or α, 1−α);  α_t = 1;  γ = 0
//   focal: A = B = 1;  α_t = α·y + (1−α)(1−y) (or 1);  γ ≥ 0
//
//   ∂l/∂x = w·α_t·( q^γ·∂ce/∂x + ce·∂q^γ/∂x ),
//   ∂ce/∂x = B(1−y)p − A·y(1−p),   ∂q^γ/∂x = γ·q^γ·(1−2y)·p(1−p)/q
//
// p(1−p)/q is computed without dividing by q (it is p when y = 1, 1−p when
// y = 0), so the gradient stays finite for γ < 1 as q → 0.
// A NaN or ±Inf logit, target or weight sets NON_FINITE in `status`
// (lib/finite.wgsl) and makes its element's value NaN.

//#include "lib/numerics.wgsl"
//#include "lib/workgroup.wgsl"
//#include "lib/loss_io.wgsl"
//#include "lib/finite.wgsl"

struct Params {
    chunk: Chunk,
    pos_coef: f32,        // A
    neg_coef: f32,        // B
    alpha: f32,
    has_alpha: u32,       // focal's α_t
    gamma: f32,
    has_weight: u32,
    write_elements: u32,  // reduction "none": per-element values
    write_grad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> io: LossIo;
@group(0) @binding(2) var<storage, read> denom: array<f32>;   // the mean's denominator (1 for sum, none)
//#elements logits @binding(3) read
//#elements targets @binding(4) read
//#elements weights @binding(5) read
//#elements grad @binding(6) read_write
@group(0) @binding(7) var<storage, read_write> value: array<f32>;
@group(0) @binding(8) var<storage, read_write> partials: array<f32>;
@group(0) @binding(9) var<storage, read_write> status: atomic<u32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile = linear_workgroup(wid, nwg);
    let ch = params.chunk;
    if (tile_is_past(tile, ch.count)) {
        return;
    }
    let out_scale = mean_scale(io.scale, denom[0]);
    var acc = 0.0;
    for (var k = 0u; k < ITEMS; k++) {
        let i = tile_item(tile, k, lid);
        if (i < ch.count) {
            let e = ch.item0 + i - ch.first_elem;
            let x = load_logits(e);
            let y = load_targets(e);
            // Non-finite inputs are flagged here, the one pass that reads them (lib/finite.wgsl).
            var bad = flag_non_finite(x) | flag_non_finite(y);
            let parts = sigmoid_parts(x);
            let p = parts.p;
            let one_minus_p = parts.q;
            let a = params.pos_coef;
            let b = params.neg_coef;
            var ce = a * y * parts.softplus_neg + b * (1.0 - y) * parts.softplus_pos;
            var dce = b * (1.0 - y) * p - a * y * one_minus_p;
            var w = 1.0;
            if (params.has_weight != 0u) {
                w = load_weights(e);
                bad = flag_non_finite(w) | bad;
            }
            if (params.has_alpha != 0u) {
                w = w * (params.alpha * y + (1.0 - params.alpha) * (1.0 - y));
            }
            var l = ce;
            var dl = dce;
            if (params.gamma != 0.0) {
                // log q and p(1−p)/q, exact for hard targets, and for soft ones by q itself.
                var log_q: f32;
                var r: f32;
                if (y == 1.0) {
                    log_q = -parts.softplus_pos;
                    r = p;
                } else if (y == 0.0) {
                    log_q = -parts.softplus_neg;
                    r = one_minus_p;
                } else {
                    let q = p * (1.0 - y) + one_minus_p * y;
                    log_q = log(q);
                    r = select(0.0, p * one_minus_p / q, q > 0.0);
                }
                let f = pow_from_log(log_q, params.gamma);
                l = f * ce;
                dl = f * (dce + ce * params.gamma * (1.0 - 2.0 * y) * r);
            }
            l = w * l;
            acc += l;
            if (params.write_elements != 0u) {
                store_value(e, io.scale * l, bad);
            }
            if (params.write_grad != 0u) {
                let g = out_scale * w * dl;
                if (io.accumulate_grad != 0u) { add_grad(e, g); } else { store_grad(e, g); }
            }
        }
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u && params.write_elements == 0u) {
        partials[ch.tile0 + tile] = total;
    }
}
