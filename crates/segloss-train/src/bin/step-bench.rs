//! Times a training step with each loss through segloss-burn against the
//! same loss written with burn's tensor ops, on one device in one run,
//! interleaved (segloss, burn, segloss, burn, …) so that the machine's load
//! falls on both alike. Prints a markdown table for BENCHMARKS.md.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor};
use clap::Parser;
use segloss_burn::{BurnLoss, SeglossBurn};
use segloss_train::data::{Generator, Problem};
use segloss_train::net::Net;
use segloss_train::{burn_ops, tensors};

#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Image side, in pixels.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Images per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Timed steps per side (after 3 untimed ones).
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Channels of the network's hidden layers.
    #[arg(long, default_value_t = 16)]
    width: usize,
}

type BurnLossFn = fn(Tensor<4>, &Tensor<4>, &Tensor<3, Int>) -> Tensor<1>;

struct Case {
    name: &'static str,
    problem: Problem,
    outputs: usize,
    segloss: BurnLoss,
    dense_target: bool,
    burn: BurnLossFn,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let engine = SeglossBurn::init()?;
    let device = engine.device().clone().autodiff();
    let cases = [
        Case { name: "bce", problem: Problem::Seagulls, outputs: 1, segloss: engine.loss_json(r#"{"loss": "bce", "params": {}}"#)?, dense_target: true, burn: |x, y, _| burn_ops::bce(x, y.clone()) },
        Case {
            name: "cross_entropy",
            problem: Problem::Wires,
            outputs: 4,
            segloss: engine.loss_json(r#"{"loss": "cross_entropy", "params": {}}"#)?,
            dense_target: false,
            burn: |x, _, t| burn_ops::cross_entropy(x, t.clone()),
        },
        Case { name: "dice", problem: Problem::Wires, outputs: 4, segloss: engine.loss_json(r#"{"loss": "dice", "params": {}}"#)?, dense_target: false, burn: |x, _, t| burn_ops::dice(x, t.clone()) },
    ];
    let adapter = format!("{} ({:?})", engine.adapter_info().name, engine.adapter_info().backend);
    println!("{adapter}: {} images of {} × {} px a step, {} hidden channels, {} timed steps per side, interleaved\n", args.batch, args.size, args.size, args.width, args.iters);
    println!("| loss | what is timed | segloss-burn ms | burn tensor ops ms | burn / segloss |");
    println!("|---|---|---:|---:|---:|");
    for case in &cases {
        let batch = Generator::new(case.problem, args.size, 5).batch(args.batch);
        let (images, dense, classes) = tensors(&batch, args.size, &device);
        // The loss alone: its forward and backward on fixed logits.
        let logits = Net::new(args.width, case.outputs, &device).forward(images.clone()).detach();
        let loss_only = |use_segloss: bool| {
            let x = logits.clone().require_grad();
            let value = if use_segloss { forward(case, x.clone(), &dense, &classes) } else { (case.burn)(x.clone(), &dense, &classes) };
            let g = x.grad(&value.backward()).expect("logits reach the loss");
            drop(g);
        };
        let [a, b] = interleaved(&device, args.iters, loss_only);
        println!("| {} | the loss: forward + backward | {a:.2} | {b:.2} | {:.2} |", case.name, b / a);
        // A whole training step: network forward, loss, backward, Adam.
        let mut nets = [Net::new(args.width, case.outputs, &device), Net::new(args.width, case.outputs, &device)];
        let mut optimizers = [AdamConfig::new().init(), AdamConfig::new().init()];
        let step = |use_segloss: bool, nets: &mut [Net; 2], optimizers: &mut [burn::optim::ModuleOptimizer; 2]| {
            let side = (!use_segloss) as usize;
            let net = nets[side].clone();
            let out = net.forward(images.clone());
            let value = if use_segloss { forward(case, out, &dense, &classes) } else { (case.burn)(out, &dense, &classes) };
            let grads = GradientsParams::from_grads(value.backward(), &net);
            nets[side] = optimizers[side].step(1e-3, net, grads);
        };
        let [a, b] = interleaved(&device, args.iters, |s| step(s, &mut nets, &mut optimizers));
        println!("| {} | a training step (network, loss, backward, Adam) | {a:.2} | {b:.2} | {:.2} |", case.name, b / a);
    }
    Ok(())
}

fn forward(case: &Case, logits: Tensor<4>, dense: &Tensor<4>, classes: &Tensor<3, Int>) -> Tensor<1> {
    let value = if case.dense_target { case.segloss.forward(logits, dense.clone()) } else { case.segloss.forward(logits, classes.clone()) };
    value.unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

/// Median milliseconds of `f(true)` (segloss) and `f(false)` (burn), taken
/// in turns, each finished on the device before the clock stops.
fn interleaved(device: &Device, iters: usize, mut f: impl FnMut(bool)) -> [f64; 2] {
    let mut times = [Vec::new(), Vec::new()];
    for i in 0..iters + 3 {
        for (side, use_segloss) in [(0, true), (1, false)] {
            device.sync().expect("device");
            let start = Instant::now();
            f(use_segloss);
            device.sync().expect("device");
            if i >= 3 {
                times[side].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    times.map(|mut t| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    })
}
