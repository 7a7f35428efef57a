//! Compute pipelines, compiled once per device and set of override constants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::{GpuContext, shaders};

/// A compiled kernel and the layout of its one bind group.
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub label: String,
}

type Key = (&'static str, &'static str, Vec<(&'static str, u64)>);

#[derive(Default)]
pub(crate) struct PipelineCache {
    kernels: Mutex<HashMap<Key, Arc<Kernel>>>,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
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
        let module = {
            let mut modules = cache.modules.lock().unwrap_or_else(|e| e.into_inner());
            match modules.get(file) {
                Some(m) => m.clone(),
                None => {
                    let source = shaders::compose(file)?;
                    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
                    let m = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(file),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    });
                    if let Some(e) = pollster::block_on(scope.pop()) {
                        return Err(Error::Device(format!("shader {file} does not compile: {e}")));
                    }
                    modules.insert(file, m.clone());
                    m
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
        let kernel = Arc::new(Kernel { pipeline, layout, label });
        cache.kernels.lock().unwrap_or_else(|e| e.into_inner()).insert(key, kernel.clone());
        Ok(kernel)
    }
}
