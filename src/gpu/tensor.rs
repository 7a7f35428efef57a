//! Typed tensors: a shape and an element type over a GPU buffer, or over host memory.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

/// Element types segloss reads and writes. Both are four bytes wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: logits, dense targets, weights, values, gradients.
    F32,
    /// 32-bit signed integer: class-index targets (which may hold an ignore value).
    I32,
}

/// A tensor living in a GPU buffer: `buffer[offset..]` holds `shape`'s
/// elements in row-major order.
///
/// An engine wraps its own buffers: the buffer needs `STORAGE` usage
/// (plus `COPY_SRC` to be read back by [`GpuTensor::read_f32`]), and `offset`
/// must be a multiple of the device's `min_storage_buffer_offset_alignment`,
/// [`GpuContext::offset_alignment`]. That differs between devices (lavapipe
/// reports 32, many discrete GPUs 256, and burn's pool sub-allocates at the
/// device's value), so align to what the context reports, not to a constant.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) offset: u64,
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
}

impl GpuTensor {
    /// Views `buffer` from `offset` as a tensor of `shape` and `dtype`,
    /// checking that it fits and that `offset` is a multiple of
    /// [`GpuContext::offset_alignment`].
    pub fn new(ctx: &GpuContext, buffer: wgpu::Buffer, offset: u64, shape: &[usize], dtype: DType) -> Result<Self> {
        let t = GpuTensor { buffer, offset, shape: shape.to_vec(), dtype };
        let align = ctx.offset_alignment();
        if offset % align != 0 {
            return Err(Error::input("tensor", format!("tensor offset {offset} is not a multiple of the device's {align}-byte storage alignment")));
        }
        if offset + t.byte_len() > t.buffer.size() {
            return Err(Error::input("tensor", format!(
                "a {shape:?} {dtype:?} tensor at offset {offset} needs {} bytes; the buffer has {}",
                offset + t.byte_len(),
                t.buffer.size()
            )));
        }
        Ok(t)
    }

    /// A new zeroed tensor in its own buffer (storage, copy source and
    /// destination); an error when the device cannot hold a buffer that large.
    pub fn zeros(ctx: &GpuContext, shape: &[usize], dtype: DType) -> Result<Self> {
        let bytes = (shape.iter().product::<usize>() as u64 * 4).max(4);
        let buffer = ctx.create_buffer("segloss tensor", bytes, tensor_usage())?;
        Ok(GpuTensor { buffer, offset: 0, shape: shape.to_vec(), dtype })
    }

    /// Uploads host data into a new tensor; an error when the data does not
    /// fill its shape or the device cannot hold it.
    pub fn from_host(ctx: &GpuContext, host: &HostTensor) -> Result<Self> {
        host.check("tensor")?;
        let t = Self::zeros(ctx, &host.shape, host.dtype())?;
        ctx.queue().write_buffer(&t.buffer, 0, host.bytes());
        Ok(t)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// The byte offset of element 0 in the buffer.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes the elements occupy.
    pub fn byte_len(&self) -> u64 {
        self.numel() as u64 * 4
    }

    /// Reads the tensor back as f32, blocking.
    pub fn read_f32(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        pollster::block_on(self.read_f32_async(ctx))
    }

    /// Reads the tensor back as f32. The future blocks its thread in
    /// `device.poll` until the copy is done (no helper thread is spawned).
    pub async fn read_f32_async(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let bytes = read_bytes(ctx, &self.buffer, self.offset, self.byte_len()).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads the tensor back with its own element type, blocking.
    pub fn read_host(&self, ctx: &GpuContext) -> Result<HostTensor> {
        pollster::block_on(self.read_host_async(ctx))
    }

    /// Reads the tensor back with its own element type; waits as
    /// [`GpuTensor::read_f32_async`] does.
    pub async fn read_host_async(&self, ctx: &GpuContext) -> Result<HostTensor> {
        let bytes = read_bytes(ctx, &self.buffer, self.offset, self.byte_len()).await?;
        Ok(HostTensor::from_bytes(&self.shape, self.dtype, &bytes))
    }
}

pub(crate) fn tensor_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

/// Copies `len` bytes at `offset` of `buffer` to the host through a pooled
/// staging buffer.
///
/// No thread is spawned: after starting the map, the future yields once to
/// its executor (the point where a cancelled read is dropped, with the
/// staging buffer still mapping), then polls the device on the calling
/// thread until the copy's submission is done. So the async form, too,
/// blocks its thread in `device.poll` while the GPU finishes the work
/// submitted so far; it is a future so that it composes with async callers,
/// not so that it frees the executor during the wait.
pub(crate) async fn read_bytes(ctx: &GpuContext, buffer: &wgpu::Buffer, offset: u64, len: u64) -> Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    if !buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) || offset % 4 != 0 || offset + len > buffer.size() {
        return Err(Error::input("tensor", "a buffer read back needs COPY_SRC usage and must hold the 4-aligned range read"));
    }
    // Until the bytes are out and the buffer unmapped, a dropped future (a
    // cancelled read) must not hand the still-mapping buffer back to the pool.
    struct Unfinished(Option<crate::gpu::pool::PooledBuffer>);
    impl Drop for Unfinished {
        fn drop(&mut self) {
            if let Some(b) = self.0.take() {
                b.discard();
            }
        }
    }
    let mut guard = Unfinished(Some(ctx.scratch("segloss readback", len, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST)?));
    let staging = guard.0.as_ref().expect("held").buffer().clone();
    let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, len);
    let submission = ctx.queue().submit([encoder.finish()]);
    if let Some(e) = scope.pop().await {
        return Err(Error::Device(format!("reading back: {e}")));
    }
    let (tx, rx) = futures::channel::oneshot::channel();
    staging.map_async(wgpu::MapMode::Read, 0..len, move |r| {
        let _ = tx.send(r);
    });
    YieldOnce(false).await;
    // wgpu-core invokes the map callback before a wait for the copy's submission returns.
    ctx.device()
        .poll(wgpu::PollType::Wait { submission_index: Some(submission), timeout: None })
        .map_err(|e| Error::Device(format!("waiting for the readback: {e}")))?;
    rx.await
        .map_err(|_| Error::Device("the readback was dropped".into()))?
        .map_err(|e| Error::Device(format!("mapping the readback buffer: {e}")))?;
    let bytes = {
        let view = staging
            .get_mapped_range(0..len)
            .map_err(|e| Error::Device(format!("reading the readback buffer: {e:?}")))?;
        view.to_vec()
    };
    staging.unmap();
    drop(guard.0.take());
    Ok(bytes)
}

/// A future that is pending on its first poll (waking its task at once) and
/// ready on the second: a cancellation point for [`read_bytes`].
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// Host-side element storage.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// f32 elements.
    F32(Vec<f32>),
    /// i32 elements.
    I32(Vec<i32>),
}

/// A tensor in host memory: the convenience layer's and the references' currency.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// The elements.
    pub data: HostData,
}

impl HostTensor {
    /// An f32 tensor; errors when `data` does not hold `shape`'s element count.
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        Self::checked(shape, HostData::F32(data))
    }

    /// An i32 tensor (class indices); errors on a size mismatch.
    pub fn i32(shape: &[usize], data: Vec<i32>) -> Result<Self> {
        Self::checked(shape, HostData::I32(data))
    }

    /// An i32 class-index tensor from floating data (a file, an array
    /// library): refused, naming the index and the value, unless every
    /// element is an integer within i32. Nothing is rounded or truncated.
    ///
    /// ```
    /// let t = segloss::HostTensor::classes_from_f64(&[3], &[0.0, 2.0, 255.0])?;
    /// assert_eq!(t.as_i32("target")?, &[0, 2, 255]);
    /// let err = segloss::HostTensor::classes_from_f64(&[2], &[1.0, 1.5]).unwrap_err();
    /// assert!(err.to_string().contains("[1] = 1.5"));
    /// # Ok::<(), segloss::Error>(())
    /// ```
    pub fn classes_from_f64(shape: &[usize], data: &[f64]) -> Result<Self> {
        Self::i32(shape, integer_labels("class indices", data.iter().copied())?)
    }

    /// [`HostTensor::classes_from_f64`] for f32 data.
    pub fn classes_from_f32(shape: &[usize], data: &[f32]) -> Result<Self> {
        Self::i32(shape, integer_labels("class indices", data.iter().map(|&v| v as f64))?)
    }

    /// Refuses the first NaN or ±Inf of an f32 tensor, naming `what` (the
    /// input), its index (flat, and per axis) and its value; `scope` is the
    /// loss that refuses it. Integer tensors always pass. The one host-side
    /// check of [`crate::losses::STATUS_NON_FINITE`]'s rule.
    pub fn check_finite(&self, scope: &'static str, what: &str) -> Result<()> {
        let HostData::F32(v) = &self.data else { return Ok(()) };
        let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) else { return Ok(()) };
        Err(Error::input(scope, format!(
            "{what}[{i}] = {x} (at {:?} of shape {:?}) is not finite; inputs must hold no NaN or ±Inf",
            unravel(i, &self.shape),
            self.shape
        )))
    }

    fn checked(shape: &[usize], data: HostData) -> Result<Self> {
        let t = HostTensor { shape: shape.to_vec(), data };
        t.check("a tensor")?;
        Ok(t)
    }

    /// Checks that the data fills the shape exactly (both fields are public,
    /// so a caller can change one without the other); `what` names the tensor.
    pub fn check(&self, what: &str) -> Result<()> {
        let n: usize = self.shape.iter().product();
        if self.len() != n {
            return Err(Error::input("tensor", format!("{what} has shape {:?}, which holds {n} elements, but {} were given", self.shape, self.len())));
        }
        Ok(())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            HostData::F32(v) => v.len(),
            HostData::I32(v) => v.len(),
        }
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self.data {
            HostData::F32(_) => DType::F32,
            HostData::I32(_) => DType::I32,
        }
    }

    /// A tensor of `shape` and `dtype` from its raw bytes (as [`HostTensor::bytes`] gives them).
    pub(crate) fn from_bytes(shape: &[usize], dtype: DType, bytes: &[u8]) -> Self {
        let data = match dtype {
            DType::F32 => HostData::F32(bytemuck::pod_collect_to_vec(bytes)),
            DType::I32 => HostData::I32(bytemuck::pod_collect_to_vec(bytes)),
        };
        HostTensor { shape: shape.to_vec(), data }
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            HostData::F32(v) => bytemuck::cast_slice(v),
            HostData::I32(v) => bytemuck::cast_slice(v),
        }
    }

    /// The elements as f64, whatever their type.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            HostData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::I32(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// The f32 elements, or an error naming `what` when the tensor holds integers.
    pub fn as_f32(&self, what: &str) -> Result<&[f32]> {
        match &self.data {
            HostData::F32(v) => Ok(v),
            HostData::I32(_) => Err(Error::input("tensor", format!("{what} must be f32, not integer"))),
        }
    }

    /// The i32 elements, or an error naming `what` when the tensor holds floats.
    pub fn as_i32(&self, what: &str) -> Result<&[i32]> {
        match &self.data {
            HostData::I32(v) => Ok(v),
            HostData::F32(_) => Err(Error::input("tensor", format!("{what} must hold integer class indices, not floats"))),
        }
    }
}

/// The i32 labels of floating `data`, or an error naming (as `what`) the
/// first element that is not an integer within i32, its index and value.
pub(crate) fn integer_labels(what: &str, data: impl Iterator<Item = f64>) -> Result<Vec<i32>> {
    data.enumerate()
        .map(|(i, v)| {
            if v.fract() != 0.0 || !v.is_finite() {
                return Err(Error::input("tensor", format!("{what}[{i}] = {v} is not an integer; class indices are whole numbers")));
            }
            i32::try_from(v as i64).map_err(|_| Error::input("tensor", format!("{what}[{i}] = {v} is outside i32")))
        })
        .collect()
}

/// The per-axis index of flat element `i` of `shape` (row-major).
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (axis, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            index[axis] = i % n;
            i /= n;
        }
    }
    index
}
