//! Plans on tensors of other element types than the kernels read: the
//! plan (a loss's, or a compound's terms) is made for f32 and i32, or for
//! f16 and bf16 where the loss's kernels read those in place ([`InPlace`],
//! [`kernels_request`]), and a [`Conversion`] widens the caller's other
//! f16, bf16, u8, u16 or i64 inputs into plan-owned scratch before it and
//! narrows the gradient into the caller's f16 or bf16 after it. One
//! mechanism for every loss, so every loss takes every type; the
//! conversions cost a pass over the converted tensors each, which the
//! memory-bound losses avoid by reading in place.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::PooledBuffer;
use crate::gpu::tensor::{DType, GpuTensor};
use crate::gpu::program::check_disjoint;
use crate::losses::plan::{LossInputs, LossOutputs, PlanOptions};
use crate::losses::{InputDTypes, InputShapes};
use crate::primitives::convert::Convert;

/// A widening or narrowing and the plan-owned tensor on its f32 / i32 side.
struct Converted {
    convert: Convert,
    wide: GpuTensor,
    _buffer: PooledBuffer,
}

/// What a plan converts around its kernels.
pub(crate) struct Conversion {
    loss: &'static str,
    /// The types and shapes the caller's tensors must have, and the
    /// kernels' own target type (f32 or i32).
    dtypes: InputDTypes,
    shapes: InputShapes,
    own_target: DType,
    logits: Option<Converted>,
    target: Option<Converted>,
    weight: Option<Converted>,
    grad: Option<Converted>,
    /// Whether the narrowing adds into the caller's gradient (the plan's own
    /// kernels then overwrite the f32 copy).
    pub accumulate_grad: bool,
}

/// Which of a loss's tensors its kernels read (or, the gradient, write) in
/// f16 and bf16 themselves (`//#elements` bindings, gpu/shaders.rs), moving
/// half the bytes; the others are converted around them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct InPlace {
    pub logits: bool,
    pub target: bool,
    pub weight: bool,
    pub grad: bool,
}

impl InPlace {
    /// Logits and gradient in place, targets and weights converted.
    pub const LOGITS_AND_GRAD: InPlace = InPlace { logits: true, target: false, weight: false, grad: true };
    /// Every floating tensor in place.
    pub const ALL: InPlace = InPlace { logits: true, target: true, weight: true, grad: true };
}

/// f16 or bf16.
fn is_half(dtype: DType) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
}

/// Whether the kernels write the gradient in another type than the caller's,
/// so that it is narrowed after them.
fn narrows_grad(options: PlanOptions, caller: &InputDTypes, kernels: &InputDTypes) -> bool {
    options.grad && caller.grad() != kernels.grad()
}

/// What a plan for `shapes` with `options` is made as when its types are
/// converted: the kernels' own types (f32 and i32, or f16 and bf16 where
/// the kernels take them `in_place`), and the gradient overwritten (not
/// accumulated) in the f32 copy when it is narrowed (the narrowing adds
/// into the caller's gradient instead).
pub(crate) fn kernels_request(shapes: &InputShapes, options: PlanOptions, in_place: InPlace) -> (InputShapes, PlanOptions) {
    let d = shapes.dtypes;
    let keep = |yes: bool, dtype: DType| if yes && is_half(dtype) { dtype } else { DType::F32 };
    let dtypes = InputDTypes {
        logits: keep(in_place.logits, d.logits),
        target: d.target.filter(|t| in_place.target && is_half(*t)),
        weight: keep(in_place.weight, d.weight),
        grad: Some(keep(in_place.grad, d.grad())),
    };
    let narrow_grad = narrows_grad(options, &d, &dtypes);
    let native = InputShapes { dtypes, ..shapes.clone() };
    (native, PlanOptions { accumulate_grad: options.accumulate_grad && !narrow_grad, ..options })
}

impl Conversion {
    /// The conversions a plan named `loss`, made by [`kernels_request`] for
    /// `shapes` (its kernels taking `kernels`' types) and reading targets
    /// of `own_target` (f32 or i32), needs around its kernels; `None` when
    /// the caller's types are the kernels' own.
    pub fn new(ctx: &GpuContext, loss: &'static str, shapes: &InputShapes, kernels: &InputDTypes, options: PlanOptions, own_target: DType) -> Result<Option<Self>> {
        let d = shapes.dtypes;
        for (what, t) in [("logits", d.logits), ("weights", d.weight), ("the gradient", d.grad())] {
            if !t.is_float() {
                return Err(Error::input(loss, format!("{what} must be f32, f16 or bf16, not {}", t.name())));
            }
        }
        if let Some(t) = d.target
            && t.widened() != own_target
        {
            let takes = if own_target == DType::I32 { "class indices (i32, u8, u16 or i64)" } else { "f32 targets (or f16, bf16)" };
            return Err(Error::input(loss, format!("{loss} takes {takes}; {} targets cannot be given", t.name())));
        }
        let kernels_target = kernels.target.unwrap_or(own_target);
        let narrow_grad = narrows_grad(options, &d, kernels);
        let same = d.logits == kernels.logits && d.target.unwrap_or(own_target) == kernels_target && d.weight == kernels.weight;
        if same && !narrow_grad {
            return Ok(None);
        }
        let widen = |what, shape: &[usize], dtype: DType, to: DType| -> Result<Option<Converted>> {
            if dtype == to {
                return Ok(None);
            }
            let (wide, buffer) = scratch(ctx, shape, to)?;
            Ok(Some(Converted { convert: Convert::widen(ctx, what, shape, dtype)?, wide, _buffer: buffer }))
        };
        Ok(Some(Conversion {
            loss,
            logits: widen("logits", &shapes.logits, d.logits, kernels.logits)?,
            target: widen("target", &shapes.target, d.target.unwrap_or(own_target), kernels_target)?,
            weight: match &shapes.weight {
                Some(w) => widen("weight", w, d.weight, kernels.weight)?,
                None => None,
            },
            grad: if narrow_grad {
                let (wide, buffer) = scratch(ctx, &shapes.logits, DType::F32)?;
                let convert = Convert::narrow(ctx, "grad", &shapes.logits, d.grad(), options.accumulate_grad)?;
                Some(Converted { convert, wide, _buffer: buffer })
            } else {
                None
            },
            dtypes: d,
            shapes: shapes.clone(),
            own_target,
            accumulate_grad: options.accumulate_grad,
        }))
    }
}

/// A plan-owned tensor of `shape` and `dtype` from the pool.
fn scratch(ctx: &GpuContext, shape: &[usize], dtype: DType) -> Result<(GpuTensor, PooledBuffer)> {
    let bytes = shape.iter().product::<usize>() as u64 * dtype.size();
    let buffer = ctx.scratch("segloss widened copy", bytes.max(4), wgpu::BufferUsages::STORAGE)?;
    Ok((GpuTensor::new(ctx, buffer.buffer().clone(), 0, shape, dtype)?, buffer))
}

impl Conversion {
    /// Checks the caller's tensors (types, shapes, and that none overlaps
    /// one that is written), then records the widenings; returns the inputs
    /// and the gradient the plan's kernels take in their place.
    pub fn widen<'a>(
        &'a self,
        encoder: &mut wgpu::CommandEncoder,
        inputs: LossInputs<'a>,
        outputs: LossOutputs<'a>,
    ) -> Result<(LossInputs<'a>, Option<&'a GpuTensor>)> {
        self.check(inputs, outputs)?;
        let one = |c: &'a Option<Converted>, t: &'a GpuTensor, encoder: &mut wgpu::CommandEncoder| -> Result<&'a GpuTensor> {
            let Some(c) = c else { return Ok(t) };
            c.convert.record(encoder, t, &c.wide)?;
            Ok(&c.wide)
        };
        let logits = one(&self.logits, inputs.logits, encoder)?;
        let target = one(&self.target, inputs.target, encoder)?;
        let weight = match inputs.weight {
            Some(w) => Some(one(&self.weight, w, encoder)?),
            None => None,
        };
        let grad = match (&self.grad, outputs.grad) {
            (Some(c), Some(_)) => Some(&c.wide),
            (_, g) => g,
        };
        Ok((LossInputs { logits, target, weight, distance: inputs.distance }, grad))
    }

    /// The caller's tensors against what the plan was made for, before
    /// anything is recorded: the kernels see only the plan's own copies of
    /// converted tensors, so they cannot check these.
    fn check(&self, inputs: LossInputs<'_>, outputs: LossOutputs<'_>) -> Result<()> {
        let d = self.dtypes;
        let expected = [
            ("logits", Some(inputs.logits), d.logits, Some(&self.shapes.logits)),
            ("target", Some(inputs.target), d.target.unwrap_or(self.own_target), Some(&self.shapes.target)),
            ("distance", inputs.distance, DType::F32, None),
            ("value", Some(outputs.value), DType::F32, None),
            ("weight", inputs.weight, d.weight, self.shapes.weight.as_ref()),
            ("grad", outputs.grad, d.grad(), Some(&self.shapes.logits)),
        ];
        for (what, t, dtype, shape) in expected {
            let Some(t) = t else { continue };
            if t.dtype() != dtype {
                return Err(Error::input(self.loss, format!("{what} is {}; this plan was made for {}", t.dtype().name(), dtype.name())));
            }
            if let Some(shape) = shape
                && t.shape() != shape.as_slice()
            {
                return Err(Error::shape(self.loss, what, t.shape(), format!("{what} has shape {:?}; this plan was made for {shape:?}", t.shape())));
            }
        }
        let mut all = vec![("logits", false, inputs.logits), ("target", false, inputs.target), ("value", true, outputs.value)];
        all.extend(inputs.weight.map(|t| ("weight", false, t)));
        all.extend(inputs.distance.map(|t| ("distance", false, t)));
        all.extend(outputs.grad.map(|t| ("grad", true, t)));
        check_disjoint(self.loss, &all).map(|_| ())
    }

    /// The names of the tensors converted.
    pub fn converted(&self) -> Vec<&'static str> {
        let all = [("logits", &self.logits), ("target", &self.target), ("weight", &self.weight), ("grad", &self.grad)];
        all.into_iter().filter(|(_, c)| c.is_some()).map(|(name, _)| name).collect()
    }

    /// Bytes the conversions move beyond what the kernels would on the
    /// caller's tensors: each converted tensor's 4-byte copy written once
    /// and read once (by the kernels after a widening, by the narrowing
    /// after the kernels).
    pub fn extra_bytes(&self) -> u64 {
        let all = [&self.logits, &self.target, &self.weight, &self.grad];
        all.into_iter().flatten().map(|c| c.wide.numel() as u64 * 8).sum()
    }

    /// Records the narrowing of the gradient into the caller's `grad`.
    pub fn narrow(&self, encoder: &mut wgpu::CommandEncoder, grad: Option<&GpuTensor>) -> Result<()> {
        match (&self.grad, grad) {
            (Some(c), Some(g)) => c.convert.record(encoder, &c.wide, g),
            _ => Ok(()),
        }
    }
}
