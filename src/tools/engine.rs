//! A loss recorded once the way an engine records it: host data uploaded to
//! GPU tensors, the plan recorded with no host check of the values, and the
//! value, the gradient and the status word read back. The tests and
//! `segloss selftest` use it to see what an engine sees (the status bits,
//! [`crate::STATUS_NON_FINITE`], a NaN value) for inputs the host path refuses.

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::{DType, GpuTensor, HostTensor};
use crate::losses::compound::CompoundConfig;
use crate::losses::plan::{LossInputs, LossOutputs, LossPlan, PlanOptions};
use crate::losses::{HostInputs, LossConfig};

/// What one engine-style recording gave.
#[derive(Clone, Debug)]
pub struct EngineRun {
    /// The value, the plan's value shape flattened.
    pub value: Vec<f32>,
    /// The gradient, the logits' shape flattened.
    pub grad: Vec<f32>,
    /// The status words of the plan (one per term of a compound loss), OR-ed.
    pub status: u32,
}

/// Records `config`'s plan once on uploaded copies of `inputs` (their
/// shapes are checked, their values are not) and reads everything back.
pub fn record_once(ctx: &GpuContext, config: &LossConfig, inputs: &HostInputs<'_>) -> Result<EngineRun> {
    let plan = config.plan(ctx, &inputs.shapes(), PlanOptions::default())?;
    run(ctx, inputs, plan.value_shape(), &[&plan], |e, i, o| plan.record(e, i, o))
}

/// [`record_once`] for a compound loss: its terms' status words are OR-ed.
pub fn record_compound_once(ctx: &GpuContext, config: &CompoundConfig, inputs: &HostInputs<'_>) -> Result<EngineRun> {
    let plan = config.plan(ctx, &inputs.shapes(), PlanOptions::default())?;
    let terms: Vec<&LossPlan> = plan.terms().iter().collect();
    run(ctx, inputs, plan.value_shape(), &terms, |e, i, o| plan.record(e, i, o))
}

fn run(
    ctx: &GpuContext,
    inputs: &HostInputs<'_>,
    value_shape: &[usize],
    plans: &[&LossPlan],
    record: impl FnOnce(&mut wgpu::CommandEncoder, LossInputs<'_>, LossOutputs<'_>) -> Result<()>,
) -> Result<EngineRun> {
    let upload = |h: &HostTensor| GpuTensor::from_host(ctx, h);
    let (logits, target) = (upload(inputs.logits)?, upload(inputs.target)?);
    let weight = inputs.weight.map(upload).transpose()?;
    let distance = inputs.distance.map(upload).transpose()?;
    let value = GpuTensor::zeros(ctx, value_shape, DType::F32)?;
    // In the logits' type, as a plan on these inputs writes it.
    let grad = GpuTensor::zeros(ctx, &inputs.logits.shape, inputs.logits.dtype())?;
    let status = GpuTensor::zeros(ctx, &[plans.len()], DType::I32)?;
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let loss_inputs = LossInputs { logits: &logits, target: &target, weight: weight.as_ref(), distance: distance.as_ref() };
    record(&mut encoder, loss_inputs, LossOutputs::new(&value, &grad))?;
    for (i, plan) in plans.iter().enumerate() {
        if let Some(s) = plan.status_buffer() {
            encoder.copy_buffer_to_buffer(s, 0, status.buffer(), 4 * i as u64, 4);
        }
    }
    ctx.queue().submit([encoder.finish()]);
    let words = status.read_host(ctx)?;
    let status = words.as_i32("status")?.iter().fold(0u32, |acc, &w| acc | w as u32);
    Ok(EngineRun { value: value.read_f32(ctx)?, grad: grad.read_f32(ctx)?, status })
}
