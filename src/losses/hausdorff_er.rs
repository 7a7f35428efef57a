//! `hausdorff_er` (Karimi & Salcudean 2019, SPEC.md): kornia's erosion-based
//! Hausdorff loss. The squared error of every (image, class) map is eroded
//! k times (a cross average with zero padding, a threshold at ½, a min-max
//! normalisation per map), and the erosions are summed with weights
//! (i+1)^α. Differentiable all the way, through `lo` and `hi` too.
//!
//! The kernels are `shaders/hausdorff_er.wgsl`, on the shared stencil of
//! [`crate::primitives::stencil`]; the float64 twin is
//! reference/hausdorff_er.rs. The plan runs over chunks of whole images
//! (a map's erosion needs all of it). Per chunk: one pass for the squared
//! errors, two per erosion forward (the stencil, then each map's range),
//! two per erosion in reverse (a stencil that forms ∂/∂D of the erosion
//! above as it reads each neighbour and writes ∂/∂E with the sums that the gradient
//! through `lo` and `hi` needs, then their segmented sum), and two to reach
//! the logits.
//!
//! What the reverse pass keeps: every erosion's cross average D_i, plus two
//! working maps, so (k + 2)·4 bytes per pixel and class; the map buffers
//! are sized for the largest chunk and reused by the next. The threshold's
//! mask and which elements attain `lo` and `hi` are recomputed from D_i by
//! the same f32 operations as the forward pass, so nothing else is stored.
//! Recomputing D_i instead would take i stencil passes for erosion i,
//! k²/2 in all: at the default k = 10 that is five times the passes, to
//! save 40 bytes per pixel and class.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::PixelLayout;
use crate::gpu::context::GpuContext;
use crate::gpu::layout::{Chunk, WG_SIZE};
use crate::gpu::program::{Binding, Step};
use crate::gpu::tensor::DType;
use crate::losses::builder::PlanBuilder;
use crate::losses::loss::{Checked, Loss};
use crate::losses::overlap::{OverlapMode, check_layout, check_targets, overlap_target};
use crate::losses::plan::{LossPlan, PlanOptions, slot};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};
use crate::primitives::reduce::record_segmented_sum;
use crate::primitives::stencil::{StencilGeometry, StencilGrid};

/// Parameters of `hausdorff_er` (SPEC.md's names and defaults: kornia's
/// `HausdorffERLoss` and `HausdorffERLoss3D`, on logits).
///
/// ```
/// let config = segloss::LossConfig::from_json(r#"{"loss": "hausdorff_er", "params": {"alpha": 2.0, "k": 10}}"#)?;
/// assert_eq!(config.name(), "hausdorff_er");
/// # Ok::<(), segloss::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HausdorffErConfig {
    /// `multiclass` (softmax over every class, class-index targets; default)
    /// or `binary` (one channel, sigmoid, dense {0, 1} targets).
    pub mode: OverlapMode,
    /// α, the exponent of the erosions' weights (i+1)^α (2).
    pub alpha: f64,
    /// k, the number of erosions (10; 0 gives 0).
    pub k: usize,
    /// `"mean"` over every element, `"sum"`, or `"none"` (`[N, C, S…]`).
    pub reduction: Reduction,
}

impl Default for HausdorffErConfig {
    fn default() -> Self {
        HausdorffErConfig { mode: OverlapMode::Multiclass, alpha: 2.0, k: 10, reduction: Reduction::Mean }
    }
}

const LOSS: &str = "hausdorff_er";

/// The most erosions a plan takes: each adds five dispatches per chunk and
/// a stored map, and every erosion after the first few that empty a map
/// adds nothing.
pub const MAX_K: usize = 1024;

/// Largest value the kernels' sums may reach (f32's largest is 3.4e38).
const F32_HEADROOM: f64 = 1e36;

impl Loss for HausdorffErConfig {
    type Layout = PixelLayout;

    const NAME: &'static str = LOSS;

    fn target_kind(&self) -> TargetKind {
        overlap_target(self.mode)
    }

    fn sharding(&self) -> Sharding {
        Sharding::of(self.reduction)
    }

    fn validate(&self) -> Result<()> {
        if self.mode == OverlapMode::Multilabel {
            return Err(Error::config(LOSS, "mode must be \"multiclass\" or \"binary\"; kornia's loss has no multilabel form"));
        }
        if !self.alpha.is_finite() {
            return Err(Error::config(LOSS, format!("alpha = {} must be a finite number", self.alpha)));
        }
        if self.k > MAX_K {
            return Err(Error::config(LOSS, format!("k = {} exceeds the {MAX_K} erosions a plan takes", self.k)));
        }
        // Every element of out is at most Σ_i (i+1)^α, each E_i lying in [0, 1].
        if self.weights().iter().sum::<f64>() > F32_HEADROOM {
            return Err(Error::config(LOSS, format!("alpha = {} with k = {} weighs erosions beyond the f32 range", self.alpha, self.k)));
        }
        Ok(())
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        let l = &shapes.logits;
        if !(l.len() == 4 || l.len() == 5) {
            return Err(Error::shape(LOSS, "logits", l, format!("logits {l:?} must be [N, C, H, W] or [N, C, D, H, W]")));
        }
        let layout = check_layout(LOSS, self.mode, true, shapes)?;
        if layout.images * layout.classes * layout.spatial >= 1 << 31 {
            return Err(Error::limit(LOSS, format!("{} logits exceed the 2^31 the kernels index", layout.images * layout.classes * layout.spatial)));
        }
        let elements = (layout.images * layout.classes * layout.spatial) as f64;
        if self.reduction == Reduction::Sum && elements * self.weights().iter().sum::<f64>() > F32_HEADROOM {
            return Err(Error::config(LOSS, format!("alpha = {} with k = {} sums beyond the f32 range over {elements} elements", self.alpha, self.k)));
        }
        let value_shape = if self.reduction == Reduction::None { l.clone() } else { vec![1] };
        Ok(Checked { layout, value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_targets(LOSS, self.mode, None, inputs)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        ErPlanner { config: self, ctx, layout: checked.layout, spatial: &shapes.logits[2..] }.plan(shapes, checked.value_shape, options)
    }
}

impl HausdorffErConfig {
    /// (i+1)^α for each erosion i.
    fn weights(&self) -> Vec<f64> {
        (1..=self.k).map(|i| (i as f64).powf(self.alpha)).collect()
    }
}

/// The reverse pass's sums per map (`BACK_SUMS` in hausdorff_er.wgsl).
const BACK_SUMS: u64 = 4;

/// The buffers every chunk's steps share.
struct ErBuffers {
    work: wgpu::Buffer,
    carry: Binding,
    dmaps: Vec<wgpu::Buffer>,
    /// The reverse pass's sums per map, then each erosion's (lo, hi) per
    /// map (`map_terms` in hausdorff_er.wgsl).
    map_terms: wgpu::Buffer,
    partials: wgpu::Buffer,
    contrib: wgpu::Buffer,
}

struct ErPlanner<'a> {
    config: &'a HausdorffErConfig,
    ctx: &'a GpuContext,
    layout: PixelLayout,
    spatial: &'a [usize],
}

impl ErPlanner<'_> {
    fn plan(&self, shapes: &InputShapes, value_shape: Vec<usize>, options: PlanOptions) -> Result<LossPlan> {
        let (ctx, config) = (self.ctx, self.config);
        let PixelLayout { images: n, classes: c, spatial: s } = self.layout;
        let softmax = config.mode == OverlapMode::Multiclass;
        let elements = config.reduction == Reduction::None;
        let mut plan = PlanBuilder::new(LOSS, ctx, options, shapes, if softmax { DType::I32 } else { DType::F32 });
        // Chunks of whole images: a map's erosion needs all of it.
        let chunks = self.layout.image_chunks(ctx.binding_limit(), ctx.inner.offset_alignment, c * s * 4)?;
        let most_maps = chunks.iter().map(|ch| ch.units.end - ch.units.start).max().unwrap_or(1) * c;
        let grid = StencilGrid::new(most_maps as usize, self.spatial)?;
        let tiles = grid.groups_per_map() as u64;
        let map_bytes = most_maps * s * 4;
        let k = config.k as u64;
        let buffers = ErBuffers {
            work: plan.scratch("hausdorff_er work", map_bytes)?,
            carry: if elements || options.grad {
                Binding::owned(&plan.scratch("hausdorff_er carry", map_bytes)?)
            } else {
                plan.unused_output("hausdorff_er carry (unused)")
            },
            dmaps: (0..k).map(|_| plan.scratch("hausdorff_er averages", map_bytes)).collect::<Result<_>>()?,
            map_terms: plan.scratch("hausdorff_er map terms", (BACK_SUMS + 2 * k.max(1)) * most_maps * 4)?,
            partials: plan.scratch("hausdorff_er partials", BACK_SUMS * most_maps * tiles * 4)?,
            contrib: plan.scratch("hausdorff_er contributions", n * c * 4)?,
        };
        let constants = [("SOFTMAX", softmax as u32 as f64)];
        let kernel = |entry| plan.kernel("hausdorff_er.wgsl", entry, &constants);
        let (input, forward, range, back_stats, to_logits) =
            (kernel("er_input")?, kernel("er_forward")?, kernel("er_range")?, kernel("er_back_stats")?, kernel("er_grad")?);
        let status = plan.status();
        let unused = plan.unused_input();
        let weights = config.weights();
        // j^α for j in 1..=k, and 0 outside (no erosion 0, none past k).
        let weight = |j: u64| if j == 0 || j > k { 0.0 } else { weights[j as usize - 1] as f32 };
        let upstream = if config.reduction == Reduction::Mean { 1.0 / (n * c * s) as f64 } else { 1.0 };

        for ch in &chunks {
            let (n0, n1) = (ch.units.start, ch.units.end);
            let maps = (n1 - n0) * c;
            let grid = StencilGrid::new(maps as usize, self.spatial)?;
            let base = ErParams {
                geometry: grid.uniform(),
                chunk: self.layout.image_chunk_uniform(ch),
                maps: maps as u32,
                map0: (n0 * c) as u32,
                steps: k as u32,
                average: if self.spatial.len() == 3 { 1.0 / 7.0 } else { 1.0 / 5.0 },
                upstream: upstream as f32,
                elements: elements as u32,
                ..Zeroable::zeroed()
            };
            let at = |i: u64| ErParams { step: i as u32, weight: weight(i + 1), prev_weight: weight(i), ..base };
            let dmap = |i: u64| Binding::owned(&buffers.dmaps[i as usize]);
            // Every binding any entry takes; each step gets those its entry uses.
            let bindings = |params: ErParams, maps_of_step: StepMaps| -> Vec<(&'static str, Binding)> {
                let StepMaps { work, source, dmap, dnext } = maps_of_step;
                let or_unused = |b: Option<Binding>| b.unwrap_or_else(|| unused.clone());
                vec![
                    ("up", plan.uniform("hausdorff_er params", &params)),
                    ("io", plan.io()),
                    ("logits", Binding::range(slot::LOGITS, &ch.logits)),
                    ("targets", Binding::range(slot::TARGET, if softmax { &ch.pixels } else { &ch.logits })),
                    ("work", work.unwrap_or_else(|| Binding::owned(&buffers.work))),
                    ("source", or_unused(source)),
                    ("dmap", dmap.unwrap_or_else(|| plan.unused_output("unused dmap"))),
                    ("dnext", or_unused(dnext)),
                    ("map_terms", Binding::owned(&buffers.map_terms)),
                    ("partials", Binding::owned(&buffers.partials)),
                    ("carry", buffers.carry.clone()),
                    ("contrib", Binding::owned(&buffers.contrib)),
                    ("grad", if options.grad { Binding::range(slot::GRAD, &ch.logits) } else { plan.unused_output("unused grad") }),
                    ("status", status.clone()),
                    ("value", if elements { Binding::range(slot::VALUE, &ch.logits) } else { Binding::slot(slot::VALUE) }),
                ]
            };
            let pixel_groups = ((n1 - n0) * s).div_ceil(WG_SIZE) as u32;
            let stencil_groups = grid.groups() as u32;
            let mut steps = vec![Step::from_table(&input, pixel_groups, bindings(base, StepMaps::default()))?];

            // Forward: erosion i from B_0 or E_{i−1}; step k adds up E_{k−1}.
            for i in 0..=k {
                let source = if i == 0 { Binding::owned(&buffers.work) } else { dmap(i - 1) };
                let maps_of_step = || StepMaps { source: Some(source.clone()), dmap: (i < k).then(|| dmap(i)), ..StepMaps::default() };
                steps.push(Step::from_table(&forward, stencil_groups, bindings(at(i), maps_of_step()))?);
                steps.push(Step::from_table(&range, maps as u32, bindings(at(i), maps_of_step()))?);
            }
            let mut levels = Vec::new();
            if options.grad {
                // ∂/∂E ping-pongs: step r of the reverse pass writes pong[r % 2] and reads the other.
                let pong = [Binding::owned(&buffers.work), buffers.carry.clone()];
                for (r, i) in (0..k).rev().enumerate() {
                    let maps_of_step = StepMaps {
                        work: Some(pong[r % 2].clone()),
                        source: Some(pong[(r + 1) % 2].clone()),
                        dmap: Some(dmap(i)),
                        dnext: (i + 1 < k).then(|| dmap(i + 1)),
                    };
                    let params = ErParams { source_step: (i + 1) as u32, ..at(i) };
                    steps.push(Step::from_table(&back_stats, stencil_groups, bindings(params, maps_of_step))?);
                    // The sums are the first BACK_SUMS·maps of the map terms.
                    let sums = Binding::owned(&buffers.map_terms);
                    levels.extend(record_segmented_sum(ctx, &mut steps, Binding::owned(&buffers.partials), BACK_SUMS * maps, tiles, sums)?);
                }
                let last = k as usize % 2;
                if k > 0 {
                    // The input pass: ∂/∂B_0 from ∂/∂D_0.
                    let maps_of_step = StepMaps { work: Some(pong[last].clone()), source: Some(pong[(last + 1) % 2].clone()), dmap: None, dnext: Some(dmap(0)) };
                    steps.push(Step::from_table(&back_stats, stencil_groups, bindings(ErParams { source_step: 0, ..at(k) }, maps_of_step))?);
                }
                let maps_of_step = StepMaps { work: Some(pong[last].clone()), ..StepMaps::default() };
                steps.push(Step::from_table(&to_logits, pixel_groups, bindings(base, maps_of_step))?);
            }
            plan.steps_mut().extend(steps);
            plan.keep(levels);
        }
        if !elements {
            let denominator = plan.denominator(if config.reduction == Reduction::Mean { (n * c * s) as f32 } else { 1.0 });
            plan.sum_to_value(&buffers.contrib, n * c, &denominator)?;
        }
        Ok(plan.finish(value_shape))
    }
}

/// The map buffers one step binds: `work` (its output; the plan's own work
/// map when none), the stencil's `source`, `dmap` (D_i) and `dnext`
/// (D_{i+1}); stand-ins where a step has none.
#[derive(Default)]
struct StepMaps {
    work: Option<Binding>,
    source: Option<Binding>,
    dmap: Option<Binding>,
    dnext: Option<Binding>,
}

/// `struct ErParams` in `hausdorff_er.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ErParams {
    geometry: StencilGeometry,
    chunk: Chunk,
    maps: u32,
    map0: u32,
    step: u32,
    steps: u32,
    average: f32,
    weight: f32,
    prev_weight: f32,
    upstream: f32,
    elements: u32,
    source_step: u32,
    _pad: [u32; 2],
}
