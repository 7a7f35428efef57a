// A loss's reduced value: value[k] = scale · sums[k] / denominator (0 when
// the denominator is 0, e.g. every pixel ignored), written or accumulated.

//#include "lib/loss_io.wgsl"

@group(0) @binding(0) var<uniform> io: LossIo;
@group(0) @binding(1) var<storage, read> denom: array<f32>;
@group(0) @binding(2) var<storage, read> sums: array<f32>;
@group(0) @binding(3) var<storage, read_write> value: array<f32>;

override COUNT: u32 = 1u;

@compute @workgroup_size(64)
fn finalize(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    if (k >= COUNT) {
        return;
    }
    let d = denom[0];
    let v = io.scale * select(0.0, sums[k] / d, d > 0.0);
    if (io.accumulate_value != 0u) { value[k] += v; } else { value[k] = v; }
}
