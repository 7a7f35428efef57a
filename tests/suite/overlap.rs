//! The overlap losses (dice, jaccard, tversky, generalized_dice, and mcc on
//! the same kernels): the float64
//! reference against finite differences, the GPU against the reference on
//! random 2D and 3D inputs (groups over many workgroups, tensors split over
//! several bindings, one over 128 MiB), SPEC.md's edge cases, the plan's
//! scale and accumulate options, and every validation error.

use rand::Rng;
use rand::rngs::StdRng;
use segloss::{
    ContextOptions, DType, Error, GpuContext, GpuTensor, HostInputs, HostTensor, InputShapes, LossConfig, LossInputs,
    LossOutputs, PlanOptions, Runner,
};

use crate::common::{assert_reference_matches_finite_differences, binary, config, config_error, ctx, gpu_vs_reference, input_error, labels, logits, rng, runner};

/// Random inputs for a mode: class indices for multiclass (some set to
/// `ignore`), dense {0, 1} targets otherwise (some set to `ignore`).
fn inputs_for(rng: &mut StdRng, mode: &str, shape: &[usize], scale: f32, ignore: Option<i32>) -> (HostTensor, HostTensor) {
    let x = logits(rng, shape, scale);
    let target = if mode == "multiclass" {
        let t: Vec<usize> = std::iter::once(shape[0]).chain(shape[2..].iter().copied()).collect();
        labels(rng, &t, shape[1], ignore)
    } else {
        let mut t = binary(rng, shape);
        if let (Some(v), segloss::HostData::F32(d)) = (ignore, &mut t.data) {
            for y in d.iter_mut() {
                if rng.random::<f32>() < 0.125 {
                    *y = v as f32;
                }
            }
        }
        t
    };
    (x, target)
}

fn json(loss: &str, params: &str) -> LossConfig {
    config(&format!(r#"{{"loss": "{loss}", "params": {{{params}}}}}"#))
}

/// Configurations that together reach every parameter, each with the mode it uses.
fn configurations() -> Vec<(&'static str, LossConfig)> {
    let mut out = Vec::new();
    let mut add = |mode: &'static str, loss: &str, params: &str| {
        let sep = if params.is_empty() { "" } else { ", " };
        out.push((mode, json(loss, &format!(r#""mode": "{mode}"{sep}{params}"#))));
    };
    add("multiclass", "dice", "");
    add("multiclass", "dice", r#""aggregate": "batch", "squared": true, "reduction": "sum""#);
    add("multiclass", "dice", r#""log_loss": true, "include_background": false, "class_weights": [0.5, 2.0, 1.0, 0.25], "ignore_index": 255"#);
    add("multiclass", "dice", r#""empty": "zero", "reduction": "none", "smooth_nr": 0.0, "smooth_dr": 0.0"#);
    add("multilabel", "dice", r#""squared": true, "smooth_nr": 1.0, "smooth_dr": 1.0, "eps": 0.0, "ignore_index": -1"#);
    add("multiclass", "jaccard", r#""aggregate": "batch", "reduction": "none", "ignore_index": 255"#);
    add("multilabel", "jaccard", r#""log_loss": true, "class_weights": [1.0, 3.0, 0.5, 1.5], "squared": true"#);
    add("multiclass", "tversky", r#""alpha": 0.3, "beta": 0.7, "include_background": false, "reduction": "sum""#);
    add("multilabel", "tversky", r#""include_background": false, "reduction": "none", "class_weights": [2.0, 0.5, 1.0]"#);
    add("multilabel", "tversky", r#""alpha": 0.8, "beta": 0.4, "aggregate": "batch", "squared": true, "empty": "zero""#);
    add("multiclass", "generalized_dice", "");
    add("multiclass", "generalized_dice", r#""aggregate": "batch", "weight_type": "simple", "include_background": false"#);
    add("multilabel", "generalized_dice", r#""weight_type": "uniform", "reduction": "none""#);
    add("multilabel", "generalized_dice", r#""weight_type": "square", "reduction": "sum", "aggregate": "batch""#);
    add("multiclass", "mcc", "");
    add("multiclass", "mcc", r#""aggregate": "batch", "include_background": false, "reduction": "sum", "smooth_nr": 0.5"#);
    add("multilabel", "mcc", r#""reduction": "none", "smooth_dr": 1.0, "smooth_nr": 0.001"#);
    add("multilabel", "mcc", r#""aggregate": "batch", "eps": 1e-5, "smooth_dr": 0.0"#);
    out
}

fn ignore_of(config: &LossConfig) -> Option<i32> {
    let v = serde_json::to_value(config).unwrap();
    v["params"]["ignore_index"].as_i64().map(|v| v as i32)
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut rng = rng(31);
    for (mode, config) in configurations() {
        for shape in [vec![2usize, 4, 3, 5], vec![2, 4, 2, 3, 2]] {
            let (x, target) = inputs_for(&mut rng, mode, &shape, 3.0, ignore_of(&config));
            assert_reference_matches_finite_differences(&config, &x, &target, &format!("{mode} {shape:?}"));
        }
    }
}

#[test]
fn gpu_matches_reference_on_random_2d_and_3d_inputs() {
    let mut rng = rng(32);
    // S = 6300 and 3519: each image spans several 2,048-pixel workgroups.
    let shapes = [vec![2usize, 4, 70, 90], vec![2, 4, 9, 17, 23], vec![3, 4, 5, 7]];
    for (mode, config) in configurations() {
        for shape in &shapes {
            let (x, target) = inputs_for(&mut rng, mode, shape, 4.0, ignore_of(&config));
            gpu_vs_reference(&config, HostInputs { logits: &x, target: &target, weight: None, distance: None }, 2e-4, 1e-6);
        }
    }
}

#[test]
fn gpu_matches_reference_in_binary_mode() {
    let mut rng = rng(33);
    for params in [
        r#""mode": "binary""#,
        r#""mode": "binary", "aggregate": "batch", "log_loss": true, "ignore_index": 2"#,
        r#""mode": "binary", "squared": true, "empty": "zero", "reduction": "none""#,
    ] {
        for loss in ["dice", "jaccard", "tversky"] {
            let config = json(loss, params);
            let (x, target) = inputs_for(&mut rng, "binary", &[3, 1, 64, 50], 4.0, ignore_of(&config));
            gpu_vs_reference(&config, HostInputs { logits: &x, target: &target, weight: None, distance: None }, 2e-4, 1e-6);
        }
    }
    for params in [r#""mode": "binary""#, r#""mode": "binary", "aggregate": "batch", "eps": 1e-5, "smooth_dr": 0.0"#] {
        let config = json("mcc", params);
        let (x, target) = inputs_for(&mut rng, "binary", &[3, 1, 64, 50], 4.0, None);
        gpu_vs_reference(&config, HostInputs { logits: &x, target: &target, weight: None, distance: None }, 2e-4, 1e-6);
    }
    let config = json("generalized_dice", r#""mode": "binary""#);
    let (x, target) = inputs_for(&mut rng, "binary", &[2, 1, 7, 300], 4.0, None);
    gpu_vs_reference(&config, HostInputs { logits: &x, target: &target, weight: None, distance: None }, 2e-4, 1e-6);
}

#[test]
fn class_counts_that_do_not_fill_a_reduction_batch_match_the_reference() {
    // The stats pass sums four classes at a time; these leave a partial last batch.
    let mut rng = rng(45);
    for c in [2usize, 3, 5, 6, 7] {
        for (mode, loss, params) in [
            ("multiclass", "dice", r#""ignore_index": 255"#),
            ("multilabel", "jaccard", r#""aggregate": "batch", "squared": true"#),
            ("multiclass", "generalized_dice", r#""reduction": "none""#),
        ] {
            let config = json(loss, &format!(r#""mode": "{mode}", {params}"#));
            let (x, target) = inputs_for(&mut rng, mode, &[2, c, 50, 45], 3.0, ignore_of(&config));
            gpu_vs_reference(&config, HostInputs { logits: &x, target: &target, weight: None, distance: None }, 2e-4, 1e-6);
        }
    }
}

#[test]
fn tensors_split_over_several_bindings_match_the_reference() {
    // 64 KiB bindings: the [5, 4, 40, 60] logits (188 KiB) need several.
    let small = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(64 * 1024), ..Default::default() }).unwrap());
    let mut rng = rng(34);
    for (mode, config) in configurations() {
        let (x, target) = inputs_for(&mut rng, mode, &[5, 4, 40, 60], 3.0, ignore_of(&config));
        let inputs = HostInputs { logits: &x, target: &target, weight: None, distance: None };
        let reference = config.reference(&inputs).unwrap();
        let got = small.compute(&config, inputs).unwrap();
        let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        for (name, a, b, per_tensor) in
            [("value", widen(&got.value), &reference.value, false), ("grad", widen(&got.grad), &reference.grad, true)]
        {
            let m = segloss::golden::compare(name, &a, b, 2e-4, 1e-6, per_tensor);
            assert!(m.ratio <= 1.0, "{} {mode}: {} got {} expected {}", config.name(), m.at, m.got, m.expected);
        }
    }
}

/// One image row repeated down a tall image: with no smoothing, every group's
/// I, P and G grow by the repeat count k, so the score stays, and each
/// gradient element is the row's divided by k.
#[test]
fn a_tensor_over_128_mib_matches_its_repeated_pattern() {
    let (n, c, h, w) = (2usize, 3usize, 2400usize, 2400usize);
    let bytes = (n * c * h * w * 4) as u64;
    assert!(bytes > 128 << 20 && bytes > ctx().binding_limit(), "the test must need several bindings");
    let mut rng = rng(35);
    let config = json("dice", r#""smooth_nr": 0.0, "smooth_dr": 0.0, "eps": 1e-30"#);
    let (row_x, row_t) = inputs_for(&mut rng, "multiclass", &[n, c, 1, w], 3.0, None);
    let row = config.reference(&HostInputs { logits: &row_x, target: &row_t, weight: None, distance: None }).unwrap();

    let (rx, rt) = (row_x.as_f32("x").unwrap(), row_t.as_i32("t").unwrap());
    let mut x = Vec::with_capacity(n * c * h * w);
    for img in 0..n {
        for class in 0..c {
            let line = &rx[(img * c + class) * w..(img * c + class + 1) * w];
            for _ in 0..h {
                x.extend_from_slice(line);
            }
        }
    }
    let mut t = Vec::with_capacity(n * h * w);
    for img in 0..n {
        for _ in 0..h {
            t.extend_from_slice(&rt[img * w..(img + 1) * w]);
        }
    }
    let x = HostTensor::f32(&[n, c, h, w], x).unwrap();
    let t = HostTensor::i32(&[n, h, w], t).unwrap();
    let got = runner().compute(&config, HostInputs { logits: &x, target: &t, weight: None, distance: None }).unwrap();
    assert!((got.value[0] as f64 - row.value[0]).abs() <= 1e-4 * row.value[0].abs() + 1e-6, "{} vs {}", got.value[0], row.value[0]);
    let max = row.grad.iter().fold(0.0f64, |m, g| m.max(g.abs())) / h as f64;
    let mut worst = 0.0f64;
    for img in 0..n {
        for class in 0..c {
            for y in 0..h {
                for col in 0..w {
                    let expected = row.grad[(img * c + class) * w + col] / h as f64;
                    let e = got.grad[((img * c + class) * h + y) * w + col] as f64;
                    worst = worst.max((e - expected).abs());
                }
            }
        }
    }
    assert!(worst <= 1e-4 * max + 1e-12, "worst gradient error {worst} against max {max}");
}

#[test]
fn classes_up_to_the_limit_run_every_loop_to_the_end() {
    let mut rng = rng(36);
    let c = segloss::losses::overlap::MAX_CLASSES;
    for config in [json("dice", r#""reduction": "none""#), json("generalized_dice", r#""weight_type": "simple""#)] {
        let (x, target) = inputs_for(&mut rng, "multiclass", &[1, c, 1, 2100], 2.0, None);
        gpu_vs_reference(&config, HostInputs { logits: &x, target: &target, weight: None, distance: None }, 2e-4, 1e-6);
    }
}

// ---- edge cases ----

#[test]
fn an_absent_class_scores_by_the_empty_policy() {
    let mut rng = rng(37);
    let x = logits(&mut rng, &[2, 4, 6, 7], 2.0);
    // Class 3 appears nowhere.
    let target = labels(&mut rng, &[2, 6, 7], 3, None);
    let inputs = HostInputs { logits: &x, target: &target, weight: None, distance: None };
    for empty in ["keep", "zero"] {
        for loss in ["dice", "jaccard", "tversky"] {
            let config = json(loss, &format!(r#""empty": "{empty}", "reduction": "none""#));
            gpu_vs_reference(&config, inputs, 2e-4, 1e-6);
            let got = runner().compute(&config, inputs).unwrap();
            for img in 0..2 {
                let v = got.value[img * 4 + 3];
                if empty == "zero" {
                    assert_eq!(v, 0.0, "{loss}: an empty group scores 0 under empty = zero");
                } else {
                    // I = 0, so the score is smooth_nr / (P·… + smooth_dr): nearly 0, the loss nearly 1.
                    assert!(v > 0.999 && v <= 1.0, "{loss}: an empty group keeps its loss, got {v}");
                }
            }
        }
    }
    // generalized dice: the absent class's infinite weight becomes the largest finite one.
    for aggregate in ["image", "batch"] {
        let config = json("generalized_dice", &format!(r#""aggregate": "{aggregate}""#));
        gpu_vs_reference(&config, inputs, 2e-4, 1e-6);
    }
}

#[test]
fn every_pixel_ignored_gives_zero_and_a_zero_gradient() {
    let mut rng = rng(38);
    let x = logits(&mut rng, &[2, 3, 5, 6], 3.0);
    let labels = HostTensor::i32(&[2, 5, 6], vec![255; 60]).unwrap();
    let dense = HostTensor::f32(&[2, 3, 5, 6], vec![-1.0; 180]).unwrap();
    for (mode, target, ignore) in [("multiclass", &labels, 255), ("multilabel", &dense, -1)] {
        for loss in ["dice", "jaccard", "tversky"] {
            for extra in ["", r#", "empty": "zero""#, r#", "log_loss": true, "aggregate": "batch""#] {
                let config = json(loss, &format!(r#""mode": "{mode}", "ignore_index": {ignore}{extra}"#));
                let inputs = HostInputs { logits: &x, target, weight: None, distance: None };
                let got = runner().compute(&config, inputs).unwrap();
                // I = P = G = 0: the score is smooth_nr / smooth_dr = 1.
                assert!(got.value[0].abs() < 1e-6, "{loss} {mode}{extra}: {}", got.value[0]);
                assert!(got.grad.iter().all(|&g| g == 0.0), "{loss} {mode}{extra}: nonzero gradient");
                gpu_vs_reference(&config, inputs, 2e-4, 1e-6);
            }
        }
    }
}

#[test]
fn one_pixel_images_match_the_reference() {
    let mut rng = rng(39);
    for (mode, config) in configurations() {
        for shape in [vec![1usize, 4, 1, 1], vec![3, 4, 1, 1, 1]] {
            let (x, target) = inputs_for(&mut rng, mode, &shape, 3.0, ignore_of(&config));
            gpu_vs_reference(&config, HostInputs { logits: &x, target: &target, weight: None, distance: None }, 2e-4, 1e-6);
        }
    }
    let config = json("dice", r#""mode": "binary""#);
    let x = HostTensor::f32(&[1, 1, 1, 1], vec![0.7]).unwrap();
    let t = HostTensor::f32(&[1, 1, 1, 1], vec![1.0]).unwrap();
    gpu_vs_reference(&config, HostInputs { logits: &x, target: &t, weight: None, distance: None }, 2e-4, 1e-6);
}

#[test]
fn a_class_filling_the_image_matches_the_reference() {
    let mut rng = rng(40);
    let x = logits(&mut rng, &[2, 4, 20, 30], 3.0);
    let full = HostTensor::i32(&[2, 20, 30], vec![1; 1200]).unwrap();
    let ones = HostTensor::f32(&[2, 4, 20, 30], vec![1.0; 4800]).unwrap();
    for (mode, config) in configurations() {
        let target = if mode == "multiclass" { &full } else { &ones };
        gpu_vs_reference(&config, HostInputs { logits: &x, target, weight: None, distance: None }, 2e-4, 1e-6);
    }
}

#[test]
fn extreme_logits_stay_finite_and_match_the_reference() {
    let mut rng = rng(41);
    for (mode, config) in configurations() {
        let shape = [2usize, 4, 9, 11];
        let (mut x, target) = inputs_for(&mut rng, mode, &shape, 1.0, ignore_of(&config));
        if let segloss::HostData::F32(d) = &mut x.data {
            for v in d.iter_mut() {
                *v = if *v > 0.0 { 1e4 } else { -1e4 };
            }
        }
        let inputs = HostInputs { logits: &x, target: &target, weight: None, distance: None };
        let got = runner().compute(&config, inputs).unwrap();
        assert!(got.value.iter().chain(&got.grad).all(|v| v.is_finite()), "{}: not finite", config.name());
        gpu_vs_reference(&config, inputs, 2e-4, 1e-6);
    }
}

// ---- the plan: scale, accumulate, determinism, GPU-side label check ----

fn upload(h: &HostTensor) -> GpuTensor {
    GpuTensor::from_host(ctx(), h).unwrap()
}

fn run_plan(config: &LossConfig, options: PlanOptions, x: &HostTensor, t: &HostTensor, value0: &[f32], grad0: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let c = ctx();
    let plan = config.plan(c, &InputShapes::new(&x.shape, &t.shape), options).unwrap();
    let (xl, tl) = (upload(x), upload(t));
    let value = upload(&HostTensor::f32(plan.value_shape(), value0.to_vec()).unwrap());
    let grad = upload(&HostTensor::f32(&x.shape, grad0.to_vec()).unwrap());
    let mut encoder = c.device().create_command_encoder(&Default::default());
    plan.record(
        &mut encoder,
        LossInputs { logits: &xl, target: &tl, weight: None, distance: None },
        LossOutputs { value: &value, grad: Some(&grad) },
    )
    .unwrap();
    c.queue().submit([encoder.finish()]);
    (value.read_f32(c).unwrap(), grad.read_f32(c).unwrap())
}

#[test]
fn scale_and_accumulate_apply_to_value_and_gradient() {
    let mut rng = rng(42);
    let (x, t) = inputs_for(&mut rng, "multiclass", &[2, 3, 10, 12], 3.0, None);
    for config in [json("dice", ""), json("tversky", r#""reduction": "none""#), json("generalized_dice", r#""reduction": "sum""#)] {
        let reference = config.reference(&HostInputs { logits: &x, target: &t, weight: None, distance: None }).unwrap();
        let nv: usize = reference.value_shape.iter().product();
        let (v0, g0) = (vec![0.25f32; nv], vec![-0.5f32; x.len()]);
        let options = PlanOptions { scale: 0.5, accumulate_value: true, accumulate_grad: true, grad: true };
        let (v, g) = run_plan(&config, options, &x, &t, &v0, &g0);
        for (a, r) in v.iter().zip(&reference.value) {
            assert!((*a as f64 - (0.25 + 0.5 * r)).abs() < 1e-5, "{}: value {a} vs {}", config.name(), 0.25 + 0.5 * r);
        }
        let max = reference.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for (a, r) in g.iter().zip(&reference.grad) {
            assert!((*a as f64 - (-0.5 + 0.5 * r)).abs() < 1e-4 * max + 1e-6, "{}: grad {a}", config.name());
        }
        // Written, not accumulated: what was there is gone.
        let (v, g) = run_plan(&config, PlanOptions { scale: 2.0, ..Default::default() }, &x, &t, &v0, &g0);
        assert!((v[0] as f64 - 2.0 * reference.value[0]).abs() < 1e-5);
        assert!((g[0] as f64 - 2.0 * reference.grad[0]).abs() < 1e-4 * max + 1e-6);
    }
}

#[test]
fn results_are_bitwise_identical_run_to_run() {
    let mut rng = rng(43);
    let (x, t) = inputs_for(&mut rng, "multiclass", &[2, 5, 60, 70], 3.0, Some(255));
    let config = json("jaccard", r#""aggregate": "batch", "ignore_index": 255"#);
    let inputs = HostInputs { logits: &x, target: &t, weight: None, distance: None };
    let a = runner().compute(&config, inputs).unwrap();
    let b = runner().compute(&config, inputs).unwrap();
    assert_eq!(a.value.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), b.value.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    assert!(a.grad.iter().zip(&b.grad).all(|(p, q)| p.to_bits() == q.to_bits()));
}

#[test]
fn a_label_out_of_range_sets_the_status_on_the_gpu() {
    let c = ctx();
    let x = HostTensor::f32(&[1, 3, 2, 2], vec![0.0; 12]).unwrap();
    let t = HostTensor::i32(&[1, 2, 2], vec![0, 1, 7, 2]).unwrap();
    let config = json("dice", "");
    let plan = config.plan(c, &InputShapes::new(&x.shape, &t.shape), PlanOptions::default()).unwrap();
    let (xl, tl) = (upload(&x), upload(&t));
    let value = GpuTensor::zeros(c, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(c, &[1, 3, 2, 2], DType::F32).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    plan.record(&mut encoder, LossInputs { logits: &xl, target: &tl, weight: None, distance: None }, LossOutputs { value: &value, grad: Some(&grad) })
        .unwrap();
    let status = plan.status_buffer().expect("multiclass plans have a status");
    let readback = GpuTensor::new(c, segloss_status_copy(c, &mut encoder, status), 0, &[1], DType::I32).unwrap();
    c.queue().submit([encoder.finish()]);
    let bits = readback.read_host(c).unwrap().as_i32("status").unwrap()[0] as u32;
    assert_eq!(bits & 1, 1, "the kernel flags label 7 of 3 classes");
}

/// Copies the status word into a readable buffer.
fn segloss_status_copy(c: &GpuContext, encoder: &mut wgpu::CommandEncoder, status: &wgpu::Buffer) -> wgpu::Buffer {
    let out = c.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 256,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    encoder.copy_buffer_to_buffer(status, 0, &out, 0, 4);
    out
}

// ---- validation ----

/// The JSON of a `loss` configuration with `params` (the object's inside).
fn json_text(loss: &str, params: &str) -> String {
    format!(r#"{{"loss": "{loss}", "params": {{{params}}}}}"#)
}

#[test]
fn bad_parameters_are_configuration_errors() {
    let refused = |loss: &str, params: &str, needle: &str| config_error(&json_text(loss, params), needle);
    for loss in ["dice", "jaccard", "tversky"] {
        refused(loss, r#""smooth_nr": -1.0"#, "smooth_nr");
        refused(loss, r#""smooth_dr": -0.5"#, "smooth_dr");
        refused(loss, r#""eps": -1e-7"#, "eps");
        refused(loss, r#""log_loss": true, "eps": 0.0, "smooth_nr": 0.0"#, "log_loss");
        refused(loss, r#""class_weights": [1.0, -2.0]"#, "class_weights");
        refused(loss, r#""ignore_index": 5000000000"#, "ignore_index");
        refused(loss, r#""mode": "softmax""#, "softmax");
        refused(loss, r#""aggregate": "pixel""#, "pixel");
        refused(loss, r#""empty": "drop""#, "drop");
        refused(loss, r#""smoth_nr": 1.0"#, "smoth_nr");
        refused(loss, r#""smooth_dr": 1e300"#, "smooth_dr");
        refused(loss, r#""class_weights": [1.0, 1e39]"#, "f32");
    }
    refused("dice", r#""alpha": 0.3"#, "alpha");
    refused("jaccard", r#""weight_type": "square""#, "weight_type");
    refused("tversky", r#""alpha": 0.0, "beta": 0.0"#, "both 0");
    refused("tversky", r#""alpha": -0.1"#, "alpha");
    refused("tversky", r#""beta": "high""#, "beta");
    refused("tversky", r#""gamma": 2.0"#, "gamma");
    refused("generalized_dice", r#""smooth_dr": -1.0"#, "smooth_dr");
    refused("generalized_dice", r#""weight_type": "cubic""#, "cubic");
    for key in ["eps", "ignore_index", "class_weights", "squared", "log_loss", "empty"] {
        // generalized_dice takes none of these.
        refused("generalized_dice", &format!(r#""{key}": null"#), key);
    }
}

#[test]
fn bad_inputs_are_named() {
    let x4 = HostTensor::f32(&[2, 4, 3, 3], vec![0.0; 72]).unwrap();
    let labels = HostTensor::i32(&[2, 3, 3], vec![0; 18]).unwrap();
    let dense4 = HostTensor::f32(&[2, 4, 3, 3], vec![0.0; 72]).unwrap();
    let multiclass = json("dice", "");
    let multilabel = json("jaccard", r#""mode": "multilabel""#);

    let e = input_error(&json("dice", r#""class_weights": [1.0, 2.0]"#), &x4, &labels, None, "class_weights has 2 entries for 4 classes");
    assert!(matches!(e, Error::Input { .. }), "{e}");
    input_error(&json("dice", r#""class_weights": [1.0, 0.0, 0.0, 0.0], "include_background": false"#), &x4, &labels, None, "sum to 0");
    // Without the background, the kept classes' C − 1 weights are also taken; C − 2 are not.
    input_error(&json("dice", r#""class_weights": [1.0, 2.0], "include_background": false"#), &x4, &labels, None, "class_weights has 2 entries for 4 classes");
    input_error(&json("dice", r#""mode": "binary""#), &x4, &dense4, None, "binary mode takes one channel");
    let x1 = HostTensor::f32(&[2, 1, 3, 3], vec![0.0; 18]).unwrap();
    let d1 = HostTensor::f32(&[2, 1, 3, 3], vec![0.0; 18]).unwrap();
    input_error(&json("tversky", r#""mode": "binary", "include_background": false"#), &x1, &d1, None, "include_background");
    input_error(&multiclass, &x4, &dense4, None, "target has shape");
    input_error(&multilabel, &x4, &labels, None, "target has shape");
    let out_of_range = HostTensor::i32(&[2, 3, 3], [vec![0; 17], vec![4]].concat()).unwrap();
    input_error(&multiclass, &x4, &out_of_range, None, "target[17] = 4 is outside [0, 4)");
    let negative = HostTensor::i32(&[2, 3, 3], [vec![255; 17], vec![-1]].concat()).unwrap();
    input_error(&json("dice", r#""ignore_index": 255"#), &x4, &negative, None, "not ignore_index 255");
    input_error(&multiclass, &x4, &HostTensor::f32(&[2, 3, 3], vec![0.0; 18]).unwrap(), None, "integer class indices");
    let above_one = HostTensor::f32(&[2, 4, 3, 3], [vec![0.0; 71], vec![1.5]].concat()).unwrap();
    input_error(&multilabel, &x4, &above_one, None, "target[71] = 1.5 is outside [0, 1]");
    let below_zero = HostTensor::f32(&[2, 4, 3, 3], [vec![-1.0], vec![0.0; 71]].concat()).unwrap();
    input_error(&json("generalized_dice", r#""mode": "multilabel""#), &x4, &below_zero, None, "outside [0, 1]");
    input_error(&multilabel, &x4, &HostTensor::i32(&[2, 4, 3, 3], vec![0; 72]).unwrap(), None, "must be f32");
    let flat = HostTensor::f32(&[4], vec![0.0; 4]).unwrap();
    input_error(&multilabel, &flat, &flat, None, "class axis");

    let too_many = segloss::losses::overlap::MAX_CLASSES + 1;
    let shapes = InputShapes::new(&[1, too_many, 2, 2], &[1, 2, 2]);
    assert!(matches!(multiclass.check_shapes(&shapes), Err(Error::Limit { message: m, .. }) if m.contains("1024")));
    let shapes = InputShapes::new(&[1, 5000, 2, 2], &[1, 2, 2]);
    assert!(matches!(multiclass.check_shapes(&shapes), Err(Error::Limit { message: m, .. }) if m.contains("1024")));
    let shapes = InputShapes::new(&[1, too_many, 2, 2], &[1, 2, 2]);
    assert!(matches!(multiclass.plan(ctx(), &shapes, PlanOptions::default()), Err(Error::Limit { .. })));
    let mut weighted = InputShapes::new(&[2, 4, 3, 3], &[2, 3, 3]);
    weighted.weight = Some(vec![2, 4, 3, 3]);
    assert!(multiclass.check_shapes(&weighted).unwrap_err().to_string().contains("no per-element weight"));
    assert!(multiclass.check_shapes(&InputShapes::new(&[0, 4, 3, 3], &[0, 3, 3])).is_err());
}

#[test]
fn without_the_background_the_kept_classes_weights_may_come_alone() {
    let mut rng = rng(44);
    let (x, t) = inputs_for(&mut rng, "multiclass", &[2, 4, 8, 9], 3.0, None);
    let inputs = HostInputs { logits: &x, target: &t, weight: None, distance: None };
    let full = json("dice", r#""include_background": false, "class_weights": [7.0, 0.5, 2.0, 1.0]"#);
    let kept = json("dice", r#""include_background": false, "class_weights": [0.5, 2.0, 1.0]"#);
    let (a, b) = (full.reference(&inputs).unwrap(), kept.reference(&inputs).unwrap());
    assert_eq!(a, b);
    gpu_vs_reference(&kept, inputs, 2e-4, 1e-6);
}

#[test]
fn value_shapes_follow_the_reduction_and_aggregate() {
    let shapes = InputShapes::new(&[3, 4, 5, 5], &[3, 5, 5]);
    let shape = |loss: &str, params: &str| json(loss, params).check_shapes(&shapes).unwrap();
    assert_eq!(shape("dice", ""), vec![1]);
    assert_eq!(shape("dice", r#""reduction": "sum""#), vec![1]);
    assert_eq!(shape("dice", r#""reduction": "none""#), vec![3, 4]);
    assert_eq!(shape("jaccard", r#""reduction": "none", "include_background": false"#), vec![3, 3]);
    assert_eq!(shape("tversky", r#""reduction": "none", "aggregate": "batch""#), vec![4]);
    assert_eq!(shape("generalized_dice", r#""reduction": "none""#), vec![3]);
    assert_eq!(shape("generalized_dice", r#""reduction": "none", "aggregate": "batch""#), vec![1]);
}
