//! The bitonic network for segments of at most one tile (`shaders/sort.wgsl`):
//! one workgroup per segment, one dispatch for all of them.

use bytemuck::{Pod, Zeroable};

use super::SORT_TILE;
use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::program::{Binding, Step};

/// `struct Segment` in `sort.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Segment {
    offset: u32,
    len: u32,
    log_size: u32,
    _pad: u32,
}

/// `struct Params` in `sort.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    segments: u32,
    index_values: u32,
    _pad: [u32; 2],
}

/// Appends the dispatch that sorts each `(offset, len)` segment (`0 < len ≤ SORT_TILE`) in place.
pub(super) fn record_tile_sort(
    ctx: &GpuContext,
    steps: &mut Vec<Step>,
    keys: Binding,
    values: Binding,
    segments: &[(u64, u64)],
    index_values: bool,
) -> Result<()> {
    debug_assert!(segments.iter().all(|&(_, len)| len > 0 && len <= SORT_TILE));
    let table: Vec<Segment> = segments
        .iter()
        .map(|&(offset, len)| Segment { offset: offset as u32, len: len as u32, log_size: len.next_power_of_two().trailing_zeros(), _pad: 0 })
        .collect();
    let params = Params { segments: table.len() as u32, index_values: index_values as u32, _pad: [0; 2] };
    let uniform = ctx.create_buffer_with("sort params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM);
    let table = ctx.create_buffer_with("sort segments", bytemuck::cast_slice(&table), wgpu::BufferUsages::STORAGE);
    steps.push(Step::new(
        &ctx.kernel("sort.wgsl", "sort_tiles", &[])?,
        params.segments,
        vec![("params", Binding::Owned(uniform)), ("segments", Binding::Owned(table)), ("keys", keys), ("values", values)],
    )?);
    Ok(())
}
