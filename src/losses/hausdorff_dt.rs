//! `hausdorff_dt`: Karimi & Salcudean's Hausdorff distance-transform loss
//! (SPEC.md; MONAI's `HausdorffDTLoss`, and `LogHausdorffDTLoss` with `log`).
//! The squared error of every kept channel is weighted by the two-sided
//! distance fields of the target's mask `G = [g > 0.5]` and of the current
//! prediction's `P = [p > 0.5]`:
//!
//! ```text
//! e[n,c,q] = (p − g)² · (d_P(q)^α + d_G(q)^α)
//! ```
//!
//! averaged per image and channel (or per channel over the batch), reduced,
//! and optionally `log1p`-ed. Kernels `shaders/hausdorff_dt.wgsl`; float64
//! twin `reference/hausdorff_dt.rs`.
//!
//! The prediction's fields change at every step, so the plan makes them on
//! the GPU in the caller's encoder: a pass thresholds the logits into masks
//! (σ(x) > 0.5 is x > 0; a softmax pixel belongs to the class whose
//! probability exceeds 0.5, if one does, i.e. to its argmax when
//! `Σ_j e^{x_j − max} < 2`), and the exact transform of
//! [`crate::primitives::distance`] turns them into fields. Nothing leaves
//! the GPU. The target's fields are made the same way, or taken precomputed
//! from `LossInputs::distance` (`[N, C, S…]`, every channel's two-sided
//! field: [`DistancePlan::with_field`](crate::primitives::distance::DistancePlan::with_field)
//! with [`DistanceField::TwoSided`] on class targets, or the plan's own
//! `distance` extra), since they do not change across epochs.
//!
//! Both fields are held constant in the gradient, as MONAI computes them
//! without one. The paper trains it beside a regional loss:
//! [`crate::losses::compound`] takes it as a term (`dice + λ·hausdorff_dt`).

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::{PixelChunk, PixelLayout, tile_span};
use crate::gpu::context::GpuContext;
use crate::gpu::layout::{Chunk, LOSS_TILE, WG_SIZE};
use crate::gpu::program::{Binding, Place, SlotSpec, Step};
use crate::gpu::tensor::{DType, GpuTensor};
use crate::losses::builder::PlanBuilder;
use crate::losses::checks::{check_spacing, class_layout, same_shape};
use crate::losses::loss::{Checked, Loss};
use crate::losses::overlap::{Aggregate, OverlapMode, check_targets, overlap_target};
use crate::losses::plan::{LossPlan, OptionalInput, PlanOptions, slot};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};
use crate::primitives::distance::{DistanceField, DistanceMode, Geometry, record_distance_maps};

/// Most classes the kernels take: `pixel_loss` loops about 28·C times per
/// invocation (the softmax of its four pixels, a value pass per class with
/// its workgroup sum, the gradient), within lavapipe's 65,535.
pub const MAX_CLASSES: usize = 1024;

/// Largest α: beyond it `d^α` leaves f32 on any image the host accepts
/// (the shape check also bounds `d_max^α` for the actual image).
pub const MAX_ALPHA: f64 = 64.0;

/// Largest value the kernels' sums may reach: far enough below f32's
/// largest number that rounding and the per-tile sums cannot overflow it.
const F32_HEADROOM: f64 = 1e36;

/// Parameters of `hausdorff_dt`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HausdorffDtConfig {
    /// `multiclass` (softmax, class-index targets; default), `binary` or `multilabel` (sigmoid, dense targets).
    pub mode: OverlapMode,
    /// α > 0, the exponent of the distances (2).
    pub alpha: f64,
    /// Keep channel 0 (false; ignored when C = 1, as MONAI does).
    pub include_background: bool,
    /// Average per (image, channel) (`"image"`, default) or per channel over the batch (`"batch"`).
    pub aggregate: Aggregate,
    /// `log1p` of the reduced value (MONAI's `LogHausdorffDTLoss`; elementwise for `"none"`).
    pub log: bool,
    /// One physical pixel size per spatial axis, in the order of S (1 when null).
    pub spacing: Option<Vec<f64>>,
    /// `"mean"` over the groups, `"sum"`, or `"none"`: `[N, K]` (`"image"`) or `[K]` (`"batch"`).
    pub reduction: Reduction,
}

impl Default for HausdorffDtConfig {
    fn default() -> Self {
        HausdorffDtConfig {
            mode: OverlapMode::Multiclass,
            alpha: 2.0,
            include_background: false,
            aggregate: Aggregate::Image,
            log: false,
            spacing: None,
            reduction: Reduction::Mean,
        }
    }
}

impl HausdorffDtConfig {
    /// The first kept channel of `c`: 1 without the background, except for
    /// one channel, whose `include_background = false` is ignored (SPEC.md).
    pub fn first_channel(&self, c: usize) -> usize {
        usize::from(!self.include_background && c > 1)
    }

    /// How many values a group's mean is over: `#groups` for `"mean"`.
    fn groups(&self, layout: &HausdorffLayout) -> usize {
        let kept = layout.c - layout.first;
        match self.aggregate {
            Aggregate::Image => layout.n * kept,
            Aggregate::Batch => kept,
        }
    }
}

/// What `hausdorff_dt`'s shape check learns: `[N, C, S]`, the first kept
/// channel, and the geometry of the transforms (spatial shape and spacing).
pub(crate) struct HausdorffLayout {
    n: usize,
    c: usize,
    s: usize,
    first: usize,
    spatial_shape: Vec<usize>,
}

/// `struct LossParams` in `hausdorff_dt.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossParams {
    chunk: Chunk,
    images: u32,
    tiles: u32,
    kept: u32,
    first: u32,
    first_pred: u32,
    alpha: f32,
    inv_size: f32,
    grad_scale: f32,
}

/// `struct MaskParams` in `hausdorff_dt.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MaskParams {
    chunk: Chunk,
    first: u32,
    channels_out: u32,
    first_out: u32,
    threshold: f32,
}

/// `struct ValueParams` in `hausdorff_dt.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ValueParams {
    count: u32,
    mean_scale: f32,
    _pad: [u32; 2],
}

impl Loss for HausdorffDtConfig {
    type Layout = HausdorffLayout;

    const NAME: &'static str = "hausdorff_dt";

    fn target_kind(&self) -> TargetKind {
        overlap_target(self.mode)
    }

    fn sharding(&self) -> Sharding {
        let log = self.log;
        match (self.aggregate, self.reduction) {
            (Aggregate::Image, Reduction::None) => Sharding::Local,
            (Aggregate::Image, Reduction::Sum) => Sharding::Sum { log },
            // Over the batch every value divides by N·|S|: each, "sum" and "none" too, is a mean over the images.
            (Aggregate::Batch, _) | (_, Reduction::Mean) => Sharding::Mean { log },
        }
    }

    fn takes_distance(&self) -> bool {
        true
    }

    fn status_rule(&self) -> &'static str {
        "a class index outside [0, C) (hausdorff_dt has no ignore value)"
    }

    fn validate(&self) -> Result<()> {
        if !(self.alpha.is_finite() && self.alpha > 0.0 && self.alpha <= MAX_ALPHA) {
            return Err(Error::config("hausdorff_dt", format!("alpha = {} must be a number in (0, {MAX_ALPHA}]", self.alpha)));
        }
        check_spacing("hausdorff_dt", self.spacing.as_deref())?;
        Ok(())
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<HausdorffLayout>> {
        let layout = self.shape_layout(shapes)?;
        let kept = layout.c - layout.first;
        let value_shape = self.aggregate.value_shape(self.reduction, layout.n, kept);
        Ok(Checked { layout, value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_targets("hausdorff_dt", self.mode, None, inputs)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<HausdorffLayout>, options: PlanOptions) -> Result<LossPlan> {
        HausdorffPlanner { config: self, ctx, layout: checked.layout }.plan(shapes, checked.value_shape, options)
    }
}

impl HausdorffDtConfig {
    fn shape_layout(&self, shapes: &InputShapes) -> Result<HausdorffLayout> {
        const LOSS: &str = "hausdorff_dt";
        let l = &shapes.logits;
        if let Some(w) = &shapes.weight {
            return Err(Error::shape(LOSS, "weight", w, "takes no per-element weight"));
        }
        if !(l.len() == 4 || l.len() == 5) {
            return Err(Error::shape(LOSS, "logits", l, format!("logits {l:?} must be [N, C, H, W] or [N, C, D, H, W]")));
        }
        if l[1] > MAX_CLASSES {
            return Err(Error::limit(LOSS, format!("{} classes exceed the {MAX_CLASSES} its kernels handle", l[1])));
        }
        let (n, c, s) = match self.mode {
            OverlapMode::Multiclass => class_layout(LOSS, shapes)?,
            OverlapMode::Binary | OverlapMode::Multilabel => {
                same_shape(LOSS, "target", &shapes.target, l)?;
                if l.contains(&0) {
                    return Err(Error::shape(LOSS, "logits", l, format!("logits {l:?} have an empty axis")));
                }
                (l[0], l[1], l[2..].iter().product())
            }
        };
        match self.mode {
            OverlapMode::Multiclass if c < 2 => {
                return Err(Error::shape(LOSS, "logits", l, format!("multiclass mode needs C ≥ 2 classes; the logits {l:?} have {c} (use binary)")));
            }
            OverlapMode::Binary if c != 1 => {
                return Err(Error::shape(LOSS, "logits", l, format!("binary mode takes one channel; the logits {l:?} have {c} (use multilabel)")));
            }
            _ => {}
        }
        if (n * c * s) as u64 >= 1 << 31 {
            return Err(Error::limit(LOSS, format!("{} logits exceed the 2^31 the kernels index", n * c * s)));
        }
        let spatial_shape = l[2..].to_vec();
        if let Some(spacing) = &self.spacing
            && spacing.len() != spatial_shape.len()
        {
            return Err(Error::input(LOSS, format!(
                "spacing has {} entries, but the logits {l:?} have {} spatial axes",
                spacing.len(),
                spatial_shape.len()
            )));
        }
        let layout = HausdorffLayout { n, c, s, first: self.first_channel(c), spatial_shape };
        // Both transforms as the plan will make them, for their own limits (line length, indexing).
        self.prediction_geometry(&layout)?;
        self.target_geometry(&layout)?;
        self.check_range_of_sums(&layout)?;
        Ok(layout)
    }

    /// Bounds every number the kernels form: a pixel's weight `d_P^α + d_G^α`
    /// is at most `2·d_max^α` (d_max the image's diagonal), so is a group's
    /// mean error (and a tile's share of it), and the value sums the groups'.
    fn check_range_of_sums(&self, layout: &HausdorffLayout) -> Result<()> {
        let spacing = self.spacing.clone().unwrap_or_else(|| vec![1.0; layout.spatial_shape.len()]);
        let diagonal = layout.spatial_shape.iter().zip(&spacing).map(|(&d, &h)| ((d - 1) as f64 * h).powi(2)).sum::<f64>().sqrt();
        let per_pixel = 2.0 * diagonal.powf(self.alpha);
        let worst = per_pixel * self.groups(layout) as f64;
        if worst > F32_HEADROOM {
            return Err(Error::limit("hausdorff_dt", format!(
                "alpha = {} on images whose diagonal is {diagonal:.4e} units gives errors up to {per_pixel:.3e}, \
                 whose sums would leave f32: lower alpha or the spacing",
                self.alpha
            )));
        }
        Ok(())
    }

    /// The transform of the prediction's masks: `[N, S…]` labels of the
    /// kept classes (multiclass), or one 0/1 mask per image and kept channel.
    fn prediction_geometry(&self, layout: &HausdorffLayout) -> Result<Geometry> {
        let kept = layout.c - layout.first;
        match self.mode {
            OverlapMode::Multiclass => self.geometry(layout, layout.n, &(layout.first..layout.c).collect::<Vec<_>>()),
            OverlapMode::Binary | OverlapMode::Multilabel => self.geometry(layout, layout.n * kept, &[1]),
        }
    }

    /// The transform of the target's masks, every channel (the layout of
    /// maps a caller passes in): the class labels themselves, or one 0/1
    /// mask per image and channel.
    fn target_geometry(&self, layout: &HausdorffLayout) -> Result<Geometry> {
        match self.mode {
            OverlapMode::Multiclass => self.geometry(layout, layout.n, &(0..layout.c).collect::<Vec<_>>()),
            OverlapMode::Binary | OverlapMode::Multilabel => self.geometry(layout, layout.n * layout.c, &[1]),
        }
    }

    fn geometry(&self, layout: &HausdorffLayout, images: usize, classes: &[usize]) -> Result<Geometry> {
        let shape: Vec<usize> = std::iter::once(images).chain(layout.spatial_shape.iter().copied()).collect();
        Geometry::new(&shape, classes, self.spacing.as_deref(), DistanceMode::Exact)
            .map(|g| g.with_field(DistanceField::TwoSided))
            .map_err(|e| match e {
                Error::Input { message, .. } => Error::input("hausdorff_dt", message),
                Error::Limit { message, .. } => Error::limit("hausdorff_dt", message),
                other => other,
            })
    }
}

/// One plan in the making: the configuration, the context, the checked layout.
struct HausdorffPlanner<'a> {
    config: &'a HausdorffDtConfig,
    ctx: &'a GpuContext,
    layout: HausdorffLayout,
}

impl HausdorffPlanner<'_> {
    fn softmax(&self) -> bool {
        self.config.mode == OverlapMode::Multiclass
    }

    fn kept(&self) -> usize {
        self.layout.c - self.layout.first
    }

    /// A plan-owned buffer of `elements` words, within the device's largest buffer.
    fn owned(&self, plan: &mut PlanBuilder<'_>, what: &str, elements: usize, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let bytes = elements as u64 * 4;
        if bytes > self.ctx.device().limits().max_buffer_size {
            return Err(Error::limit("hausdorff_dt", format!(
                "its {bytes}-byte {what} exceed the device's largest buffer: split the batch"
            )));
        }
        plan.scratch_with(what, bytes, usage)
    }

    fn plan(&self, shapes: &InputShapes, value_shape: Vec<usize>, options: PlanOptions) -> Result<LossPlan> {
        let (ctx, config) = (self.ctx, self.config);
        let HausdorffLayout { n, c, s, .. } = self.layout;
        let kept = self.kept();
        let storage = wgpu::BufferUsages::STORAGE;
        let target_dtype = if self.softmax() { DType::I32 } else { DType::F32 };
        let mut plan = PlanBuilder::new("hausdorff_dt", ctx, options, shapes, target_dtype);

        // The prediction's masks and fields, [N, K, S…]: every step.
        let pred_masks = self.owned(&mut plan, "prediction masks", if self.softmax() { n * s } else { n * kept * s }, storage)?;
        let pred_maps = self.owned(&mut plan, "prediction distance maps", n * kept * s, storage)?;
        let mut prediction = self.mask_steps(&mut plan, Place::Slot(slot::LOGITS), &pred_masks, true)?;
        let geometry = config.prediction_geometry(&self.layout)?;
        let scratch = record_distance_maps(ctx, &mut prediction, &geometry, DistanceMode::Exact, &Place::Owned(pred_masks), &Place::Owned(pred_maps.clone()))?;
        plan.keep(scratch);

        // The target's fields, [N, C, S…], in slot DISTANCE: the plan's own
        // (computed here) or the caller's.
        let maps_usage = storage | wgpu::BufferUsages::COPY_SRC;
        let own_maps = self.owned(&mut plan, "target distance maps", n * c * s, maps_usage)?;
        let target_source = if self.softmax() {
            Place::Slot(slot::TARGET)
        } else {
            let masks = self.owned(&mut plan, "target masks", n * c * s, storage)?;
            Place::Owned(masks)
        };
        let mut target = match &target_source {
            Place::Owned(masks) => self.mask_steps(&mut plan, Place::Slot(slot::TARGET), masks, false)?,
            Place::Slot(_) => Vec::new(),
        };
        let scratch = record_distance_maps(ctx, &mut target, &config.target_geometry(&self.layout)?, DistanceMode::Exact, &target_source, &Place::Slot(slot::DISTANCE))?;
        plan.keep(scratch);

        // The loss: value partials and gradient from both fields.
        let loss = self.loss_steps(&mut plan, &pred_maps, options)?;

        // Two programs share the prediction's and the loss's steps: one
        // computing the target's fields too, one reading the caller's.
        let maps_shape = shapes.logits.clone();
        let given_steps: Vec<Step> = prediction.iter().chain(&loss).cloned().collect();
        let given_slot = SlotSpec { name: "distance", shape: maps_shape.clone(), dtype: DType::F32, written: false, required: true };
        let given = plan.program(&value_shape, given_slot, given_steps);
        plan.steps_mut().extend(prediction.into_iter().chain(target).chain(loss));
        let stand_in = GpuTensor::new(ctx, own_maps, 0, &maps_shape, DType::F32)?;
        plan.extra("distance", stand_in.clone());
        let own_slot = SlotSpec { name: "the plan's distance maps", shape: maps_shape, dtype: DType::F32, written: true, required: true };
        Ok(plan.finish_with(value_shape, Some(own_slot), Some(OptionalInput { slot: slot::DISTANCE, given, stand_in, extra: "distance" })))
    }

    /// The pass that thresholds `source` into the transform's masks at
    /// `masks`: for the prediction (`predicted`), the softmax class labels
    /// (−1: no class above 0.5) or `x > 0` per kept channel; for dense
    /// targets, `g > 0.5` per channel.
    fn mask_steps(&self, plan: &mut PlanBuilder<'_>, source: Place, masks: &wgpu::Buffer, predicted: bool) -> Result<Vec<Step>> {
        let HausdorffLayout { n, c, s, first, .. } = self.layout;
        let align = self.ctx.inner.offset_alignment;
        let layout = PixelLayout::new(n, c, s);
        let (first, channels_out, threshold) = if predicted { (first, self.kept(), 0.0) } else { (0, c, 0.5) };
        let out_layout = PixelLayout::new(n, channels_out, s);
        let labels = predicted && self.softmax();
        let kernel = plan.kernel("hausdorff_dt.wgsl", if labels { "class_masks" } else { "dense_masks" }, &[])?;
        let mut steps = Vec::new();
        for ch in layout.chunks(layout.pixels(), 1, self.ctx.binding_limit(), align, |a, b| a..b)? {
            let (a, b) = (ch.units.start, ch.units.end);
            let out = if labels { ch.pixels.clone() } else { out_layout.logit_range(a, b, align) };
            let params = MaskParams {
                chunk: layout.chunk_uniform(&ch, 0),
                first: first as u32,
                channels_out: channels_out as u32,
                first_out: out.first as u32,
                threshold,
            };
            let source_name = if labels { "logits" } else { "source" };
            steps.push(Step::new(
                &kernel,
                (b - a).div_ceil(WG_SIZE) as u32,
                vec![
                    ("mask_params", plan.uniform("hausdorff_dt mask params", &params)),
                    (source_name, source.range(&ch.logits)),
                    ("masks", Place::Owned(masks.clone()).range(&out)),
                ],
            )?);
        }
        Ok(steps)
    }

    /// The loss's steps: a pass over the pixels for the value's partial sums
    /// (and, without `log`, the gradient), their sum, the value; with `log`
    /// a second pass for the gradient, whose factor `1/(1 + v)` needs the value.
    fn loss_steps(&self, plan: &mut PlanBuilder<'_>, pred_maps: &wgpu::Buffer, options: PlanOptions) -> Result<Vec<Step>> {
        let config = self.config;
        let HausdorffLayout { n, c, s, first, .. } = self.layout;
        let kept = self.kept();
        let (ctx, align) = (self.ctx, self.ctx.inner.offset_alignment);
        let batch = config.aggregate == Aggregate::Batch;
        let per_group = config.reduction == Reduction::None;
        let groups = config.groups(&self.layout);
        let tiles = (s as u64).div_ceil(LOSS_TILE);
        let inv_size = 1.0 / if batch { (n * s) as f64 } else { s as f64 };
        let mean_scale = if config.reduction == Reduction::Mean { 1.0 / groups as f64 } else { 1.0 };
        let layout = PixelLayout::new(n, c, s);
        let pred_layout = PixelLayout::new(n, kept, s);

        // One partial per tile, or per tile and kept channel for "none" (laid out group by group).
        let partial_count = n as u64 * tiles * if per_group { kept as u64 } else { 1 };
        let partials = plan.scratch("hausdorff_dt partials", partial_count * 4)?;
        let sums = plan.scratch("hausdorff_dt sums", groups as u64 * 4)?;
        // 1/(1 + v) per value entry, for the gradient under `log`.
        let factors = plan.scratch("hausdorff_dt gradient factors", groups as u64 * 4)?;
        // Labels out of range (softmax), and non-finite logits, targets or fields: pixel_loss flags them.
        let status = plan.status();
        let fused = !config.log;
        let constants = |value: bool, grad: bool| {
            [
                ("SOFTMAX", self.softmax() as u32 as f64),
                ("VALUE", value as u32 as f64),
                ("GRAD", grad as u32 as f64),
                ("PER_GROUP", per_group as u32 as f64),
                ("LOG", config.log as u32 as f64),
                ("BATCH", batch as u32 as f64),
            ]
        };
        let chunks = layout.chunks(n as u64 * tiles, 1, ctx.binding_limit(), align, |a, b| tile_span(a, b, tiles, s as u64, LOSS_TILE))?;
        let pixel_pass = |plan: &mut PlanBuilder<'_>, value: bool, grad: bool| -> Result<Vec<Step>> {
            let kernel = plan.kernel("hausdorff_dt.wgsl", "pixel_loss", &constants(value, grad))?;
            let mut steps = Vec::new();
            for ch in &chunks {
                let pixels = tile_span(ch.units.start, ch.units.end, tiles, s as u64, LOSS_TILE);
                let pred = pred_layout.logit_range(pixels.start, pixels.end, align);
                let params = LossParams {
                    chunk: layout.chunk_uniform(ch, 0),
                    images: n as u32,
                    tiles: tiles as u32,
                    kept: kept as u32,
                    first: first as u32,
                    first_pred: pred.first as u32,
                    alpha: config.alpha as f32,
                    inv_size: inv_size as f32,
                    grad_scale: (2.0 * inv_size * mean_scale) as f32,
                };
                steps.push(Step::new(&kernel, (ch.units.end - ch.units.start) as u32, self.pixel_bindings(plan, ch, &params, &pred, pred_maps, &partials, &factors, &status, grad))?);
            }
            Ok(steps)
        };
        let mut steps = pixel_pass(plan, true, fused && options.grad)?;

        // The value: Σ of the partials (per group for "none"), then the mean, the log, the scale.
        let segment = partial_count / if per_group { groups as u64 } else { 1 };
        let reduced = if per_group { groups as u64 } else { 1 };
        let mut reduction = Vec::new();
        let levels = crate::primitives::reduce::record_segmented_sum(ctx, &mut reduction, Binding::owned(&partials), reduced, segment, Binding::owned(&sums))?;
        plan.keep(levels);
        steps.extend(reduction);
        let value_params = ValueParams { count: reduced as u32, mean_scale: if per_group { 1.0 } else { mean_scale as f32 }, _pad: [0; 2] };
        let value_kernel = plan.kernel("hausdorff_dt.wgsl", "finish_value", &[("LOG", config.log as u32 as f64)])?;
        steps.push(Step::new(
            &value_kernel,
            (reduced).div_ceil(64) as u32,
            vec![
                ("value_params", plan.uniform("hausdorff_dt value params", &value_params)),
                ("io", plan.io()),
                ("sums", Binding::owned(&sums)),
                ("value", Binding::slot(slot::VALUE)),
                ("factors", Binding::owned(&factors)),
                ("status", status.clone()),
            ],
        )?);
        if config.log && options.grad {
            let grad_pass = pixel_pass(plan, false, true)?;
            // A data-parallel plan gives this pass the factors of the global values.
            plan.split_tail(&factors, groups as u64, grad_pass.len());
            steps.extend(grad_pass);
        }
        Ok(steps)
    }

    /// The bindings of one chunk of `pixel_loss`.
    #[allow(clippy::too_many_arguments)]
    fn pixel_bindings(
        &self,
        plan: &mut PlanBuilder<'_>,
        ch: &PixelChunk,
        params: &LossParams,
        pred: &crate::gpu::chunks::ElementRange,
        pred_maps: &wgpu::Buffer,
        partials: &wgpu::Buffer,
        factors: &wgpu::Buffer,
        status: &Binding,
        grad: bool,
    ) -> Vec<(&'static str, Binding)> {
        let targets = if self.softmax() { &ch.pixels } else { &ch.logits };
        vec![
            ("params", plan.uniform("hausdorff_dt params", params)),
            ("io", plan.io()),
            ("logits", Binding::range(slot::LOGITS, &ch.logits)),
            ("targets", Binding::range(slot::TARGET, targets)),
            ("pred_maps", Binding::OwnedRange(pred_maps.clone(), pred.clone())),
            // The target's maps have the logits' layout, so they share the logits' range.
            ("target_maps", Binding::range(slot::DISTANCE, &ch.logits)),
            ("grad", if grad { Binding::range(slot::GRAD, &ch.logits) } else { plan.unused_output("unused grad") }),
            ("partials", Binding::owned(partials)),
            ("factors", Binding::owned(factors)),
            ("status", status.clone()),
        ]
    }
}
