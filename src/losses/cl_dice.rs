//! `cl_dice` (Shit et al. 2021, SPEC.md): MONAI's centreline Dice, the
//! topology-preserving loss of vessels, roads and neurons, alone (α = 1,
//! `SoftclDiceLoss`) or beside Dice (`SoftDiceclDiceLoss`).
//!
//! The soft skeleton runs on the shared stencil of
//! [`crate::primitives::stencil`]: J_0 = p, J_{j+1} = erode(J_j) (the cross
//! minimum), δ_j = relu(J_j − dilate(J_{j+1})) (the box maximum; the
//! opening of J_j is the dilation of J_{j+1}), S = δ_0, then
//! S += relu(δ_j − S·δ_j). One stencil pass per level does both the
//! erosion of the next level and the opening of this one, for the
//! prediction's maps and the target's together. Kernels
//! `shaders/cl_dice.wgsl`; float64 twin reference/cl_dice.rs.
//!
//! What the reverse pass keeps: every level J_0..J_{K+1} and every δ_j of
//! both skeletons, and for the prediction's maps the selections, which
//! pixel each erosion and each opening took (one u32 per level: the cross's
//! index and the box's). That is (2(K+2) + 2(K+1) + (K+1))·4 bytes per
//! pixel and kept channel: 88 at the default K = 3. The prediction's and
//! the target's maps live in separate buffers, so the largest binding is
//! one skeleton's levels, (K+2)·4 bytes per pixel and kept channel. With the selections
//! stored, the reverse pass needs no J: it gathers each pixel's gradient
//! from the neighbours whose selection points at it, and writes it over
//! that level's J. Recomputing the selections instead would need each
//! level's J at distance two (a halo of two), and the same J stored.
//! The plan runs over chunks of whole images whose levels fit one binding.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::{PixelChunk, PixelLayout};
use crate::gpu::context::GpuContext;
use crate::gpu::layout::{Chunk, WG_SIZE};
use crate::gpu::program::{Binding, Step};
use crate::gpu::tensor::DType;
use crate::losses::builder::PlanBuilder;
use crate::losses::checks::check_range;
use crate::losses::loss::{Checked, Loss};
use crate::losses::overlap::{OverlapMode, check_layout, check_targets, overlap_target};
use crate::losses::plan::{LossPlan, PlanOptions, slot};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};
use crate::primitives::reduce::record_segmented_sum;
use crate::primitives::stencil::{StencilGeometry, StencilGrid};

/// Parameters of `cl_dice` (SPEC.md's names and defaults: MONAI's
/// `SoftclDiceLoss`, and `SoftDiceclDiceLoss` with `alpha` < 1).
///
/// ```
/// let config = segloss::LossConfig::from_json(r#"{"loss": "cl_dice", "params": {"iterations": 5, "alpha": 0.5}}"#)?;
/// assert_eq!(config.name(), "cl_dice");
/// # Ok::<(), segloss::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClDiceConfig {
    /// `multiclass` (softmax, class-index targets; default), `binary` (one
    /// channel) or `multilabel` (sigmoid, dense {0, 1} targets).
    pub mode: OverlapMode,
    /// K, the skeleton's erosions (3).
    pub iterations: usize,
    /// Added to the numerators of tprec, tsens and Dice (1).
    pub smooth_nr: f64,
    /// Added to their denominators (1; > 0).
    pub smooth_dr: f64,
    /// Added to the harmonic mean's denominator (1e-4; > 0).
    pub smooth: f64,
    /// α, clDice's weight; Dice's is 1 − α (1: clDice alone).
    pub alpha: f64,
    /// Keep channel 0 (true); dropped after the softmax otherwise.
    pub include_background: bool,
    /// `"mean"` over the images, `"sum"`, or `"none"` (`[N]`).
    pub reduction: Reduction,
}

impl Default for ClDiceConfig {
    fn default() -> Self {
        ClDiceConfig {
            mode: OverlapMode::Multiclass,
            iterations: 3,
            smooth_nr: 1.0,
            smooth_dr: 1.0,
            smooth: 1e-4,
            alpha: 1.0,
            include_background: true,
            reduction: Reduction::Mean,
        }
    }
}

const LOSS: &str = "cl_dice";

/// The most skeleton iterations a plan takes: the reverse pass keeps each
/// pixel's K + 1 partial skeletons in registers (`MAX_LEVELS` in cl_dice.wgsl).
pub const MAX_ITERATIONS: usize = 63;

/// The smallest `smooth_dr` and `smooth`: SPEC.md asks only > 0; below
/// this their reciprocals' squares leave f32.
pub const MIN_SMOOTHING: f64 = 1e-15;

impl ClDiceConfig {
    /// The first channel kept: 1 when `include_background` is false and C > 1.
    pub fn first_channel(&self, c: usize) -> usize {
        (!self.include_background && c > 1) as usize
    }
}

impl Loss for ClDiceConfig {
    type Layout = PixelLayout;

    const NAME: &'static str = LOSS;

    fn target_kind(&self) -> TargetKind {
        overlap_target(self.mode)
    }

    fn sharding(&self) -> Sharding {
        Sharding::of(self.reduction)
    }

    fn validate(&self) -> Result<()> {
        if self.iterations > MAX_ITERATIONS {
            return Err(Error::config(LOSS, format!("iterations = {} exceeds the {MAX_ITERATIONS} the kernels take", self.iterations)));
        }
        check_range(LOSS, "smooth_nr", self.smooth_nr, 0.0, 1e30)?;
        check_range(LOSS, "smooth_dr", self.smooth_dr, MIN_SMOOTHING, 1e30)?;
        check_range(LOSS, "smooth", self.smooth, MIN_SMOOTHING, 1e30)?;
        check_range(LOSS, "alpha", self.alpha, 0.0, 1.0)
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        let l = &shapes.logits;
        if !(l.len() == 4 || l.len() == 5) {
            return Err(Error::shape(LOSS, "logits", l, format!("logits {l:?} must be [N, C, H, W] or [N, C, D, H, W]")));
        }
        let layout = check_layout(LOSS, self.mode, true, shapes)?;
        if self.mode == OverlapMode::Multiclass && layout.classes < 2 {
            return Err(Error::shape(LOSS, "logits", l, format!("multiclass mode needs C ≥ 2 classes; the logits {l:?} have 1 (use binary)")));
        }
        if layout.images * layout.classes * layout.spatial >= 1 << 31 {
            return Err(Error::limit(LOSS, format!("{} logits exceed the 2^31 the kernels index", layout.images * layout.classes * layout.spatial)));
        }
        let value_shape = if self.reduction == Reduction::None { vec![layout.images as usize] } else { vec![1] };
        Ok(Checked { layout, value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_targets(LOSS, self.mode, None, inputs)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        ClPlanner { config: self, ctx, layout: checked.layout, spatial: &shapes.logits[2..] }.plan(shapes, checked.value_shape, options)
    }
}

/// The sums per map (`SUMS` in cl_dice.wgsl): Σ Sp·g, Σ Sp, Σ Sg·p, Σ Sg, Σ p·g, Σ p, Σ g.
const SUMS: u64 = 7;

/// Pixels of one map a `cl_stats` workgroup covers (`STATS_TILE` in cl_dice.wgsl).
const STATS_TILE: u64 = WG_SIZE * 8;

struct ClPlanner<'a> {
    config: &'a ClDiceConfig,
    ctx: &'a GpuContext,
    layout: PixelLayout,
    spatial: &'a [usize],
}

impl ClPlanner<'_> {
    /// Chunks of whole images whose levels (the largest scratch, `level_bytes` per image) fit one binding.
    fn chunks(&self, level_bytes: u64) -> Result<Vec<PixelChunk>> {
        let (limit, align) = (self.ctx.binding_limit(), self.ctx.inner.offset_alignment);
        if level_bytes > limit {
            return Err(Error::limit(LOSS, format!(
                "one image's {} skeleton levels take {level_bytes} bytes, more than the device's {limit}-byte binding: lower iterations or the image size",
                self.config.iterations + 2
            )));
        }
        self.layout.image_chunks(limit, align, level_bytes)
    }

    fn plan(&self, shapes: &InputShapes, value_shape: Vec<usize>, options: PlanOptions) -> Result<LossPlan> {
        let (ctx, config) = (self.ctx, self.config);
        let PixelLayout { images: n, classes: c, spatial: s } = self.layout;
        let first = config.first_channel(c as usize) as u64;
        let kept = c - first;
        let softmax = config.mode == OverlapMode::Multiclass;
        let elements = config.reduction == Reduction::None;
        let k = config.iterations as u64;
        let mut plan = PlanBuilder::new(LOSS, ctx, options, shapes, if softmax { DType::I32 } else { DType::F32 });
        let chunks = self.chunks((k + 2) * kept * s * 4)?;
        let most = chunks.iter().map(|ch| ch.units.end - ch.units.start).max().unwrap_or(1);
        let most_maps = most * kept;
        let tiles = s.div_ceil(STATS_TILE);
        // The prediction's and the target's maps in buffers of their own, each half the size.
        let levels = plan.scratch("cl_dice levels", (k + 2) * most_maps * s * 4)?;
        let deltas = plan.scratch("cl_dice deltas", (k + 1) * most_maps * s * 4)?;
        let target_levels = plan.scratch("cl_dice target levels", (k + 2) * most_maps * s * 4)?;
        let target_deltas = plan.scratch("cl_dice target deltas", (k + 1) * most_maps * s * 4)?;
        let selections = plan.scratch("cl_dice selections", (k + 1) * most_maps * s * 4)?;
        let partials = plan.scratch("cl_dice partials", SUMS * most_maps * tiles * 4)?;
        let sums = plan.scratch("cl_dice sums", SUMS * most_maps * 4)?;
        let coef = plan.scratch("cl_dice coefficients", most_maps * 32)?;
        let contrib = plan.scratch("cl_dice contributions", n * 4)?;
        let constants = [("SOFTMAX", softmax as u32 as f64)];
        let kernel = |entry| plan.kernel("cl_dice.wgsl", entry, &constants);
        let (input, skeleton, stats, groups, chain, back, to_logits) = (
            kernel("cl_input")?,
            kernel("cl_skeleton")?,
            kernel("cl_stats")?,
            kernel("cl_groups")?,
            kernel("cl_chain")?,
            kernel("cl_back")?,
            kernel("cl_grad")?,
        );
        let status = plan.status();
        let per_image = if config.reduction == Reduction::Mean { 1.0 / n as f64 } else { 1.0 };
        let dice_weight = if config.reduction == Reduction::Sum { 1.0 } else { 1.0 / kept as f64 };

        for ch in &chunks {
            let (n0, n1) = (ch.units.start, ch.units.end);
            let maps = (n1 - n0) * kept;
            let grid = StencilGrid::new(2 * maps as usize, self.spatial)?;
            let base = ClParams {
                geometry: grid.uniform(),
                chunk: self.layout.image_chunk_uniform(ch),
                maps: maps as u32,
                first: first as u32,
                kept: kept as u32,
                image0: n0 as u32,
                images: (n1 - n0) as u32,
                iterations: k as u32,
                tiles: tiles as u32,
                elements: elements as u32,
                smooth_nr: config.smooth_nr as f32,
                smooth_dr: config.smooth_dr as f32,
                smooth_hm: config.smooth as f32,
                alpha: config.alpha as f32,
                per_image: per_image as f32,
                dice_weight: dice_weight as f32,
                ..Zeroable::zeroed()
            };
            let at = |level: u64| ClParams { level: level as u32, ..base };
            let bindings = |params: ClParams| -> Vec<(&'static str, Binding)> {
                vec![
                    ("up", plan.uniform("cl_dice params", &params)),
                    ("io", plan.io()),
                    ("logits", Binding::range(slot::LOGITS, &ch.logits)),
                    ("targets", Binding::range(slot::TARGET, if softmax { &ch.pixels } else { &ch.logits })),
                    ("levels", Binding::owned(&levels)),
                    ("deltas", Binding::owned(&deltas)),
                    ("target_levels", Binding::owned(&target_levels)),
                    ("target_deltas", Binding::owned(&target_deltas)),
                    ("selections", Binding::owned(&selections)),
                    ("partials", Binding::owned(&partials)),
                    ("sums", Binding::owned(&sums)),
                    ("coef", Binding::owned(&coef)),
                    ("contrib", Binding::owned(&contrib)),
                    ("grad", if options.grad { Binding::range(slot::GRAD, &ch.logits) } else { plan.unused_output("unused grad") }),
                    ("status", status.clone()),
                    ("value", Binding::slot(slot::VALUE)),
                ]
            };
            let pixel_groups = ((n1 - n0) * s).div_ceil(WG_SIZE) as u32;
            let map_groups = (maps * s).div_ceil(WG_SIZE) as u32;
            let mut steps = vec![Step::from_table(&input, pixel_groups, bindings(base))?];
            // Level L's tile gives J_{L+1} (L ≤ K) and δ_{L−1} (L ≥ 1).
            for level in 0..=k + 1 {
                steps.push(Step::from_table(&skeleton, grid.groups() as u32, bindings(at(level)))?);
            }
            steps.push(Step::from_table(&stats, (maps * tiles) as u32, bindings(base))?);
            let kept_levels = record_segmented_sum(ctx, &mut steps, Binding::owned(&partials), SUMS * maps, tiles, Binding::owned(&sums))?;
            steps.push(Step::from_table(&groups, (n1 - n0).div_ceil(64) as u32, bindings(base))?);
            if options.grad {
                steps.push(Step::from_table(&chain, map_groups, bindings(base))?);
                // ∂/∂J_L from J_{K+1} down to J_0, written over J_L; level 0 adds the direct terms.
                for level in (0..=k + 1).rev() {
                    steps.push(Step::from_table(&back, (grid.groups() / 2) as u32, bindings(at(level)))?);
                }
                steps.push(Step::from_table(&to_logits, pixel_groups, bindings(base))?);
            }
            plan.steps_mut().extend(steps);
            plan.keep(kept_levels);
        }
        if !elements {
            let denominator = plan.denominator(if config.reduction == Reduction::Mean { n as f32 } else { 1.0 });
            plan.sum_to_value(&contrib, n, &denominator)?;
        }
        Ok(plan.finish(value_shape))
    }
}


/// `struct ClParams` in `cl_dice.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ClParams {
    geometry: StencilGeometry,
    chunk: Chunk,
    maps: u32,
    first: u32,
    kept: u32,
    image0: u32,
    images: u32,
    iterations: u32,
    level: u32,
    tiles: u32,
    elements: u32,
    smooth_nr: f32,
    smooth_dr: f32,
    smooth_hm: f32,
    alpha: f32,
    per_image: f32,
    dice_weight: f32,
    _pad: [u32; 3],
}
