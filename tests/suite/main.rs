//! The test suite, one binary: golden cases, GPU against the float64
//! reference, finite differences, primitives, validation, shaders.
//!
//! GPU tests need an adapter (lavapipe on machines without a GPU): without
//! one they fail with the reason, they never skip.

mod common;

mod arena;
mod box_iou;
mod cl_dice;
mod boundary;
mod compound;
mod convert;
mod dtypes;
mod distance;
mod engine;
mod golden;
mod hausdorff_dt;
mod hausdorff_er;
mod limits;
mod lovasz;
mod overlap;
mod mask_giou;
mod mcc;
mod non_finite;
mod pointwise;
mod reduce;
mod reference_golden;
mod scan;
mod shards;
mod shaders;
mod sort;
mod stencil;
mod unified_focal;
mod validation;
