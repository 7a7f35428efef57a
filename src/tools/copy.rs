//! The copy kernel `segloss bench` measures losses against: a plain
//! storage-to-storage copy (`shaders/copy.wgsl`) moving the same bytes as a
//! loss, so that a loss's time reads as a multiple of memory speed.

use crate::error::Result;
use crate::gpu::context::GpuContext;

/// The copy kernel's pipeline: binding 0 is read, binding 1 written, 16
/// bytes per invocation, 256 invocations per workgroup.
pub fn copy_pipeline(ctx: &GpuContext) -> Result<wgpu::ComputePipeline> {
    Ok(ctx.kernel("copy.wgsl", "copy", &[])?.pipeline.clone())
}
