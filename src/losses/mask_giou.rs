//! `mask_giou`: generalized IoU of instance masks with a convex-hull (or
//! bounding-box) enclosing region, the seed article's definition (SPEC.md),
//! on the kernels of `shaders/mask_giou.wgsl` (whose header describes the
//! passes and the hull); the float64 twin is `reference/mask_giou.rs`.
//!
//! Inputs: `logits` `[M, H, W]` (one map per instance) and `target`
//! `[M, H, W]` in {0, 1}. The value is per instance (`[M]` for reduction
//! "none", else their mean or sum). Besides value and gradient the plan
//! computes `#C`, the pixels of each instance's enclosing region, into an i32
//! `[M]` tensor: [`LossPlan::extra`]`("enclosing_count")`; [`crate::runner::Runner`]
//! reads it back into [`crate::runner::LossResult::extras`].
//!
//! Decisions where SPEC.md is silent:
//! - `σ(x) ≥ τ` is decided exactly, as `x ≥ logit(τ)`: the kernels compare
//!   the f32 logit with the smallest f32 at or above logit(τ)
//!   ([`support_logit`]), so the GPU and the reference never disagree about
//!   a pixel, however close to the threshold (rounding σ(x) would).
//!   τ = 0 puts every pixel in the support, τ = 1 none of the predicted ones.
//! - A target pixel is in the support when it equals 1.
//! - The default `enclosing` is `"convex_hull"`, the seed's definition.
//! - Limits of the GPU path (errors, not silent results): for `convex_hull`,
//!   H ≤ 8,192 rows (the hull's loops stay under lavapipe's 65,535 iterations
//!   per invocation) and W ≤ 65,536 (so cross products, at most
//!   2·8,191·65,535, are exact in i32); for both, 8·M·H bytes of per-row data within one
//!   storage binding and fewer than 2^31 pixels in all.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::{ElementRange, plan_chunks, tile_span};
use crate::gpu::layout::{LOSS_TILE, WG_SIZE};
use crate::gpu::context::GpuContext;
use crate::gpu::program::{Binding, Step};
use crate::gpu::tensor::{DType, GpuTensor};
use crate::losses::builder::PlanBuilder;
use crate::losses::checks::{check_range, same_shape};
use crate::losses::loss::{Checked, Loss};
use crate::losses::plan::{LossPlan, PlanOptions, slot};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};

/// Which region encloses an instance's support.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enclosing {
    /// The pixels in the closed convex hull of the support.
    #[default]
    ConvexHull,
    /// The pixels in the support's row range × column range.
    BoundingBox,
}

/// Parameters of `mask_giou`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaskGiouConfig {
    /// τ in [0, 1]: predicted pixels with σ(x) ≥ τ join the support.
    pub threshold: f64,
    /// `"convex_hull"` (default) or `"bounding_box"`.
    pub enclosing: Enclosing,
    /// Added to both denominators; at least 1e-30.
    pub eps: f64,
    /// `"mean"` (over the M instances), `"sum"` or `"none"` (one per instance).
    pub reduction: Reduction,
}

impl Default for MaskGiouConfig {
    fn default() -> Self {
        MaskGiouConfig { threshold: 0.5, enclosing: Enclosing::ConvexHull, eps: 1e-7, reduction: Reduction::Mean }
    }
}

/// Most rows a mask may have with either enclosing region: 64 threads each
/// walk H/64 rows twice, 32,768 iterations at this size.
pub const MAX_ROWS: usize = 1 << 20;

/// Most rows a `convex_hull` plan takes (see the module docs).
pub const MAX_HULL_ROWS: usize = 8192;
/// Most columns a `convex_hull` plan takes: a chain point packs its column in
/// 16 bits, and with [`MAX_HULL_ROWS`] every cross product fits in i32.
pub const MAX_HULL_COLUMNS: usize = 65_536;

/// The smallest f32 at or above logit(τ): for an f32 logit x,
/// `x ≥ support_logit(τ)` exactly when σ(x) ≥ τ.
pub fn support_logit(threshold: f64) -> f32 {
    let l = (threshold / (1.0 - threshold)).ln();
    let f = l as f32;
    if (f as f64) < l { f.next_up() } else { f }
}

/// `struct Params` in `mask_giou.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, Pod, Zeroable)]
struct Params {
    instances: u32,
    height: u32,
    width: u32,
    pixels: u32,
    tiles: u32,
    tile0: u32,
    count: u32,
    first_elem: u32,
    support_logit: f32,
    eps: f32,
    hull: u32,
    write_elements: u32,
    inv_denom: f32,
    _pad: [u32; 3],
}

impl MaskGiouConfig {
    /// The GPU path's size limits.
    fn check_limits(&self, ctx: &GpuContext, m: usize, h: usize, w: usize) -> Result<()> {
        let pixels = m as u64 * h as u64 * w as u64;
        if pixels >= 1 << 31 {
            return Err(Error::limit("mask_giou", format!("{pixels} pixels exceed the 2^31 the kernels index")));
        }
        let row_bytes = 8 * m as u64 * h as u64;
        if row_bytes > ctx.binding_limit() {
            return Err(Error::limit("mask_giou", format!(
                "{m} instances × {h} rows need {row_bytes} bytes of per-row data in one binding; the device binds {}",
                ctx.binding_limit()
            )));
        }
        // The largest per-instance buffer (the gradient coefficients) is bound whole.
        let per_instance = 16 * m as u64;
        if per_instance > ctx.binding_limit() {
            return Err(Error::limit("mask_giou", format!(
                "{m} instances need {per_instance} bytes of coefficients in one binding; the device binds {}",
                ctx.binding_limit()
            )));
        }
        // Each of the enclosing pass's 64 threads walks H/64 rows twice.
        if h > MAX_ROWS {
            return Err(Error::limit("mask_giou", format!(
                "masks of at most {MAX_ROWS} rows (the enclosing pass's loops must stay under 65,535 \
                 iterations per GPU invocation); these have {h}. Transpose the masks"
            )));
        }
        if self.enclosing == Enclosing::ConvexHull {
            if h > MAX_HULL_ROWS {
                return Err(Error::limit("mask_giou", format!(
                    "convex_hull takes masks of at most {MAX_HULL_ROWS} rows (its hull loops must stay under \
                     65,535 iterations per GPU invocation); these have {h}. Transpose the masks or use bounding_box"
                )));
            }
            if w > MAX_HULL_COLUMNS {
                return Err(Error::limit("mask_giou", format!(
                    "convex_hull takes masks of at most {MAX_HULL_COLUMNS} columns (a hull point packs its \
                     column in 16 bits); these have {w}. Transpose the masks or use bounding_box"
                )));
            }
        }
        Ok(())
    }
}

impl Loss for MaskGiouConfig {
    /// `[M, H, W]`: instances, rows, columns.
    type Layout = [usize; 3];

    const NAME: &'static str = "mask_giou";

    fn status_rule(&self) -> &'static str {
        "no rule of its own (only bit 31, STATUS_NON_FINITE)"
    }

    fn target_kind(&self) -> TargetKind {
        TargetKind::Masks
    }

    fn sharding(&self) -> Sharding {
        Sharding::of(self.reduction)
    }

    fn validate(&self) -> Result<()> {
        check_range("mask_giou", "threshold", self.threshold, 0.0, 1.0)?;
        // Judged as the f32 the kernels use, so "1e-30" passes however JSON rounds it.
        if !(self.eps.is_finite() && self.eps as f32 >= 1e-30) {
            return Err(Error::config("mask_giou", format!("eps = {} must be a finite number ≥ 1e-30", self.eps)));
        }
        Ok(())
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<[usize; 3]>> {
        let l = &shapes.logits;
        if l.len() != 3 {
            return Err(Error::shape("mask_giou", "logits", l, format!("logits have shape {l:?}; they must be [M, H, W], one map per instance")));
        }
        same_shape("mask_giou", "target", &shapes.target, l)?;
        if l.contains(&0) {
            return Err(Error::shape("mask_giou", "logits", l, format!("logits {l:?} have an empty axis")));
        }
        if shapes.weight.is_some() {
            return Err(Error::shape("mask_giou", "weight", shapes.weight.as_deref().unwrap_or_default(), "takes no weight tensor"));
        }
        let value_shape = match self.reduction {
            Reduction::None => vec![l[0]],
            _ => vec![1],
        };
        Ok(Checked { layout: [l[0], l[1], l[2]], value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        let target = inputs.target.as_f32("target")?;
        if let Some((i, y)) = target.iter().enumerate().find(|(_, y)| **y != 0.0 && **y != 1.0) {
            return Err(Error::input("mask_giou", format!("target[{i}] = {y} is not 0 or 1; instance masks are binary")));
        }
        Ok(())
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<[usize; 3]>, options: PlanOptions) -> Result<LossPlan> {
        let Checked { layout: [m, h, w], value_shape } = checked;
        self.check_limits(ctx, m, h, w)?;
        let (m64, h64, hw) = (m as u64, h as u64, (h * w) as u64);
        let tiles = hw.div_ceil(LOSS_TILE);
        let total_tiles = m64 * tiles;
        let align = ctx.inner.offset_alignment;
        // Tile g covers pixels [t·TILE, min((t + 1)·TILE, H·W)) of instance g / tiles.
        let span = move |a: u64, b: u64| {
            let r = tile_span(a, b, tiles, hw, LOSS_TILE);
            ElementRange::new(r.start, r.end, align)
        };
        let chunks = plan_chunks(total_tiles, 1, ctx.binding_limit(), |a, b| span(a, b).bytes())?;
        if 3 * total_tiles * 4 > ctx.binding_limit() {
            return Err(Error::limit("mask_giou", format!("{total_tiles} tiles' partial sums exceed one binding")));
        }

        let write_elements = self.reduction == Reduction::None;
        let uniform = wgpu::BufferUsages::UNIFORM;
        let base = Params {
            instances: m as u32,
            height: h as u32,
            width: w as u32,
            pixels: hw as u32,
            tiles: tiles as u32,
            support_logit: support_logit(self.threshold),
            eps: self.eps as f32,
            hull: (self.enclosing == Enclosing::ConvexHull) as u32,
            write_elements: write_elements as u32,
            inv_denom: if self.reduction == Reduction::Mean { 1.0 / m as f32 } else { 1.0 },
            ..Params::default()
        };
        let params_buffer = |p: &Params| Binding::Owned(ctx.create_buffer_with("mask_giou params", bytemuck::bytes_of(p), uniform));
        let global_params = params_buffer(&base);
        let mut plan = PlanBuilder::new("mask_giou", ctx, options, shapes, DType::F32);
        let extents = plan.scratch("mask_giou extents", 8 * m64 * h64)?;
        let rows = plan.scratch("mask_giou rows", 8 * m64 * h64)?;
        let partials = plan.scratch("mask_giou partials", 12 * total_tiles)?;
        let sums = plan.scratch("mask_giou sums", 12 * m64)?;
        let coef = plan.scratch("mask_giou coefficients", 16 * m64)?;
        let losses = plan.scratch("mask_giou losses", 4 * m64)?;
        let counts = GpuTensor::zeros(ctx, &[m], DType::I32)?;
        let io = plan.io();
        // Non-finite logits and targets, flagged by extents_pass.
        let status = plan.status();

        let kernel = |entry| ctx.kernel("mask_giou.wgsl", entry, &[]);
        let own = Binding::owned;
        let chunk_params: Vec<Binding> = chunks
            .iter()
            .map(|c| {
                params_buffer(&Params {
                    tile0: c.start as u32,
                    count: (c.end - c.start) as u32,
                    first_elem: span(c.start, c.end).first as u32,
                    ..base
                })
            })
            .collect();
        // One dispatch per chunk of tiles, logit-shaped slots bound at the chunk's range.
        let per_chunk = |entry, extra: &dyn Fn(&ElementRange) -> Vec<(&'static str, Binding)>| -> Result<Vec<Step>> {
            let k = kernel(entry)?;
            chunks
                .iter()
                .zip(&chunk_params)
                .map(|(c, p)| {
                    let range = span(c.start, c.end);
                    let mut bindings = vec![
                        ("params", p.clone()),
                        ("logits", Binding::range(slot::LOGITS, &range)),
                        ("targets", Binding::range(slot::TARGET, &range)),
                    ];
                    bindings.extend(extra(&range));
                    Step::new(&k, (c.end - c.start) as u32, bindings)
                })
                .collect()
        };

        plan.dispatch(
            &kernel("clear_extents")?,
            (2 * m64 * h64).div_ceil(WG_SIZE) as u32,
            vec![("params", global_params.clone()), ("extents", own(&extents))],
        )?;
        plan.steps_mut().extend(per_chunk("extents_pass", &|_| vec![("extents", own(&extents)), ("status", status.clone())])?);
        plan.dispatch(
            &kernel("enclose")?,
            m as u32,
            vec![("params", global_params.clone()), ("extents", own(&extents)), ("rows", own(&rows)), ("counts", own(counts.buffer()))],
        )?;
        plan.steps_mut().extend(per_chunk("sums_pass", &|_| vec![("rows", own(&rows)), ("partials", own(&partials))])?);
        plan.segmented_sum(own(&partials), 3 * m64, tiles, own(&sums))?;
        let value = if write_elements { Binding::slot(slot::VALUE) } else { plan.unused_output("unused value") };
        plan.dispatch(
            &kernel("instance")?,
            m64.div_ceil(64) as u32,
            vec![
                ("params", global_params),
                ("io", io.clone()),
                ("counts", own(counts.buffer())),
                ("sums", own(&sums)),
                ("coef", own(&coef)),
                ("value", value),
                ("losses", own(&losses)),
                ("status", status.clone()),
            ],
        )?;
        if !write_elements {
            let denominator = plan.denominator(if self.reduction == Reduction::Mean { m as f32 } else { 1.0 });
            plan.sum_to_value(&losses, m64, &denominator)?;
        }
        if options.grad {
            plan.steps_mut().extend(per_chunk("gradient", &|range| {
                vec![("io", io.clone()), ("rows", own(&rows)), ("coef", own(&coef)), ("grad", Binding::range(slot::GRAD, range))]
            })?);
        }
        plan.extra("enclosing_count", counts);
        Ok(plan.finish(value_shape))
    }
}
