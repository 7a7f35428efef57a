//! `bce`: weighted binary cross-entropy with logits (SPEC.md), on the
//! element-wise sigmoid kernel `shaders/sigmoid_pointwise.wgsl`; the float64
//! twin is `reference/bce.rs`.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::losses::convert::InPlace;
use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::PixelLayout;
use crate::gpu::context::GpuContext;
use crate::gpu::layout::Chunk;
use crate::losses::checks::{F32_MAX, check_range, same_shape};
use crate::losses::loss::{Checked, Loss};
use crate::losses::plan::{LossPlan, PlanOptions};
use crate::losses::pointwise::{Denominator, Kernel, Pointwise};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};

/// Parameters of `bce`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BceConfig {
    /// `"mean"` (over all elements), `"sum"` or `"none"`.
    pub reduction: Reduction,
    /// Weight of the positive term; exclusive with `alpha`.
    pub pos_weight: Option<f64>,
    /// Class-balancing weight in [0, 1]: `alpha` on positives, `1 − alpha` on negatives.
    pub alpha: Option<f64>,
}

/// `struct Params` in `sigmoid_pointwise.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct SigmoidParams {
    pub chunk: Chunk,
    pub pos_coef: f32,
    pub neg_coef: f32,
    pub alpha: f32,
    pub has_alpha: u32,
    pub gamma: f32,
    pub has_weight: u32,
    pub write_elements: u32,
    pub write_grad: u32,
}

impl BceConfig {
    /// The coefficients (A, B) of `−(A·y·log σ(x) + B·(1−y)·log(1−σ(x)))`.
    pub fn coefficients(&self) -> (f64, f64) {
        match (self.alpha, self.pos_weight) {
            (Some(a), _) => (a, 1.0 - a),
            (None, Some(pw)) => (pw, 1.0),
            (None, None) => (1.0, 1.0),
        }
    }
}

impl Loss for BceConfig {
    /// Element-wise: `[1, 1, numel]`.
    type Layout = PixelLayout;

    const NAME: &'static str = "bce";

    fn status_rule(&self) -> &'static str {
        "no rule of its own (only bit 31, STATUS_NON_FINITE)"
    }

    fn target_kind(&self) -> TargetKind {
        TargetKind::Dense
    }

    fn sharding(&self) -> Sharding {
        Sharding::of(self.reduction)
    }

    fn in_place(&self) -> InPlace {
        InPlace::ALL
    }

    fn validate(&self) -> Result<()> {
        if self.alpha.is_some() && self.pos_weight.is_some() {
            return Err(Error::config("bce", "alpha and pos_weight are mutually exclusive; give one of them"));
        }
        if let Some(a) = self.alpha {
            check_range("bce", "alpha", a, 0.0, 1.0)?;
        }
        if let Some(pw) = self.pos_weight {
            check_range("bce", "pos_weight", pw, 0.0, F32_MAX)?;
        }
        Ok(())
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        same_shape("bce", "target", &shapes.target, &shapes.logits)?;
        if let Some(w) = &shapes.weight {
            same_shape("bce", "weight", w, &shapes.logits)?;
        }
        let numel = shapes.logits.iter().product::<usize>();
        if numel == 0 {
            return Err(Error::shape("bce", "logits", &shapes.logits, format!("logits {:?} hold no element", shapes.logits)));
        }
        let value_shape = match self.reduction {
            Reduction::None => shapes.logits.clone(),
            _ => vec![1],
        };
        Ok(Checked { layout: PixelLayout::elements(numel), value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_unit_targets("bce", inputs.target.as_f32("target")?)?;
        if let Some(w) = inputs.weight {
            if let Some((i, v)) = w.as_f32("weight")?.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(Error::input("bce", format!("weight[{i}] = {v} is not finite")));
            }
        }
        Ok(())
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        let layout = checked.layout;
        let (a, b) = self.coefficients();
        let has_weight = shapes.weight.is_some();
        let params = move |chunk, write_elements: bool, write_grad: bool| {
            bytemuck::bytes_of(&SigmoidParams {
                chunk,
                pos_coef: a as f32,
                neg_coef: b as f32,
                alpha: 0.0,
                has_alpha: 0,
                gamma: 0.0,
                has_weight: has_weight as u32,
                write_elements: write_elements as u32,
                write_grad: write_grad as u32,
            })
            .to_vec()
        };
        Pointwise {
            loss: "bce",
            kernel: Kernel::Sigmoid { has_weight },
            layout,
            reduction: self.reduction,
            denominator: Denominator::mean_over(self.reduction, layout.spatial as usize),
            params: &params,
        }
        .plan(ctx, shapes, options)
    }
}

/// Checks dense targets lie in [0, 1] (soft targets allowed).
pub(crate) fn check_unit_targets(loss: &'static str, target: &[f32]) -> Result<()> {
    if let Some((i, y)) = target.iter().enumerate().find(|(_, y)| !(0.0..=1.0).contains(*y)) {
        return Err(Error::input(loss, format!("target[{i}] = {y} is outside [0, 1]")));
    }
    Ok(())
}
