//! Tooling on top of the library, for the `segloss` command, the benches and
//! the tests: sample inputs that look like segmentation data, the jump-flood
//! accuracy measurement, the copy kernel losses are timed against, and a
//! loss recorded once as an engine records it.
//!
//! The top layer: it uses the losses, the primitives and the GPU context;
//! nothing below it (`gpu`, `primitives`, `losses`, `reference`) uses it.

pub mod copy;
pub mod engine;
pub mod jump_flood;
pub mod samples;
