//! `hausdorff_dt`: the GPU against the float64 reference on every mode,
//! aggregate, log, reduction and background choice, 2D and 3D with
//! anisotropic spacing, on shapes that are no multiple of the workgroup;
//! finite differences of the reference with the fields held fixed; empty and
//! full masks; precomputed target maps; the engine path (one encoder, no
//! allocation per step, scale and accumulate); a compound term; the class
//! cap; every validation error.

use rand::Rng;
use rand::rngs::StdRng;
use segloss::losses::hausdorff_dt::MAX_CLASSES;
use segloss::primitives::distance::{DistanceField, DistanceMode, DistancePlan};
use segloss::reference::sigmoid;
use segloss::tools::samples::blob_labels;
use segloss::{
    CompoundConfig, ContextOptions, DType, Error, GpuContext, GpuTensor, HostInputs, HostTensor, InputShapes, LossConfig,
    LossInputs, LossOutputs, LossPlan, PlanOptions, Runner,
};

use crate::common::{config, config_error, ctx, gpu_vs_reference, input_error, rng, runner};

/// The predicted mask of every (image, channel, pixel), in float64 as the reference decides it.
fn predicted_masks(multiclass: bool, x: &[f64], n: usize, c: usize, s: usize) -> Vec<bool> {
    let mut masks = vec![false; x.len()];
    for img in 0..n {
        for q in 0..s {
            let at = |ch: usize| (img * c + ch) * s + q;
            if multiclass {
                let top = (0..c).map(|ch| x[at(ch)]).fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = (0..c).map(|ch| (x[at(ch)] - top).exp()).sum();
                for ch in 0..c {
                    masks[at(ch)] = (x[at(ch)] - top).exp() / total > 0.5;
                }
            } else {
                for ch in 0..c {
                    masks[at(ch)] = sigmoid(x[at(ch)]) > 0.5;
                }
            }
        }
    }
    masks
}

/// Logits that lean towards the target (so that the predicted masks look
/// like a network's, with borders of their own), with every probability at
/// least `margin` away from 0.5: f32 and float64 then threshold alike, and
/// a finite-difference step below the margin moves no mask.
fn leaning_logits(r: &mut StdRng, shape: &[usize], target: &HostTensor, multiclass: bool, margin: f64) -> HostTensor {
    let (n, c, s) = (shape[0], shape[1], shape[2..].iter().product::<usize>());
    let g = target.to_f64();
    let mut x = vec![0f32; n * c * s];
    for img in 0..n {
        for ch in 0..c {
            for q in 0..s {
                let on = if multiclass { g[img * s + q] as usize == ch } else { g[(img * c + ch) * s + q] > 0.5 };
                let noise = r.random::<f32>() * 6.0 - 3.0;
                x[(img * c + ch) * s + q] = noise + if on { 2.0 } else { -0.5 };
            }
        }
    }
    // Push any probability near 0.5 away from it.
    loop {
        let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mut moved = false;
        for img in 0..n {
            for q in 0..s {
                let at = |ch: usize| (img * c + ch) * s + q;
                if multiclass {
                    let top = (0..c).map(|ch| xs[at(ch)]).fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = (0..c).map(|ch| (xs[at(ch)] - top).exp()).sum();
                    if let Some(ch) = (0..c).find(|&ch| ((xs[at(ch)] - top).exp() / total - 0.5).abs() < margin) {
                        x[at(ch)] += 0.25;
                        moved = true;
                    }
                } else {
                    for ch in 0..c {
                        if (sigmoid(xs[at(ch)]) - 0.5).abs() < margin {
                            x[at(ch)] = xs[at(ch)] as f32 + if xs[at(ch)] >= 0.0 { 0.25 } else { -0.25 };
                            moved = true;
                        }
                    }
                }
            }
        }
        if !moved {
            break;
        }
    }
    HostTensor::f32(shape, x).unwrap()
}

/// Blob targets for `mode`: class labels `[N, S…]`, or one blob map per channel `[N, C, S…]`.
fn targets(mode: &str, shape: &[usize], seed: u64) -> HostTensor {
    let spatial = &shape[2..];
    if mode == "multiclass" {
        let target_shape: Vec<usize> = std::iter::once(shape[0]).chain(spatial.iter().copied()).collect();
        return blob_labels(&target_shape, shape[1], seed).unwrap();
    }
    let maps: Vec<usize> = std::iter::once(shape[0] * shape[1]).chain(spatial.iter().copied()).collect();
    let blobs = blob_labels(&maps, 2, seed).unwrap();
    HostTensor::f32(shape, blobs.as_i32("blobs").unwrap().iter().map(|&v| v as f32).collect()).unwrap()
}

fn case(mode: &str, shape: &[usize], seed: u64) -> (HostTensor, HostTensor) {
    let y = targets(mode, shape, seed);
    let x = leaning_logits(&mut rng(seed), shape, &y, mode == "multiclass", 1e-3);
    (x, y)
}

fn inputs<'a>(x: &'a HostTensor, y: &'a HostTensor) -> HostInputs<'a> {
    HostInputs::new(x, y)
}

fn hausdorff(params: &str) -> LossConfig {
    config(&format!(r#"{{"loss": "hausdorff_dt", "params": {params}}}"#))
}

#[test]
fn gpu_matches_reference_on_every_mode_aggregate_log_reduction_and_background() {
    let mut seed = 1300;
    for (mode, shape) in [("multiclass", [2usize, 3, 9, 13]), ("multilabel", [2, 3, 9, 13]), ("binary", [3, 1, 11, 7])] {
        for aggregate in ["image", "batch"] {
            for log in [false, true] {
                for reduction in ["mean", "sum", "none"] {
                    for include_background in [false, true] {
                        seed += 1;
                        let (x, y) = case(mode, &shape, seed);
                        let params = format!(
                            r#"{{"mode": "{mode}", "aggregate": "{aggregate}", "log": {log}, "reduction": "{reduction}", "include_background": {include_background}}}"#
                        );
                        gpu_vs_reference(&hausdorff(&params), inputs(&x, &y), 1e-4, 1e-6);
                    }
                }
            }
        }
    }
}

#[test]
fn gpu_matches_reference_on_larger_2d_and_anisotropic_3d_shapes() {
    // Shapes no multiple of the 256-thread workgroup or the 1,024-pixel tile, one image spanning several tiles.
    let cases: &[(&str, &[usize], &str)] = &[
        ("multiclass", &[2, 4, 37, 41], r#"{"alpha": 2.0}"#),
        ("multiclass", &[1, 5, 50, 17], r#"{"alpha": 1.3, "spacing": [0.6, 1.7], "include_background": true}"#),
        ("multilabel", &[3, 2, 29, 31], r#"{"mode": "multilabel", "alpha": 0.7, "spacing": [2.0, 0.5], "reduction": "sum"}"#),
        ("binary", &[2, 1, 45, 23], r#"{"mode": "binary", "log": true, "reduction": "none", "aggregate": "batch"}"#),
        ("multiclass", &[1, 3, 7, 11, 13], r#"{"spacing": [1.3, 0.8, 1.0], "log": true}"#),
        ("multiclass", &[2, 3, 5, 9, 6], r#"{"spacing": [2.5, 0.7, 1.1], "aggregate": "batch", "reduction": "none", "alpha": 2.6}"#),
        ("multilabel", &[2, 2, 6, 10, 9], r#"{"mode": "multilabel", "spacing": [3.0, 1.0, 0.9], "include_background": true, "reduction": "none"}"#),
        ("binary", &[1, 1, 9, 8, 7], r#"{"mode": "binary", "spacing": [0.5, 1.5, 1.0], "alpha": 3.0, "aggregate": "batch"}"#),
    ];
    for (i, (mode, shape, params)) in cases.iter().enumerate() {
        let (x, y) = case(mode, shape, 1400 + i as u64);
        gpu_vs_reference(&hausdorff(params), inputs(&x, &y), 1e-4, 1e-6);
    }
}

#[test]
fn reference_gradient_matches_finite_differences_with_the_fields_fixed() {
    for (i, (mode, shape, params)) in [
        ("multiclass", [2usize, 3, 6, 7], r#"{"spacing": [0.7, 1.4]}"#),
        ("multiclass", [1, 3, 7, 5], r#"{"include_background": true, "log": true, "reduction": "sum", "alpha": 1.5}"#),
        ("multiclass", [2, 3, 5, 6], r#"{"aggregate": "batch", "reduction": "none", "log": true}"#),
        ("multilabel", [2, 2, 6, 5], r#"{"mode": "multilabel", "reduction": "none", "alpha": 0.8}"#),
        ("binary", [2, 1, 7, 6], r#"{"mode": "binary", "log": true, "aggregate": "batch"}"#),
    ]
    .into_iter()
    .enumerate()
    {
        let cfg = hausdorff(params);
        let multiclass = mode == "multiclass";
        let y = targets(mode, &shape, 1500 + i as u64);
        // A margin of 0.02 in p; a step of 1e-3 in x moves p by at most 2.5e-4.
        let x = leaning_logits(&mut rng(1500 + i as u64), &shape, &y, multiclass, 0.02);
        let reference = cfg.reference(&inputs(&x, &y)).unwrap();
        let xs = x.as_f32("x").unwrap();
        let (n, c, s) = (shape[0], shape[1], shape[2] * shape[3]);
        let masks = predicted_masks(multiclass, &x.to_f64(), n, c, s);
        let total = |v: &[f32]| {
            let t = HostTensor::f32(&shape, v.to_vec()).unwrap();
            let moved = predicted_masks(multiclass, &t.to_f64(), n, c, s);
            assert_eq!(moved, masks, "{params}: the step moved a predicted mask");
            cfg.reference(&inputs(&t, &y)).unwrap().value.iter().sum::<f64>()
        };
        let scale = reference.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for j in (0..xs.len()).step_by(3) {
            let h = 1e-3f32;
            let (mut up, mut down) = (xs.to_vec(), xs.to_vec());
            up[j] += h;
            down[j] -= h;
            let fd = (total(&up) - total(&down)) / ((up[j] - down[j]) as f64);
            let g = reference.grad[j];
            assert!((fd - g).abs() <= 1e-5 * (1.0 + scale), "{params}: grad[{j}] {g} vs finite difference {fd}");
        }
    }
}

#[test]
fn empty_and_full_masks_have_zero_fields() {
    // Image 0: all class 0 (G full for class 0, empty for 1 and 2), logits
    // that predict it everywhere: every field is 0, so is the loss.
    let (h, w) = (6usize, 9usize);
    let s = h * w;
    let uniform = HostTensor::i32(&[1, h, w], vec![0; s]).unwrap();
    let confident: Vec<f32> = (0..3 * s).map(|i| if i < s { 8.0 } else { -8.0 }).collect();
    let x = HostTensor::f32(&[1, 3, h, w], confident).unwrap();
    for params in [r#"{}"#, r#"{"include_background": true, "reduction": "none"}"#] {
        let cfg = hausdorff(params);
        let r = cfg.reference(&inputs(&x, &uniform)).unwrap();
        assert!(r.value.iter().all(|&v| v == 0.0) && r.grad.iter().all(|&g| g == 0.0), "{params}: {:?}", r.value);
        let gpu = runner().compute(&cfg, inputs(&x, &uniform)).unwrap();
        assert!(gpu.value.iter().all(|&v| v == 0.0) && gpu.grad.iter().all(|&g| g == 0.0), "{params}: {:?}", gpu.value);
        let maps = &r.extras.iter().find(|(n, _)| *n == "distance").unwrap().1;
        assert!(maps.iter().all(|&d| d == 0.0), "an empty or full target's fields are 0");
    }
    // G full, P a blob: only d_P weighs the errors; and P empty, G a blob: only d_G.
    let mut blob = vec![0i32; s];
    for q in [20, 21, 22, 29, 30, 31] {
        blob[q] = 1;
    }
    let target = HostTensor::i32(&[2, h, w], [vec![1; s], blob.clone()].concat()).unwrap();
    let predict = |img: usize, q: usize| if img == 0 { blob[q] == 1 } else { false };
    let x: Vec<f32> = (0..2)
        .flat_map(|img| (0..2).flat_map(move |ch| (0..s).map(move |q| (img, ch, q))))
        .map(|(img, ch, q)| if (ch == 1) == predict(img, q) { 3.0 } else { -3.0 })
        .collect();
    let x = HostTensor::f32(&[2, 2, h, w], x).unwrap();
    let cfg = hausdorff(r#"{"reduction": "none"}"#);
    let r = cfg.reference(&inputs(&x, &target)).unwrap();
    assert!(r.value.iter().all(|&v| v > 0.0), "{:?}", r.value);
    gpu_vs_reference(&cfg, inputs(&x, &target), 1e-4, 1e-6);
    // The same in binary mode, with an all-zero and an all-one target.
    let dense = HostTensor::f32(&[2, 1, h, w], [vec![0.0; s], vec![1.0; s]].concat()).unwrap();
    let xb = HostTensor::f32(&[2, 1, h, w], (0..2 * s).map(|i| if i % 7 == 0 { 2.0 } else { -2.0 }).collect()).unwrap();
    gpu_vs_reference(&hausdorff(r#"{"mode": "binary", "reduction": "none"}"#), inputs(&xb, &dense), 1e-4, 1e-6);
}

#[test]
fn extreme_logits_give_finite_results() {
    let mut r = rng(1600);
    let shape = [2, 3, 12, 14];
    let y = targets("multiclass", &shape, 1601);
    let x: Vec<f32> = (0..shape.iter().product::<usize>()).map(|_| if r.random::<bool>() { 1e4 } else { -1e4 }).collect();
    let x = HostTensor::f32(&shape, x).unwrap();
    for params in [r#"{"spacing": [1e3, 1e-3]}"#, r#"{"log": true, "reduction": "none", "include_background": true}"#] {
        let cfg = hausdorff(params);
        let out = runner().compute(&cfg, inputs(&x, &y)).unwrap();
        assert!(out.value.iter().chain(&out.grad).all(|v| v.is_finite()), "{params}");
        gpu_vs_reference(&cfg, inputs(&x, &y), 1e-4, 1e-6);
    }
    let yb = targets("multilabel", &shape, 1602);
    let cfg = hausdorff(r#"{"mode": "multilabel", "alpha": 4.0}"#);
    gpu_vs_reference(&cfg, inputs(&x, &yb), 1e-4, 1e-6);
}

/// Records `plan` on GPU copies of `x`, `y` (and maps), returns value and gradient.
fn record(plan: &LossPlan, x: &HostTensor, y: &HostTensor, maps: Option<&GpuTensor>) -> (Vec<f32>, Vec<f32>) {
    let c = ctx();
    let (gx, gy) = (GpuTensor::from_host(c, x).unwrap(), GpuTensor::from_host(c, y).unwrap());
    let value = GpuTensor::zeros(c, plan.value_shape(), DType::F32).unwrap();
    let grad = GpuTensor::zeros(c, &x.shape, DType::F32).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    let mut inputs = LossInputs::new(&gx, &gy);
    if let Some(m) = maps {
        inputs = inputs.with_distance(m);
    }
    plan.record(&mut encoder, inputs, LossOutputs::new(&value, &grad)).unwrap();
    c.queue().submit([encoder.finish()]);
    (value.read_f32(c).unwrap(), grad.read_f32(c).unwrap())
}

#[test]
fn precomputed_target_maps_give_the_same_result() {
    let c = ctx();
    let shape = [2, 4, 20, 18];
    let (x, y) = case("multiclass", &shape, 1700);
    let cfg = hausdorff(r#"{"spacing": [0.9, 1.2], "log": true}"#);
    let plan = cfg.plan(c, &InputShapes::new(&shape, &y.shape), PlanOptions::default()).unwrap();
    assert!(plan.takes_distance());
    // Every class's two-sided field, as a data loader would keep them.
    let dplan = DistancePlan::with_field(c, &y.shape, &[0, 1, 2, 3], Some(&[0.9, 1.2]), DistanceMode::Exact, DistanceField::TwoSided).unwrap();
    let maps = GpuTensor::zeros(c, dplan.output_shape(), DType::F32).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    dplan.record(&mut encoder, &GpuTensor::from_host(c, &y).unwrap(), &maps).unwrap();
    c.queue().submit([encoder.finish()]);
    let computed = record(&plan, &x, &y, None);
    // The plan's own maps are its extra, and equal the reference's.
    let own = plan.extra("distance").expect("the plan's maps").read_f32(c).unwrap();
    let reference = cfg.reference(&inputs(&x, &y)).unwrap();
    let expected = &reference.extras.iter().find(|(n, _)| *n == "distance").unwrap().1;
    for (i, (&g, &e)) in own.iter().zip(expected).enumerate() {
        assert!((g as f64 - e).abs() <= 1e-5 * (1.0 + e), "map element {i}: {g} vs {e}");
    }
    let given = record(&plan, &x, &y, Some(&maps));
    assert_eq!(computed, given, "maps given and maps computed in the encoder must agree bitwise");
    assert!(plan.extra("distance").is_none(), "with the caller's maps the plan reports none of its own");

    // Dense targets: the plan's own extra passed back in.
    let shape = [2, 3, 15, 16];
    let (x, y) = case("multilabel", &shape, 1701);
    let cfg = hausdorff(r#"{"mode": "multilabel", "include_background": true}"#);
    let plan = cfg.plan(c, &InputShapes::new(&shape, &y.shape), PlanOptions::default()).unwrap();
    let computed = record(&plan, &x, &y, None);
    let own = HostTensor::f32(&shape, plan.extra("distance").unwrap().read_f32(c).unwrap()).unwrap();
    let given = record(&plan, &x, &y, Some(&GpuTensor::from_host(c, &own).unwrap()));
    assert_eq!(computed, given);

    // Maps of the wrong shape are refused.
    let wrong = GpuTensor::zeros(c, &[2, 2, 15, 16], DType::F32).unwrap();
    let (gx, gy) = (GpuTensor::from_host(c, &x).unwrap(), GpuTensor::from_host(c, &y).unwrap());
    let value = GpuTensor::zeros(c, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(c, &shape, DType::F32).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    let err = plan.record(&mut encoder, LossInputs::new(&gx, &gy).with_distance(&wrong), LossOutputs::new(&value, &grad)).unwrap_err();
    assert!(matches!(err, Error::Shape { input: "distance", .. }), "{err}");
}

#[test]
fn the_plan_records_into_the_callers_encoder_and_allocates_nothing_per_step() {
    // Its own context, so that no other test's buffers count.
    let c = GpuContext::new().unwrap();
    let shape = [2, 3, 24, 20];
    let (x, y) = case("multiclass", &shape, 1800);
    let cfg = hausdorff(r#"{"log": true}"#);
    let reference = cfg.reference(&inputs(&x, &y)).unwrap();
    let options = PlanOptions { scale: 0.5, accumulate_value: true, accumulate_grad: true, grad: true };
    let mut plan = cfg.plan(&c, &InputShapes::new(&shape, &y.shape), options).unwrap();
    let (gx, gy) = (GpuTensor::from_host(&c, &x).unwrap(), GpuTensor::from_host(&c, &y).unwrap());
    let value = GpuTensor::from_host(&c, &HostTensor::f32(&[1], vec![1.0]).unwrap()).unwrap();
    let grad = GpuTensor::from_host(&c, &HostTensor::f32(&shape, vec![0.25; x.len()]).unwrap()).unwrap();
    let io = |plan: &LossPlan, encoder: &mut wgpu::CommandEncoder| {
        plan.record(encoder, LossInputs::new(&gx, &gy), LossOutputs::new(&value, &grad)).unwrap();
    };
    // Two steps recorded into one encoder: nothing runs before the caller submits it.
    let mut encoder = c.device().create_command_encoder(&Default::default());
    io(&plan, &mut encoder);
    io(&plan, &mut encoder);
    assert_eq!(value.read_f32(&c).unwrap(), vec![1.0], "the value moved before the encoder was submitted");
    c.queue().submit([encoder.finish()]);
    // A third step at a new scale, in a second encoder: no buffer is made for it.
    let after_first = c.buffers_created();
    plan.set_scale(-2.0);
    let mut encoder = c.device().create_command_encoder(&Default::default());
    io(&plan, &mut encoder);
    c.queue().submit([encoder.finish()]);
    assert_eq!(c.buffers_created(), after_first, "recording allocated a buffer");
    let v = value.read_f32(&c).unwrap()[0] as f64;
    let expected = 1.0 + (0.5 + 0.5 - 2.0) * reference.value[0];
    assert!((v - expected).abs() <= 1e-5 * (1.0 + expected.abs()), "{v} vs {expected}");
    let g = grad.read_f32(&c).unwrap();
    let max = reference.grad.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&got, &rg)) in g.iter().zip(&reference.grad).enumerate() {
        let want = 0.25 + (0.5 + 0.5 - 2.0) * rg;
        assert!((got as f64 - want).abs() <= 1e-6 + 1e-4 * max, "grad[{i}] {got} vs {want}");
    }
    // The inputs are never written.
    assert_eq!(gx.read_f32(&c).unwrap(), x.as_f32("x").unwrap());
}

#[test]
fn a_compound_of_dice_and_hausdorff_dt_sums_the_weighted_terms() {
    let shape = [2, 3, 22, 19];
    let (x, y) = case("multiclass", &shape, 1900);
    let dice = config(r#"{"loss": "dice", "params": {}}"#);
    let hd = hausdorff(r#"{"alpha": 2.0}"#);
    let lambda = 0.05;
    let compound = CompoundConfig::new(vec![(1.0, dice.clone()), (lambda, hd.clone())]).unwrap();
    let got = runner().compute_compound(&compound, inputs(&x, &y)).unwrap();
    let (d, h) = (dice.reference(&inputs(&x, &y)).unwrap(), hd.reference(&inputs(&x, &y)).unwrap());
    let want_value = d.value[0] + lambda * h.value[0];
    assert!((got.value[0] as f64 - want_value).abs() <= 1e-5 * (1.0 + want_value.abs()), "{} vs {want_value}", got.value[0]);
    let want: Vec<f64> = d.grad.iter().zip(&h.grad).map(|(a, b)| a + lambda * b).collect();
    let max = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.grad.iter().zip(&want).enumerate() {
        assert!((g as f64 - w).abs() <= 1e-6 + 1e-4 * max, "grad[{i}] {g} vs {w}");
    }
    // The compound's own reference agrees, and hausdorff_dt deserializes as a term.
    let parsed: CompoundConfig = serde_json::from_str(
        r#"{"terms": [{"weight": 1.0, "loss": "dice", "params": {}}, {"weight": 0.05, "loss": "hausdorff_dt", "params": {"alpha": 2.0}}]}"#,
    )
    .unwrap();
    assert_eq!(parsed, compound);
    assert!((compound.reference(&inputs(&x, &y)).unwrap().value[0] - want_value).abs() < 1e-12);

    // One tensor of maps cannot serve boundary's signed and hausdorff_dt's two-sided maps.
    let both = CompoundConfig::new(vec![(1.0, config(r#"{"loss": "boundary"}"#)), (1.0, hd)]).unwrap();
    let c = ctx();
    let plan = both.plan(c, &InputShapes::new(&shape, &y.shape), PlanOptions::default()).unwrap();
    let (gx, gy) = (GpuTensor::from_host(c, &x).unwrap(), GpuTensor::from_host(c, &y).unwrap());
    let maps = GpuTensor::zeros(c, &shape, DType::F32).unwrap();
    let value = GpuTensor::zeros(c, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(c, &shape, DType::F32).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    let e = plan.record(&mut encoder, LossInputs::new(&gx, &gy).with_distance(&maps), LossOutputs::new(&value, &grad)).unwrap_err();
    assert!(e.to_string().contains("different kinds"), "{e}");
}

#[test]
fn chunked_bindings_give_the_reference() {
    // 16 KiB bindings: many chunks in the mask, transform and loss passes.
    let small = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(16384), ..Default::default() }).unwrap());
    for (i, (mode, shape, params)) in [
        ("multiclass", [3usize, 3, 30, 40], r#"{"log": true}"#),
        ("multilabel", [3, 2, 30, 40], r#"{"mode": "multilabel", "reduction": "none", "spacing": [1.5, 0.5]}"#),
        ("multiclass", [2, 3, 40, 33], r#"{"aggregate": "batch", "reduction": "none", "include_background": true}"#),
    ]
    .into_iter()
    .enumerate()
    {
        let (x, y) = case(mode, &shape, 2000 + i as u64);
        let cfg = hausdorff(params);
        let reference = cfg.reference(&inputs(&x, &y)).unwrap();
        let gpu = small.compute(&cfg, inputs(&x, &y)).unwrap();
        let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let value = segloss::golden::compare("value", &widen(&gpu.value), &reference.value, 1e-4, 1e-6, false);
        let grad = segloss::golden::compare("grad", &widen(&gpu.grad), &reference.grad, 1e-4, 1e-6, true);
        assert!(value.ratio <= 1.0 && grad.ratio <= 1.0, "{params}: {value:?} {grad:?}");
    }
}

#[test]
fn the_largest_class_count_is_not_cut_short() {
    // Every loop of pixel_loss at its longest: "none" with both passes (log), every channel kept.
    let c = MAX_CLASSES;
    let (h, w) = (8usize, 8usize);
    let labels: Vec<i32> = (0..h * w).map(|q| if q % 9 < 4 { c as i32 - 1 } else { (q % 5) as i32 }).collect();
    let y = HostTensor::i32(&[1, h, w], labels.clone()).unwrap();
    let mut r = rng(2100);
    let mut x = vec![0f32; c * h * w];
    for (q, &label) in labels.iter().enumerate() {
        for ch in 0..c {
            x[ch * h * w + q] = r.random::<f32>() - 0.5;
        }
        // The labelled class wins clearly at most pixels (not all, so masks have borders).
        if q % 7 != 0 {
            x[label as usize * h * w + q] = 12.0;
        }
    }
    let x = HostTensor::f32(&[1, c, h, w], x).unwrap();
    let cfg = hausdorff(r#"{"include_background": true, "log": true, "reduction": "none"}"#);
    gpu_vs_reference(&cfg, inputs(&x, &y), 1e-4, 1e-6);
}

#[test]
fn labels_outside_the_classes_are_reported() {
    let shape = [1, 3, 8, 8];
    let (x, _) = case("multiclass", &shape, 2200);
    let mut labels = vec![1i32; 64];
    labels[10] = 3;
    let y = HostTensor::i32(&[1, 8, 8], labels).unwrap();
    let cfg = hausdorff("{}");
    // On the host before anything runs…
    let e = input_error(&cfg, &x, &y, None, "target[10] = 3");
    assert!(matches!(e, Error::Input { scope: "hausdorff_dt", .. }), "{e:?}");
    // …and on the GPU through the status word, for engines that skip the host check.
    let c = ctx();
    let plan = cfg.plan(c, &InputShapes::new(&shape, &[1, 8, 8]), PlanOptions::default()).unwrap();
    let (gx, gy) = (GpuTensor::from_host(c, &x).unwrap(), GpuTensor::from_host(c, &y).unwrap());
    let value = GpuTensor::zeros(c, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(c, &shape, DType::F32).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    plan.record(&mut encoder, LossInputs::new(&gx, &gy), LossOutputs::new(&value, &grad)).unwrap();
    let status = GpuTensor::zeros(c, &[1], DType::I32).unwrap();
    encoder.copy_buffer_to_buffer(plan.status_buffer().unwrap(), 0, status.buffer(), 0, 4);
    c.queue().submit([encoder.finish()]);
    assert_ne!(status.read_host(c).unwrap().as_i32("status").unwrap()[0] as u32, 0);
    assert!(cfg.status_rule().contains("outside [0, C)"));
    // Dense targets outside [0, 1], and ignore values, are bad input too.
    let (xd, _) = case("multilabel", &shape, 2201);
    let mut dense = vec![0.0f32; 3 * 64];
    dense[5] = 2.0;
    input_error(&hausdorff(r#"{"mode": "multilabel"}"#), &xd, &HostTensor::f32(&shape, dense).unwrap(), None, "target[5] = 2");
    input_error(&cfg, &x, &HostTensor::i32(&[1, 8, 8], vec![255; 64]).unwrap(), None, "target[0] = 255");
}

#[test]
fn validation_errors_name_the_problem() {
    for (params, needle) in [
        (r#"{"alpha": 0.0}"#, "alpha = 0"),
        (r#"{"alpha": -1.0}"#, "alpha = -1"),
        (r#"{"alpha": 65.0}"#, "alpha = 65"),
        (r#"{"spacing": [1.0, -2.0]}"#, "spacing -2"),
        (r#"{"spacing": [1.0, 0.0]}"#, "spacing 0"),
        (r#"{"mode": "softmax"}"#, "softmax"),
        (r#"{"aggregate": "pixel"}"#, "pixel"),
        (r#"{"reduction": "median"}"#, "median"),
        (r#"{"ignore_index": 255}"#, "ignore_index"),
        (r#"{"log": 1}"#, "log must be true or false, not the number 1"),
    ] {
        config_error(&format!(r#"{{"loss": "hausdorff_dt", "params": {params}}}"#), needle);
    }
    let shape_err = |params: &str, logits: &[usize], target: &[usize], weight: bool, what: &str| {
        let mut shapes = InputShapes::new(logits, target);
        if weight {
            shapes.weight = Some(logits.to_vec());
        }
        match hausdorff(params).check_shapes(&shapes) {
            Err(e @ (Error::Input { .. } | Error::Shape { .. } | Error::Limit { .. })) => assert!(e.to_string().contains(what), "{params} {logits:?}: {e}"),
            other => panic!("{params} {logits:?}: {other:?}"),
        }
    };
    let plain = "{}";
    shape_err(plain, &[2, 3, 16], &[2, 16], false, "[N, C, H, W]");
    shape_err(plain, &[1, 2, 3, 4, 5, 6], &[1, 3, 4, 5, 6], false, "[N, C, H, W]");
    shape_err(plain, &[2, 3, 8, 8], &[2, 8, 9], false, "target has shape");
    shape_err(plain, &[2, 3, 8, 8], &[2, 8, 8], true, "weight");
    shape_err(plain, &[2, 3, 0, 8], &[2, 0, 8], false, "empty axis");
    shape_err(plain, &[2, 1, 8, 8], &[2, 8, 8], false, "C ≥ 2");
    shape_err(r#"{"mode": "binary"}"#, &[2, 2, 8, 8], &[2, 2, 8, 8], false, "one channel");
    shape_err(r#"{"mode": "multilabel"}"#, &[2, 2, 8, 8], &[2, 8, 8], false, "target has shape");
    shape_err(r#"{"mode": "multilabel"}"#, &[2, 2, 0, 8], &[2, 2, 0, 8], false, "empty axis");
    shape_err(r#"{"spacing": [1.0]}"#, &[1, 3, 4, 4], &[1, 4, 4], false, "spacing has 1 entries");
    shape_err(r#"{"spacing": [1.0, 1.0]}"#, &[1, 3, 2, 4, 4], &[1, 2, 4, 4], false, "3 spatial axes");
    shape_err(plain, &[1, MAX_CLASSES + 1, 2, 2], &[1, 2, 2], false, "classes exceed");
    shape_err(plain, &[1, 2, 2, 8000], &[1, 2, 8000], false, "at most");
    shape_err(plain, &[2, 2, 1 << 15, 1 << 14], &[2, 1 << 15, 1 << 14], false, "2^31");
    // Sums that would leave f32: a large α on a large image.
    shape_err(r#"{"alpha": 30.0}"#, &[1, 2, 512, 512], &[1, 512, 512], false, "leave f32");
    hausdorff(r#"{"alpha": 30.0}"#).check_shapes(&InputShapes::new(&[1, 2, 8, 8], &[1, 8, 8])).unwrap();
    // binary with include_background false is SPEC's (and MONAI's) one kept channel, not an error.
    let one = hausdorff(r#"{"mode": "binary", "reduction": "none"}"#);
    assert_eq!(one.check_shapes(&InputShapes::new(&[3, 1, 4, 4], &[3, 1, 4, 4])).unwrap(), vec![3, 1]);
    assert_eq!(
        hausdorff(r#"{"aggregate": "batch", "reduction": "none"}"#).check_shapes(&InputShapes::new(&[3, 4, 4, 4], &[3, 4, 4])).unwrap(),
        vec![3]
    );
    // Float targets in multiclass mode are refused where they are read.
    let (x, _) = case("multiclass", &[1, 2, 4, 4], 2300);
    assert!(matches!(runner().compute(&hausdorff(plain), inputs(&x, &HostTensor::f32(&[1, 4, 4], vec![0.0; 16]).unwrap())), Err(Error::Input { .. })));
}
