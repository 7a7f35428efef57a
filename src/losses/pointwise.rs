//! The host side shared by the per-pixel losses (`bce`, `cross_entropy`,
//! `focal`) and the per-box `box_iou`: chunking the items over bindings, one
//! fused value-and-gradient pass, the reduction of its per-tile partial sums,
//! and the final value.

use crate::error::{Error, Result};
use crate::gpu::chunks::PixelLayout;
use crate::gpu::layout::{Chunk, LOSS_TILE};
use crate::gpu::program::{Program, SlotSpec, Source, Step};
use crate::gpu::{DType, GpuContext, PooledBuffer};
use crate::losses::plan::{LossPlan, PlanOptions, slot};
use crate::losses::Reduction;
use crate::primitives::reduce::{Place, record_segmented_sum};

/// Most classes a softmax kernel handles: a thread loops over the classes
/// four times for each of its four pixels (16·C iterations), and lavapipe
/// cuts an invocation after 65,535 loop iterations.
pub(crate) const MAX_CLASSES: usize = 2048;

/// Which fused kernel, and what it binds beside logits and targets.
pub(crate) enum Kernel {
    /// `sigmoid_pointwise.wgsl`: element-wise; targets f32; optional per-element weights.
    Sigmoid { has_weight: bool },
    /// `softmax_pointwise.wgsl`: per pixel over C classes; i32 labels; class weights.
    Softmax { class_weights: Vec<f32> },
    /// `box_iou.wgsl`: per box (`[M, 4]` as N = M, C = 4, S = 1); f32 target
    /// boxes; one value per box; a status word for degenerate boxes.
    Boxes,
}

impl Kernel {
    /// Shader file, target dtype, whether targets are per item (else per
    /// element), whether "none" values are per item (else per element).
    fn layout(&self) -> (&'static str, DType, bool, bool) {
        match self {
            Kernel::Sigmoid { .. } => ("sigmoid_pointwise.wgsl", DType::F32, false, false),
            Kernel::Softmax { .. } => ("softmax_pointwise.wgsl", DType::I32, true, true),
            Kernel::Boxes => ("box_iou.wgsl", DType::F32, false, true),
        }
    }

    /// What error messages call the logits and the targets.
    fn slot_names(&self) -> (&'static str, &'static str) {
        match self {
            Kernel::Boxes => ("pred_boxes", "target_boxes"),
            _ => ("logits", "target"),
        }
    }
}

/// What a mean divides by.
pub(crate) enum Denominator {
    /// Known when the plan is made (numel, N·|S|, or 1 for sum and none).
    Constant(f64),
    /// Σ v·w[y] over the labels, computed on the GPU before the main pass.
    LabelWeights,
}

impl Denominator {
    /// `count` for the mean, 1 for the sum and for no reduction.
    pub fn mean_over(reduction: Reduction, count: usize) -> Self {
        Denominator::Constant(if reduction == Reduction::Mean { count as f64 } else { 1.0 })
    }
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
        let layout = PixelLayout { images: self.images, classes: self.classes, spatial: self.spatial };
        let chunks = layout.chunks(items, 1, ctx.binding_limit(), ctx.inner.offset_alignment, |a, b| a..b)?;

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
        let tiles_total: u64 = chunks.iter().map(|ch| (ch.units.end - ch.units.start).div_ceil(LOSS_TILE)).sum();
        let partials = ctx.scratch("loss partials", tiles_total * 4, storage)?;
        let status_buffer = || owned("loss status", &[0u8; 4], storage | wgpu::BufferUsages::COPY_SRC);
        // Binding 5: the caller's weights (None), a plan buffer, or nothing (the kernel has none).
        let (aux, status) = match &self.kernel {
            Kernel::Sigmoid { has_weight: true } => (None, None),
            Kernel::Sigmoid { has_weight: false } => (Some(Some(dummy.clone())), None),
            Kernel::Softmax { class_weights } => (
                Some(Some(owned("class weights", bytemuck::cast_slice(class_weights), storage))),
                Some(status_buffer()),
            ),
            Kernel::Boxes => (Some(None), Some(status_buffer())),
        };
        let (file, target_dtype, target_per_pixel, value_per_pixel) = self.kernel.layout();
        let write_elements = self.reduction == Reduction::None;
        let main = ctx.kernel(file, "main", &[])?;

        let mut prologue = Vec::new();
        let mut steps = Vec::new();
        let mut tile0 = 0u64;
        for ch in &chunks {
            let (lr, pr) = (ch.logits.clone(), ch.pixels.clone());
            let chunk = layout.chunk_uniform(ch, tile0);
            let groups = (ch.units.end - ch.units.start).div_ceil(LOSS_TILE) as u32;
            tile0 += groups as u64;
            let params = owned("loss params", &(self.params)(chunk, write_elements, options.grad), wgpu::BufferUsages::UNIFORM);
            let target_range = if target_per_pixel { pr.clone() } else { lr.clone() };
            let aux_source = match &aux {
                Some(Some(b)) => Some(Source::Owned(b.clone())),
                Some(None) => None,
                None => Some(Source::Slot(slot::WEIGHT, Some(lr.clone()))),
            };
            let mut sources = vec![
                (0, Source::Owned(params.clone())),
                (1, Source::Owned(io.clone())),
                (2, Source::Owned(denom.clone())),
                (3, Source::Slot(slot::LOGITS, Some(lr.clone()))),
                (4, Source::Slot(slot::TARGET, Some(target_range.clone()))),
            ];
            sources.extend(aux_source.map(|a| (5, a)));
            sources.extend([
                (6, if options.grad { Source::Slot(slot::GRAD, Some(lr.clone())) } else { Source::Owned(dummy_grad.clone()) }),
                (7, if write_elements {
                    Source::Slot(slot::VALUE, Some(if value_per_pixel { pr.clone() } else { lr.clone() }))
                } else {
                    Source::Owned(dummy_value.clone())
                }),
                (8, Source::Owned(partials.buffer().clone())),
            ]);
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
                        (5, Source::Owned(aux.clone().flatten().expect("class weights"))),
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
            if value_per_pixel {
                // The logits without their class axis: [N, S…].
                let l = self.logits_shape;
                std::iter::once(l[0]).chain(l[2..].iter().copied()).collect()
            } else {
                self.logits_shape.to_vec()
            }
        } else {
            let sums = ctx.scratch("loss sum", 4, storage)?;
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
        let (logits_name, target_name) = self.kernel.slot_names();
        let slots = vec![
            SlotSpec { name: logits_name, shape: self.logits_shape.to_vec(), dtype: DType::F32, written: false, required: true },
            SlotSpec { name: target_name, shape: self.target_shape.to_vec(), dtype: target_dtype, written: false, required: true },
            SlotSpec { name: "weight", shape: self.logits_shape.to_vec(), dtype: DType::F32, written: false, required: has_weight },
            SlotSpec { name: "grad", shape: self.logits_shape.to_vec(), dtype: DType::F32, written: true, required: options.grad },
            SlotSpec { name: "value", shape: value_shape.clone(), dtype: DType::F32, written: true, required: true },
        ];
        Ok(LossPlan {
            ctx: ctx.clone(),
            program: Program::new(slots, prologue),
            io,
            status,
            value_shape,
            options,
            _scratch: scratch,
            extras: Vec::new(),
            optional: None,
        })
    }
}
