//! `generalized_dice` (Sudre et al. 2017, SPEC.md): dice with class weights
//! taken from the target, on the overlap kernels (`shaders/overlap.wgsl`,
//! planned in losses/overlap.rs); the float64 twin is
//! reference/generalized_dice.rs.

use bytemuck::Zeroable;
use serde::{Deserialize, Serialize};

use crate::losses::convert::InPlace;
use crate::losses::shards::Sharding;
use crate::error::Result;
use crate::gpu::chunks::PixelLayout;
use crate::gpu::context::GpuContext;
use crate::losses::checks::{F32_MAX, check_range};
use crate::losses::loss::{Checked, Loss};
use crate::losses::overlap::{Aggregate, GroupParams, OverlapMode, OverlapPlan, check_layout, check_targets, overlap_target};
use crate::losses::plan::{LossPlan, PlanOptions};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};

/// How a class's weight follows from its target sum G.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightType {
    /// 1 / G².
    #[default]
    Square,
    /// 1 / G.
    Simple,
    /// 1.
    Uniform,
}

/// Parameters of `generalized_dice`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneralizedDiceConfig {
    /// `binary`, `multilabel` or `multiclass` (default).
    pub mode: OverlapMode,
    /// The class weights' form.
    pub weight_type: WeightType,
    /// Added to the numerator (1e-5).
    pub smooth_nr: f64,
    /// Added to the denominator (1e-5).
    pub smooth_dr: f64,
    /// One score per image, or one for the batch.
    pub aggregate: Aggregate,
    /// Keep class 0.
    pub include_background: bool,
    /// `"mean"` over images, `"sum"`, or `"none"` (one per image, `[N]`; `[1]` for "batch").
    pub reduction: Reduction,
}

impl Default for GeneralizedDiceConfig {
    fn default() -> Self {
        GeneralizedDiceConfig {
            mode: OverlapMode::Multiclass,
            weight_type: WeightType::Square,
            smooth_nr: 1e-5,
            smooth_dr: 1e-5,
            aggregate: Aggregate::Image,
            include_background: true,
            reduction: Reduction::Mean,
        }
    }
}

const LOSS: &str = "generalized_dice";

impl GeneralizedDiceConfig {
    /// Scores: one per image ("image") or one ("batch").
    fn units(&self, images: usize) -> usize {
        match self.aggregate {
            Aggregate::Image => images,
            Aggregate::Batch => 1,
        }
    }

}

impl Loss for GeneralizedDiceConfig {
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
        check_range(LOSS, "smooth_dr", self.smooth_dr, 0.0, F32_MAX)
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        let layout = check_layout(LOSS, self.mode, self.include_background, shapes)?;
        let value_shape = match self.reduction {
            Reduction::None => vec![self.units(layout.images as usize)],
            _ => vec![1],
        };
        Ok(Checked { layout, value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_targets(LOSS, self.mode, None, inputs)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        let Checked { layout, value_shape } = checked;
        let (n, c) = (layout.images, layout.classes);
        let batch = self.aggregate == Aggregate::Batch;
        let units = self.units(n as usize);
        let (mean_scale, denominator) = match self.reduction {
            Reduction::Mean => (1.0 / units as f64, units as f64),
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
            entry: "generalized_groups",
            class_weights: None,
            denominator,
            pixels: 0.0,
            params: GroupParams {
                count: units as u32,
                classes: c as u32,
                stat_groups: if batch { c } else { n * c } as u32,
                first_class: !self.include_background as u32,
                kind: match self.weight_type {
                    WeightType::Square => 0,
                    WeightType::Simple => 1,
                    WeightType::Uniform => 2,
                },
                write_elements: (self.reduction == Reduction::None) as u32,
                smooth_nr: self.smooth_nr as f32,
                smooth_dr: self.smooth_dr as f32,
                mean_scale: mean_scale as f32,
                // The fields this loss does not read.
                ..Zeroable::zeroed()
            },
        }
        .plan(ctx, options)
    }
}
