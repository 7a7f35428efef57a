//! mask_giou: enclosing counts (#C) and losses on the GPU against the float64
//! reference (whose hull is Andrew's monotone chain over every support pixel)
//! on special and random masks, M = 1 to 10,000, H or W up to 2,048, the
//! tallest mask the hull takes, chunked bindings; finite differences of the
//! reference; extremes; the engine interface; validation.

use rand::Rng;
use rand::rngs::StdRng;
use segloss::{
    ContextOptions, DType, Error, GpuContext, GpuTensor, HostInputs, HostTensor, InputShapes, LossConfig, LossInputs, LossOutputs,
    PlanOptions, Runner,
};

use crate::common::{config, config_error, input_error, ctx, rng, runner};

fn mask_config(enclosing: &str, reduction: &str, extra: &str) -> LossConfig {
    config(&format!(r#"{{"loss": "mask_giou", "params": {{"enclosing": "{enclosing}", "reduction": "{reduction}"{extra}}}}}"#))
}

const ENCLOSINGS: [&str; 2] = ["convex_hull", "bounding_box"];

/// A {0, 1} target of `shape` [M, H, W] from a predicate on (instance, row, column).
fn target_from(shape: [usize; 3], f: impl Fn(usize, usize, usize) -> bool) -> HostTensor {
    let [m, h, w] = shape;
    let data = (0..m * h * w).map(|i| if f(i / (h * w), i / w % h, i % w) { 1.0 } else { 0.0 }).collect();
    HostTensor::f32(&shape, data).unwrap()
}

/// Uniform logits in [−scale, scale].
fn uniform(r: &mut StdRng, shape: [usize; 3], scale: f32) -> HostTensor {
    let n = shape.iter().product();
    HostTensor::f32(&shape, (0..n).map(|_| r.random_range(-scale..=scale)).collect()).unwrap()
}

/// Logits far below τ = 0.5 everywhere: the support is the target alone.
fn quiet(shape: [usize; 3]) -> HostTensor {
    HostTensor::f32(&shape, vec![-4.0; shape.iter().product()]).unwrap()
}

/// One random ellipse per instance in the target, and logits that are high
/// on a shifted ellipse plus sparse noise (a prediction that roughly agrees).
fn blobs(r: &mut StdRng, shape: [usize; 3]) -> (HostTensor, HostTensor) {
    let [m, h, w] = shape;
    let params: Vec<[f32; 4]> = (0..m)
        .map(|_| {
            [
                r.random_range(0.0..h as f32),
                r.random_range(0.0..w as f32),
                r.random_range(0.5..h as f32 / 2.0 + 1.0),
                r.random_range(0.5..w as f32 / 2.0 + 1.0),
            ]
        })
        .collect();
    let inside = |k: usize, row: usize, col: usize, shift: f32| {
        let [cr, cc, rr, rc] = params[k];
        ((row as f32 - cr - shift) / rr).powi(2) + ((col as f32 - cc + shift) / rc).powi(2) <= 1.0
    };
    let target = target_from(shape, |k, row, col| inside(k, row, col, 0.0));
    let mut x = Vec::with_capacity(m * h * w);
    for i in 0..m * h * w {
        let (k, row, col) = (i / (h * w), i / w % h, i % w);
        let base = if inside(k, row, col, 1.5) { 2.0 } else { -2.0 };
        let noise = if r.random::<f32>() < 0.01 { 5.0 } else { 0.0 };
        x.push(base + noise + r.random_range(-1.5..1.5f32));
    }
    (HostTensor::f32(&shape, x).unwrap(), target)
}

/// GPU value, gradient and #C against the reference: value and gradient to
/// rtol 1e-4 / atol 1e-6, counts exactly. Returns the counts.
fn check(c: &LossConfig, x: &HostTensor, y: &HostTensor) -> Vec<f64> {
    check_on(runner(), c, x, y)
}

fn check_on(runner: &Runner, c: &LossConfig, x: &HostTensor, y: &HostTensor) -> Vec<f64> {
    let inputs = HostInputs { logits: x, target: y, weight: None, distance: None };
    let reference = c.reference(&inputs).unwrap();
    let gpu = runner.compute(c, inputs).unwrap();
    assert_eq!(gpu.value_shape, reference.value_shape);
    let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let value = segloss::golden::compare("value", &widen(&gpu.value), &reference.value, 1e-4, 1e-6, false);
    let grad = segloss::golden::compare("grad", &widen(&gpu.grad), &reference.grad, 1e-4, 1e-6, true);
    for m in [&value, &grad] {
        assert!(m.ratio <= 1.0, "{c:?} {:?}: {} got {} expected {} ({}× tolerance)", x.shape, m.at, m.got, m.expected, m.ratio);
    }
    let want = &reference.extras.iter().find(|(n, _)| *n == "enclosing_count").unwrap().1;
    let (_, got) = gpu.extras.iter().find(|(n, _)| *n == "enclosing_count").expect("the plan reports enclosing_count");
    assert_eq!(got.dtype(), DType::I32);
    assert_eq!(&got.to_f64(), want, "{c:?} {:?}: enclosing counts", x.shape);
    want.clone()
}

#[test]
fn enclosing_counts_of_special_masks() {
    let shape = [12, 20, 24];
    let y = target_from(shape, |k, r, c| match k {
        0 => false,                                         // empty support: C empty
        1 => (r, c) == (7, 11),                             // one pixel
        2 => (r, c) == (0, 0),                              // one pixel in a corner
        3 => (r, c) == (19, 23),                            // the opposite corner
        4 => r == 5 && [2, 9, 17].contains(&c),             // one row, with gaps
        5 => c == 4 && [1, 8, 19].contains(&r),             // one column, with gaps
        6 => true,                                          // the full image
        7 => (r, c) == (2, 3) || (r, c) == (17, 18),        // a diagonal segment: 16 lattice points
        8 => (r, c) == (0, 0) || (r, c) == (19, 23),        // a segment with no lattice point inside
        9 => (r < 3 && c < 20) || (c < 3 && r < 18),        // an L
        10 => [(0, 0), (19, 0), (0, 23)].contains(&(r, c)), // a triangle's corners
        _ => (r * 7 + c * 3) % 11 == 0 && r % 3 != 1,       // scattered pixels
    });
    let counts = check(&mask_config("convex_hull", "none", ""), &quiet(shape), &y);
    let expected_start = [0.0, 1.0, 1.0, 1.0, 16.0, 19.0, 480.0, 16.0, 2.0];
    assert_eq!(&counts[..9], &expected_start, "{counts:?}");
    let boxes = check(&mask_config("bounding_box", "none", ""), &quiet(shape), &y);
    assert_eq!(&boxes[..9], &[0.0, 1.0, 1.0, 1.0, 16.0, 19.0, 480.0, 256.0, 480.0], "{boxes:?}");
    assert!(counts.iter().zip(&boxes).all(|(h, b)| h <= b));
}

/// Rows whose extents are all strict vertices of the hull: a parabola
/// opening right on the left, one opening left on the right.
fn convex_profile(rows: usize) -> (usize, impl Fn(usize) -> (usize, usize)) {
    let half = rows / 2;
    let depth = half * half;
    let w = 2 * depth + 9;
    let extents = move |r: usize| {
        let d = (r as i64 - half as i64).pow(2) as usize;
        (d, w - 1 - d)
    };
    (w, extents)
}

#[test]
fn every_row_extent_shapes_the_hull() {
    let h = 32;
    let (w, extents) = convex_profile(h);
    let shape = [3, h, w];
    let make = |drop: Option<usize>| {
        target_from(shape, |k, r, c| {
            let (lo, hi) = extents(r);
            Some(r) != drop
                && match k {
                    0 => c == lo || c == hi, // the extents alone
                    1 => c >= lo && c <= hi, // filled rows
                    _ => c == lo,            // one pixel per row: the chains share their points
                }
        })
    };
    let y = make(None);
    let hull = mask_config("convex_hull", "none", "");
    let counts = check(&hull, &quiet(shape), &y);
    // The property the masks are built for: without any one row, C shrinks.
    for r in 0..h {
        let without = hull.reference(&HostInputs { logits: &quiet(shape), target: &make(Some(r)), weight: None, distance: None }).unwrap();
        let smaller = &without.extras[0].1;
        for k in 0..3 {
            assert!(smaller[k] < counts[k], "instance {k}: dropping row {r} leaves #C at {}", counts[k]);
        }
    }
    check(&mask_config("bounding_box", "sum", ""), &quiet(shape), &y);
}

#[test]
fn random_masks_match_the_reference() {
    let mut r = rng(200);
    // One pixel; odd sizes; rows longer than a 1,024-pixel tile; one column
    // (a tile spans 1,024 rows); one row.
    for (i, shape) in [[1, 1, 1], [1, 37, 53], [5, 50, 61], [3, 17, 1030], [2, 2500, 1], [2, 1, 2500]].into_iter().enumerate() {
        let (x, y) = blobs(&mut r, shape);
        for enclosing in ENCLOSINGS {
            for reduction in ["mean", "sum", "none"] {
                check(&mask_config(enclosing, reduction, ""), &x, &y);
            }
        }
        // Other thresholds move the predicted support.
        for threshold in [0.0, 0.2, 0.9, 1.0] {
            let c = mask_config(ENCLOSINGS[i % 2], "none", &format!(r#", "threshold": {threshold}"#));
            let counts = check(&c, &x, &y);
            if threshold == 0.0 {
                assert!(counts.iter().all(|&n| n == (shape[1] * shape[2]) as f64), "τ = 0 takes every pixel");
            }
        }
    }
}

#[test]
fn one_instance_with_2048_rows_or_columns() {
    let mut r = rng(201);
    for shape in [[1, 2048, 24], [1, 24, 2048], [2, 96, 2048]] {
        let (x, y) = blobs(&mut r, shape);
        check(&mask_config("convex_hull", "mean", ""), &x, &y);
        check(&mask_config("bounding_box", "none", ""), &x, &y);
    }
}

#[test]
fn ten_thousand_small_masks() {
    let mut r = rng(202);
    let shape = [10_000, 6, 7];
    let x = uniform(&mut r, shape, 3.0);
    let y = target_from(shape, |k, row, col| (k * 31 + row * 7 + col * 13) % 5 == 0 || (k % 17 == 0 && row == 2));
    for enclosing in ENCLOSINGS {
        check(&mask_config(enclosing, "none", ""), &x, &y);
    }
    check(&mask_config("convex_hull", "mean", r#", "threshold": 0.7"#), &x, &y);
}

#[test]
fn the_tallest_mask_the_hull_takes_is_computed_in_full() {
    // 8,192 rows whose extents zigzag: each row pushes a chain point and pops
    // the previous one, the most loop iterations a chain thread can run. A
    // loop cut short by lavapipe's 65,535-iteration limit would lose rows.
    let shape = [1, 8192, 8];
    let y = target_from(shape, |_, r, c| if r % 2 == 0 { c == 0 || c == 6 } else { c == 1 || c == 7 });
    let counts = check(&mask_config("convex_hull", "sum", ""), &quiet(shape), &y);
    // Row 0 spans [0, 6], the last row [1, 7], every other row [0, 7].
    assert_eq!(counts, vec![7.0 + 8190.0 * 8.0 + 7.0]);
    let mut r = rng(203);
    let x = uniform(&mut r, shape, 2.0);
    check(&mask_config("convex_hull", "mean", r#", "threshold": 0.95"#), &x, &y);
}

#[test]
fn chunked_bindings_match_the_reference() {
    // A 64 KiB binding cap: each 100×90 instance (36 KB) splits across chunks.
    let small = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(64 << 10), ..Default::default() }).unwrap());
    let (x, y) = blobs(&mut rng(204), [3, 100, 90]);
    for enclosing in ENCLOSINGS {
        check_on(&small, &mask_config(enclosing, "none", ""), &x, &y);
        check_on(&small, &mask_config(enclosing, "mean", ""), &x, &y);
    }
    // Per-row data of 99,400 bytes under a 100,000-byte cap: the pooled
    // buffers, bound whole, must not round up past what one binding takes.
    let capped = Runner::new(GpuContext::with_options(ContextOptions { max_binding_bytes: Some(100_000), ..Default::default() }).unwrap());
    assert!(capped.context().scratch("test", 99_400, wgpu::BufferUsages::STORAGE).unwrap().size() <= 100_000);
    let (x, y) = blobs(&mut rng(208), [25, 497, 3]);
    for enclosing in ENCLOSINGS {
        check_on(&capped, &mask_config(enclosing, "sum", ""), &x, &y);
    }
    // Per-row data beyond one binding is a limit, named.
    let zeros = target_from([100, 100, 4], |_, _, _| false);
    let e =
        small.compute(&mask_config("convex_hull", "mean", ""), HostInputs { logits: &quiet([100, 100, 4]), target: &zeros, weight: None, distance: None });
    assert!(matches!(e, Err(Error::Limit { message: ref m, .. }) if m.contains("100 instances × 100 rows")), "{:?}", e.err());
}

#[test]
fn reference_gradients_match_finite_differences() {
    let mut r = rng(205);
    let shape = [2, 6, 7];
    // Logits away from logit(τ) = 0, so no step moves a pixel across the threshold.
    let x = HostTensor::f32(
        &shape,
        (0..84)
            .map(|_| {
                let v: f32 = r.random_range(0.2..3.0);
                if r.random() { v } else { -v }
            })
            .collect(),
    )
    .unwrap();
    let y = target_from(shape, |k, row, col| (row + 2 * col + k) % 4 == 0);
    let xs = x.as_f32("").unwrap();
    for enclosing in ENCLOSINGS {
        for reduction in ["mean", "none"] {
            let c = mask_config(enclosing, reduction, "");
            let analytic = c.reference(&HostInputs { logits: &x, target: &y, weight: None, distance: None }).unwrap().grad;
            for k in 0..xs.len() {
                let at = |delta: f32| {
                    let mut v = xs.to_vec();
                    v[k] += delta;
                    let step = v[k] as f64 - xs[k] as f64;
                    let moved = HostTensor::f32(&shape, v).unwrap();
                    (c.reference(&HostInputs { logits: &moved, target: &y, weight: None, distance: None }).unwrap().value.iter().sum::<f64>(), step)
                };
                let ((up, su), (down, sd)) = (at(1e-3), at(-1e-3));
                let numeric = (up - down) / (su - sd);
                assert!(
                    (numeric - analytic[k]).abs() <= 1e-7 + 1e-3 * analytic[k].abs(),
                    "{enclosing} {reduction} d/dx[{k}]: numeric {numeric} analytic {}",
                    analytic[k]
                );
            }
        }
    }
}

#[test]
fn extreme_logits_and_tiny_eps_stay_finite() {
    let shape = [4, 9, 11];
    let n = 4 * 9 * 11;
    let x = HostTensor::f32(
        &shape,
        (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    1e4
                } else if i % 3 == 1 {
                    -1e4
                } else {
                    0.0
                }
            })
            .collect(),
    )
    .unwrap();
    let y = target_from(shape, |k, r, c| k > 0 && (r + c + k) % 3 == 0);
    let all_low = HostTensor::f32(&shape, vec![-1e4; n]).unwrap();
    let all_high = HostTensor::f32(&shape, vec![1e4; n]).unwrap();
    let empty = target_from(shape, |_, _, _| false);
    let full = target_from(shape, |_, _, _| true);
    for eps in ["1e-7", "1e-30"] {
        for enclosing in ENCLOSINGS {
            let c = mask_config(enclosing, "none", &format!(r#", "eps": {eps}"#));
            for (x, y) in [(&x, &y), (&all_low, &empty), (&all_high, &full), (&all_low, &full), (&all_high, &empty)] {
                let out = runner().compute(&c, HostInputs { logits: x, target: y, weight: None, distance: None }).unwrap();
                assert!(out.value.iter().chain(&out.grad).all(|v| v.is_finite()), "{enclosing} eps {eps}: {:?}", out.value);
                check(&c, x, y);
            }
        }
    }
}

#[test]
fn two_runs_give_identical_bits() {
    let (x, y) = blobs(&mut rng(206), [4, 123, 77]);
    let c = mask_config("convex_hull", "mean", "");
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let a = runner().compute(&c, inputs).unwrap();
    let b = runner().compute(&c, inputs).unwrap();
    assert_eq!(a.value[0].to_bits(), b.value[0].to_bits());
    assert!(a.grad.iter().zip(&b.grad).all(|(u, v)| u.to_bits() == v.to_bits()));
    assert_eq!(a.extras, b.extras);
}

#[test]
fn engines_get_counts_and_can_scale_accumulate_or_skip_the_gradient() {
    let ctx = ctx();
    let shape = [3, 30, 40];
    let (x, y) = blobs(&mut rng(207), shape);
    let shapes = InputShapes::new(&shape, &shape);
    let hull = mask_config("convex_hull", "mean", "");
    let bbox = mask_config("bounding_box", "sum", "");
    let first = hull.plan(ctx, &shapes, PlanOptions { scale: 0.25, ..Default::default() }).unwrap();
    let second = bbox.plan(ctx, &shapes, PlanOptions { scale: 3.0, accumulate_value: true, accumulate_grad: true, grad: true }).unwrap();
    let (xg, yg) = (GpuTensor::from_host(ctx, &x).unwrap(), GpuTensor::from_host(ctx, &y).unwrap());
    let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(ctx, &shape, DType::F32).unwrap();
    let inputs = LossInputs { logits: &xg, target: &yg, weight: None, distance: None };
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    first.record(&mut encoder, inputs, LossOutputs { value: &value, grad: Some(&grad) }).unwrap();
    second.record(&mut encoder, inputs, LossOutputs { value: &value, grad: Some(&grad) }).unwrap();
    ctx.queue().submit([encoder.finish()]);
    let host = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    let (a, b) = (hull.reference(&host).unwrap(), bbox.reference(&host).unwrap());
    let v = value.read_f32(ctx).unwrap()[0] as f64;
    let want = 0.25 * a.value[0] + 3.0 * b.value[0];
    assert!((v - want).abs() < 1e-5 * want.abs(), "{v} vs {want}");
    for (i, g) in grad.read_f32(ctx).unwrap().iter().enumerate() {
        let want = 0.25 * a.grad[i] + 3.0 * b.grad[i];
        assert!((*g as f64 - want).abs() < 1e-6 + 1e-4 * want.abs(), "grad[{i}] {g} vs {want}");
    }
    // The enclosing counts, as an engine reads them from the plan.
    let counts = first.extra("enclosing_count").expect("mask_giou reports enclosing_count");
    assert_eq!((counts.shape(), counts.dtype()), (&[3usize][..], DType::I32));
    assert_eq!(counts.read_host(ctx).unwrap().to_f64(), a.extras[0].1);
    // Without a gradient no grad tensor is needed, and the value is the same.
    let value_only = hull.plan(ctx, &shapes, PlanOptions { grad: false, ..Default::default() }).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    value_only.record(&mut encoder, inputs, LossOutputs { value: &value, grad: None }).unwrap();
    ctx.queue().submit([encoder.finish()]);
    let v = value.read_f32(ctx).unwrap()[0] as f64;
    assert!((v - a.value[0]).abs() < 1e-5 * a.value[0].abs(), "{v} vs {}", a.value[0]);
    // Inputs are untouched.
    assert_eq!(xg.read_f32(ctx).unwrap(), x.as_f32("").unwrap());
}

#[test]
fn bad_parameters_inputs_and_sizes_are_named() {
    config_error(r#"{"loss": "mask_giou", "params": {"threshold": 1.5}}"#, "threshold = 1.5 must lie in [0, 1]");
    config_error(r#"{"loss": "mask_giou", "params": {"threshold": -0.1}}"#, "threshold = -0.1");
    config_error(r#"{"loss": "mask_giou", "params": {"eps": 0}}"#, "eps = 0 must be");
    config_error(r#"{"loss": "mask_giou", "params": {"enclosing": "hull"}}"#, "unknown variant `hull`");
    config_error(r#"{"loss": "mask_giou", "params": {"kind": "giou"}}"#, "unknown field `kind`");
    config_error(r#"{"loss": "mask_giou", "params": {"reduction": "max"}}"#, "unknown variant `max`");

    let c = mask_config("convex_hull", "mean", "");
    let x = quiet([2, 5, 6]);
    let y = target_from([2, 5, 6], |_, r, c| r == c);
    let flat = HostTensor::f32(&[2, 30], vec![0.0; 60]).unwrap();
    input_error(&c, &flat, &flat, None, "logits have shape [2, 30]; they must be [M, H, W]");
    input_error(&c, &x, &quiet([2, 6, 5]), None, "target has shape [2, 6, 5] but the logits have [2, 5, 6]");
    let empty = HostTensor::f32(&[2, 0, 6], vec![]).unwrap();
    input_error(&c, &empty, &empty, None, "have an empty axis");
    input_error(&c, &x, &y, Some(&x), "takes no weight");
    let mut soft = y.clone();
    if let segloss::HostData::F32(v) = &mut soft.data {
        v[4] = 0.5;
    }
    input_error(&c, &x, &soft, None, "target[4] = 0.5 is not 0 or 1");
    input_error(&c, &x, &HostTensor::i32(&[2, 5, 6], vec![0; 60]).unwrap(), None, "target must be f32");

    // Sizes only the GPU path limits: errors at plan time, before any work.
    let plan = |c: &LossConfig, shape: [usize; 3]| c.plan(ctx(), &InputShapes::new(&shape, &shape), PlanOptions::default());
    let e = plan(&c, [1, 8193, 2]);
    assert!(matches!(e, Err(Error::Limit { message: ref m, .. }) if m.contains("at most 8192 rows") && m.contains("8193")), "{:?}", e.err());
    let e = plan(&c, [1, 2, 65_537]);
    assert!(matches!(e, Err(Error::Limit { message: ref m, .. }) if m.contains("at most 65536 columns")), "{:?}", e.err());
    assert!(plan(&mask_config("bounding_box", "mean", ""), [1, 8193, 2]).is_ok(), "bounding_box has no row limit");
    assert!(plan(&c, [1, 8192, 2]).is_ok());
}
