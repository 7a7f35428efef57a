//! The engine path's rules: plans recorded on the caller's tensors, with
//! what the host layer would have refused (labels outside `[0, C)`), with
//! precomputed inputs (distance maps), and at the device's limits.

use segloss::{
    CompoundConfig, DType, GpuContext, GpuTensor, HostInputs, HostTensor, InputShapes, LossConfig, LossInputs, LossOutputs, LossPlan,
    PlanOptions,
};

use crate::common::{config, ctx, logits, rng};

/// Records `plan` on host data through GPU tensors and reads value and gradient back.
fn run(plan: &LossPlan, x: &HostTensor, y: &HostTensor, distance: Option<&HostTensor>) -> (Vec<f32>, Vec<f32>) {
    let ctx = ctx();
    let gx = GpuTensor::from_host(ctx, x).unwrap();
    let gy = GpuTensor::from_host(ctx, y).unwrap();
    let gd = distance.map(|d| GpuTensor::from_host(ctx, d).unwrap());
    let value = GpuTensor::zeros(ctx, plan.value_shape(), DType::F32).unwrap();
    let grad = GpuTensor::zeros(ctx, &x.shape, DType::F32).unwrap();
    let mut inputs = LossInputs::new(&gx, &gy);
    if let Some(d) = &gd {
        inputs = inputs.with_distance(d);
    }
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    plan.record(&mut encoder, inputs, LossOutputs::new(&value, &grad)).unwrap();
    ctx.queue().submit([encoder.finish()]);
    (value.read_f32(ctx).unwrap(), grad.read_f32(ctx).unwrap())
}

fn close(got: &[f32], expected: &[f64], what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}");
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!((*g as f64 - e).abs() <= 1e-5 + 1e-4 * scale, "{what}[{i}]: {g} vs {e}");
    }
}

/// A label outside `[0, C)` on the engine path counts as ignored in every
/// mean: out of the numerator and the denominator, with a zero gradient.
/// The oracle is the reference on the same pixels with that label ignored
/// (cross-entropy's `ignore_index`), or with the pixel left out (focal).
#[test]
fn a_label_outside_the_classes_counts_as_ignored_in_every_mean() {
    let x = logits(&mut rng(71), &[1, 3, 2, 3], 2.0);
    let bad = vec![0, 7, 2, 1, 2, 0];
    let y = HostTensor::i32(&[1, 2, 3], bad.clone()).unwrap();
    let shapes = InputShapes::new(&[1, 3, 2, 3], &[1, 2, 3]);
    for params in [r#"{}"#, r#"{"class_weights": [0.5, 2.0, 1.0]}"#, r#"{"label_smoothing": 0.1}"#] {
        let gpu = config(&format!(r#"{{"loss": "cross_entropy", "params": {params}}}"#));
        let plan = gpu.plan(ctx(), &shapes, PlanOptions::default()).unwrap();
        let (value, grad) = run(&plan, &x, &y, None);
        let mut with_ignore: serde_json::Value = serde_json::from_str(params).unwrap();
        with_ignore["ignore_index"] = 7.into();
        let oracle = LossConfig::from_parts("cross_entropy", with_ignore).unwrap();
        let r = oracle.reference(&HostInputs::new(&x, &y)).unwrap();
        close(&value, &r.value, &format!("cross_entropy {params} value"));
        close(&grad, &r.grad, &format!("cross_entropy {params} grad"));
    }

    // Focal has no ignore value: the oracle is the reference on the five valid pixels.
    let focal = config(r#"{"loss": "focal", "params": {"mode": "multiclass", "gamma": 2.0}}"#);
    let plan = focal.plan(ctx(), &shapes, PlanOptions::default()).unwrap();
    let (value, grad) = run(&plan, &x, &y, None);
    let keep: Vec<usize> = (0..6).filter(|&p| p != 1).collect();
    let xs = x.to_f64();
    let kept_x: Vec<f32> = (0..3).flat_map(|c| keep.iter().map(move |&p| (c, p))).map(|(c, p)| xs[c * 6 + p] as f32).collect();
    let kept_y: Vec<i32> = keep.iter().map(|&p| bad[p]).collect();
    let (kx, ky) = (HostTensor::f32(&[1, 3, 5], kept_x).unwrap(), HostTensor::i32(&[1, 5], kept_y).unwrap());
    let r = focal.reference(&HostInputs::new(&kx, &ky)).unwrap();
    close(&value, &r.value, "focal value");
    let mut expected = vec![0.0; 18];
    for c in 0..3 {
        for (k, &p) in keep.iter().enumerate() {
            expected[c * 6 + p] = r.grad[c * 5 + k];
        }
    }
    close(&grad, &expected, "focal grad");
}

fn boundary_case() -> (HostTensor, HostTensor, HostTensor) {
    let x = logits(&mut rng(5), &[1, 2, 6, 7], 1.5);
    let labels: Vec<i32> = (0..42).map(|i| ((i % 7 > 2) && (i / 7 > 1)) as i32).collect();
    let y = HostTensor::i32(&[1, 6, 7], labels).unwrap();
    // Maps unlike the target's own, so that using them shows in the value.
    let maps = HostTensor::f32(&[1, 2, 6, 7], (0..84).map(|i| (i as f32 * 0.37).sin() * 3.0).collect()).unwrap();
    (x, y, maps)
}

/// `dice + α·boundary` with maps from the data loader: only the boundary
/// term takes them, and the sum matches the weighted references.
#[test]
fn a_compound_loss_takes_precomputed_distance_maps() {
    let (x, y, maps) = boundary_case();
    let dice = config(r#"{"loss": "dice", "params": {}}"#);
    let boundary = config(r#"{"loss": "boundary", "params": {}}"#);
    let compound = CompoundConfig::new(vec![(1.0, dice.clone()), (0.3, boundary.clone())]).unwrap();
    let shapes = InputShapes::new(&[1, 2, 6, 7], &[1, 6, 7]);
    let plan = compound.plan(ctx(), &shapes, PlanOptions::default()).unwrap();
    let ctx = ctx();
    let (gx, gy, gd) = (GpuTensor::from_host(ctx, &x).unwrap(), GpuTensor::from_host(ctx, &y).unwrap(), GpuTensor::from_host(ctx, &maps).unwrap());
    let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(ctx, &[1, 2, 6, 7], DType::F32).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    plan.record(&mut encoder, LossInputs::new(&gx, &gy).with_distance(&gd), LossOutputs::new(&value, &grad)).unwrap();
    ctx.queue().submit([encoder.finish()]);

    // The oracle: dice's reference plus 0.3 × Σ softmax·maps / numel, the boundary loss on the given maps.
    let d = dice.reference(&HostInputs::new(&x, &y)).unwrap();
    let (xs, ms) = (x.to_f64(), maps.to_f64());
    let mut b_value = 0.0;
    let mut b_grad = vec![0.0; 84];
    for p in 0..42 {
        let (a, b) = (xs[p], xs[42 + p]);
        let m = a.max(b);
        let (ea, eb) = ((a - m).exp(), (b - m).exp());
        let (pa, pb) = (ea / (ea + eb), eb / (ea + eb));
        let l = pa * ms[p] + pb * ms[42 + p];
        b_value += l / 84.0;
        b_grad[p] = pa * (ms[p] - l) / 84.0;
        b_grad[42 + p] = pb * (ms[42 + p] - l) / 84.0;
    }
    close(&value.read_f32(ctx).unwrap(), &[d.value[0] + 0.3 * b_value], "compound value");
    let expected: Vec<f64> = d.grad.iter().zip(&b_grad).map(|(g, b)| g + 0.3 * b).collect();
    close(&grad.read_f32(ctx).unwrap(), &expected, "compound grad");

    // Maps with no term to take them are an error, not silently dropped.
    let no_maps = CompoundConfig::new(vec![(1.0, dice)]).unwrap().plan(ctx, &shapes, PlanOptions::default()).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let e = no_maps.record(&mut encoder, LossInputs::new(&gx, &gy).with_distance(&gd), LossOutputs::new(&value, &grad)).unwrap_err();
    assert!(e.to_string().contains("no term"), "{e}");
}

/// The `distance` extra reports the plan's own maps only when the plan
/// computed them; with the caller's maps it is absent, not stale.
#[test]
fn the_distance_extra_is_absent_when_the_caller_brings_the_maps() {
    let (x, y, maps) = boundary_case();
    let boundary = config(r#"{"loss": "boundary", "params": {}}"#);
    let plan = boundary.plan(ctx(), &InputShapes::new(&[1, 2, 6, 7], &[1, 6, 7]), PlanOptions::default()).unwrap();
    run(&plan, &x, &y, None);
    let own = plan.extra("distance").expect("maps the plan computed").read_f32(ctx()).unwrap();
    let reference = boundary.reference(&HostInputs::new(&x, &y)).unwrap();
    let expected = &reference.extras.iter().find(|(n, _)| *n == "distance").expect("reference maps").1;
    close(&own, expected, "the plan's maps");
    run(&plan, &x, &y, Some(&maps));
    assert!(plan.extra("distance").is_none(), "the plan's maps were not written by this recording");
    assert_eq!(plan.extras().count(), 0);
    run(&plan, &x, &y, None);
    assert!(plan.extra("distance").is_some(), "computed again, reported again");
}

/// Maps that fit the device's largest buffer are planned, even where the
/// pool would round the request past it; larger maps get boundary's own
/// hint before anything is allocated.
#[test]
fn boundary_maps_at_the_buffer_limit() {
    // A device whose largest buffer, 1,000,000 bytes, is not a size the pool rounds to.
    let largest = 1_000_000;
    let (device, queue) = pollster::block_on(async {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance.request_adapter(&wgpu::RequestAdapterOptions::default()).await.expect("an adapter");
        let limits = wgpu::Limits { max_buffer_size: largest, max_storage_buffer_binding_size: largest, ..wgpu::Limits::default() };
        adapter.request_device(&wgpu::DeviceDescriptor { required_limits: limits, ..Default::default() }).await.expect("a device")
    });
    let small = GpuContext::from_device(device, queue, Default::default());
    let boundary = config(r#"{"loss": "boundary", "params": {}}"#);
    // 1 × 2 × 500 × 250 f32 maps: exactly 1,000,000 bytes.
    let at_limit = boundary.plan(&small, &InputShapes::new(&[1, 2, 500, 250], &[1, 500, 250]), PlanOptions::default());
    assert!(at_limit.is_ok(), "{:?}", at_limit.err());
    let over = boundary.plan(&small, &InputShapes::new(&[1, 2, 500, 251], &[1, 500, 251]), PlanOptions::default());
    let e = over.err().expect("maps beyond the largest buffer").to_string();
    assert!(e.contains("LossInputs::distance"), "{e}");
}
