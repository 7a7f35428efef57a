//! `mcc` (Abhishek & Hamarneh 2021, SPEC.md): one minus the Matthews
//! correlation coefficient of each group's soft confusion counts.
//!
//! A confusion-count loss: TP, FP, FN and TN all follow from the overlap
//! family's statistics I = Σ p·g, P = Σ p, G = Σ g and the group's pixel
//! count M (FP = P − I, FN = G − I, TN = M − P − G + I), so it runs on the
//! overlap kernels (`shaders/overlap.wgsl`: `pixel_stats`, the segmented
//! sum, its own group stage `mcc_groups`, `pixel_grad`), planned by
//! `OverlapPlan`; its gradient is `∂l/∂p = a·g + b` per pixel, the form
//! `pixel_grad` takes. The float64 twin is reference/mcc.rs.

use bytemuck::Zeroable;
use serde::{Deserialize, Serialize};

use crate::losses::convert::InPlace;
use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::PixelLayout;
use crate::gpu::context::GpuContext;
use crate::losses::checks::{F32_MAX, check_range};
use crate::losses::loss::{Checked, Loss};
use crate::losses::overlap::{Aggregate, GroupParams, OverlapMode, OverlapPlan, check_layout, check_targets, overlap_target};
use crate::losses::plan::{LossPlan, PlanOptions};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};

/// Parameters of `mcc` (SPEC.md's names and defaults: MONAI's `MCCLoss`;
/// smp's form is `mode: "binary"`, `aggregate: "batch"`, its `eps`, and
/// `smooth_nr = smooth_dr = 0`).
///
/// ```
/// let config = segloss::LossConfig::from_json(r#"{"loss": "mcc", "params": {"mode": "binary", "aggregate": "batch"}}"#)?;
/// assert_eq!(config.name(), "mcc");
/// # Ok::<(), segloss::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MccConfig {
    /// `binary`, `multilabel` or `multiclass` (default).
    pub mode: OverlapMode,
    /// Added to the numerator TP·TN − FP·FN (0).
    pub smooth_nr: f64,
    /// Added under the denominator's square root (1e-5).
    pub smooth_dr: f64,
    /// Added to each of TP, TN, FP and FN (0; smp's `eps`).
    pub eps: f64,
    /// Groups per (image, class) or per class over the batch.
    pub aggregate: Aggregate,
    /// Keep class 0 (dropped after the softmax otherwise).
    pub include_background: bool,
    /// `"mean"` over the groups, `"sum"`, or `"none"` (`[N, C']`, or `[C']` for "batch").
    pub reduction: Reduction,
}

impl Default for MccConfig {
    fn default() -> Self {
        MccConfig {
            mode: OverlapMode::Multiclass,
            smooth_nr: 0.0,
            smooth_dr: 1e-5,
            eps: 0.0,
            aggregate: Aggregate::Image,
            include_background: true,
            reduction: Reduction::Mean,
        }
    }
}

const LOSS: &str = "mcc";

/// The smallest positive `smooth_dr` and `eps`: with them every count's
/// product under the square root stays a normal f32 (eps⁴ ≥ 1e-36), so the
/// kernel's value and gradient stay finite.
pub const MIN_SMOOTHING: f64 = 1e-9;

impl Loss for MccConfig {
    type Layout = PixelLayout;

    const NAME: &'static str = LOSS;

    fn target_kind(&self) -> TargetKind {
        overlap_target(self.mode)
    }

    fn sharding(&self) -> Sharding {
        self.aggregate.sharding(self.reduction)
    }

    fn in_place(&self) -> InPlace {
        // overlap.wgsl's pixel passes, as for dice.
        InPlace::LOGITS_AND_GRAD
    }

    fn validate(&self) -> Result<()> {
        check_range(LOSS, "smooth_nr", self.smooth_nr, 0.0, F32_MAX)?;
        check_range(LOSS, "smooth_dr", self.smooth_dr, 0.0, F32_MAX)?;
        check_range(LOSS, "eps", self.eps, 0.0, F32_MAX)?;
        if self.smooth_dr + self.eps == 0.0 {
            return Err(Error::config(LOSS, "smooth_dr + eps must be positive: with both 0 an empty group divides by 0"));
        }
        for (name, v) in [("smooth_dr", self.smooth_dr), ("eps", self.eps)] {
            if v > 0.0 && v < MIN_SMOOTHING {
                return Err(Error::config(LOSS, format!(
                    "{name} = {v} is below {MIN_SMOOTHING:e}, where the f32 denominator underflows: use 0 or at least {MIN_SMOOTHING:e}"
                )));
            }
        }
        Ok(())
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        let layout = check_layout(LOSS, self.mode, self.include_background, shapes)?;
        let kept = layout.classes as usize - !self.include_background as usize;
        let value_shape = self.aggregate.value_shape(self.reduction, layout.images as usize, kept);
        Ok(Checked { layout, value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_targets(LOSS, self.mode, None, inputs)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        let Checked { layout, value_shape } = checked;
        let (n, c, s) = (layout.images, layout.classes, layout.spatial);
        let batch = self.aggregate == Aggregate::Batch;
        let first = !self.include_background as u64;
        let groups = if batch { c } else { n * c };
        let counted = if batch { 1 } else { n } * (c - first);
        let (mean_scale, denominator) = match self.reduction {
            Reduction::Mean => (1.0 / counted as f64, counted as f64),
            _ => (1.0, 1.0),
        };
        OverlapPlan {
            loss: LOSS,
            shapes,
            layout,
            mode: self.mode,
            squared: false,
            batch,
            ignore: None,
            reduction: self.reduction,
            value_shape,
            entry: "mcc_groups",
            class_weights: None,
            denominator,
            pixels: (if batch { n * s } else { s }) as f64,
            params: GroupParams {
                count: groups as u32,
                classes: c as u32,
                stat_groups: groups as u32,
                first_class: first as u32,
                write_elements: (self.reduction == Reduction::None) as u32,
                smooth_nr: self.smooth_nr as f32,
                smooth_dr: self.smooth_dr as f32,
                eps: self.eps as f32,
                mean_scale: mean_scale as f32,
                // The fields this loss does not read.
                ..Zeroable::zeroed()
            },
        }
        .plan(ctx, options)
    }
}
