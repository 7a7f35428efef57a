//! lovasz_softmax and lovasz_hinge: GPU against the float64 reference on
//! random shapes and edge cases, ties, finite differences of the reference,
//! determinism, the engine interface and validation.

use rand::Rng;
use segloss::{ContextOptions, DType, Error, GpuContext, GpuTensor, HostInputs, HostTensor, LossConfig, LossInputs, LossOutputs, PlanOptions};

use crate::common::{config, config_error, input_error, ctx, gpu_vs_reference, labels, logits, rng, runner};

fn softmax_configs() -> Vec<String> {
    let mut out = Vec::new();
    for classes in [r#""present""#, r#""all""#, "[2, 0]"] {
        for per_image in [false, true] {
            for ignore in ["null", "255"] {
                out.push(format!(
                    r#"{{"loss": "lovasz_softmax", "params": {{"classes": {classes}, "per_image": {per_image}, "ignore_index": {ignore}}}}}"#
                ));
            }
        }
    }
    out
}

fn hinge_configs() -> Vec<String> {
    let mut out = Vec::new();
    for per_image in [false, true] {
        for ignore in ["null", "255"] {
            out.push(format!(r#"{{"loss": "lovasz_hinge", "params": {{"per_image": {per_image}, "ignore_index": {ignore}}}}}"#));
        }
    }
    out
}

fn ignore_of(c: &LossConfig) -> Option<i32> {
    match c {
        LossConfig::LovaszSoftmax(l) => l.ignore_index.map(|v| v as i32),
        LossConfig::LovaszHinge(l) => l.ignore_index.map(|v| v as i32),
        _ => None,
    }
}

fn target_shape(logits: &[usize]) -> Vec<usize> {
    std::iter::once(logits[0]).chain(logits[2..].iter().copied()).collect()
}

fn check_softmax(shape: &[usize], seed: u64, scale: f32) {
    for (i, json) in softmax_configs().iter().enumerate() {
        let c = config(json);
        let mut r = rng(seed + i as u64);
        let x = logits(&mut r, shape, scale);
        let y = labels(&mut r, &target_shape(shape), shape[1], ignore_of(&c));
        gpu_vs_reference(&c, HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
    }
}

/// Hinge on `[N, S…]` logits and on the same logits as `[N, 1, S…]`.
fn check_hinge(target: &[usize], seed: u64, scale: f32) {
    for (i, json) in hinge_configs().iter().enumerate() {
        let c = config(json);
        let mut r = rng(seed + i as u64);
        let y = labels(&mut r, target, 2, ignore_of(&c));
        let flat = logits(&mut r, target, scale);
        let mut channel: Vec<usize> = target.to_vec();
        channel.insert(1, 1);
        let with_channel = HostTensor::f32(&channel, flat.as_f32("").unwrap().to_vec()).unwrap();
        for x in [&flat, &with_channel] {
            gpu_vs_reference(&c, HostInputs { logits: x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
        }
    }
}

#[test]
fn golden_cases_also_pass_from_the_suite() {
    // (The golden folder's cases run in golden.rs; this runs one shape not in it.)
    check_softmax(&[2, 3, 17, 23], 100, 4.0);
}

#[test]
fn shapes_that_are_not_multiples_of_the_workgroup() {
    check_softmax(&[3, 4, 5, 7, 11], 110, 3.0);
    check_softmax(&[1, 5, 1031], 120, 2.0);
    check_hinge(&[2, 17, 23], 130, 3.0);
    // More images than the finalizing workgroup has invocations.
    check_softmax(&[600, 3, 2, 2], 135, 3.0);
    check_hinge(&[3, 5, 7, 11], 140, 2.0);
}

#[test]
fn segments_longer_than_a_tile_take_the_radix_sort() {
    // 4×64×64 = 16,384 pixels per class: eight radix tiles per segment.
    check_softmax(&[4, 3, 64, 64], 150, 3.0);
    check_hinge(&[3, 100, 71], 160, 3.0);
}

#[test]
fn one_pixel() {
    check_softmax(&[1, 3, 1, 1], 170, 2.0);
    check_hinge(&[1, 1], 180, 2.0);
}

#[test]
fn every_pixel_ignored_gives_zero() {
    let mut r = rng(190);
    let x = logits(&mut r, &[2, 3, 4, 5], 3.0);
    let y = HostTensor::i32(&[2, 4, 5], vec![255; 40]).unwrap();
    for json in softmax_configs().iter().filter(|j| j.contains("255")) {
        let c = config(json);
        let out = runner().compute(&c, HostInputs { logits: &x, target: &y, weight: None, distance: None }).unwrap();
        assert_eq!(out.value, vec![0.0], "{json}");
        assert!(out.grad.iter().all(|&g| g == 0.0), "{json}");
        gpu_vs_reference(&c, HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
    }
    let xh = logits(&mut r, &[2, 4, 5], 3.0);
    for json in hinge_configs().iter().filter(|j| j.contains("255")) {
        let c = config(json);
        let out = runner().compute(&c, HostInputs { logits: &xh, target: &y, weight: None, distance: None }).unwrap();
        assert_eq!(out.value, vec![0.0], "{json}");
        assert!(out.grad.iter().all(|&g| g == 0.0), "{json}");
    }
    // One image fully ignored, the other not: per image, it counts as 0 in the mean.
    let mut half = labels(&mut r, &[2, 4, 5], 3, None);
    if let segloss::HostData::I32(v) = &mut half.data {
        v[..20].iter_mut().for_each(|y| *y = 255);
    }
    for json in softmax_configs().iter().filter(|j| j.contains("255")) {
        gpu_vs_reference(&config(json), HostInputs { logits: &x, target: &half, weight: None, distance: None }, 1e-4, 1e-6);
    }
}

#[test]
fn a_class_present_in_one_image_only() {
    // Class 3 appears only in image 1: "present" per image counts it there alone.
    let mut r = rng(200);
    let shape = [3, 4, 9, 10];
    let x = logits(&mut r, &shape, 3.0);
    let mut y = labels(&mut r, &[3, 9, 10], 3, None);
    if let segloss::HostData::I32(v) = &mut y.data {
        v[90 + 7] = 3;
        v[90 + 40] = 3;
    }
    for json in softmax_configs() {
        gpu_vs_reference(&config(&json), HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
    }
    let c = config(r#"{"loss": "lovasz_softmax", "params": {"classes": [3], "per_image": true}}"#);
    gpu_vs_reference(&c, HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
    // Only the absent classes: each image's loss is its largest error.
    let c = config(r#"{"loss": "lovasz_softmax", "params": {"classes": [3]}}"#);
    let all_bg = labels(&mut r, &[3, 9, 10], 3, None);
    gpu_vs_reference(&c, HostInputs { logits: &x, target: &all_bg, weight: None, distance: None }, 1e-4, 1e-6);
    // "present" with no class present in any image... impossible without ignoring: all pixels one class.
    let one = HostTensor::i32(&[3, 9, 10], vec![1; 270]).unwrap();
    for json in softmax_configs() {
        gpu_vs_reference(&config(&json), HostInputs { logits: &x, target: &one, weight: None, distance: None }, 1e-4, 1e-6);
    }
}

#[test]
fn exact_ties_are_broken_by_pixel_index() {
    // Equal logits everywhere: every error of a class ties, on the GPU and in f64.
    let shape = [2, 3, 13, 17];
    let x = HostTensor::f32(&shape, vec![0.5; shape.iter().product()]).unwrap();
    let mut r = rng(210);
    for json in softmax_configs() {
        let c = config(&json);
        let y = labels(&mut r, &[2, 13, 17], 3, ignore_of(&c));
        gpu_vs_reference(&c, HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
    }
    // Few distinct logits: long runs of ties in a multi-pass sort.
    let x = HostTensor::f32(&[2, 90, 91], (0..2 * 90 * 91).map(|_| r.random_range(-2..3) as f32 * 0.5).collect()).unwrap();
    for json in hinge_configs() {
        let c = config(&json);
        let y = labels(&mut r, &[2, 90, 91], 2, ignore_of(&c));
        gpu_vs_reference(&c, HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
    }
}

#[test]
fn extreme_logits_give_finite_values_and_gradients() {
    let shape = [2, 3, 4, 4];
    let n: usize = shape.iter().product();
    let x = HostTensor::f32(&shape, (0..n).map(|i| [1e4, -1e4, 0.0, 3e3][i % 4]).collect()).unwrap();
    let mut r = rng(220);
    let xh = HostTensor::f32(&[2, 4, 4], (0..32).map(|i| [1e4, -1e4, 0.0, 1.0][i % 4]).collect()).unwrap();
    let cases: Vec<(String, &HostTensor, usize)> =
        softmax_configs().into_iter().map(|j| (j, &x, 3)).chain(hinge_configs().into_iter().map(|j| (j, &xh, 2))).collect();
    for (json, x, classes) in cases {
        let c = config(&json);
        let y = labels(&mut r, &[2, 4, 4], classes, ignore_of(&c));
        let out = runner().compute(&c, HostInputs { logits: x, target: &y, weight: None, distance: None }).unwrap();
        assert!(out.value[0].is_finite() && out.grad.iter().all(|g| g.is_finite()), "{json}");
        gpu_vs_reference(&c, HostInputs { logits: x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
    }
}

#[test]
fn semantic_and_binary_sizes_beyond_2_pow_22_pixels() {
    // One segment of 4,325,376 pixels (hinge over the batch) …
    let mut r = rng(230);
    let target = [2, 1056, 2048];
    let x = logits(&mut r, &target, 4.0);
    let y = labels(&mut r, &target, 2, Some(255));
    let c = config(r#"{"loss": "lovasz_hinge", "params": {"ignore_index": 255}}"#);
    gpu_vs_reference(&c, HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
    // … and 19 segments of 131,072 (softmax over the batch).
    let shape = [2, 19, 256, 256];
    let x = logits(&mut r, &shape, 4.0);
    let y = labels(&mut r, &[2, 256, 256], 19, Some(255));
    let c = config(r#"{"loss": "lovasz_softmax", "params": {"ignore_index": 255}}"#);
    gpu_vs_reference(&c, HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut r = rng(240);
    let cases: Vec<(String, Vec<usize>, usize)> = softmax_configs()
        .into_iter()
        .map(|j| (j, vec![2, 3, 3, 2], 3))
        .chain(hinge_configs().into_iter().map(|j| (j, vec![2, 3, 4], 2)))
        .collect();
    let (mut checked, mut kinks) = (0, 0);
    for (json, shape, classes) in cases {
        let c = config(&json);
        let x = logits(&mut r, &shape, 2.0);
        let t = if matches!(c, LossConfig::LovaszHinge(_)) { shape.clone() } else { target_shape(&shape) };
        let y = labels(&mut r, &t, classes, ignore_of(&c));
        let analytic = c.reference(&HostInputs { logits: &x, target: &y, weight: None, distance: None }).unwrap().grad;
        let xs = x.as_f32("").unwrap();
        for k in 0..xs.len() {
            let total = |delta: f64| {
                let mut v = xs.to_vec();
                v[k] = (xs[k] as f64 + delta) as f32;
                let step = v[k] as f64 - xs[k] as f64;
                let xt = HostTensor::f32(&shape, v).unwrap();
                (c.reference(&HostInputs { logits: &xt, target: &y, weight: None, distance: None }).unwrap().value[0], step)
            };
            let ((up, su), (down, sd)) = (total(1e-4), total(-1e-4));
            let numeric = (up - down) / (su - sd);
            // A step that reorders two errors (or crosses the hinge) is a kink, not a gradient: skip it.
            let (left, right) = ((total(0.0).0 - down) / -sd, (up - total(0.0).0) / su);
            if (left - right).abs() > 1e-3 * (left.abs() + right.abs()).max(1e-3) {
                kinks += 1;
                continue;
            }
            checked += 1;
            assert!(
                (numeric - analytic[k]).abs() <= 1e-3 * analytic[k].abs().max(1e-2),
                "{json}: d/dx[{k}] numeric {numeric} analytic {}",
                analytic[k]
            );
        }
    }
    assert!(checked > 10 * kinks, "{checked} derivatives checked, {kinks} steps crossed a kink");
}

#[test]
fn two_runs_give_identical_bits() {
    let mut r = rng(250);
    let shape = [3, 5, 40, 33];
    let x = logits(&mut r, &shape, 3.0);
    let y = labels(&mut r, &[3, 40, 33], 5, Some(255));
    let c = config(r#"{"loss": "lovasz_softmax", "params": {"per_image": true, "ignore_index": 255}}"#);
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let a = runner().compute(&c, inputs).unwrap();
    let b = runner().compute(&c, inputs).unwrap();
    assert_eq!(a.value[0].to_bits(), b.value[0].to_bits());
    assert!(a.grad.iter().zip(&b.grad).all(|(u, v)| u.to_bits() == v.to_bits()));
}

#[test]
fn scale_accumulate_and_value_only_plans() {
    let ctx = ctx();
    let mut r = rng(260);
    let shape = [2, 4, 9, 13];
    let x = logits(&mut r, &shape, 3.0);
    let y = labels(&mut r, &[2, 9, 13], 4, Some(255));
    let lovasz = config(r#"{"loss": "lovasz_softmax", "params": {"ignore_index": 255}}"#);
    let ce = config(r#"{"loss": "cross_entropy", "params": {"ignore_index": 255}}"#);
    let shapes = HostInputs { logits: &x, target: &y, weight: None, distance: None }.shapes();
    let first = ce.plan(ctx, &shapes, PlanOptions::default()).unwrap();
    let second = lovasz
        .plan(ctx, &shapes, PlanOptions { scale: 0.25, accumulate_value: true, accumulate_grad: true, grad: true })
        .unwrap();
    let value_only = lovasz.plan(ctx, &shapes, PlanOptions { grad: false, ..Default::default() }).unwrap();
    let logits_gpu = GpuTensor::from_host(ctx, &x).unwrap();
    let target_gpu = GpuTensor::from_host(ctx, &y).unwrap();
    let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let value2 = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(ctx, &shape, DType::F32).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let inputs = LossInputs { logits: &logits_gpu, target: &target_gpu, weight: None, distance: None };
    first.record(&mut encoder, inputs, LossOutputs { value: &value, grad: Some(&grad) }).unwrap();
    second.record(&mut encoder, inputs, LossOutputs { value: &value, grad: Some(&grad) }).unwrap();
    value_only.record(&mut encoder, inputs, LossOutputs { value: &value2, grad: None }).unwrap();
    ctx.queue().submit([encoder.finish()]);
    let host = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let (a, b) = (ce.reference(&host).unwrap(), lovasz.reference(&host).unwrap());
    let v = value.read_f32(ctx).unwrap()[0] as f64;
    let want = a.value[0] + 0.25 * b.value[0];
    assert!((v - want).abs() < 1e-5 * want.abs(), "{v} vs {want}");
    let v2 = value2.read_f32(ctx).unwrap()[0] as f64;
    assert!((v2 - b.value[0]).abs() < 1e-5 * b.value[0].abs(), "{v2} vs {}", b.value[0]);
    for (i, g) in grad.read_f32(ctx).unwrap().iter().enumerate() {
        let want = a.grad[i] + 0.25 * b.grad[i];
        assert!((*g as f64 - want).abs() < 1e-6 + 1e-4 * want.abs(), "grad[{i}] {g} vs {want}");
    }
    assert_eq!(logits_gpu.read_f32(ctx).unwrap(), x.as_f32("").unwrap());
}

#[test]
fn repeated_calls_allocate_nothing_after_the_first() {
    let runner = segloss::Runner::new(GpuContext::new().unwrap());
    let mut r = rng(270);
    let x = logits(&mut r, &[2, 3, 40, 60], 3.0);
    let y = labels(&mut r, &[2, 40, 60], 3, Some(255));
    let c = config(r#"{"loss": "lovasz_softmax", "params": {"ignore_index": 255, "per_image": true}}"#);
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let first = runner.compute(&c, inputs).unwrap();
    let after_first = runner.context().buffers_created();
    for _ in 0..5 {
        assert_eq!(runner.compute(&c, inputs).unwrap(), first);
    }
    assert_eq!(runner.context().buffers_created(), after_first);
}

#[test]
fn bad_parameters_are_named() {
    config_error(r#"{"loss": "lovasz_softmax", "params": {"classes": "some"}}"#, r#"classes must be "present", "all" or a list"#);
    config_error(r#"{"loss": "lovasz_softmax", "params": {"classes": [1, 2.5]}}"#, "list of class ids");
    config_error(r#"{"loss": "lovasz_softmax", "params": {"classes": []}}"#, "empty list");
    config_error(r#"{"loss": "lovasz_softmax", "params": {"classes": [1, -1]}}"#, "classes lists -1");
    config_error(r#"{"loss": "lovasz_softmax", "params": {"classes": [1, 2, 1]}}"#, "class 1 more than once");
    config_error(r#"{"loss": "lovasz_softmax", "params": {"perimage": true}}"#, "unknown field `perimage`");
    config_error(r#"{"loss": "lovasz_softmax", "params": {"ignore_index": 3000000000}}"#, "ignore_index");
    config_error(r#"{"loss": "lovasz_hinge", "params": {"classes": "all"}}"#, "unknown field `classes`");
    config_error(r#"{"loss": "lovasz_hinge", "params": {"ignore_index": 5000000000}}"#, "ignore_index");
    // Defaults and round trips.
    let c = config(r#"{"loss": "lovasz_softmax", "params": {}}"#);
    assert_eq!(c, LossConfig::LovaszSoftmax(Default::default()));
    let json = serde_json::to_string(&config(r#"{"loss": "lovasz_softmax", "params": {"classes": [0, 2]}}"#)).unwrap();
    assert!(json.contains(r#""classes":[0,2]"#), "{json}");
}

#[test]
fn bad_inputs_are_named() {
    let mut r = rng(280);
    let x = logits(&mut r, &[2, 3, 4, 4], 1.0);
    let y = labels(&mut r, &[2, 4, 4], 3, None);
    let soft = r#"{"loss": "lovasz_softmax", "params": {}}"#;
    let hinge = r#"{"loss": "lovasz_hinge", "params": {"ignore_index": 255}}"#;
    input_error(&config(soft), &x, &labels(&mut r, &[2, 4, 5], 3, None), None, "target has shape [2, 4, 5]");
    input_error(&config(r#"{"loss": "lovasz_softmax", "params": {"classes": [3]}}"#), &x, &y, None, "classes lists 3 but the logits have 3 classes");
    let mut bad = y.clone();
    if let segloss::HostData::I32(v) = &mut bad.data {
        v[6] = 7;
    }
    input_error(&config(soft), &x, &bad, None, "target[6] = 7 is outside [0, 3)");
    input_error(&config(soft), &x, &y, Some(&x), "takes no per-pixel weight");
    let float_target = HostTensor::f32(&[2, 4, 4], vec![0.0; 32]).unwrap();
    input_error(&config(soft), &x, &float_target, None, "target");
    let xh = logits(&mut r, &[2, 4, 4], 1.0);
    let mut yh = labels(&mut r, &[2, 4, 4], 2, Some(255));
    input_error(&config(hinge), &xh, &labels(&mut r, &[2, 4, 3], 2, None), None, "[N, 1, S…]");
    input_error(&config(hinge), &x, &yh, None, "must be [N, S…]");
    if let segloss::HostData::I32(v) = &mut yh.data {
        v[3] = 2;
    }
    input_error(&config(hinge), &xh, &yh, None, "target[3] = 2 is outside [0, 2) and is not ignore_index 255");
    let empty = HostTensor::f32(&[0, 4], vec![]).unwrap();
    let empty_y = HostTensor::i32(&[0, 4], vec![]).unwrap();
    input_error(&config(hinge), &empty, &empty_y, None, "empty axis");
}

#[test]
fn labels_only_the_gpu_sees_set_the_status_flag() {
    // A plan recorded on a buffer the host never checked: the bad label counts as ignored and raises the flag.
    let ctx = ctx();
    let mut r = rng(290);
    let x = logits(&mut r, &[1, 3, 5, 5], 1.0);
    let mut y = labels(&mut r, &[1, 5, 5], 3, None);
    if let segloss::HostData::I32(v) = &mut y.data {
        v[4] = 9;
    }
    let c = config(r#"{"loss": "lovasz_softmax", "params": {}}"#);
    let plan = c.plan(ctx, &HostInputs { logits: &x, target: &y, weight: None, distance: None }.shapes(), PlanOptions::default()).unwrap();
    let (xg, yg) = (GpuTensor::from_host(ctx, &x).unwrap(), GpuTensor::from_host(ctx, &y).unwrap());
    let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(ctx, &[1, 3, 5, 5], DType::F32).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    plan.record(&mut encoder, LossInputs { logits: &xg, target: &yg, weight: None, distance: None }, LossOutputs {
        value: &value,
        grad: Some(&grad),
    })
    .unwrap();
    let status = plan.status_buffer().expect("lovasz has a status flag");
    let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    encoder.copy_buffer_to_buffer(status, 0, &staging, 0, 4);
    ctx.queue().submit([encoder.finish()]);
    staging.map_async(wgpu::MapMode::Read, .., |_| {});
    ctx.wait_idle().unwrap();
    let flag = u32::from_le_bytes(staging.get_mapped_range(..).unwrap()[..4].try_into().unwrap());
    assert_eq!(flag, 1);
    assert!(value.read_f32(ctx).unwrap()[0].is_finite());
}

#[test]
fn inputs_over_one_binding_are_a_clear_error() {
    let small = GpuContext::with_options(ContextOptions { max_binding_bytes: Some(1 << 20), ..Default::default() }).unwrap();
    let c = config(r#"{"loss": "lovasz_softmax", "params": {}}"#);
    let shapes = segloss::InputShapes::new(&[2, 19, 128, 128], &[2, 128, 128]);
    match c.plan(&small, &shapes, PlanOptions::default()) {
        Err(e @ Error::Limit { scope: "lovasz_softmax", .. }) => assert!(e.to_string().contains("binding"), "{e}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("planned 2.4 MiB of keys under a 1 MiB binding"),
    }
}
