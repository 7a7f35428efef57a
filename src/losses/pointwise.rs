//! The host side shared by the per-pixel losses (`bce`, `cross_entropy`,
//! `focal`) and the per-box `box_iou`: chunking the items over bindings, one
//! fused value-and-gradient pass, the reduction of its per-tile partial sums,
//! and the final value.

use crate::error::{Error, Result};
use crate::gpu::chunks::PixelLayout;
use crate::gpu::context::GpuContext;
use crate::gpu::layout::{Chunk, LOSS_TILE};
use crate::gpu::program::{Binding, Step};
use crate::gpu::tensor::DType;
use crate::losses::builder::PlanBuilder;
use crate::losses::plan::{LossPlan, PlanOptions, slot};
use crate::losses::{InputShapes, Reduction};

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
    fn slot_names(&self) -> [&'static str; 2] {
        match self {
            Kernel::Boxes => ["pred_boxes", "target_boxes"],
            _ => ["logits", "target"],
        }
    }

    /// The `//#elements` bindings of its kernel and the slots they bind:
    /// the tensors it reads and writes in their own type (`Loss::in_place`).
    fn elements(&self) -> &'static [(&'static str, usize)] {
        match self {
            Kernel::Sigmoid { .. } => &[("logits", slot::LOGITS), ("targets", slot::TARGET), ("weights", slot::WEIGHT), ("grad", slot::GRAD)],
            Kernel::Softmax { .. } => &PlanBuilder::LOGITS_AND_GRAD,
            Kernel::Boxes => &[],
        }
    }

    /// The WGSL names of the kernel's logits, targets and weights (`None`: it has no weights).
    fn binding_names(&self) -> (&'static str, &'static str, Option<&'static str>) {
        match self {
            Kernel::Sigmoid { .. } => ("logits", "targets", Some("weights")),
            Kernel::Softmax { .. } => ("logits", "labels", Some("class_weights")),
            Kernel::Boxes => ("pred", "target_boxes", None),
        }
    }
}

/// What a mean divides by.
pub(crate) enum Denominator {
    /// Known when the plan is made (numel, or 1 for sum and none).
    Constant(f64),
    /// `Σ w[y]` over the pixels whose label counts (neither the ignore value
    /// nor outside `[0, C)`), computed on the GPU before the main pass: the
    /// class weights for cross-entropy's weighted mean, ones for a plain
    /// count. Every softmax mean divides by it, so a label outside `[0, C)`
    /// drops out of the mean exactly as an ignored one does.
    LabelSum(Vec<f32>),
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
    pub layout: PixelLayout,
    pub reduction: Reduction,
    pub denominator: Denominator,
    /// The kernel's `Params` for one chunk, flags already set.
    pub params: &'a dyn Fn(Chunk, bool, bool) -> Vec<u8>,
}

impl Pointwise<'_> {
    pub fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<LossPlan> {
        let layout = self.layout;
        let items = layout.images * layout.spatial;
        let total_elems = items * layout.classes;
        if items == 0 {
            return Err(Error::shape(self.loss, "logits", &shapes.logits, format!("the logits {:?} hold no element", shapes.logits)));
        }
        if total_elems >= 1 << 31 {
            return Err(Error::limit(self.loss, format!("{total_elems} logits exceed the 2^31 the kernels index", )));
        }
        let chunks = layout.chunks(items, 1, ctx.binding_limit(), ctx.inner.offset_alignment, |a, b| a..b)?;
        let (file, target_dtype, target_per_item, value_per_item) = self.kernel.layout();
        let mut plan = PlanBuilder::new(self.loss, ctx, options, shapes, target_dtype).input_names(self.kernel.slot_names());

        let denom = plan.denominator(match self.denominator {
            Denominator::Constant(d) => d as f32,
            Denominator::LabelSum(_) => 0.0,
        });
        if matches!(self.denominator, Denominator::LabelSum(_)) {
            plan.data_denominator(&denom);
        }
        let tiles_total: u64 = chunks.iter().map(|ch| (ch.units.end - ch.units.start).div_ceil(LOSS_TILE)).sum();
        let partials = plan.scratch("loss partials", tiles_total * 4)?;
        let (logits_name, target_name, weights_name) = self.kernel.binding_names();
        // The weights a kernel binds: the caller's (per chunk), a stand-in, or the class weights.
        let weights = match &self.kernel {
            Kernel::Sigmoid { has_weight: true } | Kernel::Boxes => None,
            Kernel::Sigmoid { has_weight: false } => Some(plan.unused_input()),
            Kernel::Softmax { class_weights } => Some(Binding::Owned(plan.storage("class weights", bytemuck::cast_slice(class_weights)))),
        };
        // Every kernel flags non-finite inputs; the softmax's also labels out of range, the boxes' degenerate boxes.
        let status = plan.status();
        let write_elements = self.reduction == Reduction::None;
        let main = plan.kernel_on(file, "main", &[], self.kernel.elements())?;
        let weight_sum = match &self.denominator {
            Denominator::LabelSum(w) => {
                Some((plan.kernel(file, "weight_sum", &[])?, Binding::Owned(plan.storage("label weights", bytemuck::cast_slice(w)))))
            }
            Denominator::Constant(_) => None,
        };

        let mut main_steps = Vec::new();
        let mut tile0 = 0u64;
        for ch in &chunks {
            let (lr, pr) = (&ch.logits, &ch.pixels);
            let chunk = layout.chunk_uniform(ch, tile0);
            let groups = (ch.units.end - ch.units.start).div_ceil(LOSS_TILE) as u32;
            tile0 += groups as u64;
            let params = Binding::Owned(ctx.create_buffer_with(
                "loss params",
                &(self.params)(chunk, write_elements, options.grad),
                wgpu::BufferUsages::UNIFORM,
            ));
            let target_range = if target_per_item { pr } else { lr };
            let weights = weights.clone().unwrap_or(Binding::range(slot::WEIGHT, lr));
            if let Some((kernel, label_weights)) = &weight_sum {
                // Σ w[y] over the labels first: the mean's denominator.
                plan.dispatch(
                    kernel,
                    groups,
                    vec![
                        ("params", params.clone()),
                        (target_name, Binding::range(slot::TARGET, target_range)),
                        (weights_name.expect("class weights"), label_weights.clone()),
                        ("partials", Binding::owned(&partials)),
                        ("status", status.clone()),
                    ],
                )?;
            }
            let mut bindings = vec![
                ("params", params),
                ("io", plan.io()),
                ("denom", Binding::owned(&denom)),
                (logits_name, Binding::range(slot::LOGITS, lr)),
                (target_name, Binding::range(slot::TARGET, target_range)),
                ("grad", plan.grad_or_unused(Some(lr))),
                (
                    "value",
                    if write_elements {
                        Binding::range(slot::VALUE, if value_per_item { pr } else { lr })
                    } else {
                        plan.unused_output("unused value")
                    },
                ),
                ("partials", Binding::owned(&partials)),
            ];
            bindings.extend(weights_name.map(|name| (name, weights)));
            bindings.push(("status", status.clone()));
            main_steps.push(Step::new(&main, groups, bindings)?);
        }
        if weight_sum.is_some() {
            plan.segmented_sum(Binding::owned(&partials), 1, tiles_total, Binding::owned(&denom))?;
        }
        plan.steps_mut().extend(main_steps);
        let value_shape = if write_elements {
            if value_per_item {
                // The logits without their class axis: [N, S…].
                let l = &shapes.logits;
                std::iter::once(l[0]).chain(l[2..].iter().copied()).collect()
            } else {
                shapes.logits.clone()
            }
        } else {
            plan.sum_to_value(&partials, tiles_total, &denom)?;
            vec![1]
        };
        Ok(plan.finish(value_shape))
    }
}
