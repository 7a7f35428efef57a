//! Weighted sums of losses, `L = Σ_i w_i·L_i`, recorded into one encoder
//! with every term's gradient accumulated into one buffer: the first term
//! writes value and gradient (scaled by its weight), the others add to them.
//! Nothing here is specific to one loss: `cross_entropy + α·boundary`,
//! `dice + bce`, any terms whose inputs agree.
//!
//! The boundary loss paper's schedules move the weights between epochs:
//! [`alpha_step`] (α += 0.01, from [`ALPHA_START`]) and [`steal_weight`]
//! (`[a, b] → [max(0.1, a − 0.01), b + 0.01]`); [`CompoundPlan::set_weights`]
//! applies new weights without re-planning.
//!
//! ```no_run
//! use segloss::losses::compound::{CompoundConfig, alpha_step, ALPHA_START};
//! use segloss::{GpuContext, InputShapes, LossConfig, PlanOptions};
//! let ctx = GpuContext::new()?;
//! let config = CompoundConfig::new(vec![
//!     (1.0, LossConfig::from_json(r#"{"loss": "cross_entropy"}"#)?),
//!     (ALPHA_START, LossConfig::from_json(r#"{"loss": "boundary"}"#)?),
//! ])?;
//! let mut plan = config.plan(&ctx, &InputShapes::new(&[8, 19, 256, 256], &[8, 256, 256]), PlanOptions::default())?;
//! let mut alpha = ALPHA_START;
//! for _epoch in 0..3 {
//!     // … record plan.record(…) for every batch of the epoch …
//!     alpha = alpha_step(alpha);
//!     plan.set_weights(&[1.0, alpha])?;
//! }
//! # Ok::<(), segloss::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::losses::convert::{self, Conversion};
use crate::losses::{HostInputs, InputShapes, LossConfig};
use crate::losses::plan::{LossInputs, LossOutputs, LossPlan, PlanOptions};

/// The boundary loss paper's starting weight α of the boundary term.
pub const ALPHA_START: f64 = 0.01;

/// The paper's schedule for `L_R + α·L_B`: α grows by 0.01 each epoch.
pub fn alpha_step(alpha: f64) -> f64 {
    alpha + 0.01
}

/// The two-weight form of the schedule (the reference code's `StealWeight`):
/// each epoch the regional term gives 0.01 of its weight to the boundary
/// term, down to a floor of 0.1: `[a, b] → [max(0.1, a − 0.01), b + 0.01]`.
pub fn steal_weight([a, b]: [f64; 2]) -> [f64; 2] {
    [(a - 0.01).max(0.1), b + 0.01]
}

/// One term of a compound loss: `{"weight": 0.01, "loss": "boundary", "params": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawTerm")]
pub struct CompoundTerm {
    /// The term's weight w_i.
    pub weight: f64,
    /// The loss, `{"loss": NAME, "params": {…}}`.
    #[serde(flatten)]
    pub loss: LossConfig,
}

/// A term as written, before its loss is parsed and validated.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerm {
    weight: f64,
    loss: String,
    #[serde(default)]
    params: Option<serde_json::Value>,
}

impl CompoundTerm {
    /// How term `i` of a compound planned with `options` writes: scaled by
    /// its weight, the first writing (unless `options` accumulate, or
    /// `accumulate_grad` says the gradient is added) and the rest adding.
    pub(crate) fn options(&self, i: usize, options: PlanOptions, accumulate_grad: bool) -> PlanOptions {
        PlanOptions {
            scale: options.scale * self.weight as f32,
            accumulate_value: options.accumulate_value || i > 0,
            accumulate_grad: accumulate_grad || i > 0,
            grad: options.grad,
        }
    }
}

impl TryFrom<RawTerm> for CompoundTerm {
    type Error = Error;
    fn try_from(raw: RawTerm) -> Result<Self> {
        let params = raw.params.unwrap_or_else(|| serde_json::json!({}));
        Ok(CompoundTerm { weight: raw.weight, loss: LossConfig::from_parts(&raw.loss, params)? })
    }
}

/// A weighted sum of losses: deserializes from `{"terms": [{"weight": 1, "loss": "dice", "params": {…}}, …]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompoundConfig {
    /// The terms, recorded in this order.
    pub terms: Vec<CompoundTerm>,
}

fn check_weight(i: usize, w: f64) -> Result<()> {
    if !w.is_finite() || w.abs() > f32::MAX as f64 {
        return Err(Error::config("compound", format!("term {i} has weight {w}; weights must be finite f32 numbers")));
    }
    Ok(())
}

impl CompoundConfig {
    /// Host inputs as term `term` takes them: precomputed distance maps go
    /// only to the terms that take them (as [`CompoundPlan::record`] does),
    /// and are an error when no term does.
    pub fn term_inputs<'a>(&self, term: &CompoundTerm, inputs: &HostInputs<'a>) -> Result<HostInputs<'a>> {
        if inputs.distance.is_some() && !self.terms.iter().any(|t| t.loss.takes_distance()) {
            return Err(Error::input("compound", "distance maps were given, but no term of this compound loss takes them"));
        }
        Ok(if term.loss.takes_distance() { *inputs } else { HostInputs { distance: None, ..*inputs } })
    }

    /// Checks every term's values on the host ([`LossConfig::check_values`]).
    pub fn check_values(&self, inputs: &HostInputs<'_>) -> Result<()> {
        self.terms.iter().try_for_each(|t| t.loss.check_values(&self.term_inputs(t, inputs)?))
    }

    /// A compound of `(weight, loss)` terms, validated.
    pub fn new(terms: Vec<(f64, LossConfig)>) -> Result<Self> {
        let config = CompoundConfig { terms: terms.into_iter().map(|(weight, loss)| CompoundTerm { weight, loss }).collect() };
        config.validate()?;
        Ok(config)
    }

    /// Checks there is a term, every weight is finite and every term valid.
    pub fn validate(&self) -> Result<()> {
        if self.terms.is_empty() {
            return Err(Error::config("compound", "a compound loss needs at least one term"));
        }
        for (i, t) in self.terms.iter().enumerate() {
            check_weight(i, t.weight)?;
            t.loss.validate()?;
        }
        Ok(())
    }

    /// Checks every term against the shapes; all must return values of one shape.
    pub fn check_shapes(&self, shapes: &InputShapes) -> Result<Vec<usize>> {
        self.validate()?;
        let mut value_shape: Option<(Vec<usize>, &str)> = None;
        for t in &self.terms {
            let shape = t.loss.check_shapes(shapes)?;
            match &value_shape {
                Some((first, name)) if *first != shape => {
                    return Err(Error::config(
                        "compound",
                        format!("{} returns a value of shape {shape:?} but {name} one of {first:?}; terms must agree (use reduction mean or sum)", t.loss.name()),
                    ));
                }
                Some(_) => {}
                None => value_shape = Some((shape, t.loss.name())),
            }
        }
        Ok(value_shape.expect("at least one term").0)
    }

    /// Plans every term: term i scaled by `options.scale · w_i`, the first
    /// writing (unless `options` accumulate) and the rest accumulating.
    pub fn plan(&self, ctx: &GpuContext, shapes: &InputShapes, options: PlanOptions) -> Result<CompoundPlan> {
        let value_shape = self.check_shapes(shapes)?;
        // The terms run on the kernels' types; one conversion around them
        // all, so converted inputs are widened once and the gradient
        // rounded once, after the terms have added up in f32.
        let (kernels_shapes, kernels_options) = convert::kernels_request(shapes, options, convert::InPlace::default());
        let mut terms = Vec::with_capacity(self.terms.len());
        for (i, t) in self.terms.iter().enumerate() {
            terms.push(t.loss.plan(ctx, &kernels_shapes, t.options(i, options, kernels_options.accumulate_grad))?);
        }
        let conversion = Conversion::new(ctx, "compound", shapes, &kernels_shapes.dtypes, options, terms[0].target_dtype())?;
        Ok(CompoundPlan { terms, weights: self.terms.iter().map(|t| t.weight).collect(), scale: options.scale, value_shape, conversion })
    }
}

/// A compound loss planned for one set of shapes: one [`LossPlan`] per term,
/// all recorded into the caller's encoder, accumulating into one value and
/// one gradient.
pub struct CompoundPlan {
    terms: Vec<LossPlan>,
    weights: Vec<f64>,
    scale: f32,
    value_shape: Vec<usize>,
    /// The element-type conversions around all the terms.
    conversion: Option<Conversion>,
}

impl CompoundPlan {
    /// Records every term, in order, into `encoder`: `outputs.value` gets
    /// `scale·Σ w_i·L_i` and `outputs.grad` its gradient.
    ///
    /// Precomputed distance maps in `inputs.distance` go to the terms that
    /// take them (`boundary`, `hausdorff_dt`), and only to those: `dice +
    /// α·boundary` with maps from the data loader, as the boundary loss paper
    /// trains. Terms that take maps of different kinds cannot share them.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, inputs: LossInputs<'_>, outputs: LossOutputs<'_>) -> Result<()> {
        if inputs.distance.is_some() && !self.terms.iter().any(LossPlan::takes_distance) {
            return Err(Error::input("compound", "distance maps were given, but no term of this compound loss takes them"));
        }
        // boundary's maps are signed, hausdorff_dt's two-sided: one tensor cannot serve both.
        let takers: Vec<&str> = self.terms.iter().filter(|t| t.takes_distance()).map(|t| t.program.name).collect();
        if inputs.distance.is_some() && takers.windows(2).any(|w| w[0] != w[1]) {
            return Err(Error::input("compound", format!(
                "distance maps were given, but the terms {takers:?} take maps of different kinds (boundary's signed, \
                 hausdorff_dt's two-sided): plan and record those terms apart"
            )));
        }
        let Some(c) = &self.conversion else { return self.record_terms(encoder, inputs, outputs) };
        let outputs = LossOutputs { grad: if self.terms[0].options().grad { outputs.grad } else { None }, ..outputs };
        let (wide, wide_grad) = c.widen(encoder, inputs, outputs)?;
        self.record_terms(encoder, wide, LossOutputs { value: outputs.value, grad: wide_grad })?;
        c.narrow(encoder, outputs.grad)
    }

    fn record_terms(&self, encoder: &mut wgpu::CommandEncoder, inputs: LossInputs<'_>, outputs: LossOutputs<'_>) -> Result<()> {
        for term in &self.terms {
            let term_inputs = if term.takes_distance() { inputs } else { LossInputs { distance: None, ..inputs } };
            term.record(encoder, term_inputs, outputs)?;
        }
        Ok(())
    }

    /// The weights in use.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Sets every term's weight from the next submission on (a schedule's step).
    pub fn set_weights(&mut self, weights: &[f64]) -> Result<()> {
        if weights.len() != self.terms.len() {
            return Err(Error::config("compound", format!("{} weights given for {} terms", weights.len(), self.terms.len())));
        }
        for (i, &w) in weights.iter().enumerate() {
            check_weight(i, w)?;
        }
        for ((term, w), &new) in self.terms.iter_mut().zip(&mut self.weights).zip(weights) {
            *w = new;
            term.set_scale(self.scale * new as f32);
        }
        Ok(())
    }

    /// The shape of the value tensor.
    pub fn value_shape(&self) -> &[usize] {
        &self.value_shape
    }

    /// The terms' plans (for their status buffers).
    pub fn terms(&self) -> &[LossPlan] {
        &self.terms
    }
}
