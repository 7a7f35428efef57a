//! Segmented sum on the GPU: many segments at once, in a fixed order, so
//! the result is bitwise identical from run to run on one device.
//!
//! Each level sums tiles of 2,048 values with one workgroup each (a fixed
//! binary tree in workgroup memory); levels repeat until one value per
//! segment is left. The first level is split across several bindings when
//! its input exceeds one, and every level folds more than 65,535 workgroups
//! into a 2D grid.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::chunks::{ElementRange, plan_chunks, tile_span};
use crate::gpu::layout::REDUCE_TILE;
use crate::gpu::program::{Binding, Program, SlotSpec, Step};
use crate::gpu::context::GpuContext;
use crate::gpu::pool::PooledBuffer;
use crate::gpu::tensor::{DType, GpuTensor};

/// `struct Params` in `reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    len: u32,
    tiles: u32,
    group0: u32,
    groups: u32,
    first: u32,
    _pad: [u32; 3],
}

/// Appends to `steps` the levels that sum `segments` runs of `len` values
/// from `input` into `output[0..segments]`. A caller's tensor as input is
/// bound in chunks when it exceeds one binding; `output` is bound whole.
/// Returns the intermediate buffers, which the plan must keep alive.
pub(crate) fn record_segmented_sum(
    ctx: &GpuContext,
    steps: &mut Vec<Step>,
    input: Binding,
    segments: u64,
    len: u64,
    output: Binding,
) -> Result<Vec<PooledBuffer>> {
    if segments == 0 || len == 0 {
        return Err(Error::input("segmented sum", "a segmented sum needs at least one segment of one value"));
    }
    if segments * len >= 1 << 32 {
        return Err(Error::limit("segmented sum", format!("{segments}×{len} values exceed the 2^32 a reduction indexes")));
    }
    let kernel = ctx.kernel("reduce.wgsl", "segmented_sum", &[])?;
    let mut scratch = Vec::new();
    let mut current_len = len;
    let mut source = input;
    loop {
        let tiles = current_len.div_ceil(REDUCE_TILE);
        let total = segments * tiles;
        let last = tiles == 1;
        let level_out = if last {
            output.clone()
        } else {
            let b = ctx.scratch("segloss reduce level", total * 4, wgpu::BufferUsages::STORAGE)?;
            let buffer = b.buffer().clone();
            scratch.push(b);
            Binding::Owned(buffer)
        };
        // Tile g of segment k covers values [k·len + t·TILE, min(k·len + (t+1)·TILE, (k+1)·len)).
        let span_of = |a: u64, b: u64| {
            let r = tile_span(a, b, tiles, current_len, REDUCE_TILE);
            ElementRange::new(r.start, r.end, ctx.inner.offset_alignment)
        };
        let caller_slot = match &source {
            Binding::Slot(s, _) => Some(*s),
            Binding::Owned(_) => None,
            // The levels index their input from its start: a partial binding would shift them.
            Binding::OwnedRange(..) => return Err(Error::Device("the segmented sum reads a caller's slot or a whole buffer".into())),
        };
        let chunks = match caller_slot {
            Some(_) => plan_chunks(total, 1, ctx.binding_limit(), |a, b| span_of(a, b).bytes())?,
            None => vec![0..total],
        };
        for chunk in chunks {
            let range = span_of(chunk.start, chunk.end);
            let params = Params {
                len: current_len as u32,
                tiles: tiles as u32,
                group0: chunk.start as u32,
                groups: (chunk.end - chunk.start) as u32,
                first: if caller_slot.is_some() { range.first as u32 } else { 0 },
                _pad: [0; 3],
            };
            let input_binding = match caller_slot {
                Some(s) => Binding::Slot(s, Some(range)),
                None => source.clone(),
            };
            let uniform = ctx.create_buffer_with("reduce params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM);
            steps.push(Step::new(
                &kernel,
                params.groups,
                vec![("params", Binding::Owned(uniform)), ("input", input_binding), ("output", level_out.clone())],
            )?);
        }
        if last {
            return Ok(scratch);
        }
        current_len = tiles;
        source = level_out;
    }
}

/// A ready-made segmented sum over a caller's tensor: `segments` equal,
/// contiguous runs of the input's elements, summed into an output tensor of
/// `segments` f32.
///
/// ```no_run
/// # use segloss::{GpuContext, HostTensor, GpuTensor};
/// let ctx = GpuContext::new()?;
/// let sums = segloss::primitives::reduce::SegmentedSum::sum_host(&ctx, &[1.0, 2.0, 3.0, 4.0], 2)?;
/// assert_eq!(sums, vec![3.0, 7.0]);
/// # Ok::<(), segloss::Error>(())
/// ```
pub struct SegmentedSum {
    ctx: GpuContext,
    program: Program,
    _scratch: Vec<PooledBuffer>,
}

impl SegmentedSum {
    /// Plans the sum of `segments` runs of `len` values each.
    pub fn new(ctx: &GpuContext, segments: usize, len: usize) -> Result<Self> {
        let mut steps = Vec::new();
        let scratch = record_segmented_sum(ctx, &mut steps, Binding::slot(0), segments as u64, len as u64, Binding::slot(1))?;
        let slots = vec![
            SlotSpec { name: "input", shape: vec![segments * len], dtype: DType::F32, written: false, required: true },
            SlotSpec { name: "output", shape: vec![segments], dtype: DType::F32, written: true, required: true },
        ];
        Ok(SegmentedSum { ctx: ctx.clone(), program: Program::new("segmented sum", slots, steps), _scratch: scratch })
    }

    /// Records the sum of `input` (flattened) into `output` (`segments` values).
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, input: &GpuTensor, output: &GpuTensor) -> Result<()> {
        let flat_in = GpuTensor { shape: vec![input.numel()], ..input.clone() };
        let flat_out = GpuTensor { shape: vec![output.numel()], ..output.clone() };
        self.program.record(&self.ctx, encoder, &[Some(&flat_in), Some(&flat_out)])
    }

    /// Uploads `values`, sums `segments` equal runs of them on the GPU and reads the sums back.
    pub fn sum_host(ctx: &GpuContext, values: &[f32], segments: usize) -> Result<Vec<f32>> {
        if segments == 0 || values.len() % segments != 0 {
            return Err(Error::input("segmented sum", format!("{} values do not split into {segments} equal segments", values.len())));
        }
        let input = GpuTensor::from_host(ctx, &crate::gpu::tensor::HostTensor::f32(&[values.len()], values.to_vec())?)?;
        let output = GpuTensor::zeros(ctx, &[segments], DType::F32)?;
        let plan = Self::new(ctx, segments, values.len() / segments)?;
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        plan.record(&mut encoder, &input, &output)?;
        ctx.queue().submit([encoder.finish()]);
        output.read_f32(ctx)
    }
}
