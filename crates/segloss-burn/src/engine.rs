//! One wgpu device for burn and segloss.

use burn::backend::DispatchDevice;
use burn::backend::wgpu::{WgpuDevice, WgpuSetup};
use burn::tensor::Device;
use burn::tensor::wgpu::WgpuOptions;
use segloss::{CompoundConfig, ContextOptions, GpuContext, LossConfig};

use crate::error::{Error, Result};
use crate::loss::BurnLoss;
use crate::sharded::ShardedBurnLoss;

/// burn's wgpu device and segloss's context on the same `wgpu::Device` and
/// `wgpu::Queue`, so that segloss's kernels read burn's buffers in place and
/// their work is ordered with burn's on one queue.
///
/// burn lets a wgpu device be initialized once per process: make one
/// `SeglossBurn` and clone it (it is cheap), or register the setup you
/// already made with [`SeglossBurn::from_setup`].
#[derive(Clone)]
pub struct SeglossBurn {
    device: Device,
    wgpu_device: WgpuDevice,
    ctx: GpuContext,
    adapter: wgpu::AdapterInfo,
}

impl SeglossBurn {
    /// Initializes burn's default wgpu device (the best adapter burn finds)
    /// and shares it with segloss.
    pub fn init() -> Result<Self> {
        Self::init_with(Device::wgpu_options())
    }

    /// Initializes burn's wgpu device with `options` (adapter kind, graphics
    /// API, memory configuration) and shares it with segloss.
    pub fn init_with(options: WgpuOptions) -> Result<Self> {
        let (device, setup) = options.init_with_setup().map_err(|e| Error::Init(e.to_string()))?;
        Self::share(device, &setup)
    }

    /// Registers a wgpu setup the caller made (its instance, adapter, device
    /// and queue) as a burn device and shares it with segloss. Register a
    /// setup once: each registration is a new burn device.
    pub fn from_setup(setup: WgpuSetup) -> Result<Self> {
        let device = Device::wgpu_options().setup(setup.clone()).init().map_err(|e| Error::Init(e.to_string()))?;
        Self::share(device, &setup)
    }

    /// Opens a wgpu device of its own on the default adapter and registers
    /// it ([`SeglossBurn::from_setup`]): a second burn device on the same
    /// GPU, as a data-parallel replica or a test's fresh device.
    pub fn on_own_device(label: &str) -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).map_err(|e| Error::Init(format!("no wgpu adapter: {e}")))?;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some(label),
            required_features: adapter.features() - wgpu::Features::MAPPABLE_PRIMARY_BUFFERS,
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .map_err(|e| Error::Init(format!("no wgpu device: {e}")))?;
        let backend = adapter.get_info().backend;
        Self::from_setup(WgpuSetup { instance, adapter, device, queue, backend })
    }

    fn share(device: Device, setup: &WgpuSetup) -> Result<Self> {
        let wgpu_device = wgpu_device_of(&device).ok_or_else(|| Error::Init(format!("{device:?} is not a wgpu device")))?;
        let ctx = GpuContext::from_device(setup.device.clone(), setup.queue.clone(), ContextOptions::default());
        Ok(SeglossBurn { device, wgpu_device, ctx, adapter: setup.adapter.get_info() })
    }

    /// burn's device (without autodiff; call `.autodiff()` on a clone to train).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// segloss's context on burn's `wgpu::Device` (to plan losses directly, or
    /// read [`GpuContext::buffers_created`]).
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The adapter burn's device runs on.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.adapter
    }

    /// The cubecl device the tensors of this engine live on.
    pub(crate) fn wgpu_device(&self) -> &WgpuDevice {
        &self.wgpu_device
    }

    /// A loss from its configuration.
    pub fn loss(&self, config: LossConfig) -> Result<BurnLoss> {
        config.validate()?;
        Ok(BurnLoss::single(self.clone(), config))
    }

    /// A loss from its JSON configuration, `{"loss": "dice", "params": {…}}`.
    pub fn loss_json(&self, json: &str) -> Result<BurnLoss> {
        self.loss(LossConfig::from_json(json)?)
    }

    /// A loss for one device of a data-parallel batch: its statistics, then
    /// the global loss from their sum over devices ([`ShardedBurnLoss`]).
    pub fn sharded_loss(&self, config: LossConfig) -> Result<ShardedBurnLoss> {
        config.validate()?;
        if let Some(why) = config.unsplittable() {
            return Err(segloss::Error::Config { loss: config.name(), message: format!("does not split across data-parallel devices: {why}") }.into());
        }
        Ok(ShardedBurnLoss::single(self.clone(), config))
    }

    /// A weighted sum of losses for one device of a data-parallel batch:
    /// every term's statistics one after the other ([`ShardedBurnLoss`]).
    pub fn sharded_compound(&self, config: CompoundConfig) -> Result<ShardedBurnLoss> {
        config.validate()?;
        if let Some((t, why)) = config.terms.iter().find_map(|t| t.loss.unsplittable().map(|why| (t, why))) {
            return Err(segloss::Error::Config { loss: t.loss.name(), message: format!("does not split across data-parallel devices: {why}") }.into());
        }
        Ok(ShardedBurnLoss::compound(self.clone(), config))
    }

    /// A weighted sum of losses, recorded into one value and one gradient.
    pub fn compound(&self, config: CompoundConfig) -> Result<BurnLoss> {
        config.validate()?;
        Ok(BurnLoss::compound(self.clone(), config))
    }
}

/// The cubecl wgpu device behind a burn device, if it is one.
pub(crate) fn wgpu_device_of(device: &Device) -> Option<WgpuDevice> {
    #[allow(unreachable_patterns)]
    match device.clone().without_autodiff().as_dispatch() {
        DispatchDevice::Cube(burn::cubecl::Device::Wgpu(d)) => Some(d.clone()),
        _ => None,
    }
}
