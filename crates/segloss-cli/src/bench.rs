//! `segloss bench`: each implemented loss (value and gradient) on the
//! workloads of `shared/device/anchor_bench.py`, at the same shapes, timed on
//! the GPU beside a plain copy kernel moving the same bytes.

use std::time::Instant;

use segloss::primitives::distance::{DistanceMode, DistancePlan};
use segloss::primitives::sort::SortPlan;
use segloss::tools::copy::copy_pipeline;
use segloss::tools::jump_flood::measure_jump_flood;
use segloss::tools::samples;
use segloss::{DType, GpuContext, GpuTensor, HostInputs, HostTensor, LossConfig, LossInputs, LossOutputs, PlanOptions, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Workloads to run (comma-separated names); all by default.
    #[arg(long, value_delimiter = ',')]
    workload: Vec<String>,
    /// Losses to run on them (comma-separated names as printed); all by default.
    #[arg(long, value_delimiter = ',')]
    loss: Vec<String>,
    /// Scales each spatial extent (and the box count), as anchor_bench.py's --scale.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Timed iterations per (workload, loss); the median is reported.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    iters: u64,
    /// One JSON object per line, to join with anchor_bench.py's output.
    #[arg(long)]
    json: bool,
    /// The losses' floating inputs and gradient in f32, f16 or bf16 (GB/s
    /// and `vs copy` count the bytes of these types).
    #[arg(long, value_parser = crate::parse_dtype, default_value = "f32")]
    dtype: DType,
    /// Class-index targets in i32, u8, u16 or i64.
    #[arg(long, value_parser = crate::parse_dtype, default_value = "i32")]
    labels: DType,
    /// Time each loss as K data-parallel devices would record it, all on
    /// this one device: the batch in min(K, N) slices, every slice's
    /// statistics, then every slice's finish on the summed statistics
    /// (summed once before the timing: the all-reduce is the engine's).
    /// Losses that do not split, sorts and transforms are left out.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    shards: Option<u64>,
}

/// A workload of anchor_bench.py and the losses the anchors run on it, with
/// the same configuration (SPEC.md names).
struct Workload {
    name: &'static str,
    shape: Vec<usize>,
    losses: &'static [(&'static str, &'static str)],
}

/// The losses anchor_bench.py runs on its multiclass workloads.
/// The distance transform alone is named `distance`, as in anchor_bench.py;
/// the jump-flooding variants carry a suffix and print their error against exact.
const MULTICLASS: &[(&str, &str)] = &[
    ("cross_entropy", r#"{"loss": "cross_entropy", "params": {}}"#),
    ("focal", r#"{"loss": "focal", "params": {"mode": "multiclass", "gamma": 2.0}}"#),
    ("dice", r#"{"loss": "dice", "params": {"mode": "multiclass"}}"#),
    ("generalized_dice", r#"{"loss": "generalized_dice", "params": {"mode": "multiclass"}}"#),
    ("boundary", r#"{"loss": "boundary", "params": {}}"#),
    ("boundary_jump_flood", r#"{"loss": "boundary", "params": {"transform": "jump_flood"}}"#),
    ("distance", "exact"),
    ("distance_jump_flood", "jump_flood"),
    // Both distance fields of the prediction every step, the target's too (as MONAI) or given.
    ("hausdorff_dt", r#"{"loss": "hausdorff_dt", "params": {}}"#),
    ("hausdorff_dt_maps_given", r#"{"loss": "hausdorff_dt", "params": {}}"#),
    ("mcc", r#"{"loss": "mcc", "params": {"mode": "multiclass"}}"#),
    ("hausdorff_er", r#"{"loss": "hausdorff_er", "params": {}}"#),
    ("cl_dice", r#"{"loss": "cl_dice", "params": {}}"#),
];

/// 2D multiclass adds the Lovász softmax (anchor_bench.py runs it on 2D only).
const SEMANTIC: &[(&str, &str)] = &[
    MULTICLASS[0],
    MULTICLASS[1],
    MULTICLASS[2],
    MULTICLASS[3],
    // Dice over the batch (smp's DiceLoss aggregates so): the groups a
    // data-parallel plan shares (`--shards`).
    ("dice_batch", r#"{"loss": "dice", "params": {"mode": "multiclass", "aggregate": "batch"}}"#),
    ("lovasz_softmax", r#"{"loss": "lovasz_softmax", "params": {}}"#),
    MULTICLASS[4],
    MULTICLASS[5],
    MULTICLASS[6],
    MULTICLASS[7],
    MULTICLASS[8],
    MULTICLASS[9],
    MULTICLASS[10],
    MULTICLASS[11],
    MULTICLASS[12],
];

fn workloads(scale: f64) -> Vec<Workload> {
    let s = |v: usize| ((v as f64 * scale).round() as usize).max(1);
    vec![
        Workload {
            name: "binary-16x512",
            shape: vec![16, 1, s(512), s(512)],
            losses: &[
                ("bce", r#"{"loss": "bce", "params": {}}"#),
                ("focal", r#"{"loss": "focal", "params": {"mode": "binary", "gamma": 2.0, "alpha": 0.25}}"#),
                ("dice", r#"{"loss": "dice", "params": {"mode": "binary"}}"#),
                ("lovasz_hinge", r#"{"loss": "lovasz_hinge", "params": {}}"#),
                ("unified_focal", r#"{"loss": "unified_focal", "params": {"mode": "binary"}}"#),
            ],
        },
        Workload { name: "semantic-8x19x256", shape: vec![8, 19, s(256), s(256)], losses: SEMANTIC },
        Workload { name: "volume-2x4x64x128", shape: vec![2, 4, s(64), s(128), s(128)], losses: MULTICLASS },
        Workload {
            name: "boxes-100k",
            shape: vec![s(100_000), 4],
            losses: &[("box_iou", r#"{"loss": "box_iou", "params": {"kind": "giou"}}"#)],
        },
        Workload {
            name: "instances-256x112",
            shape: vec![256, s(112), s(112)],
            losses: &[("mask_giou", r#"{"loss": "mask_giou", "params": {"enclosing": "convex_hull"}}"#)],
        },
        // The key-value sort alone, in keys per second (issues 6 and 10).
        Workload { name: "sort-2^20", shape: vec![s(1 << 20)], losses: &[("sort", "")] },
        Workload { name: "sort-2^24", shape: vec![s(1 << 24)], losses: &[("sort", "")] },
    ]
}

/// Median of `iters` timings of `record`, in ms: GPU timestamps around the
/// recorded work where the device has them, else wall clock around a
/// submitted and completed encoder.
fn time_gpu(ctx: &GpuContext, iters: u64, record: &dyn Fn(&mut wgpu::CommandEncoder) -> Result<()>) -> Result<(f64, &'static str)> {
    let inside = ctx.device().features().contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);
    let queries = inside.then(|| {
        let set = ctx.device().create_query_set(&wgpu::QuerySetDescriptor { label: Some("bench"), ty: wgpu::QueryType::Timestamp, count: 2 });
        let resolve = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("bench timestamps"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = GpuTensor::zeros(ctx, &[4], DType::F32)?;
        Ok::<_, segloss::Error>((set, resolve, read))
    });
    let queries = queries.transpose()?;
    let mut times = Vec::new();
    for i in 0..iters + 3 {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        if let Some((set, _, _)) = &queries {
            encoder.write_timestamp(set, 0);
        }
        record(&mut encoder)?;
        if let Some((set, resolve, read)) = &queries {
            encoder.write_timestamp(set, 1);
            encoder.resolve_query_set(set, 0..2, resolve, 0);
            encoder.copy_buffer_to_buffer(resolve, 0, read.buffer(), 0, 16);
        }
        let t = Instant::now();
        ctx.queue().submit([encoder.finish()]);
        ctx.wait_idle()?;
        let wall = t.elapsed().as_secs_f64() * 1e3;
        let ms = match &queries {
            Some((_, _, read)) => {
                let words: Vec<u64> = bytemuck::pod_collect_to_vec(&bytemuck::cast_slice::<f32, u8>(&read.read_f32(ctx)?).to_vec());
                words[1].saturating_sub(words[0]) as f64 * ctx.queue().get_timestamp_period() as f64 / 1e6
            }
            None => wall,
        };
        if i >= 3 {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], if queries.is_some() { "timestamp" } else { "wall" }))
}

/// The time of a plain copy kernel moving `bytes` (half read, half written).
fn copy_ms(ctx: &GpuContext, bytes: u64, iters: u64) -> Result<f64> {
    let half = (bytes / 2).next_multiple_of(16).min(ctx.binding_limit() / 16 * 16);
    let passes = (bytes / 2).div_ceil(half);
    let src = GpuTensor::zeros(ctx, &[(half / 4) as usize], DType::F32)?;
    let dst = GpuTensor::zeros(ctx, &[(half / 4) as usize], DType::F32)?;
    let pipeline = copy_pipeline(ctx)?;
    let group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("copy"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: src.buffer().as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: dst.buffer().as_entire_binding() },
        ],
    });
    let groups = (half / 16).div_ceil(256) as u32;
    let (x, y) = if groups <= 65_535 { (groups, 1) } else { (65_535, groups.div_ceil(65_535)) };
    let (ms, _) = time_gpu(ctx, iters, &|encoder| {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &group, &[]);
        for _ in 0..passes {
            pass.dispatch_workgroups(x, y, 1);
        }
        Ok(())
    })?;
    Ok(ms)
}

/// One timed thing: what it is called in the output, the bytes it must move,
/// how to record it, and anything else worth printing beside its time.
struct Case<'a> {
    loss: &'static str,
    bytes: u64,
    record: Box<dyn Fn(&mut wgpu::CommandEncoder) -> Result<()> + 'a>,
    note: Option<(String, serde_json::Value)>,
}

/// A loss on its workload's inputs, planned once, inputs resident on the GPU.
/// With `maps_given`, the target's distance maps are the plan's own from a
/// first recording, passed back in as a data loader would keep them.
fn loss_case<'a>(ctx: &'a GpuContext, loss: &'static str, json: &str, shape: &[usize], maps_given: bool, args: &Args) -> Result<Case<'a>> {
    let config = LossConfig::from_json(json)?;
    let (logits, target) = samples::inputs(&config, shape, &mut samples::rng(0))?;
    let (logits, target) = (logits.to_dtype(args.dtype)?, target.to_dtype(if target.dtype().is_float() { args.dtype } else { args.labels })?);
    let (x, y) = (GpuTensor::from_host(ctx, &logits)?, GpuTensor::from_host(ctx, &target)?);
    let shapes = HostInputs::new(&logits, &target).shapes();
    let plan = config.plan(ctx, &shapes, PlanOptions::default())?;
    let value = GpuTensor::zeros(ctx, plan.value_shape(), DType::F32)?;
    let grad = GpuTensor::zeros(ctx, shape, args.dtype)?;
    let maps = match maps_given {
        false => None,
        true => {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            plan.record(&mut encoder, LossInputs::new(&x, &y), LossOutputs::new(&value, &grad))?;
            let own = plan.extra("distance").ok_or_else(|| segloss::Error::Input { scope: "bench", message: format!("{loss} takes no distance maps") })?;
            let maps = GpuTensor::zeros(ctx, own.shape(), DType::F32)?;
            encoder.copy_buffer_to_buffer(own.buffer(), own.offset(), maps.buffer(), maps.offset(), own.byte_len());
            ctx.queue().submit([encoder.finish()]);
            Some(maps)
        }
    };
    // The bytes actually moved: the conversions' copies too, where the plan converts.
    let bytes = config.min_bytes(&shapes) + plan.conversion_bytes();
    Ok(Case {
        loss,
        note: None,
        bytes,
        record: Box::new(move |encoder| {
            plan.record(
                encoder,
                LossInputs { logits: &x, target: &y, weight: None, distance: maps.as_ref() },
                LossOutputs { value: &value, grad: Some(&grad) },
            )
        }),
    })
}

/// A loss on its workload's inputs as `shards` data-parallel devices record
/// it (`--shards`), all on `ctx`: each slice's statistics, then each slice's
/// finish on the sum of them, which is computed once before the timing.
fn sharded_case<'a>(ctx: &'a GpuContext, loss: &'static str, json: &str, shape: &[usize], shards: usize, args: &Args) -> Result<Case<'a>> {
    let config = LossConfig::from_json(json)?;
    let (logits, target) = samples::inputs(&config, shape, &mut samples::rng(0))?;
    let (logits, target) = (logits.to_dtype(args.dtype)?, target.to_dtype(if target.dtype().is_float() { args.dtype } else { args.labels })?);
    let n = shape[0];
    let k = shards.clamp(1, n);
    let mut slices = Vec::with_capacity(k);
    for i in 0..k {
        let rows = i * n / k..(i + 1) * n / k;
        let (x, y) = (logits.rows(rows.clone()), target.rows(rows));
        let plan = config.plan_sharded(ctx, &HostInputs::new(&x, &y).shapes(), PlanOptions::default())?;
        let stats = GpuTensor::zeros(ctx, &[plan.statistics_len()], DType::F32)?;
        let value = GpuTensor::zeros(ctx, plan.value_shape(), DType::F32)?;
        let grad = GpuTensor::zeros(ctx, &x.shape, args.dtype)?;
        slices.push((plan, GpuTensor::from_host(ctx, &x)?, GpuTensor::from_host(ctx, &y)?, stats, value, grad));
    }
    let mut sum = vec![0f32; slices[0].0.statistics_len()];
    for (plan, x, y, stats, ..) in &slices {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        plan.record_statistics(&mut encoder, LossInputs::new(x, y), stats)?;
        ctx.queue().submit([encoder.finish()]);
        sum.iter_mut().zip(stats.read_f32(ctx)?).for_each(|(s, v)| *s += v);
    }
    let global = GpuTensor::from_host(ctx, &HostTensor::f32(&[sum.len()], sum)?)?;
    Ok(Case {
        loss,
        note: None,
        bytes: config.min_bytes(&HostInputs::new(&logits, &target).shapes()),
        record: Box::new(move |encoder| {
            for (plan, x, y, stats, ..) in &slices {
                plan.record_statistics(encoder, LossInputs::new(x, y), stats)?;
            }
            for (plan, x, y, _, value, grad) in &slices {
                plan.record_finish(encoder, LossInputs::new(x, y), &global, LossOutputs::new(value, grad))?;
            }
            Ok(())
        }),
    })
}

/// An argsort of `n` random keys: reads and writes keys and values once at the least.
/// Each iteration sorts the same random keys again: a copy from a pristine
/// tensor comes first, inside the timed encoder (it moves half the bytes the
/// `vs copy` yardstick moves, well under 1 % of a sort).
fn sort_case(ctx: &GpuContext, n: usize) -> Result<Case<'_>> {
    let pristine = GpuTensor::from_host(ctx, &samples::logits(&mut samples::rng(0), &[n], 1.0))?;
    let keys = GpuTensor::zeros(ctx, &[n], DType::F32)?;
    let values = GpuTensor::zeros(ctx, &[n], DType::I32)?;
    let plan = SortPlan::argsort(ctx, &[n])?;
    Ok(Case {
        loss: "sort",
        bytes: 4 * 4 * n as u64,
        record: Box::new(move |encoder| {
            encoder.copy_buffer_to_buffer(pristine.buffer(), 0, keys.buffer(), 0, 4 * n as u64);
            plan.record(encoder, &keys, &values)
        }),
        note: None,
    })
}

/// Signed distance maps of every class of blob labels for `[N, C, S…]`
/// logits: reads the labels, writes the maps. Jump flooding also reports
/// its error against the exact transform on the same maps.
fn distance_case<'a>(ctx: &'a GpuContext, loss: &'static str, mode: &str, shape: &[usize]) -> Result<Case<'a>> {
    let target = samples::class_targets(&mut samples::rng(0), shape)?;
    let classes: Vec<usize> = (0..shape[1]).collect();
    let mode = if mode == "jump_flood" { DistanceMode::JumpFlood } else { DistanceMode::Exact };
    let plan = DistancePlan::new(ctx, &target.shape, &classes, None, mode)?;
    let maps = GpuTensor::zeros(ctx, plan.output_shape(), DType::F32)?;
    let labels = GpuTensor::from_host(ctx, &target)?;
    let note = match mode {
        DistanceMode::JumpFlood => {
            let e = measure_jump_flood(ctx, &target, &classes, None)?;
            Some((format!("  {e}"), serde_json::json!({"jfa_wrong_share": e.wrong_share(), "jfa_max_error_px": e.max_error_pixels})))
        }
        DistanceMode::Exact => None,
    };
    Ok(Case {
        loss,
        bytes: (target.len() + maps.numel()) as u64 * 4,
        record: Box::new(move |encoder| plan.record(encoder, &labels, &maps)),
        note,
    })
}

pub fn run(args: &Args) -> Result<bool> {
    let ctx = GpuContext::new()?;
    let device = ctx.adapter_name();
    if !args.json {
        let shards = args.shards.map(|k| format!("; as {k} data-parallel devices (both phases of every slice)")).unwrap_or_default();
        println!("device: {device}; floats in {}, class indices in {}{shards}", args.dtype.name(), args.labels.name());
        println!("{:<20} {:<20} {:>10} {:>8} {:>10}  timing", "workload", "loss", "ms", "GB/s", "vs copy");
    }
    for w in workloads(args.scale) {
        if !args.workload.is_empty() && !args.workload.iter().any(|n| n == w.name) {
            continue;
        }
        for (loss, json) in w.losses {
            if !args.loss.is_empty() && !args.loss.iter().any(|n| n == loss) {
                continue;
            }
            let case = match (*loss, args.shards) {
                ("sort" | "distance" | "distance_jump_flood", Some(_)) => continue,
                (_, Some(_)) if loss.ends_with("_maps_given") || LossConfig::from_json(json)?.unsplittable().is_some() => continue,
                (_, Some(k)) => sharded_case(&ctx, loss, json, &w.shape, k as usize, args)?,
                ("sort", None) => sort_case(&ctx, w.shape[0])?,
                ("distance" | "distance_jump_flood", None) => distance_case(&ctx, loss, json, &w.shape)?,
                (_, None) => loss_case(&ctx, loss, json, &w.shape, loss.ends_with("_maps_given"), args)?,
            };
            // Beside a data-parallel case, the one-phase plan on the whole batch, in the same run.
            let one_phase = match args.shards {
                Some(_) => Some(time_gpu(&ctx, args.iters, &*loss_case(&ctx, loss, json, &w.shape, false, args)?.record)?.0),
                None => None,
            };
            let (ms, timing) = time_gpu(&ctx, args.iters, &*case.record)?;
            let mut case = case;
            if let Some(base) = one_phase {
                let text = format!("  {:.2}× the one-phase plan on the whole batch ({base:.3} ms)", ms / base);
                case.note = Some((text, serde_json::json!({"one_phase_ms": round4(base), "vs_one_phase": round4(ms / base)})));
            }
            let copy = copy_ms(&ctx, case.bytes, args.iters)?;
            let gbps = case.bytes as f64 / (ms * 1e-3) / 1e9;
            let per_second = (case.loss == "sort").then(|| w.shape[0] as f64 / (ms * 1e-3));
            if args.json {
                let mut line = serde_json::json!({"workload": w.name, "loss": case.loss, "ms": round4(ms), "gbps": round4(gbps),
                    "copy_ratio": round4(ms / copy), "device": device, "shape": w.shape, "timing": timing,
                    "dtype": args.dtype.name(), "labels": args.labels.name(), "shards": args.shards});
                if let Some(k) = per_second {
                    line["keys_per_s"] = serde_json::json!(k.round());
                }
                if let Some((_, serde_json::Value::Object(fields))) = &case.note {
                    fields.iter().for_each(|(k, v)| line[k] = v.clone());
                }
                println!("{line}");
            } else {
                let keys = per_second.map(|k| format!("  {:.2} M keys/s", k / 1e6)).unwrap_or_default();
                let note = case.note.as_ref().map(|(text, _)| text.as_str()).unwrap_or_default();
                println!("{:<20} {:<20} {:>10.3} {:>8.2} {:>9.2}×  {timing}{keys}{note}", w.name, case.loss, ms, gbps, ms / copy);
            }
        }
    }
    Ok(true)
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}
