//! The test suite, one binary: golden cases, GPU against the float64
//! reference, finite differences, primitives, validation, shaders.
//!
//! GPU tests need an adapter (lavapipe on machines without a GPU): without
//! one they fail with the reason, they never skip.

mod common;

mod boundary;
mod compound;
mod distance;
mod golden;
mod pointwise;
mod reduce;
mod shaders;
mod validation;
