//! The losses: one configuration type per loss (SPEC.md's names and
//! defaults, deserializable from a golden case's `params`), its validation,
//! and the host code that plans its kernels.

pub mod bce;
pub mod box_iou;
pub mod boundary;
pub mod compound;
pub mod cross_entropy;
pub mod focal;
pub mod lovasz;
pub mod generalized_dice;
pub mod overlap;
pub mod mask_giou;
pub mod plan;
pub(crate) mod pointwise;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, HostTensor};
use crate::reference::Reference;

pub use bce::BceConfig;
pub use box_iou::{BoxIouConfig, BoxIouKind, Degenerate};
pub use boundary::BoundaryConfig;
pub use compound::{CompoundConfig, CompoundPlan, CompoundTerm};
pub use cross_entropy::CrossEntropyConfig;
pub use focal::{FocalConfig, FocalMode};
pub use lovasz::{LovaszClasses, LovaszHingeConfig, LovaszSoftmaxConfig};
pub use generalized_dice::{GeneralizedDiceConfig, WeightType};
pub use overlap::{Aggregate, Empty, OverlapConfig, OverlapMode, Score, TverskyConfig};
pub use mask_giou::{Enclosing, MaskGiouConfig};
pub use plan::{LossInputs, LossOutputs, LossPlan, PlanOptions};

/// How per-element (or per-group) losses become the returned value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// The mean, with each loss's own denominator (SPEC.md).
    #[default]
    Mean,
    /// The sum.
    Sum,
    /// No reduction: one value per element, pixel or group.
    None,
}

/// Every loss SPEC.md defines, by its name there.
pub const SPEC_LOSSES: &[&str] = &[
    "bce",
    "cross_entropy",
    "focal",
    "dice",
    "jaccard",
    "tversky",
    "generalized_dice",
    "box_iou",
    "mask_giou",
    "boundary",
    "lovasz_softmax",
    "lovasz_hinge",
];

/// A loss and its parameters: deserializes from `{"loss": NAME, "params": {…}}`,
/// the shape of a golden case.
///
/// ```
/// let config = segloss::LossConfig::from_json(r#"{"loss": "focal", "params": {"mode": "binary", "gamma": 0.5}}"#)?;
/// assert_eq!(config.name(), "focal");
/// # Ok::<(), segloss::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "loss", content = "params", rename_all = "snake_case")]
pub enum LossConfig {
    /// Weighted binary cross-entropy.
    Bce(BceConfig),
    /// Multiclass softmax cross-entropy.
    CrossEntropy(CrossEntropyConfig),
    /// Focal loss, sigmoid or softmax.
    Focal(FocalConfig),
    /// Lovász-softmax: the Jaccard loss's Lovász extension over softmax probabilities.
    LovaszSoftmax(LovaszSoftmaxConfig),
    /// Lovász hinge: the binary Jaccard loss's Lovász extension over hinge errors.
    LovaszHinge(LovaszHingeConfig),
    /// Dice loss.
    Dice(OverlapConfig),
    /// Jaccard (soft IoU) loss.
    Jaccard(OverlapConfig),
    /// Tversky loss.
    Tversky(TverskyConfig),
    /// Generalized dice loss.
    GeneralizedDice(GeneralizedDiceConfig),
    /// GIoU / DIoU / CIoU of box pairs.
    BoxIou(BoxIouConfig),
    /// Generalized IoU of instance masks with a convex-hull or bounding-box enclosing region.
    MaskGiou(MaskGiouConfig),
    /// Boundary loss: softmax times signed distance maps of the target.
    Boundary(BoundaryConfig),
}

/// The shapes of a loss's inputs, which a plan is made for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct InputShapes {
    /// Logits (or predicted boxes).
    pub logits: Vec<usize>,
    /// Targets.
    pub target: Vec<usize>,
    /// Per-element weights, when given.
    pub weight: Option<Vec<usize>>,
}

impl InputShapes {
    /// Shapes of logits and targets, without weights.
    pub fn new(logits: &[usize], target: &[usize]) -> Self {
        InputShapes { logits: logits.to_vec(), target: target.to_vec(), weight: None }
    }
}

/// Host tensors for one evaluation (the convenience layer and the references).
#[derive(Clone, Copy, Debug)]
pub struct HostInputs<'a> {
    /// Logits, f32.
    pub logits: &'a HostTensor,
    /// Targets: f32 or i32 as the loss needs.
    pub target: &'a HostTensor,
    /// Optional per-element weights.
    pub weight: Option<&'a HostTensor>,
}

impl HostInputs<'_> {
    /// Checks that each tensor's data fills its shape.
    pub fn check(&self) -> Result<()> {
        self.logits.check("logits")?;
        self.target.check("target")?;
        self.weight.map_or(Ok(()), |w| w.check("weight"))
    }

    /// The inputs' shapes.
    pub fn shapes(&self) -> InputShapes {
        InputShapes {
            logits: self.logits.shape.clone(),
            target: self.target.shape.clone(),
            weight: self.weight.map(|w| w.shape.clone()),
        }
    }
}

impl LossConfig {
    /// Parses `{"loss": NAME, "params": {…}}`; unknown parameters are errors.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::config("loss", format!("not JSON: {e}")))?;
        let loss = v.get("loss").and_then(|l| l.as_str()).unwrap_or_default().to_string();
        Self::from_parts(&loss, v.get("params").cloned().unwrap_or(serde_json::json!({})))
    }

    /// Builds a configuration from a loss name and its `params` object.
    pub fn from_parts(loss: &str, params: serde_json::Value) -> Result<Self> {
        if !SPEC_LOSSES.contains(&loss) {
            return Err(Error::config("loss", format!("unknown loss {loss:?}; SPEC.md defines {SPEC_LOSSES:?}")));
        }
        if !Self::implemented(loss) {
            return Err(Error::config("loss", format!("{loss} is not implemented yet")));
        }
        let config: LossConfig = serde_json::from_value(serde_json::json!({ "loss": loss, "params": params }))
            .map_err(|e| Error::Config { loss: static_name(loss), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Whether this build implements the loss SPEC.md calls `loss`.
    pub fn implemented(loss: &str) -> bool {
        matches!(
            loss,
            "bce"
                | "cross_entropy"
                | "focal"
                | "dice"
                | "jaccard"
                | "tversky"
                | "generalized_dice"
                | "box_iou"
                | "mask_giou"
                | "lovasz_softmax"
                | "lovasz_hinge"
                | "boundary"
        )
    }

    /// The loss's SPEC.md name.
    pub fn name(&self) -> &'static str {
        match self {
            LossConfig::Bce(_) => "bce",
            LossConfig::CrossEntropy(_) => "cross_entropy",
            LossConfig::Focal(_) => "focal",
            LossConfig::LovaszSoftmax(_) => "lovasz_softmax",
            LossConfig::LovaszHinge(_) => "lovasz_hinge",
            LossConfig::Dice(_) => "dice",
            LossConfig::Jaccard(_) => "jaccard",
            LossConfig::Tversky(_) => "tversky",
            LossConfig::GeneralizedDice(_) => "generalized_dice",
            LossConfig::BoxIou(_) => "box_iou",
            LossConfig::MaskGiou(_) => "mask_giou",
            LossConfig::Boundary(_) => "boundary",
        }
    }

    /// What golden cases and error messages call the two inputs that fill
    /// the logits and target slots: `pred_boxes` and `target_boxes` for
    /// `box_iou`, `logits` and `target` otherwise.
    pub fn input_names(&self) -> [&'static str; 2] {
        match self {
            LossConfig::BoxIou(_) => ["pred_boxes", "target_boxes"],
            _ => ["logits", "target"],
        }
    }

    /// What a non-zero [`LossPlan::status_buffer`] word means for this loss.
    pub fn status_rule(&self) -> &'static str {
        match self {
            LossConfig::BoxIou(c) => c.status_rule(),
            _ => "a class index outside [0, C) that is not the ignore value",
        }
    }

    /// Checks the parameters on their own (ranges, exclusive options).
    pub fn validate(&self) -> Result<()> {
        match self {
            LossConfig::Bce(c) => c.validate(),
            LossConfig::CrossEntropy(c) => c.validate(),
            LossConfig::Focal(c) => c.validate(),
            LossConfig::LovaszSoftmax(c) => c.validate(),
            LossConfig::LovaszHinge(c) => c.validate(),
            LossConfig::Dice(c) => c.validate(Score::Dice),
            LossConfig::Jaccard(c) => c.validate(Score::Jaccard),
            LossConfig::Tversky(c) => c.validate(),
            LossConfig::GeneralizedDice(c) => c.validate(),
            LossConfig::BoxIou(c) => c.validate(),
            LossConfig::MaskGiou(c) => c.validate(),
            LossConfig::Boundary(c) => c.validate(),
        }
    }

    /// Checks input shapes against the parameters; returns the value's shape.
    pub fn check_shapes(&self, shapes: &InputShapes) -> Result<Vec<usize>> {
        match self {
            LossConfig::Bce(c) => c.check_shapes(shapes),
            LossConfig::CrossEntropy(c) => c.check_shapes(shapes),
            LossConfig::Focal(c) => c.check_shapes(shapes),
            LossConfig::LovaszSoftmax(c) => c.check_shapes(shapes),
            LossConfig::LovaszHinge(c) => c.check_shapes(shapes),
            LossConfig::Dice(c) => c.check_shapes(Score::Dice, shapes),
            LossConfig::Jaccard(c) => c.check_shapes(Score::Jaccard, shapes),
            LossConfig::Tversky(c) => c.overlap.check_shapes(c.score(), shapes),
            LossConfig::GeneralizedDice(c) => c.check_shapes(shapes),
            LossConfig::BoxIou(c) => c.check_shapes(shapes),
            LossConfig::MaskGiou(c) => c.check_shapes(shapes),
            LossConfig::Boundary(c) => c.check_shapes(shapes),
        }
    }

    /// Checks what only the data shows (label ranges, target ranges), on the host.
    pub fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        match self {
            LossConfig::Bce(c) => c.check_values(inputs),
            LossConfig::CrossEntropy(c) => c.check_values(inputs),
            LossConfig::Focal(c) => c.check_values(inputs),
            LossConfig::LovaszSoftmax(c) => c.check_values(inputs),
            LossConfig::LovaszHinge(c) => c.check_values(inputs),
            LossConfig::Dice(c) => c.check_values(Score::Dice, inputs),
            LossConfig::Jaccard(c) => c.check_values(Score::Jaccard, inputs),
            LossConfig::Tversky(c) => c.overlap.check_values(c.score(), inputs),
            LossConfig::GeneralizedDice(c) => c.check_values(inputs),
            LossConfig::BoxIou(c) => c.check_values(inputs),
            LossConfig::MaskGiou(c) => c.check_values(inputs),
            LossConfig::Boundary(c) => c.check_values(inputs),
        }
    }

    /// Prepares the loss for inputs of `shapes` on `ctx`.
    pub fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<LossPlan> {
        self.validate()?;
        match self {
            LossConfig::Bce(c) => c.plan(ctx, shapes, options),
            LossConfig::CrossEntropy(c) => c.plan(ctx, shapes, options),
            LossConfig::Focal(c) => c.plan(ctx, shapes, options),
            LossConfig::LovaszSoftmax(c) => c.plan(ctx, shapes, options),
            LossConfig::LovaszHinge(c) => c.plan(ctx, shapes, options),
            LossConfig::Dice(c) => c.plan(Score::Dice, ctx, shapes, options),
            LossConfig::Jaccard(c) => c.plan(Score::Jaccard, ctx, shapes, options),
            LossConfig::Tversky(c) => c.overlap.plan(c.score(), ctx, shapes, options),
            LossConfig::GeneralizedDice(c) => c.plan(ctx, shapes, options),
            LossConfig::BoxIou(c) => c.plan(ctx, shapes, options),
            LossConfig::MaskGiou(c) => c.plan(ctx, shapes, options),
            LossConfig::Boundary(c) => c.plan(ctx, shapes, options),
        }
    }

    /// The float64 CPU reference: value and gradient.
    pub fn reference(&self, inputs: &HostInputs<'_>) -> Result<Reference> {
        inputs.check()?;
        self.validate()?;
        self.check_shapes(&inputs.shapes())?;
        self.check_values(inputs)?;
        match self {
            LossConfig::Bce(c) => crate::reference::bce::evaluate(c, inputs),
            LossConfig::CrossEntropy(c) => crate::reference::cross_entropy::evaluate(c, inputs),
            LossConfig::Focal(c) => crate::reference::focal::evaluate(c, inputs),
            LossConfig::LovaszSoftmax(c) => crate::reference::lovasz::evaluate_softmax(c, inputs),
            LossConfig::LovaszHinge(c) => crate::reference::lovasz::evaluate_hinge(c, inputs),
            LossConfig::Dice(c) => crate::reference::overlap::evaluate(c, Score::Dice, inputs),
            LossConfig::Jaccard(c) => crate::reference::overlap::evaluate(c, Score::Jaccard, inputs),
            LossConfig::Tversky(c) => crate::reference::overlap::evaluate(&c.overlap, c.score(), inputs),
            LossConfig::GeneralizedDice(c) => crate::reference::generalized_dice::evaluate(c, inputs),
            LossConfig::BoxIou(c) => crate::reference::box_iou::evaluate(c, inputs),
            LossConfig::MaskGiou(c) => crate::reference::mask_giou::evaluate(c, inputs),
            LossConfig::Boundary(c) => crate::reference::boundary::evaluate(c, inputs),
        }
    }
}

fn static_name(loss: &str) -> &'static str {
    SPEC_LOSSES.iter().find(|l| **l == loss).copied().unwrap_or("loss")
}

/// Checks that `name`'s shape equals the logits' shape.
pub(crate) fn same_shape(loss: &'static str, name: &str, shape: &[usize], logits: &[usize]) -> Result<()> {
    if shape != logits {
        return Err(Error::input(format!("{loss}: {name} has shape {shape:?} but the logits have {logits:?}; they must match")));
    }
    Ok(())
}

/// Splits `[N, C, S…]` into (N, C, S); errors when the rank is under 2 or
/// the target is not `[N, S…]`.
pub(crate) fn class_layout(loss: &'static str, shapes: &InputShapes) -> Result<(usize, usize, usize)> {
    let l = &shapes.logits;
    if l.len() < 2 {
        return Err(Error::input(format!("{loss}: logits {l:?} must be [N, C, S…] with a class axis")));
    }
    let expected: Vec<usize> = std::iter::once(l[0]).chain(l[2..].iter().copied()).collect();
    if shapes.target != expected {
        return Err(Error::input(format!("{loss}: target has shape {:?}; logits {l:?} need class indices of shape {expected:?}", shapes.target)));
    }
    if l.iter().any(|&d| d == 0) {
        return Err(Error::input(format!("{loss}: logits {l:?} have an empty axis")));
    }
    if l[1] > pointwise::MAX_CLASSES {
        return Err(Error::Limit(format!("{loss}: {} classes exceed the {} a kernel supports", l[1], pointwise::MAX_CLASSES)));
    }
    Ok((l[0], l[1], l[2..].iter().product()))
}

/// Checks class weights: one finite, non-negative weight per class.
pub(crate) fn check_class_weights(loss: &'static str, weights: &Option<Vec<f64>>, classes: Option<usize>) -> Result<()> {
    let Some(w) = weights else { return Ok(()) };
    if let Some(c) = classes {
        if w.len() != c {
            return Err(Error::input(format!("{loss}: class_weights has {} entries for {c} classes", w.len())));
        }
    }
    if let Some(bad) = w.iter().find(|x| !x.is_finite() || **x < 0.0) {
        return Err(Error::config(loss, format!("class_weights must be finite and non-negative; found {bad}")));
    }
    // The kernels take the weights, and their sum, as f32.
    if let Some(bad) = w.iter().find(|x| **x > F32_MAX) {
        return Err(Error::config(loss, format!("class weight {bad} does not fit in f32")));
    }
    if w.iter().sum::<f64>() > F32_MAX {
        return Err(Error::config(loss, "class_weights sum beyond f32's range"));
    }
    Ok(())
}

/// The largest finite f32: parameters the kernels read as f32 must not exceed it.
pub(crate) const F32_MAX: f64 = f32::MAX as f64;

/// Checks an ignore value fits the i32 labels the kernels read.
pub(crate) fn check_ignore_index(loss: &'static str, ignore: Option<i64>) -> Result<()> {
    match ignore {
        Some(v) => check_range(loss, "ignore_index", v as f64, i32::MIN as f64, i32::MAX as f64),
        None => Ok(()),
    }
}

/// Checks class-index labels: each in `[0, classes)` or the ignore value.
pub(crate) fn check_labels(loss: &'static str, target: &HostTensor, classes: usize, ignore: Option<i64>) -> Result<()> {
    let labels = target.as_i32("target")?;
    if let Some((i, y)) = labels
        .iter()
        .enumerate()
        .find(|(_, y)| Some(**y as i64) != ignore && !(0..classes as i32).contains(*y))
    {
        let also = ignore.map(|v| format!(" and is not ignore_index {v}")).unwrap_or_default();
        return Err(Error::input(format!("{loss}: target[{i}] = {y} is outside [0, {classes}){also}")));
    }
    Ok(())
}

/// Checks a finite number lies in `[lo, hi]`.
pub(crate) fn check_range(loss: &'static str, name: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
    if !(v.is_finite() && v >= lo && v <= hi) {
        return Err(Error::config(loss, format!("{name} = {v} must lie in [{lo}, {hi}]")));
    }
    Ok(())
}

/// What a loss's target tensor holds, so tools can make inputs for any loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// f32 of the logits' shape, in [0, 1].
    Dense,
    /// i32 class indices `[N, S…]`.
    Classes,
    /// f32 boxes `[M, 4]`, `(x1, y1, x2, y2)` with positive sides.
    Boxes,
    /// f32 instance masks `[M, H, W]` in {0, 1}.
    Masks,
}

impl LossConfig {
    /// What the loss's target holds.
    pub fn target_kind(&self) -> TargetKind {
        match self {
            LossConfig::Bce(_) => TargetKind::Dense,
            LossConfig::CrossEntropy(_) => TargetKind::Classes,
            LossConfig::Focal(c) if c.mode == FocalMode::Multiclass => TargetKind::Classes,
            LossConfig::Focal(_) => TargetKind::Dense,
            LossConfig::Dice(c) | LossConfig::Jaccard(c) => overlap_target(c.mode),
            LossConfig::Tversky(c) => overlap_target(c.overlap.mode),
            LossConfig::GeneralizedDice(c) => overlap_target(c.mode),
            LossConfig::BoxIou(_) => TargetKind::Boxes,
            LossConfig::MaskGiou(_) => TargetKind::Masks,
            // The hinge's labels are classes 0 and 1 (logits [N, 1, S…]).
            LossConfig::LovaszSoftmax(_) | LossConfig::LovaszHinge(_) => TargetKind::Classes,
            LossConfig::Boundary(_) => TargetKind::Classes,
        }
    }

    /// Bytes the loss must move at the least: read the logits and targets
    /// (and weights), write the gradient (and per-element values).
    pub fn min_bytes(&self, shapes: &InputShapes) -> u64 {
        let count = |s: &[usize]| s.iter().product::<usize>() as u64 * 4;
        let weight = shapes.weight.as_deref().map_or(0, count);
        2 * count(&shapes.logits) + count(&shapes.target) + weight
    }
}

fn overlap_target(mode: OverlapMode) -> TargetKind {
    match mode {
        OverlapMode::Multiclass => TargetKind::Classes,
        OverlapMode::Binary | OverlapMode::Multilabel => TargetKind::Dense,
    }
}
