//! Data-parallel plans: every loss split into additive statistics, so that
//! an engine's all-reduce (a sum over devices) gives the loss of the global
//! batch exactly, with each device's gradient the local part of that loss's
//! gradient.
//!
//! A device holding a slice of the batch (of the boxes for `box_iou`, of the
//! instances for `mask_giou`: always axis 0) records
//! [`ShardedPlan::record_statistics`], the engine sums the statistics of all
//! devices element by element, and each device records
//! [`ShardedPlan::record_finish`] with the sums. Every device then holds the
//! global loss's value, and the gradient of that loss with respect to its own
//! logits: concatenated over devices, the single-device gradient on the whole
//! batch. segloss does no communication itself.
//!
//! Three kinds of loss (`Sharding`), in the one mechanism here and
//! `shaders/shards.wgsl`:
//! - nothing couples the slices (reduction `"none"` of per-image values):
//!   no statistics, the finish is the one-phase plan;
//! - a mean (or sum) of terms each local to one item of axis 0: two
//!   statistics per value entry, the slice's `v·D` and its denominator `D`
//!   (the items of axis 0, or cross-entropy's `Σ w[y]`). Its statistics are
//!   the loss's value-only plan on the slice; its finish, the plan with the
//!   gradient, scaled on the GPU by `D / ΣD`;
//! - groups that span the batch (aggregate `"batch"`): the loss's own group
//!   sums, which its plan marks (`losses::plan::Split`); the finish
//!   is the rest of its program, run on the summed groups.
//!
//! A compound ([`CompoundConfig::plan_sharded`]) shards each term; its
//! statistics are the terms' one after the other.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::program::{Binding, Program, SlotSpec, Step};
use crate::gpu::tensor::{DType, GpuTensor};
use crate::losses::plan::{LossInputs, LossOutputs, LossPlan, Part, PlanOptions};
use crate::losses::{CompoundConfig, HausdorffDtConfig, InputShapes, LossConfig, Reduction};

/// How a loss divides across data-parallel devices: what each loss's
/// `Loss::sharding` says of its configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Sharding {
    /// Nothing couples the slices: values per item of axis 0 (or per
    /// element), each device's the global ones of its slice.
    Local,
    /// The mean of terms local to one item of axis 0 (the value entries
    /// each such a mean), with `log1p` of it under `log`.
    Mean { log: bool },
    /// The sum of such terms, with `log1p` of it under `log`.
    Sum { log: bool },
    /// Groups that span the batch: the loss's program computes their
    /// additive sums first ([`crate::losses::plan::Split`]).
    Groups,
    /// It does not split, and why.
    Unsplittable(&'static str),
}

impl Sharding {
    /// A loss whose terms are local to one item of axis 0, reduced by `reduction`.
    pub fn of(reduction: Reduction) -> Self {
        match reduction {
            Reduction::Mean => Sharding::Mean { log: false },
            Reduction::Sum => Sharding::Sum { log: false },
            Reduction::None => Sharding::Local,
        }
    }
}

/// `struct ShardParams` in `shards.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ShardParams {
    len: u32,
    mean: u32,
    log1p: u32,
    accumulate_value: u32,
    scale: f32,
    per_entry: u32,
    source_offset: u32,
    destination_offset: u32,
}

/// A loss planned for data-parallel training: one device's slice of the
/// batch, in two phases around the engine's all-reduce.
///
/// ```no_run
/// use segloss::{GpuContext, GpuTensor, DType, LossConfig, InputShapes, PlanOptions, LossInputs, LossOutputs};
/// let ctx = GpuContext::new()?;
/// let config = LossConfig::from_json(r#"{"loss": "dice", "params": {"aggregate": "batch"}}"#)?;
/// // This device's slice: 4 of the global batch's images.
/// let plan = config.plan_sharded(&ctx, &InputShapes::new(&[4, 3, 64, 64], &[4, 64, 64]), PlanOptions::default())?;
/// # let logits = GpuTensor::zeros(&ctx, &[4, 3, 64, 64], DType::F32)?;
/// # let target = GpuTensor::zeros(&ctx, &[4, 64, 64], DType::I32)?;
/// let inputs = LossInputs::new(&logits, &target);
/// let stats = GpuTensor::zeros(&ctx, &[plan.statistics_len()], DType::F32)?;
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// plan.record_statistics(&mut encoder, inputs, &stats)?;
/// ctx.queue().submit([encoder.finish()]);
/// // … the engine sums `stats` over its devices, in place …
/// let value = GpuTensor::zeros(&ctx, plan.value_shape(), DType::F32)?;
/// let grad = GpuTensor::zeros(&ctx, &[4, 3, 64, 64], DType::F32)?;
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// plan.record_finish(&mut encoder, inputs, &stats, LossOutputs::new(&value, &grad))?;
/// ctx.queue().submit([encoder.finish()]);
/// # Ok::<(), segloss::Error>(())
/// ```
pub struct ShardedPlan {
    ctx: GpuContext,
    loss: &'static str,
    phases: Phases,
    stats_len: usize,
    value_shape: Vec<usize>,
    options: PlanOptions,
}

enum Phases {
    Local(LossPlan),
    Reduced(Reduced),
    Groups(Groups),
    Compound(Compound),
}

/// A compound's terms, each sharded on its own, their statistics one after
/// the other in the caller's tensor.
struct Compound {
    terms: Vec<Term>,
    weights: Vec<f64>,
    /// The statistics of a term that has none.
    empty: GpuTensor,
}

struct Term {
    plan: ShardedPlan,
    takes_distance: bool,
    /// The term's own statistics and their copies to and from its place in
    /// the caller's (a binding's offset must be aligned; a term's place need not be).
    own: Option<TermStats>,
}

struct TermStats {
    local: GpuTensor,
    global: GpuTensor,
    copy_out: Program,
    copy_in: Program,
}

/// A mean or sum of local terms: the value-only plan for the statistics,
/// the gradient plan (scaled on the GPU) for the finish.
struct Reduced {
    values: LossPlan,
    /// The slice's value, which `gather` turns into statistics.
    local_value: GpuTensor,
    /// The plan with the gradient, when the plan computes one, and the value it writes (that nobody reads).
    grad: Option<(LossPlan, GpuTensor)>,
    gather: Program,
    finish: Program,
    params: wgpu::Buffer,
    params_value: ShardParams,
}

/// Groups that span the batch: one plan, its program in two parts.
struct Groups {
    plan: LossPlan,
    /// Stands in for the value while the statistics are recorded (a
    /// converted plan checks one; nothing writes it).
    spare_value: GpuTensor,
    copy_out: Program,
    copy_in: Program,
}

/// The caller's slots of the plan's own programs.
mod slot {
    pub const STATS: usize = 0;
    pub const VALUE: usize = 1;
}

impl LossConfig {
    /// Plans the loss for one device's slice of a data-parallel batch
    /// (`shapes` are the slice's): [`ShardedPlan`]. An error names the
    /// configurations that cannot split (the Lovász losses over the whole
    /// batch, `per_image: false`, sort every pixel of the batch together).
    pub fn plan_sharded(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<ShardedPlan> {
        let loss = self.loss();
        loss.validate()?;
        let value_shape = loss.value_shape(shapes)?;
        let name = loss.name();
        let sharding = loss.sharding();
        let phases = match sharding {
            Sharding::Unsplittable(why) => return Err(Error::config(name, format!("does not split across data-parallel devices: {why}"))),
            Sharding::Local => Phases::Local(self.plan(ctx, shapes, options)?),
            Sharding::Groups => Phases::Groups(Groups::new(self, ctx, shapes, options, &value_shape)?),
            Sharding::Mean { log } | Sharding::Sum { log } => {
                let mean = matches!(sharding, Sharding::Mean { .. });
                Phases::Reduced(Reduced::new(self, ctx, shapes, options, &value_shape, mean, log)?)
            }
        };
        let stats_len = match &phases {
            Phases::Local(_) => 0,
            Phases::Reduced(r) => r.params_value.len as usize + r.params_value.mean as usize,
            Phases::Groups(g) => g.plan.split.as_ref().map_or(0, |s| s.len as usize),
            Phases::Compound(c) => c.terms.iter().map(|t| t.plan.stats_len).sum(),
        };
        Ok(ShardedPlan { ctx: ctx.clone(), loss: name, phases, stats_len, value_shape, options })
    }
}

impl LossConfig {
    /// Why this configuration cannot be planned for data-parallel devices
    /// ([`LossConfig::plan_sharded`]), or `None` when it can.
    pub fn unsplittable(&self) -> Option<&'static str> {
        match self.loss().sharding() {
            Sharding::Unsplittable(why) => Some(why),
            _ => None,
        }
    }

    /// The configuration without `hausdorff_dt`'s outer `log1p`, which a
    /// data-parallel finish applies to the global value instead.
    fn without_log(&self) -> LossConfig {
        match self {
            LossConfig::HausdorffDt(c) if c.log => LossConfig::HausdorffDt(HausdorffDtConfig { log: false, ..c.clone() }),
            c => c.clone(),
        }
    }
}

impl CompoundConfig {
    /// Plans the compound for one device's slice of a data-parallel batch
    /// ([`LossConfig::plan_sharded`]): every term sharded, scaled by its
    /// weight, accumulating after the first; the statistics are the terms'
    /// one after the other, in the terms' order. With f16 or bf16 gradients
    /// each term rounds its own share (the one-phase compound rounds once).
    pub fn plan_sharded(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<ShardedPlan> {
        let value_shape = self.check_shapes(shapes)?;
        let mut terms = Vec::with_capacity(self.terms.len());
        let mut offset = 0;
        for (i, t) in self.terms.iter().enumerate() {
            let plan = t.loss.plan_sharded(ctx, shapes, t.options(i, options, options.accumulate_grad))?;
            let len = plan.statistics_len();
            terms.push((plan, t.loss.takes_distance(), offset, len));
            offset += len;
        }
        let total = offset;
        let copy = ctx.kernel("shards.wgsl", "copy", &[])?;
        let terms = terms
            .into_iter()
            .map(|(plan, takes_distance, offset, len)| {
                let own = if len == 0 {
                    None
                } else {
                    let (local, global) = (GpuTensor::zeros(ctx, &[len], DType::F32)?, GpuTensor::zeros(ctx, &[len], DType::F32)?);
                    let program = |source: Binding, destination: Binding, source_offset, destination_offset, written| {
                        let params = ShardParams { len: len as u32, source_offset, destination_offset, ..Zeroable::zeroed() };
                        let params = Binding::Owned(ctx.create_buffer_with("shard copy params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM));
                        let step = Step::new(&copy, 64, vec![("sp", params), ("source", source), ("destination", destination)])?;
                        Ok::<_, Error>(Program::new("statistics", slots(total, written, None), vec![step]))
                    };
                    let copy_out = program(Binding::Owned(local.buffer.clone()), Binding::slot(slot::STATS), 0, offset as u32, true)?;
                    let copy_in = program(Binding::slot(slot::STATS), Binding::Owned(global.buffer.clone()), offset as u32, 0, false)?;
                    Some(TermStats { local, global, copy_out, copy_in })
                };
                Ok(Term { plan, takes_distance, own })
            })
            .collect::<Result<Vec<_>>>()?;
        let weights = self.terms.iter().map(|t| t.weight).collect();
        let phases = Phases::Compound(Compound { terms, weights, empty: GpuTensor::zeros(ctx, &[0], DType::F32)? });
        Ok(ShardedPlan { ctx: ctx.clone(), loss: "compound", phases, stats_len: total, value_shape, options })
    }
}

/// The slot specs of the plan's own programs: the statistics, and the value.
fn slots(stats_len: usize, stats_written: bool, value_shape: Option<&[usize]>) -> Vec<SlotSpec> {
    let mut slots = vec![SlotSpec { name: "statistics", shape: vec![stats_len], dtype: DType::F32, written: stats_written, required: true }];
    if let Some(shape) = value_shape {
        slots.push(SlotSpec { name: "value", shape: shape.to_vec(), dtype: DType::F32, written: true, required: true });
    }
    slots
}

impl Reduced {
    fn new(config: &LossConfig, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions, value_shape: &[usize], mean: bool, log: bool) -> Result<Self> {
        let values = config.without_log().plan(ctx, shapes, PlanOptions { scale: 1.0, accumulate_value: false, accumulate_grad: false, grad: false })?;
        let local_value = GpuTensor::zeros(ctx, value_shape, DType::F32)?;
        let len = value_shape.iter().product::<usize>();
        // Under log each of several values weighs its own gradient by
        // 1/(1 + v_i): the gradient plan keeps its log, and its gradient
        // pass reads the factors the finish writes (its split).
        let per_entry = log && len > 1;
        let grad = if options.grad {
            let inner = if per_entry { config.clone() } else { config.without_log() };
            let plan = inner.plan(ctx, shapes, PlanOptions { scale: 1.0, accumulate_value: false, ..options })?;
            if per_entry && plan.split.is_none() {
                return Err(Error::Device(format!("{}: a gradient with a factor per value planned no split", plan.program.name)));
            }
            Some((plan, GpuTensor::zeros(ctx, value_shape, DType::F32)?))
        } else {
            None
        };
        // The slice's denominator: the plan's own when it counts it from the
        // data, else the items of axis 0 (every constant mean here divides by
        // a multiple of them).
        let items = shapes.logits.first().copied().unwrap_or(1) as f32;
        let local_denominator = match &values.denominator {
            Some(d) => d.clone(),
            None => ctx.create_buffer_with("shard denominator", bytemuck::bytes_of(&items), wgpu::BufferUsages::STORAGE),
        };
        let params_value = ShardParams {
            len: len as u32,
            mean: mean as u32,
            log1p: log as u32,
            accumulate_value: options.accumulate_value as u32,
            scale: options.scale,
            per_entry: per_entry as u32,
            ..Zeroable::zeroed()
        };
        let params = ctx.create_buffer_with("shard params", bytemuck::bytes_of(&params_value), wgpu::BufferUsages::UNIFORM);
        let stats_len = len + mean as usize;
        let groups = stats_len.div_ceil(64) as u32;
        let gather_kernel = ctx.kernel("shards.wgsl", "gather", &[])?;
        let gather = Program::new(
            "statistics",
            slots(stats_len, true, None),
            vec![Step::new(
                &gather_kernel,
                groups,
                vec![
                    ("sp", Binding::owned(&params)),
                    ("local_value", Binding::Owned(local_value.buffer.clone())),
                    ("local_denominator", Binding::owned(&local_denominator)),
                    ("stats_out", Binding::slot(slot::STATS)),
                ],
            )?],
        );
        // The finish writes the gradient plan's scale (or its factor per
        // value entry); without a gradient, a stand-in.
        let grad_factors = match &grad {
            Some((plan, _)) if per_entry => plan.split.as_ref().expect("checked above").stats.clone(),
            Some((plan, _)) => plan.io.clone(),
            None => ctx.create_buffer_with("unused gradient factors", &[0u8; 16], wgpu::BufferUsages::STORAGE),
        };
        let finish_kernel = ctx.kernel("shards.wgsl", "finish", &[])?;
        let finish = Program::new(
            "finish",
            slots(stats_len, false, Some(value_shape)),
            vec![Step::new(
                &finish_kernel,
                len.div_ceil(64) as u32,
                vec![
                    ("sp", Binding::owned(&params)),
                    ("local_denominator", Binding::owned(&local_denominator)),
                    ("stats", Binding::slot(slot::STATS)),
                    ("value", Binding::slot(slot::VALUE)),
                    ("grad_factors", Binding::Owned(grad_factors)),
                ],
            )?],
        );
        Ok(Reduced { values, local_value, grad, gather, finish, params, params_value })
    }
}

impl Groups {
    fn new(config: &LossConfig, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions, value_shape: &[usize]) -> Result<Self> {
        let plan = config.plan(ctx, shapes, options)?;
        let Some(split) = plan.split.clone() else {
            return Err(Error::Device(format!("{}: a loss over batch groups planned no split", plan.program.name)));
        };
        let len = split.len as usize;
        let params = ShardParams { len: len as u32, scale: 1.0, ..Zeroable::zeroed() };
        let params = Binding::Owned(ctx.create_buffer_with("shard copy params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM));
        let copy = ctx.kernel("shards.wgsl", "copy", &[])?;
        let step = |source: Binding, destination: Binding| {
            Step::new(&copy, 64, vec![("sp", params.clone()), ("source", source), ("destination", destination)])
        };
        let copy_out = Program::new("statistics", slots(len, true, None), vec![step(Binding::owned(&split.stats), Binding::slot(slot::STATS))?]);
        let copy_in = Program::new("statistics", slots(len, false, None), vec![step(Binding::slot(slot::STATS), Binding::owned(&split.stats))?]);
        let spare_value = GpuTensor::zeros(ctx, value_shape, DType::F32)?;
        Ok(Groups { plan, spare_value, copy_out, copy_in })
    }
}

impl Compound {
    /// Distance maps go to the terms that take them; given to a compound with none, an error.
    fn check_distance(&self, inputs: LossInputs<'_>) -> Result<()> {
        if inputs.distance.is_some() && !self.terms.iter().any(|t| t.takes_distance) {
            return Err(Error::input("compound", "distance maps were given, but no term of this compound loss takes them"));
        }
        Ok(())
    }
}

impl Term {
    fn inputs<'a>(&self, inputs: LossInputs<'a>) -> LossInputs<'a> {
        if self.takes_distance { inputs } else { LossInputs { distance: None, ..inputs } }
    }
}

impl ShardedPlan {
    /// How many f32 the statistics hold (0 when nothing couples the
    /// slices); the same on every device for slices of any size. Their
    /// layout, per loss, is in the README ("Data-parallel training").
    pub fn statistics_len(&self) -> usize {
        self.stats_len
    }

    /// The value's shape, as the one-phase plan's ([`LossPlan::value_shape`]).
    pub fn value_shape(&self) -> &[usize] {
        &self.value_shape
    }

    /// The options the plan was made with.
    pub fn options(&self) -> PlanOptions {
        self.options
    }

    /// The status words of the plan's last phase ([`LossPlan::status_buffer`]),
    /// one per loss (a compound's in the terms' order): the rules the slice's
    /// inputs broke. A non-finite input on any device makes the statistics
    /// NaN, and with them every device's value.
    pub fn status_buffers(&self) -> Vec<&wgpu::Buffer> {
        self.last_plans().into_iter().filter_map(LossPlan::status_buffer).collect()
    }

    /// The named extra results of this slice ([`LossPlan::extras`]), as the
    /// last phase wrote them (`mask_giou`'s `enclosing_count` of its instances).
    pub fn extras(&self) -> Vec<(&'static str, &GpuTensor)> {
        self.last_plans().into_iter().flat_map(LossPlan::extras).collect()
    }

    /// The plans whose kernels run last, one per loss: those that read the inputs for the gradient.
    fn last_plans(&self) -> Vec<&LossPlan> {
        match &self.phases {
            Phases::Local(plan) | Phases::Groups(Groups { plan, .. }) => vec![plan],
            Phases::Reduced(r) => vec![r.grad.as_ref().map_or(&r.values, |(p, _)| p)],
            Phases::Compound(c) => c.terms.iter().flat_map(|t| t.plan.last_plans()).collect(),
        }
    }

    /// Records the first phase: the slice's statistics into `stats`
    /// (f32 `[statistics_len]`, which the engine then sums over devices).
    /// Nothing else the caller passed is written.
    pub fn record_statistics(&self, encoder: &mut wgpu::CommandEncoder, inputs: LossInputs<'_>, stats: &GpuTensor) -> Result<()> {
        self.check_stats(stats)?;
        match &self.phases {
            Phases::Local(_) => Ok(()),
            Phases::Reduced(r) => {
                r.values.record(encoder, inputs, LossOutputs::value_only(&r.local_value))?;
                r.gather.record(&self.ctx, encoder, &[Some(stats)])
            }
            Phases::Groups(g) => {
                g.plan.record_part(encoder, inputs, LossOutputs::value_only(&g.spare_value), Part::Statistics)?;
                g.copy_out.record(&self.ctx, encoder, &[Some(stats)])
            }
            Phases::Compound(c) => {
                c.check_distance(inputs)?;
                for t in &c.terms {
                    if let Some(own) = &t.own {
                        t.plan.record_statistics(encoder, t.inputs(inputs), &own.local)?;
                        own.copy_out.record(&self.ctx, encoder, &[Some(stats)])?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Records the second phase, given `global_stats`, the element-wise sum
    /// of every device's statistics: the global loss's value into
    /// `outputs.value` (the same on every device), and into `outputs.grad`
    /// the gradient of the global loss with respect to this slice's logits,
    /// written or accumulated as the options say. The inputs must be the
    /// ones [`ShardedPlan::record_statistics`] was last given (the plan keeps
    /// what it learnt of them until then). With one device it gives what
    /// [`LossPlan::record`] gives.
    pub fn record_finish(&self, encoder: &mut wgpu::CommandEncoder, inputs: LossInputs<'_>, global_stats: &GpuTensor, outputs: LossOutputs<'_>) -> Result<()> {
        self.check_stats(global_stats)?;
        match &self.phases {
            Phases::Local(plan) => plan.record(encoder, inputs, outputs),
            Phases::Reduced(r) => {
                if r.grad.is_some() && outputs.grad.is_none() {
                    return Err(Error::input(self.loss, "grad is required but was not given"));
                }
                match (&r.grad, outputs.grad) {
                    (Some((plan, spent)), Some(grad)) if r.params_value.per_entry != 0 => {
                        // The gradient plan's own factors first, then the global ones in their place.
                        let inner = LossOutputs::new(spent, grad);
                        plan.record_part(encoder, inputs, inner, Part::Statistics)?;
                        r.finish.record(&self.ctx, encoder, &[Some(global_stats), Some(outputs.value)])?;
                        plan.record_part(encoder, inputs, inner, Part::Finish)
                    }
                    (Some((plan, spent)), Some(grad)) => {
                        r.finish.record(&self.ctx, encoder, &[Some(global_stats), Some(outputs.value)])?;
                        plan.record(encoder, inputs, LossOutputs::new(spent, grad))
                    }
                    (None, Some(_)) => Err(Error::input(self.loss, "grad was given, but this plan was made without it")),
                    _ => r.finish.record(&self.ctx, encoder, &[Some(global_stats), Some(outputs.value)]),
                }
            }
            Phases::Groups(g) => {
                g.copy_in.record(&self.ctx, encoder, &[Some(global_stats)])?;
                g.plan.record_part(encoder, inputs, outputs, Part::Finish)
            }
            Phases::Compound(c) => {
                c.check_distance(inputs)?;
                for t in &c.terms {
                    let global = match &t.own {
                        Some(own) => {
                            own.copy_in.record(&self.ctx, encoder, &[Some(global_stats)])?;
                            &own.global
                        }
                        None => &c.empty,
                    };
                    t.plan.record_finish(encoder, t.inputs(inputs), global, outputs)?;
                }
                Ok(())
            }
        }
    }

    /// Sets the factor on value and gradient from the next submission on ([`LossPlan::set_scale`]).
    pub fn set_scale(&mut self, scale: f32) {
        self.options.scale = scale;
        match &mut self.phases {
            Phases::Local(plan) | Phases::Groups(Groups { plan, .. }) => plan.set_scale(scale),
            Phases::Reduced(r) => {
                r.params_value.scale = scale;
                self.ctx.queue().write_buffer(&r.params, 0, bytemuck::bytes_of(&r.params_value));
            }
            Phases::Compound(c) => {
                for (t, w) in c.terms.iter_mut().zip(&c.weights) {
                    t.plan.set_scale(scale * *w as f32);
                }
            }
        }
    }

    fn check_stats(&self, stats: &GpuTensor) -> Result<()> {
        if stats.dtype != DType::F32 || stats.shape != [self.stats_len] {
            return Err(Error::input(self.loss, format!(
                "the statistics are {} {:?}; this plan's are f32 [{}]",
                stats.dtype.name(),
                stats.shape,
                self.stats_len
            )));
        }
        Ok(())
    }
}
