//! box_iou: GPU against the float64 reference on random boxes (every kind and
//! reduction, one box to 100,000, chunked bindings, ties), finite differences
//! of the reference, degenerate boxes (errors by default, finite when
//! clamped, flagged on the GPU), extremes, the engine interface, validation.
//! CIoU's gradient, whose α is held constant, is checked against finite
//! differences with α frozen in `reference::box_iou`'s unit test.

use rand::Rng;
use rand::rngs::StdRng;
use segloss::{
    ContextOptions, DType, GpuContext, GpuTensor, HostInputs, HostTensor, InputShapes, LossConfig, LossInputs, LossOutputs, PlanOptions,
    Runner,
};

use crate::common::{config, config_error, input_error, ctx, gpu_vs_reference, rng, runner};

const KINDS: [&str; 3] = ["giou", "diou", "ciou"];
const REDUCTIONS: [&str; 3] = ["mean", "sum", "none"];

fn box_config(kind: &str, reduction: &str, extra: &str) -> LossConfig {
    config(&format!(r#"{{"loss": "box_iou", "params": {{"kind": "{kind}", "reduction": "{reduction}"{extra}}}}}"#))
}

/// M predicted boxes and targets: half of the targets near their prediction
/// (overlapping), half anywhere (often disjoint).
fn boxes(r: &mut StdRng, m: usize) -> (HostTensor, HostTensor) {
    let mut pred = Vec::with_capacity(4 * m);
    let mut target = Vec::with_capacity(4 * m);
    let corner = |r: &mut StdRng, x: f32, y: f32| {
        let (w, h) = (r.random_range(1.0..60.0f32), r.random_range(1.0..60.0f32));
        [x, y, x + w, y + h]
    };
    for i in 0..m {
        let (x, y) = (r.random_range(0.0..200.0f32), r.random_range(0.0..200.0f32));
        let p = corner(r, x, y);
        let t = if i % 2 == 0 {
            let (dx, dy) = (r.random_range(-20.0..20.0f32), r.random_range(-20.0..20.0f32));
            corner(r, x + dx, y + dy)
        } else {
            let (tx, ty) = (r.random_range(0.0..200.0f32), r.random_range(0.0..200.0f32));
            corner(r, tx, ty)
        };
        pred.extend(p);
        target.extend(t);
    }
    (HostTensor::f32(&[m, 4], pred).unwrap(), HostTensor::f32(&[m, 4], target).unwrap())
}

fn inputs<'a>(p: &'a HostTensor, t: &'a HostTensor) -> HostInputs<'a> {
    HostInputs { logits: p, target: t, weight: None, distance: None }
}

#[test]
fn every_kind_and_reduction_matches_the_reference() {
    let mut r = rng(100);
    for m in [1, 7, 1000, 1025] {
        let (p, t) = boxes(&mut r, m);
        for kind in KINDS {
            for reduction in REDUCTIONS {
                gpu_vs_reference(&box_config(kind, reduction, ""), inputs(&p, &t), 1e-4, 1e-6);
            }
        }
    }
}

#[test]
fn a_hundred_thousand_boxes_match_the_reference() {
    let (p, t) = boxes(&mut rng(101), 100_000);
    for kind in KINDS {
        gpu_vs_reference(&box_config(kind, "mean", ""), inputs(&p, &t), 1e-4, 1e-6);
        gpu_vs_reference(&box_config(kind, "none", r#", "eps": 1e-3"#), inputs(&p, &t), 1e-4, 1e-6);
    }
}

#[test]
fn tied_coordinates_split_the_gradient_as_torch_does() {
    // Integer corners from a small range: many coordinates equal their target's.
    let mut r = rng(102);
    let m = 500;
    let data = |r: &mut StdRng| -> Vec<f32> {
        (0..m)
            .flat_map(|_| {
                let (x, y) = (r.random_range(0..4) as f32, r.random_range(0..4) as f32);
                [x, y, x + r.random_range(1..4) as f32, y + r.random_range(1..4) as f32]
            })
            .collect()
    };
    let p = HostTensor::f32(&[m, 4], data(&mut r)).unwrap();
    let t = HostTensor::f32(&[m, 4], data(&mut r)).unwrap();
    let ties = p.as_f32("").unwrap().iter().zip(t.as_f32("").unwrap()).filter(|(a, b)| a == b).count();
    assert!(ties > m / 4, "the test needs ties: {ties}");
    for kind in KINDS {
        gpu_vs_reference(&box_config(kind, "sum", ""), inputs(&p, &t), 1e-4, 1e-6);
    }
    // Identical boxes: the loss is 0 and, at the tie, so is the GIoU/DIoU gradient.
    let same = HostTensor::f32(&[1, 4], vec![1.0, 2.0, 4.0, 7.0]).unwrap();
    for kind in KINDS {
        let out = runner().compute(&box_config(kind, "sum", ""), inputs(&same, &same)).unwrap();
        assert!(out.value[0].abs() < 1e-6, "{kind}: {:?}", out.value);
        assert!(out.grad.iter().all(|g| g.abs() < 1e-6), "{kind}: {:?}", out.grad);
    }
}

#[test]
fn reference_gradients_match_finite_differences() {
    let (p, t) = boxes(&mut rng(103), 24);
    for kind in ["giou", "diou"] {
        let c = box_config(kind, "sum", "");
        let analytic = c.reference(&inputs(&p, &t)).unwrap().grad;
        let xs = p.as_f32("").unwrap();
        for k in 0..xs.len() {
            // A step the f32 tensor represents exactly, so the difference quotient is honest.
            let at = |delta: f32| {
                let mut v = xs.to_vec();
                v[k] += delta;
                let step = v[k] as f64 - xs[k] as f64;
                let moved = HostTensor::f32(&[24, 4], v).unwrap();
                (c.reference(&inputs(&moved, &t)).unwrap().value[0], step)
            };
            let ((up, su), (down, sd)) = (at(1e-2), at(-1e-2));
            let numeric = (up - down) / (su - sd);
            assert!(
                (numeric - analytic[k]).abs() <= 1e-6 + 1e-3 * analytic[k].abs(),
                "{kind} d/dpred[{k}]: numeric {numeric} analytic {}",
                analytic[k]
            );
        }
    }
}

fn degenerate_pairs() -> (HostTensor, HostTensor) {
    #[rustfmt::skip]
    let pred = vec![
        5.0, 5.0, 5.0, 9.0,     // zero width
        1.0, 1.0, 4.0, 1.0,     // zero height
        8.0, 8.0, 3.0, 2.0,     // inverted
        2.0, 2.0, 2.0, 2.0,     // a point
        0.0, 0.0, 3.0, 3.0,     // a proper box, against a degenerate target
        7.0, 7.0, 7.0, 7.0,     // a point on a point
    ];
    #[rustfmt::skip]
    let target = vec![
        4.0, 4.0, 8.0, 8.0,
        1.0, 0.0, 4.0, 3.0,
        2.0, 2.0, 6.0, 6.0,
        2.0, 2.0, 2.0, 2.0,
        1.0, 1.0, 1.0, 5.0,
        7.0, 7.0, 7.0, 7.0,
    ];
    (HostTensor::f32(&[6, 4], pred).unwrap(), HostTensor::f32(&[6, 4], target).unwrap())
}

#[test]
fn degenerate_boxes_are_errors_unless_clamped() {
    let (p, t) = degenerate_pairs();
    for kind in KINDS {
        let strict = box_config(kind, "mean", "");
        let e = runner().compute(&strict, inputs(&p, &t)).unwrap_err().to_string();
        assert!(e.contains("pred_boxes[0] = [5.0, 5.0, 5.0, 9.0] is degenerate (x2 ≤ x1)"), "{e}");
        assert!(e.contains("degenerate = \"clamp\""), "{e}");
        let e = strict.reference(&inputs(&p, &t)).unwrap_err().to_string();
        assert!(e.contains("pred_boxes[0]"), "{e}");
        for reduction in REDUCTIONS {
            let clamp = box_config(kind, reduction, r#", "degenerate": "clamp""#);
            let out = runner().compute(&clamp, inputs(&p, &t)).unwrap();
            assert!(out.value.iter().chain(&out.grad).all(|v| v.is_finite()), "{kind}: {out:?}");
            gpu_vs_reference(&clamp, inputs(&p, &t), 1e-4, 1e-6);
        }
    }
    // The target side is checked too.
    let (good, _) = boxes(&mut rng(104), 6);
    let e = runner().compute(&box_config("giou", "mean", ""), inputs(&good, &t)).unwrap_err().to_string();
    assert!(e.contains("target_boxes[3] = [2.0, 2.0, 2.0, 2.0] is degenerate (x2 ≤ x1)"), "{e}");
}

#[test]
fn clamped_losses_follow_the_documented_values() {
    // A zero-width box beside a proper one: union = the proper box's area, no intersection.
    let p = HostTensor::f32(&[1, 4], vec![5.0, 0.0, 5.0, 4.0]).unwrap();
    let t = HostTensor::f32(&[1, 4], vec![0.0, 0.0, 2.0, 4.0]).unwrap();
    let giou = box_config("giou", "sum", r#", "degenerate": "clamp""#);
    let value = runner().compute(&giou, inputs(&p, &t)).unwrap().value[0] as f64;
    // 1 − 0 + (area(C) − union)/area(C) = 1 + (20 − 8)/20
    assert!((value - 1.6).abs() < 1e-5, "{value}");
    // A point against a point: iou 0, C empty, every term finite.
    let point = HostTensor::f32(&[1, 4], vec![3.0, 3.0, 3.0, 3.0]).unwrap();
    for kind in KINDS {
        let c = box_config(kind, "sum", r#", "degenerate": "clamp""#);
        let r = c.reference(&inputs(&point, &point)).unwrap();
        assert_eq!(r.value, vec![1.0], "{kind}");
        assert!(r.grad.iter().all(|g| g.is_finite()), "{kind}");
    }
}

#[test]
fn extreme_coordinates_stay_finite() {
    // The widest boxes, the smallest sides, wildly different aspect ratios.
    #[rustfmt::skip]
    let p = HostTensor::f32(&[7, 4], vec![
        -1e15, -1e15, 1e15, 1e15,
        0.0, 0.0, 1e-3, 1e-3,
        1e14, 1e14, 1e14 + 1e9, 1e14 + 1e9,
        -5.0, -5.0, 5.0, 5.0,
        0.0, 0.0, 1e-30, 1e-30,
        0.0, 0.0, 1e15, 1e-30,
        1.0, 1.0, 1.0 + 1e-6, 2.0,
    ]).unwrap();
    #[rustfmt::skip]
    let t = HostTensor::f32(&[7, 4], vec![
        0.0, 0.0, 1.0, 1.0,
        1e15 - 1e9, 1e15 - 1e9, 1e15, 1e15,
        -1e15, -1e15, -1e15 + 1e9, -1e15 + 1e9,
        -5.0, -5.0, 5.0, 5.0 + 1e-3,
        0.0, 0.0, 2e-30, 1e-30,
        -1e15, 0.0, 0.0, 1e15,
        1.0, 1.0, 2.0, 1.0 + 1e-6,
    ]).unwrap();
    for kind in KINDS {
        for eps in ["1e-7", "1e-20"] {
            let c = box_config(kind, "none", &format!(r#", "eps": {eps}"#));
            let out = runner().compute(&c, inputs(&p, &t)).unwrap();
            assert!(out.value.iter().chain(&out.grad).all(|v| v.is_finite()), "{kind} eps {eps}: {out:?}");
            gpu_vs_reference(&c, inputs(&p, &t), 1e-4, 1e-6);
        }
    }
}

#[test]
fn chunked_bindings_match_the_reference() {
    // A 64 KiB binding cap splits 20,000 boxes (320 KB per tensor) into many chunks.
    let small = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(64 << 10), ..Default::default() }).unwrap());
    let (p, t) = boxes(&mut rng(105), 20_000);
    for (kind, reduction) in [("giou", "mean"), ("ciou", "none"), ("diou", "sum")] {
        let c = box_config(kind, reduction, "");
        let reference = c.reference(&inputs(&p, &t)).unwrap();
        let out = small.compute(&c, inputs(&p, &t)).unwrap();
        let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        for (name, got, want) in [("value", widen(&out.value), &reference.value), ("grad", widen(&out.grad), &reference.grad)] {
            let m = segloss::golden::compare(name, &got, want, 1e-4, 1e-6, true);
            assert!(m.ratio <= 1.0, "{kind} {reduction}: {m:?}");
        }
    }
}

#[test]
fn two_runs_give_identical_bits() {
    let (p, t) = boxes(&mut rng(106), 50_000);
    let c = box_config("ciou", "mean", "");
    let a = runner().compute(&c, inputs(&p, &t)).unwrap();
    let b = runner().compute(&c, inputs(&p, &t)).unwrap();
    assert_eq!(a.value[0].to_bits(), b.value[0].to_bits());
    assert!(a.grad.iter().zip(&b.grad).all(|(u, v)| u.to_bits() == v.to_bits()));
}

/// Records `plan` on uploaded boxes and returns (value, grad, status word).
fn record(plan: &segloss::LossPlan, p: &HostTensor, t: &HostTensor, value: &GpuTensor, grad: &GpuTensor) -> u32 {
    let ctx = ctx();
    let (pg, tg) = (GpuTensor::from_host(ctx, p).unwrap(), GpuTensor::from_host(ctx, t).unwrap());
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    plan.record(
        &mut encoder,
        LossInputs { logits: &pg, target: &tg, weight: None, distance: None },
        LossOutputs { value, grad: Some(grad) },
    )
    .unwrap();
    let staging = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    encoder.copy_buffer_to_buffer(plan.status_buffer().unwrap(), 0, staging.buffer(), 0, 4);
    ctx.queue().submit([encoder.finish()]);
    staging.read_f32(ctx).unwrap()[0].to_bits()
}

#[test]
fn the_status_word_flags_bad_boxes_on_the_gpu() {
    let ctx = ctx();
    let (p, t) = degenerate_pairs();
    let (good_p, good_t) = boxes(&mut rng(107), 6);
    let shapes = InputShapes::new(&[6, 4], &[6, 4]);
    let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(ctx, &[6, 4], DType::F32).unwrap();
    let strict = box_config("ciou", "mean", "").plan(ctx, &shapes, PlanOptions::default()).unwrap();
    assert_eq!(record(&strict, &p, &t, &value, &grad), 1);
    // Even flagged, the numbers written are the clamped, finite ones.
    assert!(value.read_f32(ctx).unwrap()[0].is_finite());
    assert!(grad.read_f32(ctx).unwrap().iter().all(|g| g.is_finite()));
    assert_eq!(record(&strict, &good_p, &good_t, &value, &grad), 0, "cleared on each recording");
    let clamp = box_config("ciou", "mean", r#", "degenerate": "clamp""#).plan(ctx, &shapes, PlanOptions::default()).unwrap();
    assert_eq!(record(&clamp, &p, &t, &value, &grad), 0);
    let mut nan = good_p.clone();
    if let segloss::HostData::F32(v) = &mut nan.data {
        v[9] = f32::NAN;
        v[2] = 2e15;
    }
    // A NaN coordinate sets the shared non-finite bit, one beyond ±1e15 bit 1.
    assert_eq!(record(&clamp, &nan, &good_t, &value, &grad), 2 | segloss::STATUS_NON_FINITE);
    assert!(value.read_f32(ctx).unwrap()[0].is_nan(), "a NaN coordinate gives a NaN value");
}

#[test]
fn scale_and_accumulate_add_box_terms() {
    let ctx = ctx();
    let (p, t) = boxes(&mut rng(108), 300);
    let shapes = InputShapes::new(&[300, 4], &[300, 4]);
    let giou = box_config("giou", "mean", "");
    let ciou = box_config("ciou", "sum", "");
    let first = giou.plan(ctx, &shapes, PlanOptions { scale: 0.5, ..Default::default() }).unwrap();
    let second = ciou.plan(ctx, &shapes, PlanOptions { scale: 2.0, accumulate_value: true, accumulate_grad: true, grad: true }).unwrap();
    let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(ctx, &[300, 4], DType::F32).unwrap();
    record(&first, &p, &t, &value, &grad);
    record(&second, &p, &t, &value, &grad);
    let a = giou.reference(&inputs(&p, &t)).unwrap();
    let b = ciou.reference(&inputs(&p, &t)).unwrap();
    let v = value.read_f32(ctx).unwrap()[0] as f64;
    let want = 0.5 * a.value[0] + 2.0 * b.value[0];
    assert!((v - want).abs() < 1e-5 * want.abs(), "{v} vs {want}");
    for (i, g) in grad.read_f32(ctx).unwrap().iter().enumerate() {
        let want = 0.5 * a.grad[i] + 2.0 * b.grad[i];
        assert!((*g as f64 - want).abs() < 1e-6 + 1e-4 * want.abs(), "grad[{i}] {g} vs {want}");
    }
}

#[test]
fn bad_parameters_and_inputs_are_named() {
    config_error(r#"{"loss": "box_iou", "params": {"kind": "eiou"}}"#, "unknown variant `eiou`");
    config_error(r#"{"loss": "box_iou", "params": {"eps": 0}}"#, "eps = 0 must be");
    config_error(r#"{"loss": "box_iou", "params": {"eps": -1e-7}}"#, "eps = -0.0000001 must be");
    config_error(r#"{"loss": "box_iou", "params": {"degenerate": "ignore"}}"#, "unknown variant `ignore`");
    config_error(r#"{"loss": "box_iou", "params": {"threshold": 0.5}}"#, "unknown field `threshold`");
    config_error(r#"{"loss": "box_iou", "params": {"reduction": "mean", "kind": "giou", "eps": 1e-21}}"#, "≥ 1e-20");
    assert!(LossConfig::from_json(r#"{"loss": "box_iou", "params": {"eps": 1e-20}}"#).is_ok());

    let c = box_config("giou", "mean", "");
    let (p, t) = boxes(&mut rng(109), 5);
    let five = HostTensor::f32(&[5, 5], vec![1.0; 25]).unwrap();
    input_error(&c, &five, &five, None, "pred_boxes has shape [5, 5]; it must be [M, 4]");
    let (p3, _) = boxes(&mut rng(110), 3);
    input_error(&c, &p, &p3, None, "target_boxes has shape [3, 4] but pred_boxes has [5, 4]");
    let none = HostTensor::f32(&[0, 4], vec![]).unwrap();
    input_error(&c, &none, &none, None, "holds no box");
    input_error(&c, &p, &t, Some(&p), "takes no weight");
    let mut far = p.clone();
    if let segloss::HostData::F32(v) = &mut far.data {
        v[6] = 2e15;
    }
    input_error(&c, &far, &t, None, "pred_boxes[1] = [");
    input_error(&c, &far, &t, None, "finite and within ±1e15");
    // A non-finite coordinate: the check every loss shares names the element.
    let mut infinite = p.clone();
    if let segloss::HostData::F32(v) = &mut infinite.data {
        v[6] = f32::INFINITY;
    }
    input_error(&c, &infinite, &t, None, "pred_boxes[6] = inf (at [1, 2] of shape [5, 4]) is not finite");
    let mut thin = p.clone();
    if let segloss::HostData::F32(v) = &mut thin.data {
        v[8..12].copy_from_slice(&[0.0, 0.0, 1e-35, 1.0]);
    }
    input_error(&c, &thin, &t, None, "pred_boxes[2]");
    input_error(&box_config("ciou", "sum", r#", "degenerate": "clamp""#), &thin, &t, None, "positive sides must be at least 1e-30");
    let ints = HostTensor::i32(&[5, 4], vec![1; 20]).unwrap();
    input_error(&c, &p, &ints, None, "target_boxes must be f32");
    // An engine's tensors of the wrong shape are named by their box names.
    let plan = c.plan(ctx(), &InputShapes::new(&[5, 4], &[5, 4]), PlanOptions::default()).unwrap();
    let wrong = GpuTensor::zeros(ctx(), &[6, 4], DType::F32).unwrap();
    let right = GpuTensor::zeros(ctx(), &[5, 4], DType::F32).unwrap();
    let value = GpuTensor::zeros(ctx(), &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(ctx(), &[5, 4], DType::F32).unwrap();
    let mut encoder = ctx().device().create_command_encoder(&Default::default());
    let e = plan
        .record(
            &mut encoder,
            LossInputs { logits: &right, target: &wrong, weight: None, distance: None },
            LossOutputs { value: &value, grad: Some(&grad) },
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("target_boxes has shape [6, 4]"), "{e}");
}
