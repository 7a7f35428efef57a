//! The losses: one configuration type per loss (SPEC.md's names and
//! defaults, deserializable from a golden case's `params`), its validation,
//! and the host code that plans its kernels.
//!
//! Every loss has the same shape: its configuration implements
//! `loss::Loss` (name, validation, a shape check that returns a typed
//! layout, the plan, the target kind) in `losses/<name>.rs`, and
//! [`LossConfig`] dispatches to it in one place, `LossConfig::loss`. Its
//! float64 twin is `reference/<name>.rs`; its kernels are `shaders/<name>.wgsl`.

pub mod bce;
pub mod boundary;
pub mod box_iou;
pub mod cl_dice;
pub(crate) mod builder;
pub(crate) mod checks;
pub(crate) mod convert;
pub mod compound;
pub mod cross_entropy;
pub mod focal;
pub mod generalized_dice;
pub mod hausdorff_dt;
pub mod hausdorff_er;
pub(crate) mod loss;
pub mod lovasz;
pub mod mask_giou;
pub mod mcc;
pub mod unified_focal;
pub mod overlap;
pub mod plan;
pub mod shards;
pub(crate) mod params;
pub(crate) mod pointwise;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::{DType, HostTensor};
use crate::losses::loss::AnyLoss;

pub use bce::BceConfig;
pub use boundary::BoundaryConfig;
pub use box_iou::{BoxIouConfig, BoxIouKind, Degenerate};
pub use compound::{CompoundConfig, CompoundPlan, CompoundTerm};
pub use cross_entropy::CrossEntropyConfig;
pub use focal::{FocalConfig, FocalMode};
pub use generalized_dice::{GeneralizedDiceConfig, WeightType};
pub use cl_dice::ClDiceConfig;
pub use hausdorff_dt::HausdorffDtConfig;
pub use hausdorff_er::HausdorffErConfig;
pub use lovasz::{LovaszClasses, LovaszHingeConfig, LovaszSoftmaxConfig};
pub use mask_giou::{Enclosing, MaskGiouConfig};
pub use mcc::MccConfig;
pub use unified_focal::UnifiedFocalConfig;
pub use overlap::{Aggregate, DiceConfig, Empty, JaccardConfig, OverlapConfig, OverlapMode, Score, TverskyConfig};
pub use plan::{LossInputs, LossOutputs, LossPlan, PlanOptions, STATUS_NON_FINITE};
pub use shards::ShardedPlan;

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

/// Every loss SPEC.md defines, by its name there, built or not
/// ([`LossConfig::implemented`] says which this build has).
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
    "hausdorff_dt",
    "cl_dice",
    "mcc",
    "hausdorff_er",
    "unified_focal",
];

/// The registry: the configuration enum, the names of the losses built,
/// and the one dispatch, all from one line per loss.
macro_rules! registry {
    ($($(#[$doc:meta])* $variant:ident($config:ty) = $name:literal,)*) => {
        /// A loss and its parameters: deserializes from `{"loss": NAME, "params": {…}}`,
        /// the shape of a golden case.
        ///
        /// ```
        /// let config = segloss::LossConfig::from_json(r#"{"loss": "focal", "params": {"mode": "binary", "gamma": 0.5}}"#)?;
        /// assert_eq!(config.name(), "focal");
        /// # Ok::<(), segloss::Error>(())
        /// ```
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "loss", content = "params")]
        pub enum LossConfig {
            $($(#[$doc])* #[serde(rename = $name)] $variant($config),)*
        }

        /// The losses this build implements, by SPEC.md name.
        pub const LOSSES: &[&str] = &[$($name),*];

        impl LossConfig {
            /// The loss behind the configuration: the one dispatch over the registry.
            pub(crate) fn loss(&self) -> &dyn AnyLoss {
                match self {
                    $(LossConfig::$variant(c) => c,)*
                }
            }

            /// `params` read as the configuration of loss `name` (one this
            /// build implements), errors naming the parameter.
            fn parse_params(name: &str, params: &serde_json::Value) -> Option<std::result::Result<Self, String>> {
                match name {
                    $($name => Some(params::from_params::<$config>(params).map(LossConfig::$variant)),)*
                    _ => None,
                }
            }
        }
    };
}

registry! {
    /// Weighted binary cross-entropy.
    Bce(BceConfig) = "bce",
    /// Multiclass softmax cross-entropy.
    CrossEntropy(CrossEntropyConfig) = "cross_entropy",
    /// Focal loss, sigmoid or softmax.
    Focal(FocalConfig) = "focal",
    /// Dice loss.
    Dice(DiceConfig) = "dice",
    /// Jaccard (soft IoU) loss.
    Jaccard(JaccardConfig) = "jaccard",
    /// Tversky loss.
    Tversky(TverskyConfig) = "tversky",
    /// Generalized dice loss.
    GeneralizedDice(GeneralizedDiceConfig) = "generalized_dice",
    /// GIoU / DIoU / CIoU of box pairs.
    BoxIou(BoxIouConfig) = "box_iou",
    /// Generalized IoU of instance masks with a convex-hull or bounding-box enclosing region.
    MaskGiou(MaskGiouConfig) = "mask_giou",
    /// Boundary loss: softmax times signed distance maps of the target.
    Boundary(BoundaryConfig) = "boundary",
    /// Lovász-softmax: the Jaccard loss's Lovász extension over softmax probabilities.
    LovaszSoftmax(LovaszSoftmaxConfig) = "lovasz_softmax",
    /// Lovász hinge: the binary Jaccard loss's Lovász extension over hinge errors.
    LovaszHinge(LovaszHingeConfig) = "lovasz_hinge",
    /// Hausdorff distance-transform loss: squared errors weighted by the prediction's and the target's distance fields.
    HausdorffDt(HausdorffDtConfig) = "hausdorff_dt",
    /// Centreline Dice: the soft skeletons of prediction and target, alone or beside Dice.
    ClDice(ClDiceConfig) = "cl_dice",
    /// Matthews correlation coefficient loss: one minus the MCC of each group's soft confusion counts.
    Mcc(MccConfig) = "mcc",
    /// Erosion-based Hausdorff loss: k cross-average erosions of the squared error, normalised per map and weighted by (i+1)^α.
    HausdorffEr(HausdorffErConfig) = "hausdorff_er",
    /// Asymmetric unified focal loss: λ·(asymmetric focal) + (1−λ)·(asymmetric focal Tversky), two classes.
    UnifiedFocal(UnifiedFocalConfig) = "unified_focal",
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
    /// The element types the plan will be recorded with; the default is the
    /// types the kernels read (f32, and i32 class indices).
    pub dtypes: InputDTypes,
}

impl InputShapes {
    /// Shapes of logits and targets, without weights.
    pub fn new(logits: &[usize], target: &[usize]) -> Self {
        InputShapes { logits: logits.to_vec(), target: target.to_vec(), weight: None, dtypes: InputDTypes::default() }
    }

    /// With the inputs' (and the gradient's) element types.
    pub fn with_dtypes(self, dtypes: InputDTypes) -> Self {
        InputShapes { dtypes, ..self }
    }
}

/// The element types of a plan's tensors, where they are not the ones the
/// kernels read. Tensors of another type are converted on the GPU as the
/// plan records: widened into f32 (or i32 class indices) scratch first, the
/// gradient narrowed into the caller's type last (accumulated there when the
/// plan accumulates). Values are f32 in every case.
///
/// ```
/// use segloss::{DType, InputDTypes, InputShapes};
/// // f16 logits and gradient, u8 class indices.
/// let shapes = InputShapes::new(&[2, 19, 64, 64], &[2, 64, 64])
///     .with_dtypes(InputDTypes { logits: DType::F16, target: Some(DType::U8), ..Default::default() });
/// assert_eq!(shapes.dtypes.grad(), DType::F16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct InputDTypes {
    /// Logits (or predicted boxes): f32, f16 or bf16.
    pub logits: DType,
    /// Targets: `None` for the loss's own (f32 dense targets or boxes, i32
    /// class indices); f16 or bf16 for dense ones, u8, u16 or i64 for class indices.
    pub target: Option<DType>,
    /// Per-element weights: f32, f16 or bf16.
    pub weight: DType,
    /// The gradient: `None` for the logits' type; `Some(F32)` for an f32
    /// master gradient beside f16 or bf16 logits.
    pub grad: Option<DType>,
}

impl Default for InputDTypes {
    fn default() -> Self {
        InputDTypes { logits: DType::F32, target: None, weight: DType::F32, grad: None }
    }
}

impl InputDTypes {
    /// The gradient's type.
    pub fn grad(&self) -> DType {
        self.grad.unwrap_or(self.logits)
    }
}

/// Host tensors for one evaluation (the convenience layer and the references).
///
/// Every floating tensor must be finite: [`LossConfig::check_values`] (which
/// [`crate::Runner`] and [`LossConfig::reference`] call) refuses NaN and ±Inf,
/// naming the tensor, the first bad index and its value. [`crate::Runner`]
/// takes every [`DType`] (see [`InputDTypes`]); the references and
/// `check_values` take f32 and i32, so give them [`HostInputs::widened`].
#[derive(Clone, Copy, Debug)]
pub struct HostInputs<'a> {
    /// Logits: f32, f16 or bf16.
    pub logits: &'a HostTensor,
    /// Targets: floating or class indices as the loss needs.
    pub target: &'a HostTensor,
    /// Optional per-element weights.
    pub weight: Option<&'a HostTensor>,
    /// Optional precomputed distance maps of the target, `[N, C, S…]` f32
    /// (`boundary`'s signed maps, `hausdorff_dt`'s two-sided target fields),
    /// used instead of the ones the loss computes: [`LossInputs::distance`]'s twin.
    pub distance: Option<&'a HostTensor>,
}

impl<'a> HostInputs<'a> {
    /// Logits and targets, without weights.
    pub fn new(logits: &'a HostTensor, target: &'a HostTensor) -> Self {
        HostInputs { logits, target, weight: None, distance: None }
    }

    /// With precomputed distance maps of the target (`boundary`, `hausdorff_dt`).
    pub fn with_distance(self, distance: &'a HostTensor) -> Self {
        HostInputs { distance: Some(distance), ..self }
    }

    /// Checks that each tensor's data fills its shape.
    pub fn check(&self) -> Result<()> {
        self.logits.check("logits")?;
        self.target.check("target")?;
        self.weight.map_or(Ok(()), |w| w.check("weight"))?;
        self.distance.map_or(Ok(()), |d| d.check("distance"))
    }

    /// The tensors by the names errors give them (`names`: the loss's logits
    /// and target names), the optional ones when present.
    fn named(&self, [logits, target]: [&'static str; 2]) -> impl Iterator<Item = (&'static str, &'a HostTensor)> {
        [(logits, Some(self.logits)), (target, Some(self.target)), ("weight", self.weight), ("distance", self.distance)]
            .into_iter()
            .filter_map(|(name, t)| t.map(|t| (name, t)))
    }

    /// The inputs' shapes.
    pub fn shapes(&self) -> InputShapes {
        let target = self.target.dtype();
        InputShapes {
            logits: self.logits.shape.clone(),
            target: self.target.shape.clone(),
            weight: self.weight.map(|w| w.shape.clone()),
            dtypes: InputDTypes {
                logits: self.logits.dtype(),
                target: (target != target.widened()).then_some(target),
                weight: self.weight.map_or(DType::F32, |w| w.dtype()),
                grad: None,
            },
        }
    }

    /// The inputs in the types the kernels and the references compute in
    /// ([`HostTensor::widened`]): what a plan on these tensors computes from.
    pub fn widened(&self) -> WidenedInputs {
        WidenedInputs {
            logits: self.logits.widened(),
            target: self.target.widened(),
            weight: self.weight.map(HostTensor::widened),
            distance: self.distance.cloned(),
        }
    }

    /// `f` on the inputs in the kernels' types: on these very tensors when
    /// they are f32 and i32 already (no copy), else on [`HostInputs::widened`].
    pub fn with_widened<R>(&self, f: impl FnOnce(&HostInputs<'_>) -> R) -> R {
        let native = |t: &HostTensor| t.dtype() == t.dtype().widened();
        if native(self.logits) && native(self.target) && self.weight.is_none_or(native) {
            return f(self);
        }
        f(&self.widened().inputs())
    }
}

/// [`HostInputs::widened`]'s tensors, owned.
#[derive(Clone, Debug)]
pub struct WidenedInputs {
    /// Logits, f32.
    pub logits: HostTensor,
    /// Targets, f32 or i32.
    pub target: HostTensor,
    /// Weights, f32.
    pub weight: Option<HostTensor>,
    /// Distance maps, f32.
    pub distance: Option<HostTensor>,
}

impl WidenedInputs {
    /// Borrowed as [`HostInputs`].
    pub fn inputs(&self) -> HostInputs<'_> {
        HostInputs { logits: &self.logits, target: &self.target, weight: self.weight.as_ref(), distance: self.distance.as_ref() }
    }
}

impl LossConfig {
    /// Parses `{"loss": NAME, "params": {…}}`; unknown parameters are errors.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::config("loss", params::json_error(text, &e)))?;
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
        let config = Self::parse_params(loss, &params)
            .unwrap_or_else(|| Err(format!("{loss} is not implemented yet")))
            .map_err(|message| Error::Config { loss: static_name(loss), message })?;
        config.validate()?;
        Ok(config)
    }

    /// Whether this build implements the loss SPEC.md calls `loss`.
    pub fn implemented(loss: &str) -> bool {
        LOSSES.contains(&loss)
    }

    /// The loss's SPEC.md name.
    pub fn name(&self) -> &'static str {
        self.loss().name()
    }

    /// What golden cases and error messages call the two inputs that fill
    /// the logits and target slots: `pred_boxes` and `target_boxes` for
    /// `box_iou`, `logits` and `target` otherwise.
    pub fn input_names(&self) -> [&'static str; 2] {
        self.loss().input_names()
    }

    /// What a non-zero [`LossPlan::status_buffer`] word means for this loss:
    /// its own rule in the low bits, and [`STATUS_NON_FINITE`].
    pub fn status_rule(&self) -> String {
        format!("{}; bit 31 (STATUS_NON_FINITE): an input held NaN or ±Inf", self.loss().status_rule())
    }

    /// The error a non-zero status word `word` reports, naming what its bits mean.
    pub fn status_error(&self, word: u32) -> Error {
        if word & STATUS_NON_FINITE != 0 {
            return Error::input(self.name(), format!(
                "an input held NaN or ±Inf (status bit 31, STATUS_NON_FINITE); the value is NaN{}",
                if word & !STATUS_NON_FINITE != 0 { format!(", and the low bits {:#x} say: {}", word & !STATUS_NON_FINITE, self.loss().status_rule()) } else { String::new() }
            ));
        }
        Error::input(self.name(), self.loss().status_rule())
    }

    /// Whether the loss takes precomputed distance maps
    /// ([`HostInputs::distance`], [`LossInputs::distance`]).
    pub fn takes_distance(&self) -> bool {
        self.loss().takes_distance()
    }

    /// Checks the parameters on their own (ranges, exclusive options).
    pub fn validate(&self) -> Result<()> {
        self.loss().validate()
    }

    /// Checks input shapes against the parameters; returns the value's shape.
    pub fn check_shapes(&self, shapes: &InputShapes) -> Result<Vec<usize>> {
        self.loss().value_shape(shapes)
    }

    /// Checks what only the data shows, on the host: every f32 input finite
    /// (the first NaN or ±Inf is refused, naming the tensor, its index and
    /// value), distance maps only for a loss that takes them and of the
    /// logits' shape, then the loss's own rules (label ranges, target ranges).
    pub fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        let loss = self.name();
        if let Some(d) = inputs.distance {
            if !self.takes_distance() {
                return Err(Error::input(loss, "distance maps were given, but this loss takes none"));
            }
            d.as_f32("distance")?;
            checks::same_shape(loss, "distance", &d.shape, &inputs.logits.shape)?;
        }
        for (name, t) in inputs.named(self.input_names()) {
            t.check_finite(loss, name)?;
        }
        self.loss().check_values(inputs)
    }

    /// Prepares the loss for inputs of `shapes` on `ctx`.
    pub fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<LossPlan> {
        let (kernels_shapes, kernels_options) = convert::kernels_request(shapes, options, self.loss().in_place());
        let mut plan = self.loss().plan(ctx, &kernels_shapes, kernels_options)?;
        let own_target = if self.target_kind() == TargetKind::Classes { DType::I32 } else { DType::F32 };
        plan.conversion = convert::Conversion::new(ctx, plan.program.name, shapes, &kernels_shapes.dtypes, options, own_target)?;
        Ok(plan)
    }

    /// What the loss's target holds.
    pub fn target_kind(&self) -> TargetKind {
        self.loss().target_kind()
    }

    /// Bytes the loss must move at the least: read the logits and targets
    /// (and weights), write the gradient, each in its type ([`InputShapes::dtypes`]).
    pub fn min_bytes(&self, shapes: &InputShapes) -> u64 {
        let count = |s: &[usize], dtype: DType| s.iter().product::<usize>() as u64 * dtype.size();
        let d = shapes.dtypes;
        let weight = shapes.weight.as_deref().map_or(0, |w| count(w, d.weight));
        // A loss's own target type (f32 or i32) is 4 bytes either way.
        let target = count(&shapes.target, d.target.unwrap_or(DType::F32));
        count(&shapes.logits, d.logits) + count(&shapes.logits, d.grad()) + target + weight
    }
}

fn static_name(loss: &str) -> &'static str {
    SPEC_LOSSES.iter().find(|l| **l == loss).copied().unwrap_or("loss")
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
