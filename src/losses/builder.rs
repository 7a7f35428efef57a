//! The one plan builder every loss's planner uses: it makes the buffers all
//! plans share (the io uniform, the status word, stand-ins for unused
//! bindings), the standard caller slots, steps bound by their WGSL names,
//! and the sum-to-value tail, and returns the [`LossPlan`].

use std::sync::Arc;

use bytemuck::Pod;

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::pipeline::Kernel;
use crate::gpu::pool::PooledBuffer;
use crate::gpu::program::{Binding, Program, SlotSpec, Step};
use crate::gpu::tensor::{DType, GpuTensor};
use crate::losses::InputShapes;
use crate::losses::plan::{LossPlan, OptionalInput, PlanOptions, Split, slot};
use crate::primitives::reduce::record_segmented_sum;

/// A loss plan under construction. Steps run in the order they are added.
pub(crate) struct PlanBuilder<'a> {
    loss: &'static str,
    ctx: &'a GpuContext,
    options: PlanOptions,
    io: wgpu::Buffer,
    status: Option<wgpu::Buffer>,
    unused_input: Option<wgpu::Buffer>,
    steps: Vec<Step>,
    scratch: Vec<PooledBuffer>,
    slots: Vec<SlotSpec>,
    extras: Vec<(&'static str, GpuTensor)>,
    split: Option<Split>,
    denominator: Option<wgpu::Buffer>,
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE;

impl<'a> PlanBuilder<'a> {
    /// A plan for `shapes`, whose targets are `target_dtype`. The caller's
    /// slots are the standard ones: logits, target, weight (required when
    /// `shapes` has one), gradient (required when the options ask for it)
    /// and value (its shape set by [`PlanBuilder::finish`]).
    pub fn new(loss: &'static str, ctx: &'a GpuContext, options: PlanOptions, shapes: &InputShapes, target_dtype: DType) -> Self {
        // STORAGE too: a data-parallel plan sets the scale on the GPU (losses/shards.rs).
        let io = ctx.create_buffer_with("loss io", bytemuck::bytes_of(&options.io()), wgpu::BufferUsages::UNIFORM | STORAGE);
        let spec = |name, shape: &[usize], dtype, written, required| SlotSpec { name, shape: shape.to_vec(), dtype, written, required };
        // The types the kernels take: f32 and i32, or f16 and bf16 where
        // the loss reads them in place (losses/convert.rs).
        let d = shapes.dtypes;
        let slots = vec![
            spec("logits", &shapes.logits, d.logits, false, true),
            spec("target", &shapes.target, d.target.unwrap_or(target_dtype), false, true),
            spec("weight", shapes.weight.as_deref().unwrap_or(&shapes.logits), d.weight, false, shapes.weight.is_some()),
            spec("grad", &shapes.logits, d.grad(), true, options.grad),
            spec("value", &[], DType::F32, true, true),
        ];
        PlanBuilder { loss, ctx, options, io, status: None, unused_input: None, steps: Vec::new(), scratch: Vec::new(), slots, extras: Vec::new(), split: None, denominator: None }
    }

    /// Renames the logits and target slots in error messages (`box_iou`'s
    /// `pred_boxes` and `target_boxes`).
    pub fn input_names(mut self, [logits, target]: [&'static str; 2]) -> Self {
        self.slots[slot::LOGITS].name = logits;
        self.slots[slot::TARGET].name = target;
        self
    }

    /// The plan's `LossIo` uniform (scale, accumulate flags).
    pub fn io(&self) -> Binding {
        Binding::owned(&self.io)
    }

    /// The plan's status word, which [`LossPlan::status_buffer`] reports and
    /// each recording clears; made on first use.
    pub fn status(&mut self) -> Binding {
        let ctx = self.ctx;
        let status = self
            .status
            .get_or_insert_with(|| ctx.create_buffer_with("loss status", &[0u8; 4], STORAGE | wgpu::BufferUsages::COPY_SRC));
        Binding::owned(status)
    }

    /// A uniform buffer holding `value`.
    pub fn uniform<T: Pod>(&self, label: &str, value: &T) -> Binding {
        Binding::Owned(self.ctx.create_buffer_with(label, bytemuck::bytes_of(value), wgpu::BufferUsages::UNIFORM))
    }

    /// A storage buffer the plan owns, holding `bytes`.
    pub fn storage(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.ctx.create_buffer_with(label, bytes, STORAGE)
    }

    /// A pooled storage buffer of at least `bytes`, on loan for the plan's life.
    pub fn scratch(&mut self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.scratch_with(label, bytes, STORAGE)
    }

    /// [`PlanBuilder::scratch`] with other usages.
    pub fn scratch_with(&mut self, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let pooled = self.ctx.scratch(label, bytes, usage)?;
        let buffer = pooled.buffer().clone();
        self.scratch.push(pooled);
        Ok(buffer)
    }

    /// Keeps pooled buffers on loan for the plan's life.
    pub fn keep(&mut self, buffers: impl IntoIterator<Item = PooledBuffer>) {
        self.scratch.extend(buffers);
    }

    /// A stand-in for a read binding this configuration does not need (the
    /// kernel still declares it, and every declared binding needs a buffer).
    pub fn unused_input(&mut self) -> Binding {
        let ctx = self.ctx;
        Binding::owned(self.unused_input.get_or_insert_with(|| ctx.create_buffer_with("unused input", &[0u8; 16], STORAGE)))
    }

    /// A stand-in for a written binding this configuration does not need: a
    /// buffer of its own each time, since a written binding may alias no other.
    pub fn unused_output(&self, label: &str) -> Binding {
        Binding::Owned(self.ctx.create_buffer_with(label, &[0u8; 16], STORAGE))
    }

    /// The caller's gradient at `range` when the plan computes one, else a stand-in.
    pub fn grad_or_unused(&self, range: Option<&crate::gpu::chunks::ElementRange>) -> Binding {
        if self.options.grad { Binding::Slot(slot::GRAD, range.cloned()) } else { self.unused_output("unused grad") }
    }

    /// The pipeline for `entry` of `file` with override constants.
    pub fn kernel(&self, file: &'static str, entry: &'static str, constants: &[(&'static str, f64)]) -> Result<Arc<Kernel>> {
        self.ctx.kernel(file, entry, constants)
    }

    /// The `//#elements` bindings of the kernels that read their logits
    /// and write their gradient in place (`InPlace::LOGITS_AND_GRAD`).
    pub const LOGITS_AND_GRAD: [(&'static str, usize); 2] = [("logits", slot::LOGITS), ("grad", slot::GRAD)];

    /// [`PlanBuilder::kernel`] whose `//#elements` bindings hold the
    /// element types of the caller's slots: `(binding, slot)` pairs.
    pub fn kernel_on(
        &self,
        file: &'static str,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        elements: &[(&'static str, usize)],
    ) -> Result<Arc<Kernel>> {
        let types: Vec<(&'static str, DType)> = elements.iter().map(|(name, slot)| (*name, self.slots[*slot].dtype)).collect();
        self.ctx.kernel_with_elements(file, entry, constants, &types)
    }

    /// Appends a dispatch of `groups` workgroups, its bindings by WGSL name.
    pub fn dispatch(&mut self, kernel: &Arc<Kernel>, groups: u32, bindings: Vec<(&str, Binding)>) -> Result<()> {
        self.steps.push(Step::new(kernel, groups, bindings)?);
        Ok(())
    }

    /// The steps so far, for the primitives that append their own.
    pub fn steps_mut(&mut self) -> &mut Vec<Step> {
        &mut self.steps
    }

    /// Takes the steps so far out of the plan (a planner that builds two
    /// programs from one builder).
    pub fn take_steps(&mut self) -> Vec<Step> {
        std::mem::take(&mut self.steps)
    }

    /// Appends the segmented sum of `segments` runs of `len` values of `input` into `output`.
    pub fn segmented_sum(&mut self, input: Binding, segments: u64, len: u64, output: Binding) -> Result<()> {
        let levels = record_segmented_sum(self.ctx, &mut self.steps, input, segments, len, output)?;
        self.scratch.extend(levels);
        Ok(())
    }

    /// A one-value storage buffer holding a mean's denominator.
    pub fn denominator(&self, value: f32) -> wgpu::Buffer {
        self.storage("loss denominator", bytemuck::bytes_of(&value))
    }

    /// The tail every reduced loss shares: the value slot gets
    /// `scale · Σ partials[0..len] / denominator[0]` (0 when the denominator
    /// is 0), written or accumulated as the options say; NaN when an earlier
    /// step set [`STATUS_NON_FINITE`](crate::losses::plan::STATUS_NON_FINITE).
    pub fn sum_to_value(&mut self, partials: &wgpu::Buffer, len: u64, denominator: &wgpu::Buffer) -> Result<()> {
        let sums = self.scratch("loss sum", 4)?;
        self.segmented_sum(Binding::owned(partials), 1, len, Binding::owned(&sums))?;
        let finalize = self.kernel("finalize.wgsl", "finalize", &[("COUNT", 1.0)])?;
        let io = self.io();
        let status = self.status();
        self.dispatch(
            &finalize,
            1,
            vec![
                ("io", io),
                ("denom", Binding::owned(denominator)),
                ("sums", Binding::owned(&sums)),
                ("value", Binding::slot(slot::VALUE)),
                ("status", status),
            ],
        )
    }

    /// Divides the plan's programs before their last `tail` steps, which
    /// read the first `len` f32 of `stats` ([`Split`]: what a data-parallel
    /// plan records in two parts, replacing `stats` between them).
    pub fn split_tail(&mut self, stats: &wgpu::Buffer, len: u64, tail: usize) {
        self.split = Some(Split { tail, stats: stats.clone(), len });
    }

    /// Names the buffer holding the mean's denominator when the plan
    /// computes it from the data (added across devices by a data-parallel plan).
    pub fn data_denominator(&mut self, buffer: &wgpu::Buffer) {
        self.denominator = Some(buffer.clone());
    }

    /// Adds a named result beside value and gradient ([`LossPlan::extra`]).
    pub fn extra(&mut self, name: &'static str, tensor: GpuTensor) {
        self.extras.push((name, tensor));
    }

    /// A second program of the same plan, on the same caller slots and
    /// `extra_slot`, with the value of `value_shape`.
    pub fn program(&self, value_shape: &[usize], extra_slot: SlotSpec, steps: Vec<Step>) -> Program {
        let mut slots = self.slots.clone();
        slots[slot::VALUE].shape = value_shape.to_vec();
        slots.push(extra_slot);
        Program::new(self.loss, slots, steps)
    }

    /// The plan, its value of `value_shape`.
    pub fn finish(self, value_shape: Vec<usize>) -> LossPlan {
        self.finish_with(value_shape, None, None)
    }

    /// The plan with an optional input in slot `optional.slot`: `own` is the
    /// spec of the stand-in the plan's program writes there.
    pub(crate) fn finish_with(mut self, value_shape: Vec<usize>, own: Option<SlotSpec>, optional: Option<OptionalInput>) -> LossPlan {
        self.slots[slot::VALUE].shape = value_shape.clone();
        self.slots.extend(own);
        LossPlan {
            ctx: self.ctx.clone(),
            program: Program::new(self.loss, self.slots, self.steps),
            io: self.io,
            status: self.status,
            value_shape,
            options: self.options,
            _scratch: self.scratch,
            extras: self.extras,
            optional,
            optional_given: Default::default(),
            conversion: None,
            split: self.split,
            denominator: self.denominator,
        }
    }
}
