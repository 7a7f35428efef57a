//! Losses on the element types engines train in: f16 and bf16 logits,
//! targets, weights and gradients, u8, u16 and i64 class indices. Every
//! loss through the golden cases, against the float64 reference on the same
//! inputs rounded to the type; the labels against the i32 path bit for bit.

use segloss::golden::{GoldenCase, Outcome, case_files, check_case_in_dtype, rounding_tolerance};
use segloss::{
    ContextOptions, DType, GpuContext, GpuTensor, HostInputs, HostTensor, InputDTypes, InputShapes, LossConfig, LossInputs, LossOutputs,
    PlanOptions, Runner,
};

use crate::common::{binary, config, ctx, labels, logits, packed_f16_runner, rng, runner};
use crate::golden::golden_dir;

fn cases() -> Vec<GoldenCase> {
    case_files(&golden_dir()).unwrap().iter().map(|f| GoldenCase::load(f).unwrap()).filter(|c| LossConfig::implemented(&c.loss)).collect()
}

/// The two ways kernels hold f16 on this device: as `f16` where it has
/// `SHADER_F16` (lavapipe does on Vulkan), and in u32 words.
fn f16_runners() -> [(&'static Runner, &'static str); 2] {
    [(runner(), "f16"), (packed_f16_runner(), "f16 in words")]
}

#[test]
fn both_f16_paths_are_what_they_say_on_this_device() {
    assert!(!packed_f16_runner().context().native_f16(), "packed_f16 must keep f16 in u32 words");
    let name = ctx().adapter_name();
    if name.contains("llvmpipe") && name.contains("Vulkan") {
        assert!(ctx().native_f16(), "lavapipe offers SHADER_F16 on Vulkan, so f16 must be read natively there: {name}");
    }
}

#[test]
fn every_golden_case_passes_in_f16_both_ways_and_bf16() {
    let cases = cases();
    assert!(cases.len() > 100, "{} golden cases found", cases.len());
    let [(native, _), (packed, _)] = f16_runners();
    for (runner, dtype, path) in [(native, DType::F16, "f16"), (packed, DType::F16, "f16 in words"), (native, DType::BF16, "bf16")] {
        for case in &cases {
            match check_case_in_dtype(case, runner, dtype).unwrap() {
                Outcome::Pass { gpu: Some(_), .. } => {}
                other => panic!("{} in {path}: {other:?}", case.id),
            }
        }
    }
}

#[test]
fn the_memory_bound_losses_convert_nothing_but_integer_labels_and_their_dense_overlap_targets() {
    let half = |logits, target| InputDTypes { logits, target, ..Default::default() };
    let image = [2, 3, 8, 8];
    let cases: [(&str, &[usize], &[usize], InputDTypes, &[&str]); 10] = [
        (r#"{"loss": "bce"}"#, &image, &image, half(DType::F16, Some(DType::F16)), &[]),
        (r#"{"loss": "bce"}"#, &image, &image, half(DType::BF16, Some(DType::BF16)), &[]),
        (r#"{"loss": "focal", "params": {"mode": "multilabel"}}"#, &image, &image, half(DType::F16, Some(DType::BF16)), &[]),
        (r#"{"loss": "focal", "params": {"mode": "multiclass"}}"#, &image, &[2, 8, 8], half(DType::F16, Some(DType::U8)), &["target"]),
        (r#"{"loss": "cross_entropy"}"#, &image, &[2, 8, 8], half(DType::BF16, None), &[]),
        (r#"{"loss": "dice", "params": {"mode": "multiclass"}}"#, &image, &[2, 8, 8], half(DType::F16, Some(DType::I64)), &["target"]),
        (r#"{"loss": "generalized_dice"}"#, &image, &[2, 8, 8], half(DType::F16, None), &[]),
        (r#"{"loss": "tversky", "params": {"mode": "multilabel"}}"#, &image, &image, half(DType::F16, Some(DType::F16)), &["target"]),
        (r#"{"loss": "unified_focal", "params": {"mode": "multiclass"}}"#, &[2, 2, 8, 8], &[2, 8, 8], half(DType::BF16, None), &[]),
        // A loss whose own work dominates converts around its kernels.
        (r#"{"loss": "lovasz_softmax"}"#, &image, &[2, 8, 8], half(DType::F16, None), &["logits", "grad"]),
    ];
    for (json, x, y, dtypes, want) in cases {
        let c = config(json);
        let plan = c.plan(ctx(), &InputShapes::new(x, y).with_dtypes(dtypes), PlanOptions::default()).unwrap();
        assert_eq!(plan.converted(), want, "{json} on {dtypes:?}");
    }
}

#[test]
fn class_indices_in_u8_u16_and_i64_give_the_i32_result_bit_for_bit() {
    let mut ran = [0; 3];
    for case in cases() {
        let c = LossConfig::from_parts(&case.loss, case.params.clone()).unwrap();
        let [logits_name, target_name] = c.input_names();
        let (x, y) = (case.input(logits_name).unwrap().unwrap(), case.input(target_name).unwrap().unwrap());
        if y.dtype() != DType::I32 || case.inputs.contains_key("weight") || case.inputs.contains_key("distance") {
            continue;
        }
        let want = runner().compute(&c, HostInputs::new(&x, &y)).unwrap();
        for (k, dtype) in [DType::U8, DType::U16, DType::I64].into_iter().enumerate() {
            // A label a type cannot hold (an ignore value of -100 in u8) is the caller's to avoid.
            let Ok(narrow) = y.to_dtype(dtype) else { continue };
            let got = runner().compute(&c, HostInputs::new(&x, &narrow)).unwrap();
            assert_eq!(got, want, "{} with {} labels", case.id, dtype.name());
            ran[k] += 1;
        }
    }
    assert!(ran.iter().all(|&n| n >= 20), "cases run per label type (u8, u16, i64): {ran:?}");
}

/// The value and the f32 gradient of `c` on the GPU through a plan for
/// `dtypes`, recorded on `x` and `y` as given and a gradient of `grad_dtype`
/// that holds `grad_before`.
fn engine_run(ctx: &GpuContext, c: &LossConfig, x: &HostTensor, y: &HostTensor, dtypes: InputDTypes, options: PlanOptions, grad_before: &HostTensor) -> (Vec<f32>, Vec<f32>) {
    let shapes = InputShapes::new(&x.shape, &y.shape).with_dtypes(dtypes);
    let plan = c.plan(ctx, &shapes, options).unwrap();
    let (xt, yt) = (GpuTensor::from_host(ctx, x).unwrap(), GpuTensor::from_host(ctx, y).unwrap());
    let value = GpuTensor::zeros(ctx, plan.value_shape(), DType::F32).unwrap();
    let grad = GpuTensor::from_host(ctx, grad_before).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    plan.record(&mut encoder, LossInputs::new(&xt, &yt), LossOutputs::new(&value, &grad)).unwrap();
    ctx.queue().submit([encoder.finish()]);
    (value.read_f32(ctx).unwrap(), grad.read_f32(ctx).unwrap())
}

fn assert_within(got: &[f32], want: &[f64], rtol: f64, atol: f64, what: &str) {
    let widened: Vec<f64> = got.iter().map(|&v| v as f64).collect();
    let m = segloss::golden::compare(what, &widened, want, rtol, atol, true);
    assert!(m.ratio <= 1.0, "{what}: {} got {} expected {} ({}× tolerance)", m.at, m.got, m.expected, m.ratio);
}

#[test]
fn an_f32_master_gradient_beside_f16_logits() {
    let mut r = rng(500);
    let x = logits(&mut r, &[2, 5, 9, 7], 4.0).to_dtype(DType::F16).unwrap();
    let y = labels(&mut r, &[2, 9, 7], 5, Some(255));
    let c = config(r#"{"loss": "cross_entropy", "params": {"ignore_index": 255}}"#);
    let dtypes = InputDTypes { logits: DType::F16, grad: Some(DType::F32), ..Default::default() };
    let zeros = HostTensor::f32(&x.shape, vec![0.0; x.len()]).unwrap();
    let (value, grad) = engine_run(ctx(), &c, &x, &y, dtypes, PlanOptions::default(), &zeros);
    let reference = c.reference(&HostInputs::new(&x.widened(), &y)).unwrap();
    // No rounding of the gradient: the f32 path's tolerance.
    assert_within(&value, &reference.value, 1e-5, 1e-7, "value");
    assert_within(&grad, &reference.grad, 1e-5, 1e-8, "grad");
}

#[test]
fn accumulating_into_an_f16_or_bf16_gradient() {
    // Dice and bce write the gradient in place (in words: a read, a clear
    // and a set of each half), hausdorff_er through its f32 copy.
    let mut r = rng(501);
    let x32 = logits(&mut r, &[3, 1, 11, 13], 3.0);
    let y = binary(&mut r, &[3, 1, 11, 13]);
    let before32 = logits(&mut r, &[3, 1, 11, 13], 0.01);
    let options = PlanOptions { scale: 0.5, accumulate_grad: true, ..Default::default() };
    let losses = [r#"{"loss": "dice", "params": {"mode": "binary"}}"#, r#"{"loss": "bce"}"#, r#"{"loss": "hausdorff_er", "params": {"mode": "binary"}}"#];
    let paths = [(runner(), DType::F16), (packed_f16_runner(), DType::F16), (runner(), DType::BF16)];
    for (json, (runner, dtype)) in losses.iter().flat_map(|l| paths.iter().map(move |p| (l, p))) {
        let (c, dtype) = (config(json), *dtype);
        let (x, before) = (x32.to_dtype(dtype).unwrap(), before32.to_dtype(dtype).unwrap());
        let dtypes = InputDTypes { logits: dtype, ..Default::default() };
        let (value, grad) = engine_run(runner.context(), &c, &x, &y, dtypes, options, &before);
        let reference = c.reference(&HostInputs::new(&x.widened(), &y)).unwrap();
        let want: Vec<f64> = reference.grad.iter().zip(before.to_f64()).map(|(g, b)| 0.5 * g + b).collect();
        let (rounding, subnormal) = rounding_tolerance(dtype);
        assert_within(&value, &reference.value.iter().map(|v| 0.5 * v).collect::<Vec<_>>(), 1e-5, 1e-7, "value");
        let path = if runner.context().native_f16() { "" } else { " in words" };
        assert_within(&grad, &want, 1e-5 + rounding, 1e-8 + subnormal, &format!("{json}: grad in {}{path}", dtype.name()));
    }
}

#[test]
fn odd_element_counts_in_small_bindings() {
    // 3·3·7·5 = 315 logits: an odd f16 tensor, read in place (or converted,
    // lovasz) in 4 KiB bindings, whose chunks start at elements that are
    // not multiples of 4 (nor of 2, for the per-pixel labels' chunks).
    let mut r = rng(502);
    let x32 = logits(&mut r, &[3, 3, 7, 5], 4.0);
    let dense = binary(&mut r, &[3, 3, 7, 5]);
    let y = labels(&mut r, &[3, 7, 5], 3, None).to_dtype(DType::U8).unwrap();
    let weights32 = logits(&mut r, &[3, 3, 7, 5], 1.0);
    let weights32 = HostTensor::f32(&weights32.shape, weights32.as_f32("w").unwrap().iter().map(|w| w.abs()).collect()).unwrap();
    for (packed, dtype) in [(false, DType::F16), (true, DType::F16), (false, DType::BF16)] {
        let options = ContextOptions { max_binding_bytes: Some(4096), packed_f16: packed, ..Default::default() };
        let small = Runner::new(GpuContext::with_options(options).unwrap());
        let x = x32.to_dtype(dtype).unwrap();
        let (t, w) = (dense.to_dtype(dtype).unwrap(), weights32.to_dtype(dtype).unwrap());
        let classes = [r#"{"loss": "cross_entropy", "params": {}}"#, r#"{"loss": "dice", "params": {"mode": "multiclass"}}"#, r#"{"loss": "lovasz_softmax"}"#];
        let runs = classes.iter().map(|json| (*json, HostInputs::new(&x, &y)))
            .chain([(r#"{"loss": "bce"}"#, HostInputs { weight: Some(&w), ..HostInputs::new(&x, &t) }), (r#"{"loss": "focal", "params": {"mode": "multilabel"}}"#, HostInputs::new(&x, &t))]);
        for (json, inputs) in runs {
            let c = config(json);
            let gpu = small.compute(&c, inputs).unwrap();
            let wide = inputs.widened();
            let reference = c.reference(&wide.inputs()).unwrap();
            let (rounding, subnormal) = rounding_tolerance(dtype);
            let what = format!("{} on {}{}", c.name(), dtype.name(), if packed { " in words" } else { "" });
            assert_within(&gpu.value, &reference.value, 1e-5, 1e-7, &format!("{what}: value"));
            assert_within(&gpu.grad, &reference.grad, 1e-5 + rounding, 1e-8 + subnormal, &format!("{what}: grad"));
        }
    }
}

#[test]
fn a_gradient_beyond_f16_range_saturates_in_place_on_both_paths() {
    // A scale of 1e6 on a summed bce makes |∂l/∂x| up to 1e6: f16 holds
    // 65504 at most, and an engine's f16 gradient must not become ±∞.
    let mut r = rng(506);
    let x = logits(&mut r, &[1000], 4.0).to_dtype(DType::F16).unwrap();
    let y = binary(&mut r, &[1000]);
    let c = config(r#"{"loss": "bce", "params": {"reduction": "sum"}}"#);
    let options = PlanOptions { scale: 1e6, ..Default::default() };
    let dtypes = InputDTypes { logits: DType::F16, ..Default::default() };
    let zeros = HostTensor::f32(&[1000], vec![0.0; 1000]).unwrap().to_dtype(DType::F16).unwrap();
    let reference = c.reference(&HostInputs::new(&x.widened(), &y)).unwrap();
    for (runner, _) in f16_runners() {
        let (_, grad) = engine_run(runner.context(), &c, &x, &y, dtypes, options, &zeros);
        for (g, want) in grad.iter().zip(&reference.grad) {
            let want = (want * 1e6).clamp(-65504.0, 65504.0);
            assert!(g.is_finite() && (*g as f64 - want).abs() <= want.abs() * 1e-3 + 1e-2, "{g} for {want}");
        }
        assert!(grad.iter().any(|g| g.abs() == 65504.0), "no gradient reached f16's largest value");
    }
}

#[test]
fn f16_logits_at_the_range_limit_and_bf16_at_3e38_stay_finite() {
    let mut r = rng(503);
    let losses = [
        r#"{"loss": "bce", "params": {}}"#,
        r#"{"loss": "focal", "params": {"mode": "binary"}}"#,
        r#"{"loss": "dice", "params": {"mode": "binary"}}"#,
        r#"{"loss": "tversky", "params": {"mode": "binary"}}"#,
    ];
    let shape = [2, 1, 8, 8];
    let y = binary(&mut r, &shape);
    for (dtype, limit) in [(DType::F16, 65504.0f32), (DType::BF16, 3e38)] {
        let mut ran = 0;
        let signs = logits(&mut r, &shape, 1.0);
        let x = HostTensor::f32(&shape, signs.as_f32("x").unwrap().iter().map(|s| if *s < 0.0 { -limit } else { limit }).collect())
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        for json in losses {
            let c = config(json);
            let f32_path = runner().compute(&c, HostInputs::new(&x.widened(), &y)).unwrap();
            let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
            if !(finite(&f32_path.value) && finite(&f32_path.grad)) {
                continue;
            }
            let got = runner().compute(&c, HostInputs::new(&x, &y)).unwrap();
            assert!(finite(&got.value) && finite(&got.grad), "{} on {} logits at ±{limit}: {:?}", c.name(), dtype.name(), got.value);
            ran += 1;
        }
        // At ±65504 every one of them is finite on the f32 path; at ±3e38
        // two of them overflow f32 on the f32 path itself (terms near 3e38 summed).
        let finite_on_f32 = if dtype == DType::F16 { losses.len() } else { 2 };
        assert_eq!(ran, finite_on_f32, "losses finite on the f32 path at ±{limit}");
    }
}

#[test]
fn a_sum_over_2_pow_24_f16_logits_is_as_accurate_as_the_f32_path() {
    // Accumulation is f32 in both: the f16 path widens first, so it must give
    // the f32 path's value on the same (rounded) logits exactly.
    let n = 1usize << 24;
    let mut r = rng(504);
    let x = logits(&mut r, &[n], 3.0).to_dtype(DType::F16).unwrap();
    let y = binary(&mut r, &[n]);
    let c = config(r#"{"loss": "bce", "params": {"reduction": "sum"}}"#);
    let half = runner().compute(&c, HostInputs::new(&x, &y)).unwrap();
    let single = runner().compute(&c, HostInputs::new(&x.widened(), &y)).unwrap();
    assert_eq!(half.value, single.value);
    let reference = c.reference(&HostInputs::new(&x.widened(), &y)).unwrap();
    assert_within(&half.value, &reference.value, 1e-5, 0.0, "sum");
}

#[test]
fn types_a_loss_cannot_take_are_refused_when_planning() {
    let shapes = || InputShapes::new(&[1, 3, 4, 4], &[1, 4, 4]);
    let ce = config(r#"{"loss": "cross_entropy", "params": {}}"#);
    let e = ce.plan(ctx(), &shapes().with_dtypes(InputDTypes { target: Some(DType::F16), ..Default::default() }), PlanOptions::default());
    let e = e.err().expect("f16 class indices").to_string();
    assert!(e.contains("f16 targets") && e.contains("class indices"), "{e}");
    let e = ce.plan(ctx(), &shapes().with_dtypes(InputDTypes { logits: DType::U8, ..Default::default() }), PlanOptions::default());
    let e = e.err().expect("u8 logits").to_string();
    assert!(e.contains("logits must be f32, f16 or bf16"), "{e}");
    let bce = config(r#"{"loss": "bce", "params": {}}"#);
    let dense = InputShapes::new(&[1, 1, 4, 4], &[1, 1, 4, 4]).with_dtypes(InputDTypes { target: Some(DType::U8), ..Default::default() });
    let e = bce.plan(ctx(), &dense, PlanOptions::default()).err().expect("u8 dense targets").to_string();
    assert!(e.contains("u8 targets"), "{e}");
}

#[test]
fn a_tensor_of_another_type_than_planned_is_refused_when_recording() {
    let ctx = ctx();
    let c = config(r#"{"loss": "bce", "params": {}}"#);
    let shapes = InputShapes::new(&[4], &[4]).with_dtypes(InputDTypes { logits: DType::F16, ..Default::default() });
    let plan = c.plan(ctx, &shapes, PlanOptions::default()).unwrap();
    let x = GpuTensor::zeros(ctx, &[4], DType::BF16).unwrap();
    let y = GpuTensor::zeros(ctx, &[4], DType::F32).unwrap();
    let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let grad = GpuTensor::zeros(ctx, &[4], DType::F16).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let e = plan.record(&mut encoder, LossInputs::new(&x, &y), LossOutputs::new(&value, &grad)).err().expect("bf16 logits").to_string();
    assert!(e.contains("logits is bf16") && e.contains("f16"), "{e}");
}

#[test]
fn a_compound_on_f16_logits_and_u8_labels() {
    // The terms add up in one f32 copy, rounded into f16 once.
    let mut r = rng(505);
    let x = logits(&mut r, &[2, 4, 10, 12], 3.0).to_dtype(DType::F16).unwrap();
    let y = labels(&mut r, &[2, 10, 12], 4, None).to_dtype(DType::U8).unwrap();
    let terms = vec![(0.7, config(r#"{"loss": "cross_entropy"}"#)), (0.3, config(r#"{"loss": "dice", "params": {"mode": "multiclass"}}"#))];
    let compound = segloss::CompoundConfig::new(terms).unwrap();
    let got = runner().compute_compound(&compound, HostInputs::new(&x, &y)).unwrap();
    let wide = HostInputs::new(&x, &y).widened();
    let reference = compound.reference(&wide.inputs()).unwrap();
    let (rounding, subnormal) = rounding_tolerance(DType::F16);
    assert_within(&got.value, &reference.value, 1e-5, 1e-7, "value");
    assert_within(&got.grad, &reference.grad, 1e-5 + rounding, 1e-8 + subnormal, "grad");
}

#[test]
fn converted_tensors_that_overlap_a_written_one_are_refused() {
    // f16 logits and an f16 gradient over the same bytes of one buffer: the
    // kernels see only the plan's f32 copies, so the conversion checks.
    let ctx = ctx();
    let c = config(r#"{"loss": "hausdorff_er", "params": {"mode": "binary"}}"#);
    let shape = [1, 1, 8, 8];
    let shapes = InputShapes::new(&shape, &shape).with_dtypes(InputDTypes { logits: DType::F16, ..Default::default() });
    let plan = c.plan(ctx, &shapes, PlanOptions::default()).unwrap();
    let buffer = GpuTensor::zeros(ctx, &shape, DType::F16).unwrap().buffer().clone();
    let x = GpuTensor::new(ctx, buffer.clone(), 0, &shape, DType::F16).unwrap();
    let grad = GpuTensor::new(ctx, buffer, 0, &shape, DType::F16).unwrap();
    let y = GpuTensor::zeros(ctx, &shape, DType::F32).unwrap();
    let value = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let e = plan.record(&mut encoder, LossInputs::new(&x, &y), LossOutputs::new(&value, &grad)).err().expect("overlap").to_string();
    assert!(e.contains("overlap") && e.contains("grad"), "{e}");
    // A wrong-shaped gradient is refused before anything is recorded.
    let short = GpuTensor::zeros(ctx, &[1, 1, 8, 7], DType::F16).unwrap();
    let x = GpuTensor::zeros(ctx, &shape, DType::F16).unwrap();
    let e = plan.record(&mut encoder, LossInputs::new(&x, &y), LossOutputs::new(&value, &short)).err().expect("shape").to_string();
    assert!(e.contains("grad has shape [1, 1, 8, 7]"), "{e}");
}
