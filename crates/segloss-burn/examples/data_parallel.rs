//! Data-parallel training with segloss in burn: one step of three losses on
//! two devices, each holding half of the batch, against the same step on
//! one device holding all of it.
//!
//! Each device computes its slice's statistics
//! ([`ShardedBurnLoss::statistics`]); burn's `Tensor::all_reduce` sums them
//! over the devices (emulated on wgpu, NCCL on CUDA); each device's forward
//! on the sums is the global batch's loss, and its backward the device's
//! part of the global gradient. Here the two devices are two wgpu devices
//! opened on one adapter (lavapipe in CI).
//!
//! The losses are the ones a per-device computation gets wrong: Dice over
//! the batch (its I, P, G are sums over every image), cross-entropy's
//! weighted mean with ignored pixels (it divides by Σ w[y] of the whole
//! batch), and generalized Dice over the batch (its class weights come from
//! the whole batch's target); and a compound of cross-entropy and Dice.
//!
//! `cargo run -p segloss-burn --example data_parallel`; `cargo test` runs it too.

use burn::tensor::distributed::ReduceOperation;
use burn::tensor::{Device, Int, Tensor, TensorData};
use segloss::tools::samples;
use segloss_burn::segloss::{CompoundConfig, LossConfig};
use segloss_burn::{BurnLoss, Result, SeglossBurn, ShardedBurnLoss};

const LOSSES: &[&str] = &[
    r#"{"loss": "dice", "params": {"aggregate": "batch"}}"#,
    r#"{"loss": "cross_entropy", "params": {"class_weights": [0.5, 1.0, 2.0], "ignore_index": 255}}"#,
    r#"{"loss": "generalized_dice", "params": {"aggregate": "batch"}}"#,
];

const BATCH: [usize; 4] = [4, 3, 24, 24];

/// And a compound of two of them, as a training run would use: 0.5·cross-entropy + Dice over the batch.
const COMPOUND: [(f64, &str); 2] = [
    (0.5, r#"{"loss": "cross_entropy", "params": {"ignore_index": 255}}"#),
    (1.0, r#"{"loss": "dice", "params": {"aggregate": "batch", "ignore_index": 255}}"#),
];

/// A loss of the demonstration: how to make it on one engine, whole and sharded.
struct Spec {
    name: &'static str,
    whole: Box<dyn Fn(&SeglossBurn) -> Result<BurnLoss>>,
    sharded: Box<dyn Fn(&SeglossBurn) -> Result<ShardedBurnLoss>>,
    /// Whether it takes the ignore label 255 (else the ignored pixels become class 0).
    ignores: bool,
}

fn specs() -> Result<Vec<Spec>> {
    let mut specs = Vec::new();
    for json in LOSSES {
        let config = LossConfig::from_json(json)?;
        let (c1, c2) = (config.clone(), config.clone());
        specs.push(Spec {
            name: config.name(),
            whole: Box::new(move |e| e.loss(c1.clone())),
            sharded: Box::new(move |e| e.sharded_loss(c2.clone())),
            ignores: json.contains("ignore_index"),
        });
    }
    let terms = COMPOUND.iter().map(|(w, json)| Ok((*w, LossConfig::from_json(json)?))).collect::<Result<Vec<_>>>()?;
    let compound = CompoundConfig::new(terms)?;
    let (c1, c2) = (compound.clone(), compound);
    specs.push(Spec {
        name: "0.5·ce + dice",
        whole: Box::new(move |e| e.compound(c1.clone())),
        sharded: Box::new(move |e| e.sharded_compound(c2.clone())),
        ignores: true,
    });
    Ok(specs)
}

/// One loss's step, on one device and on two.
struct Step {
    loss: &'static str,
    single: f32,
    devices: [f32; 2],
    /// How far the two devices' gradients, put together, are from the
    /// single device's, over the largest gradient.
    grad_error: f32,
    /// The loss computed on each device alone, as without segloss's statistics.
    naive: [f32; 2],
}

fn main() -> Result<()> {
    let steps = run()?;
    println!("{:<18} {:>12} {:>12} {:>12} {:>14} {:>24}", "loss", "one device", "device 0", "device 1", "grad error", "each device alone (naive)");
    for s in &steps {
        println!(
            "{:<18} {:>12.7} {:>12.7} {:>12.7} {:>14.2e} {:>12.7} {:>11.7}",
            s.loss, s.single, s.devices[0], s.devices[1], s.grad_error, s.naive[0], s.naive[1]
        );
    }
    match check(&steps) {
        Ok(()) => {
            println!("the two devices give the single device's loss and gradient");
            Ok(())
        }
        Err(why) => {
            eprintln!("data_parallel: {why}");
            std::process::exit(1);
        }
    }
}

/// The step of every loss in [`LOSSES`].
fn run() -> Result<Vec<Step>> {
    // Two wgpu devices on one adapter: two burn devices, each shared with segloss.
    let engines = [SeglossBurn::on_own_device("device 0")?, SeglossBurn::on_own_device("device 1")?];
    let [n, c, h, w] = BATCH;
    let mut rng = samples::rng(1);
    let logits = samples::logits(&mut rng, &BATCH, 3.0).as_f32("logits")?.to_vec();
    // Blob-shaped labels, with a tenth of the pixels ignored (255).
    let labels: Vec<i32> = samples::blobs(&mut rng, &[n, h, w], c).into_iter().enumerate().map(|(i, l)| if i % 10 == 3 { 255 } else { l }).collect();
    let half = n / 2;
    let slice = |d: usize, device: &Device| {
        let (a, b) = (d * half, (d + 1) * half);
        let x = Tensor::<4>::from_data(TensorData::new(logits[a * c * h * w..b * c * h * w].to_vec(), [b - a, c, h, w]), device).require_grad();
        let y = Tensor::<3, Int>::from_data(TensorData::new(labels[a * h * w..b * h * w].to_vec(), [b - a, h, w]), device);
        (x, y)
    };
    let mut steps = Vec::new();
    for spec in specs()? {
        // A loss without an ignore value takes labels in [0, C): its ignored pixels become class 0.
        let labels_for = |y: Tensor<3, Int>| if spec.ignores { y } else { y.clone().mask_fill(y.equal_elem(255), 0) };

        // The whole batch on device 0.
        let device = engines[0].device().clone().autodiff();
        let x = Tensor::<4>::from_data(TensorData::new(logits.clone(), BATCH), &device).require_grad();
        let y = labels_for(Tensor::<3, Int>::from_data(TensorData::new(labels.clone(), [n, h, w]), &device));
        let value = (spec.whole)(&engines[0])?.forward(x.clone(), y)?;
        let single = to_vec(value.clone())[0];
        let single_grad = to_vec(x.grad(&value.backward()).expect("the logits' gradient"));

        // Half of it on each device.
        let slices: Vec<_> = engines.iter().enumerate().map(|(d, e)| slice(d, &e.device().clone().autodiff())).collect();
        let slices: Vec<_> = slices.into_iter().map(|(x, y)| (x, labels_for(y))).collect();
        let losses = [(spec.sharded)(&engines[0])?, (spec.sharded)(&engines[1])?];
        let stats = losses.iter().zip(&slices).map(|(l, (x, y))| l.statistics(x.clone(), y.clone())).collect::<Result<Vec<_>>>()?;
        let sums = Tensor::all_reduce(stats, ReduceOperation::Sum);
        let (mut devices, mut grad, mut naive) = ([0.0; 2], Vec::new(), [0.0; 2]);
        for (d, ((loss, (x, y)), sum)) in losses.iter().zip(&slices).zip(sums).enumerate() {
            let value = loss.forward(x.clone(), y.clone(), sum)?;
            devices[d] = to_vec(value.clone())[0];
            grad.extend(to_vec(x.grad(&value.backward()).expect("the slice's gradient")));
            naive[d] = to_vec((spec.whole)(&engines[d])?.forward(x.clone().detach(), y.clone())?)[0];
        }
        let largest = single_grad.iter().fold(0f32, |m, g| m.max(g.abs()));
        let grad_error = grad.iter().zip(&single_grad).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / largest;
        steps.push(Step { loss: spec.name, single, devices, grad_error, naive });
    }
    Ok(steps)
}

/// Both devices' values within f32 rounding of the single device's, and
/// their gradients put together too (1e-5 of the largest).
fn check(steps: &[Step]) -> std::result::Result<(), String> {
    for s in steps {
        for (d, v) in s.devices.iter().enumerate() {
            if (v - s.single).abs() > 1e-5 * s.single.abs().max(1e-3) {
                return Err(format!("{}: device {d}'s loss {v} is not the single device's {}", s.loss, s.single));
            }
        }
        if s.grad_error.is_nan() || s.grad_error > 1e-5 {
            return Err(format!("{}: the devices' gradients are {:.2e} of the largest away from the single device's", s.loss, s.grad_error));
        }
    }
    Ok(())
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 data")
}

#[test]
fn two_devices_give_the_single_device_loss_and_gradient() {
    let steps = run().expect("the step runs");
    check(&steps).unwrap();
    // And the point of it: each device alone gets a different loss.
    assert!(steps.iter().any(|s| s.naive.iter().any(|v| (v - s.single).abs() > 1e-3)), "the naive per-device losses all agree");
}
