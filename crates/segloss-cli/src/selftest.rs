//! `segloss selftest`: every implemented loss on random inputs, every mode,
//! several shapes, on the GPU against the float64 reference; one row per loss.
//! Then a non-finite round: for every loss, NaN, +Inf and −Inf in the logits
//! must be refused by the host path and flagged (status bit 31, NaN value)
//! on the engine path.

use std::collections::BTreeMap;
use std::time::Instant;

use segloss::golden::compare;
use segloss::tools::samples;
use segloss::tools::engine::{EngineRun, record_compound_once, record_once};
use segloss::{CompoundConfig, Error, GpuContext, HostData, HostInputs, HostTensor, LossConfig, Result, Runner, STATUS_NON_FINITE};

/// (loss configuration, logits shape): each mode on a 2D and a 3D or odd shape.
const CASES: &[(&str, &[usize])] = &[
    (r#"{"loss": "bce", "params": {}}"#, &[4, 1, 97, 131]),
    (r#"{"loss": "bce", "params": {"reduction": "sum", "pos_weight": 4.0}}"#, &[2, 3, 16, 33, 20]),
    (r#"{"loss": "bce", "params": {"reduction": "none", "alpha": 0.9}}"#, &[3, 2, 64, 64]),
    (r#"{"loss": "cross_entropy", "params": {}}"#, &[4, 7, 96, 80]),
    (r#"{"loss": "cross_entropy", "params": {"ignore_index": 0, "label_smoothing": 0.1}}"#, &[2, 5, 12, 40, 33]),
    (r#"{"loss": "cross_entropy", "params": {"reduction": "none", "class_weights": [0.2, 1, 2, 3]}}"#, &[3, 4, 50, 61]),
    (r#"{"loss": "focal", "params": {"mode": "binary"}}"#, &[4, 1, 128, 96]),
    (r#"{"loss": "focal", "params": {"mode": "multilabel", "gamma": 0.5, "alpha": null, "reduction": "sum"}}"#, &[2, 3, 16, 16, 16]),
    (r#"{"loss": "focal", "params": {"mode": "multiclass", "gamma": 3.0, "reduction": "none"}}"#, &[2, 6, 77, 65]),
    (r#"{"loss": "dice", "params": {}}"#, &[4, 5, 96, 80]),
    (r#"{"loss": "dice", "params": {"mode": "binary", "squared": true, "aggregate": "batch", "log_loss": true}}"#, &[2, 1, 16, 40, 33]),
    (r#"{"loss": "dice", "params": {"mode": "multilabel", "empty": "zero", "reduction": "none"}}"#, &[3, 3, 50, 61]),
    (r#"{"loss": "jaccard", "params": {"include_background": false, "ignore_index": 0}}"#, &[2, 4, 70, 70]),
    (r#"{"loss": "jaccard", "params": {"aggregate": "batch", "class_weights": [0.1, 1, 2]}}"#, &[2, 3, 12, 30, 30]),
    (r#"{"loss": "tversky", "params": {"alpha": 0.3, "beta": 0.7}}"#, &[3, 4, 64, 64]),
    (r#"{"loss": "tversky", "params": {"mode": "binary", "alpha": 0.7, "beta": 0.3, "reduction": "sum"}}"#, &[2, 1, 8, 32, 32]),
    (r#"{"loss": "generalized_dice", "params": {}}"#, &[4, 5, 96, 80]),
    (r#"{"loss": "generalized_dice", "params": {"weight_type": "simple", "aggregate": "batch"}}"#, &[2, 3, 10, 30, 30]),
    (r#"{"loss": "box_iou", "params": {"kind": "giou"}}"#, &[5000, 4]),
    (r#"{"loss": "box_iou", "params": {"kind": "diou", "reduction": "sum"}}"#, &[777, 4]),
    (r#"{"loss": "box_iou", "params": {"kind": "ciou", "reduction": "none"}}"#, &[1000, 4]),
    (r#"{"loss": "mask_giou", "params": {}}"#, &[64, 56, 56]),
    (r#"{"loss": "mask_giou", "params": {"enclosing": "bounding_box", "threshold": 0.3, "reduction": "none"}}"#, &[16, 100, 37]),
    (r#"{"loss": "lovasz_softmax", "params": {}}"#, &[4, 5, 96, 80]),
    (r#"{"loss": "lovasz_softmax", "params": {"classes": "all", "per_image": true, "ignore_index": 0}}"#, &[2, 4, 12, 40, 33]),
    (r#"{"loss": "lovasz_hinge", "params": {"per_image": true}}"#, &[4, 1, 97, 131]),
    (r#"{"loss": "boundary", "params": {}}"#, &[2, 4, 48, 40]),
    (r#"{"loss": "boundary", "params": {"classes": [1, 2], "spacing": [0.7, 1.3, 1.0], "reduction": "sum"}}"#, &[1, 3, 12, 20, 18]),
    (r#"{"loss": "hausdorff_dt", "params": {}}"#, &[2, 4, 48, 40]),
    (r#"{"loss": "hausdorff_dt", "params": {"mode": "multilabel", "spacing": [0.7, 1.3, 1.0], "log": true, "alpha": 1.5}}"#, &[1, 3, 12, 20, 18]),
    (r#"{"loss": "hausdorff_dt", "params": {"mode": "binary", "aggregate": "batch", "reduction": "none"}}"#, &[3, 1, 50, 61]),
    (r#"{"loss": "mcc", "params": {}}"#, &[4, 5, 96, 80]),
    (r#"{"loss": "mcc", "params": {"mode": "multilabel", "aggregate": "batch", "include_background": false, "reduction": "none"}}"#, &[2, 3, 12, 30, 30]),
    (r#"{"loss": "mcc", "params": {"mode": "binary", "aggregate": "batch", "eps": 1e-5, "smooth_dr": 0.0}}"#, &[4, 1, 128, 96]),
    (r#"{"loss": "cl_dice", "params": {}}"#, &[2, 4, 48, 40]),
    (r#"{"loss": "cl_dice", "params": {"mode": "multilabel", "iterations": 5, "alpha": 0.5, "include_background": false, "reduction": "none"}}"#, &[2, 3, 12, 20, 18]),
    (r#"{"loss": "hausdorff_er", "params": {}}"#, &[2, 4, 48, 40]),
    (r#"{"loss": "hausdorff_er", "params": {"mode": "binary", "alpha": 1.5, "k": 4, "reduction": "none"}}"#, &[2, 1, 12, 20, 18]),
    (r#"{"loss": "unified_focal", "params": {}}"#, &[4, 1, 128, 96]),
    (r#"{"loss": "unified_focal", "params": {"mode": "multiclass", "weight": 0.3, "delta": 0.6, "gamma": 0.75}}"#, &[2, 2, 12, 30, 30]),
];

#[derive(Default)]
struct Row {
    cases: usize,
    worst: f64,
    gpu_ms: f64,
    cpu_ms: f64,
}

pub fn run(seed: u64) -> Result<bool> {
    let runner = Runner::new(GpuContext::new()?);
    println!("device: {}", runner.context().adapter_name());
    let mut rows: BTreeMap<&'static str, Row> = BTreeMap::new();
    for (i, (json, shape)) in CASES.iter().enumerate() {
        let config = LossConfig::from_json(json)?;
        let (logits, target) = samples::inputs(&config, shape, &mut samples::rng(seed + i as u64))?;
        let inputs = HostInputs { logits: &logits, target: &target, weight: None, distance: None };
        runner.compute(&config, inputs)?; // compiles the pipelines, fills the pools
        let t = Instant::now();
        let gpu = runner.compute(&config, inputs)?;
        let gpu_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let reference = config.reference(&inputs)?;
        let cpu_ms = t.elapsed().as_secs_f64() * 1e3;
        let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let worst = compare("value", &widen(&gpu.value), &reference.value, 1e-4, 1e-6, false)
            .ratio
            .max(compare("grad", &widen(&gpu.grad), &reference.grad, 1e-4, 1e-6, true).ratio);
        let row = rows.entry(config.name()).or_default();
        row.cases += 1;
        row.worst = row.worst.max(worst);
        row.gpu_ms += gpu_ms;
        row.cpu_ms += cpu_ms;
    }
    println!("{:<16} {:>5} {:>22} {:>12} {:>12}  result", "loss", "cases", "worst error/tolerance", "GPU ms", "CPU f64 ms");
    let mut ok = true;
    for (loss, row) in &rows {
        let pass = row.worst <= 1.0;
        ok &= pass;
        println!(
            "{loss:<16} {:>5} {:>22.4} {:>12.1} {:>12.1}  {}",
            row.cases,
            row.worst,
            row.gpu_ms,
            row.cpu_ms,
            if pass { "PASS" } else { "FAIL" }
        );
    }
    println!("(tolerance: 1e-6 + 1e-4·|reference|; GPU time is upload, run and read back of one call)");
    println!("{} passed, {} failed", rows.values().filter(|r| r.worst <= 1.0).count(), rows.values().filter(|r| r.worst > 1.0).count());
    Ok(non_finite_round(&runner, seed)? && ok)
}

/// For the first case of every loss, and a compound: NaN, +Inf and −Inf at
/// one logit. The host path must refuse each, naming it; the engine path must
/// set STATUS_NON_FINITE and write a NaN value (some element of it for "none").
fn non_finite_round(runner: &Runner, seed: u64) -> Result<bool> {
    println!("\nnon-finite round: NaN, +Inf, -Inf at one logit");
    println!("{:<16} {:>14} {:>22}  result", "loss", "host refused", "engine flagged, NaN");
    let mut seen = Vec::new();
    let mut ok = true;
    for (i, (json, shape)) in CASES.iter().enumerate() {
        let config = LossConfig::from_json(json)?;
        if seen.contains(&config.name()) {
            continue;
        }
        seen.push(config.name());
        let (logits, target) = samples::inputs(&config, shape, &mut samples::rng(seed + i as u64))?;
        let name = config.input_names()[0];
        ok &= poisoned_logits(config.name(), name, &logits, &target, |inputs, needle| {
            let names = |e: Error| e.to_string().contains(needle);
            let refused = runner.compute(&config, *inputs).err().is_some_and(names) && config.reference(inputs).err().is_some_and(names);
            Ok((refused, record_once(runner.context(), &config, inputs)?))
        })?;
    }
    // A compound loss, dice + 0.01·boundary, refuses and flags like its terms.
    let dice = LossConfig::from_json(r#"{"loss": "dice", "params": {}}"#)?;
    let boundary = LossConfig::from_json(r#"{"loss": "boundary", "params": {}}"#)?;
    let compound = CompoundConfig::new(vec![(1.0, dice), (0.01, boundary.clone())])?;
    let (logits, target) = samples::inputs(&boundary, &[2, 4, 48, 40], &mut samples::rng(seed))?;
    ok &= poisoned_logits("compound", "logits", &logits, &target, |inputs, needle| {
        let names = |e: Error| e.to_string().contains(needle);
        let refused = runner.compute_compound(&compound, *inputs).err().is_some_and(names) && compound.reference(inputs).err().is_some_and(names);
        Ok((refused, record_compound_once(runner.context(), &compound, inputs)?))
    })?;
    Ok(ok)
}

/// One row of the non-finite round: `logits` with NaN, +Inf and −Inf in turn
/// at its middle element, through `check` (whether the host path refused it
/// with an error holding the needle, and the engine's run). Prints the row.
fn poisoned_logits(
    loss: &str,
    name: &str,
    logits: &HostTensor,
    target: &HostTensor,
    check: impl Fn(&HostInputs<'_>, &str) -> Result<(bool, EngineRun)>,
) -> Result<bool> {
    let (mut refused, mut flagged) = (0, 0);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let HostData::F32(data) = &logits.data else { unreachable!("logits are f32") };
        let k = data.len() / 2;
        let mut data = data.clone();
        data[k] = bad;
        let x = HostTensor::f32(&logits.shape, data)?;
        let (host, run) = check(&HostInputs::new(&x, target), &format!("{name}[{k}] = {bad} "))?;
        refused += host as usize;
        flagged += (run.status & STATUS_NON_FINITE != 0 && run.value.iter().any(|v| v.is_nan())) as usize;
    }
    let pass = refused == 3 && flagged == 3;
    println!("{loss:<16} {refused:>12}/3 {flagged:>20}/3  {}", if pass { "PASS" } else { "FAIL" });
    Ok(pass)
}
