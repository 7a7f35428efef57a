//! A segloss loss as burn sees it: tensors in, a differentiable scalar out,
//! with its plans made once per set of input shapes.

use std::sync::{Arc, Mutex};

use burn::tensor::{Int, Tensor};
use segloss::{CompoundConfig, CompoundPlan, InputDTypes, InputShapes, LossConfig, LossInputs, LossOutputs, LossPlan, PlanOptions, TargetKind};

use crate::engine::SeglossBurn;
use crate::error::{Error, Result};
use crate::primitive::{self, Flat, FlatTarget, Primitives};
use crate::zero_copy::{self, Input, Inputs, Outputs};

/// A target tensor of any rank: class indices (`Tensor<D, Int>`: i32, i64,
/// u8 or u16) or dense targets (`Tensor<D>`: f32, f16 or bf16), as the loss
/// takes them. Made with `.into()`.
pub struct Target {
    dims: Vec<usize>,
    flat: FlatTarget,
}

impl<const D: usize> From<Tensor<D, Int>> for Target {
    fn from(t: Tensor<D, Int>) -> Self {
        let dims = t.dims().to_vec();
        Target { flat: FlatTarget::Classes(t.reshape([dims.iter().product::<usize>()])), dims }
    }
}

impl<const D: usize> From<Tensor<D>> for Target {
    fn from(t: Tensor<D>) -> Self {
        let dims = t.dims().to_vec();
        Target { flat: FlatTarget::Dense(t.reshape([dims.iter().product::<usize>()])), dims }
    }
}

/// A float tensor of any rank, flat, with its shape.
struct FlatFloat {
    dims: Vec<usize>,
    flat: Tensor<1>,
}

impl FlatFloat {
    fn new<const D: usize>(t: Tensor<D>) -> Self {
        let dims = t.dims().to_vec();
        FlatFloat { flat: t.reshape([dims.iter().product::<usize>()]), dims }
    }
}

/// The optional inputs of a loss: per-element weights (`bce`) and the
/// target's precomputed distance maps (`boundary`, `hausdorff_dt`, or the
/// compound terms that take them), `[N, C, S…]`.
#[derive(Default)]
pub struct Extras {
    weight: Option<FlatFloat>,
    distance: Option<FlatFloat>,
}

impl Extras {
    /// With per-element weights.
    pub fn weight<const D: usize>(self, weight: Tensor<D>) -> Self {
        Extras { weight: Some(FlatFloat::new(weight)), ..self }
    }

    /// With the target's distance maps, from the data loader.
    pub fn distance<const D: usize>(self, distance: Tensor<D>) -> Self {
        Extras { distance: Some(FlatFloat::new(distance)), ..self }
    }
}

/// The shapes and types segloss sees for one evaluation's inputs, which
/// burn hands over flat.
pub(crate) struct Roles {
    pub logits: Vec<usize>,
    pub target: Vec<usize>,
    pub weight: Option<Vec<usize>>,
    distance: Option<Vec<usize>>,
    /// The tensors' element types as burn holds them (for plans); the
    /// gradient is written in the logits' type.
    pub dtypes: InputDTypes,
    /// The target's own element type.
    target_dtype: segloss::DType,
}

impl Roles {
    /// The roles of these tensors, and the tensors flat.
    /// Refuses element types segloss does not take (f64 logits, i8
    /// labels), naming the tensor.
    pub(crate) fn split<const D: usize>(logits: Tensor<D>, target: Target, extras: Extras) -> Result<(Roles, Flat)> {
        let logits = FlatFloat::new(logits);
        let target_dtype = match &target.flat {
            FlatTarget::Classes(t) => zero_copy::segloss_dtype("target", t.dtype())?,
            FlatTarget::Dense(t) => zero_copy::segloss_dtype("target", t.dtype())?,
        };
        let float = |input, t: &Tensor<1>| match zero_copy::segloss_dtype(input, t.dtype())? {
            d if d.is_float() => Ok(d),
            d => Err(Error::DType { input, found: d.name().into(), expected: "f32, f16 or bf16" }),
        };
        let dtypes = InputDTypes {
            logits: float("logits", &logits.flat)?,
            // The loss's own (f32 dense, i32 indices) is `None`.
            target: (target_dtype != target_dtype.widened()).then_some(target_dtype),
            weight: extras.weight.as_ref().map(|w| float("weight", &w.flat)).transpose()?.unwrap_or(segloss::DType::F32),
            grad: None,
        };
        let roles = Roles {
            logits: logits.dims,
            target: target.dims,
            weight: extras.weight.as_ref().map(|w| w.dims.clone()),
            distance: extras.distance.as_ref().map(|d| d.dims.clone()),
            dtypes,
            target_dtype,
        };
        let flat = Flat { logits: logits.flat, target: target.flat, weight: extras.weight.map(|w| w.flat), distance: extras.distance.map(|d| d.flat) };
        Ok((roles, flat))
    }

    /// The primitives in their roles.
    pub(crate) fn inputs(&self, p: Primitives) -> Inputs {
        let input = |name, tensor, dims: &[usize], dtype| Input { name, tensor, dims: dims.to_vec(), dtype };
        let d = self.dtypes;
        Inputs {
            logits: input("logits", p.logits, &self.logits, d.logits),
            target: input("target", p.target, &self.target, self.target_dtype),
            weight: p.weight.map(|t| input("weight", t, self.weight.as_deref().expect("weight dims"), d.weight)),
            distance: p.distance.map(|t| input("distance", t, self.distance.as_deref().expect("distance dims"), segloss::DType::F32)),
        }
    }

    /// The shapes a plan is made for.
    pub(crate) fn shapes(&self) -> InputShapes {
        InputShapes { weight: self.weight.clone(), ..InputShapes::new(&self.logits, &self.target) }.with_dtypes(self.dtypes)
    }
}

/// Refuses a target of the other kind than the loss takes (class indices or dense).
pub(crate) fn check_target_kind(kind: TargetKind, target: &Target) -> Result<()> {
    let (classes, expected) = match kind {
        TargetKind::Classes => (true, "an Int tensor of class indices"),
        TargetKind::Dense => (false, "a float tensor of the logits' shape"),
        TargetKind::Boxes => (false, "a float tensor of boxes [M, 4]"),
        TargetKind::Masks => (false, "a float tensor of instance masks [M, H, W]"),
    };
    match (&target.flat, classes) {
        (FlatTarget::Classes(_), false) => Err(Error::DType { input: "target", found: "an Int tensor".into(), expected }),
        (FlatTarget::Dense(_), true) => Err(Error::DType { input: "target", found: "a float tensor".into(), expected }),
        _ => Ok(()),
    }
}

/// A plan for one set of input shapes.
pub(crate) enum Planned {
    Single(LossPlan),
    Compound(CompoundPlan),
}

impl Planned {
    pub(crate) fn record(&self, encoder: &mut wgpu::CommandEncoder, inputs: LossInputs<'_>, outputs: LossOutputs<'_>) -> segloss::Result<()> {
        match self {
            Planned::Single(p) => p.record(encoder, inputs, outputs),
            Planned::Compound(p) => p.record(encoder, inputs, outputs),
        }
    }

    fn value_shape(&self) -> &[usize] {
        match self {
            Planned::Single(p) => p.value_shape(),
            Planned::Compound(p) => p.value_shape(),
        }
    }
}

/// What a plan was made for.
#[derive(Clone, PartialEq)]
struct PlanKey {
    logits: Vec<usize>,
    target: Vec<usize>,
    weight: Option<Vec<usize>>,
    dtypes: InputDTypes,
    grad: bool,
}

/// How many input shapes a loss keeps plans for (training and evaluation
/// batches, a last smaller batch), most recently used first.
const PLANS_KEPT: usize = 8;

enum Kind {
    Single(LossConfig),
    Compound(CompoundConfig),
}

struct State {
    plans: Vec<(PlanKey, Planned)>,
    /// The compound's term weights, or the single loss's scale as one weight.
    weights: Vec<f64>,
}

struct Inner {
    engine: SeglossBurn,
    kind: Kind,
    state: Mutex<State>,
}

/// A segloss loss (or compound) for burn: `forward(logits, target)` gives
/// the scalar value as a `Tensor<1>` of shape `[1]`, differentiable with
/// respect to the logits through segloss's analytic gradient.
///
/// Made by [`SeglossBurn::loss`], [`SeglossBurn::loss_json`] or
/// [`SeglossBurn::compound`]; cheap to clone (clones share plans and weights).
///
/// A compound's weights change during training with [`BurnLoss::set_weights`],
/// for instance the boundary loss's α schedule:
///
/// ```no_run
/// # fn main() -> segloss_burn::Result<()> {
/// use segloss_burn::{SeglossBurn, segloss::{CompoundConfig, LossConfig, alpha_step, ALPHA_START}};
/// let engine = SeglossBurn::init()?;
/// let dice = LossConfig::from_json(r#"{"loss": "dice", "params": {}}"#)?;
/// let boundary = LossConfig::from_json(r#"{"loss": "boundary", "params": {}}"#)?;
/// let loss = engine.compound(CompoundConfig::new(vec![(1.0, dice), (ALPHA_START, boundary)])?)?;
/// let mut alpha = ALPHA_START;
/// for _epoch in 0..10 {
///     // … train an epoch with loss.forward(logits, target)? …
///     alpha = alpha_step(alpha);
///     loss.set_weights(&[1.0, alpha])?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BurnLoss {
    inner: Arc<Inner>,
}

impl BurnLoss {
    pub(crate) fn single(engine: SeglossBurn, config: LossConfig) -> Self {
        Self::new(engine, Kind::Single(config), vec![1.0])
    }

    pub(crate) fn compound(engine: SeglossBurn, config: CompoundConfig) -> Self {
        let weights = config.terms.iter().map(|t| t.weight).collect();
        Self::new(engine, Kind::Compound(config), weights)
    }

    fn new(engine: SeglossBurn, kind: Kind, weights: Vec<f64>) -> Self {
        BurnLoss { inner: Arc::new(Inner { engine, kind, state: Mutex::new(State { plans: Vec::new(), weights }) }) }
    }

    /// The loss's name (`"dice"`), or `"compound"`.
    pub fn name(&self) -> &'static str {
        match &self.inner.kind {
            Kind::Single(c) => c.name(),
            Kind::Compound(_) => "compound",
        }
    }

    /// The value of the loss on `logits` (`[N, C, S…]`, or boxes; f32, f16
    /// or bf16) and `target` (a `Tensor<D, Int>` of class indices or a
    /// `Tensor<D>` of dense targets, as the loss takes them): an f32
    /// `Tensor<1>` of shape `[1]`. The logits' gradient is in their type;
    /// the memory-bound losses read and write f16 and bf16 in place
    /// (segloss's README, "Element types").
    pub fn forward<const D: usize>(&self, logits: Tensor<D>, target: impl Into<Target>) -> Result<Tensor<1>> {
        self.forward_with(logits, target, Extras::default())
    }

    /// [`BurnLoss::forward`] with weights or distance maps.
    pub fn forward_with<const D: usize>(&self, logits: Tensor<D>, target: impl Into<Target>, extras: Extras) -> Result<Tensor<1>> {
        let target = target.into();
        check_target_kind(self.target_kind(), &target)?;
        let (roles, flat) = Roles::split(logits, target, extras)?;
        let key = PlanKey { logits: roles.logits.clone(), target: roles.target.clone(), weight: roles.weight.clone(), dtypes: roles.dtypes, grad: false };
        primitive::run(flat, |p, grad| self.evaluate(PlanKey { grad, ..key.clone() }, roles.inputs(p)))
    }

    fn target_kind(&self) -> TargetKind {
        match &self.inner.kind {
            Kind::Single(c) => c.target_kind(),
            Kind::Compound(c) => c.terms[0].loss.target_kind(),
        }
    }

    fn evaluate(&self, key: PlanKey, inputs: Inputs) -> Result<Outputs> {
        let grad = key.grad;
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        let planned = state.plan(&self.inner, key)?;
        zero_copy::evaluate(&self.inner.engine, planned, inputs, grad)
    }

    /// The weights in use: a compound's term weights, or a single loss's scale.
    pub fn weights(&self) -> Vec<f64> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner()).weights.clone()
    }

    /// Sets a compound's term weights (one per term), or a single loss's
    /// scale (one number), from the next `forward` on.
    pub fn set_weights(&self, weights: &[f64]) -> Result<()> {
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Kind::Single(config) = &self.inner.kind
            && (weights.len() != 1 || !weights[0].is_finite() || weights[0].abs() > f32::MAX as f64)
        {
            return Err(segloss::Error::Config { loss: config.name(), message: format!("a single loss takes one finite scale, not {weights:?}") }.into());
        }
        for (_, planned) in &mut state.plans {
            set_weights(planned, weights)?;
        }
        state.weights = weights.to_vec();
        Ok(())
    }
}

fn set_weights(planned: &mut Planned, weights: &[f64]) -> segloss::Result<()> {
    match planned {
        Planned::Single(p) => {
            p.set_scale(weights[0] as f32);
            Ok(())
        }
        Planned::Compound(p) => p.set_weights(weights),
    }
}

impl State {
    /// The plan for `key`, made now if none is kept.
    fn plan(&mut self, inner: &Inner, key: PlanKey) -> Result<&Planned> {
        match self.plans.iter().position(|(k, _)| *k == key) {
            Some(i) => self.plans[..=i].rotate_right(1),
            None => {
                let planned = make_plan(inner, &key, &self.weights)?;
                self.plans.truncate(PLANS_KEPT - 1);
                self.plans.insert(0, (key, planned));
            }
        }
        Ok(&self.plans[0].1)
    }
}

fn make_plan(inner: &Inner, key: &PlanKey, weights: &[f64]) -> Result<Planned> {
    let ctx = inner.engine.context();
    let shapes = InputShapes { weight: key.weight.clone(), ..InputShapes::new(&key.logits, &key.target) }.with_dtypes(key.dtypes);
    let options = PlanOptions { grad: key.grad, ..PlanOptions::default() };
    let mut planned = match &inner.kind {
        Kind::Single(config) => Planned::Single(config.plan(ctx, &shapes, options)?),
        Kind::Compound(config) => Planned::Compound(config.plan(ctx, &shapes, options)?),
    };
    if planned.value_shape() != [1] {
        let name = match &inner.kind {
            Kind::Single(c) => c.name(),
            Kind::Compound(_) => "compound",
        };
        let message = format!("its value has shape {:?}; in burn a loss is a scalar: use reduction \"mean\" or \"sum\"", planned.value_shape());
        return Err(segloss::Error::Config { loss: name, message }.into());
    }
    set_weights(&mut planned, weights)?;
    Ok(planned)
}
