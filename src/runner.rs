//! The convenience layer on host slices: upload, run, read back. A single
//! loss's plan is cached and its buffers come from the context's pool, so
//! calling the same loss on the same shapes again creates no GPU buffer;
//! compound losses are planned on each call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::tensor::{read_bytes, tensor_usage};
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::{DType, GpuTensor, HostTensor};
use crate::losses::{HostInputs, InputShapes, LossConfig};
use crate::losses::compound::CompoundConfig;
use crate::losses::plan::{LossInputs, LossOutputs, LossPlan, PlanOptions};
use crate::losses::shards::ShardedPlan;

/// A loss's value and gradient, read back to the host.
#[derive(Clone, Debug, PartialEq)]
pub struct LossResult {
    /// The value: `[1]` when reduced, else one per element / pixel / group.
    pub value: Vec<f32>,
    /// The value's shape.
    pub value_shape: Vec<usize>,
    /// ∂(Σ value)/∂logits, the logits' shape: written in the logits' type and widened to f32 here.
    pub grad: Vec<f32>,
    /// The plan's named extra results ([`LossPlan::extra`]), read back:
    /// `mask_giou`'s `enclosing_count` (i32).
    pub extras: Vec<(&'static str, HostTensor)>,
}

/// Runs losses on host data, keeping one plan per (loss, shapes).
///
/// ```no_run
/// use segloss::{GpuContext, HostTensor, HostInputs, LossConfig, Runner};
/// let runner = Runner::new(GpuContext::new()?);
/// let logits = HostTensor::f32(&[1, 2, 2, 2], vec![0.5, -1.0, 2.0, 0.0, -0.5, 1.0, -2.0, 0.3])?;
/// let target = HostTensor::i32(&[1, 2, 2], vec![0, 1, 1, 0])?;
/// let config = LossConfig::from_json(r#"{"loss": "cross_entropy", "params": {}}"#)?;
/// let out = runner.compute(&config, HostInputs { logits: &logits, target: &target, weight: None, distance: None })?;
/// println!("loss {} grad {:?}", out.value[0], out.grad);
/// # Ok::<(), segloss::Error>(())
/// ```
pub struct Runner {
    ctx: GpuContext,
    plans: Mutex<HashMap<String, Arc<LossPlan>>>,
}

impl Runner {
    /// A runner on `ctx`.
    pub fn new(ctx: GpuContext) -> Self {
        Runner { ctx, plans: Mutex::new(HashMap::new()) }
    }

    /// The context it runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Computes value and gradient on the GPU, blocking.
    pub fn compute(&self, config: &LossConfig, inputs: HostInputs<'_>) -> Result<LossResult> {
        pollster::block_on(self.compute_async(config, inputs))
    }

    /// Computes value and gradient on the GPU. The future waits for the GPU
    /// by polling the device on the thread that polls it (no helper thread),
    /// so it blocks that thread while the GPU works; dropping it before it
    /// completes is safe.
    pub async fn compute_async(&self, config: &LossConfig, inputs: HostInputs<'_>) -> Result<LossResult> {
        inputs.check()?;
        let shapes = inputs.shapes();
        config.validate()?;
        config.check_shapes(&shapes)?;
        inputs.with_widened(|wide| config.check_values(wide))?;
        let plan = self.plan(config, &shapes)?;
        let record = |e: &mut wgpu::CommandEncoder, i: LossInputs<'_>, o: LossOutputs<'_>| plan.record(e, i, o);
        self.execute(config.name(), inputs, plan.value_shape(), record, &[(config, &*plan)]).await
    }

    /// Computes a weighted sum of losses on the GPU (one encoder, one gradient), blocking.
    pub fn compute_compound(&self, config: &CompoundConfig, inputs: HostInputs<'_>) -> Result<LossResult> {
        pollster::block_on(self.compute_compound_async(config, inputs))
    }

    /// Computes a weighted sum of losses on the GPU. The plan is made per
    /// call; the future waits as [`Runner::compute_async`]'s does.
    pub async fn compute_compound_async(&self, config: &CompoundConfig, inputs: HostInputs<'_>) -> Result<LossResult> {
        inputs.check()?;
        config.check_shapes(&inputs.shapes())?;
        inputs.with_widened(|wide| config.check_values(wide))?;
        let plan = config.plan(&self.ctx, &inputs.shapes(), PlanOptions::default())?;
        let terms: Vec<(&LossConfig, &LossPlan)> = config.terms.iter().map(|t| &t.loss).zip(plan.terms()).collect();
        let record = |e: &mut wgpu::CommandEncoder, i: LossInputs<'_>, o: LossOutputs<'_>| plan.record(e, i, o);
        self.execute("compound", inputs, plan.value_shape(), record, &terms).await
    }

    /// Uploads the inputs, records through `record` into one encoder, checks
    /// the status words of the plans it records and reads value, gradient
    /// and the plans' extras back.
    async fn execute(
        &self,
        name: &str,
        inputs: HostInputs<'_>,
        value_shape: &[usize],
        record: impl FnOnce(&mut wgpu::CommandEncoder, LossInputs<'_>, LossOutputs<'_>) -> Result<()>,
        plans: &[(&LossConfig, &LossPlan)],
    ) -> Result<LossResult> {
        let ctx = &self.ctx;
        let upload = |h: &HostTensor| -> Result<(GpuTensor, crate::gpu::pool::PooledBuffer)> {
            let bytes = h.padded_bytes();
            let b = ctx.scratch("segloss input", bytes.len() as u64, tensor_usage())?;
            ctx.queue().write_buffer(&b, 0, &bytes);
            Ok((GpuTensor::new(ctx, b.buffer().clone(), 0, &h.shape, h.dtype())?, b))
        };
        let (logits, _l) = upload(inputs.logits)?;
        let (target, _t) = upload(inputs.target)?;
        let weight = inputs.weight.map(upload).transpose()?;
        let distance = inputs.distance.map(upload).transpose()?;
        let output = |shape: &[usize], dtype: DType| -> Result<(GpuTensor, crate::gpu::pool::PooledBuffer)> {
            let bytes = (shape.iter().product::<usize>() as u64 * dtype.size()).next_multiple_of(4);
            let b = ctx.scratch("segloss output", bytes, tensor_usage())?;
            Ok((GpuTensor::new(ctx, b.buffer().clone(), 0, shape, dtype)?, b))
        };
        let (value, _v) = output(value_shape, DType::F32)?;
        // The gradient in the logits' type, as a plan on these inputs writes it.
        let (grad, _g) = output(&inputs.logits.shape, inputs.logits.dtype())?;
        // Anything wgpu still rejects becomes an error here rather than a panic.
        let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        record(
            &mut encoder,
            LossInputs {
                logits: &logits,
                target: &target,
                weight: weight.as_ref().map(|w| &w.0),
                distance: distance.as_ref().map(|d| &d.0),
            },
            LossOutputs { value: &value, grad: Some(&grad) },
        )?;
        // The status word and the extras live in the plan, which other threads
        // may be recording too: copy this call's into its own buffers in the
        // same submission.
        let copy = |encoder: &mut wgpu::CommandEncoder, src: &wgpu::Buffer, offset: u64, len: u64| {
            let b = ctx.scratch("segloss readback copy", len.max(4), tensor_usage())?;
            encoder.copy_buffer_to_buffer(src, offset, &b, 0, len);
            Ok::<_, Error>(b)
        };
        let statuses: Vec<_> = plans
            .iter()
            .filter_map(|(config, plan)| plan.status_buffer().map(|s| copy(&mut encoder, s, 0, 4).map(|b| (*config, b))))
            .collect::<Result<_>>()?;
        let extras: Vec<_> = plans
            .iter()
            .flat_map(|(_, plan)| plan.extras())
            .map(|(name, t)| copy(&mut encoder, t.buffer(), t.offset(), t.byte_len()).map(|b| (name, t, b)))
            .collect::<Result<_>>()?;
        ctx.queue().submit([encoder.finish()]);
        if let Some(e) = scope.pop().await {
            return Err(Error::Device(format!("{name}: {e}")));
        }
        for (config, status) in statuses {
            let flags = read_bytes(ctx, &status, 0, 4).await?;
            let word = u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]]);
            if word != 0 {
                return Err(config.status_error(word));
            }
        }
        let mut extra_values = Vec::new();
        for (name, t, copied) in extras {
            let bytes = read_bytes(ctx, &copied, 0, t.byte_len()).await?;
            extra_values.push((name, HostTensor::from_bytes(t.shape(), t.dtype(), &bytes)));
        }
        Ok(LossResult {
            value: value.read_f32_async(ctx).await?,
            value_shape: value_shape.to_vec(),
            grad: grad.read_f32_async(ctx).await?,
            extras: extra_values,
        })
    }

    /// Computes value and gradient as `shards` data-parallel devices would
    /// ([`LossConfig::plan_sharded`]), on this one context, blocking. The
    /// inputs are split along axis 0 into min(`shards`, N) contiguous
    /// slices; each slice's statistics are recorded and read back, summed in
    /// f32 in device order (the engine's all-reduce), and each slice is
    /// finished with the sums. Every device's value must then be the same
    /// (or, for values per item, is its slice's), and the gradients and
    /// extras are concatenated.
    pub fn compute_sharded(&self, config: &LossConfig, inputs: HostInputs<'_>, shards: usize) -> Result<LossResult> {
        inputs.check()?;
        config.validate()?;
        config.check_shapes(&inputs.shapes())?;
        inputs.with_widened(|wide| config.check_values(wide))?;
        let plan = |shapes: &InputShapes| config.plan_sharded(&self.ctx, shapes, PlanOptions::default());
        pollster::block_on(self.compute_sharded_async(config.name(), &[config], plan, inputs, shards))
    }

    /// [`Runner::compute_sharded`] for a compound ([`CompoundConfig::plan_sharded`]).
    pub fn compute_compound_sharded(&self, config: &CompoundConfig, inputs: HostInputs<'_>, shards: usize) -> Result<LossResult> {
        inputs.check()?;
        config.check_shapes(&inputs.shapes())?;
        inputs.with_widened(|wide| config.check_values(wide))?;
        let plan = |shapes: &InputShapes| config.plan_sharded(&self.ctx, shapes, PlanOptions::default());
        let terms: Vec<&LossConfig> = config.terms.iter().map(|t| &t.loss).collect();
        pollster::block_on(self.compute_sharded_async("compound", &terms, plan, inputs, shards))
    }

    /// The data-parallel run of a plan made by `plan` for each slice's
    /// shapes; `configs` name the status words it reports, in order.
    async fn compute_sharded_async(
        &self,
        name: &str,
        configs: &[&LossConfig],
        plan: impl Fn(&InputShapes) -> Result<ShardedPlan>,
        inputs: HostInputs<'_>,
        shards: usize,
    ) -> Result<LossResult> {
        let ctx = &self.ctx;
        let n = inputs.logits.shape.first().copied().unwrap_or(1);
        let k = shards.clamp(1, n.max(1));
        let upload = |h: Option<&HostTensor>| h.map(|h| GpuTensor::from_host(ctx, h)).transpose();
        struct Slice {
            plan: ShardedPlan,
            tensors: [Option<GpuTensor>; 4],
            stats: GpuTensor,
        }
        let mut slices = Vec::with_capacity(k);
        for i in 0..k {
            let rows = i * n / k..(i + 1) * n / k;
            let (logits, target) = (inputs.logits.rows(rows.clone()), inputs.target.rows(rows.clone()));
            let weight = inputs.weight.map(|w| w.rows(rows.clone()));
            let distance = inputs.distance.map(|d| d.rows(rows.clone()));
            let host = HostInputs { logits: &logits, target: &target, weight: weight.as_ref(), distance: distance.as_ref() };
            let plan = plan(&host.shapes())?;
            let tensors = [upload(Some(&logits))?, upload(Some(&target))?, upload(weight.as_ref())?, upload(distance.as_ref())?];
            let stats = GpuTensor::zeros(ctx, &[plan.statistics_len()], DType::F32)?;
            slices.push(Slice { plan, tensors, stats });
        }
        fn loss_inputs(t: &[Option<GpuTensor>; 4]) -> LossInputs<'_> {
            LossInputs { logits: t[0].as_ref().expect("uploaded"), target: t[1].as_ref().expect("uploaded"), weight: t[2].as_ref(), distance: t[3].as_ref() }
        }
        // Phase 1 on every device, then the all-reduce.
        let mut global = vec![0f32; slices[0].plan.statistics_len()];
        for s in &slices {
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            s.plan.record_statistics(&mut encoder, loss_inputs(&s.tensors), &s.stats)?;
            ctx.queue().submit([encoder.finish()]);
            for (g, v) in global.iter_mut().zip(s.stats.read_f32_async(ctx).await?) {
                *g += v;
            }
        }
        let global = GpuTensor::from_host(ctx, &HostTensor::f32(&[global.len()], global)?)?;
        // Phase 2 on every device.
        let (mut values, mut grads, mut extras) = (Vec::new(), Vec::new(), Vec::<(&'static str, HostTensor)>::new());
        for s in &slices {
            let value = GpuTensor::zeros(ctx, s.plan.value_shape(), DType::F32)?;
            let logits = s.tensors[0].as_ref().expect("uploaded");
            let grad = GpuTensor::zeros(ctx, logits.shape(), logits.dtype())?;
            let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            s.plan.record_finish(&mut encoder, loss_inputs(&s.tensors), &global, LossOutputs::new(&value, &grad))?;
            ctx.queue().submit([encoder.finish()]);
            if let Some(e) = scope.pop().await {
                return Err(Error::Device(format!("{name}: {e}")));
            }
            for (config, status) in configs.iter().zip(s.plan.status_buffers()) {
                let flags = read_bytes(ctx, status, 0, 4).await?;
                let word = u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]]);
                if word != 0 {
                    return Err(config.status_error(word));
                }
            }
            values.push(value.read_f32_async(ctx).await?);
            grads.extend(grad.read_f32_async(ctx).await?);
            for (name, t) in s.plan.extras() {
                let part = t.read_host(ctx)?;
                match extras.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, all)) => *all = HostTensor::concat_rows(all, &part)?,
                    None => extras.push((name, part)),
                }
            }
        }
        // Values per item are each slice's own; any other value is the global one, on every device alike.
        let value = if slices[0].plan.statistics_len() == 0 {
            values.concat()
        } else {
            if let Some(i) = values.iter().position(|v| v != &values[0]) {
                return Err(Error::Device(format!("{name}: device {i}'s value {:?} differs from device 0's {:?}", values[i], values[0])));
            }
            values.swap_remove(0)
        };
        let mut value_shape = slices[0].plan.value_shape().to_vec();
        if slices[0].plan.statistics_len() == 0 && !value_shape.is_empty() {
            value_shape[0] = slices.iter().map(|s| s.plan.value_shape()[0]).sum();
        }
        Ok(LossResult { value, value_shape, grad: grads, extras })
    }

    /// Drops every cached plan, returning their scratch buffers to the pool:
    /// for a training loop whose shapes change (a smaller last batch,
    /// multi-scale crops) and should not keep every size's plan alive.
    pub fn clear_plans(&self) {
        self.plans.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The cached plan for `config` on `shapes`, made on first use.
    pub fn plan(&self, config: &LossConfig, shapes: &crate::losses::InputShapes) -> Result<Arc<LossPlan>> {
        let key = serde_json::to_string(&(config, shapes)).map_err(|e| Error::config("loss", e.to_string()))?;
        if let Some(p) = self.plans.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        let plan = Arc::new(config.plan(&self.ctx, shapes, PlanOptions::default())?);
        self.plans.lock().unwrap_or_else(|e| e.into_inner()).insert(key, plan.clone());
        Ok(plan)
    }
}
