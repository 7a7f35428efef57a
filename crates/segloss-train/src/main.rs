//! The training run: one small segmentation network trained in burn with
//! each loss, on the seed article's two problems made on the fly, with the
//! losses computed by segloss on burn's own wgpu device.
//!
//! Writes, into `--out`: `panels-<problem>.png` (input, target and each
//! run's prediction on held-out images), `iou.png` (foreground IoU against
//! epoch for every run) and `results.md` (final IoU and Dice per run).


use std::path::PathBuf;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use segloss_burn::SeglossBurn;

use segloss_train::data::{Generator, Problem};
use segloss_train::metrics::{self, Scores};
use segloss_train::net::Net;
use segloss_train::report::{self, ProblemResult, RunResult, Settings};
use segloss_train::{runs, tensors};

#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Image side, in pixels.
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Epochs per run.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Training steps per epoch.
    #[arg(long, default_value_t = 15)]
    steps: usize,
    /// Images per training step.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Held-out images, scored after every epoch.
    #[arg(long, default_value_t = 16)]
    held_out: usize,
    /// Channels of the network's hidden layers.
    #[arg(long, default_value_t = 8)]
    width: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 5e-3)]
    lr: f64,
    /// Problems to train on (seagulls, wires).
    #[arg(long, value_delimiter = ',', default_value = "seagulls,wires")]
    problems: Vec<String>,
    /// Only the runs whose names contain one of these (all by default).
    #[arg(long, value_delimiter = ',')]
    runs: Vec<String>,
    /// The adapter to use: a case-insensitive part of its name (as WGPU_ADAPTER_NAME).
    #[arg(long)]
    adapter: Option<String>,
    /// Where the panels, the chart and the table go.
    #[arg(long, default_value = "docs/training")]
    out: PathBuf,
}

impl Args {
    fn settings(&self) -> Settings {
        Settings {
            size: self.size,
            epochs: self.epochs,
            steps: self.steps,
            batch: self.batch,
            held_out: self.held_out,
            width: self.width,
            lr: self.lr,
        }
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("segloss-train: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(adapter) = &args.adapter {
        // SAFETY: set before any thread exists; burn and wgpu read it when choosing the adapter.
        unsafe { std::env::set_var("WGPU_ADAPTER_NAME", adapter) };
    }
    let problems = args
        .problems
        .iter()
        .map(|p| match p.as_str() {
            "seagulls" => Ok(Problem::Seagulls),
            "wires" => Ok(Problem::Wires),
            other => Err(format!("unknown problem {other:?}: seagulls or wires")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&args.out)?;
    let started = Instant::now();
    let engine = SeglossBurn::init()?;
    println!("training on {} ({} × {} px, {} epochs × {} steps of {} images)", adapter_name(&engine), args.size, args.size, args.epochs, args.steps, args.batch);
    let bars = MultiProgress::new();
    let mut results = Vec::new();
    for problem in problems {
        results.push(train_problem(args, &engine, problem, &bars)?);
    }
    report::write(&args.out, &results, &args.settings())?;
    println!("wrote {} in {:.0} s", args.out.display(), started.elapsed().as_secs_f64());
    Ok(())
}

fn adapter_name(engine: &SeglossBurn) -> String {
    format!("{} ({:?})", engine.adapter_info().name, engine.adapter_info().backend)
}

fn train_problem(args: &Args, engine: &SeglossBurn, problem: Problem, bars: &MultiProgress) -> Result<ProblemResult, Box<dyn std::error::Error>> {
    let size = args.size;
    let held_out = Generator::new(problem, size, 1_000_003).batch(args.held_out);
    let frequency = metrics::class_frequency(&Generator::new(problem, size, 7).batch(64), problem.classes());
    let runs = runs::runs(engine, problem, &frequency, args.epochs)?;
    let device = engine.device().clone().autodiff();
    let eval_device = engine.device().clone();
    let (eval_images, _, _) = tensors(&held_out, size, &eval_device);
    let outputs = match problem {
        Problem::Seagulls => 1,
        Problem::Wires => problem.classes(),
    };
    let style = ProgressStyle::with_template("{prefix:>34} {bar:24} {pos:>4}/{len} {msg}").expect("a valid template");
    let mut results = Vec::new();
    for run in runs.iter().filter(|r| args.runs.is_empty() || args.runs.iter().any(|n| r.name.contains(n.as_str()))) {
        let bar = bars.add(ProgressBar::new((args.epochs * args.steps) as u64).with_style(style.clone()));
        bar.set_prefix(format!("{}: {}", problem.name(), run.name));
        // Every run starts from the same weights and sees the same batches.
        device.seed(42);
        let mut net = Net::new(args.width, outputs, &device);
        let mut optimizer = AdamConfig::new().init();
        let mut data = Generator::new(problem, size, 11);
        let mut epochs = Vec::new();
        let mut step_time = 0.0;
        for epoch in 0..args.epochs {
            let phase = run.phase(epoch);
            phase.start_epoch(epoch)?;
            let mut last = f32::NAN;
            let epoch_start = Instant::now();
            for step in 0..args.steps {
                let batch = data.batch(args.batch);
                let (images, dense, classes) = tensors(&batch, size, &device);
                let value = phase.value(net.forward(images), &dense, &classes)?;
                if step + 1 == args.steps {
                    last = value.clone().into_scalar::<f32>();
                }
                let grads = GradientsParams::from_grads(value.backward(), &net);
                net = optimizer.step(args.lr, net, grads);
                bar.inc(1);
            }
            device.sync()?;
            step_time += epoch_start.elapsed().as_secs_f64();
            let logits = net.valid().forward(eval_images.clone());
            let predicted = metrics::predict(logits);
            let scores = Scores::new(&predicted, &held_out.labels, problem.classes());
            bar.set_message(format!("loss {last:.4}  fg IoU {:.3}", scores.foreground_iou()));
            epochs.push(scores);
            if epoch + 1 == args.epochs {
                let pixels = size * size;
                let predictions = predicted.chunks(pixels).take(report::PANEL_ROWS).map(|c| c.to_vec()).collect();
                results.push(RunResult { name: run.name.clone(), epochs: std::mem::take(&mut epochs), predictions, ms_per_step: 1e3 * step_time / (args.epochs * args.steps) as f64 });
            }
        }
        bar.finish();
    }
    Ok(ProblemResult { problem, held_out, runs: results })
}
