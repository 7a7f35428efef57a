//! Compute pipelines, compiled once per device and set of override constants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::shaders;
use crate::gpu::context::GpuContext;

/// A compiled kernel, the layout of its one bind group, and the bindings
/// its entry point uses, by their names in the WGSL: plans bind by name, so
/// a binding number lives only in its shader.
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub label: String,
    pub bindings: Vec<KernelBinding>,
    /// What it was compiled from, so that its other access variant can be made.
    key: Key,
    access: Access,
}

/// How a kernel declares its storage bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    /// As the shader says: inputs `read`, outputs `read_write`.
    Declared,
    /// Every storage binding `read_write`. wgpu tracks usage per buffer, and
    /// one dispatch may not bind a buffer read-only in one binding and
    /// read-write in another; an engine's pool puts logits and gradient in
    /// one buffer, so a recording on tensors that share a buffer uses this
    /// variant (several read-write bindings of one buffer are accepted).
    ReadWrite,
}

impl Access {
    /// Every variant of a kernel's declarations the host compiles.
    #[cfg(test)]
    pub(crate) const ALL: [Access; 2] = [Access::Declared, Access::ReadWrite];

    /// The composed WGSL of kernel file `file`, its storage bindings declared this way.
    pub(crate) fn source(self, file: &str) -> Result<String> {
        let source = shaders::compose(file)?;
        Ok(match self {
            Access::Declared => source,
            Access::ReadWrite => source.replace("var<storage, read>", "var<storage, read_write>"),
        })
    }
}

/// One `@group(0) @binding(n) var name` that an entry point uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KernelBinding {
    pub name: String,
    pub binding: u32,
    /// Whether the entry point writes it (storage `read_write` it stores to, or atomics).
    pub written: bool,
}

impl Kernel {
    /// The binding number of the variable `name`, if the entry point uses it.
    pub fn binding(&self, name: &str) -> Option<&KernelBinding> {
        self.bindings.iter().find(|b| b.name == name)
    }
}

/// The bindings entry point `entry` of a composed module uses, read from the
/// module itself with naga (which validation also needs, to know the uses).
pub(crate) fn reflect_bindings(file: &str, source: &str, entry: &str) -> Result<Vec<KernelBinding>> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| Error::Device(format!("shader {file} does not parse: {}", e.emit_to_string(source))))?;
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .map_err(|e| Error::Device(format!("shader {file} does not validate: {}", e.emit_to_string(source))))?;
    let index = module
        .entry_points
        .iter()
        .position(|ep| ep.name == entry)
        .ok_or_else(|| Error::Device(format!("shader {file} has no entry point {entry}")))?;
    let uses = info.get_entry_point(index);
    let mut bindings: Vec<KernelBinding> = module
        .global_variables
        .iter()
        .filter_map(|(handle, var)| {
            let rb = var.binding.as_ref()?;
            let used = uses[handle];
            if used.is_empty() || rb.group != 0 {
                return None;
            }
            let written = used.intersects(naga::valid::GlobalUse::WRITE | naga::valid::GlobalUse::ATOMIC);
            Some(KernelBinding { name: var.name.clone().unwrap_or_default(), binding: rb.binding, written })
        })
        .collect();
    bindings.sort_by_key(|b| b.binding);
    Ok(bindings)
}

/// Shader file, entry point, override constants (as bits).
type Key = (&'static str, &'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub(crate) struct PipelineCache {
    kernels: Mutex<HashMap<(Key, Access), Arc<Kernel>>>,
    modules: Mutex<HashMap<(&'static str, Access), (wgpu::ShaderModule, String)>>,
}

impl GpuContext {
    /// The pipeline for `entry` in shader file `file`, with WGSL `override`
    /// constants set; compiled on first use and cached.
    pub(crate) fn kernel(
        &self,
        file: &'static str,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<Kernel>> {
        let key: Key = (file, entry, constants.iter().map(|(k, v)| (*k, v.to_bits())).collect());
        self.kernel_variant(key, Access::Declared)
    }

    /// `kernel` with its storage bindings declared as `access` says.
    pub(crate) fn with_access(&self, kernel: &Arc<Kernel>, access: Access) -> Result<Arc<Kernel>> {
        if kernel.access == access {
            return Ok(kernel.clone());
        }
        self.kernel_variant(kernel.key.clone(), access)
    }

    fn kernel_variant(&self, key: Key, access: Access) -> Result<Arc<Kernel>> {
        let (file, entry) = (key.0, key.1);
        let cache = &self.inner.pipelines;
        if let Some(k) = cache.kernels.lock().unwrap_or_else(|e| e.into_inner()).get(&(key.clone(), access)) {
            return Ok(k.clone());
        }
        let device = &self.inner.device;
        let (module, source) = {
            let mut modules = cache.modules.lock().unwrap_or_else(|e| e.into_inner());
            match modules.get(&(file, access)) {
                Some(m) => m.clone(),
                None => {
                    let source = access.source(file)?;
                    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
                    let m = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(file),
                        source: wgpu::ShaderSource::Wgsl(source.as_str().into()),
                    });
                    if let Some(e) = pollster::block_on(scope.pop()) {
                        return Err(Error::Device(format!("shader {file} does not compile: {e}")));
                    }
                    modules.insert((file, access), (m.clone(), source.clone()));
                    (m, source)
                }
            }
        };
        let label = format!("{file}:{entry}");
        let named: Vec<(&str, f64)> = key.2.iter().map(|(k, bits)| (*k, f64::from_bits(*bits))).collect();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &named, ..Default::default() },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(format!("pipeline {label} could not be created: {e}")));
        }
        let layout = pipeline.get_bind_group_layout(0);
        let bindings = reflect_bindings(file, &source, entry)?;
        let kernel = Arc::new(Kernel { pipeline, layout, label, bindings, key: key.clone(), access });
        cache.kernels.lock().unwrap_or_else(|e| e.into_inner()).insert((key, access), kernel.clone());
        Ok(kernel)
    }
}
