//! segloss's losses inside [burn](https://burn.dev) on its wgpu runtime.
//!
//! A [`BurnLoss`] is a segloss loss (or a compound of them) that takes burn
//! tensors and returns a burn tensor: `forward(logits, target) -> Tensor<1>`.
//! Under `Autodiff` it is one node of burn's graph whose backward is
//! segloss's analytic gradient, computed in the forward pass by the same
//! kernels as the value: no autodiff chain of small ops, no host round trip.
//!
//! Nothing is copied. segloss runs on burn's own wgpu device and queue
//! ([`SeglossBurn`] shares them), reads each tensor where burn's memory pool
//! placed it (many tensors share one pooled buffer: segloss binds them by
//! range), and writes the value and the gradient into tensors allocated from
//! burn's pool. In a training loop's steady state, segloss creates no buffer
//! and no bind group: plans are made once per input shape, and bind groups
//! are kept for the placements burn's pool reuses.
//!
//! ```no_run
//! use burn::tensor::{Distribution, Int, Tensor};
//! use segloss_burn::SeglossBurn;
//!
//! let engine = SeglossBurn::init()?; // burn's wgpu device, shared with segloss
//! let device = engine.device().clone().autodiff();
//! let loss = engine.loss_json(r#"{"loss": "dice", "params": {}}"#)?;
//!
//! let logits = Tensor::<4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device).require_grad();
//! let target = Tensor::<3, Int>::zeros([2, 64, 64], &device);
//! let value = loss.forward(logits.clone(), target)?;
//! let grads = value.backward();
//! let grad = logits.grad(&grads).expect("logits take part in the loss");
//! # Ok::<(), segloss_burn::Error>(())
//! ```
//!
//! Data-parallel training: [`SeglossBurn::sharded_loss`] gives a
//! [`ShardedBurnLoss`] per device, whose statistics the engine sums with
//! burn's `Tensor::all_reduce` before each device's forward gives the
//! global batch's loss (`examples/data_parallel.rs`).
//!
//! What it takes: float logits (f32, f16 or bf16), and targets as
//! segloss's loss expects them, class indices ([`Tensor<D, Int>`](burn::tensor::Tensor):
//! i32, i64, u8 or u16) or dense targets of the logits' shape (f32, f16 or
//! bf16); optional weights and distance maps ([`Extras`]). The gradient is
//! in the logits' type. Targets, weights and maps are constants of the
//! loss: no gradient flows into them. The value is an f32 scalar (reduction
//! `mean` or `sum`). Any other runtime of burn's `Cube` backend (CUDA,
//! ROCm, the CPU), another backend, or another dtype (f64) is an [`Error`]
//! naming the tensor.

mod backward;
mod engine;
mod error;
mod loss;
mod primitive;
mod sharded;
mod zero_copy;

pub use engine::SeglossBurn;
pub use error::{Error, Result};
pub use loss::{BurnLoss, Extras, Target};
pub use sharded::ShardedBurnLoss;

/// The segloss crate this one is built on: configurations, schedules (`alpha_step`), references.
pub use segloss;
