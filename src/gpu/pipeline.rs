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

type Key = (&'static str, &'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub(crate) struct PipelineCache {
    kernels: Mutex<HashMap<Key, Arc<Kernel>>>,
    modules: Mutex<HashMap<&'static str, (wgpu::ShaderModule, String)>>,
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
        let cache = &self.inner.pipelines;
        if let Some(k) = cache.kernels.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(k.clone());
        }
        let device = &self.inner.device;
        let (module, source) = {
            let mut modules = cache.modules.lock().unwrap_or_else(|e| e.into_inner());
            match modules.get(file) {
                Some(m) => m.clone(),
                None => {
                    let source = shaders::compose(file)?;
                    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
                    let m = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(file),
                        source: wgpu::ShaderSource::Wgsl(source.as_str().into()),
                    });
                    if let Some(e) = pollster::block_on(scope.pop()) {
                        return Err(Error::Device(format!("shader {file} does not compile: {e}")));
                    }
                    modules.insert(file, (m.clone(), source.clone()));
                    (m, source)
                }
            }
        };
        let label = format!("{file}:{entry}");
        let named: Vec<(&str, f64)> = constants.to_vec();
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
        let kernel = Arc::new(Kernel { pipeline, layout, label, bindings });
        cache.kernels.lock().unwrap_or_else(|e| e.into_inner()).insert(key, kernel.clone());
        Ok(kernel)
    }
}
