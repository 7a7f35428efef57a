//! `cl_dice`: the float64 reference against finite differences, the GPU
//! against the reference on random 2D and 3D inputs in every mode,
//! reduction and α (images that are not multiples of the tile, tensors over
//! several bindings), SPEC.md's edge cases (empty, full and one-pixel-high
//! masks, a class absent, K = 0, the largest K), the compound
//! `dice + 0.5·cl_dice` of the clDice paper, scale and accumulate,
//! determinism, and the parameter rules.

use rand::rngs::StdRng;
use segloss::tools::samples::{class_targets, dense_targets, leaning_logits};
use segloss::{CompoundConfig, ContextOptions, GpuContext, HostInputs, HostTensor, LossConfig, Runner};

use crate::common::{
    assert_reference_matches_finite_differences_with_step, assert_scale_and_accumulate, config, config_error, gpu_vs_reference, input_error,
    logits, rng, runner, runner_vs_reference,
};

fn inputs<'a>(x: &'a HostTensor, t: &'a HostTensor) -> HostInputs<'a> {
    HostInputs { logits: x, target: t, weight: None, distance: None }
}

fn json(mode: &str, params: &str) -> LossConfig {
    let sep = if params.is_empty() { "" } else { ", " };
    config(&format!(r#"{{"loss": "cl_dice", "params": {{"mode": "{mode}"{sep}{params}}}}}"#))
}

/// Blob targets (labels for multiclass, {0, 1} maps otherwise) and logits
/// leaning towards them by `lean`, so that both skeletons are thin shapes,
/// plus noise.
fn random(rng: &mut StdRng, mode: &str, images: usize, classes: usize, spatial: &[usize], lean: f32) -> (HostTensor, HostTensor) {
    let channels = if mode == "binary" { 1 } else { classes };
    let shape: Vec<usize> = [images, channels].into_iter().chain(spatial.iter().copied()).collect();
    let t = if mode == "multiclass" { class_targets(rng, &shape).unwrap() } else { dense_targets(rng, &shape).unwrap() };
    (leaning_logits(rng, &shape, &t, lean).unwrap(), t)
}

fn configurations() -> Vec<(&'static str, LossConfig)> {
    [
        ("multiclass", ""),
        ("binary", ""),
        ("multilabel", r#""iterations": 5, "smooth_nr": 0.5, "smooth_dr": 2.0, "smooth": 0.01, "alpha": 0.3, "reduction": "none""#),
        ("multiclass", r#""iterations": 1, "alpha": 0.5, "include_background": false, "reduction": "sum""#),
        ("binary", r#""iterations": 0, "reduction": "none""#),
        ("multiclass", r#""iterations": 4, "alpha": 0.0, "reduction": "sum""#),
        ("multilabel", r#""iterations": 2, "alpha": 0.8, "include_background": false"#),
    ]
    .into_iter()
    .map(|(m, p)| (m, json(m, p)))
    .collect()
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut rng = rng(131);
    for (mode, config) in configurations() {
        for spatial in [vec![5usize, 6], vec![3, 4, 4]] {
            let (x, t) = random(&mut rng, mode, 2, 3, &spatial, 1.5);
            // A small step: the min and max selections switch where two
            // neighbours tie, closer than 1/1024 on some inputs.
            assert_reference_matches_finite_differences_with_step(&config, &x, &t, &format!("{mode} {spatial:?}"), 1.0 / 65536.0);
        }
    }
}

#[test]
fn gpu_matches_reference_on_random_2d_and_3d_inputs() {
    let mut rng = rng(132);
    for (mode, config) in configurations() {
        for (images, classes, spatial) in [(2, 3, vec![37usize, 45]), (1, 2, vec![7, 19, 21]), (3, 4, vec![5, 7]), (1, 2, vec![1, 1]), (2, 2, vec![1, 30])] {
            let (x, t) = random(&mut rng, mode, images, classes, &spatial, 2.0);
            gpu_vs_reference(&config, inputs(&x, &t), 1e-4, 1e-6);
        }
    }
}

#[test]
fn tensors_split_over_several_bindings_match_the_reference() {
    // 96 KiB bindings: one image's levels ([3, 24, 30], K = 3) take 43 KiB, so chunks of two images.
    let small = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(96 * 1024), ..Default::default() }).unwrap());
    let mut rng = rng(133);
    for (mode, config) in configurations() {
        let (x, t) = random(&mut rng, mode, 5, 3, &[24, 30], 2.0);
        runner_vs_reference(&small, &config, inputs(&x, &t), 1e-4, 1e-6);
    }
    // An image whose levels exceed one binding is refused, by name.
    let tiny = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(8 * 1024), ..Default::default() }).unwrap());
    let (x, t) = random(&mut rng, "binary", 1, 1, &[24, 30], 2.0);
    let e = tiny.compute(&json("binary", ""), inputs(&x, &t)).unwrap_err().to_string();
    assert!(e.contains("skeleton levels"), "{e}");
}

#[test]
fn edge_cases_match_the_reference() {
    let mut rng = rng(134);
    // Empty and full binary masks, predicted confidently: a full mask never erodes (SPEC.md).
    let t = HostTensor::f32(&[2, 1, 6, 7], [vec![0.0; 42], vec![1.0; 42]].concat()).unwrap();
    let x = HostTensor::f32(&[2, 1, 6, 7], [vec![-12.0; 42], vec![12.0; 42]].concat()).unwrap();
    let c = json("binary", "");
    let r = c.reference(&inputs(&x, &t)).unwrap();
    // Image 1: Sp ≈ 0, tprec ≈ 1 and cl ≈ 1 − 2/(2 + smooth) (SPEC.md); image 0 alike.
    assert!((r.value[0] - (1.0 - 2.0 / (2.0 + 1e-4))).abs() < 1e-6, "{}", r.value[0]);
    gpu_vs_reference(&c, inputs(&x, &t), 1e-4, 1e-6);
    // One-pixel-high images and random masks over them.
    let (x, t) = random(&mut rng, "binary", 2, 1, &[1, 40], 2.0);
    for (_, config) in configurations().into_iter().filter(|(m, _)| *m == "binary") {
        gpu_vs_reference(&config, inputs(&x, &t), 1e-4, 1e-6);
    }
    // A class absent from the target still adds its predicted skeleton.
    let labels = HostTensor::i32(&[1, 9, 10], (0..90).map(|i| (i % 10 >= 5) as i32).collect()).unwrap();
    let x = logits(&mut rng, &[1, 3, 9, 10], 3.0);
    gpu_vs_reference(&json("multiclass", r#""alpha": 0.5"#), inputs(&x, &labels), 1e-4, 1e-6);
    // Extreme logits stay finite.
    let x = HostTensor::f32(&[1, 3, 9, 10], (0..270).map(|i| if i % 7 == 0 { 3e38 } else { -3e38 }).collect()).unwrap();
    let got = runner().compute(&json("multiclass", r#""alpha": 0.5"#), inputs(&x, &labels)).unwrap();
    assert!(got.value[0].is_finite() && got.grad.iter().all(|g| g.is_finite()));
    gpu_vs_reference(&json("multiclass", r#""alpha": 0.5"#), inputs(&x, &labels), 1e-4, 1e-6);
}

#[test]
fn the_largest_k_runs_and_matches_the_reference() {
    let mut rng = rng(135);
    let (x, t) = random(&mut rng, "multiclass", 1, 3, &[20, 24], 2.0);
    let k = segloss::losses::cl_dice::MAX_ITERATIONS;
    gpu_vs_reference(&json("multiclass", &format!(r#""iterations": {k}, "alpha": 0.5"#)), inputs(&x, &t), 1e-4, 1e-6);
    config_error(&format!(r#"{{"loss": "cl_dice", "params": {{"iterations": {}}}}}"#, k + 1), "exceeds");
}

#[test]
fn dice_plus_half_cl_dice_is_one_compound() {
    // The clDice paper's training loss: (1 − α)·Dice + α·clDice as two terms.
    let mut rng = rng(136);
    let (x, t) = random(&mut rng, "multiclass", 2, 3, &[20, 22], 2.0);
    let dice = config(r#"{"loss": "dice", "params": {"mode": "multiclass"}}"#);
    let cl = json("multiclass", "");
    let compound = CompoundConfig::new(vec![(1.0, dice.clone()), (0.5, cl.clone())]).unwrap();
    let got = runner().compute_compound(&compound, inputs(&x, &t)).unwrap();
    let (a, b) = (dice.reference(&inputs(&x, &t)).unwrap(), cl.reference(&inputs(&x, &t)).unwrap());
    let want_value = a.value[0] + 0.5 * b.value[0];
    assert!((got.value[0] as f64 - want_value).abs() < 1e-5, "{} vs {want_value}", got.value[0]);
    let max = a.grad.iter().zip(&b.grad).fold(0.0f64, |m, (p, q)| m.max((p + 0.5 * q).abs()));
    for (i, g) in got.grad.iter().enumerate() {
        let want = a.grad[i] + 0.5 * b.grad[i];
        assert!((*g as f64 - want).abs() <= 1e-4 * max + 1e-7, "grad[{i}]: {g} vs {want}");
    }
}

#[test]
fn scale_and_accumulate_apply_to_value_and_gradient() {
    let mut rng = rng(137);
    for (mode, params) in [("binary", ""), ("multiclass", r#""alpha": 0.4, "reduction": "none""#)] {
        let (x, t) = random(&mut rng, mode, 2, 3, &[10, 12], 2.0);
        assert_scale_and_accumulate(&json(mode, params), &x, &t, 1e-4);
    }
}

#[test]
fn results_are_bitwise_identical_run_to_run() {
    let mut rng = rng(138);
    for mode in ["binary", "multiclass"] {
        let (x, t) = random(&mut rng, mode, 2, 3, &[40, 50], 2.0);
        let config = json(mode, r#""alpha": 0.5"#);
        let a = runner().compute(&config, inputs(&x, &t)).unwrap();
        let b = runner().compute(&config, inputs(&x, &t)).unwrap();
        assert_eq!(a.value[0].to_bits(), b.value[0].to_bits());
        assert!(a.grad.iter().zip(&b.grad).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}

#[test]
fn bad_parameters_and_shapes_are_named() {
    config_error(r#"{"loss": "cl_dice", "params": {"iterations": -1}}"#, "iterations");
    config_error(r#"{"loss": "cl_dice", "params": {"smooth_dr": 0.0}}"#, "smooth_dr = 0");
    config_error(r#"{"loss": "cl_dice", "params": {"smooth": 0.0}}"#, "smooth = 0");
    config_error(r#"{"loss": "cl_dice", "params": {"alpha": 1.5}}"#, "alpha = 1.5");
    let c = json("multiclass", "");
    let x = HostTensor::f32(&[1, 2, 6], vec![0.0; 12]).unwrap();
    let t = HostTensor::i32(&[1, 6], vec![0; 6]).unwrap();
    input_error(&c, &x, &t, None, "[N, C, H, W] or [N, C, D, H, W]");
    let x = HostTensor::f32(&[1, 1, 2, 3], vec![0.0; 6]).unwrap();
    let t = HostTensor::i32(&[1, 2, 3], vec![0; 6]).unwrap();
    input_error(&c, &x, &t, None, "multiclass mode needs C ≥ 2");
    let x = HostTensor::f32(&[1, 2, 2, 3], vec![0.0; 12]).unwrap();
    let t = HostTensor::i32(&[1, 2, 3], vec![0, 1, 2, 0, 1, 0]).unwrap();
    input_error(&c, &x, &t, None, "target");
    let t = HostTensor::f32(&[1, 2, 2, 3], vec![2.0; 12]).unwrap();
    input_error(&json("multilabel", ""), &x, &t, None, "outside [0, 1]");
}
