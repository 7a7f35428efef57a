//! Plans on tensors of other element types than the kernels read: the
//! plan is made for f32 and i32, and a [`Conversion`] widens the caller's
//! f16, bf16, u8, u16 or i64 inputs into plan-owned scratch before it and
//! narrows the gradient into the caller's f16 or bf16 after it. One
//! mechanism for every loss, so every loss takes every type; the
//! conversions cost a pass over the converted tensors each.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::PooledBuffer;
use crate::gpu::tensor::{DType, GpuTensor};
use crate::losses::plan::{LossInputs, LossPlan, PlanOptions, slot};
use crate::losses::{InputDTypes, InputShapes};
use crate::primitives::convert::Convert;

/// A widening or narrowing and the plan-owned tensor on its f32 / i32 side.
struct Converted {
    convert: Convert,
    wide: GpuTensor,
    /// The caller's type, checked before converting (the error names the input).
    dtype: DType,
    _buffer: PooledBuffer,
}

/// What a plan converts around its kernels.
pub(crate) struct Conversion {
    loss: &'static str,
    logits: Option<Converted>,
    target: Option<Converted>,
    weight: Option<Converted>,
    grad: Option<Converted>,
    /// Whether the narrowing adds into the caller's gradient (the plan's own
    /// kernels then overwrite the f32 copy).
    pub accumulate_grad: bool,
}

/// `make`'s plan for `shapes`, with a [`Conversion`] where `shapes.dtypes`
/// are not the kernels' own.
pub(crate) fn plan_with_dtypes(
    ctx: &GpuContext,
    shapes: &InputShapes,
    options: PlanOptions,
    make: impl FnOnce(&InputShapes, PlanOptions) -> Result<LossPlan>,
) -> Result<LossPlan> {
    let d = shapes.dtypes;
    let native = InputShapes { dtypes: InputDTypes::default(), ..shapes.clone() };
    let narrow_grad = options.grad && d.grad() != DType::F32;
    let kernels_own = d.logits == DType::F32 && d.weight == DType::F32 && d.grad() == DType::F32 && d.target.is_none_or(|t| t == t.widened());
    if kernels_own && d.target.is_none() {
        return make(&native, options);
    }
    for (what, t) in [("logits", d.logits), ("weights", d.weight), ("the gradient", d.grad())] {
        if !t.is_float() {
            return Err(Error::input("plan", format!("{what} must be f32, f16 or bf16, not {}", t.name())));
        }
    }
    let inner = PlanOptions { accumulate_grad: options.accumulate_grad && !narrow_grad, ..options };
    let mut plan = make(&native, inner)?;
    let loss = plan.program.name;
    let own_target = plan.program.slots[slot::TARGET].dtype;
    if let Some(t) = d.target
        && t.widened() != own_target
    {
        let takes = if own_target == DType::I32 { "class indices (i32, u8, u16 or i64)" } else { "f32 targets (or f16, bf16)" };
        return Err(Error::input(loss, format!("{loss} takes {takes}; {} targets cannot be given", t.name())));
    }
    let widen = |what, shape: &[usize], dtype: DType| -> Result<Option<Converted>> {
        if dtype == dtype.widened() {
            return Ok(None);
        }
        let (wide, buffer) = scratch(ctx, shape, dtype.widened())?;
        Ok(Some(Converted { convert: Convert::widen(ctx, what, shape, dtype)?, wide, dtype, _buffer: buffer }))
    };
    let conversion = Conversion {
        loss,
        logits: widen("logits", &shapes.logits, d.logits)?,
        target: widen("target", &shapes.target, d.target.unwrap_or(own_target))?,
        weight: match &shapes.weight {
            Some(w) => widen("weight", w, d.weight)?,
            None => None,
        },
        grad: if narrow_grad {
            let (wide, buffer) = scratch(ctx, &shapes.logits, DType::F32)?;
            let convert = Convert::narrow(ctx, "grad", &shapes.logits, d.grad(), options.accumulate_grad)?;
            Some(Converted { convert, wide, dtype: d.grad(), _buffer: buffer })
        } else {
            None
        },
        accumulate_grad: options.accumulate_grad,
    };
    plan.conversion = Some(conversion);
    Ok(plan)
}

/// A plan-owned tensor of `shape` and `dtype` from the pool.
fn scratch(ctx: &GpuContext, shape: &[usize], dtype: DType) -> Result<(GpuTensor, PooledBuffer)> {
    let bytes = shape.iter().product::<usize>() as u64 * dtype.size();
    let buffer = ctx.scratch("segloss widened copy", bytes.max(4), wgpu::BufferUsages::STORAGE)?;
    Ok((GpuTensor::new(ctx, buffer.buffer().clone(), 0, shape, dtype)?, buffer))
}

impl Conversion {
    /// Records the widenings; returns the inputs and the gradient the plan's
    /// kernels take in their place.
    pub fn widen<'a>(
        &'a self,
        encoder: &mut wgpu::CommandEncoder,
        inputs: LossInputs<'a>,
        grad: Option<&'a GpuTensor>,
    ) -> Result<(LossInputs<'a>, Option<&'a GpuTensor>)> {
        let one = |c: &'a Option<Converted>, what: &str, t: &'a GpuTensor, encoder: &mut wgpu::CommandEncoder| -> Result<&'a GpuTensor> {
            let Some(c) = c else { return Ok(t) };
            if t.dtype() != c.dtype {
                return Err(Error::input(self.loss, format!("{what} is {}; this plan was made for {}", t.dtype().name(), c.dtype.name())));
            }
            c.convert.record(encoder, t, &c.wide)?;
            Ok(&c.wide)
        };
        let logits = one(&self.logits, "logits", inputs.logits, encoder)?;
        let target = one(&self.target, "target", inputs.target, encoder)?;
        let weight = match inputs.weight {
            Some(w) => Some(one(&self.weight, "weight", w, encoder)?),
            None => None,
        };
        let grad = match (&self.grad, grad) {
            (Some(c), Some(g)) if g.dtype() != c.dtype => {
                return Err(Error::input(self.loss, format!("grad is {}; this plan was made for {}", g.dtype().name(), c.dtype.name())));
            }
            (Some(c), Some(_)) => Some(&c.wide),
            (_, g) => g,
        };
        Ok((LossInputs { logits, target, weight, distance: inputs.distance }, grad))
    }

    /// Records the narrowing of the gradient into the caller's `grad`.
    pub fn narrow(&self, encoder: &mut wgpu::CommandEncoder, grad: Option<&GpuTensor>) -> Result<()> {
        match (&self.grad, grad) {
            (Some(c), Some(g)) => c.convert.record(encoder, &c.wide, g),
            _ => Ok(()),
        }
    }
}
