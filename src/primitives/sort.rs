//! Key-value sort on the GPU: many independent segments at once, each
//! ordered by f32 key **descending**, equal keys by value ascending. When the
//! values are the elements' positions (what [`SortPlan::argsort`] fills in),
//! equal keys keep their original order, so the result is fully determined.
//!
//! A bitonic network (`shaders/sort.wgsl`): one dispatch sorts every
//! 2,048-element tile in workgroup memory, then each merge of larger blocks
//! takes one dispatch per six comparator bits above the tile (the steps are
//! grouped so a workgroup runs several of them on one tile-sized set of
//! positions) and one for the ten bits inside it. Segments of any length are
//! padded to a power of two by positions that are never stored; segments of
//! different lengths share every dispatch. No atomics, no spinning, and each
//! invocation runs a few hundred loop iterations whatever the sizes.
//!
//! `-0.0` comes back as `+0.0` (they compare equal); NaNs sort first when
//! positive and last when negative, in bit order.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::program::{Binding, Program, SlotSpec, Step};
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::{DType, GpuTensor, HostTensor};

/// Positions a workgroup holds (`TILE` in `sort.wgsl`).
pub const SORT_TILE: u64 = 2048;
const LOG_TILE: u32 = 11;
/// Comparator bits one pass above the tile covers: the rest of a tile's
/// eleven bits are a contiguous run of 32 elements, so accesses stay coalesced.
const PASS_BITS: u32 = 6;
/// Longest segment: positions and the network's size stay below 2^31.
pub const MAX_SEGMENT: u64 = 1 << 30;

/// `struct Segment` in `sort.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Segment {
    offset: u32,
    len: u32,
    tile0: u32,
    log_size: u32,
}

/// `struct Params` in `sort.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    tiles: u32,
    segments: u32,
    merge: u32,
    hi_bit: u32,
    lo_bit: u32,
    index_values: u32,
    _pad: [u32; 2],
}

/// The dispatches of one sort: which merge, and which comparator bits.
/// `None` is the tile sort. Exposed for tests that count passes.
pub(crate) fn schedule(max_log: u32) -> Vec<Option<(u32, u32, u32)>> {
    let mut passes = vec![None];
    for merge in LOG_TILE + 1..=max_log {
        let mut hi = merge - 1;
        while hi >= LOG_TILE {
            let lo = LOG_TILE.max(hi + 1 - PASS_BITS);
            passes.push(Some((merge, hi, lo)));
            hi = lo - 1;
        }
        passes.push(Some((merge, LOG_TILE - 1, 0)));
    }
    passes
}

fn log_size(len: u64) -> u32 {
    len.max(1).next_power_of_two().trailing_zeros()
}

/// Appends the dispatches that sort `lengths.len()` segments, packed one
/// after another in `keys` (f32) and `values` (u32), in place. With
/// `index_values` the values' input is ignored and each value starts as its
/// position within its segment.
pub(crate) fn record_sort(
    ctx: &GpuContext,
    steps: &mut Vec<Step>,
    keys: Binding,
    values: Binding,
    lengths: &[u64],
    index_values: bool,
) -> Result<()> {
    let total: u64 = lengths.iter().sum();
    if lengths.is_empty() || total == 0 {
        return Err(Error::input("sort", "a sort needs at least one segment with one element"));
    }
    if let Some(&long) = lengths.iter().find(|&&l| l > MAX_SEGMENT) {
        return Err(Error::limit("sort", format!("a sort segment of {long} elements exceeds the {MAX_SEGMENT} supported")));
    }
    if total * 4 > ctx.binding_limit() {
        return Err(Error::limit("sort", format!(
            "sorting {total} keys needs {} MiB bindings for keys and for values; the device binds at most {} MiB",
            (total * 4).div_ceil(1 << 20),
            ctx.binding_limit() >> 20
        )));
    }
    let mut table = Vec::with_capacity(lengths.len());
    let (mut offset, mut tiles) = (0u64, 0u64);
    for &len in lengths {
        let log = log_size(len);
        table.push(Segment { offset: offset as u32, len: len as u32, tile0: tiles as u32, log_size: log });
        offset += len;
        if len > 0 {
            tiles += (1u64 << log).div_ceil(SORT_TILE);
        }
    }
    if tiles > u32::MAX as u64 {
        return Err(Error::limit("sort", format!("{tiles} sort workgroups exceed 2^32")));
    }
    let max_log = lengths.iter().map(|&l| log_size(l)).max().unwrap_or(0);
    let storage = wgpu::BufferUsages::STORAGE;
    let segments = ctx.create_buffer_with("sort segments", bytemuck::cast_slice(&table), storage);
    let sort_tiles = ctx.kernel("sort.wgsl", "sort_tiles", &[])?;
    let merge_pass = ctx.kernel("sort.wgsl", "merge_pass", &[])?;
    for pass in schedule(max_log) {
        let (merge, hi_bit, lo_bit) = pass.unwrap_or((0, 0, 0));
        let params = Params {
            tiles: tiles as u32,
            segments: lengths.len() as u32,
            merge,
            hi_bit,
            lo_bit,
            index_values: (index_values && pass.is_none()) as u32,
            _pad: [0; 2],
        };
        let uniform = ctx.create_buffer_with("sort params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM);
        steps.push(Step::new(
            if pass.is_none() { &sort_tiles } else { &merge_pass },
            tiles as u32,
            vec![
                ("params", Binding::Owned(uniform)),
                ("segments", Binding::owned(&segments)),
                ("keys", keys.clone()),
                ("values", values.clone()),
            ],
        )?);
    }
    Ok(())
}

/// A sort planned for fixed segment lengths, recorded into a caller's
/// encoder on the caller's tensors: `keys` (f32) and `values` (i32, read as
/// u32 bit patterns), each holding the segments one after another. Sorts
/// in place: each segment by key descending, equal keys by value ascending.
///
/// This is also what `segloss bench` times on its own.
///
/// ```no_run
/// # use segloss::primitives::sort::SortPlan;
/// let ctx = segloss::GpuContext::new()?;
/// let (keys, order) = SortPlan::argsort_host(&ctx, &[0.5, 2.0, 0.5, -1.0, 3.0], &[3, 2])?;
/// assert_eq!(keys, vec![2.0, 0.5, 0.5, 3.0, -1.0]);
/// assert_eq!(order, vec![1, 0, 2, 1, 0]);
/// # Ok::<(), segloss::Error>(())
/// ```
pub struct SortPlan {
    ctx: GpuContext,
    program: Program,
    lengths: Vec<u64>,
}

impl SortPlan {
    /// Plans a sort of segments of `lengths` elements (packed one after the
    /// other) that reads the caller's values.
    pub fn new(ctx: &GpuContext, lengths: &[usize]) -> Result<Self> {
        Self::build(ctx, lengths, false)
    }

    /// Plans an argsort: the values' input is ignored, and they come out as
    /// the sorted elements' original positions within their segments.
    pub fn argsort(ctx: &GpuContext, lengths: &[usize]) -> Result<Self> {
        Self::build(ctx, lengths, true)
    }

    fn build(ctx: &GpuContext, lengths: &[usize], index_values: bool) -> Result<Self> {
        let lengths: Vec<u64> = lengths.iter().map(|&l| l as u64).collect();
        let total: u64 = lengths.iter().sum();
        let mut steps = Vec::new();
        record_sort(ctx, &mut steps, Binding::slot(0), Binding::slot(1), &lengths, index_values)?;
        let slots = vec![
            SlotSpec { name: "keys", shape: vec![total as usize], dtype: DType::F32, written: true, required: true },
            SlotSpec { name: "values", shape: vec![total as usize], dtype: DType::I32, written: true, required: true },
        ];
        Ok(SortPlan { ctx: ctx.clone(), program: Program::new("sort", slots, steps), lengths })
    }

    /// Elements sorted: the sum of the segment lengths.
    pub fn len(&self) -> usize {
        self.lengths.iter().sum::<u64>() as usize
    }

    /// Whether the plan sorts nothing (never true: plans need one element).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dispatches one recording makes.
    pub fn dispatches(&self) -> usize {
        self.program.steps.len()
    }

    /// Records the sort of `keys` and `values` (flattened, [`SortPlan::len`]
    /// elements each, in separate buffers) into `encoder`.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, keys: &GpuTensor, values: &GpuTensor) -> Result<()> {
        let flat = |t: &GpuTensor| GpuTensor { shape: vec![t.numel()], ..t.clone() };
        self.program.record(&self.ctx, encoder, &[Some(&flat(keys)), Some(&flat(values))])
    }

    /// Uploads `keys` and `values`, sorts the segments of `lengths` on the
    /// GPU and reads both back.
    pub fn sort_host(ctx: &GpuContext, keys: &[f32], values: &[u32], lengths: &[usize]) -> Result<(Vec<f32>, Vec<u32>)> {
        if values.len() != keys.len() {
            return Err(Error::input("sort", format!("{} keys but {} values", keys.len(), values.len())));
        }
        Self::run_host(Self::new(ctx, lengths)?, ctx, keys, values)
    }

    /// Uploads `keys`, argsorts the segments of `lengths` on the GPU and
    /// reads back the sorted keys and each one's position in its segment.
    pub fn argsort_host(ctx: &GpuContext, keys: &[f32], lengths: &[usize]) -> Result<(Vec<f32>, Vec<u32>)> {
        Self::run_host(Self::argsort(ctx, lengths)?, ctx, keys, &vec![0; keys.len()])
    }

    fn run_host(plan: SortPlan, ctx: &GpuContext, keys: &[f32], values: &[u32]) -> Result<(Vec<f32>, Vec<u32>)> {
        if keys.len() != plan.len() {
            return Err(Error::input("sort", format!("{} keys do not fill segments of {} elements in all", keys.len(), plan.len())));
        }
        let k = GpuTensor::from_host(ctx, &HostTensor::f32(&[keys.len()], keys.to_vec())?)?;
        let v = GpuTensor::from_host(ctx, &HostTensor::i32(&[values.len()], bytemuck::cast_slice(values).to_vec())?)?;
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        plan.record(&mut encoder, &k, &v)?;
        ctx.queue().submit([encoder.finish()]);
        Ok((k.read_f32(ctx)?, crate::primitives::scan::read_words(ctx, &v)?))
    }
}

/// The CPU twin: each segment stably sorted by key descending (ties keep
/// their order), with `-0.0` equal to `+0.0`. Returns sorted keys and each
/// element's original position in its segment.
///
/// # Panics
///
/// When `lengths` add up to more than `keys.len()`.
pub fn argsort_cpu(keys: &[f32], lengths: &[usize]) -> (Vec<f32>, Vec<u32>) {
    let (mut out_keys, mut out_pos) = (Vec::with_capacity(keys.len()), Vec::with_capacity(keys.len()));
    let mut start = 0;
    for &len in lengths {
        let seg = &keys[start..start + len];
        let mut order: Vec<u32> = (0..len as u32).collect();
        order.sort_by(|&a, &b| canonical(seg[b as usize]).total_cmp(&canonical(seg[a as usize])).then(a.cmp(&b)));
        out_keys.extend(order.iter().map(|&i| canonical(seg[i as usize])));
        out_pos.extend(order);
        start += len;
    }
    (out_keys, out_pos)
}

fn canonical(x: f32) -> f32 {
    if x == 0.0 { 0.0 } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_covers_every_merge_bit_once() {
        for max_log in 0..=30 {
            let passes = schedule(max_log);
            assert_eq!(passes[0], None);
            for merge in LOG_TILE + 1..=max_log {
                let mut bits: Vec<u32> = passes
                    .iter()
                    .flatten()
                    .filter(|p| p.0 == merge)
                    .flat_map(|&(_, hi, lo)| {
                        assert!(hi - lo < LOG_TILE && hi < merge);
                        assert!(lo == 0 || lo >= LOG_TILE - (hi - lo + 1));
                        (lo..=hi).rev()
                    })
                    .collect();
                let want: Vec<u32> = (0..merge).rev().collect();
                assert_eq!(bits, want, "merge {merge}");
                bits.clear();
            }
        }
    }

    #[test]
    fn the_cpu_twin_sorts_descending_with_ties_in_order() {
        let (k, p) = argsort_cpu(&[1.0, 3.0, -0.0, 3.0, 0.0, 2.0, 1.0], &[5, 2]);
        assert_eq!(k, vec![3.0, 3.0, 1.0, 0.0, 0.0, 2.0, 1.0]);
        assert_eq!(p, vec![1, 3, 0, 2, 4, 0, 1]);
    }
}
