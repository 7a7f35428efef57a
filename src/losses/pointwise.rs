//! The host side shared by the per-pixel losses (`bce`, `cross_entropy`,
//! `focal`): chunking the pixels over bindings, one fused value-and-gradient
//! pass, the reduction of its per-tile partial sums, and the final value.

use crate::error::{Error, Result};
use crate::gpu::chunks::{ElementRange, plan_chunks};
use crate::gpu::layout::{Chunk, LOSS_TILE};
use crate::gpu::program::{Program, SlotSpec, Source, Step};
use crate::gpu::{DType, GpuContext, PooledBuffer};
use crate::losses::plan::{LossPlan, PlanOptions, slot};
use crate::losses::Reduction;
use crate::primitives::reduce::{Place, record_segmented_sum};

/// Most classes a softmax kernel handles: each pixel loops over the classes
/// a few times, and lavapipe cuts an invocation after 65,535 loop iterations.
pub(crate) const MAX_CLASSES: usize = 4096;

/// Which of the two fused kernels, and what it binds beside logits and targets.
pub(crate) enum Kernel {
    /// `sigmoid_pointwise.wgsl`: element-wise; targets f32; optional per-element weights.
    Sigmoid { has_weight: bool },
    /// `softmax_pointwise.wgsl`: per pixel over C classes; i32 labels; class weights.
    Softmax { class_weights: Vec<f32> },
}

/// What a mean divides by.
pub(crate) enum Denominator {
    /// Known when the plan is made (numel, N·|S|, or 1 for sum and none).
    Constant(f64),
    /// Σ v·w[y] over the labels, computed on the GPU before the main pass.
    LabelWeights,
}

/// A per-pixel loss to plan: `[N, C, S]` logits (C = 1 and S = numel for
/// element-wise kernels), with the kernel's own uniform bytes per chunk.
pub(crate) struct Pointwise<'a> {
    pub loss: &'static str,
    pub kernel: Kernel,
    pub logits_shape: &'a [usize],
    pub target_shape: &'a [usize],
    pub images: u64,
    pub classes: u64,
    pub spatial: u64,
    pub reduction: Reduction,
    pub denominator: Denominator,
    /// The kernel's `Params` for one chunk, flags already set.
    pub params: &'a dyn Fn(Chunk, bool, bool) -> Vec<u8>,
}

impl Pointwise<'_> {
    pub fn plan(&self, ctx: &GpuContext, options: PlanOptions) -> Result<LossPlan> {
        let items = self.images * self.spatial;
        let total_elems = items * self.classes;
        if items == 0 {
            return Err(Error::input(format!("{}: the logits {:?} hold no element", self.loss, self.logits_shape)));
        }
        if total_elems >= 1 << 31 {
            return Err(Error::Limit(format!("{}: {total_elems} logits exceed the 2^31 the kernels index", self.loss)));
        }
        let align = ctx.inner.offset_alignment;
        let (c, s) = (self.classes, self.spatial);
        let logit_range = |a: u64, b: u64| {
            let (na, sa) = (a / s, a % s);
            let (nb, sb) = ((b - 1) / s, (b - 1) % s);
            ElementRange::new(na * c * s + sa, nb * c * s + (c - 1) * s + sb + 1, align)
        };
        let pixel_range = |a: u64, b: u64| ElementRange::new(a, b, align);
        let chunks = plan_chunks(items, LOSS_TILE, ctx.binding_limit(), |a, b| {
            logit_range(a, b).bytes().max(pixel_range(a, b).bytes())
        })?;

        let storage = wgpu::BufferUsages::STORAGE;
        let mut scratch: Vec<PooledBuffer> = Vec::new();
        let owned = |label: &str, bytes: &[u8], usage: wgpu::BufferUsages| ctx.create_buffer_with(label, bytes, usage);
        let io = owned("loss io", bytemuck::bytes_of(&options.io()), wgpu::BufferUsages::UNIFORM);
        let denom_value = match self.denominator {
            Denominator::Constant(d) => d as f32,
            Denominator::LabelWeights => 0.0,
        };
        let denom = owned("loss denominator", bytemuck::bytes_of(&denom_value), storage);
        // Unused bindings still need a buffer, and a written one may not alias any other.
        let dummy = owned("unused input", &[0u8; 16], storage);
        let dummy_grad = owned("unused grad", &[0u8; 16], storage);
        let dummy_value = owned("unused value", &[0u8; 16], storage);
        let tiles_total: u64 = chunks.iter().map(|r| (r.end - r.start).div_ceil(LOSS_TILE)).sum();
        let partials = ctx.scratch("loss partials", tiles_total * 4, storage);
        let (aux, status) = match &self.kernel {
            Kernel::Sigmoid { has_weight: true } => (None, None),
            Kernel::Sigmoid { has_weight: false } => (Some(dummy.clone()), None),
            Kernel::Softmax { class_weights } => (
                Some(owned("class weights", bytemuck::cast_slice(class_weights), storage)),
                Some(owned("loss status", &[0u8; 4], storage | wgpu::BufferUsages::COPY_SRC)),
            ),
        };
        let (file, target_dtype, value_per_pixel) = match self.kernel {
            Kernel::Sigmoid { .. } => ("sigmoid_pointwise.wgsl", DType::F32, false),
            Kernel::Softmax { .. } => ("softmax_pointwise.wgsl", DType::I32, true),
        };
        let write_elements = self.reduction == Reduction::None;
        let main = ctx.kernel(file, "main", &[])?;

        let mut prologue = Vec::new();
        let mut steps = Vec::new();
        let mut tile0 = 0u64;
        for range in &chunks {
            let (lr, pr) = (logit_range(range.start, range.end), pixel_range(range.start, range.end));
            let chunk = Chunk {
                count: (range.end - range.start) as u32,
                item0: range.start as u32,
                tile0: tile0 as u32,
                first_item: pr.first as u32,
                first_elem: lr.first as u32,
                spatial: s as u32,
                classes: c as u32,
                _pad: 0,
            };
            let groups = (range.end - range.start).div_ceil(LOSS_TILE) as u32;
            tile0 += groups as u64;
            let params = owned("loss params", &(self.params)(chunk, write_elements, options.grad), wgpu::BufferUsages::UNIFORM);
            let target_range = if value_per_pixel { pr.clone() } else { lr.clone() };
            let aux_source = match &aux {
                Some(b) => Source::Owned(b.clone()),
                None => Source::Slot(slot::WEIGHT, Some(lr.clone())),
            };
            let mut sources = vec![
                (0, Source::Owned(params.clone())),
                (1, Source::Owned(io.clone())),
                (2, Source::Owned(denom.clone())),
                (3, Source::Slot(slot::LOGITS, Some(lr.clone()))),
                (4, Source::Slot(slot::TARGET, Some(target_range.clone()))),
                (5, aux_source),
                (6, if options.grad { Source::Slot(slot::GRAD, Some(lr.clone())) } else { Source::Owned(dummy_grad.clone()) }),
                (7, if write_elements {
                    Source::Slot(slot::VALUE, Some(if value_per_pixel { pr.clone() } else { lr.clone() }))
                } else {
                    Source::Owned(dummy_value.clone())
                }),
                (8, Source::Owned(partials.buffer().clone())),
            ];
            if let Some(status) = &status {
                sources.push((9, Source::Owned(status.clone())));
            }
            if matches!(self.denominator, Denominator::LabelWeights) {
                let weight_sum = ctx.kernel(file, "weight_sum", &[])?;
                prologue.push(Step {
                    kernel: weight_sum,
                    sources: vec![
                        (0, Source::Owned(params.clone())),
                        (4, Source::Slot(slot::TARGET, Some(target_range))),
                        (5, Source::Owned(aux.clone().expect("class weights"))),
                        (8, Source::Owned(partials.buffer().clone())),
                        (9, Source::Owned(status.clone().expect("status"))),
                    ],
                    groups,
                });
            }
            steps.push(Step { kernel: main.clone(), sources, groups });
        }

        let partial_place = Place::Owned(partials.buffer().clone());
        if matches!(self.denominator, Denominator::LabelWeights) {
            scratch.extend(record_segmented_sum(ctx, &mut prologue, partial_place.clone(), 1, tiles_total, Place::Owned(denom.clone()))?);
        }
        let value_shape = if write_elements {
            if value_per_pixel { self.target_shape.to_vec() } else { self.logits_shape.to_vec() }
        } else {
            let sums = ctx.scratch("loss sum", 4, storage);
            scratch.extend(record_segmented_sum(ctx, &mut steps, partial_place, 1, tiles_total, Place::Owned(sums.buffer().clone()))?);
            steps.push(Step {
                kernel: ctx.kernel("finalize.wgsl", "finalize", &[("COUNT", 1.0)])?,
                sources: vec![
                    (0, Source::Owned(io.clone())),
                    (1, Source::Owned(denom.clone())),
                    (2, Source::Owned(sums.buffer().clone())),
                    (3, Source::Slot(slot::VALUE, None)),
                ],
                groups: 1,
            });
            scratch.push(sums);
            vec![1]
        };
        scratch.push(partials);
        prologue.extend(steps);

        let has_weight = matches!(self.kernel, Kernel::Sigmoid { has_weight: true });
        let slots = vec![
            SlotSpec { name: "logits", shape: self.logits_shape.to_vec(), dtype: DType::F32, written: false, required: true },
            SlotSpec { name: "target", shape: self.target_shape.to_vec(), dtype: target_dtype, written: false, required: true },
            SlotSpec { name: "weight", shape: self.logits_shape.to_vec(), dtype: DType::F32, written: false, required: has_weight },
            SlotSpec { name: "grad", shape: self.logits_shape.to_vec(), dtype: DType::F32, written: true, required: options.grad },
            SlotSpec { name: "value", shape: value_shape.clone(), dtype: DType::F32, written: true, required: true },
        ];
        Ok(LossPlan {
            ctx: ctx.clone(),
            program: Program { slots, steps: prologue },
            io,
            status,
            value_shape,
            options,
            _scratch: scratch,
            optional: None,
        })
    }
}
