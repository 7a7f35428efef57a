//! `mcc`'s own cases (its random 2D and 3D inputs, finite differences,
//! bindings, one-pixel images, full classes and extreme logits run with the
//! overlap family in overlap.rs): a value worked by hand, SPEC.md's empty,
//! full and perfect groups, and its parameter rules.

use segloss::{HostInputs, HostTensor};

use crate::common::{config, config_error, gpu_vs_reference, runner};

fn inputs<'a>(x: &'a HostTensor, t: &'a HostTensor) -> HostInputs<'a> {
    HostInputs { logits: x, target: t, weight: None, distance: None }
}

#[test]
fn a_value_worked_by_hand() {
    // p = 0.5, 0.75, 0.25, 0.5 against g = 1, 1, 0, 0:
    // TP = 1.25, FP = 0.75, FN = 0.75, TN = 1.25; TP·TN − FP·FN = 1;
    // every factor under the root is 2, so l = 1 − 1/√(16 + 1e-5).
    let ln3 = 3f32.ln();
    let x = HostTensor::f32(&[1, 1, 2, 2], vec![0.0, ln3, -ln3, 0.0]).unwrap();
    let t = HostTensor::f32(&[1, 1, 2, 2], vec![1.0, 1.0, 0.0, 0.0]).unwrap();
    let c = config(r#"{"loss": "mcc", "params": {"mode": "binary"}}"#);
    let expected = 1.0 - 1.0 / (16.0f64 + 1e-5).sqrt();
    let reference = c.reference(&inputs(&x, &t)).unwrap();
    assert!((reference.value[0] - expected).abs() < 1e-7, "reference {} vs {expected}", reference.value[0]);
    let got = runner().compute(&c, inputs(&x, &t)).unwrap();
    assert!((got.value[0] as f64 - expected).abs() < 1e-6, "gpu {} vs {expected}", got.value[0]);
}

#[test]
fn empty_and_full_groups_score_by_smoothing_with_a_zero_gradient() {
    // Image 0 has no foreground, image 1 is all foreground; eps = 0.
    let x = HostTensor::f32(&[2, 1, 3, 4], (0..24).map(|i| (i as f32 * 0.37).sin() * 3.0).collect()).unwrap();
    let t = HostTensor::f32(&[2, 1, 3, 4], [vec![0.0; 12], vec![1.0; 12]].concat()).unwrap();
    for (params, l) in [("", 1.0), (r#", "smooth_nr": 0.001, "smooth_dr": 1.0"#, 1.0 - 0.001)] {
        let c = config(&format!(r#"{{"loss": "mcc", "params": {{"mode": "binary", "reduction": "none"{params}}}}}"#));
        let got = runner().compute(&c, inputs(&x, &t)).unwrap();
        for v in &got.value {
            assert!((*v as f64 - l).abs() < 1e-6, "{params}: {v} vs {l}");
        }
        assert!(got.grad.iter().all(|&g| g == 0.0), "{params}: an empty or full group teaches nothing: {:?}", got.grad);
        gpu_vs_reference(&c, inputs(&x, &t), 2e-4, 1e-6);
    }
}

#[test]
fn a_perfect_prediction_scores_zero_and_an_almost_perfect_one_does_not_blow_up() {
    let t = HostTensor::f32(&[1, 1, 2, 3], vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).unwrap();
    let exact = HostTensor::f32(&[1, 1, 2, 3], vec![1000.0, -1000.0, -1000.0, 1000.0, -1000.0, -1000.0]).unwrap();
    let c = config(r#"{"loss": "mcc", "params": {"mode": "binary"}}"#);
    let got = runner().compute(&c, inputs(&exact, &t)).unwrap();
    assert_eq!(got.value[0], 0.0);
    assert!(got.grad.iter().all(|&g| g == 0.0));
    gpu_vs_reference(&c, inputs(&exact, &t), 2e-4, 1e-6);
    // With TP, TN > 0 an almost perfect prediction is close to 0, finite, with a finite gradient.
    let almost = HostTensor::f32(&[1, 1, 2, 3], vec![9.0, -9.0, -9.0, 9.0, -9.0, -9.0]).unwrap();
    let got = runner().compute(&c, inputs(&almost, &t)).unwrap();
    assert!(got.value[0] > 0.0 && got.value[0] < 1e-3, "{}", got.value[0]);
    assert!(got.grad.iter().all(|g| g.is_finite()));
    gpu_vs_reference(&c, inputs(&almost, &t), 2e-4, 1e-6);
}

#[test]
fn parameters_are_checked() {
    config_error(r#"{"loss": "mcc", "params": {"smooth_dr": 0.0}}"#, "smooth_dr + eps must be positive");
    config_error(r#"{"loss": "mcc", "params": {"smooth_dr": -1.0}}"#, "smooth_dr");
    config_error(r#"{"loss": "mcc", "params": {"eps": -1e-5}}"#, "eps");
    config_error(r#"{"loss": "mcc", "params": {"eps": 1e-12, "smooth_dr": 0.0}}"#, "below");
    config_error(r#"{"loss": "mcc", "params": {"squared": true}}"#, "squared");
    config_error(r#"{"loss": "mcc", "params": {"smooth_nr": "1"}}"#, "smooth_nr must be a number");
}
