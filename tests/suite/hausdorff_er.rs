//! `hausdorff_er`: the float64 reference against finite differences, the
//! GPU against the reference on random 2D and 3D inputs in both modes and
//! every reduction (images that are not multiples of the
//! tile, tensors over several bindings), SPEC.md's edge cases (k = 0, an
//! absent class, a perfect prediction, the largest k), scale and
//! accumulate, determinism, and the parameter rules.

use rand::Rng;
use rand::rngs::StdRng;
use segloss::{ContextOptions, GpuContext, HostInputs, HostTensor, LossConfig, Runner};

use crate::common::{
    assert_reference_matches_finite_differences_with_step, assert_scale_and_accumulate, binary, config, config_error, gpu_vs_reference,
    input_error, logits, rng, runner, runner_vs_reference,
};

fn inputs<'a>(x: &'a HostTensor, t: &'a HostTensor) -> HostInputs<'a> {
    HostInputs { logits: x, target: t, weight: None, distance: None }
}

fn json(mode: &str, params: &str) -> LossConfig {
    let sep = if params.is_empty() { "" } else { ", " };
    config(&format!(r#"{{"loss": "hausdorff_er", "params": {{"mode": "{mode}"{sep}{params}}}}}"#))
}

/// Logits and targets: `[N, C, S…]` logits with `[N, S…]` labels
/// (multiclass), or `[N, 1, S…]` logits and {0, 1} targets (binary). The
/// targets are blobs, so that erosions survive a few steps.
fn random(rng: &mut StdRng, mode: &str, images: usize, classes: usize, spatial: &[usize], scale: f32) -> (HostTensor, HostTensor) {
    let channels = if mode == "multiclass" { classes } else { 1 };
    let shape: Vec<usize> = [images, channels].into_iter().chain(spatial.iter().copied()).collect();
    let x = logits(rng, &shape, scale);
    let t = if mode == "multiclass" {
        let t: Vec<usize> = std::iter::once(images).chain(spatial.iter().copied()).collect();
        let s: usize = spatial.iter().product();
        let w = *spatial.last().unwrap();
        // Bands of one class, a few pixels wide, with noise.
        let data = (0..images * s)
            .map(|i| if rng.random::<f32>() < 0.1 { rng.random_range(0..classes as i32) } else { (((i % s) % w / 4 + i / s) % classes) as i32 })
            .collect();
        HostTensor::i32(&t, data).unwrap()
    } else {
        binary(rng, &shape)
    };
    (x, t)
}

fn configurations() -> Vec<(&'static str, LossConfig)> {
    [
        ("multiclass", ""),
        ("binary", ""),
        ("multiclass", r#""alpha": 0.0, "k": 3, "reduction": "sum""#),
        ("binary", r#""alpha": 1.5, "k": 4, "reduction": "none""#),
        ("multiclass", r#""alpha": -0.5, "k": 2, "reduction": "none""#),
        ("binary", r#""alpha": 3.0, "k": 1, "reduction": "sum""#),
    ]
    .into_iter()
    .map(|(m, p)| (m, json(m, p)))
    .collect()
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut rng = rng(121);
    for (mode, config) in configurations() {
        for spatial in [vec![4usize, 5], vec![3, 3, 4]] {
            // Large logits push the squared errors past the threshold, so the erosions carry gradient.
            let (x, t) = random(&mut rng, mode, 2, 3, &spatial, 6.0);
            // A small step: the threshold and the min/max selections put kinks
            // closer together than in the smooth losses (1/1024 straddles one here).
            assert_reference_matches_finite_differences_with_step(&config, &x, &t, &format!("{mode} {spatial:?}"), 1.0 / 65536.0);
        }
    }
}

#[test]
fn gpu_matches_reference_on_random_2d_and_3d_inputs() {
    let mut rng = rng(122);
    for (mode, config) in configurations() {
        for (images, classes, spatial) in [(2, 3, vec![37usize, 45]), (1, 2, vec![7, 19, 21]), (3, 4, vec![5, 7]), (1, 2, vec![1, 1]), (2, 2, vec![1, 30])] {
            let (x, t) = random(&mut rng, mode, images, classes, &spatial, 6.0);
            gpu_vs_reference(&config, inputs(&x, &t), 1e-4, 1e-6);
        }
    }
}

#[test]
fn tensors_split_over_several_bindings_match_the_reference() {
    // 64 KiB bindings: [6, 3, 30, 40] logits are 84 KiB, so chunks of images.
    let small = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(64 * 1024), ..Default::default() }).unwrap());
    let mut rng = rng(123);
    for (mode, config) in configurations() {
        let (x, t) = random(&mut rng, mode, 6, 3, &[30, 40], 6.0);
        runner_vs_reference(&small, &config, inputs(&x, &t), 1e-4, 1e-6);
    }
}

#[test]
fn edge_cases_match_the_reference() {
    let mut rng = rng(124);
    // k = 0 gives 0 and no gradient.
    let (x, t) = random(&mut rng, "multiclass", 2, 3, &[6, 7], 4.0);
    for reduction in ["mean", "sum", "none"] {
        let c = json("multiclass", &format!(r#""k": 0, "reduction": "{reduction}""#));
        let got = runner().compute(&c, inputs(&x, &t)).unwrap();
        assert!(got.value.iter().all(|&v| v == 0.0) && got.grad.iter().all(|&g| g == 0.0), "k = 0, {reduction}");
    }
    // A class absent from the target, and a perfect, confident prediction.
    let t = HostTensor::i32(&[1, 8, 9], (0..72).map(|i| (i % 9 >= 4) as i32).collect()).unwrap();
    let x = logits(&mut rng, &[1, 3, 8, 9], 6.0);
    gpu_vs_reference(&json("multiclass", ""), inputs(&x, &t), 1e-4, 1e-6);
    let perfect: Vec<f32> = (0..3 * 72).map(|j| if (t.as_i32("t").unwrap()[j % 72]) == (j / 72) as i32 { 40.0 } else { -40.0 }).collect();
    let xp = HostTensor::f32(&[1, 3, 8, 9], perfect).unwrap();
    let got = runner().compute(&json("multiclass", ""), inputs(&xp, &t)).unwrap();
    assert!(got.value[0].abs() < 1e-12 && got.grad.iter().all(|g| g.abs() < 1e-12), "perfect: {} {:?}", got.value[0], &got.grad[..4]);
    // Empty and full binary masks, one-pixel-high images.
    let x = logits(&mut rng, &[2, 1, 1, 25], 6.0);
    let t = HostTensor::f32(&[2, 1, 1, 25], [vec![0.0; 25], vec![1.0; 25]].concat()).unwrap();
    gpu_vs_reference(&json("binary", r#""k": 5"#), inputs(&x, &t), 1e-4, 1e-6);
    // Extreme logits stay finite.
    let x = HostTensor::f32(&[2, 1, 1, 25], (0..50).map(|i| if i % 3 == 0 { 3e38 } else { -3e38 }).collect()).unwrap();
    let got = runner().compute(&json("binary", ""), inputs(&x, &t)).unwrap();
    assert!(got.value[0].is_finite() && got.grad.iter().all(|g| g.is_finite()));
    gpu_vs_reference(&json("binary", ""), inputs(&x, &t), 1e-4, 1e-6);
}

#[test]
fn the_largest_k_runs_and_matches_the_reference() {
    let mut rng = rng(125);
    let (x, t) = random(&mut rng, "binary", 1, 1, &[6, 8], 8.0);
    let k = segloss::losses::hausdorff_er::MAX_K;
    let c = json("binary", &format!(r#""alpha": 0.0, "k": {k}"#));
    gpu_vs_reference(&c, inputs(&x, &t), 1e-4, 1e-6);
    config_error(&format!(r#"{{"loss": "hausdorff_er", "params": {{"k": {}}}}}"#, k + 1), "exceeds");
}

#[test]
fn scale_and_accumulate_apply_to_value_and_gradient() {
    let mut rng = rng(126);
    for (mode, reduction) in [("binary", "mean"), ("multiclass", "none")] {
        let (x, t) = random(&mut rng, mode, 2, 3, &[10, 12], 6.0);
        assert_scale_and_accumulate(&json(mode, &format!(r#""reduction": "{reduction}""#)), &x, &t, 1e-4);
    }
}

#[test]
fn results_are_bitwise_identical_run_to_run() {
    let mut rng = rng(127);
    for mode in ["binary", "multiclass"] {
        let (x, t) = random(&mut rng, mode, 2, 3, &[40, 50], 6.0);
        let config = json(mode, "");
        let a = runner().compute(&config, inputs(&x, &t)).unwrap();
        let b = runner().compute(&config, inputs(&x, &t)).unwrap();
        assert_eq!(a.value[0].to_bits(), b.value[0].to_bits());
        assert!(a.grad.iter().zip(&b.grad).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}

#[test]
fn bad_parameters_and_shapes_are_named() {
    config_error(r#"{"loss": "hausdorff_er", "params": {"mode": "multilabel"}}"#, "multiclass");
    config_error(r#"{"loss": "hausdorff_er", "params": {"k": -1}}"#, "k");
    config_error(r#"{"loss": "hausdorff_er", "params": {"k": 1.5}}"#, "k");
    config_error(r#"{"loss": "hausdorff_er", "params": {"alpha": 40.0, "k": 1000}}"#, "f32 range");
    let c = json("multiclass", "");
    let x = HostTensor::f32(&[1, 2, 6], vec![0.0; 12]).unwrap();
    let t = HostTensor::i32(&[1, 6], vec![0; 6]).unwrap();
    input_error(&c, &x, &t, None, "[N, C, H, W] or [N, C, D, H, W]");
    let x = HostTensor::f32(&[1, 2, 2, 3], vec![0.0; 12]).unwrap();
    let t = HostTensor::i32(&[1, 2, 3], vec![0, 1, 2, 0, 1, 0]).unwrap();
    input_error(&c, &x, &t, None, "target");
    let b = json("binary", "");
    let t = HostTensor::f32(&[1, 2, 2, 3], vec![0.0; 12]).unwrap();
    input_error(&b, &x, &t, None, "binary mode takes one channel");
}
