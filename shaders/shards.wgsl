// A data-parallel plan's own steps (losses/shards.rs), around the loss's
// kernels. Each device records the loss's statistics for its slice of the
// batch; the engine sums them over devices; each device then finishes with
// the sums.
//
// A loss whose value is a mean (or sum) of terms local to one image has two
// statistics per value entry i: S_i = v_i·D (the slice's value v times the
// slice's denominator D; v itself for a sum), then D. With the sums,
//
//   value_i = scale · f(ΣS_i / ΣD),  f = identity, or log1p (hausdorff_dt's `log`)
//
// and the slice's gradient is its own mean's gradient times
// scale · (D / ΣD) · f'(v): `finish` writes that factor into the scale of
// the plan that computes the gradient next, which multiplies its gradient
// (and its value, which nobody reads) by it; or, where each value entry's
// f'(v_i) differs (log of several values), one factor per entry into the
// buffer that plan's gradient pass reads them from.
//
// A loss whose groups span the batch (aggregate "batch") copies its own
// group sums out (`copy`), and the summed ones back in before its finish.

//#include "lib/numerics.wgsl"

struct ShardParams {
    len: u32,              // value entries (gather, finish), or f32 to copy
    mean: u32,             // 1: divide by the summed denominator; 0: a sum
    log1p: u32,            // f = log1p (one value entry)
    accumulate_value: u32,
    scale: f32,            // the plan's scale on value and gradient
    per_entry: u32,        // one gradient factor per value entry (else one, the scale)
    source_offset: u32,    // copy: where in `source` and in `destination` the run starts
    destination_offset: u32,
}

@group(0) @binding(0) var<uniform> sp: ShardParams;
@group(0) @binding(1) var<storage, read> local_value: array<f32>;
@group(0) @binding(2) var<storage, read> local_denominator: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats_out: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> value: array<f32>;
// The gradient plan's factors: its LossIo, whose scale is word 0, or its
// factor per value entry.
@group(0) @binding(6) var<storage, read_write> grad_factors: array<f32>;
@group(0) @binding(7) var<storage, read> source: array<f32>;
@group(0) @binding(8) var<storage, read_write> destination: array<f32>;

// The slice's statistics: S_i, then D (for a mean).
@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let d = local_denominator[0];
    if (i < sp.len) {
        stats_out[i] = select(local_value[i], local_value[i] * d, sp.mean != 0u);
    } else if (i == sp.len && sp.mean != 0u) {
        stats_out[i] = d;
    }
}

// The global value from the summed statistics, and the slice's gradient factor.
@compute @workgroup_size(64)
fn finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= sp.len) {
        return;
    }
    var v = stats[i];
    var share = 1.0;
    if (sp.mean != 0u) {
        // A mean over nothing (every pixel of every device ignored) is 0.
        let d = stats[sp.len];
        v = select(0.0, v / d, d > 0.0);
        share = select(0.0, local_denominator[0] / d, d > 0.0);
    }
    var out = v;
    var slope = 1.0;
    if (sp.log1p != 0u) {
        out = log1p_pos(v);
        slope = 1.0 / (1.0 + v);
    }
    out = sp.scale * out;
    if (sp.accumulate_value != 0u) {
        out += value[i];
    }
    value[i] = out;
    if (sp.per_entry != 0u) {
        grad_factors[i] = sp.scale * share * slope;
    } else if (i == 0u) {
        grad_factors[0] = sp.scale * share * slope;
    }
}

// destination[d + i] = source[s + i] for i in [0, len): a loss's statistics
// to and from its place in the caller's (a compound's terms one after another).
@compute @workgroup_size(64)
fn copy(@builtin(global_invocation_id) gid: vec3<u32>) {
    for (var i = gid.x; i < sp.len; i += 64u * 64u) {
        destination[sp.destination_offset + i] = source[sp.source_offset + i];
    }
}
