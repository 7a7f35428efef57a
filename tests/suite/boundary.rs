//! `boundary`: the GPU against the float64 reference on shapes and
//! parameters beyond the golden cases, precomputed maps, options, finite
//! differences of the reference, extreme logits and every validation error.

use rand::Rng;
use segloss::losses::boundary::MAX_CLASSES;
use segloss::primitives::distance::{DistanceMode, DistancePlan, MAX_EXACT_LINE};
use segloss::tools::samples::blob_labels;
use segloss::losses::BoundaryConfig;
use segloss::{
    ContextOptions, DType, Error, GpuContext, GpuTensor, HostInputs, HostTensor, InputShapes, LossConfig,
    LossInputs, LossOutputs, PlanOptions, Reduction, Runner,
};

use crate::common::{config, ctx, gpu_vs_reference, logits, rng, runner};

fn inputs<'a>(logits: &'a HostTensor, target: &'a HostTensor) -> HostInputs<'a> {
    HostInputs { logits, target, weight: None, distance: None }
}

/// Class-index targets with blobs, so the maps have large distances as well as small ones.
fn targets(seed: u64, shape: &[usize], classes: usize) -> HostTensor {
    blob_labels(shape, classes, seed).unwrap()
}

fn target_shape(logits: &[usize]) -> Vec<usize> {
    std::iter::once(logits[0]).chain(logits[2..].iter().copied()).collect()
}

#[test]
fn gpu_matches_reference_2d_and_3d() {
    let mut r = rng(21);
    let cases: &[(&[usize], &str)] = &[
        (&[2, 3, 31, 27], r#"{"loss": "boundary"}"#),
        (&[1, 4, 50, 17], r#"{"loss": "boundary", "params": {"classes": [3, 1], "spacing": [0.6, 1.7]}}"#),
        (&[3, 2, 9, 40], r#"{"loss": "boundary", "params": {"reduction": "sum", "spacing": [2.0, 0.5]}}"#),
        (&[2, 3, 12, 10], r#"{"loss": "boundary", "params": {"reduction": "none", "classes": [2, 0]}}"#),
        (&[1, 3, 7, 11, 13], r#"{"loss": "boundary", "params": {"spacing": [1.3, 0.8, 1.0]}}"#),
        (&[2, 2, 5, 9, 6], r#"{"loss": "boundary", "params": {"classes": [1], "reduction": "none"}}"#),
        (&[1, 5, 1, 64], r#"{"loss": "boundary", "params": {"classes": [0, 4, 2]}}"#),
    ];
    for (i, (shape, json)) in cases.iter().enumerate() {
        let cfg = config(json);
        let x = logits(&mut r, shape, 4.0);
        let y = targets(100 + i as u64, &target_shape(shape), shape[1]);
        gpu_vs_reference(&cfg, inputs(&x, &y), 1e-4, 1e-6);
    }
}

#[test]
fn jump_flood_loss_is_close_to_the_exact_one() {
    let mut r = rng(22);
    let shape = [2, 3, 48, 40];
    let x = logits(&mut r, &shape, 3.0);
    let y = targets(5, &target_shape(&shape), 3);
    let exact = runner().compute(&config(r#"{"loss": "boundary"}"#), inputs(&x, &y)).unwrap();
    let flood = runner().compute(&config(r#"{"loss": "boundary", "params": {"transform": "jump_flood"}}"#), inputs(&x, &y)).unwrap();
    let rel = ((exact.value[0] - flood.value[0]) / exact.value[0]).abs();
    assert!(rel < 1e-3, "jump flooding moves the loss by {rel} relative");
}

#[test]
fn extreme_logits_give_finite_results() {
    let mut r = rng(23);
    let shape = [1, 3, 16, 16];
    let n: usize = shape.iter().product();
    let x = HostTensor::f32(&shape, (0..n).map(|_| if r.random::<bool>() { 1e4 } else { -1e4 }).collect()).unwrap();
    let y = targets(3, &target_shape(&shape), 3);
    let cfg = config(r#"{"loss": "boundary", "params": {"spacing": [1e3, 1e-3]}}"#);
    let out = runner().compute(&cfg, inputs(&x, &y)).unwrap();
    assert!(out.value.iter().chain(&out.grad).all(|v| v.is_finite()));
    gpu_vs_reference(&cfg, inputs(&x, &y), 1e-4, 1e-6);
}

#[test]
fn reference_gradient_matches_finite_differences() {
    let mut r = rng(24);
    for json in [
        r#"{"loss": "boundary", "params": {"spacing": [0.7, 1.4]}}"#,
        r#"{"loss": "boundary", "params": {"classes": [2], "reduction": "sum"}}"#,
        r#"{"loss": "boundary", "params": {"classes": [0, 2], "reduction": "none"}}"#,
    ] {
        let cfg = config(json);
        let shape = [2, 3, 6, 7];
        let x = logits(&mut r, &shape, 2.0);
        let y = targets(9, &target_shape(&shape), 3);
        let reference = cfg.reference(&inputs(&x, &y)).unwrap();
        let xs = x.as_f32("x").unwrap();
        let total = |v: &[f32]| {
            let t = HostTensor::f32(&shape, v.to_vec()).unwrap();
            cfg.reference(&inputs(&t, &y)).unwrap().value.iter().sum::<f64>()
        };
        for i in (0..xs.len()).step_by(5) {
            let h = 1e-2f32;
            let (mut up, mut down) = (xs.to_vec(), xs.to_vec());
            up[i] += h;
            down[i] -= h;
            let fd = (total(&up) - total(&down)) / ((up[i] - down[i]) as f64);
            let g = reference.grad[i];
            assert!((fd - g).abs() <= 1e-4 * (1.0 + g.abs()), "{json}: grad[{i}] {g} vs finite difference {fd}");
        }
    }
}

#[test]
fn precomputed_maps_skip_the_transform_and_give_the_same_result() {
    let c = ctx();
    let mut r = rng(25);
    let shape = [2, 4, 20, 18];
    let x = logits(&mut r, &shape, 3.0);
    let y = targets(6, &target_shape(&shape), 4);
    let cfg = config(r#"{"loss": "boundary", "params": {"classes": [3, 1], "spacing": [0.9, 1.2]}}"#);
    let plan = cfg.plan(c, &InputShapes::new(&shape, &y.shape), PlanOptions::default()).unwrap();
    let logits_gpu = GpuTensor::from_host(c, &x).unwrap();
    let target_gpu = GpuTensor::from_host(c, &y).unwrap();
    // Every class's map, [N, C, S…], as the data loader would keep them.
    let dplan = DistancePlan::new(c, &y.shape, &[0, 1, 2, 3], Some(&[0.9, 1.2]), DistanceMode::Exact).unwrap();
    let maps = GpuTensor::zeros(c, dplan.output_shape(), DType::F32).unwrap();
    let run = |distance: Option<&GpuTensor>| {
        let value = GpuTensor::zeros(c, &[1], DType::F32).unwrap();
        let grad = GpuTensor::zeros(c, &shape, DType::F32).unwrap();
        let mut encoder = c.device().create_command_encoder(&Default::default());
        if distance.is_some() {
            dplan.record(&mut encoder, &target_gpu, &maps).unwrap();
        }
        plan.record(
            &mut encoder,
            LossInputs { logits: &logits_gpu, target: &target_gpu, weight: None, distance },
            LossOutputs { value: &value, grad: Some(&grad) },
        )
        .unwrap();
        c.queue().submit([encoder.finish()]);
        (value.read_f32(c).unwrap(), grad.read_f32(c).unwrap())
    };
    let computed = run(None);
    let given = run(Some(&maps));
    assert_eq!(computed, given, "maps given and maps computed in the encoder must agree bitwise");
    // Maps of the wrong shape (only the selected classes) are refused.
    let wrong = GpuTensor::zeros(c, &[2, 2, 20, 18], DType::F32).unwrap();
    let value = GpuTensor::zeros(c, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(c, &shape, DType::F32).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    let err = plan
        .record(
            &mut encoder,
            LossInputs { logits: &logits_gpu, target: &target_gpu, weight: None, distance: Some(&wrong) },
            LossOutputs { value: &value, grad: Some(&grad) },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Shape { input: "distance", message: ref m, .. } if m.contains("distance")), "{err}");
}

#[test]
fn scale_and_accumulate_follow_the_plan_options() {
    let c = ctx();
    let mut r = rng(26);
    let shape = [1, 3, 14, 15];
    let x = logits(&mut r, &shape, 2.0);
    let y = targets(7, &target_shape(&shape), 3);
    let cfg = config(r#"{"loss": "boundary"}"#);
    let reference = cfg.reference(&inputs(&x, &y)).unwrap();
    let options = PlanOptions { scale: 0.25, accumulate_value: true, accumulate_grad: true, grad: true };
    let mut plan = cfg.plan(c, &InputShapes::new(&shape, &y.shape), options).unwrap();
    let (lg, tg) = (GpuTensor::from_host(c, &x).unwrap(), GpuTensor::from_host(c, &y).unwrap());
    let value = GpuTensor::from_host(c, &HostTensor::f32(&[1], vec![1.0]).unwrap()).unwrap();
    let grad = GpuTensor::from_host(c, &HostTensor::f32(&shape, vec![0.5; x.len()]).unwrap()).unwrap();
    let submit = |plan: &segloss::LossPlan| {
        let mut encoder = c.device().create_command_encoder(&Default::default());
        plan.record(&mut encoder, LossInputs { logits: &lg, target: &tg, weight: None, distance: None }, LossOutputs { value: &value, grad: Some(&grad) })
            .unwrap();
        c.queue().submit([encoder.finish()]);
    };
    submit(&plan);
    plan.set_scale(-2.0);
    submit(&plan);
    let v = value.read_f32(c).unwrap()[0] as f64;
    let expected = 1.0 + (0.25 - 2.0) * reference.value[0];
    assert!((v - expected).abs() <= 1e-5 * (1.0 + expected.abs()), "{v} vs {expected}");
    let g = grad.read_f32(c).unwrap();
    let max = reference.grad.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&got, &rg)) in g.iter().zip(&reference.grad).enumerate() {
        let want = 0.5 + (0.25 - 2.0) * rg;
        assert!((got as f64 - want).abs() <= 1e-6 + 1e-4 * max, "grad[{i}] {got} vs {want}");
    }
}

#[test]
fn chunked_bindings_give_the_reference() {
    let small = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(32768), ..Default::default() }).unwrap());
    let mut r = rng(27);
    for (shape, json) in [
        ([3usize, 3, 40, 40], r#"{"loss": "boundary", "params": {"classes": [1, 2]}}"#),
        ([3, 3, 40, 40], r#"{"loss": "boundary", "params": {"reduction": "none", "spacing": [1.5, 0.5]}}"#),
    ] {
        let cfg = config(json);
        let x = logits(&mut r, &shape, 3.0);
        let y = targets(8, &target_shape(&shape), 3);
        let reference = cfg.reference(&inputs(&x, &y)).unwrap();
        let gpu = small.compute(&cfg, inputs(&x, &y)).unwrap();
        let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let value = segloss::golden::compare("value", &widen(&gpu.value), &reference.value, 1e-4, 1e-6, false);
        let grad = segloss::golden::compare("grad", &widen(&gpu.grad), &reference.grad, 1e-4, 1e-6, true);
        assert!(value.ratio <= 1.0 && grad.ratio <= 1.0, "{json}: {value:?} {grad:?}");
    }
}

#[test]
fn labels_outside_the_classes_are_reported() {
    let mut r = rng(28);
    let shape = [1, 3, 8, 8];
    let x = logits(&mut r, &shape, 1.0);
    let mut labels = vec![0i32; 64];
    labels[10] = 3;
    let y = HostTensor::i32(&[1, 8, 8], labels).unwrap();
    let cfg = config(r#"{"loss": "boundary"}"#);
    // On the host before anything runs…
    assert!(matches!(runner().compute(&cfg, inputs(&x, &y)), Err(Error::Input { message: ref m, .. }) if m.contains("target[10] = 3")));
    // …and on the GPU through the status buffer, for engines that skip the host check.
    let c = ctx();
    let plan = cfg.plan(c, &InputShapes::new(&shape, &[1, 8, 8]), PlanOptions::default()).unwrap();
    let (lg, tg) = (GpuTensor::from_host(c, &x).unwrap(), GpuTensor::from_host(c, &y).unwrap());
    let value = GpuTensor::zeros(c, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(c, &shape, DType::F32).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    plan.record(&mut encoder, LossInputs { logits: &lg, target: &tg, weight: None, distance: None }, LossOutputs { value: &value, grad: Some(&grad) })
        .unwrap();
    let status = GpuTensor::zeros(c, &[1], DType::I32).unwrap();
    encoder.copy_buffer_to_buffer(plan.status_buffer().unwrap(), 0, status.buffer(), 0, 4);
    c.queue().submit([encoder.finish()]);
    assert_ne!(status.read_host(c).unwrap().as_i32("status").unwrap()[0] as u32, 0);
}

#[test]
fn validation_errors_name_the_problem() {
    let config_err = |json: &str, what: &str| match LossConfig::from_json(json) {
        Err(Error::Config { loss, message }) => {
            assert_eq!(loss, "boundary");
            assert!(message.contains(what), "{json}: {message}");
        }
        other => panic!("{json}: {other:?}"),
    };
    config_err(r#"{"loss": "boundary", "params": {"classes": []}}"#, "empty");
    config_err(r#"{"loss": "boundary", "params": {"classes": [1, 1]}}"#, "twice");
    config_err(r#"{"loss": "boundary", "params": {"classes": [-1]}}"#, "-1");
    config_err(r#"{"loss": "boundary", "params": {"spacing": [1.0, -2.0]}}"#, "spacing -2");
    config_err(r#"{"loss": "boundary", "params": {"spacing": [1.0, 0.0]}}"#, "spacing 0");
    config_err(r#"{"loss": "boundary", "params": {"reduction": "median"}}"#, "median");
    config_err(r#"{"loss": "boundary", "params": {"transform": "chamfer"}}"#, "chamfer");
    config_err(r#"{"loss": "boundary", "params": {"alpha": 0.01}}"#, "alpha");
    let nan = LossConfig::Boundary(BoundaryConfig { spacing: Some(vec![f64::NAN, 1.0]), ..Default::default() });
    assert!(matches!(nan.validate(), Err(Error::Config { .. })));

    let shape_err = |json: &str, logits: &[usize], target: &[usize], weight: bool, what: &str| {
        let mut shapes = InputShapes::new(logits, target);
        if weight {
            shapes.weight = Some(logits.to_vec());
        }
        match config(json).check_shapes(&shapes) {
            Err(Error::Input { message: m, .. } | Error::Shape { message: m, .. } | Error::Limit { message: m, .. }) => {
                assert!(m.contains(what), "{json} {logits:?}: {m}")
            }
            other => panic!("{json} {logits:?}: {other:?}"),
        }
    };
    let plain = r#"{"loss": "boundary"}"#;
    shape_err(plain, &[2, 3, 16], &[2, 16], false, "[N, C, H, W]");
    shape_err(plain, &[1, 2, 3, 4, 5, 6], &[1, 3, 4, 5, 6], false, "[N, C, H, W]");
    shape_err(plain, &[2, 3, 8, 8], &[2, 8, 9], false, "target has shape");
    shape_err(plain, &[2, 3, 8, 8], &[2, 8, 8], true, "weight");
    shape_err(plain, &[2, 3, 0, 8], &[2, 0, 8], false, "empty axis");
    shape_err(r#"{"loss": "boundary", "params": {"classes": [0, 3]}}"#, &[1, 3, 4, 4], &[1, 4, 4], false, "classes lists 3");
    shape_err(r#"{"loss": "boundary", "params": {"spacing": [1.0]}}"#, &[1, 3, 4, 4], &[1, 4, 4], false, "spacing has 1 entries");
    shape_err(r#"{"loss": "boundary", "params": {"spacing": [1.0, 1.0]}}"#, &[1, 3, 2, 4, 4], &[1, 2, 4, 4], false, "3 spatial axes");
    shape_err(plain, &[1, MAX_CLASSES + 1, 2, 2], &[1, 2, 2], false, "classes exceed");
    shape_err(plain, &[2, 2, 1 << 15, 1 << 14], &[2, 1 << 15, 1 << 14], false, "2^31");
    shape_err(plain, &[1, 2, 2, MAX_EXACT_LINE + 1], &[1, 2, MAX_EXACT_LINE + 1], false, "at most");
    // Jump flooding accepts the long line.
    config(r#"{"loss": "boundary", "params": {"transform": "jump_flood"}}"#)
        .check_shapes(&InputShapes::new(&[1, 2, 2, MAX_EXACT_LINE + 1], &[1, 2, MAX_EXACT_LINE + 1]))
        .unwrap();

    // Float targets are refused where they are read.
    let mut r = rng(29);
    let x = logits(&mut r, &[1, 2, 4, 4], 1.0);
    let y = HostTensor::f32(&[1, 4, 4], vec![0.0; 16]).unwrap();
    assert!(matches!(runner().compute(&config(plain), inputs(&x, &y)), Err(Error::Input { .. })));
}

#[test]
fn reduction_none_returns_per_class_maps_times_probabilities() {
    let mut r = rng(30);
    let shape = [2, 3, 6, 5];
    let x = logits(&mut r, &shape, 1.0);
    let y = targets(11, &target_shape(&shape), 3);
    let cfg = config(r#"{"loss": "boundary", "params": {"classes": [2, 1], "reduction": "none"}}"#);
    let out = runner().compute(&cfg, inputs(&x, &y)).unwrap();
    assert_eq!(out.value_shape, vec![2, 2, 6, 5]);
    let mean = config(r#"{"loss": "boundary", "params": {"classes": [2, 1]}}"#);
    let m = runner().compute(&mean, inputs(&x, &y)).unwrap();
    let total: f32 = out.value.iter().sum();
    assert!((total / out.value.len() as f32 - m.value[0]).abs() < 1e-5);
    let _ = Reduction::None;
}

#[test]
fn the_largest_class_count_is_not_cut_short() {
    // 1,024 pixels: every invocation handles its full 4 pixels × 4 loops over every class.
    let mut r = rng(31);
    let shape = [1, MAX_CLASSES, 32, 32];
    let x = logits(&mut r, &shape, 2.0);
    let last = MAX_CLASSES as i32 - 1;
    let labels: Vec<i32> = (0..1024).map(|i| if i % 97 < 40 { last } else { i % 5 }).collect();
    let y = HostTensor::i32(&[1, 32, 32], labels).unwrap();
    let json = format!(r#"{{"loss": "boundary", "params": {{"classes": [0, {last}, 4]}}}}"#);
    gpu_vs_reference(&config(&json), inputs(&x, &y), 1e-4, 1e-6);
}
