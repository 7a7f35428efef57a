// A loss's reduced value: value[k] = scale · sums[k] / denominator (0 when
// the denominator is 0, e.g. every pixel ignored), written or accumulated;
// NaN once an earlier pass flagged a non-finite input (lib/finite.wgsl).

//#include "lib/loss_io.wgsl"
//#include "lib/finite.wgsl"

@group(0) @binding(0) var<uniform> io: LossIo;
@group(0) @binding(1) var<storage, read> denom: array<f32>;
@group(0) @binding(2) var<storage, read> sums: array<f32>;
@group(0) @binding(3) var<storage, read_write> value: array<f32>;
@group(0) @binding(4) var<storage, read_write> status: atomic<u32>;

override COUNT: u32 = 1u;

@compute @workgroup_size(64)
fn finalize(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    if (k >= COUNT) {
        return;
    }
    let d = denom[0];
    store_value(k, io.scale * select(0.0, sums[k] / d, d > 0.0), flagged());
}
