//! Element-type conversion between a caller's tensors and the types the
//! kernels compute in (f32 and i32): widening f16, bf16, u8, u16 and i64
//! inputs, narrowing an f32 gradient into f16 or bf16 (overwriting or
//! adding). `shaders/convert.wgsl` holds the kernels; the CPU twins are
//! [`HostTensor::widened`](crate::HostTensor::widened) and
//! [`HostTensor::to_dtype`](crate::HostTensor::to_dtype), which the suite
//! holds these to bit for bit.
//!
//! Packed tensors are bound as u32 words, so their bindings are multiples of
//! 4 bytes ([`GpuTensor::byte_len`](crate::GpuTensor::byte_len) rounds up);
//! chunks of the work keep each binding within the device's limit and start
//! anywhere in the tensor (a binding starts at the aligned word below).

use std::ops::Range;
use std::sync::Arc;

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::chunks::{ElementRange, plan_chunks};
use crate::gpu::context::GpuContext;
use crate::gpu::layout::WG_SIZE;
use crate::gpu::pipeline::Kernel;
use crate::gpu::program::{Binding, Program, SlotSpec, Step};
use crate::gpu::tensor::{DType, GpuTensor};

/// `struct ConvertParams` in convert.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConvertParams {
    count: u32,
    first: u32,
    src_word0: u32,
    dst_word0: u32,
    elements: u32,
    accumulate: u32,
    _pad: [u32; 2],
}

/// One conversion planned for one shape: widening a caller's packed tensor
/// into a tensor of the widened type, or narrowing an f32 tensor into a
/// packed one.
///
/// ```no_run
/// # use segloss::{DType, GpuContext, GpuTensor, HostTensor};
/// # use segloss::primitives::convert::Convert;
/// let ctx = GpuContext::new()?;
/// let host = HostTensor::f32(&[3], vec![0.5, -2.0, 1e-3])?.to_dtype(DType::F16)?;
/// let half = GpuTensor::from_host(&ctx, &host)?;
/// let wide = GpuTensor::zeros(&ctx, &[3], DType::F32)?;
/// let widen = Convert::widen(&ctx, "logits", &[3], DType::F16)?;
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// widen.record(&mut encoder, &half, &wide)?;
/// ctx.queue().submit([encoder.finish()]);
/// assert_eq!(wide.read_f32(&ctx)?, host.widened().as_f32("x")?);
/// # Ok::<(), segloss::Error>(())
/// ```
pub struct Convert {
    ctx: GpuContext,
    program: Program,
}

impl Convert {
    /// Widens `shape` elements of `from` (f16, bf16, u8, u16 or i64) into
    /// [`DType::widened`]: f32 for the floats, i32 for the integers (an i64
    /// outside i32 becomes [`I64_OUT_OF_RANGE`](crate::gpu::tensor::I64_OUT_OF_RANGE)).
    /// `what` names the source in errors (`"logits"`).
    pub fn widen(ctx: &GpuContext, what: &'static str, shape: &[usize], from: DType) -> Result<Self> {
        // `SOURCE` in convert.wgsl.
        let source = match from {
            DType::F16 => 0,
            DType::BF16 => 1,
            DType::U8 => 2,
            DType::U16 => 3,
            DType::I64 => 4,
            DType::F32 | DType::I32 => return Err(Error::input("convert", format!("{} is already a type the kernels read", from.name()))),
        };
        let n = count(shape);
        let size = from.size();
        let plan = Layout { elements: n, quantum: 1, src: &|r| words(r, size), dst: &|r| r.start..r.end };
        let kernel = ctx.kernel("convert.wgsl", "widen", &[("SOURCE", source as f64)])?;
        let steps = plan.steps(ctx, &kernel, false, |r| (r.end - r.start, r.start))?;
        Ok(Self::with(ctx, [what, "its widened copy"], shape, [from, from.widened()], steps))
    }

    /// Narrows `shape` f32 elements into `to` (f16 or bf16), rounding to
    /// the nearest even; `accumulate` adds into the destination instead.
    /// Finite values beyond the type's range saturate to its largest, so a
    /// finite gradient stays finite; ±∞ and NaN stay what they are.
    /// `what` names the destination in errors (`"grad"`).
    pub fn narrow(ctx: &GpuContext, what: &'static str, shape: &[usize], to: DType, accumulate: bool) -> Result<Self> {
        if !matches!(to, DType::F16 | DType::BF16) {
            return Err(Error::input("convert", format!("a gradient is narrowed into f16 or bf16, not {}", to.name())));
        }
        let kernel = ctx.kernel("convert.wgsl", "narrow", &[("BF16", (to == DType::BF16) as u32 as f64)])?;
        let n = count(shape);
        // Chunks start at even elements, so no word is shared between two.
        let plan = Layout { elements: n, quantum: 2, src: &|r| r.start..r.end, dst: &|r| words(r, 2) };
        let steps = plan.steps(ctx, &kernel, accumulate, |r| {
            let w = words(r, 2);
            (w.end - w.start, w.start)
        })?;
        Ok(Self::with(ctx, ["its f32 copy", what], shape, [DType::F32, to], steps))
    }

    fn with(ctx: &GpuContext, [from_name, to_name]: [&'static str; 2], shape: &[usize], [from, to]: [DType; 2], steps: Vec<Step>) -> Self {
        let slots = vec![
            SlotSpec { name: from_name, shape: shape.to_vec(), dtype: from, written: false, required: true },
            SlotSpec { name: to_name, shape: shape.to_vec(), dtype: to, written: true, required: true },
        ];
        Convert { ctx: ctx.clone(), program: Program::new("convert", slots, steps) }
    }

    /// Records the conversion of `src` into `dst`, which must have the shape
    /// and the types the conversion was planned for.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder, src: &GpuTensor, dst: &GpuTensor) -> Result<()> {
        self.program.record(&self.ctx, encoder, &[Some(src), Some(dst)])
    }
}

fn count(shape: &[usize]) -> u64 {
    shape.iter().product::<usize>() as u64
}

/// The u32 words elements `r` of `size`-byte elements occupy.
fn words(r: &Range<u64>, size: u64) -> Range<u64> {
    r.start * size / 4..(r.end * size).div_ceil(4)
}

/// How a conversion's elements map to its bindings' words.
struct Layout<'a> {
    elements: u64,
    /// Chunk starts are multiples of this many elements.
    quantum: u64,
    src: &'a dyn Fn(&Range<u64>) -> Range<u64>,
    dst: &'a dyn Fn(&Range<u64>) -> Range<u64>,
}

impl Layout<'_> {
    /// The dispatches over every chunk of elements; `items(chunk)` gives the
    /// invocations it needs and the first one's index in the tensor.
    fn steps(&self, ctx: &GpuContext, kernel: &Arc<Kernel>, accumulate: bool, items: impl Fn(&Range<u64>) -> (u64, u64)) -> Result<Vec<Step>> {
        if self.elements >= 1 << 32 {
            return Err(Error::limit("convert", format!("{} elements exceed the 2^32 the conversion indexes", self.elements)));
        }
        let align = ctx.inner.offset_alignment;
        let span = |r: &Range<u64>, side: &dyn Fn(&Range<u64>) -> Range<u64>| {
            let w = side(r);
            ElementRange::new(w.start, w.end, align)
        };
        let chunks = plan_chunks(self.elements, self.quantum, ctx.binding_limit(), |a, b| {
            span(&(a..b), self.src).bytes().max(span(&(a..b), self.dst).bytes())
        })?;
        chunks
            .iter()
            .map(|r| {
                let (src, dst) = (span(r, self.src), span(r, self.dst));
                let (count, first) = items(r);
                let params = ConvertParams {
                    count: count as u32,
                    first: first as u32,
                    src_word0: src.first as u32,
                    dst_word0: dst.first as u32,
                    elements: self.elements as u32,
                    accumulate: accumulate as u32,
                    _pad: [0; 2],
                };
                let uniform = ctx.create_buffer_with("convert params", bytemuck::bytes_of(&params), wgpu::BufferUsages::UNIFORM);
                Step::new(
                    kernel,
                    count.div_ceil(WG_SIZE) as u32,
                    vec![("p", Binding::Owned(uniform)), ("src", Binding::range(0, &src)), ("dst", Binding::range(1, &dst))],
                )
            })
            .collect()
    }
}
