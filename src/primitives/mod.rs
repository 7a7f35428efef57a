//! GPU building blocks that several losses share, each with its own tests.

pub mod distance;
pub mod reduce;
