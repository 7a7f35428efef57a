//! Compound losses: terms recorded into one encoder accumulate into one
//! gradient equal to the weighted sum of the separate gradients; weights
//! change between steps; the α schedules; validation.

use segloss::losses::compound::{ALPHA_START, CompoundConfig, alpha_step, steal_weight};
use segloss::tools::samples::blob_labels;
use segloss::{DType, Error, GpuTensor, HostInputs, HostTensor, InputShapes, LossInputs, LossOutputs, PlanOptions};

use crate::common::{config, ctx, logits, rng, runner};

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    let max = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!((g as f64 - w).abs() <= 1e-6 + 1e-5 * max, "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn two_terms_accumulate_into_the_weighted_sum_of_their_gradients() {
    let mut r = rng(41);
    let shape = [2, 4, 18, 21];
    let x = logits(&mut r, &shape, 3.0);
    let y = blob_labels(&[2, 18, 21], 4, 3).unwrap();
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let ce = config(r#"{"loss": "cross_entropy"}"#);
    let boundary = config(r#"{"loss": "boundary", "params": {"classes": [1, 2, 3], "spacing": [1.2, 0.8]}}"#);
    let (w1, w2) = (0.7, 0.03);
    let compound = CompoundConfig::new(vec![(w1, ce.clone()), (w2, boundary.clone())]).unwrap();
    let got = runner().compute_compound(&compound, inputs).unwrap();
    let a = runner().compute(&ce, inputs).unwrap();
    let b = runner().compute(&boundary, inputs).unwrap();
    let sum = |u: &[f32], v: &[f32]| u.iter().zip(v).map(|(&p, &q)| w1 * p as f64 + w2 * q as f64).collect::<Vec<_>>();
    assert_close(&got.value, &sum(&a.value, &b.value), "value");
    assert_close(&got.grad, &sum(&a.grad, &b.grad), "grad");
    // And the float64 reference of the compound.
    let reference = compound.reference(&inputs).unwrap();
    assert_close(&got.value, &reference.value, "value vs reference");
    assert_close(&got.grad, &reference.grad, "grad vs reference");
}

#[test]
fn weights_change_between_steps_and_options_carry_over() {
    let c = ctx();
    let mut r = rng(42);
    let shape = [1, 3, 16, 16];
    let x = logits(&mut r, &shape, 2.0);
    let y = blob_labels(&[1, 16, 16], 3, 4).unwrap();
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let terms = vec![(1.0, config(r#"{"loss": "focal", "params": {"mode": "multiclass"}}"#)), (ALPHA_START, config(r#"{"loss": "boundary"}"#))];
    let compound = CompoundConfig::new(terms.clone()).unwrap();
    // The caller's own buffers already hold something: accumulate onto it with a scale of 2.
    let options = PlanOptions { scale: 2.0, accumulate_value: true, accumulate_grad: true, grad: true };
    let mut plan = compound.plan(c, &InputShapes::new(&shape, &y.shape), options).unwrap();
    assert_eq!(plan.value_shape(), &[1]);
    let (lg, tg) = (GpuTensor::from_host(c, &x).unwrap(), GpuTensor::from_host(c, &y).unwrap());
    let value = GpuTensor::from_host(c, &HostTensor::f32(&[1], vec![10.0]).unwrap()).unwrap();
    let grad = GpuTensor::from_host(c, &HostTensor::f32(&shape, vec![1.0; x.len()]).unwrap()).unwrap();
    let run = |plan: &segloss::losses::CompoundPlan| {
        let mut encoder = c.device().create_command_encoder(&Default::default());
        let out = LossOutputs { value: &value, grad: Some(&grad) };
        plan.record(&mut encoder, LossInputs { logits: &lg, target: &tg, weight: None, distance: None }, out).unwrap();
        c.queue().submit([encoder.finish()]);
    };
    run(&plan);
    let alpha = alpha_step(ALPHA_START);
    plan.set_weights(&[0.5, alpha]).unwrap();
    assert_eq!(plan.weights(), &[0.5, alpha]);
    run(&plan);
    let first = compound.reference(&inputs).unwrap();
    let second = CompoundConfig::new(vec![(0.5, terms[0].1.clone()), (alpha, terms[1].1.clone())]).unwrap().reference(&inputs).unwrap();
    let want_value = 10.0 + 2.0 * (first.value[0] + second.value[0]);
    let want_grad: Vec<f64> = first.grad.iter().zip(&second.grad).map(|(a, b)| 1.0 + 2.0 * (a + b)).collect();
    assert_close(&value.read_f32(c).unwrap(), &[want_value], "value");
    assert_close(&grad.read_f32(c).unwrap(), &want_grad, "grad");
    assert!(matches!(plan.set_weights(&[1.0]), Err(Error::Config { .. })));
    assert!(matches!(plan.set_weights(&[1.0, f64::INFINITY]), Err(Error::Config { .. })));
    let _ = DType::F32;
}

#[test]
fn the_reference_schedules() {
    let mut alpha = ALPHA_START;
    for _ in 0..3 {
        alpha = alpha_step(alpha);
    }
    assert!((alpha - 0.04).abs() < 1e-12);
    let [a, b] = steal_weight([1.0, 0.01]);
    assert!((a - 0.99).abs() < 1e-12 && (b - 0.02).abs() < 1e-12);
    let [a, b] = steal_weight([0.105, 0.9]);
    assert_eq!(a, 0.1);
    assert!((b - 0.91).abs() < 1e-12);
    assert_eq!(steal_weight([0.1, 2.0])[0], 0.1);
}

#[test]
fn compound_configs_deserialize_and_validate() {
    let json = r#"{"terms": [{"weight": 1.0, "loss": "dice_typo"}]}"#;
    assert!(serde_json::from_str::<CompoundConfig>(json).is_err());
    let json = r#"{"terms": [{"weight": 1.0, "loss": "cross_entropy"}, {"weight": 0.01, "loss": "boundary", "params": {"classes": [1]}}]}"#;
    let c: CompoundConfig = serde_json::from_str(json).unwrap();
    assert_eq!(c.terms.len(), 2);
    assert_eq!(c.terms[1].loss.name(), "boundary");
    let bad_param = r#"{"terms": [{"weight": 1.0, "loss": "boundary", "params": {"classes": []}}]}"#;
    assert!(serde_json::from_str::<CompoundConfig>(bad_param).is_err());
    let extra = r#"{"terms": [{"weight": 1.0, "loss": "boundary", "extra": 1}]}"#;
    assert!(serde_json::from_str::<CompoundConfig>(extra).is_err());

    let is_config = |r: Result<CompoundConfig, Error>, what: &str| match r {
        Err(Error::Config { loss: "compound", message }) => assert!(message.contains(what), "{message}"),
        other => panic!("{what}: {other:?}"),
    };
    is_config(CompoundConfig::new(vec![]), "at least one term");
    is_config(CompoundConfig::new(vec![(f64::NAN, config(r#"{"loss": "boundary"}"#))]), "finite");
    // Terms whose values have different shapes cannot share a value tensor.
    let mixed = CompoundConfig::new(vec![
        (1.0, config(r#"{"loss": "cross_entropy", "params": {"reduction": "none"}}"#)),
        (1.0, config(r#"{"loss": "boundary"}"#)),
    ])
    .unwrap();
    match mixed.check_shapes(&InputShapes::new(&[1, 2, 4, 4], &[1, 4, 4])) {
        Err(Error::Config { message, .. }) => assert!(message.contains("must agree"), "{message}"),
        other => panic!("{other:?}"),
    }
    // A term whose inputs do not fit is reported by that term.
    let bce = CompoundConfig::new(vec![(1.0, config(r#"{"loss": "bce"}"#)), (1.0, config(r#"{"loss": "boundary"}"#))]).unwrap();
    assert!(matches!(bce.check_shapes(&InputShapes::new(&[1, 2, 4, 4], &[1, 4, 4])), Err(Error::Shape { scope: "bce", input: "target", .. })));
}
