//! Shared test fixtures: one GPU context for the whole suite, random inputs,
//! and comparisons against the float64 reference.

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use segloss::{ContextOptions, Error, GpuContext, GpuTensor, HostInputs, HostTensor, InputShapes, LossConfig, LossInputs, LossOutputs, PlanOptions, Runner};

/// The suite's runner on the best adapter; panics with the reason when there is none.
/// Its bindings are capped at WebGPU's default 128 MiB, lavapipe's own limit,
/// so the tests that exceed one binding do so on every device (a real GPU
/// binds up to 2 GiB).
pub fn runner() -> &'static Runner {
    static RUNNER: OnceLock<Runner> = OnceLock::new();
    RUNNER.get_or_init(|| match GpuContext::with_options(ContextOptions { max_binding_bytes: Some(128 << 20), ..Default::default() }) {
        Ok(ctx) => Runner::new(ctx),
        Err(e) => panic!("GPU tests need an adapter and found none: {e}"),
    })
}

/// The suite's context.
pub fn ctx() -> &'static GpuContext {
    runner().context()
}

/// A runner like [`runner`] whose kernels read and write f16 in u32 words
/// ([`ContextOptions::packed_f16`]): the path of devices without
/// `SHADER_F16`, on a device that has it.
pub fn packed_f16_runner() -> &'static Runner {
    static RUNNER: OnceLock<Runner> = OnceLock::new();
    RUNNER.get_or_init(|| {
        let options = ContextOptions { max_binding_bytes: Some(128 << 20), packed_f16: true, ..Default::default() };
        Runner::new(GpuContext::with_options(options).unwrap_or_else(|e| panic!("GPU tests need an adapter and found none: {e}")))
    })
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Normal-ish logits scaled by `scale`.
pub fn logits(rng: &mut StdRng, shape: &[usize], scale: f32) -> HostTensor {
    let n: usize = shape.iter().product();
    HostTensor::f32(shape, (0..n).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale).collect()).unwrap()
}

/// {0, 1} targets.
pub fn binary(rng: &mut StdRng, shape: &[usize]) -> HostTensor {
    let n: usize = shape.iter().product();
    HostTensor::f32(shape, (0..n).map(|_| if rng.random::<bool>() { 1.0 } else { 0.0 }).collect()).unwrap()
}

/// Class indices in [0, classes), with `ignore` at about one pixel in eight when given.
pub fn labels(rng: &mut StdRng, shape: &[usize], classes: usize, ignore: Option<i32>) -> HostTensor {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|_| match ignore {
            Some(v) if rng.random::<f32>() < 0.125 => v,
            _ => rng.random_range(0..classes as i32),
        })
        .collect();
    HostTensor::i32(shape, data).unwrap()
}

pub fn config(json: &str) -> LossConfig {
    LossConfig::from_json(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// Worst |gpu − ref| relative to (atol + rtol·max|ref|) over value and gradient; ≤ 1 passes.
pub fn gpu_vs_reference(config: &LossConfig, inputs: HostInputs<'_>, rtol: f64, atol: f64) -> f64 {
    runner_vs_reference(runner(), config, inputs, rtol, atol)
}

/// [`gpu_vs_reference`] on another runner (a context with small bindings).
pub fn runner_vs_reference(runner: &Runner, config: &LossConfig, inputs: HostInputs<'_>, rtol: f64, atol: f64) -> f64 {
    let reference = config.reference(&inputs).expect("reference");
    let gpu = runner.compute(config, inputs).expect("gpu");
    assert_eq!(gpu.value_shape, reference.value_shape);
    let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let value = segloss::golden::compare("value", &widen(&gpu.value), &reference.value, rtol, atol, false);
    let grad = segloss::golden::compare("grad", &widen(&gpu.grad), &reference.grad, rtol, atol, true);
    for m in [&value, &grad] {
        assert!(m.ratio <= 1.0, "{}: {} got {} expected {} ({}× tolerance)", config.name(), m.at, m.got, m.expected, m.ratio);
    }
    value.ratio.max(grad.ratio)
}

/// Asserts that `json` is refused with a configuration error ([`Error::Config`])
/// containing `needle`.
pub fn config_error(json: &str, needle: &str) {
    match LossConfig::from_json(json) {
        Ok(c) => panic!("{json} was accepted as {c:?}"),
        Err(e @ Error::Config { .. }) => assert!(e.to_string().contains(needle), "{json}: {e} lacks {needle:?}"),
        Err(e) => panic!("{json}: expected a configuration error, got {e:?}"),
    }
}

/// Asserts that both the GPU and the float64 reference refuse these inputs
/// with an error containing `needle`; returns the GPU's error, for callers
/// that check its kind.
pub fn input_error(c: &LossConfig, x: &HostTensor, y: &HostTensor, w: Option<&HostTensor>, needle: &str) -> Error {
    let inputs = HostInputs { logits: x, target: y, weight: w, distance: None };
    let gpu = runner().compute(c, inputs).expect_err(needle);
    assert!(gpu.to_string().contains(needle), "{}: {gpu} lacks {needle:?}", c.name());
    let e = c.reference(&inputs).expect_err(needle).to_string();
    assert!(e.contains(needle), "reference {}: {e} lacks {needle:?}", c.name());
    gpu
}

/// Asserts that the reference's gradient of Σ value matches central finite
/// differences at every logit, within 1e-5 of the largest gradient element.
/// The steps (1/1024) are exactly representable around each f32 logit, and
/// the quotient divides by the step actually taken.
pub fn assert_reference_matches_finite_differences(config: &LossConfig, x: &HostTensor, target: &HostTensor, what: &str) {
    assert_reference_matches_finite_differences_with_step(config, x, target, what, 1.0 / 1024.0);
}

/// [`assert_reference_matches_finite_differences`] with step `h` (a power
/// of two), for losses whose kinks lie closer together than 1/1024.
pub fn assert_reference_matches_finite_differences_with_step(config: &LossConfig, x: &HostTensor, target: &HostTensor, what: &str, h: f32) {
    let total = |x: &HostTensor| config.reference(&HostInputs::new(x, target)).unwrap().value.iter().sum::<f64>();
    let grad = config.reference(&HostInputs::new(x, target)).unwrap().grad;
    let max = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    let data = x.as_f32("x").unwrap().to_vec();
    for i in 0..data.len() {
        let at = |v: f32| {
            let mut d = data.clone();
            d[i] = v;
            total(&HostTensor::f32(&x.shape, d).unwrap())
        };
        let (up, down) = (data[i] + h, data[i] - h);
        let fd = (at(up) - at(down)) / (up as f64 - down as f64);
        assert!(
            (fd - grad[i]).abs() <= 1e-5 * max + 1e-9,
            "{} {what}: grad[{i}] = {} but finite differences give {fd}",
            config.name(),
            grad[i]
        );
    }
}

/// Asserts that a plan made with scale 0.5 and both accumulate flags, and
/// recorded twice into one encoder over buffers already holding 0.25
/// (value) and −0.5 (gradient), leaves 0.25 + value and −0.5 + gradient of
/// the reference: each recording adds half, and the plan allocates nothing
/// per recording. Values within `rtol`·(1 + |v|), gradients within
/// `rtol`·max|∂| + 1e-6.
pub fn assert_scale_and_accumulate(config: &LossConfig, x: &HostTensor, t: &HostTensor, rtol: f64) {
    let c = runner().context();
    let reference = config.reference(&HostInputs::new(x, t)).unwrap();
    let options = PlanOptions { scale: 0.5, accumulate_value: true, accumulate_grad: true, grad: true };
    let plan = config.plan(c, &InputShapes::new(&x.shape, &t.shape), options).unwrap();
    let upload = |h: &HostTensor| GpuTensor::from_host(c, h).unwrap();
    let (xl, tl) = (upload(x), upload(t));
    let value = upload(&HostTensor::f32(&reference.value_shape, vec![0.25; reference.value.len()]).unwrap());
    let grad = upload(&HostTensor::f32(&x.shape, vec![-0.5; x.len()]).unwrap());
    let mut encoder = c.device().create_command_encoder(&Default::default());
    for _ in 0..2 {
        plan.record(&mut encoder, LossInputs::new(&xl, &tl), LossOutputs { value: &value, grad: Some(&grad) }).unwrap();
    }
    c.queue().submit([encoder.finish()]);
    let (v, g) = (value.read_f32(c).unwrap(), grad.read_f32(c).unwrap());
    let name = config.name();
    for (a, r) in v.iter().zip(&reference.value) {
        assert!((*a as f64 - (0.25 + r)).abs() < rtol * (1.0 + r.abs()), "{name}: value {a} vs {}", 0.25 + r);
    }
    let max = reference.grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    for (a, r) in g.iter().zip(&reference.grad) {
        assert!((*a as f64 - (-0.5 + r)).abs() < rtol * max + 1e-6, "{name}: grad {a} vs {}", -0.5 + r);
    }
}
