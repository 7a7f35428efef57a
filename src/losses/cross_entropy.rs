//! `cross_entropy`: multiclass softmax cross-entropy with class weights,
//! an ignore value and label smoothing (SPEC.md), on the per-pixel softmax
//! kernel `shaders/softmax_pointwise.wgsl`; the float64 twin is
//! `reference/cross_entropy.rs`.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::losses::convert::InPlace;
use crate::losses::shards::Sharding;
use crate::error::Result;
use crate::gpu::chunks::PixelLayout;
use crate::gpu::context::GpuContext;
use crate::gpu::layout::Chunk;
use crate::losses::checks::{check_class_weights, check_ignore_index, check_labels, check_range, class_layout};
use crate::losses::loss::{Checked, Loss};
use crate::losses::plan::{LossPlan, PlanOptions};
use crate::losses::pointwise::{Denominator, Kernel, Pointwise};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};

/// Parameters of `cross_entropy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrossEntropyConfig {
    /// `"mean"` (over Σ v·w\[y\], PyTorch's convention), `"sum"` or `"none"` (per pixel).
    pub reduction: Reduction,
    /// One weight per class.
    pub class_weights: Option<Vec<f64>>,
    /// Pixels with this label count for nothing.
    pub ignore_index: Option<i64>,
    /// ε in [0, 1]: the share of the target spread uniformly over the classes.
    pub label_smoothing: f64,
}

/// `struct Params` in `softmax_pointwise.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct SoftmaxParams {
    pub chunk: Chunk,
    pub gamma: f32,
    pub smoothing: f32,
    pub weight_total: f32,
    pub ignore_index: i32,
    pub has_ignore: u32,
    pub write_elements: u32,
    pub write_grad: u32,
    pub _pad: u32,
}

impl SoftmaxParams {
    /// The kernel's parameters for one chunk.
    pub(crate) fn new(chunk: Chunk, gamma: f64, smoothing: f64, weights: &[f32], ignore: Option<i64>, write_elements: bool, write_grad: bool) -> Self {
        SoftmaxParams {
            chunk,
            gamma: gamma as f32,
            smoothing: smoothing as f32,
            weight_total: weights.iter().sum(),
            ignore_index: ignore.map(|v| v as i32).unwrap_or(0),
            has_ignore: ignore.is_some() as u32,
            write_elements: write_elements as u32,
            write_grad: write_grad as u32,
            _pad: 0,
        }
    }
}

/// The class weights as the kernel reads them: ones when none are given.
pub(crate) fn weights_or_ones(weights: &Option<Vec<f64>>, classes: usize) -> Vec<f32> {
    match weights {
        Some(w) => w.iter().map(|&x| x as f32).collect(),
        None => vec![1.0; classes],
    }
}

impl Loss for CrossEntropyConfig {
    type Layout = PixelLayout;

    const NAME: &'static str = "cross_entropy";

    fn target_kind(&self) -> TargetKind {
        TargetKind::Classes
    }

    fn sharding(&self) -> Sharding {
        // A mean divides by Σ w[y], which the plan counts from the data.
        Sharding::of(self.reduction)
    }

    fn in_place(&self) -> InPlace {
        InPlace::LOGITS_AND_GRAD
    }

    fn validate(&self) -> Result<()> {
        check_range("cross_entropy", "label_smoothing", self.label_smoothing, 0.0, 1.0)?;
        check_ignore_index("cross_entropy", self.ignore_index)?;
        check_class_weights("cross_entropy", &self.class_weights, None)
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        let (n, c, s) = class_layout("cross_entropy", shapes)?;
        check_class_weights("cross_entropy", &self.class_weights, Some(c))?;
        let value_shape = match self.reduction {
            Reduction::None => shapes.target.clone(),
            _ => vec![1],
        };
        Ok(Checked { layout: PixelLayout::new(n, c, s), value_shape })
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_labels("cross_entropy", inputs.target, inputs.logits.shape[1], self.ignore_index)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        let layout = checked.layout;
        let c = layout.classes as usize;
        let weights = weights_or_ones(&self.class_weights, c);
        // The mean is over Σ w[y] of the pixels whose label counts (PyTorch's
        // convention), so it depends on the labels: counted on the GPU.
        let denominator = match self.reduction {
            Reduction::Mean => Denominator::LabelSum(weights.clone()),
            _ => Denominator::Constant(1.0),
        };
        let (smoothing, ignore, w) = (self.label_smoothing, self.ignore_index, weights.clone());
        let params = move |chunk, write_elements: bool, write_grad: bool| {
            bytemuck::bytes_of(&SoftmaxParams::new(chunk, 0.0, smoothing, &w, ignore, write_elements, write_grad)).to_vec()
        };
        Pointwise {
            loss: "cross_entropy",
            kernel: Kernel::Softmax { class_weights: weights },
            layout,
            reduction: self.reduction,
            denominator,
            params: &params,
        }
        .plan(ctx, shapes, options)
    }
}
