//! Key-value sort on the GPU: many independent segments at once, each
//! ordered by f32 key **descending**, stably: equal keys keep their input
//! order, so the result is fully determined and the same on every run.
//!
//! Two algorithms share the work, each where it is the faster:
//! - a segment longer than one tile ([`SORT_TILE`] elements) is radix
//!   sorted (`sort/radix.rs`): least significant digit first, four stable
//!   passes of 8 bits, each an upsweep of per-tile digit histograms, one
//!   scan of the histogram table and a downsweep that ranks each tile
//!   locally and scatters it. O(n) memory traffic, no atomics outside
//!   workgroup memory, no workgroup ever waits on another;
//! - a segment of at most one tile is sorted by a bitonic network in
//!   workgroup memory (`sort/bitonic.rs`), one dispatch for all of them: for
//!   short segments the radix sort's twelve dispatches and its table of 256
//!   counters per tile cost more than the whole network.
//!
//! Keys are ordered as `lib/sort_keys.wgsl` maps them: `-0.0` equals `+0.0`
//! and comes back as `+0.0`; NaNs sort first (as the largest keys, where
//! `torch.sort(descending=True)` puts them) and come back as the NaN with
//! bits `0x7FFFFFFF`.

mod bitonic;
mod radix;

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::PooledBuffer;
use crate::gpu::program::{Binding, Program, SlotSpec, Step};
use crate::gpu::tensor::{DType, GpuTensor, HostTensor};

/// Elements one workgroup holds: the longest segment the bitonic network
/// sorts, and the radix sort's tile (`TILE` in both shaders).
pub const SORT_TILE: u64 = 2048;

/// How the radix sort ranks the elements of a tile among themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ranking {
    /// Subgroup scans where the device offers [`wgpu::Features::SUBGROUP`], else the workgroup scan.
    #[default]
    Auto,
    /// Subgroup scans (`radix_sort_subgroup.wgsl`); an error on a device without subgroups.
    Subgroup,
    /// A scan in workgroup memory that needs no subgroups (`radix_sort.wgsl`).
    Workgroup,
}

/// How a sort is carried out. The defaults are the fastest; the others
/// exist so that tests and benchmarks can reach every path on one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortOptions {
    /// The radix sort's local ranking.
    pub ranking: Ranking,
    /// Segments of at most [`SORT_TILE`] elements go to the bitonic network
    /// (the default); `false` radix sorts every segment.
    pub tile_sort: bool,
}

impl Default for SortOptions {
    fn default() -> Self {
        SortOptions { ranking: Ranking::Auto, tile_sort: true }
    }
}

/// What [`record_sort`] sorts, beyond the keys and values.
pub(crate) struct SortJob<'a> {
    /// Segment lengths, packed one after another.
    pub lengths: &'a [u64],
    /// The values' input is ignored: each starts as its position in its segment.
    pub index_values: bool,
    pub options: SortOptions,
    /// GPU-written lengths, one u32 per segment: segment `s` then sorts only
    /// its first `min(lengths[s], dynamic[s])` elements and leaves the rest
    /// where they are. All segments are radix sorted then.
    pub dynamic: Option<Binding>,
}

/// The dispatches of a sort, and the scratch buffers its plan must keep.
pub(crate) struct RecordedSort {
    pub scratch: Vec<PooledBuffer>,
    /// The local ranking the radix passes use (`None` when none runs).
    pub ranking: Option<Ranking>,
}

/// Appends the dispatches that sort the segments of `job.lengths`, packed
/// one after another in `keys` (f32) and `values` (u32), in place.
pub(crate) fn record_sort(ctx: &GpuContext, steps: &mut Vec<Step>, keys: Binding, values: Binding, job: SortJob<'_>) -> Result<RecordedSort> {
    let total: u64 = job.lengths.iter().sum();
    if job.lengths.is_empty() || total == 0 {
        return Err(Error::input("sort", "a sort needs at least one segment with one element"));
    }
    if total * 4 > ctx.binding_limit() {
        return Err(Error::limit("sort", format!(
            "sorting {total} keys needs {} MiB bindings for keys and for values; the device binds at most {} MiB",
            (total * 4).div_ceil(1 << 20),
            ctx.binding_limit() >> 20
        )));
    }
    let ranking = resolve(ctx, job.options.ranking)?;
    let mut offset = 0;
    let (mut short, mut long) = (Vec::new(), Vec::new());
    for &len in job.lengths {
        let by_network = job.options.tile_sort && job.dynamic.is_none() && len <= SORT_TILE;
        match (by_network, len) {
            (true, 0) => {}
            (true, _) => short.push((offset, len)),
            (false, _) => long.push((offset, len)),
        }
        offset += len;
    }
    if !short.is_empty() {
        bitonic::record_tile_sort(ctx, steps, keys.clone(), values.clone(), &short, job.index_values)?;
    }
    let mut scratch = Vec::new();
    if !long.is_empty() {
        let radix = radix::RadixJob { segments: &long, total, index_values: job.index_values, ranking, dynamic: job.dynamic };
        scratch = radix::record_radix_sort(ctx, steps, keys, values, radix)?;
    }
    Ok(RecordedSort { scratch, ranking: (!long.is_empty()).then_some(ranking) })
}

/// `Auto` made concrete for this device; `Subgroup` checked against it.
fn resolve(ctx: &GpuContext, ranking: Ranking) -> Result<Ranking> {
    let subgroups = ctx.device().features().contains(wgpu::Features::SUBGROUP);
    match ranking {
        Ranking::Auto if subgroups => Ok(Ranking::Subgroup),
        Ranking::Auto => Ok(Ranking::Workgroup),
        Ranking::Subgroup if !subgroups => {
            Err(Error::limit("sort", "subgroup ranking was asked for, but the device does not offer the SUBGROUP feature"))
        }
        r => Ok(r),
    }
}

/// A sort planned for fixed segment lengths, recorded into a caller's
/// encoder on the caller's tensors: `keys` (f32) and `values` (i32, read as
/// u32 bit patterns), each holding the segments one after another. Sorts
/// in place: each segment by key descending, equal keys in their input order.
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
    ranking: Option<Ranking>,
    _scratch: Vec<PooledBuffer>,
}

impl SortPlan {
    /// Plans a sort of segments of `lengths` elements (packed one after the
    /// other) that carries the caller's values along.
    pub fn new(ctx: &GpuContext, lengths: &[usize]) -> Result<Self> {
        Self::with_options(ctx, lengths, false, SortOptions::default())
    }

    /// Plans an argsort: the values' input is ignored, and they come out as
    /// the sorted elements' original positions within their segments.
    pub fn argsort(ctx: &GpuContext, lengths: &[usize]) -> Result<Self> {
        Self::with_options(ctx, lengths, true, SortOptions::default())
    }

    /// Plans a sort (an argsort with `index_values`) carried out as `options` say.
    pub fn with_options(ctx: &GpuContext, lengths: &[usize], index_values: bool, options: SortOptions) -> Result<Self> {
        let lengths: Vec<u64> = lengths.iter().map(|&l| l as u64).collect();
        let total: u64 = lengths.iter().sum();
        let mut steps = Vec::new();
        let job = SortJob { lengths: &lengths, index_values, options, dynamic: None };
        let recorded = record_sort(ctx, &mut steps, Binding::slot(0), Binding::slot(1), job)?;
        let slots = vec![
            SlotSpec { name: "keys", shape: vec![total as usize], dtype: DType::F32, written: true, required: true },
            SlotSpec { name: "values", shape: vec![total as usize], dtype: DType::I32, written: true, required: true },
        ];
        Ok(SortPlan {
            ctx: ctx.clone(),
            program: Program::new("sort", slots, steps),
            lengths,
            ranking: recorded.ranking,
            _scratch: recorded.scratch,
        })
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

    /// The local ranking the radix passes use on this device, or `None`
    /// when every segment fits the bitonic network.
    pub fn ranking(&self) -> Option<Ranking> {
        self.ranking
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
        Self::new(ctx, lengths)?.run_host(keys, values)
    }

    /// Uploads `keys`, argsorts the segments of `lengths` on the GPU and
    /// reads back the sorted keys and each one's position in its segment.
    pub fn argsort_host(ctx: &GpuContext, keys: &[f32], lengths: &[usize]) -> Result<(Vec<f32>, Vec<u32>)> {
        Self::argsort(ctx, lengths)?.run_host(keys, &vec![0; keys.len()])
    }

    /// Uploads `keys` and `values`, runs this plan on them and reads both back.
    pub fn run_host(&self, keys: &[f32], values: &[u32]) -> Result<(Vec<f32>, Vec<u32>)> {
        let ctx = &self.ctx;
        if keys.len() != self.len() || values.len() != self.len() {
            return Err(Error::input("sort", format!(
                "{} keys and {} values do not fill segments of {} elements in all",
                keys.len(),
                values.len(),
                self.len()
            )));
        }
        let k = GpuTensor::from_host(ctx, &HostTensor::f32(&[keys.len()], keys.to_vec())?)?;
        let v = GpuTensor::from_host(ctx, &HostTensor::i32(&[values.len()], bytemuck::cast_slice(values).to_vec())?)?;
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        self.record(&mut encoder, &k, &v)?;
        ctx.queue().submit([encoder.finish()]);
        Ok((k.read_f32(ctx)?, crate::primitives::scan::read_words(ctx, &v)?))
    }
}

/// The CPU twin: each segment stably sorted by key descending (ties keep
/// their order), with `-0.0` equal to `+0.0` and NaNs first, keys returned
/// as the GPU returns them. Returns sorted keys and each element's original
/// position in its segment.
///
/// # Panics
///
/// When `lengths` add up to more than `keys.len()`.
pub fn argsort_cpu(keys: &[f32], lengths: &[usize]) -> (Vec<f32>, Vec<u32>) {
    let (mut out_keys, mut out_pos) = (Vec::with_capacity(keys.len()), Vec::with_capacity(keys.len()));
    let mut start = 0;
    for &len in lengths {
        let seg: Vec<f32> = keys[start..start + len].iter().map(|&k| canonical(k)).collect();
        let mut order: Vec<u32> = (0..len as u32).collect();
        // std's sort_by is stable: equal keys keep their input order.
        order.sort_by(|&a, &b| seg[b as usize].total_cmp(&seg[a as usize]));
        out_keys.extend(order.iter().map(|&i| seg[i as usize]));
        out_pos.extend(order);
        start += len;
    }
    (out_keys, out_pos)
}

/// A key as the sort returns it: `+0.0` for both zeros, one NaN above `+∞`.
fn canonical(x: f32) -> f32 {
    if x == 0.0 {
        0.0
    } else if x.is_nan() {
        f32::from_bits(0x7FFF_FFFF)
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_twin_sorts_descending_with_ties_in_order() {
        let (k, p) = argsort_cpu(&[1.0, 3.0, -0.0, 3.0, 0.0, 2.0, 1.0], &[5, 2]);
        assert_eq!(k, vec![3.0, 3.0, 1.0, 0.0, 0.0, 2.0, 1.0]);
        assert_eq!(p, vec![1, 3, 0, 2, 4, 0, 1]);
    }

    #[test]
    fn the_cpu_twin_puts_every_nan_first_as_one_nan() {
        let (k, p) = argsort_cpu(&[1.0, f32::from_bits(0xFFC0_0000), f32::INFINITY, f32::NAN], &[4]);
        assert_eq!(p, vec![1, 3, 2, 0]);
        assert_eq!(k.iter().map(|k| k.to_bits()).collect::<Vec<_>>(), vec![0x7FFF_FFFF, 0x7FFF_FFFF, 0x7F80_0000, 0x3F80_0000]);
    }
}
