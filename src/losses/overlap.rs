//! The overlap losses (SPEC.md): `dice`, `jaccard` and `tversky` here, with
//! what they share with `generalized_dice` (losses/generalized_dice.rs):
//! modes, input checks, and the plan of `shaders/overlap.wgsl`: a pass over
//! the pixels for every group's I, P and G, their segmented sum, a per-group
//! stage for the value and the coefficients ∂value/∂I, ∂value/∂P, and a
//! second pass over the pixels for the gradient. The float64 twins are
//! reference/overlap.rs and reference/generalized_dice.rs.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Deserializer, Serialize};

use crate::losses::convert::InPlace;
use crate::losses::shards::Sharding;
use crate::error::{Error, Result};
use crate::gpu::chunks::{PixelChunk, PixelLayout, tile_span};
use crate::gpu::layout::{Chunk, LOSS_TILE, WG_SIZE};
use crate::gpu::context::GpuContext;
use crate::gpu::program::{Binding, Step};
use crate::gpu::tensor::DType;
use crate::losses::builder::PlanBuilder;
use crate::losses::plan::slot;
use crate::losses::checks::{check_class_weights, check_ignore_index, check_labels, check_range, class_layout, same_shape};
use crate::losses::loss::{Checked, Loss};
use crate::losses::plan::{LossPlan, PlanOptions};
use crate::losses::{HostInputs, InputShapes, Reduction, TargetKind};

/// Most classes the overlap kernels take: `pixel_stats` loops about 33·C
/// times per invocation, within lavapipe's 65,535.
pub const MAX_CLASSES: usize = 1024;

/// The largest parameter the kernels' f32 holds.
pub(crate) use crate::losses::checks::F32_MAX;

/// Pixels of one image a `pixel_stats` workgroup covers (`STATS_TILE` in overlap.wgsl).
const STATS_TILE: u64 = WG_SIZE * 8;

/// How logits become probabilities, and what the targets are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverlapMode {
    /// One channel (C = 1), sigmoid, dense {0, 1} targets of the logits' shape.
    Binary,
    /// Each channel its own sigmoid, dense {0, 1} targets of the logits' shape.
    Multilabel,
    /// Softmax over the class axis, class-index targets `[N, S…]`.
    #[default]
    Multiclass,
}

/// Which pixels a group gathers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// One group per (image, class).
    #[default]
    Image,
    /// One group per class, over the whole batch.
    Batch,
}

impl Aggregate {
    /// The value's shape for one loss per group: `[1]` when reduced, else
    /// `[images, classes]` ("image") or `[classes]` ("batch"), `classes` the
    /// classes kept.
    pub(crate) fn value_shape(self, reduction: Reduction, images: usize, classes: usize) -> Vec<usize> {
        match (reduction, self) {
            (Reduction::None, Aggregate::Image) => vec![images, classes],
            (Reduction::None, Aggregate::Batch) => vec![classes],
            _ => vec![1],
        }
    }
}

impl Aggregate {
    /// How a loss over these groups divides across data-parallel devices:
    /// groups over the batch add their sums; groups per image are terms local to one image.
    pub(crate) fn sharding(self, reduction: Reduction) -> Sharding {
        match self {
            Aggregate::Batch => Sharding::Groups,
            Aggregate::Image => Sharding::of(reduction),
        }
    }
}

/// What a group whose target is empty (G = 0) scores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Empty {
    /// Its loss as the formula gives it.
    #[default]
    Keep,
    /// Loss 0 (it still counts in the mean).
    Zero,
}

/// Parameters of `dice` and `jaccard`, and, with α and β, of `tversky`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverlapConfig {
    /// `binary`, `multilabel` or `multiclass` (default).
    pub mode: OverlapMode,
    /// P and G sum squares.
    pub squared: bool,
    /// Added to the numerator (1e-5).
    pub smooth_nr: f64,
    /// Added to the denominator (1e-5).
    pub smooth_dr: f64,
    /// Floor of the denominator, and of the score under `log_loss` (1e-7).
    pub eps: f64,
    /// Groups per (image, class) or per class.
    pub aggregate: Aggregate,
    /// What an empty group scores.
    pub empty: Empty,
    /// `−log(max(score, eps))` instead of `1 − score`.
    pub log_loss: bool,
    /// Keep class 0's groups.
    pub include_background: bool,
    /// One weight per class: C of them, or, without the background, also
    /// C − 1 for the classes kept (as MONAI takes them).
    pub class_weights: Option<Vec<f64>>,
    /// Targets equal to this count for nothing (multiclass labels, or dense targets).
    pub ignore_index: Option<i64>,
    /// `"mean"` (Σ w·l / Σ w), `"sum"` (Σ w·l) or `"none"` (l per group).
    pub reduction: Reduction,
}

impl Default for OverlapConfig {
    fn default() -> Self {
        OverlapConfig {
            mode: OverlapMode::Multiclass,
            squared: false,
            smooth_nr: 1e-5,
            smooth_dr: 1e-5,
            eps: 1e-7,
            aggregate: Aggregate::Image,
            empty: Empty::Keep,
            log_loss: false,
            include_background: true,
            class_weights: None,
            ignore_index: None,
            reduction: Reduction::Mean,
        }
    }
}

/// Parameters of `tversky`: those of dice, with α weighing false positives
/// and β false negatives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TverskyConfig {
    /// Every parameter it shares with dice.
    #[serde(flatten)]
    pub overlap: OverlapConfig,
    /// α, the weight of P − I (0.5).
    pub alpha: f64,
    /// β, the weight of G − I (0.5).
    pub beta: f64,
}

impl Default for TverskyConfig {
    fn default() -> Self {
        TverskyConfig { overlap: OverlapConfig::default(), alpha: 0.5, beta: 0.5 }
    }
}

/// tversky's own two parameters, apart from the ones it shares with dice.
#[derive(Deserialize)]
struct TverskyWeights {
    #[serde(default = "half")]
    alpha: f64,
    #[serde(default = "half")]
    beta: f64,
}

fn half() -> f64 {
    0.5
}

// In two parts, because serde's flatten cannot reject unknown keys: α and β
// are taken out, and the rest must be an `OverlapConfig`. Both parts go
// through `params::from_params`, so their errors name the parameter as every
// loss's do.
impl<'de> Deserialize<'de> for TverskyConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let weights: serde_json::Map<_, _> = ["alpha", "beta"].into_iter().filter_map(|k| map.remove_entry(k)).collect();
        let TverskyWeights { alpha, beta } = crate::losses::params::from_params(&serde_json::Value::Object(weights)).map_err(D::Error::custom)?;
        let overlap = crate::losses::params::from_params(&serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        Ok(TverskyConfig { overlap, alpha, beta })
    }
}

/// Which ratio a dice-family group scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Score {
    /// (2I + s_nr) / max(P + G + s_dr, eps)
    Dice,
    /// (I + s_nr) / max(P + G − I + s_dr, eps)
    Jaccard,
    /// (I + s_nr) / max(I + α(P − I) + β(G − I) + s_dr, eps)
    Tversky {
        /// α
        alpha: f64,
        /// β
        beta: f64,
    },
}

impl Score {
    fn loss(self) -> &'static str {
        match self {
            Score::Dice => "dice",
            Score::Jaccard => "jaccard",
            Score::Tversky { .. } => "tversky",
        }
    }
}

/// Parameters of `dice`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DiceConfig(pub OverlapConfig);

/// Parameters of `jaccard`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JaccardConfig(pub OverlapConfig);

impl std::ops::Deref for DiceConfig {
    type Target = OverlapConfig;
    fn deref(&self) -> &OverlapConfig {
        &self.0
    }
}

impl std::ops::Deref for JaccardConfig {
    type Target = OverlapConfig;
    fn deref(&self) -> &OverlapConfig {
        &self.0
    }
}

/// What dice, jaccard and tversky are: the overlap parameters and a score.
/// The three share one [`Loss`] implementation through it.
pub(crate) trait ScoredOverlap {
    const NAME: &'static str;
    fn overlap(&self) -> &OverlapConfig;
    fn score(&self) -> Score;
    /// Checks the score's own parameters.
    fn validate_score(&self) -> Result<()> {
        Ok(())
    }
}

impl ScoredOverlap for DiceConfig {
    const NAME: &'static str = "dice";
    fn overlap(&self) -> &OverlapConfig {
        &self.0
    }
    fn score(&self) -> Score {
        Score::Dice
    }
}

impl ScoredOverlap for JaccardConfig {
    const NAME: &'static str = "jaccard";
    fn overlap(&self) -> &OverlapConfig {
        &self.0
    }
    fn score(&self) -> Score {
        Score::Jaccard
    }
}

impl ScoredOverlap for TverskyConfig {
    const NAME: &'static str = "tversky";
    fn overlap(&self) -> &OverlapConfig {
        &self.overlap
    }
    fn score(&self) -> Score {
        TverskyConfig::score(self)
    }
    fn validate_score(&self) -> Result<()> {
        check_range("tversky", "alpha", self.alpha, 0.0, 1.0e6)?;
        check_range("tversky", "beta", self.beta, 0.0, 1.0e6)?;
        if self.alpha == 0.0 && self.beta == 0.0 {
            return Err(Error::config("tversky", "alpha and beta are both 0: the score would ignore every error"));
        }
        // Squared sums allow Σp² < Σpg, so a weight above 1 can drive the denominator negative.
        if self.overlap.squared && (self.alpha > 1.0 || self.beta > 1.0) {
            return Err(Error::config("tversky", "with squared denominators alpha and beta must lie in [0, 1]"));
        }
        Ok(())
    }
}

impl TverskyConfig {
    /// The score with this configuration's α and β.
    pub fn score(&self) -> Score {
        Score::Tversky { alpha: self.alpha, beta: self.beta }
    }
}

impl<T: ScoredOverlap> Loss for T {
    type Layout = PixelLayout;

    const NAME: &'static str = T::NAME;

    fn target_kind(&self) -> TargetKind {
        overlap_target(self.overlap().mode)
    }

    fn sharding(&self) -> Sharding {
        self.overlap().aggregate.sharding(self.overlap().reduction)
    }

    fn in_place(&self) -> InPlace {
        // Targets are read as 32-bit words (class indices or f32), so an f16 one is widened.
        InPlace::LOGITS_AND_GRAD
    }

    fn validate(&self) -> Result<()> {
        self.validate_score()?;
        self.overlap().validate(self.score())
    }

    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        self.overlap().check_shapes(self.score(), shapes)
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        check_targets(self.score().loss(), self.overlap().mode, self.overlap().ignore_index, inputs)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<PixelLayout>, options: PlanOptions) -> Result<LossPlan> {
        self.overlap().plan(self.score(), ctx, shapes, checked, options)
    }
}

/// What an overlap loss's targets hold in `mode`.
pub(crate) fn overlap_target(mode: OverlapMode) -> TargetKind {
    match mode {
        OverlapMode::Multiclass => TargetKind::Classes,
        OverlapMode::Binary | OverlapMode::Multilabel => TargetKind::Dense,
    }
}

impl OverlapConfig {
    pub(crate) fn validate(&self, score: Score) -> Result<()> {
        let loss = score.loss();
        check_range(loss, "smooth_nr", self.smooth_nr, 0.0, F32_MAX)?;
        check_range(loss, "smooth_dr", self.smooth_dr, 0.0, F32_MAX)?;
        check_range(loss, "eps", self.eps, 0.0, F32_MAX)?;
        if self.log_loss && self.eps == 0.0 && self.smooth_nr == 0.0 {
            return Err(Error::config(
                loss,
                "log_loss with eps = 0 and smooth_nr = 0 is infinite for an empty group: give eps or smooth_nr a positive value",
            ));
        }
        check_ignore_index(loss, self.ignore_index)?;
        check_class_weights(loss, &self.class_weights, None)
    }

    /// The value's shape: `[1]`, or for "none" `[N, C']` ("image") or `[C']` ("batch").
    pub(crate) fn check_shapes(&self, score: Score, shapes: &InputShapes) -> Result<Checked<PixelLayout>> {
        let loss = score.loss();
        let layout = check_layout(loss, self.mode, self.include_background, shapes)?;
        let (n, c) = (layout.images as usize, layout.classes as usize);
        let first = !self.include_background as usize;
        match &self.class_weights {
            Some(w) if first == 1 && w.len() + 1 == c => {}
            _ => check_class_weights(loss, &self.class_weights, Some(c))?,
        }
        if self.reduction == Reduction::Mean && self.weights(c).iter().skip(first).sum::<f64>() == 0.0 {
            return Err(Error::config(loss, "the class_weights of the classes counted sum to 0: their mean is undefined"));
        }
        let value_shape = self.aggregate.value_shape(self.reduction, n, c - first);
        Ok(Checked { layout, value_shape })
    }

    /// The weight of each of `classes` classes: 1 without class weights; a
    /// left-out background's is 0.
    pub fn weights(&self, classes: usize) -> Vec<f64> {
        match &self.class_weights {
            None => vec![1.0; classes],
            Some(w) if w.len() + 1 == classes && !self.include_background => std::iter::once(0.0).chain(w.iter().copied()).collect(),
            Some(w) => w.clone(),
        }
    }

    pub(crate) fn plan(
        &self,
        score: Score,
        ctx: &GpuContext,
        shapes: &InputShapes,
        checked: Checked<PixelLayout>,
        options: PlanOptions,
    ) -> Result<LossPlan> {
        let loss = score.loss();
        let Checked { layout, value_shape } = checked;
        let (n, c) = (layout.images, layout.classes);
        let first = !self.include_background as usize;
        let batch = self.aggregate == Aggregate::Batch;
        let groups = if batch { c } else { n * c };
        let weights = self.weights(c as usize);
        let total = if batch { 1.0 } else { n as f64 } * weights.iter().skip(first).sum::<f64>();
        let (mean_scale, denominator) = match self.reduction {
            Reduction::Mean => (1.0 / total, total),
            _ => (1.0, 1.0),
        };
        let (kind, alpha, beta) = match score {
            Score::Dice => (0, 0.0, 0.0),
            Score::Jaccard => (1, 0.0, 0.0),
            Score::Tversky { alpha, beta } => (2, alpha, beta),
        };
        OverlapPlan {
            loss,
            shapes,
            layout,
            mode: self.mode,
            squared: self.squared,
            batch,
            ignore: self.ignore_index,
            reduction: self.reduction,
            value_shape,
            entry: "overlap_groups",
            class_weights: Some(weights.iter().map(|&w| w as f32).collect()),
            denominator,
            pixels: 0.0,
            params: GroupParams {
                count: groups as u32,
                classes: c as u32,
                stat_groups: groups as u32,
                first_class: first as u32,
                kind,
                write_elements: (self.reduction == Reduction::None) as u32,
                log_loss: self.log_loss as u32,
                empty_zero: (self.empty == Empty::Zero) as u32,
                smooth_nr: self.smooth_nr as f32,
                smooth_dr: self.smooth_dr as f32,
                eps: self.eps as f32,
                alpha: alpha as f32,
                beta: beta as f32,
                mean_scale: mean_scale as f32,
                // `pixels` is mcc's alone.
                ..Zeroable::zeroed()
            },
        }
        .plan(ctx, options)
    }
}

/// Checks the inputs' shapes for an overlap loss and returns their `[N, C, S]` layout.
pub(crate) fn check_layout(loss: &'static str, mode: OverlapMode, include_background: bool, shapes: &InputShapes) -> Result<PixelLayout> {
    if shapes.weight.is_some() {
        return Err(Error::shape(loss, "weight", shapes.weight.as_deref().unwrap_or_default(), "takes no per-element weight"));
    }
    let l = &shapes.logits;
    if l.len() >= 2 && l[1] > MAX_CLASSES {
        return Err(Error::limit(loss, format!("{} classes exceed the {MAX_CLASSES} the overlap kernels support", l[1])));
    }
    let (n, c, s) = match mode {
        OverlapMode::Multiclass => class_layout(loss, shapes)?,
        OverlapMode::Binary | OverlapMode::Multilabel => {
            if l.len() < 2 {
                return Err(Error::shape(loss, "logits", l, format!("logits {l:?} must be [N, C, S…] with a class axis")));
            }
            same_shape(loss, "target", &shapes.target, l)?;
            if l.iter().any(|&d| d == 0) {
                return Err(Error::shape(loss, "logits", l, format!("logits {l:?} have an empty axis")));
            }
            (l[0], l[1], l[2..].iter().product())
        }
    };
    if mode == OverlapMode::Binary && c != 1 {
        return Err(Error::shape(loss, "logits", l, format!("binary mode takes one channel; the logits {l:?} have {c} (use multilabel)")));
    }
    if !include_background && c == 1 {
        return Err(Error::input(loss, format!(
            "include_background = false leaves no class of the logits' one channel"
        )));
    }
    Ok(PixelLayout { images: n as u64, classes: c as u64, spatial: s as u64 })
}

/// Checks the target values: labels in `[0, C)` or the ignore value
/// (multiclass), or dense targets in [0, 1] or the ignore value.
pub(crate) fn check_targets(loss: &'static str, mode: OverlapMode, ignore: Option<i64>, inputs: &HostInputs<'_>) -> Result<()> {
    if mode == OverlapMode::Multiclass {
        return check_labels(loss, inputs.target, inputs.logits.shape[1], ignore);
    }
    let target = inputs.target.as_f32("target")?;
    let skip = ignore.map(|v| v as f32);
    if let Some((i, y)) = target.iter().enumerate().find(|(_, y)| Some(**y) != skip && !(0.0..=1.0).contains(*y)) {
        let also = ignore.map(|v| format!(" and is not ignore_index {v}")).unwrap_or_default();
        return Err(Error::input(loss, format!("target[{i}] = {y} is outside [0, 1]{also}")));
    }
    Ok(())
}

/// `struct PixelParams` in `overlap.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PixelParams {
    chunk: Chunk,
    images: u32,
    tiles: u32,
    ignore_index: i32,
    ignore_value: f32,
    has_ignore: u32,
    _pad: [u32; 3],
}

/// `struct GroupParams` in `overlap.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct GroupParams {
    pub count: u32,
    pub classes: u32,
    pub stat_groups: u32,
    pub first_class: u32,
    pub kind: u32,
    pub write_elements: u32,
    pub log_loss: u32,
    pub empty_zero: u32,
    pub smooth_nr: f32,
    pub smooth_dr: f32,
    pub eps: f32,
    pub alpha: f32,
    pub beta: f32,
    pub mean_scale: f32,
    pub _pad: [u32; 2],
}

/// An overlap loss to plan: the pixel passes are the same for all four
/// losses; `entry` and `params` choose the per-group stage.
pub(crate) struct OverlapPlan<'a> {
    pub loss: &'static str,
    pub shapes: &'a InputShapes,
    pub layout: PixelLayout,
    pub mode: OverlapMode,
    pub squared: bool,
    pub batch: bool,
    pub ignore: Option<i64>,
    pub reduction: Reduction,
    pub value_shape: Vec<usize>,
    /// `overlap_groups` or `generalized_groups`.
    pub entry: &'static str,
    /// Bound at binding 9 when the entry reads them.
    pub class_weights: Option<Vec<f32>>,
    /// What the summed contributions are divided by (mean), else 1.
    pub denominator: f64,
    /// M, the pixels of one group (mcc's TN = M − P − G + I): stored after the sums.
    pub pixels: f64,
    pub params: GroupParams,
}

impl OverlapPlan<'_> {
    pub fn plan(&self, ctx: &GpuContext, options: PlanOptions) -> Result<LossPlan> {
        let PixelLayout { images: n, classes: c, spatial: s } = self.layout;
        if n * c * s >= 1 << 31 {
            return Err(Error::limit(self.loss, format!("{} logits exceed the 2^31 the kernels index", n * c * s)));
        }
        let softmax = self.mode == OverlapMode::Multiclass;
        let (align, limit) = (ctx.inner.offset_alignment, ctx.binding_limit());
        let constants = [("SOFTMAX", softmax as u32 as f64), ("SQUARED", self.squared as u32 as f64), ("BATCH", self.batch as u32 as f64)];

        let tiles = s.div_ceil(STATS_TILE);
        let groups = self.params.stat_groups as u64;
        let seg_len = n * c * tiles / groups;
        let invocations = self.params.count as u64;
        if 3 * groups * seg_len * 4 > limit {
            return Err(Error::limit(self.loss, format!(
                "the per-tile sums of {groups} groups ({} bytes) exceed one binding of {limit}", 3 * groups * seg_len * 4
            )));
        }
        let target_dtype = if softmax { DType::I32 } else { DType::F32 };
        let mut plan = PlanBuilder::new(self.loss, ctx, options, self.shapes, target_dtype);
        // Labels out of range, and non-finite logits or targets (pixel_stats flags
        // them; the groups' values are then NaN).
        let status = plan.status();
        let partials = plan.scratch("overlap partials", 3 * groups * seg_len * 4)?;
        // I, P, G of every group, then M (mcc's pixels per group).
        let mut initial = vec![0f32; 3 * groups as usize];
        initial.push(self.pixels as f32);
        let stats = plan.storage("overlap stats", bytemuck::cast_slice(&initial));
        let coef = plan.scratch("overlap coefficients", groups * 8)?;
        let contrib = plan.scratch("overlap contributions", invocations * 4)?;
        let pixel_params = |chunk: Chunk| {
            let params = PixelParams {
                chunk,
                images: n as u32,
                tiles: tiles as u32,
                ignore_index: self.ignore.unwrap_or(0) as i32,
                ignore_value: self.ignore.unwrap_or(0) as f32,
                has_ignore: self.ignore.is_some() as u32,
                _pad: [0; 3],
            };
            Binding::Owned(ctx.create_buffer_with("overlap pixel params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM))
        };
        let target_range = |ch: &PixelChunk| if softmax { ch.pixels.clone() } else { ch.logits.clone() };

        // 1. Every group's I, P, G: per-tile partials (tile t of image n covers
        // its pixels [t·TILE, min((t+1)·TILE, S))), then their segmented sum.
        let pixels_of_tiles = |a: u64, b: u64| tile_span(a, b, tiles, s, STATS_TILE);
        // Logits and gradient are read and written in their own type (`Loss::in_place`).
        let elements = PlanBuilder::LOGITS_AND_GRAD;
        let kernel = plan.kernel_on("overlap.wgsl", "pixel_stats", &constants, &elements)?;
        let mut stat_steps = Vec::new();
        for ch in self.layout.chunks(n * tiles, 1, limit, align, pixels_of_tiles)? {
            let chunk = self.layout.chunk_uniform(&ch, 0);
            stat_steps.push(Step::new(
                &kernel,
                chunk.count,
                vec![
                    ("px", pixel_params(chunk)),
                    ("logits", Binding::range(slot::LOGITS, &ch.logits)),
                    ("targets", Binding::range(slot::TARGET, &target_range(&ch))),
                    ("partials", Binding::owned(&partials)),
                    ("status", status.clone()),
                ],
            )?);
        }
        plan.steps_mut().extend(stat_steps);
        plan.segmented_sum(Binding::owned(&partials), 3 * groups, seg_len, Binding::owned(&stats))?;
        let split = plan.steps_mut().len();

        // 2. Per group: the loss, its share of the value, the coefficients.
        let write_elements = self.reduction == Reduction::None;
        let mut bindings = vec![
            ("io", plan.io()),
            ("stats", Binding::owned(&stats)),
            ("coef", Binding::owned(&coef)),
            ("gp", plan.uniform("overlap group params", &self.params)),
            ("contrib", Binding::owned(&contrib)),
            ("value", if write_elements { Binding::slot(slot::VALUE) } else { plan.unused_output("unused value") }),
            ("status", status.clone()),
        ];
        if let Some(w) = &self.class_weights {
            bindings.push(("class_weights", Binding::Owned(plan.storage("class weights", bytemuck::cast_slice(w)))));
        }
        let group_kernel = plan.kernel("overlap.wgsl", self.entry, &[])?;
        plan.dispatch(&group_kernel, invocations.div_ceil(64) as u32, bindings)?;

        // 3. The reduced value: Σ contributions / denominator.
        if !write_elements {
            let denominator = plan.denominator(self.denominator as f32);
            plan.sum_to_value(&contrib, invocations, &denominator)?;
        }

        // 4. The gradient, pixel by pixel.
        if options.grad {
            let kernel = plan.kernel_on("overlap.wgsl", "pixel_grad", &constants, &elements)?;
            let mut grad_steps = Vec::new();
            for ch in self.layout.chunks(self.layout.pixels(), LOSS_TILE, limit, align, |a, b| a..b)? {
                let chunk = self.layout.chunk_uniform(&ch, 0);
                grad_steps.push(Step::new(
                    &kernel,
                    (chunk.count as u64).div_ceil(LOSS_TILE) as u32,
                    vec![
                        ("px", pixel_params(chunk)),
                        ("io", plan.io()),
                        ("logits", Binding::range(slot::LOGITS, &ch.logits)),
                        ("targets", Binding::range(slot::TARGET, &target_range(&ch))),
                        ("status", status.clone()),
                        ("coef", Binding::owned(&coef)),
                        ("grad", Binding::range(slot::GRAD, &ch.logits)),
                    ],
                )?);
            }
            plan.steps_mut().extend(grad_steps);
        }
        if self.batch {
            // Groups that span the batch: their sums are what data-parallel devices add.
            let tail = plan.steps_mut().len() - split;
            plan.split_tail(&stats, 3 * groups + 1, tail);
        }
        Ok(plan.finish(self.value_shape.clone()))
    }
}
