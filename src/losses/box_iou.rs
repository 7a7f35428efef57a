//! `box_iou`: the GIoU, DIoU and CIoU losses of predicted boxes against
//! target boxes (SPEC.md), `(x1, y1, x2, y2)` each, on the per-box kernel
//! `shaders/box_iou.wgsl` through the shared per-item plan of `pointwise.rs`;
//! the float64 twin is `reference/box_iou.rs`.
//!
//! The inputs are `pred_boxes` and `target_boxes`, both `[M, 4]` f32; an
//! engine passes them as [`crate::losses::plan::LossInputs`]' `logits` and `target`. The
//! gradient is with respect to `pred_boxes`.
//!
//! **Degenerate boxes.** A box with `x2 ≤ x1` or `y2 ≤ y1` has no area, and
//! the formulas divide by areas and heights. By default
//! (`degenerate = "error"`) such a box is an input error: the host path
//! ([`crate::runner::Runner`], the reference) names it before any work, and a plan
//! recorded on the caller's buffers sets bit 0 of its
//! [`crate::losses::plan::LossPlan::status_buffer`]. With `degenerate = "clamp"` the caller
//! opts into a finite result instead: widths and heights are `max(x2 − x1, 0)`
//! (no gradient where not positive), so an inverted box counts as empty; the
//! enclosing box's area is clamped the same way; a box's aspect angle
//! `atan(w/h)` is π/2 when `h = 0 < w` and 0 when both are 0. On valid boxes
//! both modes are torchvision's formulas. Either way a coordinate that is not
//! finite is an error (the status word's
//! [`STATUS_NON_FINITE`](crate::losses::plan::STATUS_NON_FINITE), and a NaN
//! value), and one beyond ±1e15, or a positive side shorter than 1e-30, is an
//! error (bit 1 of the status word): within those bounds, and with
//! `eps ≥ 1e-20`, every value and gradient is finite in f32.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::PixelLayout;
use crate::gpu::context::GpuContext;
use crate::gpu::layout::Chunk;
use crate::losses::loss::{Checked, Loss};
use crate::losses::plan::{LossPlan, PlanOptions};
use crate::losses::pointwise::{Denominator, Kernel, Pointwise};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};

/// Which box loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxIouKind {
    /// Generalized IoU: `1 − iou + (area(C) − union)/(area(C) + eps)`.
    #[default]
    Giou,
    /// Distance IoU: `1 − iou + ρ²/(diag(C)² + eps)`.
    Diou,
    /// Complete IoU: DIoU `+ α·v`, the aspect-ratio term, α held constant.
    Ciou,
}

/// What a box with `x2 ≤ x1` or `y2 ≤ y1` gets (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Degenerate {
    /// An input error naming the box.
    #[default]
    Error,
    /// A finite result: sides clamped at 0.
    Clamp,
}

/// Parameters of `box_iou`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BoxIouConfig {
    /// `"giou"` (default), `"diou"` or `"ciou"`.
    pub kind: BoxIouKind,
    /// Added to every denominator; at least 1e-20 (CIoU's α is 0/0 without it
    /// on identical boxes, and 1/eps times the coordinate range must fit f32).
    pub eps: f64,
    /// `"mean"` (over the M boxes), `"sum"` or `"none"` (one value per box).
    pub reduction: Reduction,
    /// Not in SPEC.md: `"error"` (default) or `"clamp"`, the opt-in finite
    /// result for degenerate boxes.
    pub degenerate: Degenerate,
}

impl Default for BoxIouConfig {
    fn default() -> Self {
        BoxIouConfig { kind: BoxIouKind::Giou, eps: 1e-7, reduction: Reduction::Mean, degenerate: Degenerate::Error }
    }
}

/// Largest coordinate magnitude accepted: with [`MIN_SIDE`] and `eps ≥ 1e-20`
/// every term of the kernel's gradient stays inside f32's range.
pub const COORD_LIMIT: f64 = 1e15;
/// Shortest positive width or height accepted (0 and negative ones are degenerate).
pub const MIN_SIDE: f64 = 1e-30;

/// `struct Params` in `box_iou.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct BoxParams {
    chunk: Chunk,
    kind: u32,
    eps: f32,
    flag_degenerate: u32,
    write_elements: u32,
    write_grad: u32,
    _pad: [u32; 3],
}

impl Loss for BoxIouConfig {
    /// `M` boxes of 4 coordinates: `[M, 4, 1]`.
    type Layout = PixelLayout;

    const NAME: &'static str = "box_iou";

    fn target_kind(&self) -> TargetKind {
        TargetKind::Boxes
    }

    fn sharding(&self) -> Sharding {
        Sharding::of(self.reduction)
    }

    fn input_names(&self) -> [&'static str; 2] {
        ["pred_boxes", "target_boxes"]
    }

    fn validate(&self) -> Result<()> {
        // Judged as the f32 the kernel uses, so "1e-20" passes however JSON rounds it.
        if !(self.eps.is_finite() && self.eps as f32 >= 1e-20) {
            return Err(Error::config("box_iou", format!("eps = {} must be a finite number ≥ 1e-20", self.eps)));
        }
        Ok(())
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        let (p, t) = (&shapes.logits, &shapes.target);
        if p.len() != 2 || p[1] != 4 {
            return Err(Error::shape("box_iou", "pred_boxes", p, format!("pred_boxes has shape {p:?}; it must be [M, 4] (x1, y1, x2, y2)")));
        }
        if t != p {
            return Err(Error::shape("box_iou", "target_boxes", t, format!("target_boxes has shape {t:?} but pred_boxes has {p:?}; they must match")));
        }
        if p[0] == 0 {
            return Err(Error::shape("box_iou", "pred_boxes", p, "pred_boxes holds no box (M = 0)"));
        }
        if shapes.weight.is_some() {
            return Err(Error::shape("box_iou", "weight", shapes.weight.as_deref().unwrap_or_default(), "takes no weight tensor"));
        }
        let value_shape = match self.reduction {
            Reduction::None => vec![p[0]],
            _ => vec![1],
        };
        Ok(Checked { layout: PixelLayout::new(p[0], 4, 1), value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        for (name, t) in [("pred_boxes", inputs.logits), ("target_boxes", inputs.target)] {
            let v = t.as_f32(name)?;
            for (i, b) in v.chunks_exact(4).enumerate() {
                if let Some(c) = b.iter().find(|c| !c.is_finite() || c.abs() as f64 > COORD_LIMIT) {
                    return Err(Error::input("box_iou", format!(
                        "{name}[{i}] = {b:?} holds {c}; coordinates must be finite and within ±1e15"
                    )));
                }
                if let Some(side) = [b[2] - b[0], b[3] - b[1]].into_iter().find(|&s| s > 0.0 && (s as f64) < MIN_SIDE) {
                    return Err(Error::input("box_iou", format!(
                        "{name}[{i}] = {b:?} has a side of {side}; positive sides must be at least 1e-30"
                    )));
                }
                if self.degenerate == Degenerate::Error && (b[2] <= b[0] || b[3] <= b[1]) {
                    let side = if b[2] <= b[0] { "x2 ≤ x1" } else { "y2 ≤ y1" };
                    return Err(Error::input("box_iou", format!(
                        "{name}[{i}] = {b:?} is degenerate ({side}); boxes need x2 > x1 and y2 > y1, \
                         or degenerate = \"clamp\" for a finite result"
                    )));
                }
            }
        }
        Ok(())
    }

    /// What the plan's status word means when non-zero.
    fn status_rule(&self) -> &'static str {
        "a degenerate box (x2 ≤ x1 or y2 ≤ y1; bit 0), or a coordinate beyond ±1e15 or a side in (0, 1e-30) (bit 1)"
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        let layout = checked.layout;
        let kind = self.kind as u32;
        let eps = self.eps as f32;
        let flag = (self.degenerate == Degenerate::Error) as u32;
        let params = move |chunk, write_elements: bool, write_grad: bool| {
            bytemuck::bytes_of(&BoxParams {
                chunk,
                kind,
                eps,
                flag_degenerate: flag,
                write_elements: write_elements as u32,
                write_grad: write_grad as u32,
                _pad: [0; 3],
            })
            .to_vec()
        };
        Pointwise {
            loss: "box_iou",
            kernel: Kernel::Boxes,
            layout,
            reduction: self.reduction,
            denominator: Denominator::mean_over(self.reduction, layout.images as usize),
            params: &params,
        }
        .plan(ctx, shapes, options)
    }
}
