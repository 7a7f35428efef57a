//! `unified_focal`: the float64 reference against finite differences, the
//! GPU against the reference on random 2D and 3D inputs in both modes (images
//! over many workgroups, tensors over several bindings), SPEC.md's edge
//! cases (images without foreground or without background, one pixel,
//! probabilities at the clamp, γ at its bounds), scale and accumulate,
//! determinism, and the parameter rules.

use rand::rngs::StdRng;
use segloss::{ContextOptions, GpuContext, HostInputs, HostTensor, InputShapes, LossConfig, PlanOptions, Runner};

use crate::common::{
    assert_reference_matches_finite_differences, assert_scale_and_accumulate, binary, config, config_error, ctx, gpu_vs_reference, labels, logits, rng,
    runner, runner_vs_reference,
};

fn inputs<'a>(x: &'a HostTensor, t: &'a HostTensor) -> HostInputs<'a> {
    HostInputs { logits: x, target: t, weight: None, distance: None }
}

fn json(mode: &str, params: &str) -> LossConfig {
    let sep = if params.is_empty() { "" } else { ", " };
    config(&format!(r#"{{"loss": "unified_focal", "params": {{"mode": "{mode}"{sep}{params}}}}}"#))
}

/// Logits of `spatial` pixels per image, and their targets: `[N, 1, S…]`
/// {0, 1} for binary, `[N, 2, S…]` logits and `[N, S…]` labels for multiclass.
fn random(rng: &mut StdRng, mode: &str, images: usize, spatial: &[usize], scale: f32) -> (HostTensor, HostTensor) {
    let channels = if mode == "multiclass" { 2 } else { 1 };
    let shape: Vec<usize> = [images, channels].into_iter().chain(spatial.iter().copied()).collect();
    let x = logits(rng, &shape, scale);
    let t = if mode == "multiclass" {
        let t: Vec<usize> = std::iter::once(images).chain(spatial.iter().copied()).collect();
        labels(rng, &t, 2, None)
    } else {
        binary(rng, &shape)
    };
    (x, t)
}

/// Configurations that together reach every parameter, with their mode.
fn configurations() -> Vec<(&'static str, LossConfig)> {
    let mut out = Vec::new();
    for (mode, params) in [
        ("binary", ""),
        ("multiclass", ""),
        ("binary", r#""weight": 0.2, "delta": 0.4, "gamma": 0.0"#),
        ("multiclass", r#""weight": 0.9, "delta": 0.85, "gamma": 1.0, "eps": 1e-4"#),
        ("binary", r#""weight": 0.0, "gamma": 0.75, "eps": 1e-3"#),
        ("multiclass", r#""weight": 1.0, "delta": 0.3"#),
    ] {
        out.push((mode, json(mode, params)));
    }
    out
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut rng = rng(91);
    for (mode, config) in configurations() {
        for spatial in [vec![3usize, 5], vec![2, 3, 2]] {
            let (x, t) = random(&mut rng, mode, 2, &spatial, 3.0);
            assert_reference_matches_finite_differences(&config, &x, &t, &format!("{mode} {spatial:?}"));
        }
    }
}

#[test]
fn gpu_matches_reference_on_random_2d_and_3d_inputs() {
    let mut rng = rng(92);
    // 70·90 = 6,300 pixels: each image over several workgroups of both passes.
    for (mode, config) in configurations() {
        for (images, spatial) in [(3, vec![70usize, 90]), (2, vec![9, 17, 23]), (4, vec![5, 7]), (1, vec![1, 1])] {
            let (x, t) = random(&mut rng, mode, images, &spatial, 4.0);
            gpu_vs_reference(&config, inputs(&x, &t), 2e-4, 1e-6);
        }
    }
}

#[test]
fn tensors_split_over_several_bindings_match_the_reference() {
    // 64 KiB bindings: [5, 2, 40, 60] logits are 188 KiB.
    let small = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(64 * 1024), ..Default::default() }).unwrap());
    let mut rng = rng(93);
    for (mode, config) in configurations() {
        let (x, t) = random(&mut rng, mode, 5, &[40, 60], 3.0);
        runner_vs_reference(&small, &config, inputs(&x, &t), 2e-4, 1e-6);
    }
}

#[test]
fn images_without_foreground_or_background_match_the_reference() {
    // Image 0 all background, image 1 all foreground (SPEC.md: T_1 ≈ 0, and its mirror).
    let mut rng = rng(94);
    let x = logits(&mut rng, &[2, 1, 6, 7], 3.0);
    let t = HostTensor::f32(&[2, 1, 6, 7], [vec![0.0; 42], vec![1.0; 42]].concat()).unwrap();
    for (_, config) in configurations().into_iter().filter(|(m, _)| *m == "binary") {
        gpu_vs_reference(&config, inputs(&x, &t), 2e-4, 1e-6);
    }
    let x2 = logits(&mut rng, &[2, 2, 6, 7], 3.0);
    let t2 = HostTensor::i32(&[2, 6, 7], [vec![0; 42], vec![1; 42]].concat()).unwrap();
    for (_, config) in configurations().into_iter().filter(|(m, _)| *m == "multiclass") {
        gpu_vs_reference(&config, inputs(&x2, &t2), 2e-4, 1e-6);
    }
}

#[test]
fn confident_and_extreme_logits_stay_finite_and_clamped() {
    // Past the clamp (|x| ≥ 17 puts σ within 1e-7 of 0 or 1) the gradient is
    // exactly 0; a perfect, confident prediction leaves only the ε terms.
    let t = HostTensor::f32(&[1, 1, 2, 3], vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0]).unwrap();
    for scale in [30.0f32, 1e4, 1e30, 3e38] {
        for sign in [1.0f32, -1.0] {
            let x = HostTensor::f32(&[1, 1, 2, 3], t.as_f32("t").unwrap().iter().map(|&y| sign * scale * (2.0 * y - 1.0)).collect()).unwrap();
            for (_, config) in configurations().into_iter().filter(|(m, _)| *m == "binary") {
                let got = runner().compute(&config, inputs(&x, &t)).unwrap();
                assert!(got.value[0].is_finite(), "{scale}·{sign}: value {}", got.value[0]);
                assert!(got.grad.iter().all(|&g| g == 0.0), "{scale}·{sign}: clamped probabilities pass no gradient: {:?}", got.grad);
                gpu_vs_reference(&config, inputs(&x, &t), 2e-4, 1e-6);
            }
        }
    }
    let labels = HostTensor::i32(&[1, 2, 3], vec![1, 0, 0, 1, 0, 1]).unwrap();
    let x = HostTensor::f32(&[1, 2, 2, 3], vec![-3e38, 3e38, 3e38, -3e38, 3e38, -3e38, 3e38, -3e38, -3e38, 3e38, -3e38, 3e38]).unwrap();
    for (_, config) in configurations().into_iter().filter(|(m, _)| *m == "multiclass") {
        let got = runner().compute(&config, inputs(&x, &labels)).unwrap();
        assert!(got.value[0].is_finite() && got.grad.iter().all(|g| *g == 0.0));
        gpu_vs_reference(&config, inputs(&x, &labels), 2e-4, 1e-6);
    }
}

#[test]
fn gamma_one_drops_the_foreground_tversky_gradient_and_weight_one_is_afl_alone() {
    // γ = 1: (1 − T_1)^0 = 1 for every image, so with λ = 0 the loss is the
    // background Tversky term alone, (1/(2N))·Σ(1 − T_0) + 1/2.
    let mut rng = rng(95);
    let (x, t) = random(&mut rng, "binary", 2, &[8, 9], 3.0);
    let a = json("binary", r#""weight": 0.0, "gamma": 1.0"#).reference(&inputs(&x, &t)).unwrap();
    assert!(a.value[0] > 0.5 && a.value[0] < 1.0, "{}", a.value[0]);
    gpu_vs_reference(&json("binary", r#""weight": 0.0, "gamma": 1.0"#), inputs(&x, &t), 2e-4, 1e-6);
    // λ = 1, δ = 0.5, γ = 0 at p = 1/2: AFL alone, by hand.
    let x1 = HostTensor::f32(&[1, 1, 1, 2], vec![0.0, 0.0]).unwrap();
    let t1 = HostTensor::f32(&[1, 1, 1, 2], vec![1.0, 0.0]).unwrap();
    let c = json("binary", r#""weight": 1.0, "delta": 0.5, "gamma": 0.0"#);
    // Each pixel: 0.5·(−log 0.5); summed over 2 pixels and divided by 2·N·|S| = 4.
    let expected = 2.0 * 0.5 * 2f64.ln() / 4.0;
    let got = runner().compute(&c, inputs(&x1, &t1)).unwrap();
    assert!((got.value[0] as f64 - expected).abs() < 1e-6, "{} vs {expected}", got.value[0]);
    assert!((c.reference(&inputs(&x1, &t1)).unwrap().value[0] - expected).abs() < 1e-12);
}

#[test]
fn scale_and_accumulate_apply_to_value_and_gradient() {
    let mut rng = rng(96);
    for mode in ["binary", "multiclass"] {
        let (x, t) = random(&mut rng, mode, 2, &[10, 12], 3.0);
        assert_scale_and_accumulate(&json(mode, ""), &x, &t, 1e-4);
    }
}

#[test]
fn results_are_bitwise_identical_run_to_run() {
    let mut rng = rng(97);
    for mode in ["binary", "multiclass"] {
        let (x, t) = random(&mut rng, mode, 3, &[60, 70], 3.0);
        let config = json(mode, r#""gamma": 0.3"#);
        let a = runner().compute(&config, inputs(&x, &t)).unwrap();
        let b = runner().compute(&config, inputs(&x, &t)).unwrap();
        assert_eq!(a.value[0].to_bits(), b.value[0].to_bits());
        assert!(a.grad.iter().zip(&b.grad).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}

#[test]
fn parameters_and_shapes_are_checked() {
    config_error(r#"{"loss": "unified_focal", "params": {"reduction": "sum"}}"#, "reduction must be \"mean\"");
    config_error(r#"{"loss": "unified_focal", "params": {"mode": "multilabel"}}"#, "multilabel");
    config_error(r#"{"loss": "unified_focal", "params": {"weight": 1.5}}"#, "weight");
    config_error(r#"{"loss": "unified_focal", "params": {"delta": 0.0}}"#, "delta");
    config_error(r#"{"loss": "unified_focal", "params": {"delta": 1.0}}"#, "delta");
    config_error(r#"{"loss": "unified_focal", "params": {"gamma": -0.1}}"#, "gamma");
    config_error(r#"{"loss": "unified_focal", "params": {"eps": 0.0}}"#, "eps");
    config_error(r#"{"loss": "unified_focal", "params": {"eps": 0.5}}"#, "eps");
    config_error(r#"{"loss": "unified_focal", "params": {"ignore_index": 255}}"#, "ignore_index");
    let shapes = InputShapes::new(&[2, 3, 4, 4], &[2, 4, 4]);
    let err = json("multiclass", "").plan(ctx(), &shapes, PlanOptions::default()).err().expect("refused").to_string();
    assert!(err.contains("two channels"), "{err}");
    let shapes = InputShapes::new(&[2, 2, 4, 4], &[2, 2, 4, 4]);
    let err = json("binary", "").plan(ctx(), &shapes, PlanOptions::default()).err().expect("refused").to_string();
    assert!(err.contains("one channel"), "{err}");
    let x = HostTensor::f32(&[1, 2, 1, 2], vec![0.0; 4]).unwrap();
    let t = HostTensor::i32(&[1, 1, 2], vec![0, 2]).unwrap();
    let err = runner().compute(&json("multiclass", ""), inputs(&x, &t)).unwrap_err().to_string();
    assert!(err.contains("target"), "{err}");
}
