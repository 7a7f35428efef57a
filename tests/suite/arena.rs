//! Tensors that share one buffer, as an engine's memory pool places them:
//! every loss, with all its slots at random disjoint, aligned places of one
//! arena, gives bit-identical results to separate buffers, and leaves its
//! inputs as they were. Overlapping ranges where one is written are refused.

use rand::seq::SliceRandom;
use rand::{Rng, rngs::StdRng};
use segloss::tools::samples;
use segloss::{DType, GpuContext, GpuTensor, HostInputs, HostTensor, InputShapes, LossConfig, LossInputs, LossOutputs, LossPlan, PlanOptions};

use crate::common::{config, ctx, packed_f16_runner, rng};

/// One configuration of every loss (and the inputs it takes beyond logits and target).
const CASES: &[(&str, &[usize])] = &[
    (r#"{"loss": "bce", "params": {"pos_weight": 2.0}}"#, &[2, 1, 17, 13]),
    (r#"{"loss": "bce", "params": {"reduction": "none"}}"#, &[2, 3, 9, 7]),
    (r#"{"loss": "cross_entropy", "params": {"ignore_index": 0, "class_weights": [1, 2, 0.5]}}"#, &[2, 3, 11, 9]),
    (r#"{"loss": "focal", "params": {"mode": "multiclass", "reduction": "none"}}"#, &[2, 4, 10, 6]),
    (r#"{"loss": "focal", "params": {"mode": "binary"}}"#, &[3, 1, 9, 9]),
    (r#"{"loss": "dice", "params": {}}"#, &[2, 3, 12, 10]),
    (r#"{"loss": "jaccard", "params": {"mode": "multilabel", "reduction": "none"}}"#, &[2, 3, 8, 8]),
    (r#"{"loss": "tversky", "params": {"alpha": 0.3, "beta": 0.7, "aggregate": "batch"}}"#, &[2, 3, 9, 9]),
    (r#"{"loss": "generalized_dice", "params": {}}"#, &[2, 4, 10, 10]),
    (r#"{"loss": "box_iou", "params": {"kind": "ciou", "reduction": "none"}}"#, &[37, 4]),
    (r#"{"loss": "mask_giou", "params": {}}"#, &[5, 12, 11]),
    (r#"{"loss": "boundary", "params": {}}"#, &[2, 3, 10, 12]),
    (r#"{"loss": "lovasz_softmax", "params": {"per_image": true}}"#, &[2, 3, 9, 11]),
    (r#"{"loss": "lovasz_hinge", "params": {}}"#, &[2, 1, 13, 9]),
];

/// Host data for every input slot the case fills: name, tensor.
fn host_inputs(config: &LossConfig, shape: &[usize], r: &mut StdRng) -> Vec<(&'static str, HostTensor)> {
    let (logits, target) = samples::inputs(config, shape, r).unwrap();
    let mut slots = vec![("logits", logits), ("target", target)];
    let n: usize = shape.iter().product();
    match config.name() {
        "bce" => slots.push(("weight", HostTensor::f32(shape, (0..n).map(|_| r.random_range(0.0..2.0)).collect()).unwrap())),
        "boundary" => slots.push(("distance", HostTensor::f32(shape, (0..n).map(|_| r.random_range(-4.0..4.0)).collect()).unwrap())),
        _ => {}
    }
    slots
}

fn shapes_of(inputs: &[(&str, HostTensor)]) -> InputShapes {
    let find = |name: &str| inputs.iter().find(|(n, _)| *n == name).map(|(_, t)| t);
    let inputs = HostInputs { weight: find("weight"), ..HostInputs::new(find("logits").unwrap(), find("target").unwrap()) };
    inputs.shapes()
}

/// Records `plan` on `inputs` placed by `place` (name, shape, dtype → tensor), returns value and gradient bits.
fn run(ctx: &GpuContext, plan: &LossPlan, tensors: &[(&str, GpuTensor)], value: &GpuTensor, grad: &GpuTensor) -> (Vec<u32>, Vec<u32>) {
    let get = |name: &str| tensors.iter().find(|(n, _)| *n == name).map(|(_, t)| t);
    let mut inputs = LossInputs::new(get("logits").unwrap(), get("target").unwrap());
    inputs.weight = get("weight");
    inputs.distance = get("distance");
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    plan.record(&mut encoder, inputs, LossOutputs::new(value, grad)).unwrap_or_else(|e| panic!("recording: {e}"));
    ctx.queue().submit([encoder.finish()]);
    let bits = |t: &GpuTensor| t.read_f32(ctx).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    (bits(value), bits(grad))
}

/// Places `sizes` (bytes) in one buffer in a random order with random aligned gaps; returns the offsets and the size.
fn arrange(sizes: &[u64], align: u64, r: &mut StdRng) -> (Vec<u64>, u64) {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.shuffle(r);
    let mut offsets = vec![0; sizes.len()];
    let mut at = 0u64;
    for i in order {
        at += align * r.random_range(0..3);
        offsets[i] = at;
        at = (at + sizes[i]).next_multiple_of(align);
    }
    (offsets, at.max(align))
}

#[test]
fn every_loss_gives_the_same_bits_with_all_its_slots_in_one_buffer() {
    same_bits_in_one_buffer(ctx(), DType::F32);
}

#[test]
fn in_f16_both_ways_and_bf16_too() {
    // The in-place kernels then bind logits and gradient of one buffer
    // read-write, and write the gradient in words with atomics.
    same_bits_in_one_buffer(ctx(), DType::F16);
    same_bits_in_one_buffer(packed_f16_runner().context(), DType::F16);
    same_bits_in_one_buffer(ctx(), DType::BF16);
}

/// `bytes` padded to whole words, as buffers are written.
fn padded(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.resize(bytes.len().next_multiple_of(4), 0);
    v
}

/// Every case with its floating inputs (not distance maps) and gradient in
/// `dtype`, on `ctx`: the same bits in one arena as in separate buffers.
fn same_bits_in_one_buffer(ctx: &GpuContext, dtype: DType) {
    let align = ctx.offset_alignment();
    let mut r = rng(9);
    for (i, (json, shape)) in CASES.iter().enumerate() {
        let config = config(json);
        let inputs: Vec<(&str, HostTensor)> = host_inputs(&config, shape, &mut rng(100 + i as u64))
            .into_iter()
            .map(|(n, t)| if n != "distance" && t.dtype().is_float() { (n, t.to_dtype(dtype).unwrap()) } else { (n, t) })
            .collect();
        let plan = config.plan(ctx, &shapes_of(&inputs), PlanOptions::default()).unwrap_or_else(|e| panic!("{json}: {e}"));
        let value_shape = plan.value_shape().to_vec();
        let grad_shape = inputs[0].1.shape.clone();

        // Separate buffers: the expected bits.
        let separate: Vec<(&str, GpuTensor)> = inputs.iter().map(|(n, t)| (*n, GpuTensor::from_host(ctx, t).unwrap())).collect();
        let value = GpuTensor::zeros(ctx, &value_shape, DType::F32).unwrap();
        let grad = GpuTensor::zeros(ctx, &grad_shape, dtype).unwrap();
        let expected = run(ctx, &plan, &separate, &value, &grad);

        for arrangement in 0..3 {
            // Inputs, value and gradient at random places of one arena.
            let mut sizes: Vec<u64> = inputs.iter().map(|(_, t)| padded(t.bytes()).len() as u64).collect();
            sizes.push(4 * value_shape.iter().product::<usize>() as u64);
            sizes.push(grad.byte_len());
            let (offsets, total) = arrange(&sizes, align, &mut r);
            let arena = GpuTensor::zeros(ctx, &[(total / 4) as usize], DType::F32).unwrap().buffer().clone();
            let mut placed = Vec::new();
            for ((name, host), &offset) in inputs.iter().zip(&offsets) {
                ctx.queue().write_buffer(&arena, offset, &padded(host.bytes()));
                placed.push((*name, GpuTensor::new(ctx, arena.clone(), offset, &host.shape, host.dtype()).unwrap()));
            }
            let k = inputs.len();
            let value = GpuTensor::new(ctx, arena.clone(), offsets[k], &value_shape, DType::F32).unwrap();
            let grad = GpuTensor::new(ctx, arena.clone(), offsets[k + 1], &grad_shape, dtype).unwrap();
            let got = run(ctx, &plan, &placed, &value, &grad);
            let path = if dtype == DType::F16 && !ctx.native_f16() { " in words" } else { "" };
            assert!(got == expected, "{json} in {}{path}, arrangement {arrangement} at {offsets:?}: the results differ from separate buffers", dtype.name());
            for ((name, host), (_, tensor)) in inputs.iter().zip(&placed) {
                let back = tensor.read_host(ctx).unwrap();
                assert_eq!(back.bytes(), host.bytes(), "{json}: {name} was modified");
            }
        }
    }
}

#[test]
fn a_compound_loss_runs_on_one_arena() {
    let ctx = ctx();
    let align = ctx.offset_alignment();
    let compound = segloss::CompoundConfig::new(vec![
        (1.0, config(r#"{"loss": "cross_entropy", "params": {}}"#)),
        (0.5, config(r#"{"loss": "dice", "params": {}}"#)),
        (0.1, config(r#"{"loss": "boundary", "params": {}}"#)),
    ])
    .unwrap();
    let shape = [2usize, 3, 12, 9];
    let inputs = host_inputs(&config(r#"{"loss": "cross_entropy", "params": {}}"#), &shape, &mut rng(3));
    let plan = compound.plan(ctx, &shapes_of(&inputs), PlanOptions::default()).unwrap();
    let record = |logits: &GpuTensor, target: &GpuTensor, value: &GpuTensor, grad: &GpuTensor| {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        plan.record(&mut encoder, LossInputs::new(logits, target), LossOutputs::new(value, grad)).unwrap();
        ctx.queue().submit([encoder.finish()]);
        let bits = |t: &GpuTensor| t.read_f32(ctx).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        (bits(value), bits(grad))
    };
    let (x, y) = (GpuTensor::from_host(ctx, &inputs[0].1).unwrap(), GpuTensor::from_host(ctx, &inputs[1].1).unwrap());
    let expected =
        record(&x, &y, &GpuTensor::zeros(ctx, &[1], DType::F32).unwrap(), &GpuTensor::zeros(ctx, &shape, DType::F32).unwrap());
    let sizes = [inputs[0].1.bytes().len() as u64, inputs[1].1.bytes().len() as u64, 4, inputs[0].1.bytes().len() as u64];
    let (offsets, total) = arrange(&sizes, align, &mut rng(4));
    let arena = GpuTensor::zeros(ctx, &[(total / 4) as usize], DType::F32).unwrap().buffer().clone();
    ctx.queue().write_buffer(&arena, offsets[0], inputs[0].1.bytes());
    ctx.queue().write_buffer(&arena, offsets[1], inputs[1].1.bytes());
    let at = |i: usize, shape: &[usize], dtype| GpuTensor::new(ctx, arena.clone(), offsets[i], shape, dtype).unwrap();
    let got = record(&at(0, &shape, DType::F32), &at(1, &[2, 12, 9], DType::I32), &at(2, &[1], DType::F32), &at(3, &shape, DType::F32));
    assert!(got == expected, "the compound loss differs on one arena");
}

#[test]
fn overlapping_tensors_where_one_is_written_are_refused() {
    let ctx = ctx();
    let align = ctx.offset_alignment() as usize;
    let c = config(r#"{"loss": "bce", "params": {}}"#);
    let plan = c.plan(ctx, &InputShapes::new(&[1, 1, 8, 8], &[1, 1, 8, 8]), PlanOptions::default()).unwrap();
    let arena = GpuTensor::zeros(ctx, &[1024], DType::F32).unwrap().buffer().clone();
    let at = |offset: usize, shape: &[usize]| GpuTensor::new(ctx, arena.clone(), offset as u64, shape, DType::F32).unwrap();
    let (x, y, v) = (at(0, &[1, 1, 8, 8]), at(256, &[1, 1, 8, 8]), at(512, &[1]));
    let record = |grad: &GpuTensor| {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        plan.record(&mut encoder, LossInputs::new(&x, &y), LossOutputs::new(&v, grad)).map(|_| ())
    };
    // The gradient over the last element of the logits.
    let e = record(&at(256 - align, &[1, 1, 8, 8])).unwrap_err().to_string();
    assert!(e.contains("overlap") && e.contains("grad") && e.contains("logits"), "{e}");
    // The gradient over the value.
    let e = record(&at(512, &[1, 1, 8, 8])).unwrap_err().to_string();
    assert!(e.contains("overlap") && e.contains("value"), "{e}");
    // Adjacent, not overlapping: accepted.
    record(&at(512 + align, &[1, 1, 8, 8])).unwrap();
    // Two read-only inputs may overlap (the same tensor as logits and target).
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    plan.record(&mut encoder, LossInputs::new(&x, &x), LossOutputs::new(&v, &at(1024, &[1, 1, 8, 8]))).unwrap();
}
