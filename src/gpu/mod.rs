//! GPU plumbing: the context, typed tensors, shaders and pipelines, the
//! scratch pool, and the program a plan records.

pub(crate) mod chunks;
pub(crate) mod layout;
pub mod context;
pub(crate) mod pipeline;
pub mod pool;
pub(crate) mod program;
pub mod shaders;
pub mod tensor;
#[cfg(test)]
mod translation;
