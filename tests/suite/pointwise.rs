//! bce, cross_entropy and focal: GPU against the float64 reference on random
//! shapes, finite differences of the reference, determinism, extremes, and
//! the engine interface (scale, accumulate, no allocation after the first call).

use segloss::{ContextOptions, DType, GpuContext, GpuTensor, HostInputs, HostTensor, LossConfig, PlanOptions, Runner};

use crate::common::{binary, config, ctx, gpu_vs_reference, labels, logits, rng, runner};

/// Every mode of the three losses, as `(config, needs class-index targets)`.
fn all_modes() -> Vec<(LossConfig, bool)> {
    let mut out = Vec::new();
    for r in ["mean", "sum", "none"] {
        for extra in ["", r#", "pos_weight": 3.5"#, r#", "alpha": 0.8"#] {
            out.push((config(&format!(r#"{{"loss": "bce", "params": {{"reduction": "{r}"{extra}}}}}"#)), false));
        }
        for extra in ["", r#", "class_weights": [0.5, 2.0, 1.0]"#, r#", "ignore_index": 255"#, r#", "label_smoothing": 0.2, "ignore_index": -100, "class_weights": [1.0, 0.2, 3.0]"#] {
            out.push((config(&format!(r#"{{"loss": "cross_entropy", "params": {{"reduction": "{r}"{extra}}}}}"#)), true));
        }
        for (mode, extra) in [("binary", ""), ("multilabel", r#", "alpha": null, "gamma": 0.5"#), ("binary", r#", "gamma": 0.0"#)] {
            out.push((config(&format!(r#"{{"loss": "focal", "params": {{"mode": "{mode}", "reduction": "{r}"{extra}}}}}"#)), false));
        }
        for extra in ["", r#", "gamma": 0.5, "class_weights": [0.3, 1.0, 2.0]"#] {
            out.push((config(&format!(r#"{{"loss": "focal", "params": {{"mode": "multiclass", "reduction": "{r}"{extra}}}}}"#)), true));
        }
    }
    out
}

fn ignore_of(c: &LossConfig) -> Option<i32> {
    match c {
        LossConfig::CrossEntropy(ce) => ce.ignore_index.map(|v| v as i32),
        _ => None,
    }
}

fn check_shape(shape: &[usize], seed: u64, scale: f32) {
    for (i, (config, class_targets)) in all_modes().into_iter().enumerate() {
        let mut r = rng(seed + i as u64);
        let x = logits(&mut r, shape, scale);
        let y = if class_targets {
            let t: Vec<usize> = std::iter::once(shape[0]).chain(shape[2..].iter().copied()).collect();
            labels(&mut r, &t, shape[1], ignore_of(&config))
        } else {
            binary(&mut r, shape)
        };
        gpu_vs_reference(&config, HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
    }
}

#[test]
fn one_pixel() {
    check_shape(&[1, 3, 1, 1], 1, 3.0);
}

#[test]
fn sizes_that_are_not_multiples_of_the_workgroup() {
    check_shape(&[2, 3, 17, 23], 2, 4.0);
    check_shape(&[3, 3, 5, 7, 11], 3, 4.0);
    check_shape(&[1, 3, 1031], 4, 4.0);
}

#[test]
fn bce_with_weights_and_soft_targets() {
    let mut r = rng(5);
    let shape = [2, 3, 33, 9];
    let x = logits(&mut r, &shape, 6.0);
    let soft = HostTensor::f32(&shape, logits(&mut r, &shape, 0.5).as_f32("").unwrap().iter().map(|v| v + 0.5).collect()).unwrap();
    let w = HostTensor::f32(&shape, logits(&mut r, &shape, 1.0).as_f32("").unwrap().iter().map(|v| v + 1.0).collect()).unwrap();
    for r in ["mean", "sum", "none"] {
        let c = config(&format!(r#"{{"loss": "bce", "params": {{"reduction": "{r}", "pos_weight": 2.0}}}}"#));
        gpu_vs_reference(&c, HostInputs { logits: &x, target: &soft, weight: Some(&w), distance: None }, 1e-4, 1e-6);
    }
    let focal = config(r#"{"loss": "focal", "params": {"mode": "multilabel", "gamma": 1.5}}"#);
    gpu_vs_reference(&focal, HostInputs { logits: &x, target: &soft, weight: None, distance: None }, 1e-4, 1e-6);
}

#[test]
fn cross_entropy_over_128_mib_matches_the_reference() {
    // 8×19×512×512 f32 logits are 152 MiB: two bindings of WebGPU's
    // default 128 MiB, and within its 256 MiB buffer.
    let shape = [8, 19, 512, 512];
    let mut r = rng(7);
    let x = logits(&mut r, &shape, 4.0);
    let y = labels(&mut r, &[8, 512, 512], 19, Some(255));
    let c = config(r#"{"loss": "cross_entropy", "params": {"ignore_index": 255, "class_weights": [1,2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,1,2,0.5]}}"#);
    assert!(x.bytes().len() as u64 > ctx().binding_limit(), "the test must exceed one binding");
    gpu_vs_reference(&c, HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
}

#[test]
fn chunked_bindings_match_unchunked() {
    // A 128 KiB binding cap forces many chunks, images split across chunks, on small tensors.
    let small = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(128 << 10), ..Default::default() }).unwrap());
    let mut r = rng(8);
    for shape in [[3usize, 5, 97, 61], [2, 1, 300, 211]] {
        let x = logits(&mut r, &shape, 4.0);
        let t: Vec<usize> = vec![shape[0], shape[2], shape[3]];
        let y = labels(&mut r, &t, shape[1], Some(255));
        let yb = binary(&mut r, &shape);
        let cases = [
            (config(r#"{"loss": "cross_entropy", "params": {"ignore_index": 255, "reduction": "none"}}"#), &y),
            (config(r#"{"loss": "cross_entropy", "params": {"ignore_index": 255}}"#), &y),
            (config(r#"{"loss": "bce", "params": {}}"#), &yb),
        ];
        for (c, target) in cases {
            if matches!(c, LossConfig::Bce(_)) != (target.dtype() == DType::F32) {
                continue;
            }
            let inputs = HostInputs { logits: &x, target, weight: None, distance: None };
            let a = small.compute(&c, inputs).unwrap();
            let b = runner().compute(&c, inputs).unwrap();
            let reference = c.reference(&inputs).unwrap();
            for (got, want) in a.grad.iter().zip(&reference.grad) {
                assert!((*got as f64 - want).abs() <= 1e-6 + 1e-4 * want.abs().max(1e-3), "{got} vs {want}");
            }
            for (got, want) in a.value.iter().zip(&reference.value) {
                assert!((*got as f64 - want).abs() <= 1e-6 + 1e-4 * want.abs(), "value {got} vs {want}");
            }
            assert_eq!(a.value.len(), b.value.len());
            for (u, v) in a.value.iter().zip(&b.value) {
                assert!((u - v).abs() <= 1e-5 * v.abs().max(1.0), "{u} vs {v}");
            }
        }
    }
}

#[test]
fn two_runs_give_identical_bits() {
    let mut r = rng(9);
    let shape = [4, 5, 123, 77];
    let x = logits(&mut r, &shape, 5.0);
    for (json, ignore) in [
        (r#"{"loss": "cross_entropy", "params": {"ignore_index": 255, "class_weights": [1, 2, 3, 4, 5]}}"#, Some(255)),
        (r#"{"loss": "focal", "params": {"mode": "multiclass", "gamma": 2.5}}"#, None),
    ] {
        let y = labels(&mut r, &[4, 123, 77], 5, ignore);
        let c = config(json);
        let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
        let a = runner().compute(&c, inputs).unwrap();
        let b = runner().compute(&c, inputs).unwrap();
        assert_eq!(a.value[0].to_bits(), b.value[0].to_bits());
        assert!(a.grad.iter().zip(&b.grad).all(|(u, v)| u.to_bits() == v.to_bits()));
    }
}

fn assert_finite(c: &LossConfig, x: &HostTensor, y: &HostTensor) {
    let out = runner().compute(c, HostInputs { logits: x, target: y, weight: None, distance: None }).unwrap();
    assert!(out.value.iter().all(|v| v.is_finite()), "{}: value {:?}", c.name(), out.value);
    assert!(out.grad.iter().all(|v| v.is_finite()), "{}: non-finite gradient", c.name());
    gpu_vs_reference(c, HostInputs { logits: x, target: y, weight: None, distance: None }, 1e-4, 1e-6);
}

#[test]
fn extreme_logits_give_finite_values_and_gradients() {
    let shape = [2, 3, 4, 4];
    let n: usize = shape.iter().product();
    let x = HostTensor::f32(&shape, (0..n).map(|i| if i % 3 == 0 { 1e4 } else if i % 3 == 1 { -1e4 } else { 0.0 }).collect()).unwrap();
    let mut r = rng(10);
    let yb = binary(&mut r, &shape);
    let yc = labels(&mut r, &[2, 4, 4], 3, None);
    for (c, class_targets) in all_modes() {
        assert_finite(&c, &x, if class_targets { &yc } else { &yb });
    }
}

#[test]
fn focal_gamma_below_one_with_saturated_logits_has_finite_gradients() {
    // p_t → 1: (1 − p_t)^(γ − 1) alone would be infinite.
    let shape = [1, 3, 2, 4];
    let x = HostTensor::f32(&shape, vec![30.0, -30.0, 80.0, -80.0, 1e4, -1e4, 17.0, -17.0].repeat(3)).unwrap();
    let yb = HostTensor::f32(&shape, vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0].repeat(3)).unwrap();
    let yc = HostTensor::i32(&[1, 2, 4], vec![0; 8]).unwrap();
    for json in [
        r#"{"loss": "focal", "params": {"mode": "binary", "gamma": 0.5}}"#,
        r#"{"loss": "focal", "params": {"mode": "multilabel", "gamma": 0.25, "alpha": null}}"#,
    ] {
        assert_finite(&config(json), &x, &yb);
    }
    assert_finite(&config(r#"{"loss": "focal", "params": {"mode": "multiclass", "gamma": 0.5}}"#), &x, &yc);
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut r = rng(11);
    let shape = [2, 3, 3, 2];
    for (i, (c, class_targets)) in all_modes().into_iter().enumerate() {
        let x = logits(&mut r, &shape, 3.0);
        let y = if class_targets { labels(&mut r, &[2, 3, 2], 3, ignore_of(&c)) } else { binary(&mut r, &shape) };
        let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
        let analytic = c.reference(&inputs).unwrap().grad;
        let xs = x.as_f32("").unwrap();
        for k in (0..xs.len()).step_by(5) {
            // Central differences in f64 through an f64 copy of the logits.
            let total = |delta: f64| {
                let mut v: Vec<f64> = xs.iter().map(|&a| a as f64).collect();
                v[k] += delta;
                let xt = HostTensor::f32(&shape, v.iter().map(|&a| a as f32).collect()).unwrap();
                // The f32 tensor would round a tiny step away: evaluate at a representable step instead.
                let step = xt.as_f32("").unwrap()[k] as f64 - xs[k] as f64;
                (c.reference(&HostInputs { logits: &xt, target: &y, weight: None, distance: None }).unwrap().value.iter().sum::<f64>(), step)
            };
            let ((up, su), (down, sd)) = (total(1e-3), total(-1e-3));
            let numeric = (up - down) / (su - sd);
            assert!(
                (numeric - analytic[k]).abs() <= 2e-3 * analytic[k].abs().max(1.0),
                "mode {i} {}: d/dx[{k}] numeric {numeric} analytic {}",
                c.name(),
                analytic[k]
            );
        }
    }
}

#[test]
fn scale_and_accumulate_add_terms_into_one_gradient() {
    let ctx = ctx();
    let mut r = rng(12);
    let shape = [2, 4, 9, 13];
    let x = logits(&mut r, &shape, 3.0);
    let y = labels(&mut r, &[2, 9, 13], 4, None);
    let ce = config(r#"{"loss": "cross_entropy", "params": {}}"#);
    let focal = config(r#"{"loss": "focal", "params": {"mode": "multiclass", "gamma": 2.0}}"#);
    let shapes = HostInputs { logits: &x, target: &y, weight: None, distance: None }.shapes();
    let first = ce.plan(ctx, &shapes, PlanOptions { scale: 0.5, ..Default::default() }).unwrap();
    let second = focal
        .plan(ctx, &shapes, PlanOptions { scale: 2.0, accumulate_value: true, accumulate_grad: true, grad: true })
        .unwrap();
    let logits_gpu = GpuTensor::from_host(ctx, &x).unwrap();
    let target_gpu = GpuTensor::from_host(ctx, &y).unwrap();
    let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(ctx, &shape, DType::F32).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let inputs = segloss::LossInputs { logits: &logits_gpu, target: &target_gpu, weight: None, distance: None };
    let outputs = segloss::LossOutputs { value: &value, grad: Some(&grad) };
    first.record(&mut encoder, inputs, outputs).unwrap();
    second.record(&mut encoder, inputs, outputs).unwrap();
    ctx.queue().submit([encoder.finish()]);
    let a = ce.reference(&HostInputs { logits: &x, target: &y, weight: None, distance: None }).unwrap();
    let b = focal.reference(&HostInputs { logits: &x, target: &y, weight: None, distance: None }).unwrap();
    let v = value.read_f32(ctx).unwrap()[0] as f64;
    let want = 0.5 * a.value[0] + 2.0 * b.value[0];
    assert!((v - want).abs() < 1e-5 * want.abs(), "{v} vs {want}");
    for (i, g) in grad.read_f32(ctx).unwrap().iter().enumerate() {
        let want = 0.5 * a.grad[i] + 2.0 * b.grad[i];
        assert!((*g as f64 - want).abs() < 1e-6 + 1e-4 * want.abs(), "grad[{i}] {g} vs {want}");
    }
    // Inputs are untouched.
    assert_eq!(logits_gpu.read_f32(ctx).unwrap(), x.as_f32("").unwrap());
}

#[test]
fn repeated_calls_allocate_nothing_after_the_first() {
    let runner = Runner::new(GpuContext::new().unwrap());
    let mut r = rng(13);
    let x = logits(&mut r, &[2, 3, 40, 40], 3.0);
    let y = labels(&mut r, &[2, 40, 40], 3, Some(255));
    let c = config(r#"{"loss": "cross_entropy", "params": {"ignore_index": 255}}"#);
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let first = runner.compute(&c, inputs).unwrap();
    let after_first = runner.context().buffers_created();
    for _ in 0..20 {
        assert_eq!(runner.compute(&c, inputs).unwrap(), first);
    }
    assert_eq!(runner.context().buffers_created(), after_first);
}

#[test]
fn the_async_form_gives_the_blocking_result() {
    let mut r = rng(14);
    let x = logits(&mut r, &[3, 1, 8, 8], 2.0);
    let y = binary(&mut r, &[3, 1, 8, 8]);
    let c = config(r#"{"loss": "focal", "params": {"mode": "binary"}}"#);
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let blocking = runner().compute(&c, inputs).unwrap();
    let asynchronous = futures::executor::block_on(runner().compute_async(&c, inputs)).unwrap();
    assert_eq!(blocking, asynchronous);
}

#[test]
fn an_engines_own_device_can_be_wrapped() {
    // A device made by the caller with WebGPU's default limits, not by segloss.
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    descriptor.backends = wgpu::Backends::PRIMARY;
    let instance = wgpu::Instance::new(descriptor);
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .expect("GPU tests need an adapter");
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let runner = Runner::new(GpuContext::from_device(device, queue, ContextOptions::default()));
    assert_eq!(runner.context().binding_limit(), 128 << 20);
    let mut r = rng(15);
    let x = logits(&mut r, &[2, 4, 30, 30], 3.0);
    let y = labels(&mut r, &[2, 30, 30], 4, Some(255));
    let c = config(r#"{"loss": "cross_entropy", "params": {"ignore_index": 255, "label_smoothing": 0.05}}"#);
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let gpu = runner.compute(&c, inputs).unwrap();
    let reference = c.reference(&inputs).unwrap();
    assert!((gpu.value[0] as f64 - reference.value[0]).abs() < 1e-5 * reference.value[0].abs());
    for (g, want) in gpu.grad.iter().zip(&reference.grad) {
        assert!((*g as f64 - want).abs() < 1e-6 + 1e-4 * want.abs());
    }
}

#[test]
fn cleared_plans_are_made_again_and_agree() {
    let runner = Runner::new(GpuContext::new().unwrap());
    let mut r = rng(16);
    let x = logits(&mut r, &[2, 3, 20, 20], 2.0);
    let y = binary(&mut r, &[2, 3, 20, 20]);
    let c = config(r#"{"loss": "focal", "params": {"mode": "multilabel"}}"#);
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let before = runner.compute(&c, inputs).unwrap();
    runner.clear_plans();
    assert_eq!(runner.compute(&c, inputs).unwrap(), before);
}

#[test]
fn one_plan_recorded_on_other_buffers_reads_those() {
    // The plan keeps the last recording's bind groups: new buffers must replace them.
    let ctx = ctx();
    let c = config(r#"{"loss": "bce", "params": {"reduction": "sum"}}"#);
    let plan = c.plan(ctx, &segloss::InputShapes::new(&[3, 50], &[3, 50]), PlanOptions::default()).unwrap();
    let mut r = rng(17);
    for _ in 0..3 {
        let (x, y) = (logits(&mut r, &[3, 50], 3.0), binary(&mut r, &[3, 50]));
        let (xg, yg) = (GpuTensor::from_host(ctx, &x).unwrap(), GpuTensor::from_host(ctx, &y).unwrap());
        let v = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
        let g = GpuTensor::zeros(ctx, &[3, 50], DType::F32).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        let inputs = segloss::LossInputs { logits: &xg, target: &yg, weight: None, distance: None };
        plan.record(&mut encoder, inputs, segloss::LossOutputs { value: &v, grad: Some(&g) }).unwrap();
        ctx.queue().submit([encoder.finish()]);
        let want = c.reference(&HostInputs { logits: &x, target: &y, weight: None, distance: None }).unwrap().value[0];
        let got = v.read_f32(ctx).unwrap()[0] as f64;
        assert!((got - want).abs() < 1e-5 * want.abs(), "{got} vs {want}");
    }
}
