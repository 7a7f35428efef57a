//! `focal`: the focal loss of Lin et al. (SPEC.md). Its sigmoid modes run on
//! `shaders/sigmoid_pointwise.wgsl` (shared with `bce`), its multiclass mode
//! on `shaders/softmax_pointwise.wgsl` (shared with `cross_entropy`): both
//! kernels carry the `(1 − p_t)^γ` factor. The float64 twin is `reference/focal.rs`.

use serde::{Deserialize, Deserializer, Serialize};

use crate::losses::convert::InPlace;
use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::PixelLayout;
use crate::gpu::context::GpuContext;
use crate::losses::bce::{SigmoidParams, check_unit_targets};
use crate::losses::checks::{check_class_weights, check_labels, check_range, class_layout, same_shape};
use crate::losses::cross_entropy::{SoftmaxParams, weights_or_ones};
use crate::losses::loss::{Checked, Loss};
use crate::losses::plan::{LossPlan, PlanOptions};
use crate::losses::pointwise::{Denominator, Kernel, Pointwise};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};

/// Which focal loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FocalMode {
    /// Sigmoid, one channel.
    #[default]
    Binary,
    /// Sigmoid, each channel its own binary problem.
    Multilabel,
    /// Softmax over the class axis, class-index targets.
    Multiclass,
}

/// Parameters of `focal`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FocalConfig {
    /// Sigmoid (`binary`, `multilabel`) or softmax (`multiclass`).
    pub mode: FocalMode,
    /// γ ≥ 0, the focusing exponent.
    pub gamma: f64,
    /// Sigmoid modes: α in [0, 1] weighs positives, 1 − α negatives.
    /// Absent means SPEC.md's default 0.25; `null` means no α.
    #[serde(deserialize_with = "explicit_option", skip_serializing_if = "Option::is_none")]
    pub alpha: Option<Option<f64>>,
    /// Multiclass: one weight per class.
    pub class_weights: Option<Vec<f64>>,
    /// `"mean"` (over elements, or pixels for multiclass), `"sum"`, `"none"`.
    pub reduction: Reduction,
}

impl Default for FocalConfig {
    fn default() -> Self {
        FocalConfig { mode: FocalMode::Binary, gamma: 2.0, alpha: None, class_weights: None, reduction: Reduction::Mean }
    }
}

/// Tells an absent key (`None`, via `default`) from an explicit `null` (`Some(None)`).
fn explicit_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

impl FocalConfig {
    /// The α of the sigmoid modes after defaults: `Some(0.25)` when absent.
    pub fn effective_alpha(&self) -> Option<f64> {
        self.alpha.unwrap_or(Some(0.25))
    }
}

impl Loss for FocalConfig {
    /// `[N, C, S]` for multiclass; element-wise `[1, 1, numel]` for the sigmoid modes.
    type Layout = PixelLayout;

    const NAME: &'static str = "focal";

    fn target_kind(&self) -> TargetKind {
        match self.mode {
            FocalMode::Multiclass => TargetKind::Classes,
            _ => TargetKind::Dense,
        }
    }

    fn sharding(&self) -> Sharding {
        Sharding::of(self.reduction)
    }

    fn in_place(&self) -> InPlace {
        // Class indices are integers; dense targets and weights are read in place.
        if self.mode == FocalMode::Multiclass { InPlace::LOGITS_AND_GRAD } else { InPlace::ALL }
    }

    fn validate(&self) -> Result<()> {
        check_range("focal", "gamma", self.gamma, 0.0, 1.0e6)?;
        match self.mode {
            FocalMode::Multiclass => {
                if matches!(self.alpha, Some(Some(_))) {
                    return Err(Error::config("focal", "alpha applies to the sigmoid modes; use class_weights with multiclass"));
                }
                check_class_weights("focal", &self.class_weights, None)
            }
            _ => {
                if self.class_weights.is_some() {
                    return Err(Error::config("focal", "class_weights applies to multiclass mode; use alpha with sigmoid modes"));
                }
                match self.effective_alpha() {
                    Some(a) => check_range("focal", "alpha", a, 0.0, 1.0),
                    None => Ok(()),
                }
            }
        }
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        if shapes.weight.is_some() {
            return Err(Error::shape("focal", "weight", shapes.weight.as_deref().unwrap_or_default(), "takes no per-element weight"));
        }
        let layout = if self.mode == FocalMode::Multiclass {
            let (n, c, s) = class_layout("focal", shapes)?;
            check_class_weights("focal", &self.class_weights, Some(c))?;
            PixelLayout::new(n, c, s)
        } else {
            same_shape("focal", "target", &shapes.target, &shapes.logits)?;
            let numel = shapes.logits.iter().product::<usize>();
            if numel == 0 {
                return Err(Error::shape("focal", "logits", &shapes.logits, format!("logits {:?} hold no element", shapes.logits)));
            }
            PixelLayout::elements(numel)
        };
        let value_shape = match self.reduction {
            Reduction::None => shapes.target.clone(),
            _ => vec![1],
        };
        Ok(Checked { layout, value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        match self.mode {
            FocalMode::Multiclass => check_labels("focal", inputs.target, inputs.logits.shape[1], None),
            _ => check_unit_targets("focal", inputs.target.as_f32("target")?),
        }
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        let layout = checked.layout;
        let gamma = self.gamma;
        if self.mode == FocalMode::Multiclass {
            let c = layout.classes as usize;
            let weights = weights_or_ones(&self.class_weights, c);
            let w = weights.clone();
            let params = move |chunk, write_elements: bool, write_grad: bool| {
                bytemuck::bytes_of(&SoftmaxParams::new(chunk, gamma, 0.0, &w, None, write_elements, write_grad)).to_vec()
            };
            return Pointwise {
                loss: "focal",
                kernel: Kernel::Softmax { class_weights: weights },
                layout,
                reduction: self.reduction,
                // The mean is over the pixels whose label counts.
                denominator: match self.reduction {
                    Reduction::Mean => Denominator::LabelSum(vec![1.0; c]),
                    _ => Denominator::Constant(1.0),
                },
                params: &params,
            }
            .plan(ctx, shapes, options);
        }
        let alpha = self.effective_alpha();
        let params = move |chunk, write_elements: bool, write_grad: bool| {
            bytemuck::bytes_of(&SigmoidParams {
                chunk,
                pos_coef: 1.0,
                neg_coef: 1.0,
                alpha: alpha.unwrap_or(0.0) as f32,
                has_alpha: alpha.is_some() as u32,
                gamma: gamma as f32,
                has_weight: 0,
                write_elements: write_elements as u32,
                write_grad: write_grad as u32,
            })
            .to_vec()
        };
        Pointwise {
            loss: "focal",
            kernel: Kernel::Sigmoid { has_weight: false },
            layout,
            reduction: self.reduction,
            denominator: Denominator::mean_over(self.reduction, layout.spatial as usize),
            params: &params,
        }
        .plan(ctx, shapes, options)
    }
}
