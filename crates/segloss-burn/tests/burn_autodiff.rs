//! segloss-burn against the same losses written with burn's own tensor ops
//! and differentiated by burn's autodiff: values, gradients, compounds,
//! steady state and errors, on burn's wgpu device (lavapipe in CI).

use std::sync::OnceLock;

use burn::tensor::activation::{log_softmax, softmax, softplus};
use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};
use segloss::{CompoundConfig, LossConfig};
use segloss_burn::{Error, Extras, SeglossBurn};

/// burn initializes a wgpu device once per process: every test shares it.
fn engine() -> &'static SeglossBurn {
    static ENGINE: OnceLock<SeglossBurn> = OnceLock::new();
    ENGINE.get_or_init(|| {
        SeglossBurn::init().unwrap_or_else(|e| {
            panic!("segloss-burn's tests need a wgpu adapter (lavapipe: apt-get install mesa-vulkan-drivers): {e}")
        })
    })
}

fn autodiff() -> Device {
    engine().device().clone().autodiff()
}

/// Deterministic pseudo-random numbers in [0, 1).
fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32) / (1u64 << 24) as f32
        })
        .collect()
}

/// Logits uniform in [−3, 3], constants of the graph.
fn constant_logits<const D: usize>(dims: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let n = dims.iter().product();
    let data: Vec<f32> = uniform(n, seed).into_iter().map(|u| 6.0 * u - 3.0).collect();
    Tensor::<D>::from_data(TensorData::new(data, dims), device)
}

/// The same, as a leaf whose gradient is kept.
fn logits<const D: usize>(dims: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    constant_logits(dims, seed, device).require_grad()
}

fn labels(n: usize, classes: usize, seed: u64) -> Vec<i32> {
    uniform(n, seed).into_iter().map(|u| ((u * classes as f32) as i32).min(classes as i32 - 1)).collect()
}

fn one_hot(labels: &[i32], dims: [usize; 4], device: &Device) -> Tensor<4> {
    let [n, c, h, w] = dims;
    let mut g = vec![0f32; n * c * h * w];
    for (i, &l) in labels.iter().enumerate() {
        let (img, px) = (i / (h * w), i % (h * w));
        g[(img * c + l as usize) * h * w + px] = 1.0;
    }
    Tensor::<4>::from_data(TensorData::new(g, dims), device)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 data")
}

/// Value and gradient (with an upstream factor of 3, so that the backward's
/// multiply by the incoming gradient is checked) of both sides.
fn compare<const D: usize>(x: &Tensor<D>, ours: Tensor<1>, theirs: Tensor<1>, what: &str) {
    let (v_ours, v_theirs) = (to_vec(ours.clone())[0], to_vec(theirs.clone())[0]);
    let g_ours = to_vec(x.grad(&(ours * 3.0).backward()).expect("segloss's loss reaches the logits"));
    let g_theirs = to_vec(x.grad(&(theirs * 3.0).backward()).expect("burn's loss reaches the logits"));
    assert!((v_ours - v_theirs).abs() <= 1e-5 * v_theirs.abs().max(1.0), "{what}: value {v_ours} against burn's {v_theirs}");
    let scale = g_theirs.iter().fold(0f32, |m, g| m.max(g.abs()));
    assert!(scale > 0.0, "{what}: burn's gradient is all zero");
    let worst = g_ours.iter().zip(&g_theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-5 * scale.max(1e-3), "{what}: gradient differs from burn's autodiff by {worst} (largest {scale})");
}

#[test]
fn bce_matches_burn_autodiff() {
    let device = autodiff();
    let dims = [2, 1, 8, 12];
    let x = logits(dims, 1, &device);
    let y = Tensor::<4>::from_data(TensorData::new(uniform(2 * 8 * 12, 2), dims), &device);
    let w = Tensor::<4>::from_data(TensorData::new(uniform(2 * 8 * 12, 3), dims), &device);

    let loss = engine().loss_json(r#"{"loss": "bce", "params": {}}"#).unwrap();
    let theirs = (softplus(x.clone(), 1.0) - y.clone() * x.clone()).mean();
    compare(&x, loss.forward(x.clone(), y.clone()).unwrap(), theirs, "bce");

    let loss = engine().loss_json(r#"{"loss": "bce", "params": {"pos_weight": 3.0, "reduction": "sum"}}"#).unwrap();
    // −(pw·y·log σ(x) + (1−y)·log(1−σ(x))) = pw·y·softplus(−x) + (1−y)·softplus(x)
    let theirs = ((y.clone() * softplus(-x.clone(), 1.0) * 3.0 + (-y.clone() + 1.0) * softplus(x.clone(), 1.0)) * w.clone()).sum();
    compare(&x, loss.forward_with(x.clone(), y, Extras::default().weight(w)).unwrap(), theirs, "bce, pos_weight, weights, sum");
}

#[test]
fn cross_entropy_matches_burn_autodiff() {
    let device = autodiff();
    let (n, c, h, w) = (2, 5, 9, 7);
    let x = logits([n, c, h, w], 4, &device);
    let t = labels(n * h * w, c, 5);
    let target = Tensor::<3, Int>::from_data(TensorData::new(t.clone(), [n, h, w]), &device);
    let loss = engine().loss_json(r#"{"loss": "cross_entropy", "params": {}}"#).unwrap();
    let theirs = -(log_softmax(x.clone(), 1) * one_hot(&t, [n, c, h, w], &device)).sum() / (n * h * w) as f32;
    compare(&x, loss.forward(x.clone(), target).unwrap(), theirs, "cross_entropy");
}

/// Dice per (image, class), as SPEC.md and smp: 1 − (2I + s) / max(P + G + s, eps).
fn burn_dice(x: &Tensor<4>, g: &Tensor<4>) -> Tensor<1> {
    let p = softmax(x.clone(), 1);
    let i = (p.clone() * g.clone()).sum_dims(&[2, 3]);
    let den = (p.sum_dims(&[2, 3]) + g.clone().sum_dims(&[2, 3]) + 1e-5).clamp_min(1e-7);
    (-(i * 2.0 + 1e-5) / den + 1.0).mean()
}

#[test]
fn dice_matches_burn_autodiff() {
    let device = autodiff();
    let (n, c, h, w) = (3, 4, 10, 6);
    let x = logits([n, c, h, w], 6, &device);
    let t = labels(n * h * w, c, 7);
    let target = Tensor::<3, Int>::from_data(TensorData::new(t.clone(), [n, h, w]), &device);
    let loss = engine().loss_json(r#"{"loss": "dice", "params": {}}"#).unwrap();
    let theirs = burn_dice(&x, &one_hot(&t, [n, c, h, w], &device));
    compare(&x, loss.forward(x.clone(), target).unwrap(), theirs, "dice");
}

/// A strided view (logits computed channels-last and permuted) is read in
/// the order burn's shape says, as a dense tensor would be.
#[test]
fn strided_logits_match_dense_ones() {
    let device = autodiff();
    let (n, c, h, w) = (2, 3, 5, 4);
    let x = logits([n, h, w, c], 8, &device);
    let t = labels(n * h * w, c, 9);
    let target = Tensor::<3, Int>::from_data(TensorData::new(t.clone(), [n, h, w]), &device);
    let loss = engine().loss_json(r#"{"loss": "dice", "params": {}}"#).unwrap();
    // Each side its own permute node: burn frees a graph's tape on backward.
    let permuted = || x.clone().permute([0, 3, 1, 2]);
    let theirs = burn_dice(&permuted(), &one_hot(&t, [n, c, h, w], &device));
    compare(&x, loss.forward(permuted(), target).unwrap(), theirs, "dice on a permuted view");
}

/// Two terms into one value and one gradient, and weights changed between steps.
#[test]
fn compound_accumulates_into_one_gradient() {
    let device = autodiff();
    let (n, c, h, w) = (2, 3, 8, 8);
    let x = logits([n, c, h, w], 10, &device);
    let t = labels(n * h * w, c, 11);
    let target = Tensor::<3, Int>::from_data(TensorData::new(t.clone(), [n, h, w]), &device);
    let g = one_hot(&t, [n, c, h, w], &device);
    let config = CompoundConfig::new(vec![
        (0.7, LossConfig::from_json(r#"{"loss": "cross_entropy", "params": {}}"#).unwrap()),
        (1.5, LossConfig::from_json(r#"{"loss": "dice", "params": {}}"#).unwrap()),
    ])
    .unwrap();
    let loss = engine().compound(config).unwrap();
    let ce = || -(log_softmax(x.clone(), 1) * g.clone()).sum() / (n * h * w) as f32;
    let theirs = ce() * 0.7 + burn_dice(&x, &g) * 1.5;
    compare(&x, loss.forward(x.clone(), target.clone()).unwrap(), theirs, "0.7·cross_entropy + 1.5·dice");

    loss.set_weights(&[0.2, 2.0]).unwrap();
    assert_eq!(loss.weights(), vec![0.2, 2.0]);
    let theirs = ce() * 0.2 + burn_dice(&x, &g) * 2.0;
    compare(&x, loss.forward(x.clone(), target).unwrap(), theirs, "after set_weights: 0.2·cross_entropy + 2·dice");
}

/// Without autodiff (evaluation), the value alone, from a plan without a gradient.
#[test]
fn plain_device_gives_the_value() {
    let device = engine().device().clone();
    let (n, c, h, w) = (2, 3, 6, 6);
    let x = constant_logits([n, c, h, w], 12, &device);
    let t = labels(n * h * w, c, 13);
    let target = Tensor::<3, Int>::from_data(TensorData::new(t.clone(), [n, h, w]), &device);
    let loss = engine().loss_json(r#"{"loss": "cross_entropy", "params": {}}"#).unwrap();
    let ours = to_vec(loss.forward(x.clone(), target).unwrap())[0];
    let theirs = to_vec(-(log_softmax(x, 1) * one_hot(&t, [n, c, h, w], &device)).sum() / (n * h * w) as f32)[0];
    assert!((ours - theirs).abs() < 1e-5, "{ours} against burn's {theirs}");
}

/// A training loop's steady state: after the first steps, segloss creates no
/// buffer and no bind group, and burn's pool stops growing.
#[test]
fn two_hundred_steps_create_no_buffers() {
    // A device of its own, so that the other tests (run in parallel) neither
    // create buffers on its context nor allocate in its pool: registered
    // from a setup made here, as an application that owns its wgpu device does.
    let engine = SeglossBurn::on_own_device("segloss-burn test").unwrap();
    let device = engine.device().clone().autodiff();
    let ctx = engine.context();
    let (n, c, h, w) = (2, 3, 16, 16);
    let t = labels(n * h * w, c, 14);
    let target = Tensor::<3, Int>::from_data(TensorData::new(t, [n, h, w]), &device);
    let config = CompoundConfig::new(vec![
        (1.0, LossConfig::from_json(r#"{"loss": "dice", "params": {}}"#).unwrap()),
        (0.01, LossConfig::from_json(r#"{"loss": "boundary", "params": {}}"#).unwrap()),
    ])
    .unwrap();
    let loss = engine.compound(config).unwrap();
    let batches: Vec<Vec<f32>> = (0..4).map(|i| uniform(n * c * h * w, 15 + i)).collect();
    let mut seen = Vec::new();
    for step in 0..200 {
        // A new batch each step, as a data loader gives them.
        let x = Tensor::<4>::from_data(TensorData::new(batches[step % 4].clone(), [n, c, h, w]), &device).require_grad();
        let value = loss.forward(x.clone() * 2.0, target.clone()).unwrap();
        let grads = value.backward();
        let g = x.grad(&grads).unwrap();
        assert_eq!(g.dims(), [n, c, h, w]);
        // Both looks at the same point of a step, with the same tensors alive.
        if step == 20 || step == 199 {
            device.sync().unwrap();
            let pool = device.memory_pool_usage().expect("burn's wgpu pool reports its usage");
            seen.push((ctx.buffers_created(), ctx.bind_groups_created(), pool.bytes_reserved, pool.number_allocs));
        }
    }
    let (early, late) = (seen[0], seen[1]);
    assert_eq!(late.0, early.0, "segloss created buffers after step 20");
    assert_eq!(late.1, early.1, "segloss created bind groups after step 20");
    assert_eq!(late.2, early.2, "burn's memory pool reserved more bytes between step 20 and step 199");
    assert_eq!(late.3, early.3, "more tensors were alive at step 199 than at step 20");
}

/// A wgpu setup made without burn: the adapter segloss would choose, with
/// its full limits (burn asks for them).
#[test]
fn wrong_target_kinds_and_shapes_are_named() {
    let device = autodiff();
    let x = logits([2, 3, 4, 4], 16, &device);
    let bce = engine().loss_json(r#"{"loss": "bce", "params": {}}"#).unwrap();
    let classes = Tensor::<3, Int>::zeros([2, 4, 4], &device);
    match bce.forward(x.clone(), classes.clone()) {
        Err(Error::DType { input: "target", .. }) => {}
        other => panic!("bce with class indices: {:?}", other.map(|_| ())),
    }
    let ce = engine().loss_json(r#"{"loss": "cross_entropy", "params": {}}"#).unwrap();
    match ce.forward(x.clone(), Tensor::<4>::zeros([2, 3, 4, 4], &device)) {
        Err(Error::DType { input: "target", .. }) => {}
        other => panic!("cross_entropy with a float target: {:?}", other.map(|_| ())),
    }
    match ce.forward(x.clone(), Tensor::<3, Int>::zeros([2, 4, 5], &device)) {
        Err(Error::Segloss(segloss::Error::Shape { input: "target", .. })) => {}
        other => panic!("a target of the wrong shape: {:?}", other.map(|_| ())),
    }
    let per_pixel = engine().loss_json(r#"{"loss": "cross_entropy", "params": {"reduction": "none"}}"#).unwrap();
    let message = per_pixel.forward(x, classes).err().expect("reduction none is refused").to_string();
    assert!(message.contains("scalar"), "{message}");
}

/// Value and gradient of both sides on `x` (an f16 leaf): ours read in f16
/// with the gradient written in f16, theirs burn's autodiff on the same
/// values widened to f32. The gradient differs by segloss's rounding into
/// f16 (half a unit in the last place, 2^-11 of the largest) and burn's
/// rounding of its f32 gradient into x's f16 (as much again), so within
/// 2^-10 of the largest.
fn compare_f16<const D: usize>(x: &Tensor<D>, ours: Tensor<1>, theirs: Tensor<1>, what: &str) {
    let f32_of = |t: Tensor<D>| to_vec(t.cast(FloatDType::F32));
    let (v_ours, v_theirs) = (to_vec(ours.clone())[0], to_vec(theirs.clone())[0]);
    let g_ours = x.grad(&ours.backward()).expect("segloss's loss reaches the logits");
    assert_eq!(g_ours.dtype(), DType::F16, "{what}: the gradient is in the logits' type");
    let g_theirs = f32_of(x.grad(&theirs.backward()).expect("burn's loss reaches the logits"));
    let g_ours = f32_of(g_ours);
    assert!((v_ours - v_theirs).abs() <= 1e-5 * v_theirs.abs().max(1.0), "{what}: value {v_ours} against burn's {v_theirs}");
    let scale = g_theirs.iter().fold(0f32, |m, g| m.max(g.abs()));
    assert!(scale > 0.0, "{what}: burn's gradient is all zero");
    let worst = g_ours.iter().zip(&g_theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= scale * 2f32.powi(-10) + 1e-7, "{what}: gradient differs from burn's autodiff by {worst} (largest {scale})");
}

/// An engine training in f16: f16 logits (and dense targets) read in place,
/// the gradient handed to burn's autodiff in f16.
#[test]
fn f16_logits_give_an_f16_gradient() {
    let device = autodiff();
    let (n, c, h, w) = (2, 4, 9, 7);
    let x = constant_logits([n, c, h, w], 20, &device).cast(FloatDType::F16).require_grad();
    let t = labels(n * h * w, c, 21);
    let target = Tensor::<3, Int>::from_data(TensorData::new(t.clone(), [n, h, w]), &device);
    let g = one_hot(&t, [n, c, h, w], &device);
    let wide = || x.clone().cast(FloatDType::F32);
    let dice = engine().loss_json(r#"{"loss": "dice", "params": {}}"#).unwrap();
    compare_f16(&x, dice.forward(x.clone(), target.clone()).unwrap(), burn_dice(&wide(), &g), "dice on f16 logits");
    let ce = engine().loss_json(r#"{"loss": "cross_entropy", "params": {}}"#).unwrap();
    let theirs = -(log_softmax(wide(), 1) * g.clone()).sum() / (n * h * w) as f32;
    compare_f16(&x, ce.forward(x.clone(), target).unwrap(), theirs, "cross_entropy on f16 logits");

    let dims = [2, 1, 8, 12];
    let x = constant_logits(dims, 22, &device).cast(FloatDType::F16).require_grad();
    let y = Tensor::<4>::from_data(TensorData::new(uniform(2 * 8 * 12, 23), dims), &device).cast(FloatDType::F16);
    let bce = engine().loss_json(r#"{"loss": "bce", "params": {}}"#).unwrap();
    let (xw, yw) = (x.clone().cast(FloatDType::F32), y.clone().cast(FloatDType::F32));
    let theirs = (softplus(xw.clone(), 1.0) - yw * xw).mean();
    compare_f16(&x, bce.forward(x.clone(), y).unwrap(), theirs, "bce on f16 logits and targets");
}
