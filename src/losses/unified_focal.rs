//! `unified_focal` (Yeung et al. 2022, SPEC.md): MONAI's asymmetric unified
//! focal loss, `L = λ·AFL + (1−λ)·AFTL`, for binary segmentation through a
//! sigmoid (one channel) or a two-channel softmax.
//!
//! A confusion-count loss in the overlap family's three stages (see
//! `shaders/unified_focal.wgsl`): one pass over the logits for per-image
//! sums (each class's TP, the two cross counts that are both classes' FN
//! and FP, and AFL's terms), added by the segmented sum every overlap loss
//! uses; a per-image stage for the value and the coefficients of AFTL's
//! gradient; and, with a gradient, a second pass over the logits. Its sums
//! are its own rather than the overlap losses' I, P, G: FN = G − I and
//! FP = P − I lose the ε-sized counts of a confident prediction to f32
//! rounding, and (1 − T_1)^(1−γ) with them. The float64 twin is
//! reference/unified_focal.rs.

use serde::{Deserialize, Serialize};

use bytemuck::{Pod, Zeroable};

use crate::losses::convert::InPlace;
use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::{PixelChunk, PixelLayout, tile_span};
use crate::gpu::context::GpuContext;
use crate::gpu::layout::{Chunk, LOSS_TILE, WG_SIZE};
use crate::gpu::program::{Binding, Step};
use crate::gpu::tensor::DType;
use crate::losses::builder::PlanBuilder;
use crate::losses::checks::check_range;
use crate::losses::loss::{Checked, Loss};
use crate::losses::overlap::{OverlapMode, check_layout, check_targets, overlap_target};
use crate::losses::plan::{LossPlan, PlanOptions, slot};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};

/// Parameters of `unified_focal` (SPEC.md's names and defaults: MONAI's
/// `AsymmetricUnifiedFocalLoss`, with its inner ε exposed).
///
/// ```
/// let config = segloss::LossConfig::from_json(r#"{"loss": "unified_focal", "params": {"weight": 0.5, "delta": 0.6}}"#)?;
/// assert_eq!(config.name(), "unified_focal");
/// # Ok::<(), segloss::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnifiedFocalConfig {
    /// `binary` (default: one channel, sigmoid, dense {0, 1} targets) or
    /// `multiclass` (two channels, softmax, labels {0, 1}).
    pub mode: OverlapMode,
    /// λ, AFL's weight; AFTL's is 1 − λ (0.5).
    pub weight: f64,
    /// δ, the weight of false negatives against false positives (0.7).
    pub delta: f64,
    /// γ, the focal exponent (0.5).
    pub gamma: f64,
    /// ε, the clamp of the probabilities and the Tversky smoothing (1e-7).
    pub eps: f64,
    /// `"mean"` only: MONAI's other reductions return the same scalar.
    pub reduction: Reduction,
}

impl Default for UnifiedFocalConfig {
    fn default() -> Self {
        UnifiedFocalConfig { mode: OverlapMode::Binary, weight: 0.5, delta: 0.7, gamma: 0.5, eps: 1e-7, reduction: Reduction::Mean }
    }
}

const LOSS: &str = "unified_focal";

/// The smallest ε accepted. Below it the f32 kernels' clamp bound and the
/// gradient's 1/ε factors leave the normal f32 range (SPEC.md's bound is
/// only ε > 0).
pub const MIN_EPS: f64 = 1e-12;

/// How far δ must stay from 0 and 1: the gradient of (1 − T_1)^(1−γ)
/// grows like (δ·ε)^(−γ), which must stay a finite f32.
pub const DELTA_MARGIN: f64 = 1e-6;

impl Loss for UnifiedFocalConfig {
    type Layout = PixelLayout;

    const NAME: &'static str = LOSS;

    fn target_kind(&self) -> TargetKind {
        overlap_target(self.mode)
    }

    fn sharding(&self) -> Sharding {
        Sharding::of(self.reduction)
    }

    fn in_place(&self) -> InPlace {
        // Targets are read as 32-bit words (class indices or f32), as in overlap.wgsl.
        InPlace::LOGITS_AND_GRAD
    }

    fn validate(&self) -> Result<()> {
        if self.mode == OverlapMode::Multilabel {
            return Err(Error::config(LOSS, "mode must be \"binary\" or \"multiclass\" (two classes); multilabel is not defined"));
        }
        if self.reduction != Reduction::Mean {
            return Err(Error::config(LOSS, format!(
                "reduction must be \"mean\": MONAI's \"sum\" and \"none\" return the same scalar, so SPEC.md accepts only \"mean\" (got {:?})",
                self.reduction
            )));
        }
        check_range(LOSS, "weight", self.weight, 0.0, 1.0)?;
        check_range(LOSS, "gamma", self.gamma, 0.0, 1.0)?;
        check_range(LOSS, "delta", self.delta, DELTA_MARGIN, 1.0 - DELTA_MARGIN)?;
        if !(self.eps >= MIN_EPS && self.eps < 0.5) {
            return Err(Error::config(LOSS, format!("eps = {} must lie in [{MIN_EPS:e}, 0.5)", self.eps)));
        }
        Ok(())
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        let layout = check_layout(LOSS, self.mode, true, shapes)?;
        if self.mode == OverlapMode::Multiclass && layout.classes != 2 {
            return Err(Error::shape(LOSS, "logits", &shapes.logits, format!(
                "multiclass mode takes two channels (background, foreground); the logits {:?} have {}",
                shapes.logits, layout.classes
            )));
        }
        Ok(Checked { layout, value_shape: vec![1] })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_targets(LOSS, self.mode, None, inputs)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        let Checked { layout, value_shape } = checked;
        let (n, c, s) = (layout.images, layout.classes, layout.spatial);
        if n * c * s >= 1 << 31 {
            return Err(Error::limit(LOSS, format!("{} logits exceed the 2^31 the kernels index", n * c * s)));
        }
        let softmax = self.mode == OverlapMode::Multiclass;
        let (align, limit) = (ctx.inner.offset_alignment, ctx.binding_limit());
        let tiles = s.div_ceil(STATS_TILE);
        let mut plan = PlanBuilder::new(LOSS, ctx, options, shapes, if softmax { DType::I32 } else { DType::F32 });
        // Labels outside {0, 1} and non-finite inputs, flagged by the stats
        // pass; sum_to_value then writes NaN.
        let status = plan.status();
        let partials = plan.scratch("unified focal partials", SUMS * n * tiles * 4)?;
        let stats = plan.scratch("unified focal stats", SUMS * n * 4)?;
        let coef = plan.scratch("unified focal coefficients", n * 16)?;
        let contrib = plan.scratch("unified focal contributions", n * 4)?;
        let params = |chunk: Chunk| UnifiedParams {
            chunk,
            images: n as u32,
            tiles: tiles as u32,
            delta: self.delta as f32,
            gamma: self.gamma as f32,
            eps: self.eps as f32,
            afl_scale: (self.weight / (2 * n * s) as f64) as f32,
            aftl_scale: ((1.0 - self.weight) / (2 * n) as f64) as f32,
            ..Zeroable::zeroed()
        };
        let constants = [("SOFTMAX", softmax as u32 as f64)];
        let target_range = |ch: &PixelChunk| if softmax { ch.pixels.clone() } else { ch.logits.clone() };

        // 1. Every image's five sums: per-tile partials, then their segmented sum.
        // Logits and gradient are read and written in their own type (`Loss::in_place`).
        let elements = PlanBuilder::LOGITS_AND_GRAD;
        let kernel = plan.kernel_on("unified_focal.wgsl", "unified_stats", &constants, &elements)?;
        let mut steps = Vec::new();
        for ch in layout.chunks(n * tiles, 1, limit, align, |a, b| tile_span(a, b, tiles, s, STATS_TILE))? {
            let chunk = layout.chunk_uniform(&ch, 0);
            steps.push(Step::new(
                &kernel,
                chunk.count,
                vec![
                    ("up", plan.uniform("unified focal params", &params(chunk))),
                    ("logits", Binding::range(slot::LOGITS, &ch.logits)),
                    ("targets", Binding::range(slot::TARGET, &target_range(&ch))),
                    ("partials", Binding::owned(&partials)),
                    ("status", status.clone()),
                ],
            )?);
        }
        plan.steps_mut().extend(steps);
        plan.segmented_sum(Binding::owned(&partials), SUMS * n, tiles, Binding::owned(&stats))?;

        // 2. Per image: its share of the value, the Tversky coefficients.
        let groups = plan.kernel("unified_focal.wgsl", "unified_groups", &constants)?;
        plan.dispatch(
            &groups,
            n.div_ceil(64) as u32,
            vec![
                ("up", plan.uniform("unified focal params", &params(Chunk::zeroed()))),
                ("io", plan.io()),
                ("stats", Binding::owned(&stats)),
                ("coef", Binding::owned(&coef)),
                ("contrib", Binding::owned(&contrib)),
            ],
        )?;
        let one = plan.denominator(1.0);
        plan.sum_to_value(&contrib, n, &one)?;

        // 3. The gradient, pixel by pixel.
        if options.grad {
            let kernel = plan.kernel_on("unified_focal.wgsl", "unified_pixels", &constants, &elements)?;
            let mut steps = Vec::new();
            for ch in layout.chunks(layout.pixels(), LOSS_TILE, limit, align, |a, b| a..b)? {
                let chunk = layout.chunk_uniform(&ch, 0);
                steps.push(Step::new(
                    &kernel,
                    (chunk.count as u64).div_ceil(LOSS_TILE) as u32,
                    vec![
                        ("up", plan.uniform("unified focal params", &params(chunk))),
                        ("io", plan.io()),
                        ("logits", Binding::range(slot::LOGITS, &ch.logits)),
                        ("targets", Binding::range(slot::TARGET, &target_range(&ch))),
                        ("coef", Binding::owned(&coef)),
                        ("grad", Binding::range(slot::GRAD, &ch.logits)),
                        // Bound, not written: the checks the stats pass makes are in the same code.
                        ("status", status.clone()),
                    ],
                )?);
            }
            plan.steps_mut().extend(steps);
        }
        Ok(plan.finish(value_shape))
    }
}

/// Pixels of one image a `unified_stats` workgroup covers (`STATS_TILE` in unified_focal.wgsl).
const STATS_TILE: u64 = WG_SIZE * 8;

/// The sums per image: TP_0, TP_1, X, Y and AFL's (`SUMS` in unified_focal.wgsl).
const SUMS: u64 = 5;

/// `struct UnifiedParams` in `unified_focal.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct UnifiedParams {
    chunk: Chunk,
    images: u32,
    tiles: u32,
    _pad0: [u32; 2],
    delta: f32,
    gamma: f32,
    eps: f32,
    afl_scale: f32,
    aftl_scale: f32,
    _pad1: [u32; 3],
}
