//! `boundary`: Kervadec et al.'s boundary loss (SPEC.md), the mean of
//! `softmax(x)·φ` over images, selected classes and pixels, with φ the
//! signed distance maps of the target. Kernel `shaders/boundary.wgsl`; the
//! maps come from [`crate::primitives::distance`] in the same encoder, or
//! from the caller (`LossInputs::distance`); float64 twin `reference/boundary.rs`.
//!
//! The maps depend only on the target: a training loop whose targets repeat
//! can compute them once with [`crate::primitives::distance::DistancePlan`]
//! (all classes, `[N, C, S…]`), keep them beside the targets and pass them in,
//! and the plan then skips its transform. It is meant to be weighted against
//! a regional loss with [`crate::losses::compound`] and a schedule of α.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::PixelLayout;
use crate::gpu::layout::{Chunk, LOSS_TILE};
use crate::gpu::context::GpuContext;
use crate::gpu::program::{Binding, Place, SlotSpec};
use crate::gpu::tensor::{DType, GpuTensor};
use crate::losses::builder::PlanBuilder;
use crate::losses::checks::{check_labels, check_spacing, class_layout};
use crate::losses::loss::{Checked, Loss};
use crate::losses::plan::{LossPlan, OptionalInput, PlanOptions, slot};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};
use crate::primitives::distance::{DistanceMode, Geometry, record_distance_maps};

/// Most classes the kernel handles: a pixel loops over them four times, and
/// ITEMS = 4 pixels per invocation must stay under lavapipe's 65,535
/// iterations. The same cap as the other softmax kernels, which
/// `class_layout` enforces for all of them.
pub const MAX_CLASSES: usize = crate::losses::pointwise::MAX_CLASSES;

/// Parameters of `boundary`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoundaryConfig {
    /// Class ids whose maps enter the loss (all classes when null).
    pub classes: Option<Vec<usize>>,
    /// One physical pixel size per spatial axis (1 when null).
    pub spacing: Option<Vec<f64>>,
    /// `"mean"` over (n, selected class, pixel), `"sum"`, or `"none"`: `p·φ` as `[N, K, S…]`.
    pub reduction: Reduction,
    /// The distance transform: `"exact"` (default) or `"jump_flood"` (approximate, faster).
    pub transform: DistanceMode,
}

/// `struct Params` in `boundary.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    chunk: Chunk,
    map_channels: u32,
    first_map: u32,
    selected: u32,
    first_value: u32,
    write_elements: u32,
    write_grad: u32,
    inv_denominator: f32,
    _pad: u32,
}

/// What `boundary`'s shape check learns: `[N, C, S]` and the geometry of
/// the distance transform of every class's map.
pub(crate) struct BoundaryLayout {
    n: usize,
    c: usize,
    s: usize,
    geometry: Geometry,
}

impl BoundaryConfig {
    /// Checks the shapes; returns (N, C, S, the distance geometry).
    fn shape_layout(&self, shapes: &InputShapes) -> Result<BoundaryLayout> {
        if shapes.weight.is_some() {
            return Err(Error::shape("boundary", "weight", shapes.weight.as_deref().unwrap_or_default(), "takes no per-element weight"));
        }
        let rank = shapes.logits.len();
        if !(rank == 4 || rank == 5) {
            return Err(Error::shape("boundary", "logits", &shapes.logits, format!(
                "logits {:?} must be [N, C, H, W] or [N, C, D, H, W]",
                shapes.logits
            )));
        }
        let (n, c, s) = class_layout("boundary", shapes)?;
        if (n * c * s) as u64 >= 1 << 31 {
            return Err(Error::limit("boundary", format!("{} logits exceed the 2^31 the kernels index", n * c * s)));
        }
        if c > MAX_CLASSES {
            return Err(Error::limit("boundary", format!("{c} classes exceed the {MAX_CLASSES} its kernel handles")));
        }
        if let Some(&bad) = self.classes.iter().flatten().find(|&&k| k >= c) {
            return Err(Error::input("boundary", format!("classes lists {bad}, but the logits have {c} classes")));
        }
        if let Some(spacing) = &self.spacing
            && spacing.len() != rank - 2
        {
            return Err(Error::input("boundary", format!(
                "spacing has {} entries, but the logits {:?} have {} spatial axes",
                spacing.len(),
                shapes.logits,
                rank - 2
            )));
        }
        // Every class's map, so the plan's own maps have the layout of maps a caller passes in.
        let all: Vec<usize> = (0..c).collect();
        let geometry = Geometry::new(&shapes.target, &all, self.spacing.as_deref(), self.transform)
            .map_err(|e| match e {
                Error::Input { message, .. } => Error::input("boundary", message),
                Error::Limit { message, .. } => Error::limit("boundary", message),
                other => other,
            })?;
        Ok(BoundaryLayout { n, c, s, geometry })
    }

    /// The classes the loss sums over: those listed, or all of `0..c`.
    pub fn selected_classes(&self, c: usize) -> Vec<usize> {
        self.classes.clone().unwrap_or_else(|| (0..c).collect())
    }
}

impl Loss for BoundaryConfig {
    type Layout = BoundaryLayout;

    const NAME: &'static str = "boundary";

    fn target_kind(&self) -> TargetKind {
        TargetKind::Classes
    }

    fn sharding(&self) -> Sharding {
        Sharding::of(self.reduction)
    }

    fn takes_distance(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<()> {
        if let Some(classes) = &self.classes {
            if classes.is_empty() {
                return Err(Error::config("boundary", "classes is an empty list; give class ids, or null for all"));
            }
            let mut sorted = classes.clone();
            sorted.sort_unstable();
            if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                return Err(Error::config("boundary", format!("class {} is listed twice in classes", w[0])));
            }
        }
        check_spacing("boundary", self.spacing.as_deref())?;
        Ok(())
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<BoundaryLayout>> {
        let layout = self.shape_layout(shapes)?;
        let value_shape = match self.reduction {
            Reduction::None => {
                let mut shape = shapes.logits.clone();
                shape[1] = self.selected_classes(layout.c).len();
                shape
            }
            _ => vec![1],
        };
        Ok(Checked { layout, value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_labels("boundary", inputs.target, inputs.logits.shape[1], None)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<BoundaryLayout>, options: PlanOptions) -> Result<LossPlan> {
        let Checked { layout: BoundaryLayout { n, c, s, geometry }, value_shape } = checked;
        let classes = self.selected_classes(c);
        let k = classes.len();
        let mut plan = PlanBuilder::new("boundary", ctx, options, shapes, DType::I32);

        // The plan's own maps, [N, C, S…], written by the transform and bound by range like a caller's.
        let maps_bytes = (n * c * s) as u64 * 4;
        if maps_bytes > ctx.device().limits().max_buffer_size {
            return Err(Error::limit("boundary", format!(
                "its {maps_bytes}-byte distance maps exceed the device's largest buffer; pass them in LossInputs::distance"
            )));
        }
        let mut transform = Vec::new();
        let transform_scratch = record_distance_maps(ctx, &mut transform, &geometry, self.transform, &Place::Slot(slot::TARGET), &Place::Slot(slot::DISTANCE))?;
        plan.keep(transform_scratch);
        let maps_shape = geometry.output_shape();
        let maps = plan.scratch_with("boundary distance maps", maps_bytes, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC)?;
        let stand_in = GpuTensor::new(ctx, maps, 0, &maps_shape, DType::F32)?;

        // Logits, gradient and maps are [N, C, S…], labels [N, S…], per-pixel values [N, K, S…] (K ≤ C).
        let align = ctx.inner.offset_alignment;
        let layout = PixelLayout { images: n as u64, classes: c as u64, spatial: s as u64 };
        let values_layout = PixelLayout { classes: k as u64, ..layout };
        let chunks = layout.chunks(layout.pixels(), 1, ctx.binding_limit(), align, |a, b| a..b)?;
        let tiles: u64 = chunks.iter().map(|ch| (ch.units.end - ch.units.start).div_ceil(LOSS_TILE)).sum();
        let partials = plan.scratch("loss partials", tiles * 4)?;
        let write_elements = self.reduction == Reduction::None;
        let inv_denominator = match self.reduction {
            Reduction::Mean => 1.0 / (n * k * s) as f32,
            _ => 1.0,
        };
        // For every class: its slot among the selected classes (−1 if not selected), and its map's channel.
        let mut table = vec![[-1i32; 2]; c];
        for (slot_k, &class) in classes.iter().enumerate() {
            table[class] = [slot_k as i32, class as i32];
        }
        let table = Binding::Owned(plan.storage("boundary class table", bytemuck::cast_slice(&table)));
        let main = plan.kernel("boundary.wgsl", "main", &[])?;
        let status = plan.status();
        let mut tile0 = 0u64;
        for chunk in &chunks {
            let range = &chunk.units;
            let (a, b) = (range.start, range.end);
            let (logits, labels) = (&chunk.logits, &chunk.pixels);
            let values = values_layout.logit_range(a, b, align);
            let groups = (b - a).div_ceil(LOSS_TILE) as u32;
            let params = Params {
                chunk: Chunk {
                    count: (b - a) as u32,
                    item0: a as u32,
                    tile0: tile0 as u32,
                    first_item: labels.first as u32,
                    first_elem: logits.first as u32,
                    spatial: s as u32,
                    classes: c as u32,
                    _pad: 0,
                },
                map_channels: c as u32,
                first_map: logits.first as u32,
                selected: k as u32,
                first_value: values.first as u32,
                write_elements: write_elements as u32,
                write_grad: options.grad as u32,
                inv_denominator,
                _pad: 0,
            };
            tile0 += groups as u64;
            let bindings = vec![
                ("params", plan.uniform("boundary params", &params)),
                ("io", plan.io()),
                ("logits", Binding::range(slot::LOGITS, logits)),
                ("labels", Binding::range(slot::TARGET, labels)),
                ("table", table.clone()),
                // The maps have the logits' layout, so they share the logits' range.
                ("maps", Binding::range(slot::DISTANCE, logits)),
                ("grad", plan.grad_or_unused(Some(logits))),
                ("value", if write_elements { Binding::range(slot::VALUE, &values) } else { plan.unused_output("unused value") }),
                ("partials", Binding::owned(&partials)),
                ("status", status.clone()),
            ];
            plan.dispatch(&main, groups, bindings)?;
        }
        if !write_elements {
            let denominator = plan.denominator(match self.reduction {
                Reduction::Mean => (n * k * s) as f32,
                _ => 1.0,
            });
            plan.sum_to_value(&partials, tiles, &denominator)?;
        }

        // Two programs share the loss's steps: one after the transform, writing
        // the plan's maps; one reading the caller's maps instead.
        let loss_steps = plan.take_steps();
        let maps = SlotSpec { name: "distance", shape: shapes.logits.clone(), dtype: DType::F32, written: false, required: true };
        let given = plan.program(&value_shape, maps, loss_steps.clone());
        plan.steps_mut().extend(transform);
        plan.steps_mut().extend(loss_steps);
        plan.extra("distance", stand_in.clone());
        let own_maps = SlotSpec { name: "the plan's distance maps", shape: maps_shape, dtype: DType::F32, written: true, required: true };
        Ok(plan.finish_with(value_shape, Some(own_maps), Some(OptionalInput { slot: slot::DISTANCE, given, stand_in, extra: "distance" })))
    }
}
