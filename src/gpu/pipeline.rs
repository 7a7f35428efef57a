//! Compute pipelines, compiled once per device and set of override constants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::shaders::{self, Encoding};
use crate::gpu::context::GpuContext;
use crate::gpu::tensor::DType;

/// A compiled kernel, the layout of its one bind group, and the bindings
/// its entry point uses, by their names in the WGSL: plans bind by name, so
/// a binding number lives only in its shader.
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub label: String,
    pub bindings: Vec<KernelBinding>,
    /// Its `//#elements` bindings and the element type each was compiled for.
    pub elements: Vec<(&'static str, DType)>,
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

    /// The composed WGSL of kernel file `file`, its `//#elements` bindings
    /// encoded as `elements` says and its storage bindings declared this way.
    pub(crate) fn source(self, file: &str, elements: &shaders::Elements) -> Result<shaders::Composed> {
        let mut composed = shaders::compose_with(file, elements)?;
        if self == Access::ReadWrite {
            composed.source = composed.source.replace("var<storage, read>", "var<storage, read_write>");
        }
        Ok(composed)
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

    /// The element type binding `name` was compiled for, if it is an
    /// `//#elements` binding (others are bound as 4-byte words, whatever
    /// the tensor holds).
    pub fn element(&self, name: &str) -> Option<DType> {
        self.elements.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
    }

    /// [`Kernel::element`] of the binding numbered `binding`, with its name.
    pub fn element_at(&self, binding: u32) -> Option<(&str, DType)> {
        let b = self.bindings.iter().find(|b| b.binding == binding)?;
        Some((&b.name, self.element(&b.name)?))
    }
}

/// Kernel `file`'s composed `source` parsed and validated by naga, with
/// every capability allowed (the device's own validation refuses what its
/// adapter lacks).
pub(crate) fn parse_module(file: &str, source: &str) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| Error::Device(format!("shader {file} does not parse: {}", e.emit_to_string(source))))?;
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .map_err(|e| Error::Device(format!("shader {file} does not validate: {}", e.emit_to_string(source))))?;
    Ok((module, info))
}

/// A kernel file composed in one access variant and one encoding of its
/// `//#elements` bindings, parsed and validated: what the tests that walk
/// every kernel (limits, translation, lints) start from.
#[cfg(test)]
pub(crate) struct ComposedKernel {
    pub file: &'static str,
    pub access: Access,
    /// How its `//#elements` bindings (all of them) hold their elements.
    pub encoding: Encoding,
    pub source: String,
    pub module: naga::Module,
    pub info: naga::valid::ModuleInfo,
}

/// Every kernel file in every access variant the host compiles, its
/// `//#elements` bindings (if any) in each encoding.
#[cfg(test)]
pub(crate) fn every_composed_kernel() -> impl Iterator<Item = ComposedKernel> {
    const ENCODINGS: [Encoding; 4] = [Encoding::F32, Encoding::F16, Encoding::F16Words, Encoding::Bf16Words];
    shaders::kernel_names().flat_map(|file| {
        let names = shaders::compose_with(file, &[]).expect("every kernel file composes").element_bindings;
        let encodings = if names.is_empty() { &ENCODINGS[..1] } else { &ENCODINGS[..] };
        encodings.iter().flat_map(move |&encoding| {
            let elements: Vec<(&'static str, Encoding)> = names.iter().map(|n| (*n, encoding)).collect();
            Access::ALL.into_iter().map(move |access| {
                let source = access.source(file, &elements).expect("every kernel file composes").source;
                let (module, info) = parse_module(file, &source).unwrap_or_else(|e| panic!("{e}"));
                ComposedKernel { file, access, encoding, source, module, info }
            })
        })
    })
}

/// What one entry point of a composed module uses, read from the module
/// itself with naga (which validation also needs, to know the uses).
pub(crate) struct EntryUse {
    /// Its `@group(0)` bindings, by binding number.
    pub bindings: Vec<KernelBinding>,
    /// How many of them are storage buffers.
    pub storage_buffers: u32,
    /// How many are uniform buffers.
    pub uniform_buffers: u32,
    /// Bytes of `var<workgroup>` memory it uses.
    pub workgroup_bytes: u32,
    /// Its `@workgroup_size`.
    pub workgroup_size: [u32; 3],
}

impl EntryUse {
    /// Refuses, naming the limit, an entry point that needs more than
    /// `limits` gives: the limits differ between backends (GL's storage
    /// blocks, WebGPU's defaults) and wgpu's own refusal would come as a
    /// device error at pipeline creation.
    pub(crate) fn check(&self, label: &str, limits: &wgpu::Limits) -> Result<()> {
        let [x, y, z] = self.workgroup_size;
        let needs: [(&str, u64, u64); 7] = [
            ("max_storage_buffers_per_shader_stage", self.storage_buffers.into(), limits.max_storage_buffers_per_shader_stage.into()),
            ("max_uniform_buffers_per_shader_stage", self.uniform_buffers.into(), limits.max_uniform_buffers_per_shader_stage.into()),
            ("max_compute_workgroup_storage_size", self.workgroup_bytes.into(), limits.max_compute_workgroup_storage_size.into()),
            ("max_compute_invocations_per_workgroup", u64::from(x) * u64::from(y) * u64::from(z), limits.max_compute_invocations_per_workgroup.into()),
            ("max_compute_workgroup_size_x", x.into(), limits.max_compute_workgroup_size_x.into()),
            ("max_compute_workgroup_size_y", y.into(), limits.max_compute_workgroup_size_y.into()),
            ("max_compute_workgroup_size_z", z.into(), limits.max_compute_workgroup_size_z.into()),
        ];
        match needs.iter().find(|(_, need, have)| need > have) {
            Some((limit, need, have)) => Err(Error::Limit {
                scope: "kernel",
                message: format!("{label} needs {limit} = {need}; the device gives {have}"),
            }),
            None => Ok(()),
        }
    }
}

/// What entry point `entry` of kernel `file` (composed as `source`) uses.
pub(crate) fn reflect_entry(file: &str, source: &str, entry: &str) -> Result<EntryUse> {
    let (module, info) = parse_module(file, source)?;
    let index = module
        .entry_points
        .iter()
        .position(|ep| ep.name == entry)
        .ok_or_else(|| Error::Device(format!("shader {file} has no entry point {entry}")))?;
    let uses = info.get_entry_point(index);
    let mut found = EntryUse {
        bindings: Vec::new(),
        storage_buffers: 0,
        uniform_buffers: 0,
        workgroup_bytes: 0,
        workgroup_size: module.entry_points[index].workgroup_size,
    };
    for (handle, var) in module.global_variables.iter() {
        let used = uses[handle];
        if used.is_empty() {
            continue;
        }
        match var.space {
            naga::AddressSpace::WorkGroup => found.workgroup_bytes += module.types[var.ty].inner.size(module.to_ctx()),
            naga::AddressSpace::Storage { .. } => found.storage_buffers += 1,
            naga::AddressSpace::Uniform => found.uniform_buffers += 1,
            _ => {}
        }
        if let Some(rb) = var.binding.as_ref().filter(|rb| rb.group == 0) {
            let written = used.intersects(naga::valid::GlobalUse::WRITE | naga::valid::GlobalUse::ATOMIC);
            found.bindings.push(KernelBinding { name: var.name.clone().unwrap_or_default(), binding: rb.binding, written });
        }
    }
    found.bindings.sort_by_key(|b| b.binding);
    Ok(found)
}

/// Whether wgpu zeroes `var<workgroup>` memory before a kernel runs (WGSL's
/// default). segloss's kernels write every workgroup element they read
/// first, so the zeroing is off: on backends without a native zeroing it is
/// a polyfill in which one invocation stores the whole array, a serial
/// prologue on Metal and DX12 and, on Mesa's GL driver, a compile time of
/// over a minute per sort kernel (the radix sort's downsweep: 105 s with it,
/// 1.2 s without). The translation test writes every backend with the same
/// setting.
pub(crate) const ZERO_INITIALIZE_WORKGROUP_MEMORY: bool = false;

/// Shader file, entry point, override constants (as bits), element types
/// of its `//#elements` bindings that are not f32.
type Key = (&'static str, &'static str, Vec<(&'static str, u64)>, Vec<(&'static str, DType)>);

/// A module: file, access, element encodings.
type ModuleKey = (&'static str, Access, Vec<(&'static str, Encoding)>);

#[derive(Default)]
pub(crate) struct PipelineCache {
    kernels: Mutex<HashMap<(Key, Access), Arc<Kernel>>>,
    modules: Mutex<HashMap<ModuleKey, (wgpu::ShaderModule, Arc<shaders::Composed>)>>,
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
        self.kernel_with_elements(file, entry, constants, &[])
    }

    /// [`GpuContext::kernel`] with the element types of `//#elements`
    /// bindings by name (f32 where not named): f16 natively where the
    /// device has `SHADER_F16` ([`GpuContext::native_f16`]), else in u32
    /// words, and bf16 in u32 words.
    pub(crate) fn kernel_with_elements(
        &self,
        file: &'static str,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        elements: &[(&'static str, DType)],
    ) -> Result<Arc<Kernel>> {
        let mut elements: Vec<(&'static str, DType)> = elements.iter().copied().filter(|(_, d)| *d != DType::F32).collect();
        elements.sort();
        let key: Key = (file, entry, constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(), elements);
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
        let encodings = key.3.iter().map(|(n, d)| Ok((*n, Encoding::of(*d, self.native_f16())?))).collect::<Result<Vec<_>>>()?;
        let (module, composed) = {
            let mut modules = cache.modules.lock().unwrap_or_else(|e| e.into_inner());
            let module_key: ModuleKey = (file, access, encodings);
            match modules.get(&module_key) {
                Some(m) => m.clone(),
                None => {
                    let composed = Arc::new(access.source(file, &module_key.2)?);
                    let source = &composed.source;
                    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
                    let m = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(file),
                        source: wgpu::ShaderSource::Wgsl(source.as_str().into()),
                    });
                    if let Some(e) = pollster::block_on(scope.pop()) {
                        return Err(Error::Device(format!("shader {file} does not compile: {e}")));
                    }
                    modules.insert(module_key, (m.clone(), composed.clone()));
                    (m, composed)
                }
            }
        };
        let label = format!("{file}:{entry}");
        let uses = reflect_entry(file, &composed.source, entry)?;
        uses.check(&label, &device.limits())?;
        let named: Vec<(&str, f64)> = key.2.iter().map(|(k, bits)| (*k, f64::from_bits(*bits))).collect();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &named,
                zero_initialize_workgroup_memory: ZERO_INITIALIZE_WORKGROUP_MEMORY,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Device(format!("pipeline {label} could not be created: {e}")));
        }
        let layout = pipeline.get_bind_group_layout(0);
        let elements = composed
            .element_bindings
            .iter()
            .map(|name| (*name, key.3.iter().find(|(n, _)| n == name).map_or(DType::F32, |(_, d)| *d)))
            .collect();
        let kernel = Arc::new(Kernel { pipeline, layout, label, bindings: uses.bindings, elements, key: key.clone(), access });
        cache.kernels.lock().unwrap_or_else(|e| e.into_inner()).insert((key, access), kernel.clone());
        Ok(kernel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry point of every kernel, in both access variants, within
    /// WebGPU's default limits: the limits a browser gives and many engines
    /// request, so that nothing depends on an adapter's generous ones.
    #[test]
    fn every_kernel_fits_webgpu_default_limits() {
        let limits = wgpu::Limits::default();
        let mut failures = Vec::new();
        let mut count = 0;
        for k in every_composed_kernel() {
            for ep in &k.module.entry_points {
                let uses = reflect_entry(k.file, &k.source, &ep.name).expect("the entry point reflects");
                if let Err(e) = uses.check(&format!("{}:{} ({:?})", k.file, ep.name, k.access), &limits) {
                    failures.push(e.to_string());
                }
                count += 1;
            }
        }
        assert!(count > 100, "only {count} entry points found: the kernel list is not being read");
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
