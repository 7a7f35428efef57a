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

use crate::error::{Error, Result};
use crate::gpu::chunks::PixelLayout;
use crate::gpu::layout::{Chunk, LOSS_TILE};
use crate::gpu::program::{Program, SlotSpec, Source, Step};
use crate::gpu::{DType, GpuContext, GpuTensor};
use crate::losses::plan::{LossPlan, OptionalInput, PlanOptions, slot};
use crate::losses::{HostInputs, InputShapes, Reduction, check_labels, class_layout};
use crate::primitives::distance::{DistanceMode, Geometry, SPACING_RANGE, record_signed_distance};
use crate::primitives::reduce::{Place, record_segmented_sum};
use crate::reference::boundary::selected_classes;

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

impl BoundaryConfig {
    pub(crate) fn validate(&self) -> Result<()> {
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
        if let Some(spacing) = &self.spacing {
            let (lo, hi) = SPACING_RANGE;
            if let Some(v) = spacing.iter().find(|v| !(v.is_finite() && **v >= lo && **v <= hi)) {
                return Err(Error::config("boundary", format!("spacing {v} must be a finite pixel size in [{lo:e}, {hi:e}]")));
            }
        }
        Ok(())
    }

    /// Checks the shapes; returns (N, C, S, the distance geometry).
    fn layout(&self, shapes: &InputShapes) -> Result<(usize, usize, usize, Geometry)> {
        if shapes.weight.is_some() {
            return Err(Error::input("boundary: takes no per-element weight"));
        }
        let rank = shapes.logits.len();
        if !(rank == 4 || rank == 5) {
            return Err(Error::input(format!(
                "boundary: logits {:?} must be [N, C, H, W] or [N, C, D, H, W]",
                shapes.logits
            )));
        }
        let (n, c, s) = class_layout("boundary", shapes)?;
        if (n * c * s) as u64 >= 1 << 31 {
            return Err(Error::Limit(format!("boundary: {} logits exceed the 2^31 the kernels index", n * c * s)));
        }
        if c > MAX_CLASSES {
            return Err(Error::Limit(format!("boundary: {c} classes exceed the {MAX_CLASSES} its kernel handles")));
        }
        if let Some(&bad) = self.classes.iter().flatten().find(|&&k| k >= c) {
            return Err(Error::input(format!("boundary: classes lists {bad}, but the logits have {c} classes")));
        }
        if let Some(spacing) = &self.spacing
            && spacing.len() != rank - 2
        {
            return Err(Error::input(format!(
                "boundary: spacing has {} entries, but the logits {:?} have {} spatial axes",
                spacing.len(),
                shapes.logits,
                rank - 2
            )));
        }
        // Every class's map, so the plan's own maps have the layout of maps a caller passes in.
        let all: Vec<usize> = (0..c).collect();
        let geometry = Geometry::new(&shapes.target, &all, self.spacing.as_deref(), self.transform)
            .map_err(|e| match e {
                Error::Input(m) => Error::input(format!("boundary: {m}")),
                Error::Limit(m) => Error::Limit(format!("boundary: {m}")),
                other => other,
            })?;
        Ok((n, c, s, geometry))
    }

    pub(crate) fn check_shapes(&self, shapes: &InputShapes) -> Result<Vec<usize>> {
        let (_, c, _, _) = self.layout(shapes)?;
        Ok(match self.reduction {
            Reduction::None => {
                let mut shape = shapes.logits.clone();
                shape[1] = selected_classes(self, c).len();
                shape
            }
            _ => vec![1],
        })
    }

    pub(crate) fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_labels("boundary", inputs.target, inputs.logits.shape[1], None)
    }

    pub(crate) fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<LossPlan> {
        let value_shape = self.check_shapes(shapes)?;
        let (n, c, s, geometry) = self.layout(shapes)?;
        let classes = selected_classes(self, c);
        let k = classes.len();
        let storage = wgpu::BufferUsages::STORAGE;
        let owned = |label: &str, bytes: &[u8], usage| ctx.create_buffer_with(label, bytes, usage);

        // The plan's own maps, [N, K, S…], written by the transform and bound by range like a caller's.
        let mut steps = Vec::new();
        let mut scratch = record_signed_distance(ctx, &mut steps, &geometry, self.transform, slot::TARGET, slot::DISTANCE)?;
        let maps_shape = geometry.output_shape();
        let maps_bytes = (n * c * s) as u64 * 4;
        if maps_bytes > ctx.device().limits().max_buffer_size {
            return Err(Error::Limit(format!(
                "boundary: its {maps_bytes}-byte distance maps exceed the device's largest buffer; pass them in LossInputs::distance"
            )));
        }
        let maps = ctx.scratch("boundary distance maps", maps_bytes, storage | wgpu::BufferUsages::COPY_SRC)?;
        let stand_in = GpuTensor::new(ctx, maps.buffer().clone(), 0, &maps_shape, DType::F32)?;
        scratch.push(maps);

        let shared = Shared {
            io: owned("loss io", bytemuck::bytes_of(&options.io()), wgpu::BufferUsages::UNIFORM),
            status: owned("loss status", &[0u8; 4], storage | wgpu::BufferUsages::COPY_SRC),
            dummy_grad: owned("unused grad", &[0u8; 16], storage),
            dummy_value: owned("unused value", &[0u8; 16], storage),
        };
        // Logits, gradient and maps are [N, C, S…], labels [N, S…], per-pixel values [N, K, S…] (K ≤ C).
        let align = ctx.inner.offset_alignment;
        let layout = PixelLayout { images: n as u64, classes: c as u64, spatial: s as u64 };
        let values_layout = PixelLayout { classes: k as u64, ..layout };
        let chunks = layout.chunks(layout.pixels(), 1, ctx.binding_limit(), align, |a, b| a..b)?;
        let tiles: u64 = chunks.iter().map(|ch| (ch.units.end - ch.units.start).div_ceil(LOSS_TILE)).sum();
        let partials = ctx.scratch("loss partials", tiles * 4, storage)?;
        let write_elements = self.reduction == Reduction::None;
        let inv_denominator = match self.reduction {
            Reduction::Mean => 1.0 / (n * k * s) as f32,
            _ => 1.0,
        };
        // For every class: its slot among the selected classes (−1 if not selected), and its map's channel.
        let mut table = vec![[-1i32, 0]; c];
        for (slot_k, &class) in classes.iter().enumerate() {
            table[class] = [slot_k as i32, class as i32];
        }
        let main = ctx.kernel("boundary.wgsl", "main", &[])?;
        let loss_steps = |table: &[[i32; 2]]| -> Vec<Step> {
            let table = owned("boundary class table", bytemuck::cast_slice(table), storage);
            let mut out = Vec::new();
            let mut tile0 = 0u64;
            for chunk in &chunks {
                let range = &chunk.units;
                let (a, b) = (range.start, range.end);
                let (logits, labels, map) = (chunk.logits.clone(), chunk.pixels.clone(), chunk.logits.clone());
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
                    first_map: map.first as u32,
                    selected: k as u32,
                    first_value: values.first as u32,
                    write_elements: write_elements as u32,
                    write_grad: options.grad as u32,
                    inv_denominator,
                    _pad: 0,
                };
                tile0 += groups as u64;
                out.push(Step {
                    kernel: main.clone(),
                    sources: vec![
                        (0, Source::Owned(owned("boundary params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM))),
                        (1, Source::Owned(shared.io.clone())),
                        (3, Source::Slot(slot::LOGITS, Some(logits.clone()))),
                        (4, Source::Slot(slot::TARGET, Some(labels))),
                        (5, Source::Owned(table.clone())),
                        (6, Source::Slot(slot::DISTANCE, Some(map))),
                        (7, if options.grad { Source::Slot(slot::GRAD, Some(logits)) } else { Source::Owned(shared.dummy_grad.clone()) }),
                        (8, if write_elements { Source::Slot(slot::VALUE, Some(values)) } else { Source::Owned(shared.dummy_value.clone()) }),
                        (9, Source::Owned(partials.buffer().clone())),
                        (10, Source::Owned(shared.status.clone())),
                    ],
                    groups,
                });
            }
            out
        };
        let mut own_steps = loss_steps(&table);
        let mut given_steps = loss_steps(&table);
        if !write_elements {
            let denominator = match self.reduction {
                Reduction::Mean => (n * k * s) as f32,
                _ => 1.0,
            };
            let denom = owned("loss denominator", bytemuck::bytes_of(&denominator), storage);
            let sums = ctx.scratch("loss sum", 4, storage)?;
            let partial_place = Place::Owned(partials.buffer().clone());
            let finalize = ctx.kernel("finalize.wgsl", "finalize", &[("COUNT", 1.0)])?;
            for list in [&mut own_steps, &mut given_steps] {
                let levels = record_segmented_sum(ctx, list, partial_place.clone(), 1, tiles, Place::Owned(sums.buffer().clone()))?;
                scratch.extend(levels);
                list.push(Step {
                    kernel: finalize.clone(),
                    sources: vec![
                        (0, Source::Owned(shared.io.clone())),
                        (1, Source::Owned(denom.clone())),
                        (2, Source::Owned(sums.buffer().clone())),
                        (3, Source::Slot(slot::VALUE, None)),
                    ],
                    groups: 1,
                });
            }
            scratch.push(sums);
        }
        scratch.push(partials);
        steps.extend(own_steps);

        let slots = |maps: SlotSpec| {
            vec![
                SlotSpec { name: "logits", shape: shapes.logits.clone(), dtype: DType::F32, written: false, required: true },
                SlotSpec { name: "target", shape: shapes.target.clone(), dtype: DType::I32, written: false, required: true },
                SlotSpec { name: "weight (boundary takes none)", shape: vec![0], dtype: DType::F32, written: false, required: false },
                SlotSpec { name: "grad", shape: shapes.logits.clone(), dtype: DType::F32, written: true, required: options.grad },
                SlotSpec { name: "value", shape: value_shape.clone(), dtype: DType::F32, written: true, required: true },
                maps,
            ]
        };
        let own_maps = SlotSpec { name: "the plan's distance maps", shape: maps_shape, dtype: DType::F32, written: true, required: true };
        let given_maps = SlotSpec { name: "distance", shape: shapes.logits.clone(), dtype: DType::F32, written: false, required: true };
        let own_program = Program::new(slots(own_maps), steps);
        let given = Program::new(slots(given_maps), given_steps);
        Ok(LossPlan {
            ctx: ctx.clone(),
            program: own_program,
            io: shared.io,
            status: Some(shared.status),
            value_shape,
            options,
            _scratch: scratch,
            extras: vec![("distance", stand_in.clone())],
            optional: Some(OptionalInput { slot: slot::DISTANCE, given, stand_in }),
        })
    }
}

/// Buffers both of the plan's programs bind.
struct Shared {
    io: wgpu::Buffer,
    status: wgpu::Buffer,
    dummy_grad: wgpu::Buffer,
    dummy_value: wgpu::Buffer,
}
