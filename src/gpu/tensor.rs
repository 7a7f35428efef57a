//! Typed tensors: a shape and an element type over a GPU buffer, or over host memory.

use crate::error::{Error, Result};
use crate::gpu::context::GpuContext;

/// Element types segloss reads and writes.
///
/// The kernels compute in f32 and read i32 class indices; a tensor of
/// another type is converted on the GPU as a plan records it (see
/// [`crate::InputShapes::dtypes`]). Values stay f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float: logits, dense targets, weights, values, gradients.
    F32,
    /// 32-bit signed integer: class-index targets (which may hold an ignore value).
    I32,
    /// IEEE half precision: logits, dense targets, weights, gradients.
    F16,
    /// bfloat16 (the upper half of an f32): logits, dense targets, weights, gradients.
    BF16,
    /// Unsigned byte class indices.
    U8,
    /// Unsigned 16-bit class indices.
    U16,
    /// 64-bit class indices (PyTorch's default); a value outside i32 is an
    /// out-of-range label.
    I64,
}

impl DType {
    /// Every element type.
    pub const ALL: [DType; 7] = [DType::F32, DType::I32, DType::F16, DType::BF16, DType::U8, DType::U16, DType::I64];

    /// Bytes one element takes.
    pub fn size(self) -> u64 {
        match self {
            DType::U8 => 1,
            DType::F16 | DType::BF16 | DType::U16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
        }
    }

    /// Whether it holds floating-point values (logits, dense targets, weights, gradients).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// The type the kernels compute in: f32 for the floats, i32 for the integers.
    pub fn widened(self) -> DType {
        if self.is_float() { DType::F32 } else { DType::I32 }
    }

    /// `f32`, `f16`, … as the command line and the JSON name it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::U8 => "u8",
            DType::U16 => "u16",
            DType::I64 => "i64",
        }
    }

    /// The type named `name` (`f16`, `u8`, …).
    pub fn from_name(name: &str) -> Result<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| {
            let names: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
            Error::input("dtype", format!("{name} is not an element type; one of {}", names.join(", ")))
        })
    }
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
        let bytes = (shape.iter().product::<usize>() as u64 * dtype.size()).next_multiple_of(4).max(4);
        let buffer = ctx.create_buffer("segloss tensor", bytes, tensor_usage())?;
        Ok(GpuTensor { buffer, offset: 0, shape: shape.to_vec(), dtype })
    }

    /// Uploads host data into a new tensor; an error when the data does not
    /// fill its shape or the device cannot hold it.
    pub fn from_host(ctx: &GpuContext, host: &HostTensor) -> Result<Self> {
        host.check("tensor")?;
        let t = Self::zeros(ctx, &host.shape, host.dtype())?;
        ctx.queue().write_buffer(&t.buffer, 0, &host.padded_bytes());
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

    /// Bytes segloss binds for the elements: their size rounded up to a
    /// multiple of 4 (a storage binding's granule), so an f16 tensor of odd
    /// length needs two bytes of padding in its buffer (an engine's pool,
    /// which aligns every tensor, always has them).
    pub fn byte_len(&self) -> u64 {
        (self.numel() as u64 * self.dtype.size()).next_multiple_of(4)
    }

    /// Reads the tensor back as f32, blocking.
    pub fn read_f32(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        pollster::block_on(self.read_f32_async(ctx))
    }

    /// Reads the tensor back as f32. The future blocks its thread in
    /// `device.poll` until the copy is done (no helper thread is spawned).
    pub async fn read_f32_async(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        if !self.dtype.is_float() {
            return Err(Error::input("tensor", format!("read_f32 reads floats; this tensor is {}", self.dtype.name())));
        }
        let bytes = read_bytes(ctx, &self.buffer, self.offset, self.byte_len()).await?;
        match HostTensor::from_bytes(&self.shape, self.dtype, &bytes).into_widened().data {
            HostData::F32(v) => Ok(v),
            other => Err(Error::input("tensor", format!("read_f32 widened a float tensor to {}", other.dtype().name()))),
        }
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

/// Host-side element storage, one variant per [`DType`].
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// f32 elements.
    F32(Vec<f32>),
    /// i32 elements.
    I32(Vec<i32>),
    /// f16 elements.
    F16(Vec<half::f16>),
    /// bf16 elements.
    BF16(Vec<half::bf16>),
    /// u8 elements.
    U8(Vec<u8>),
    /// u16 elements.
    U16(Vec<u16>),
    /// i64 elements.
    I64(Vec<i64>),
}

impl HostData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::I32(_) => DType::I32,
            HostData::F16(_) => DType::F16,
            HostData::BF16(_) => DType::BF16,
            HostData::U8(_) => DType::U8,
            HostData::U16(_) => DType::U16,
            HostData::I64(_) => DType::I64,
        }
    }
}

/// `$body` with `$v` bound to the elements of whichever variant `$data` is.
macro_rules! each_host_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            HostData::F32($v) => $body,
            HostData::I32($v) => $body,
            HostData::F16($v) => $body,
            HostData::BF16($v) => $body,
            HostData::U8($v) => $body,
            HostData::U16($v) => $body,
            HostData::I64($v) => $body,
        }
    };
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

    /// `a` with `b`'s items after its own along axis 0 (slices put back
    /// together); an error unless the types and the other axes agree.
    pub fn concat_rows(a: &HostTensor, b: &HostTensor) -> Result<HostTensor> {
        if a.dtype() != b.dtype() || a.shape.get(1..) != b.shape.get(1..) || a.shape.is_empty() {
            return Err(Error::input("tensor", format!("cannot join {} {:?} and {} {:?} along axis 0", a.dtype().name(), a.shape, b.dtype().name(), b.shape)));
        }
        let mut shape = a.shape.clone();
        shape[0] += b.shape[0];
        let data = match (&a.data, &b.data) {
            (HostData::F32(x), HostData::F32(y)) => HostData::F32([x.as_slice(), y].concat()),
            (HostData::I32(x), HostData::I32(y)) => HostData::I32([x.as_slice(), y].concat()),
            (HostData::F16(x), HostData::F16(y)) => HostData::F16([x.as_slice(), y].concat()),
            (HostData::BF16(x), HostData::BF16(y)) => HostData::BF16([x.as_slice(), y].concat()),
            (HostData::U8(x), HostData::U8(y)) => HostData::U8([x.as_slice(), y].concat()),
            (HostData::U16(x), HostData::U16(y)) => HostData::U16([x.as_slice(), y].concat()),
            (HostData::I64(x), HostData::I64(y)) => HostData::I64([x.as_slice(), y].concat()),
            _ => unreachable!("the types were checked equal"),
        };
        Ok(HostTensor { shape, data })
    }

    /// Items `rows` of axis 0 (one device's slice of a batch), every type.
    ///
    /// ```
    /// let t = segloss::HostTensor::f32(&[3, 2], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0])?;
    /// assert_eq!(t.rows(1..3).to_f64(), vec![2.0, 3.0, 4.0, 5.0]);
    /// # Ok::<(), segloss::Error>(())
    /// ```
    pub fn rows(&self, rows: std::ops::Range<usize>) -> HostTensor {
        let row: usize = self.shape.iter().skip(1).product();
        let (a, b) = (rows.start * row, rows.end * row);
        let mut shape = self.shape.clone();
        if let Some(n) = shape.first_mut() {
            *n = rows.end - rows.start;
        }
        let data = match &self.data {
            HostData::F32(v) => HostData::F32(v[a..b].to_vec()),
            HostData::I32(v) => HostData::I32(v[a..b].to_vec()),
            HostData::F16(v) => HostData::F16(v[a..b].to_vec()),
            HostData::BF16(v) => HostData::BF16(v[a..b].to_vec()),
            HostData::U8(v) => HostData::U8(v[a..b].to_vec()),
            HostData::U16(v) => HostData::U16(v[a..b].to_vec()),
            HostData::I64(v) => HostData::I64(v[a..b].to_vec()),
        };
        HostTensor { shape, data }
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
        let wide;
        let v = match &self.data {
            HostData::F32(v) => v,
            HostData::F16(_) | HostData::BF16(_) => {
                wide = self.widened();
                wide.as_f32(what)?
            }
            _ => return Ok(()),
        };
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
        each_host_data!(&self.data, v => v.len())
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// A tensor of `shape` and `dtype` from its raw bytes (as
    /// [`HostTensor::bytes`] gives them; padding past the elements is ignored).
    pub(crate) fn from_bytes(shape: &[usize], dtype: DType, bytes: &[u8]) -> Self {
        let bytes = &bytes[..shape.iter().product::<usize>() * dtype.size() as usize];
        let data = match dtype {
            DType::F32 => HostData::F32(bytemuck::pod_collect_to_vec(bytes)),
            DType::I32 => HostData::I32(bytemuck::pod_collect_to_vec(bytes)),
            DType::F16 => HostData::F16(bytemuck::pod_collect_to_vec(bytes)),
            DType::BF16 => HostData::BF16(bytemuck::pod_collect_to_vec(bytes)),
            DType::U8 => HostData::U8(bytes.to_vec()),
            DType::U16 => HostData::U16(bytemuck::pod_collect_to_vec(bytes)),
            DType::I64 => HostData::I64(bytemuck::pod_collect_to_vec(bytes)),
        };
        HostTensor { shape: shape.to_vec(), data }
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        each_host_data!(&self.data, v => bytemuck::cast_slice(v))
    }

    /// The raw bytes, zero-padded to a multiple of 4 (what a GPU buffer holds).
    pub(crate) fn padded_bytes(&self) -> Vec<u8> {
        let mut b = self.bytes().to_vec();
        b.resize(b.len().next_multiple_of(4), 0);
        b
    }

    /// The elements as f64, whatever their type (an i64 beyond 2^53 rounds).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            HostData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
            HostData::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
            HostData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::U16(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// The tensor in the type the kernels compute in ([`DType::widened`]),
    /// exactly as the GPU widens it: f16 and bf16 to f32, u8, u16 and i64
    /// to i32, an i64 outside i32 to [`I64_OUT_OF_RANGE`].
    pub fn widened(&self) -> HostTensor {
        let data = self.widened_data().unwrap_or_else(|| self.data.clone());
        HostTensor { shape: self.shape.clone(), data }
    }

    /// [`HostTensor::widened`], without a copy when the tensor is f32 or i32 already.
    pub fn into_widened(self) -> HostTensor {
        match self.widened_data() {
            Some(data) => HostTensor { data, ..self },
            None => self,
        }
    }

    /// The widened elements, or `None` when the type is the kernels' own.
    fn widened_data(&self) -> Option<HostData> {
        Some(match &self.data {
            HostData::F32(_) | HostData::I32(_) => return None,
            HostData::F16(v) => HostData::F32(v.iter().map(|x| x.to_f32()).collect()),
            HostData::BF16(v) => HostData::F32(v.iter().map(|x| x.to_f32()).collect()),
            HostData::U8(v) => HostData::I32(v.iter().map(|&x| x as i32).collect()),
            HostData::U16(v) => HostData::I32(v.iter().map(|&x| x as i32).collect()),
            HostData::I64(v) => HostData::I32(v.iter().map(|&x| i32::try_from(x).unwrap_or(I64_OUT_OF_RANGE)).collect()),
        })
    }

    /// The tensor rounded or narrowed to `dtype`: round to nearest even for
    /// f16 and bf16, finite values beyond the type's range saturating to its
    /// largest (as the GPU narrows a gradient); an error naming the first
    /// element an integer type cannot hold, or when floats and class indices
    /// would be mixed.
    pub fn to_dtype(&self, dtype: DType) -> Result<HostTensor> {
        let wide = self.widened();
        let data = match (&wide.data, dtype) {
            (HostData::F32(v), DType::F32) => HostData::F32(v.clone()),
            (HostData::F32(v), DType::F16) => HostData::F16(v.iter().map(|&x| half::f16::from_f32(saturate(x, half::f16::MAX.to_f32()))).collect()),
            (HostData::F32(v), DType::BF16) => HostData::BF16(v.iter().map(|&x| saturated_bf16(x)).collect()),
            (HostData::I32(v), DType::I32) => HostData::I32(v.clone()),
            (HostData::I32(v), DType::I64) => HostData::I64(v.iter().map(|&x| x as i64).collect()),
            (HostData::I32(v), DType::U8) => HostData::U8(narrow_labels(v, "u8")?),
            (HostData::I32(v), DType::U16) => HostData::U16(narrow_labels(v, "u16")?),
            (_, to) => {
                return Err(Error::input("tensor", format!("a {} tensor cannot become {}: floats and class indices do not mix", self.dtype().name(), to.name())));
            }
        };
        Ok(HostTensor { shape: self.shape.clone(), data })
    }

    /// The f32 elements, or an error naming `what` when the tensor holds another type.
    pub fn as_f32(&self, what: &str) -> Result<&[f32]> {
        match &self.data {
            HostData::F32(v) => Ok(v),
            other => Err(Error::input("tensor", format!("{what} must be f32 here, not {}", other.dtype().name()))),
        }
    }

    /// The i32 elements, or an error naming `what` when the tensor holds another type.
    pub fn as_i32(&self, what: &str) -> Result<&[i32]> {
        match &self.data {
            HostData::I32(v) => Ok(v),
            HostData::F32(_) | HostData::F16(_) | HostData::BF16(_) => {
                Err(Error::input("tensor", format!("{what} must hold integer class indices, not floats")))
            }
            other => Err(Error::input("tensor", format!("{what} must be i32 here, not {}", other.dtype().name()))),
        }
    }
}

/// The i32 an i64 class index outside i32 becomes, on the GPU and on the
/// host alike: outside `[0, C)` for every loss, so it is reported as an
/// out-of-range label (unless `ignore_index` is this very value).
pub const I64_OUT_OF_RANGE: i32 = i32::MIN;

/// `x` clamped to `±max` when finite.
fn saturate(x: f32, max: f32) -> f32 {
    if x.is_finite() { x.clamp(-max, max) } else { x }
}

/// `x` rounded to bf16, a finite `x` that rounds past bf16's range to its largest.
fn saturated_bf16(x: f32) -> half::bf16 {
    let b = half::bf16::from_f32(x);
    if x.is_finite() && b.is_infinite() { if x > 0.0 { half::bf16::MAX } else { half::bf16::MIN } } else { b }
}

fn narrow_labels<T: TryFrom<i32>>(v: &[i32], name: &str) -> Result<Vec<T>> {
    v.iter()
        .enumerate()
        .map(|(i, &x)| T::try_from(x).map_err(|_| Error::input("tensor", format!("class index [{i}] = {x} does not fit {name}"))))
        .collect()
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
