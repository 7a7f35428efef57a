//! The GPU context: one device and queue, the limits segloss plans against,
//! the pipeline cache and the scratch-buffer pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::gpu::pipeline::PipelineCache;
use crate::gpu::pool::{BufferPool, PooledBuffer};

/// What segloss asks of the device beyond WebGPU's defaults, and the caps a
/// caller may put on it.
///
/// ```no_run
/// // A device with exactly the limits a WebGPU browser or engine asks for.
/// let options = segloss::ContextOptions { limits: Some(wgpu::Limits::default()), ..Default::default() };
/// let ctx = segloss::GpuContext::with_options(options)?;
/// # Ok::<(), segloss::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Caps the bytes one storage binding may cover (the device's own limit
    /// otherwise). Tensors larger than this are processed in several
    /// bindings; tests use a small cap to exercise that path cheaply.
    pub max_binding_bytes: Option<u64>,
    /// The limits to request of the adapter. `None` reads `SEGLOSS_LIMITS`
    /// (`webgpu`: [`wgpu::Limits::default`]; `downlevel`:
    /// [`wgpu::Limits::downlevel_defaults`]) and otherwise asks for WebGPU's
    /// defaults with the adapter's own buffer and binding sizes and up to 16
    /// storage buffers a stage. Kernels that need more than the device gives
    /// are refused when a plan is made, with the limit named.
    pub limits: Option<wgpu::Limits>,
    /// Reads and writes f16 tensors as pairs in u32 words even where the
    /// device has `SHADER_F16` (which segloss requests when the adapter
    /// offers it, and otherwise uses where an engine's device has it):
    /// the path devices without it take, which tests run on devices that
    /// have it. `SEGLOSS_F16=words` in the environment sets it too.
    pub packed_f16: bool,
}

/// `SEGLOSS_LIMITS`, as [`ContextOptions::limits`] reads it.
fn limits_from_env() -> Result<Option<wgpu::Limits>> {
    named_limits(std::env::var("SEGLOSS_LIMITS").ok().as_deref())
}

/// The limits a `SEGLOSS_LIMITS` value names; `None` for segloss's own request.
fn named_limits(name: Option<&str>) -> Result<Option<wgpu::Limits>> {
    match name {
        None | Some("") | Some("adapter") => Ok(None),
        Some("webgpu") => Ok(Some(wgpu::Limits::default())),
        Some("downlevel") => Ok(Some(wgpu::Limits::downlevel_defaults())),
        Some(other) => Err(Error::Device(format!("SEGLOSS_LIMITS={other} is not one of adapter, webgpu, downlevel"))),
    }
}

/// One adapter as `segloss info` reports it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Name, backend, device type and driver, as wgpu reports them.
    pub info: wgpu::AdapterInfo,
    /// Optional features the adapter offers.
    pub features: wgpu::Features,
    /// The adapter's best limits.
    pub limits: wgpu::Limits,
}

impl AdapterSummary {
    /// The name with the backend and device type beside it
    /// (`llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, Cpu]`): one device often
    /// appears once per backend (Vulkan and GL) under the same name.
    pub fn label(&self) -> String {
        adapter_label(&self.info)
    }
}

fn adapter_label(info: &wgpu::AdapterInfo) -> String {
    format!("{} [{:?}, {:?}]", info.name, info.backend, info.device_type)
}

pub(crate) struct Inner {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: Option<wgpu::AdapterInfo>,
    pub binding_limit: u64,
    pub offset_alignment: u64,
    /// Whether kernels read and write f16 as `f16` (else in u32 words).
    pub native_f16: bool,
    pub pipelines: PipelineCache,
    pub pool: BufferPool,
    pub buffers_created: AtomicU64,
    pub bind_groups_created: AtomicU64,
}

/// A wgpu device and queue with everything segloss keeps per device.
///
/// Cheap to clone (it is reference counted). Create one with
/// [`GpuContext::new`], or wrap an engine's own device with
/// [`GpuContext::from_device`].
///
/// ```no_run
/// let ctx = segloss::GpuContext::new()?;
/// println!("running on {}", ctx.adapter_name());
/// # Ok::<(), segloss::Error>(())
/// ```
#[derive(Clone)]
pub struct GpuContext {
    pub(crate) inner: Arc<Inner>,
}

const NO_ADAPTER_HELP: &str = "segloss needs a Vulkan, Metal or DX12 device. On Linux without a GPU, \
install Mesa's software Vulkan driver (lavapipe): `apt-get install mesa-vulkan-drivers libvulkan1` \
on Debian or Ubuntu, `dnf install mesa-vulkan-drivers vulkan-loader` on Fedora. \
WGPU_BACKEND and WGPU_ADAPTER_NAME select among several adapters.";

impl GpuContext {
    /// Opens the best adapter (see [`GpuContext::new_async`]), blocking.
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::new_async(ContextOptions::default()))
    }

    /// Opens the best adapter with options, blocking.
    pub fn with_options(options: ContextOptions) -> Result<Self> {
        pollster::block_on(Self::new_async(options))
    }

    /// Opens the best adapter: the one `WGPU_ADAPTER_NAME` names (a
    /// case-insensitive substring) among the backends `WGPU_BACKEND` allows,
    /// else a discrete or integrated GPU before a software one, and Vulkan
    /// before other backends that expose the same device.
    pub async fn new_async(options: ContextOptions) -> Result<Self> {
        let instance = instance();
        let adapters = instance.enumerate_adapters(backends_from_env()).await;
        let adapter = choose_adapter(adapters)?;
        let info = adapter.get_info();
        let available = adapter.limits();
        let limits = match options.limits.clone().map_or_else(limits_from_env, |l| Ok(Some(l)))? {
            Some(requested) => requested,
            None => wgpu::Limits {
                // Large tensors need large buffers; bindings are chunked anyway.
                max_buffer_size: available.max_buffer_size,
                max_storage_buffer_binding_size: available.max_storage_buffer_binding_size,
                max_storage_buffers_per_shader_stage: available.max_storage_buffers_per_shader_stage.min(16),
                ..wgpu::Limits::default()
            },
        };
        let features = adapter.features() & optional_features();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("segloss"),
                required_features: features,
                required_limits: limits,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Device(format!("opening {} ({:?}): {e}", info.name, info.backend)))?;
        Ok(Self::build(device, queue, Some(info), options))
    }

    /// Wraps a device and queue the caller already has (a training engine's).
    /// segloss uses the device's limits and features as they are.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, options: ContextOptions) -> Self {
        Self::build(device, queue, None, options)
    }

    fn build(device: wgpu::Device, queue: wgpu::Queue, info: Option<wgpu::AdapterInfo>, options: ContextOptions) -> Self {
        let limits = device.limits();
        let mut binding_limit = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        if let Some(cap) = options.max_binding_bytes {
            binding_limit = binding_limit.min(cap.max(4096));
        }
        let offset_alignment = limits.min_storage_buffer_offset_alignment as u64;
        let packed_f16 = options.packed_f16 || std::env::var("SEGLOSS_F16").is_ok_and(|v| v == "words");
        let native_f16 = device.features().contains(wgpu::Features::SHADER_F16) && !packed_f16;
        // Whole-buffer bindings of pooled buffers stay within a limit that is a multiple of the alignment.
        binding_limit = binding_limit / offset_alignment * offset_alignment;
        GpuContext {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                binding_limit,
                offset_alignment,
                native_f16,
                pipelines: PipelineCache::default(),
                pool: BufferPool::new(binding_limit, limits.max_buffer_size),
                buffers_created: AtomicU64::new(0),
                bind_groups_created: AtomicU64::new(0),
            }),
        }
    }

    /// Every adapter wgpu sees, with its features and limits.
    pub fn list_adapters() -> Vec<AdapterSummary> {
        let instance = instance();
        pollster::block_on(instance.enumerate_adapters(backends_from_env()))
            .into_iter()
            .map(|a| AdapterSummary { info: a.get_info(), features: a.features(), limits: a.limits() })
            .collect()
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The adapter's description, when segloss opened the device itself.
    pub fn adapter_info(&self) -> Option<&wgpu::AdapterInfo> {
        self.inner.info.as_ref()
    }

    /// A one-line name of the device with its backend and type, as
    /// [`AdapterSummary::label`] writes it ("llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, Cpu]").
    pub fn adapter_name(&self) -> String {
        match &self.inner.info {
            Some(i) => adapter_label(i),
            None => "caller's device".to_string(),
        }
    }

    /// The device's `min_storage_buffer_offset_alignment`: a [`GpuTensor`](crate::gpu::tensor::GpuTensor)'s
    /// byte offset in its buffer must be a multiple of it. It differs between
    /// devices (32 on lavapipe, 256 on many discrete GPUs), so an engine
    /// sub-allocating tensors in one buffer should align to this value, not to a constant.
    pub fn offset_alignment(&self) -> u64 {
        self.inner.offset_alignment
    }

    /// The largest number of bytes one storage binding covers.
    pub fn binding_limit(&self) -> u64 {
        self.inner.binding_limit
    }

    /// Borrows a buffer of at least `size` bytes with `usage` from the
    /// context's pool, creating one only when none is free; it returns to
    /// the pool when dropped.
    pub fn scratch(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> Result<PooledBuffer> {
        self.inner.pool.take(size, usage, |bytes| self.create_buffer(label, bytes, usage))
    }

    /// How many GPU buffers segloss has created on this context so far: a
    /// training loop that reuses plans sees it stop growing after its first step.
    pub fn buffers_created(&self) -> u64 {
        self.inner.buffers_created.load(Ordering::Relaxed)
    }

    /// How many bind groups segloss has created on this context so far.
    /// Recording a plan again on tensors at placements it saw in its last
    /// few recordings creates none, so in an engine's steady state it stops
    /// growing too.
    pub fn bind_groups_created(&self) -> u64 {
        self.inner.bind_groups_created.load(Ordering::Relaxed)
    }

    pub(crate) fn count_bind_group(&self) {
        self.inner.bind_groups_created.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether kernels that read f16 tensors in place read them as WGSL's
    /// `f16` (the device has `SHADER_F16`, and [`ContextOptions::packed_f16`]
    /// is off), or as pairs in u32 words.
    pub fn native_f16(&self) -> bool {
        self.inner.native_f16
    }

    /// Whether timestamp queries are available for timing.
    pub fn has_timestamps(&self) -> bool {
        self.inner.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// A new buffer, or an error naming the limit when the device cannot hold one that large.
    pub(crate) fn create_buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let size = size.max(16).next_multiple_of(4);
        let max = self.inner.device.limits().max_buffer_size;
        if size > max {
            return Err(Error::limit("buffer", format!("{label}: a {size}-byte buffer exceeds the device's largest, {max} bytes")));
        }
        self.inner.buffers_created.fetch_add(1, Ordering::Relaxed);
        Ok(self.inner.device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size, usage, mapped_at_creation: false }))
    }

    /// A buffer holding `bytes`, for parameters written once when a plan is
    /// made: uniforms, class weights, lookup tables — kilobytes, where every
    /// device allows at least 256 MiB, so this cannot fail.
    pub(crate) fn create_buffer_with(&self, label: &str, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let buffer = self
            .create_buffer(label, bytes.len() as u64, usage | wgpu::BufferUsages::COPY_DST)
            .expect("a plan's parameter buffer is far below the smallest max_buffer_size (256 MiB)");
        self.inner.queue.write_buffer(&buffer, 0, bytes);
        buffer
    }

    /// Blocks until the device has finished all submitted work.
    pub fn wait_idle(&self) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Device(format!("waiting for the GPU: {e}")))
    }
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext").field("adapter", &self.adapter_name()).finish()
    }
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn backends_from_env() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())
}

/// Features segloss uses when present; everything works without them
/// (subgroups speed up the radix sort's local ranking; `SHADER_F16` lets
/// kernels read and write f16 tensors as `f16`, not in u32 words).
fn optional_features() -> wgpu::Features {
    wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS | wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16
}

fn choose_adapter(adapters: Vec<wgpu::Adapter>) -> Result<wgpu::Adapter> {
    if adapters.is_empty() {
        return Err(Error::NoAdapter(format!("wgpu found no adapter. {NO_ADAPTER_HELP}")));
    }
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted = wanted.to_lowercase();
        let names: Vec<String> = adapters.iter().map(|a| adapter_label(&a.get_info())).collect();
        return adapters
            .into_iter()
            .filter(|a| a.get_info().name.to_lowercase().contains(&wanted))
            .min_by_key(rank)
            .ok_or_else(|| Error::NoAdapter(format!("WGPU_ADAPTER_NAME={wanted} matches none of {names:?}")));
    }
    Ok(adapters.into_iter().min_by_key(rank).expect("non-empty"))
}

/// Lower is better: real GPUs first, then Vulkan before the other backends
/// (the GL view of a device lacks most compute features).
fn rank(adapter: &wgpu::Adapter) -> (u8, u8) {
    let info = adapter.get_info();
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal | wgpu::Backend::Dx12 => 1,
        _ => 2,
    };
    (kind, backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segloss_limits_names_webgpu_downlevel_or_the_adapter() {
        assert!(named_limits(None).unwrap().is_none());
        assert!(named_limits(Some("adapter")).unwrap().is_none());
        assert_eq!(named_limits(Some("webgpu")).unwrap().unwrap().max_storage_buffers_per_shader_stage, 8);
        assert_eq!(named_limits(Some("downlevel")).unwrap().unwrap().max_storage_buffers_per_shader_stage, 4);
        let e = named_limits(Some("huge")).unwrap_err().to_string();
        assert!(e.contains("SEGLOSS_LIMITS=huge"), "{e}");
    }
}
