//! What every loss hands an engine: a plan made once for a set of shapes,
//! recorded into the engine's encoder on the engine's buffers as often as it likes.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::layout::LossIo;
use crate::gpu::pool::PooledBuffer;
use crate::gpu::program::Program;
use crate::gpu::tensor::GpuTensor;
use crate::losses::convert::Conversion;

/// The bit of [`LossPlan::status_buffer`] that every loss sets when an
/// input it read held NaN or ±Inf: a logit (or predicted box coordinate), a
/// dense target (or target box coordinate), a weight, or a distance map the
/// caller passed in. The same bit for every loss (`NON_FINITE` in
/// `shaders/lib/finite.wgsl`); the low bits are each loss's own rules
/// ([`crate::LossConfig::status_rule`]).
///
/// The pass that reads each input anyway sets it, at no extra pass over
/// memory, and the value the plan writes is then NaN: a reduced value
/// always, and with reduction `"none"` every element computed after the
/// inputs were read (per-group values) or from the bad input (per-element,
/// per-pixel, per-box values), so that an engine's NaN check on the loss
/// sees it. The gradient is then unspecified: it may hold NaN, ±Inf or
/// finite numbers, written or accumulated into the caller's gradient as the
/// plan's options say; a step whose status has this bit should be skipped.
pub const STATUS_NON_FINITE: u32 = 1 << 31;

/// The caller's input tensors for one loss evaluation.
#[derive(Clone, Copy, Debug)]
pub struct LossInputs<'a> {
    /// Logits `[N, C, S…]` (f32, or the f16 / bf16 the plan was made for:
    /// [`crate::InputDTypes`]); for `box_iou`, the predicted boxes.
    pub logits: &'a GpuTensor,
    /// Targets: f32 (f16, bf16) of the logits' shape, or i32 (u8, u16, i64)
    /// class indices `[N, S…]`.
    pub target: &'a GpuTensor,
    /// Optional per-element weights (`bce`).
    pub weight: Option<&'a GpuTensor>,
    /// Optional precomputed distance maps of the target, `[N, C, S…]`, every
    /// class: `boundary`'s signed maps, or `hausdorff_dt`'s two-sided ones.
    pub distance: Option<&'a GpuTensor>,
}

impl<'a> LossInputs<'a> {
    /// Logits and targets, the inputs every loss takes.
    pub fn new(logits: &'a GpuTensor, target: &'a GpuTensor) -> Self {
        LossInputs { logits, target, weight: None, distance: None }
    }

    /// With per-element weights (`bce`).
    pub fn with_weight(self, weight: &'a GpuTensor) -> Self {
        LossInputs { weight: Some(weight), ..self }
    }

    /// With precomputed distance maps of the target (`boundary`, `hausdorff_dt`, alone or as compound terms).
    pub fn with_distance(self, distance: &'a GpuTensor) -> Self {
        LossInputs { distance: Some(distance), ..self }
    }
}

impl<'a> LossOutputs<'a> {
    /// The value and the gradient.
    pub fn new(value: &'a GpuTensor, grad: &'a GpuTensor) -> Self {
        LossOutputs { value, grad: Some(grad) }
    }

    /// The value alone, for a plan made without a gradient.
    pub fn value_only(value: &'a GpuTensor) -> Self {
        LossOutputs { value, grad: None }
    }
}

/// Where a loss writes its results.
#[derive(Clone, Copy, Debug)]
pub struct LossOutputs<'a> {
    /// f32, [`LossPlan::value_shape`]: one value, or per element / group for reduction "none".
    pub value: &'a GpuTensor,
    /// The logits' shape, in the logits' type or the one
    /// [`crate::InputDTypes::grad`] names; required unless the plan was made
    /// without a gradient.
    pub grad: Option<&'a GpuTensor>,
}

/// How a plan writes its outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanOptions {
    /// Multiplies both the value and the gradient: the term's weight in a compound loss.
    /// Change it later with [`LossPlan::set_scale`].
    pub scale: f32,
    /// Add the (scaled) value into the value tensor instead of overwriting it.
    pub accumulate_value: bool,
    /// Add the (scaled) gradient into the gradient tensor instead of overwriting it.
    pub accumulate_grad: bool,
    /// Compute the gradient at all.
    pub grad: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions { scale: 1.0, accumulate_value: false, accumulate_grad: false, grad: true }
    }
}

impl PlanOptions {
    pub(crate) fn io(&self) -> LossIo {
        LossIo {
            scale: self.scale,
            accumulate_value: self.accumulate_value as u32,
            accumulate_grad: self.accumulate_grad as u32,
            _pad: 0,
        }
    }
}

/// A loss prepared for one set of input shapes on one device: its pipelines
/// compiled, its scratch buffers allocated, its parameters uploaded.
/// Recording it allocates no buffer.
///
/// ```no_run
/// use segloss::{GpuContext, GpuTensor, DType, LossConfig, InputShapes, PlanOptions, LossInputs, LossOutputs};
/// let ctx = GpuContext::new()?;
/// let config = LossConfig::from_json(r#"{"loss": "cross_entropy", "params": {"ignore_index": 255}}"#)?;
/// let shapes = InputShapes::new(&[8, 19, 256, 256], &[8, 256, 256]);
/// let plan = config.plan(&ctx, &shapes, PlanOptions::default())?;
/// # let logits = GpuTensor::zeros(&ctx, &[8, 19, 256, 256], DType::F32)?;
/// # let target = GpuTensor::zeros(&ctx, &[8, 256, 256], DType::I32)?;
/// let value = GpuTensor::zeros(&ctx, plan.value_shape(), DType::F32)?;
/// let grad = GpuTensor::zeros(&ctx, &[8, 19, 256, 256], DType::F32)?;
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// plan.record(&mut encoder, LossInputs { logits: &logits, target: &target, weight: None, distance: None },
///             LossOutputs { value: &value, grad: Some(&grad) })?;
/// ctx.queue().submit([encoder.finish()]);
/// # Ok::<(), segloss::Error>(())
/// ```
pub struct LossPlan {
    pub(crate) ctx: GpuContext,
    pub(crate) program: Program,
    pub(crate) io: wgpu::Buffer,
    pub(crate) status: Option<wgpu::Buffer>,
    pub(crate) value_shape: Vec<usize>,
    pub(crate) options: PlanOptions,
    pub(crate) _scratch: Vec<PooledBuffer>,
    /// Named results beside value and gradient (`mask_giou`'s `enclosing_count`),
    /// in plan-owned tensors that each recording overwrites.
    pub(crate) extras: Vec<(&'static str, GpuTensor)>,
    /// An optional input the plan otherwise computes itself (the target's distance maps).
    pub(crate) optional: Option<OptionalInput>,
    /// Whether the last recording was given the optional input: its extra
    /// (the plan's own tensor) was then not written, so it is not reported.
    pub(crate) optional_given: AtomicBool,
    /// The element-type conversions around the kernels, for inputs or a
    /// gradient of other types than f32 and i32 ([`crate::InputDTypes`]).
    pub(crate) conversion: Option<Conversion>,
    /// Where the program divides into a data-parallel plan's two phases,
    /// for a loss whose groups span the batch (`losses/shards.rs`).
    pub(crate) split: Option<Split>,
    /// The one-value buffer a mean divides by, when the plan computes it
    /// from the data (cross-entropy's `Σ w[y]`): a data-parallel plan adds
    /// it across devices.
    pub(crate) denominator: Option<wgpu::Buffer>,
}

/// The point where a plan's program divides in two for a data-parallel
/// plan (`losses/shards.rs`): the last `tail` steps of each of its programs
/// read what the steps before them left in the first `len` f32 of `stats`,
/// which a data-parallel plan replaces between the parts: the groups' sums
/// (`overlap.wgsl`'s I, P, G over the batch), or the gradient's factor per
/// value entry (`hausdorff_dt.wgsl`'s under `log`).
#[derive(Clone)]
pub(crate) struct Split {
    pub tail: usize,
    pub stats: wgpu::Buffer,
    pub len: u64,
}

/// Which steps of a split program to record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Part {
    Statistics,
    Finish,
}

/// An optional input that a plan computes in its own program when the caller
/// leaves it out: given, the `given` program runs instead and reads the
/// caller's tensor; left out, `stand_in` (the plan's own tensor, written by
/// `program`) fills the slot, so it is bound by range like a caller's tensor.
pub(crate) struct OptionalInput {
    pub slot: usize,
    pub given: Program,
    pub stand_in: GpuTensor,
    /// The extra that reports the stand-in.
    pub extra: &'static str,
}

/// Slot numbers of a loss program's caller tensors.
pub(crate) mod slot {
    pub const LOGITS: usize = 0;
    pub const TARGET: usize = 1;
    pub const WEIGHT: usize = 2;
    pub const GRAD: usize = 3;
    pub const VALUE: usize = 4;
    pub const DISTANCE: usize = 5;
}

impl LossPlan {
    /// Records the loss into `encoder`. The value lands in `outputs.value`,
    /// the gradient in `outputs.grad`, written or accumulated as the plan's
    /// options say. Nothing else the caller passed is written. `boundary` and
    /// `hausdorff_dt` compute the target's distance maps in the same encoder
    /// unless `inputs.distance` brings them (`[N, C, S…]`, every class's map).
    /// (`hausdorff_dt` computes the prediction's maps in every recording.)
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, inputs: LossInputs<'_>, outputs: LossOutputs<'_>) -> Result<()> {
        let Some(c) = &self.conversion else { return self.record_kernels(encoder, inputs, outputs, None) };
        let outputs = LossOutputs { grad: if self.options.grad { outputs.grad } else { None }, ..outputs };
        let (wide, wide_grad) = c.widen(encoder, inputs, outputs)?;
        self.record_kernels(encoder, wide, LossOutputs { value: outputs.value, grad: wide_grad }, None)?;
        c.narrow(encoder, outputs.grad)
    }

    /// [`LossPlan::record`] on the types the kernels read: the whole
    /// program, or one part of a split one.
    fn record_kernels(&self, encoder: &mut wgpu::CommandEncoder, inputs: LossInputs<'_>, outputs: LossOutputs<'_>, part: Option<Part>) -> Result<()> {
        if inputs.distance.is_some() && self.optional.is_none() {
            return Err(Error::input("plan", "distance maps were given, but this loss takes none"));
        }
        if let (Some(status), None | Some(Part::Statistics)) = (&self.status, part) {
            encoder.clear_buffer(status, 0, None);
        }
        let grad = if self.options.grad { outputs.grad } else { None };
        let mut tensors = [Some(inputs.logits), Some(inputs.target), inputs.weight, grad, Some(outputs.value), inputs.distance];
        let given = self.optional.as_ref().is_some_and(|o| tensors[o.slot].is_some());
        self.optional_given.store(given, Ordering::Relaxed);
        let program = match &self.optional {
            Some(o) if given => &o.given,
            Some(o) => {
                tensors[o.slot] = Some(&o.stand_in);
                &self.program
            }
            None => &self.program,
        };
        let len = program.steps.len();
        let at = len - self.split.as_ref().map_or(0, |s| s.tail);
        let steps = match part {
            None => 0..len,
            Some(Part::Statistics) => 0..at,
            Some(Part::Finish) => at..len,
        };
        program.record_steps(&self.ctx, encoder, &tensors, steps)
    }

    /// Records one part of a split program ([`LossPlan::split`]): the steps
    /// before the split (the statistics, into the plan's own buffer; the
    /// gradient is not written) or after it (which the caller has given the
    /// buffer's new contents). The inputs are widened again for each part.
    pub(crate) fn record_part(&self, encoder: &mut wgpu::CommandEncoder, inputs: LossInputs<'_>, outputs: LossOutputs<'_>, part: Part) -> Result<()> {
        if self.split.is_none() {
            return Err(Error::Device("this plan has no split".into()));
        }
        let outputs = LossOutputs { grad: if self.options.grad { outputs.grad } else { None }, ..outputs };
        let Some(c) = &self.conversion else { return self.record_kernels(encoder, inputs, outputs, Some(part)) };
        let (wide, wide_grad) = c.widen(encoder, inputs, outputs)?;
        self.record_kernels(encoder, wide, LossOutputs { value: outputs.value, grad: wide_grad }, Some(part))?;
        if part == Part::Finish { c.narrow(encoder, outputs.grad) } else { Ok(()) }
    }

    /// The target type its kernels read (f32 or i32).
    pub(crate) fn target_dtype(&self) -> crate::gpu::tensor::DType {
        self.program.slots[slot::TARGET].dtype
    }

    /// Whether the plan takes precomputed distance maps in [`LossInputs::distance`] (`boundary`, `hausdorff_dt`).
    pub fn takes_distance(&self) -> bool {
        self.optional.as_ref().is_some_and(|o| o.slot == slot::DISTANCE)
    }

    /// The shape of the value tensor: `[1]` for "mean" and "sum".
    pub fn value_shape(&self) -> &[usize] {
        &self.value_shape
    }

    /// The tensors the plan converts around its kernels (`"logits"`,
    /// `"target"`, `"weight"`, `"grad"`): those whose type its kernels do
    /// not read or write in place, each costing a pass over it. Empty for
    /// f32 and i32 tensors, and for the f16 and bf16 tensors of the
    /// memory-bound losses (bce, focal, cross_entropy, the overlap family,
    /// unified_focal).
    ///
    /// ```no_run
    /// # use segloss::{DType, GpuContext, InputDTypes, InputShapes, LossConfig, PlanOptions};
    /// let ctx = GpuContext::new()?;
    /// let dice = LossConfig::from_json(r#"{"loss": "dice", "params": {"mode": "multiclass"}}"#)?;
    /// let shapes = InputShapes::new(&[8, 19, 256, 256], &[8, 256, 256])
    ///     .with_dtypes(InputDTypes { logits: DType::F16, target: Some(DType::U8), ..Default::default() });
    /// // f16 logits and gradient in place; the u8 labels widened to i32.
    /// assert_eq!(dice.plan(&ctx, &shapes, PlanOptions::default())?.converted(), ["target"]);
    /// # Ok::<(), segloss::Error>(())
    /// ```
    pub fn converted(&self) -> Vec<&'static str> {
        self.conversion.as_ref().map_or_else(Vec::new, Conversion::converted)
    }

    /// Bytes the plan's conversions move beyond its kernels'
    /// ([`LossPlan::converted`]): 8 an element of each converted tensor,
    /// its f32 or i32 copy written once and read once. Added to
    /// [`crate::LossConfig::min_bytes`], the bytes a recording moves at the least.
    pub fn conversion_bytes(&self) -> u64 {
        self.conversion.as_ref().map_or(0, Conversion::extra_bytes)
    }

    /// The options the plan was made with (with the current scale).
    pub fn options(&self) -> PlanOptions {
        match &self.conversion {
            Some(c) => PlanOptions { accumulate_grad: c.accumulate_grad, ..self.options },
            None => self.options,
        }
    }

    /// Sets the factor on value and gradient from the next submission on
    /// (for a weight that changes during training, like boundary loss's α).
    pub fn set_scale(&mut self, scale: f32) {
        self.options.scale = scale;
        self.ctx.queue().write_buffer(&self.io, 0, bytemuck::bytes_of(&self.options.io()));
    }

    /// A `u32` the kernels set non-zero when an input broke a rule they can
    /// only see on the GPU ([`crate::losses::LossConfig::status_rule`] says which: a
    /// class index outside `[0, C)` that is not the ignore value, a
    /// degenerate box, and for every loss [`STATUS_NON_FINITE`]: an input
    /// held NaN or ±Inf); cleared at the start of each recording. Every
    /// loss's plan has one (the `Option` stays for plans that may not).
    pub fn status_buffer(&self) -> Option<&wgpu::Buffer> {
        self.status.as_ref()
    }

    /// A named result the loss computes beside its value and gradient, in a
    /// tensor the plan owns and every recording overwrites: `mask_giou`'s
    /// `"enclosing_count"` (i32 `[M]`, the pixels of each instance's
    /// enclosing region). Copy it inside the same encoder (or read it before
    /// recording the plan again) to keep it.
    ///
    /// `boundary`'s and `hausdorff_dt`'s `"distance"` (the target's maps, `[N, C, S…]`) is reported only
    /// when the last recording computed them: when the caller brought them
    /// in [`LossInputs::distance`], they are the caller's, and the plan's
    /// tensor was not written.
    pub fn extra(&self, name: &str) -> Option<&GpuTensor> {
        self.extras().find(|(n, _)| *n == name).map(|(_, t)| t)
    }

    /// Every named extra result the last recording wrote, in the order the loss defines them.
    pub fn extras(&self) -> impl Iterator<Item = (&'static str, &GpuTensor)> {
        let skipped = match &self.optional {
            Some(o) if self.optional_given.load(Ordering::Relaxed) => Some(o.extra),
            _ => None,
        };
        self.extras.iter().filter(move |(n, _)| Some(*n) != skipped).map(|(n, t)| (*n, t))
    }
}
