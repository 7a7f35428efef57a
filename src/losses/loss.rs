//! The one shape every loss has: the [`Loss`] trait each loss's host file
//! implements, and its object-safe face [`AnyLoss`], through which
//! [`super::LossConfig`] dispatches once.

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::losses::convert::InPlace;
use crate::losses::plan::{LossPlan, PlanOptions};
use crate::losses::shards::Sharding;
use crate::losses::{HostInputs, InputShapes, TargetKind};

/// What a loss's shape check learns: its typed view of the inputs (which
/// the plan then uses instead of deriving it again) and its value's shape.
pub(crate) struct Checked<L> {
    pub layout: L,
    pub value_shape: Vec<usize>,
}

/// A loss: its configuration type implements this in `losses/<name>.rs`.
pub(crate) trait Loss {
    /// The loss's own view of its input shapes (`[N, C, S]`, boxes, masks, …).
    type Layout;

    /// SPEC.md's name.
    const NAME: &'static str;

    /// Checks the parameters on their own (ranges, exclusive options).
    fn validate(&self) -> Result<()>;

    /// Checks the input shapes against the parameters.
    fn check_shapes(&self, shapes: &InputShapes) -> Result<Checked<Self::Layout>>;

    /// Checks what only the data shows (label and target ranges), on the host.
    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()>;

    /// Plans the kernels for inputs of `shapes`, whose check gave `checked`.
    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, checked: Checked<Self::Layout>, options: PlanOptions) -> Result<LossPlan>;

    /// What the target tensor holds.
    fn target_kind(&self) -> TargetKind;

    /// How the loss divides across data-parallel devices (`losses/shards.rs`).
    fn sharding(&self) -> Sharding;

    /// What golden cases and errors call the logits and target inputs.
    fn input_names(&self) -> [&'static str; 2] {
        ["logits", "target"]
    }

    /// What a non-zero status word's low bits mean (bit 31 is
    /// [`STATUS_NON_FINITE`](crate::losses::plan::STATUS_NON_FINITE) for every loss).
    fn status_rule(&self) -> &'static str {
        "a class index outside [0, C) that is not the ignore value (bit 0)"
    }

    /// Whether the loss takes precomputed distance maps of the target.
    fn takes_distance(&self) -> bool {
        false
    }

    /// Which f16 and bf16 tensors its kernels read and write in place; the
    /// others are converted around them (`losses/convert.rs`). The
    /// memory-bound losses take theirs in place: converting would move more
    /// bytes than f32 does.
    fn in_place(&self) -> InPlace {
        InPlace::default()
    }
}

/// [`Loss`] without its layout type, so that one `match` can hand out any loss.
pub(crate) trait AnyLoss {
    fn name(&self) -> &'static str;
    fn validate(&self) -> Result<()>;
    fn value_shape(&self, shapes: &InputShapes) -> Result<Vec<usize>>;
    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()>;
    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<LossPlan>;
    fn target_kind(&self) -> TargetKind;
    fn sharding(&self) -> Sharding;
    fn input_names(&self) -> [&'static str; 2];
    fn status_rule(&self) -> &'static str;
    fn takes_distance(&self) -> bool;
    fn in_place(&self) -> InPlace;
}

impl<T: Loss> AnyLoss for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn validate(&self) -> Result<()> {
        Loss::validate(self)
    }

    fn value_shape(&self, shapes: &InputShapes) -> Result<Vec<usize>> {
        Ok(self.check_shapes(shapes)?.value_shape)
    }

    fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        Loss::check_values(self, inputs)
    }

    fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<LossPlan> {
        Loss::validate(self)?;
        let checked = self.check_shapes(shapes)?;
        Loss::plan(self, ctx, shapes, checked, options)
    }

    fn target_kind(&self) -> TargetKind {
        Loss::target_kind(self)
    }

    fn input_names(&self) -> [&'static str; 2] {
        Loss::input_names(self)
    }

    fn sharding(&self) -> Sharding {
        Loss::sharding(self)
    }

    fn status_rule(&self) -> &'static str {
        Loss::status_rule(self)
    }

    fn takes_distance(&self) -> bool {
        Loss::takes_distance(self)
    }

    fn in_place(&self) -> InPlace {
        Loss::in_place(self)
    }
}
