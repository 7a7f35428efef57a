//! From burn's tensors to cubecl's primitives and back, on whichever of
//! burn's contexts the logits live in: plain, or autodiff with or without
//! gradient checkpointing.

use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, CheckpointStrategy, NoCheckpointing};
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::wgpu::CubeTensor;
use burn::backend::{Autodiff, Backend, Cube, DispatchKindConversion, DispatchTensor};
use burn::tensor::{GradientCheckpointingStrategy, Int, Tensor};

use crate::backward::LossBackward;
use crate::error::{Error, Result};
use crate::zero_copy::Outputs;

/// A target, flat: class indices or dense values.
pub(crate) enum FlatTarget {
    Classes(Tensor<1, Int>),
    Dense(Tensor<1>),
}

/// One evaluation's tensors, each reshaped to one dimension (a view when
/// the tensor is dense, an ordered copy when it is strided).
pub(crate) struct Flat {
    pub logits: Tensor<1>,
    pub target: FlatTarget,
    pub weight: Option<Tensor<1>>,
    pub distance: Option<Tensor<1>>,
}

/// The same tensors as cubecl primitives, constants of the loss but the logits.
pub(crate) struct Primitives {
    pub logits: CubeTensor,
    pub target: CubeTensor,
    pub weight: Option<CubeTensor>,
    pub distance: Option<CubeTensor>,
}

/// Runs `evaluate` on the primitives (with `true` when burn will ask for
/// the gradient) and returns its value as a burn tensor: under autodiff, a
/// node whose backward is the gradient `evaluate` wrote.
pub(crate) fn run(flat: Flat, evaluate: impl FnOnce(Primitives, bool) -> Result<Outputs>) -> Result<Tensor<1>> {
    #[allow(unreachable_patterns)]
    match flat.logits.device().gradient_checkpointing_strategy() {
        None => run_plain(flat, evaluate),
        Some(GradientCheckpointingStrategy::Disabled) => run_autodiff::<NoCheckpointing>(flat, evaluate),
        Some(GradientCheckpointingStrategy::Balanced) => run_autodiff::<BalancedCheckpointing>(flat, evaluate),
        Some(other) => Err(Error::Runtime { input: "logits", found: format!("an autodiff device with checkpointing {other:?}") }),
    }
}

fn mismatch(input: &'static str, e: impl std::fmt::Debug) -> Error {
    Error::Runtime { input, found: format!("another backend than burn's Cube ({e:?})") }
}

fn float<B: Backend>(t: Tensor<1>, input: &'static str) -> Result<FloatTensor<B>>
where
    DispatchTensor: DispatchKindConversion<B>,
{
    t.try_into_primitive::<B>().map_err(|e| mismatch(input, e))
}

fn int<B: Backend>(t: Tensor<1, Int>, input: &'static str) -> Result<IntTensor<B>>
where
    DispatchTensor: DispatchKindConversion<B>,
{
    t.try_into_primitive::<B>().map_err(|e| mismatch(input, e))
}

fn run_plain(flat: Flat, evaluate: impl FnOnce(Primitives, bool) -> Result<Outputs>) -> Result<Tensor<1>> {
    let outputs = evaluate(plain(flat)?, false)?;
    Ok(Tensor::<1>::from_primitive::<Cube>(outputs.value))
}

/// The tensors as cubecl primitives outside any autodiff graph (what a
/// loss's statistics read: they carry no gradient).
pub(crate) fn plain(flat: Flat) -> Result<Primitives> {
    Ok(Primitives {
        logits: plain_float(flat.logits, "logits")?,
        target: match flat.target {
            FlatTarget::Classes(t) => int::<Cube>(t.without_autodiff(), "target")?,
            FlatTarget::Dense(t) => plain_float(t, "target")?,
        },
        weight: flat.weight.map(|t| plain_float(t, "weight")).transpose()?,
        distance: flat.distance.map(|t| plain_float(t, "distance")).transpose()?,
    })
}

/// A float tensor as a cubecl primitive outside any autodiff graph.
pub(crate) fn plain_float(t: Tensor<1>, input: &'static str) -> Result<CubeTensor> {
    float::<Cube>(t.without_autodiff(), input)
}

fn run_autodiff<C: CheckpointStrategy>(flat: Flat, evaluate: impl FnOnce(Primitives, bool) -> Result<Outputs>) -> Result<Tensor<1>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Cube, C>>,
{
    type Ad<C> = Autodiff<Cube, C>;
    let logits = float::<Ad<C>>(flat.logits, "logits")?;
    // Targets, weights and maps are constants: their graph nodes are left out.
    let constants = |t: Tensor<1>, input| float::<Ad<C>>(t, input).map(|t| t.into_primitive());
    let target = match flat.target {
        FlatTarget::Classes(t) => int::<Ad<C>>(t, "target")?,
        FlatTarget::Dense(t) => constants(t, "target")?,
    };
    let weight = flat.weight.map(|t| constants(t, "weight")).transpose()?;
    let distance = flat.distance.map(|t| constants(t, "distance")).transpose()?;
    match LossBackward.prepare::<C>([logits.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let primitives = Primitives { logits: logits.primitive().clone(), target, weight, distance };
            let outputs = evaluate(primitives, true)?;
            let grad = outputs.grad.expect("a gradient was asked for");
            Ok(Tensor::<1>::from_primitive::<Ad<C>>(prep.finish(grad, outputs.value)))
        }
        OpsKind::UnTracked(prep) => {
            let primitives = Primitives { logits: logits.into_primitive(), target, weight, distance };
            let outputs = evaluate(primitives, false)?;
            Ok(Tensor::<1>::from_primitive::<Ad<C>>(prep.finish(outputs.value)))
        }
    }
}
