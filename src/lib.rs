//! # segloss
//!
//! Segmentation losses as WGSL compute shaders through wgpu (Vulkan, Metal,
//! DX12): each returns its value **and its analytic gradient** with respect
//! to the logits, in as few passes over memory as the math allows, with a
//! float64 CPU reference for every loss. SPEC.md defines the losses.
//!
//! Two ways in:
//! - **Engines** make a [`LossPlan`] once per input shape and record it
//!   into their own command encoder, on their own buffers, writing or
//!   accumulating (with a scale) into their gradient buffer.
//! - **Everyone else** uses [`Runner`] on host data:
//!
//! ```no_run
//! use segloss::{GpuContext, HostInputs, HostTensor, LossConfig, Runner};
//! let runner = Runner::new(GpuContext::new()?);
//! let logits = HostTensor::f32(&[1, 1, 2, 2], vec![2.0, -1.0, 0.5, 0.0])?;
//! let target = HostTensor::f32(&[1, 1, 2, 2], vec![1.0, 0.0, 1.0, 0.0])?;
//! let bce = LossConfig::from_json(r#"{"loss": "bce", "params": {"pos_weight": 3.0}}"#)?;
//! let out = runner.compute(&bce, HostInputs { logits: &logits, target: &target, weight: None, distance: None })?;
//! assert_eq!(out.grad.len(), 4);
//! # Ok::<(), segloss::Error>(())
//! ```

pub mod error;
pub mod golden;
pub mod gpu;
pub mod losses;
pub mod primitives;
pub mod reference;
pub mod runner;
#[cfg(feature = "tools")]
pub mod tools;

// What an engine or a user needs, at the crate root.
pub use error::{Error, Result};
pub use gpu::context::{AdapterSummary, ContextOptions, GpuContext};
pub use gpu::pool::PooledBuffer;
pub use gpu::tensor::{DType, GpuTensor, HostData, HostTensor};
pub use losses::compound::{ALPHA_START, CompoundConfig, CompoundPlan, CompoundTerm, alpha_step, steal_weight};
pub use losses::{HostInputs, InputDTypes, InputShapes, WidenedInputs, LossConfig, LossInputs, LossOutputs, LossPlan, PlanOptions, Reduction, STATUS_NON_FINITE, ShardedPlan, TargetKind};
pub use primitives::distance::{DistanceField, DistanceMode, DistancePlan};
pub use reference::Reference;
pub use runner::{LossResult, Runner};

/// The README's Rust snippets, compiled (and run, unless marked `no_run`)
/// as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeSnippets;
