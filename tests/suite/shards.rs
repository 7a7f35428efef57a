//! Data-parallel plans (`losses/shards.rs`): every golden case split over
//! 2 and 3 devices against its `expected`; every way a loss splits (a mean
//! of local terms, a data-counted denominator, groups over the batch, per
//! value factors under log, nothing to share) against the float64
//! reference on the whole batch; the two phases by hand on an engine's
//! buffers; and the errors.

use segloss::golden::{GoldenCase, Outcome, case_files, check_case_sharded, compare};
use segloss::tools::samples;
use segloss::{CompoundConfig, DType, GpuTensor, HostData, HostInputs, HostTensor, InputShapes, LossConfig, LossInputs, LossOutputs, PlanOptions};

use crate::common::{config, ctx, runner};
use crate::golden::golden_dir;

#[test]
fn every_golden_case_passes_on_two_and_three_devices() {
    let mut skipped = Vec::new();
    let mut ran = 0;
    for file in case_files(&golden_dir()).unwrap() {
        let case = GoldenCase::load(&file).unwrap();
        if !LossConfig::implemented(&case.loss) {
            continue;
        }
        for shards in [2, 3] {
            match check_case_sharded(&case, runner(), shards).unwrap() {
                Outcome::Pass { gpu: Some(_), .. } => ran += 1,
                Outcome::Skip(why) => skipped.push((case.id.clone(), case.params.clone(), why)),
                other => panic!("{} on {shards} devices: {other:?}", case.id),
            }
        }
    }
    assert!(ran > 190, "{ran} sharded runs");
    // Only the Lovász losses over the whole batch may not split.
    for (id, params, why) in &skipped {
        assert!(id.starts_with("lovasz") && params["per_image"] == false, "{id} skipped: {why}");
    }
}

/// (configuration, logits shape): each way of splitting, on batches that
/// split unevenly over 3 devices.
const MATRIX: &[(&str, &[usize])] = &[
    (r#"{"loss": "bce", "params": {"pos_weight": 3.0}}"#, &[5, 1, 9, 11]),
    (r#"{"loss": "bce", "params": {"reduction": "sum"}}"#, &[4, 2, 7, 5]),
    (r#"{"loss": "cross_entropy", "params": {"ignore_index": 0, "class_weights": [0.5, 1.0, 2.0, 3.0]}}"#, &[5, 4, 9, 7]),
    (r#"{"loss": "cross_entropy", "params": {"reduction": "none", "label_smoothing": 0.1}}"#, &[4, 3, 6, 5]),
    (r#"{"loss": "focal", "params": {"mode": "multiclass", "gamma": 2.0}}"#, &[5, 3, 8, 6]),
    (r#"{"loss": "dice", "params": {"aggregate": "batch", "reduction": "none", "class_weights": [0.5, 1.0, 2.0]}}"#, &[5, 3, 9, 8]),
    (r#"{"loss": "dice", "params": {"mode": "multilabel", "empty": "zero", "log_loss": true}}"#, &[4, 3, 8, 8]),
    (r#"{"loss": "jaccard", "params": {"aggregate": "batch", "ignore_index": 2, "include_background": false}}"#, &[5, 4, 8, 9]),
    (r#"{"loss": "tversky", "params": {"aggregate": "batch", "mode": "binary", "alpha": 0.3, "beta": 0.7, "squared": true}}"#, &[4, 1, 10, 10]),
    (r#"{"loss": "generalized_dice", "params": {"aggregate": "batch", "weight_type": "simple"}}"#, &[5, 3, 9, 9]),
    (r#"{"loss": "generalized_dice", "params": {"reduction": "sum"}}"#, &[4, 3, 8, 8]),
    (r#"{"loss": "mcc", "params": {"aggregate": "batch", "mode": "multilabel", "reduction": "none"}}"#, &[5, 2, 9, 8]),
    (r#"{"loss": "mcc", "params": {"aggregate": "batch", "mode": "binary", "eps": 1e-5, "smooth_dr": 0.0}}"#, &[4, 1, 12, 12]),
    (r#"{"loss": "box_iou", "params": {"kind": "ciou"}}"#, &[17, 4]),
    (r#"{"loss": "mask_giou", "params": {"reduction": "sum"}}"#, &[5, 12, 14]),
    (r#"{"loss": "boundary", "params": {"spacing": [0.5, 1.5]}}"#, &[4, 3, 12, 10]),
    (r#"{"loss": "hausdorff_dt", "params": {"mode": "multilabel", "aggregate": "batch", "log": true, "reduction": "none"}}"#, &[4, 3, 12, 10]),
    (r#"{"loss": "hausdorff_dt", "params": {"aggregate": "batch", "reduction": "sum"}}"#, &[5, 3, 10, 9]),
    (r#"{"loss": "hausdorff_dt", "params": {"log": true}}"#, &[4, 3, 10, 12]),
    (r#"{"loss": "lovasz_softmax", "params": {"per_image": true, "ignore_index": 0}}"#, &[5, 3, 8, 9]),
    (r#"{"loss": "lovasz_hinge", "params": {"per_image": true}}"#, &[4, 1, 9, 9]),
    (r#"{"loss": "cl_dice", "params": {"alpha": 0.5, "reduction": "sum"}}"#, &[4, 3, 12, 12]),
    (r#"{"loss": "hausdorff_er", "params": {"k": 3}}"#, &[4, 2, 10, 10]),
    (r#"{"loss": "unified_focal", "params": {"mode": "multiclass"}}"#, &[5, 2, 9, 9]),
];

/// Every configuration of [`MATRIX`] with random inputs drawn from `seed`.
fn matrix(seed: u64) -> impl Iterator<Item = (&'static str, LossConfig, HostTensor, HostTensor)> {
    MATRIX.iter().enumerate().map(move |(i, (json, shape))| {
        let c = config(json);
        let (x, y) = samples::inputs(&c, shape, &mut samples::rng(seed + i as u64)).unwrap();
        (*json, c, x, y)
    })
}

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn every_way_of_splitting_matches_the_reference_on_the_whole_batch() {
    for (json, c, x, y) in matrix(40) {
        let inputs = HostInputs::new(&x, &y);
        let reference = c.reference(&inputs).unwrap();
        for shards in [1, 2, 3] {
            let got = runner().compute_sharded(&c, inputs, shards).unwrap();
            let value = compare("value", &widen(&got.value), &reference.value, 1e-4, 1e-6, false);
            let grad = compare("grad", &widen(&got.grad), &reference.grad, 1e-4, 1e-6, true);
            for m in [value, grad] {
                assert!(m.ratio <= 1.0, "{json} on {shards} devices: {} got {} expected {} ({:.2}× the tolerance)", m.at, m.got, m.expected, m.ratio);
            }
        }
    }
}

#[test]
fn a_compound_splits_term_by_term() {
    let compound = CompoundConfig::new(vec![
        (1.0, config(r#"{"loss": "dice", "params": {"aggregate": "batch"}}"#)),
        (0.5, config(r#"{"loss": "cross_entropy", "params": {"class_weights": [0.5, 1.0, 2.0]}}"#)),
        (0.25, config(r#"{"loss": "focal", "params": {"mode": "multiclass", "reduction": "sum"}}"#)),
    ])
    .unwrap();
    let (x, y) = samples::inputs(&compound.terms[0].loss, &[5, 3, 9, 8], &mut samples::rng(11)).unwrap();
    let inputs = HostInputs::new(&x, &y);
    let reference = compound.reference(&inputs).unwrap();
    let plan = compound.plan_sharded(ctx(), &inputs.shapes(), PlanOptions::default()).unwrap();
    assert_eq!(plan.statistics_len(), (3 * 3 + 1) + 2 + 1, "the terms' statistics one after the other");
    for shards in [1, 2, 3] {
        let got = runner().compute_compound_sharded(&compound, inputs, shards).unwrap();
        let value = compare("value", &widen(&got.value), &reference.value, 1e-4, 1e-6, false);
        let grad = compare("grad", &widen(&got.grad), &reference.grad, 1e-4, 1e-6, true);
        assert!(value.ratio <= 1.0 && grad.ratio <= 1.0, "{shards} devices: {value:?} {grad:?}");
    }
}

#[test]
fn one_device_gives_the_one_phase_result() {
    for (json, c, x, y) in matrix(80) {
        let inputs = HostInputs::new(&x, &y);
        let one_phase = runner().compute(&c, inputs).unwrap();
        let two_phase = runner().compute_sharded(&c, inputs, 1).unwrap();
        // The same kernels; a mean's v·D/D may round once more.
        let value = compare("value", &widen(&two_phase.value), &widen(&one_phase.value), 1e-6, 1e-9, false);
        let grad = compare("grad", &widen(&two_phase.grad), &widen(&one_phase.grad), 1e-6, 1e-12, true);
        assert!(value.ratio <= 1.0 && grad.ratio <= 1.0, "{json}: {value:?} {grad:?}");
    }
}

/// The two phases by hand, as an engine records them: its own buffers at
/// offsets in one pooled buffer, gradients accumulated, a scale, and the
/// statistics all-reduced into a third buffer.
#[test]
fn two_devices_on_an_engines_buffers_accumulate_the_global_gradient() {
    let ctx = ctx();
    let c = config(r#"{"loss": "dice", "params": {"aggregate": "batch"}}"#);
    let shape = [4, 3, 8, 8];
    let (x, y) = samples::inputs(&c, &shape, &mut samples::rng(7)).unwrap();
    let options = PlanOptions { scale: 0.5, accumulate_grad: true, ..PlanOptions::default() };
    let reference = c.reference(&HostInputs::new(&x, &y)).unwrap();
    let slice_shapes = InputShapes::new(&[2, 3, 8, 8], &[2, 8, 8]);
    let plan = c.plan_sharded(ctx, &slice_shapes, options).unwrap();
    assert_eq!(plan.statistics_len(), 3 * 3 + 1, "I, P, G per class, then the pixel count");
    // One pooled buffer: [logits | labels | grad | stats] per device, at aligned offsets.
    let align = ctx.offset_alignment();
    let at = |k: u64| k * 4096u64.next_multiple_of(align);
    let pool = GpuTensor::zeros(ctx, &[(at(8) / 4) as usize], DType::F32).unwrap();
    let view = |k: u64, shape: &[usize], dtype| GpuTensor::new(ctx, pool.buffer().clone(), at(k), shape, dtype).unwrap();
    let (mut logits, mut labels, mut grads, mut stats) = (vec![], vec![], vec![], vec![]);
    for d in 0..2u64 {
        let xs = x.rows(2 * d as usize..2 * d as usize + 2);
        let ys = y.rows(2 * d as usize..2 * d as usize + 2);
        let l = view(4 * d, &[2, 3, 8, 8], DType::F32);
        let t = view(4 * d + 1, &[2, 8, 8], DType::I32);
        ctx.queue().write_buffer(l.buffer(), l.offset(), bytemuck::cast_slice(xs.as_f32("logits").unwrap()));
        ctx.queue().write_buffer(t.buffer(), t.offset(), &bytes_of_labels(&ys));
        let g = view(4 * d + 2, &[2, 3, 8, 8], DType::F32);
        // A gradient already there, which the plan adds to.
        ctx.queue().write_buffer(g.buffer(), g.offset(), bytemuck::cast_slice(&vec![1.0f32; 2 * 3 * 64]));
        logits.push(l);
        labels.push(t);
        grads.push(g);
        stats.push(view(4 * d + 3, &[plan.statistics_len()], DType::F32));
    }
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    for d in 0..2 {
        plan.record_statistics(&mut encoder, LossInputs::new(&logits[d], &labels[d]), &stats[d]).unwrap();
    }
    ctx.queue().submit([encoder.finish()]);
    let sum: Vec<f32> = stats[0].read_f32(ctx).unwrap().iter().zip(stats[1].read_f32(ctx).unwrap()).map(|(a, b)| a + b).collect();
    let global = GpuTensor::from_host(ctx, &HostTensor::f32(&[sum.len()], sum).unwrap()).unwrap();
    let mut values = vec![];
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    for d in 0..2 {
        let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
        plan.record_finish(&mut encoder, LossInputs::new(&logits[d], &labels[d]), &global, LossOutputs::new(&value, &grads[d])).unwrap();
        values.push(value);
    }
    ctx.queue().submit([encoder.finish()]);
    for v in &values {
        let got = v.read_f32(ctx).unwrap()[0] as f64;
        assert!((got - 0.5 * reference.value[0]).abs() <= 1e-6 + 1e-4 * reference.value[0].abs(), "value {got} vs {}", 0.5 * reference.value[0]);
    }
    let got: Vec<f64> = grads.iter().flat_map(|g| g.read_f32(ctx).unwrap()).map(|v| v as f64 - 1.0).collect();
    let want: Vec<f64> = reference.grad.iter().map(|g| 0.5 * g).collect();
    let m = compare("grad", &got, &want, 1e-4, 1e-6, true);
    assert!(m.ratio <= 1.0, "{m:?}");
    // The inputs are unchanged.
    assert_eq!(logits[0].read_f32(ctx).unwrap(), x.rows(0..2).to_f64().iter().map(|&v| v as f32).collect::<Vec<_>>());
}

fn bytes_of_labels(t: &HostTensor) -> Vec<u8> {
    match &t.data {
        HostData::I32(v) => bytemuck::cast_slice(v).to_vec(),
        other => panic!("i32 labels expected, got {:?}", other.dtype()),
    }
}

#[test]
fn f16_logits_split_like_f32() {
    // Groups over the batch, and a mean over the images.
    for json in [r#"{"loss": "dice", "params": {"aggregate": "batch", "mode": "multilabel"}}"#, r#"{"loss": "bce", "params": {"pos_weight": 2.0}}"#] {
        let c = config(json);
        let (x, y) = samples::inputs(&c, &[4, 2, 8, 8], &mut samples::rng(3)).unwrap();
        let (x16, y16) = (x.to_dtype(DType::F16).unwrap(), y.to_dtype(DType::F16).unwrap());
        let whole = runner().compute(&c, HostInputs::new(&x16, &y16)).unwrap();
        let split = runner().compute_sharded(&c, HostInputs::new(&x16, &y16), 2).unwrap();
        let m = compare("grad", &widen(&split.grad), &widen(&whole.grad), 2f64.powi(-10), 1e-7, true);
        assert!(m.ratio <= 1.0, "{json}: {m:?}");
        assert!((split.value[0] - whole.value[0]).abs() <= 1e-6, "{json}: {} vs {}", split.value[0], whole.value[0]);
    }
}

/// A NaN logit on one device makes the statistics NaN, and with them the
/// value of every device, the one whose own inputs are finite too.
#[test]
fn a_non_finite_logit_on_one_device_reaches_every_device() {
    let ctx = ctx();
    for json in [r#"{"loss": "dice", "params": {"aggregate": "batch"}}"#, r#"{"loss": "cross_entropy", "params": {}}"#] {
        let c = config(json);
        let (x, y) = samples::inputs(&c, &[4, 3, 6, 6], &mut samples::rng(5)).unwrap();
        let plan = c.plan_sharded(ctx, &InputShapes::new(&[2, 3, 6, 6], &[2, 6, 6]), PlanOptions::default()).unwrap();
        let mut slices = Vec::new();
        for d in 0..2 {
            let mut xs = x.rows(2 * d..2 * d + 2);
            if d == 1 {
                let HostData::F32(v) = &mut xs.data else { unreachable!() };
                v[7] = f32::NAN;
            }
            let (xs, ys) = (GpuTensor::from_host(ctx, &xs).unwrap(), GpuTensor::from_host(ctx, &y.rows(2 * d..2 * d + 2)).unwrap());
            slices.push((xs, ys, GpuTensor::zeros(ctx, &[plan.statistics_len()], DType::F32).unwrap()));
        }
        let mut sum = vec![0f32; plan.statistics_len()];
        for (xs, ys, stats) in &slices {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            plan.record_statistics(&mut encoder, LossInputs::new(xs, ys), stats).unwrap();
            ctx.queue().submit([encoder.finish()]);
            sum.iter_mut().zip(stats.read_f32(ctx).unwrap()).for_each(|(s, v)| *s += v);
        }
        let global = GpuTensor::from_host(ctx, &HostTensor::f32(&[sum.len()], sum).unwrap()).unwrap();
        let (xs, ys, _) = &slices[0];
        let (value, grad) = (GpuTensor::zeros(ctx, &[1], DType::F32).unwrap(), GpuTensor::zeros(ctx, xs.shape(), DType::F32).unwrap());
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        plan.record_finish(&mut encoder, LossInputs::new(xs, ys), &global, LossOutputs::new(&value, &grad)).unwrap();
        ctx.queue().submit([encoder.finish()]);
        assert!(value.read_f32(ctx).unwrap()[0].is_nan(), "{json}: device 0's value is finite");
    }
}

#[test]
fn the_lovasz_losses_over_the_whole_batch_refuse_to_split() {
    for loss in ["lovasz_softmax", "lovasz_hinge"] {
        let c = config(&format!(r#"{{"loss": "{loss}", "params": {{"per_image": false}}}}"#));
        let shapes = if loss == "lovasz_hinge" { InputShapes::new(&[2, 1, 8, 8], &[2, 8, 8]) } else { InputShapes::new(&[2, 3, 8, 8], &[2, 8, 8]) };
        let e = c.plan_sharded(ctx(), &shapes, PlanOptions::default()).err().expect("refused");
        assert!(e.to_string().contains("per_image = false"), "{e}");
        assert!(c.unsplittable().is_some());
    }
}

#[test]
fn statistics_of_the_wrong_shape_are_refused() {
    let ctx = ctx();
    let c = config(r#"{"loss": "cross_entropy", "params": {}}"#);
    let plan = c.plan_sharded(ctx, &InputShapes::new(&[2, 3, 4, 4], &[2, 4, 4]), PlanOptions::default()).unwrap();
    assert_eq!(plan.statistics_len(), 2, "Σ l·w then Σ w[y]");
    let x = GpuTensor::zeros(ctx, &[2, 3, 4, 4], DType::F32).unwrap();
    let y = GpuTensor::zeros(ctx, &[2, 4, 4], DType::I32).unwrap();
    let wrong = GpuTensor::zeros(ctx, &[3], DType::F32).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let e = plan.record_statistics(&mut encoder, LossInputs::new(&x, &y), &wrong).unwrap_err();
    assert!(e.to_string().contains("f32 [2]"), "{e}");
}
