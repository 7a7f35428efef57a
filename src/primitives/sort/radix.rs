//! The segmented LSD radix sort (`shaders/lib/radix_sort.wgsl`): four
//! stable passes of 8 bits over the order keys, from the caller's buffers
//! into scratch ones and back. Each pass is an upsweep (every tile's digit
//! histogram into one table, laid out `[segment][digit][tile]`), one
//! inclusive scan of that table (`primitives::scan`), and a downsweep that
//! ranks every tile in workgroup memory and scatters it to where the scan
//! says its digits go. All segments share every dispatch.

use bytemuck::{Pod, Zeroable};

use super::{Ranking, SORT_TILE};
use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::PooledBuffer;
use crate::gpu::program::{Binding, Step};
use crate::primitives::scan::{ScanOperand, record_scan};

/// Digits per pass: 8-bit digits.
const DIGITS: u64 = 256;
/// Passes over 32-bit keys.
const PASSES: u32 = 4;

// `Params.flags` in `lib/radix_sort.wgsl`.
const KEYS_ARE_FLOATS: u32 = 1;
const WRITE_FLOATS: u32 = 2;
const DYNAMIC_LENGTHS: u32 = 4;
const INDEX_VALUES: u32 = 8;

/// `struct Params` in `lib/radix_sort.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    tiles: u32,
    segments: u32,
    shift: u32,
    flags: u32,
}

/// `struct Segment` in `lib/radix_sort.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Segment {
    offset: u32,
    len: u32,
    tile0: u32,
    tiles: u32,
    table0: u32,
    _pad: [u32; 3],
}

/// What one radix sort sorts.
pub(super) struct RadixJob<'a> {
    /// `(offset, len)` of each segment in the keys and values.
    pub segments: &'a [(u64, u64)],
    /// Elements in the keys and values, radix sorted or not.
    pub total: u64,
    pub index_values: bool,
    /// `Subgroup` or `Workgroup` (resolved).
    pub ranking: Ranking,
    /// Lengths the GPU writes, one u32 per segment of `segments`.
    pub dynamic: Option<Binding>,
}

/// Appends the four passes that sort `job.segments` of `keys` and
/// `values` in place. Returns the scratch buffers the plan must keep.
pub(super) fn record_radix_sort(ctx: &GpuContext, steps: &mut Vec<Step>, keys: Binding, values: Binding, job: RadixJob<'_>) -> Result<Vec<PooledBuffer>> {
    let mut table = Vec::with_capacity(job.segments.len());
    let (mut tiles, mut entries) = (0u64, 0u64);
    for &(offset, len) in job.segments {
        let seg_tiles = len.div_ceil(SORT_TILE);
        table.push(Segment { offset: offset as u32, len: len as u32, tile0: tiles as u32, tiles: seg_tiles as u32, table0: entries as u32, _pad: [0; 3] });
        tiles += seg_tiles;
        entries += DIGITS * seg_tiles;
    }
    if tiles > u32::MAX as u64 {
        return Err(Error::limit("sort", format!("{tiles} radix tiles exceed 2^32 workgroups")));
    }
    let storage = wgpu::BufferUsages::STORAGE;
    let mut scratch = Vec::new();
    let mut lend = |label: &str, bytes: u64| -> Result<wgpu::Buffer> {
        let pooled = ctx.scratch(label, bytes, storage)?;
        let buffer = pooled.buffer().clone();
        scratch.push(pooled);
        Ok(buffer)
    };
    let other_keys = Binding::Owned(lend("radix keys", job.total * 4)?);
    let other_values = Binding::Owned(lend("radix values", job.total * 4)?);
    let counts = Binding::Owned(lend("radix digit counts", entries * 4)?);
    let offsets = Binding::Owned(lend("radix digit offsets", entries * 4)?);
    let segments = Binding::Owned(ctx.create_buffer_with("radix segments", bytemuck::cast_slice(&table), storage));
    let lengths = job.dynamic.clone().unwrap_or_else(|| Binding::Owned(ctx.create_buffer_with("radix no lengths", &[0u8; 16], storage)));
    let upsweep = ctx.kernel("radix_sort.wgsl", "upsweep", &[])?;
    let downsweep = match job.ranking {
        Ranking::Subgroup => ctx.kernel("radix_sort_subgroup.wgsl", "downsweep", &[])?,
        _ => ctx.kernel("radix_sort.wgsl", "downsweep", &[])?,
    };
    for pass in 0..PASSES {
        // Even passes read the caller's buffers, odd ones the scratch: the fourth writes back.
        let (keys_in, values_in, keys_out, values_out) = if pass % 2 == 0 {
            (&keys, &values, &other_keys, &other_values)
        } else {
            (&other_keys, &other_values, &keys, &values)
        };
        let mut flags = if job.dynamic.is_some() { DYNAMIC_LENGTHS } else { 0 };
        if pass == 0 {
            flags |= KEYS_ARE_FLOATS | if job.index_values { INDEX_VALUES } else { 0 };
        }
        if pass == PASSES - 1 {
            flags |= WRITE_FLOATS;
        }
        let params = Params { tiles: tiles as u32, segments: table.len() as u32, shift: 8 * pass, flags };
        let params = Binding::Owned(ctx.create_buffer_with("radix params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM));
        steps.push(Step::new(
            &upsweep,
            tiles as u32,
            vec![
                ("params", params.clone()),
                ("segments", segments.clone()),
                ("lengths", lengths.clone()),
                ("keys_in", keys_in.clone()),
                ("counts", counts.clone()),
            ],
        )?);
        scratch.extend(record_scan(ctx, steps, counts.clone(), offsets.clone(), None, (1, entries), ScanOperand::Value)?);
        steps.push(Step::new(
            &downsweep,
            tiles as u32,
            vec![
                ("params", params),
                ("segments", segments.clone()),
                ("lengths", lengths.clone()),
                ("keys_in", keys_in.clone()),
                ("values_in", values_in.clone()),
                ("keys_out", keys_out.clone()),
                ("values_out", values_out.clone()),
                ("counts", counts.clone()),
                ("offsets", offsets.clone()),
            ],
        )?);
    }
    Ok(scratch)
}
