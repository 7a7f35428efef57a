//! segloss's kernels on burn's tensors where they lie: each tensor's buffer
//! and byte offset through cubecl's `get_resource`, the value and the
//! gradient allocated from burn's pool, one submission on burn's queue.

use burn::backend::ops::FloatTensorOps;
use burn::backend::wgpu::CubeTensor;
use burn::backend::Cube;
use burn::cubecl::wgpu::{AutoCompiler, WgpuServer};
use burn::tensor::{DType, FloatDType, Shape};
use segloss::{GpuTensor, LossInputs, LossOutputs};

use crate::engine::SeglossBurn;
use crate::error::{Error, Result};
use crate::loss::Planned;

/// The server both of burn's wgpu initializations register.
type Server = WgpuServer<AutoCompiler>;

/// One input tensor: its name for errors, the primitive, the shape segloss
/// sees (burn's tensor may be a flat view of it) and the dtype segloss reads.
pub(crate) struct Input {
    pub name: &'static str,
    pub tensor: CubeTensor,
    pub dims: Vec<usize>,
    pub dtype: segloss::DType,
}

/// The inputs of one evaluation, in segloss's roles.
pub(crate) struct Inputs {
    pub logits: Input,
    pub target: Input,
    pub weight: Option<Input>,
    pub distance: Option<Input>,
}

/// The value `[1]`, and the gradient (flat, as many elements as the logits)
/// when it was asked for, both in burn's pool.
pub(crate) struct Outputs {
    pub value: CubeTensor,
    pub grad: Option<CubeTensor>,
}

/// Checks that `input` is a tensor segloss can bind where it lies: on this
/// engine's wgpu device, of the dtype the loss reads, dense and in order.
fn check(engine: &SeglossBurn, input: &Input) -> Result<()> {
    let t = &input.tensor;
    match &t.device {
        burn::cubecl::Device::Wgpu(d) if d == engine.wgpu_device() => {}
        burn::cubecl::Device::Wgpu(d) => {
            return Err(Error::Device { input: input.name, found: format!("{d:?}"), expected: format!("{:?}", engine.wgpu_device()) });
        }
        other => return Err(Error::Runtime { input: input.name, found: format!("{other:?} (runtime {:?})", other.runtime()) }),
    }
    if t.dtype != burn_dtype(input.dtype) {
        return Err(Error::DType { input: input.name, found: format!("{:?}", t.dtype), expected: dtype_name(input.dtype) });
    }
    // The callers hand flat views made by burn's reshape, which copies a
    // strided tensor into order: this holds unless burn changes that.
    if t.meta.is_tiled() || !is_dense(t.meta.shape(), t.meta.strides()) {
        return Err(Error::Server { input: input.name, message: "the tensor is not dense and in order after reshaping".into() });
    }
    Ok(())
}

/// burn's name for a segloss element type.
fn burn_dtype(dtype: segloss::DType) -> DType {
    match dtype {
        segloss::DType::F32 => DType::F32,
        segloss::DType::I32 => DType::I32,
        segloss::DType::F16 => DType::F16,
        segloss::DType::BF16 => DType::BF16,
        segloss::DType::U8 => DType::U8,
        segloss::DType::U16 => DType::U16,
        segloss::DType::I64 => DType::I64,
    }
}

/// The segloss element type of a burn tensor's, where segloss takes it:
/// f32, f16 and bf16 floats; i32, i64, u8 and u16 class indices.
pub(crate) fn segloss_dtype(input: &'static str, dtype: DType) -> Result<segloss::DType> {
    Ok(match dtype {
        DType::F32 => segloss::DType::F32,
        DType::F16 => segloss::DType::F16,
        DType::BF16 => segloss::DType::BF16,
        DType::I32 => segloss::DType::I32,
        DType::I64 => segloss::DType::I64,
        DType::U8 => segloss::DType::U8,
        DType::U16 => segloss::DType::U16,
        other => {
            let expected = "f32, f16 or bf16 (floats), i32, i64, u8 or u16 (class indices)";
            return Err(Error::DType { input, found: format!("{other:?}"), expected });
        }
    })
}

/// burn's float type for a segloss float type (the gradient's).
pub(crate) fn float_dtype(dtype: segloss::DType) -> FloatDType {
    match dtype {
        segloss::DType::F16 => FloatDType::F16,
        segloss::DType::BF16 => FloatDType::BF16,
        _ => FloatDType::F32,
    }
}

fn dtype_name(dtype: segloss::DType) -> &'static str {
    match dtype {
        segloss::DType::F32 => "F32 (float logits, dense targets, weights, maps)",
        segloss::DType::I32 => "I32 (class indices)",
        other => other.name(),
    }
}

fn is_dense(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected *= d;
    }
    true
}

/// Records `planned` on the inputs where burn placed them and submits it on
/// burn's queue, after burn's pending work and before its later work.
pub(crate) fn evaluate(engine: &SeglossBurn, planned: &Planned, inputs: Inputs, grad: bool) -> Result<Outputs> {
    let device = inputs.logits.tensor.device.clone();
    let value = Cube::float_empty(Shape::new([1]), &device, FloatDType::F32);
    // The gradient in the logits' type, as burn's autodiff expects it.
    let grad_dtype = inputs.logits.dtype;
    let numel = inputs.logits.dims.iter().product::<usize>();
    let grad = grad.then(|| Cube::float_empty(Shape::new([numel]), &device, float_dtype(grad_dtype)));
    let mut more = vec![Input { name: "value", tensor: value.clone(), dims: vec![1], dtype: segloss::DType::F32 }];
    more.extend(grad.iter().map(|g| Input { name: "grad", tensor: g.clone(), dims: inputs.logits.dims.clone(), dtype: grad_dtype }));
    record(engine, &inputs, &more, |encoder, loss_inputs, more| {
        planned.record(encoder, loss_inputs, LossOutputs { value: &more[0], grad: more.get(1) })
    })?;
    Ok(Outputs { value, grad })
}

/// Records `record` on the inputs and on `more` (further tensors it reads or
/// writes: the value, the gradient, statistics), each seen where burn
/// placed it, and submits it on burn's queue after burn's pending work.
pub(crate) fn record(
    engine: &SeglossBurn,
    inputs: &Inputs,
    more: &[Input],
    record: impl FnOnce(&mut wgpu::CommandEncoder, LossInputs<'_>, &[GpuTensor]) -> segloss::Result<()>,
) -> Result<()> {
    for input in [Some(&inputs.logits), Some(&inputs.target), inputs.weight.as_ref(), inputs.distance.as_ref()].into_iter().flatten().chain(more) {
        check(engine, input)?;
    }
    // Pin every allocation (cubecl neither frees nor moves a pinned one) and
    // see it as a segloss tensor at its buffer and offset.
    let ctx = engine.context();
    let client = inputs.logits.tensor.client.clone();
    let mut pins = Vec::with_capacity(4 + more.len());
    let mut pin = |input: &Input| -> Result<GpuTensor> {
        let pinned = client.get_resource::<Server>(input.tensor.handle.clone()).map_err(|e| Error::Server { input: input.name, message: e.to_string() })?;
        let r = pinned.resource();
        let tensor = GpuTensor::new(ctx, r.buffer.clone(), r.offset, &input.dims, input.dtype)?;
        pins.push(pinned);
        Ok(tensor)
    };
    let logits_t = pin(&inputs.logits)?;
    let target_t = pin(&inputs.target)?;
    let weight_t = inputs.weight.as_ref().map(&mut pin).transpose()?;
    let distance_t = inputs.distance.as_ref().map(&mut pin).transpose()?;
    let more_t = more.iter().map(&mut pin).collect::<Result<Vec<_>>>()?;
    let loss_inputs = LossInputs { logits: &logits_t, target: &target_t, weight: weight_t.as_ref(), distance: distance_t.as_ref() };

    let mut encoder = ctx.device().create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("segloss-burn") });
    record(&mut encoder, loss_inputs, &more_t)?;
    // burn's pending work (the logits' producers, its uploads) goes first.
    client.flush().map_err(|e| Error::Server { input: "logits", message: e.to_string() })?;
    ctx.queue().submit([encoder.finish()]);
    // Unpinned only now: whatever burn does next with these allocations is
    // submitted after this, on the same queue.
    drop(pins);
    Ok(())
}
