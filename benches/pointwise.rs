//! Criterion benches of bce, cross_entropy and focal (value and gradient),
//! GPU and float64 CPU reference, on two anchor workloads.
//! `SEGLOSS_BENCH_SCALE=0.25` shrinks the spatial extents for a quick look.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use segloss::tools::samples;
use segloss::{DType, GpuContext, GpuTensor, HostInputs, InputShapes, LossConfig, LossInputs, LossOutputs, PlanOptions};

fn bench(c: &mut Criterion) {
    let scale: f64 = std::env::var("SEGLOSS_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let s = |v: usize| ((v as f64 * scale).round() as usize).max(1);
    let ctx = GpuContext::new().expect("the GPU benches need an adapter (lavapipe without a GPU)");
    let workloads = [
        ("binary-16x512", vec![16, 1, s(512), s(512)], vec![r#"{"loss": "bce", "params": {}}"#, r#"{"loss": "focal", "params": {"mode": "binary"}}"#]),
        (
            "semantic-8x19x256",
            vec![8, 19, s(256), s(256)],
            vec![r#"{"loss": "cross_entropy", "params": {}}"#, r#"{"loss": "focal", "params": {"mode": "multiclass"}}"#],
        ),
    ];
    let mut group = c.benchmark_group("pointwise");
    group.sample_size(10);
    for (name, shape, losses) in workloads {
        for json in losses {
            let config = LossConfig::from_json(json).unwrap();
            let (logits, target) = samples::inputs(&config, &shape, &mut samples::rng(0)).unwrap();
            let id = format!("{}/{name}", config.name());
            let plan = config.plan(&ctx, &InputShapes::new(&shape, &target.shape), PlanOptions::default()).unwrap();
            let (x, y) = (GpuTensor::from_host(&ctx, &logits).unwrap(), GpuTensor::from_host(&ctx, &target).unwrap());
            let value = GpuTensor::zeros(&ctx, plan.value_shape(), DType::F32).unwrap();
            let grad = GpuTensor::zeros(&ctx, &shape, DType::F32).unwrap();
            group.bench_function(BenchmarkId::new("gpu", &id), |b| {
                b.iter(|| {
                    let mut encoder = ctx.device().create_command_encoder(&Default::default());
                    plan.record(&mut encoder, LossInputs { logits: &x, target: &y, weight: None, distance: None }, LossOutputs { value: &value, grad: Some(&grad) })
                        .unwrap();
                    ctx.queue().submit([encoder.finish()]);
                    ctx.wait_idle().unwrap();
                })
            });
            group.bench_function(BenchmarkId::new("cpu_f64", &id), |b| {
                b.iter(|| config.reference(&HostInputs { logits: &logits, target: &target, weight: None, distance: None }).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
