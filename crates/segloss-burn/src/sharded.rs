//! A segloss loss for data-parallel training in burn. Each device computes
//! its slice's statistics, the engine sums them over devices with burn's
//! `Tensor::all_reduce`, and each device's forward on the sums gives the
//! loss of the global batch, differentiable with respect to that device's
//! logits: its backward is the device's part of the global gradient, so the
//! gradients all-reduced by the engine are the single-device ones.

use std::sync::{Arc, Mutex};

use burn::backend::Cube;
use burn::backend::ops::FloatTensorOps;
use burn::tensor::{FloatDType, Shape, Tensor};
use segloss::{CompoundConfig, LossConfig, LossOutputs, PlanOptions, ShardedPlan, TargetKind};

use crate::engine::SeglossBurn;
use crate::error::Result;
use crate::loss::{Extras, Roles, Target, check_target_kind};
use crate::primitive;
use crate::zero_copy::{self, Input, Outputs};

/// A segloss loss planned for one device of a data-parallel batch
/// ([`segloss::ShardedPlan`]): [`ShardedBurnLoss::statistics`] on the
/// device's slice, the engine's all-reduce (sum) of them, then
/// [`ShardedBurnLoss::forward`] with the sums. Made by
/// [`SeglossBurn::sharded_loss`] (or [`SeglossBurn::sharded_compound`]),
/// one per device; cheap to clone.
///
/// ```no_run
/// # fn main() -> segloss_burn::Result<()> {
/// use burn::tensor::{Distribution, Int, Tensor, distributed::ReduceOperation};
/// use segloss_burn::{SeglossBurn, segloss::LossConfig};
/// # let (engine_a, engine_b): (SeglossBurn, SeglossBurn) = todo!();
/// let config = LossConfig::from_json(r#"{"loss": "dice", "params": {"aggregate": "batch"}}"#)?;
/// let losses = [engine_a.sharded_loss(config.clone())?, engine_b.sharded_loss(config)?];
/// let slices: Vec<(Tensor<4>, Tensor<3, Int>)> = [&engine_a, &engine_b].iter().map(|e| {
///     let device = e.device().clone().autodiff();
///     (Tensor::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device).require_grad(), Tensor::zeros([2, 64, 64], &device))
/// }).collect();
/// let stats = losses.iter().zip(&slices).map(|(l, (x, y))| l.statistics(x.clone(), y.clone())).collect::<segloss_burn::Result<Vec<_>>>()?;
/// let sums = Tensor::all_reduce(stats, ReduceOperation::Sum);
/// for ((loss, (x, y)), sum) in losses.iter().zip(&slices).zip(sums) {
///     let value = loss.forward(x.clone(), y.clone(), sum)?; // the global batch's loss, on each device
///     let grad = x.grad(&value.backward());                 // this slice's part of its gradient
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ShardedBurnLoss {
    inner: Arc<Inner>,
}

/// The plans of one slice shape each: logits and target dims, weight dims, element types.
type Key = (Vec<usize>, Vec<usize>, Option<Vec<usize>>, segloss::InputDTypes);

struct Inner {
    engine: SeglossBurn,
    kind: Kind,
    plans: Mutex<Vec<(Key, Arc<ShardedPlan>)>>,
}

enum Kind {
    Single(LossConfig),
    Compound(CompoundConfig),
}

impl Kind {
    fn target_kind(&self) -> TargetKind {
        match self {
            Kind::Single(c) => c.target_kind(),
            Kind::Compound(c) => c.terms[0].loss.target_kind(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Kind::Single(c) => c.name(),
            Kind::Compound(_) => "compound",
        }
    }
}

/// How many slice shapes a loss keeps plans for, most recent first.
const PLANS_KEPT: usize = 4;

impl ShardedBurnLoss {
    pub(crate) fn single(engine: SeglossBurn, config: LossConfig) -> Self {
        Self::new(engine, Kind::Single(config))
    }

    pub(crate) fn compound(engine: SeglossBurn, config: CompoundConfig) -> Self {
        Self::new(engine, Kind::Compound(config))
    }

    fn new(engine: SeglossBurn, kind: Kind) -> Self {
        ShardedBurnLoss { inner: Arc::new(Inner { engine, kind, plans: Mutex::new(Vec::new()) }) }
    }

    /// This device's statistics on its slice: an f32 `Tensor<1>` of
    /// [`ShardedPlan::statistics_len`], outside any autodiff graph, for the
    /// engine to sum over devices. Their layout per loss is in segloss's
    /// README ("Data-parallel training").
    pub fn statistics<const D: usize>(&self, logits: Tensor<D>, target: impl Into<Target>) -> Result<Tensor<1>> {
        self.statistics_with(logits, target, Extras::default())
    }

    /// [`ShardedBurnLoss::statistics`] with weights or distance maps.
    pub fn statistics_with<const D: usize>(&self, logits: Tensor<D>, target: impl Into<Target>, extras: Extras) -> Result<Tensor<1>> {
        let target = target.into();
        check_target_kind(self.inner.kind.target_kind(), &target)?;
        let (roles, flat) = Roles::split(logits, target, extras)?;
        let plan = self.plan(&roles)?;
        let inputs = roles.inputs(primitive::plain(flat)?);
        let len = plan.statistics_len();
        let stats = Cube::float_empty(Shape::new([len]), &inputs.logits.tensor.device, FloatDType::F32);
        let more = [Input { name: "statistics", tensor: stats.clone(), dims: vec![len], dtype: segloss::DType::F32 }];
        zero_copy::record(&self.inner.engine, &inputs, &more, |encoder, li, more| plan.record_statistics(encoder, li, &more[0]))?;
        Ok(Tensor::<1>::from_primitive::<Cube>(stats))
    }

    /// The loss of the global batch, given `global_statistics`, the sum
    /// over devices of [`ShardedBurnLoss::statistics`] (on this device):
    /// a `Tensor<1>` of shape `[1]`, the same on every device, whose
    /// gradient with respect to `logits` is this slice's part of the global
    /// loss's gradient. The inputs must be those the statistics were
    /// computed from.
    pub fn forward<const D: usize>(&self, logits: Tensor<D>, target: impl Into<Target>, global_statistics: Tensor<1>) -> Result<Tensor<1>> {
        self.forward_with(logits, target, global_statistics, Extras::default())
    }

    /// [`ShardedBurnLoss::forward`] with weights or distance maps.
    pub fn forward_with<const D: usize>(&self, logits: Tensor<D>, target: impl Into<Target>, global_statistics: Tensor<1>, extras: Extras) -> Result<Tensor<1>> {
        let target = target.into();
        check_target_kind(self.inner.kind.target_kind(), &target)?;
        let (roles, flat) = Roles::split(logits, target, extras)?;
        let plan = self.plan(&roles)?;
        let global = primitive::plain_float(global_statistics, "statistics")?;
        let global_dims = vec![plan.statistics_len()];
        primitive::run(flat, |p, grad| {
            let inputs = roles.inputs(p);
            let device = inputs.logits.tensor.device.clone();
            let value = Cube::float_empty(Shape::new([1]), &device, FloatDType::F32);
            // The plan writes a gradient either way; it is dropped when burn asks for none.
            let grad_dtype = roles.dtypes.grad();
            let g = Cube::float_empty(Shape::new([roles.logits.iter().product::<usize>()]), &device, zero_copy::float_dtype(grad_dtype));
            let f32 = segloss::DType::F32;
            let more = [
                Input { name: "statistics", tensor: global, dims: global_dims, dtype: f32 },
                Input { name: "value", tensor: value.clone(), dims: vec![1], dtype: f32 },
                Input { name: "grad", tensor: g.clone(), dims: roles.logits.clone(), dtype: grad_dtype },
            ];
            zero_copy::record(&self.inner.engine, &inputs, &more, |encoder, li, m| {
                plan.record_finish(encoder, li, &m[0], LossOutputs::new(&m[1], &m[2]))
            })?;
            Ok(Outputs { value, grad: grad.then_some(g) })
        })
    }

    /// The plan for this slice's shapes, made on first use.
    fn plan(&self, roles: &Roles) -> Result<Arc<ShardedPlan>> {
        let key = (roles.logits.clone(), roles.target.clone(), roles.weight.clone(), roles.dtypes);
        let mut plans = self.inner.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = plans.iter().position(|(k, _)| *k == key) {
            plans[..=i].rotate_right(1);
            return Ok(plans[0].1.clone());
        }
        let (ctx, shapes) = (self.inner.engine.context(), roles.shapes());
        let plan = match &self.inner.kind {
            Kind::Single(c) => c.plan_sharded(ctx, &shapes, PlanOptions::default())?,
            Kind::Compound(c) => c.plan_sharded(ctx, &shapes, PlanOptions::default())?,
        };
        if plan.value_shape() != [1] {
            let message = format!("its value has shape {:?}; in burn a loss is a scalar: use reduction \"mean\" or \"sum\"", plan.value_shape());
            return Err(segloss::Error::Config { loss: self.inner.kind.name(), message }.into());
        }
        let plan = Arc::new(plan);
        plans.truncate(PLANS_KEPT - 1);
        plans.insert(0, (key, plan.clone()));
        Ok(plan)
    }
}
