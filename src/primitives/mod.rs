//! GPU building blocks that several losses share, each with its own tests.

pub mod convert;
pub mod distance;
pub mod reduce;
pub mod scan;
pub mod sort;
pub mod stencil;
