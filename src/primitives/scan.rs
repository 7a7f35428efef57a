//! Segmented inclusive prefix sum on the GPU (`shaders/scan.wgsl`): many
//! segments of equal length at once, u32 values with wrapping addition, so
//! the result is exact and the same on every run and device.
//!
//! Reduce-then-scan over several dispatches: each 2,048-value tile is
//! summed, the tile sums are scanned the same way (recursively, one more
//! level per factor of 2,048), and each tile is then scanned in workgroup
//! memory from the sum of the tiles before it. Nothing waits on another
//! workgroup, so the scan cannot hang on devices that do not guarantee
//! forward progress, and every invocation's loops stay short.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::program::{Binding, Program, SlotSpec, Step};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::PooledBuffer;
use crate::gpu::tensor::{DType, GpuTensor, HostTensor};

/// Values a scan workgroup covers (`TILE` in `scan.wgsl`).
pub const SCAN_TILE: u64 = 2048;

/// What the scan adds up from each input word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScanOperand {
    /// The value itself.
    #[default]
    Value,
    /// Its lowest bit: counts of flags packed into the low bit.
    LowBit,
}

impl ScanOperand {
    fn mask(self) -> u32 {
        match self {
            ScanOperand::Value => u32::MAX,
            ScanOperand::LowBit => 1,
        }
    }
}

/// `struct Params` in `scan.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    len: u32,
    tiles: u32,
    groups: u32,
    mask: u32,
    has_carry: u32,
    write_totals: u32,
    _pad: [u32; 2],
}

/// Appends the dispatches of an inclusive scan of `segments` runs of `len`
/// values (`layout` is `(segments, len)`) from `input` into `output` (same layout), and each segment's total
/// into `totals[segment]` when given. Returns the scratch buffers the plan
/// must keep on loan.
pub(crate) fn record_scan(
    ctx: &GpuContext,
    steps: &mut Vec<Step>,
    input: Binding,
    output: Binding,
    totals: Option<Binding>,
    layout: (u64, u64),
    operand: ScanOperand,
) -> Result<Vec<PooledBuffer>> {
    let (segments, len) = layout;
    if segments == 0 || len == 0 {
        return Err(Error::input("scan", "a scan needs at least one segment of one value"));
    }
    if segments * len * 4 > ctx.binding_limit() {
        return Err(Error::limit("scan", format!(
            "scanning {segments}×{len} values needs a {} MiB binding; the device binds at most {} MiB",
            (segments * len * 4).div_ceil(1 << 20),
            ctx.binding_limit() >> 20
        )));
    }
    let tiles = len.div_ceil(SCAN_TILE);
    let groups = segments * tiles;
    if groups > u32::MAX as u64 {
        return Err(Error::limit("scan", format!("{groups} scan workgroups exceed 2^32")));
    }
    let storage = wgpu::BufferUsages::STORAGE;
    let mut scratch = Vec::new();
    let params = |has_carry: bool, write_totals: bool, mask: u32, len: u64, tiles: u64| Params {
        len: len as u32,
        tiles: tiles as u32,
        groups: (segments * tiles) as u32,
        mask,
        has_carry: has_carry as u32,
        write_totals: write_totals as u32,
        _pad: [0; 2],
    };
    let uniform = |p: Params| Binding::Owned(ctx.create_buffer_with("scan params", bytemuck::bytes_of(&p), wgpu::BufferUsages::UNIFORM));
    // Unused bindings still need buffers, and a written one may not alias a read one.
    let (no_carries, no_totals) =
        (ctx.create_buffer_with("scan no carries", &[0u8; 16], storage), ctx.create_buffer_with("scan no totals", &[0u8; 16], storage));
    let carries = if tiles > 1 {
        let sums = ctx.scratch("scan tile sums", groups * 4, storage)?;
        let scanned = ctx.scratch("scan tile prefixes", groups * 4, storage)?;
        let p = uniform(params(false, false, operand.mask(), len, tiles));
        steps.push(Step::new(
            &ctx.kernel("scan.wgsl", "reduce_tiles", &[])?,
            groups as u32,
            vec![("params", p), ("input", input.clone()), ("output", Binding::owned(sums.buffer()))],
        )?);
        scratch.extend(record_scan(
            ctx,
            steps,
            Binding::owned(sums.buffer()),
            Binding::owned(scanned.buffer()),
            None,
            (segments, tiles),
            ScanOperand::Value,
        )?);
        let c = scanned.buffer().clone();
        scratch.push(sums);
        scratch.push(scanned);
        Some(c)
    } else {
        None
    };
    let p = uniform(params(carries.is_some(), totals.is_some(), operand.mask(), len, tiles));
    steps.push(Step::new(
        &ctx.kernel("scan.wgsl", "scan_tiles", &[])?,
        groups as u32,
        vec![
            ("params", p),
            ("input", input),
            ("output", output),
            ("carries", Binding::Owned(carries.unwrap_or(no_carries))),
            ("totals", totals.unwrap_or(Binding::Owned(no_totals))),
        ],
    )?);
    Ok(scratch)
}

/// A segmented inclusive scan planned for `segments` runs of `len` u32
/// values, recorded into a caller's encoder: `output[i]` is the sum of the
/// operands from the start of `i`'s segment up to and including `i`, and
/// `totals[k]` segment `k`'s sum.
///
/// ```no_run
/// # use segloss::primitives::scan::{SegmentedScan, ScanOperand};
/// let ctx = segloss::GpuContext::new()?;
/// let (prefix, totals) = SegmentedScan::scan_host(&ctx, &[1, 2, 3, 4, 5, 6], 2, ScanOperand::Value)?;
/// assert_eq!(prefix, vec![1, 3, 6, 4, 9, 15]);
/// assert_eq!(totals, vec![6, 15]);
/// # Ok::<(), segloss::Error>(())
/// ```
pub struct SegmentedScan {
    ctx: GpuContext,
    program: Program,
    _scratch: Vec<PooledBuffer>,
}

impl SegmentedScan {
    /// Plans the scan of `segments` runs of `len` values each.
    pub fn new(ctx: &GpuContext, segments: usize, len: usize, operand: ScanOperand) -> Result<Self> {
        let mut steps = Vec::new();
        let scratch = record_scan(
            ctx,
            &mut steps,
            Binding::slot(0),
            Binding::slot(1),
            Some(Binding::slot(2)),
            (segments as u64, len as u64),
            operand,
        )?;
        let n = segments * len;
        let slots = vec![
            SlotSpec { name: "input", shape: vec![n], dtype: DType::I32, written: false, required: true },
            SlotSpec { name: "output", shape: vec![n], dtype: DType::I32, written: true, required: true },
            SlotSpec { name: "totals", shape: vec![segments], dtype: DType::I32, written: true, required: true },
        ];
        Ok(SegmentedScan { ctx: ctx.clone(), program: Program::new("scan", slots, steps), _scratch: scratch })
    }

    /// Records the scan of `input` into `output` and `totals` (i32 tensors
    /// read and written as u32 bit patterns; flattened).
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, input: &GpuTensor, output: &GpuTensor, totals: &GpuTensor) -> Result<()> {
        let flat = |t: &GpuTensor| GpuTensor { shape: vec![t.numel()], ..t.clone() };
        self.program.record(&self.ctx, encoder, &[Some(&flat(input)), Some(&flat(output)), Some(&flat(totals))])
    }

    /// Uploads `values`, scans `segments` equal runs of them on the GPU and
    /// reads back the prefixes and the segment totals.
    pub fn scan_host(ctx: &GpuContext, values: &[u32], segments: usize, operand: ScanOperand) -> Result<(Vec<u32>, Vec<u32>)> {
        if segments == 0 || !values.len().is_multiple_of(segments) {
            return Err(Error::input("scan", format!("{} values do not split into {segments} equal segments", values.len())));
        }
        let plan = Self::new(ctx, segments, values.len() / segments, operand)?;
        let input = GpuTensor::from_host(ctx, &HostTensor::i32(&[values.len()], bytemuck::cast_slice(values).to_vec())?)?;
        let output = GpuTensor::zeros(ctx, &[values.len()], DType::I32)?;
        let totals = GpuTensor::zeros(ctx, &[segments], DType::I32)?;
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        plan.record(&mut encoder, &input, &output, &totals)?;
        ctx.queue().submit([encoder.finish()]);
        Ok((read_words(ctx, &output)?, read_words(ctx, &totals)?))
    }
}

/// The CPU twin: inclusive prefix sums of `segments` equal runs of
/// `values` (wrapping) and each run's total.
pub fn scan_cpu(values: &[u32], segments: usize, operand: ScanOperand) -> (Vec<u32>, Vec<u32>) {
    let len = values.len() / segments.max(1);
    let mut prefix = Vec::with_capacity(values.len());
    let mut totals = Vec::with_capacity(segments);
    for run in values.chunks(len.max(1)).take(segments) {
        let mut acc = 0u32;
        for &v in run {
            acc = acc.wrapping_add(v & operand.mask());
            prefix.push(acc);
        }
        totals.push(acc);
    }
    (prefix, totals)
}

/// Reads a 32-bit tensor back as raw words, blocking.
pub(crate) fn read_words(ctx: &GpuContext, t: &GpuTensor) -> Result<Vec<u32>> {
    let bytes = pollster::block_on(crate::gpu::tensor::read_bytes(ctx, &t.buffer, t.offset, t.byte_len()))?;
    Ok(bytemuck::pod_collect_to_vec(&bytes))
}
