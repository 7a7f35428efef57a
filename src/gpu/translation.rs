//! The translation test: every kernel segloss ships, in every variant the
//! host can compile, through naga's four back ends with the options wgpu
//! 30's backends pass to them (wgpu-hal's `vulkan`, `metal`, `dx12` and
//! `gles` device code), and the SPIR-V and GLSL through Khronos' own
//! validators, `spirv-val` and `glslangValidator`.
//!
//! Workgroup memory is zeroed or not as the pipelines have it
//! ([`ZERO_INITIALIZE_WORKGROUP_MEMORY`]).
//!
//! A variant is a kernel file, its storage access ([`Access`]), an entry
//! point and a value for each `override`: both values of every bool
//! override, the host's values of the u32 ones ([`U32_OVERRIDES`]). Each is
//! translated as a pipeline would be: overrides resolved for that entry
//! point, then written for
//! - SPIR-V 1.3 (a Vulkan 1.1 device), checked by
//!   `spirv-val --target-env vulkan1.1`;
//! - MSL 2.4 (macOS 12, the oldest Metal with every feature segloss asks
//!   for), buffers in argument slots with the sizes buffer after them, as
//!   wgpu's Metal layout assigns them;
//! - HLSL shader model 5.1 (FXC) and 6.0 (DXC), bindings in register space
//!   = group, with the special constants buffer that `num_workgroups` needs
//!   (subgroup kernels 6.0 only: wgpu offers subgroups on DX12 from 6.0);
//! - GLSL ES 3.10 (wgpu's GL backend on EGL) and desktop 4.30, storage and
//!   uniform buffers numbered as wgpu's GL layout numbers them, checked by
//!   `glslangValidator`.
//!
//! No Metal or DXC compiler runs on Linux, so MSL and HLSL are checked as
//! far as naga's writers go. A failure names the file, the entry point, the
//! variant and the back end.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use naga::back::{glsl, hlsl, msl, spv};
use naga::{AddressSpace, Module, ResourceBinding, Scalar, ShaderStage, TypeInner};

use crate::gpu::pipeline::{every_composed_kernel, Access, ZERO_INITIALIZE_WORKGROUP_MEMORY};
use crate::gpu::shaders::Encoding;

/// The values the host gives each u32 override; a bool override takes both.
/// A new u32 override needs its line here (the test says so).
const U32_OVERRIDES: &[(&str, &str, &[u32])] = &[
    // `primitives::stencil::StencilOp`'s five operations.
    ("stencil.wgsl", "OP", &[0, 1, 2, 3, 4]),
    // `losses::builder`'s finalize of one value.
    ("finalize.wgsl", "COUNT", &[1]),
    // `primitives::convert`'s five packed source types.
    ("convert.wgsl", "SOURCE", &[0, 1, 2, 3, 4]),
];

/// Kernels that only adapters with subgroup operations get.
const SUBGROUP_FILES: &[&str] = &["radix_sort_subgroup.wgsl"];

/// One pipeline the host can create.
struct Variant<'a> {
    file: &'static str,
    access: Access,
    encoding: Encoding,
    entry: &'a str,
    constants: Vec<(String, f64)>,
}

impl Variant<'_> {
    fn name(&self) -> String {
        let constants: Vec<String> = self.constants.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let constants = if constants.is_empty() { String::new() } else { format!(", {}", constants.join(", ")) };
        format!("{}:{} ({:?} access, {:?} elements{constants})", self.file, self.entry, self.access, self.encoding)
    }
}

/// Every assignment of the module's overrides the host can make.
fn override_assignments(file: &str, module: &Module) -> Result<Vec<Vec<(String, f64)>>, String> {
    let mut assignments = vec![Vec::new()];
    for (_, o) in module.overrides.iter() {
        let name = o.name.clone().ok_or_else(|| format!("{file}: an override without a name"))?;
        let values: Vec<f64> = match module.types[o.ty].inner {
            TypeInner::Scalar(Scalar::BOOL) => vec![0.0, 1.0],
            _ => U32_OVERRIDES
                .iter()
                .find(|(f, n, _)| *f == file && *n == name)
                .map(|(_, _, v)| v.iter().map(|&x| x as f64).collect())
                .ok_or_else(|| format!("{file}: override {name} is not bool and has no line in U32_OVERRIDES"))?,
        };
        let mut next = Vec::new();
        for a in &assignments {
            for &v in &values {
                next.push([a.clone(), vec![(name.clone(), v)]].concat());
            }
        }
        assignments = next;
    }
    Ok(assignments)
}

/// A module with its overrides resolved for one entry point, and what it binds.
struct Resolved {
    module: Module,
    info: naga::valid::ModuleInfo,
    /// (binding, is a storage buffer, is written) of each resource the entry point uses.
    bindings: Vec<(ResourceBinding, bool, bool)>,
}

fn resolve(module: &Module, info: &naga::valid::ModuleInfo, v: &Variant) -> Result<Resolved, String> {
    let mut constants = naga::back::PipelineConstants::default();
    for (k, value) in &v.constants {
        constants.insert(k.clone(), *value);
    }
    let (module, info) = naga::back::pipeline_constants::process_overrides(module, info, Some((ShaderStage::Compute, v.entry)), &constants)
        .map_err(|e| format!("overrides: {e:?}"))?;
    let index = module.entry_points.iter().position(|ep| ep.name == v.entry).ok_or("entry point lost")?;
    let uses = info.get_entry_point(index);
    let bindings = module
        .global_variables
        .iter()
        .filter(|(h, _)| !uses[*h].is_empty())
        .filter_map(|(_, var)| {
            let rb = var.binding.clone()?;
            match var.space {
                AddressSpace::Storage { access } => Some((rb, true, access.contains(naga::StorageAccess::STORE))),
                AddressSpace::Uniform => Some((rb, false, false)),
                _ => None,
            }
        })
        .collect();
    Ok(Resolved { module: module.into_owned(), info: info.into_owned(), bindings })
}

fn write_spirv(r: &Resolved, entry: &str) -> Result<Vec<u32>, String> {
    let binding_map = r
        .bindings
        .iter()
        .map(|(rb, _, _)| (rb.clone(), spv::BindingInfo { descriptor_set: rb.group, binding: rb.binding, binding_array_size: None }))
        .collect();
    let options = spv::Options {
        binding_map,
        lang_version: (1, 3),
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: naga::proc::BoundsCheckPolicy::Restrict,
            buffer: naga::proc::BoundsCheckPolicy::Restrict,
            ..Default::default()
        },
        zero_initialize_workgroup_memory: if ZERO_INITIALIZE_WORKGROUP_MEMORY {
            spv::ZeroInitializeWorkgroupMemoryMode::Polyfill
        } else {
            spv::ZeroInitializeWorkgroupMemoryMode::None
        },
        force_loop_bounding: true,
        fake_missing_bindings: false,
        ..Default::default()
    };
    let pipeline = spv::PipelineOptions { shader_stage: ShaderStage::Compute, entry_point: entry.to_string() };
    spv::write_vec(&r.module, &r.info, &options, Some(&pipeline)).map_err(|e| e.to_string())
}

fn write_msl(r: &Resolved, entry: &str) -> Result<String, String> {
    let mut resources = msl::BindingMap::default();
    for (slot, (rb, storage, written)) in r.bindings.iter().enumerate() {
        let target = msl::BindTarget { buffer: Some(slot as u8), mutable: *storage && *written, ..Default::default() };
        resources.insert(rb.clone(), target);
    }
    let sizes_buffer = r.bindings.iter().any(|b| b.1).then_some(r.bindings.len() as u8);
    let policy = naga::proc::BoundsCheckPolicy::Restrict;
    let options = msl::Options {
        lang_version: (2, 4),
        fake_missing_bindings: false,
        per_entry_point_map: [(entry.to_string(), msl::EntryPointResources { resources, sizes_buffer, ..Default::default() })].into(),
        bounds_check_policies: naga::proc::BoundsCheckPolicies { index: policy, buffer: policy, image_load: policy, ..Default::default() },
        zero_initialize_workgroup_memory: ZERO_INITIALIZE_WORKGROUP_MEMORY,
        force_loop_bounding: true,
        ..Default::default()
    };
    let pipeline = msl::PipelineOptions { entry_point: Some((ShaderStage::Compute, entry.to_string())), ..Default::default() };
    msl::write_string(&r.module, &r.info, &options, &pipeline).map(|(s, _)| s).map_err(|e| e.to_string())
}

fn write_hlsl(r: &Resolved, entry: &str, shader_model: hlsl::ShaderModel) -> Result<String, String> {
    let binding_map = r
        .bindings
        .iter()
        .map(|(rb, _, _)| (rb.clone(), hlsl::BindTarget { space: rb.group as u8, register: rb.binding, ..Default::default() }))
        .collect();
    let options = hlsl::Options {
        shader_model,
        binding_map,
        fake_missing_bindings: false,
        special_constants_binding: Some(hlsl::BindTarget { space: 1, register: 0, ..Default::default() }),
        zero_initialize_workgroup_memory: ZERO_INITIALIZE_WORKGROUP_MEMORY,
        restrict_indexing: true,
        force_loop_bounding: true,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions { entry_point: Some((ShaderStage::Compute, entry.to_string())) };
    let mut out = String::new();
    hlsl::Writer::new(&mut out, &options, &pipeline).write(&r.module, &r.info, None).map_err(|e| e.to_string())?;
    Ok(out)
}

fn write_glsl(r: &Resolved, entry: &str, version: glsl::Version) -> Result<String, String> {
    let (mut storage, mut uniform) = (0u8, 0u8);
    let mut binding_map = glsl::BindingMap::default();
    for (rb, is_storage, _) in &r.bindings {
        let counter = if *is_storage { &mut storage } else { &mut uniform };
        binding_map.insert(rb.clone(), *counter);
        *counter += 1;
    }
    let options = glsl::Options {
        version,
        writer_flags: glsl::WriterFlags::ADJUST_COORDINATE_SPACE | glsl::WriterFlags::FORCE_POINT_SIZE,
        binding_map,
        zero_initialize_workgroup_memory: ZERO_INITIALIZE_WORKGROUP_MEMORY,
    };
    let pipeline = glsl::PipelineOptions { shader_stage: ShaderStage::Compute, entry_point: entry.to_string(), multiview: None };
    let mut out = String::new();
    glsl::Writer::new(&mut out, &r.module, &r.info, &options, &pipeline, Default::default())
        .and_then(|mut w| w.write())
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Runs the validators, once per distinct text (variants that differ only
/// in an override their entry point never reads translate alike).
struct Validators {
    dir: std::path::PathBuf,
    seen: HashSet<(&'static str, Vec<u8>)>,
}

impl Validators {
    /// `tool`'s complaint about `text`, written to a file named `name`, if it has one.
    fn check(&mut self, tool: &'static str, args: &[&str], name: &str, text: &[u8]) -> Option<String> {
        if !self.seen.insert((tool, text.to_vec())) {
            return None;
        }
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("writing a temporary shader");
        validate(tool, args, &path)
    }
}

/// Runs a validator on one file; its complaint, if it has one.
fn validate(tool: &str, args: &[&str], file: &Path) -> Option<String> {
    match Command::new(tool).args(args).arg(file).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("{tool}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))),
        Err(e) => Some(format!("{tool} could not run ({e}): install spirv-tools and glslang-tools (scripts/setup-shader-tools.sh)")),
    }
}

/// Translates one variant on every back end, appending what failed.
fn translate(module: &Module, info: &naga::valid::ModuleInfo, v: &Variant, validators: &mut Validators, failures: &mut Vec<String>) {
    let mut fail = |backend: &str, e: String| failures.push(format!("{} on {backend}: {e}", v.name()));
    let r = match resolve(module, info, v) {
        Ok(r) => r,
        Err(e) => return fail("every back end", e),
    };
    let stem = format!("{}-{}", v.file.trim_end_matches(".wgsl"), v.entry);
    match write_spirv(&r, v.entry) {
        Ok(words) => {
            let bytes = bytemuck::cast_slice::<u32, u8>(&words);
            if let Some(e) = validators.check("spirv-val", &["--target-env", "vulkan1.1"], &format!("{stem}.spv"), bytes) {
                fail("SPIR-V 1.3 (spirv-val)", e);
            }
        }
        Err(e) => fail("SPIR-V 1.3", e),
    }
    if let Err(e) = write_msl(&r, v.entry) {
        fail("MSL 2.4", e);
    }
    // wgpu offers SHADER_F16 on DX12 from shader model 6.2, and not on GL.
    let native_f16 = v.encoding == Encoding::F16;
    let subgroups = SUBGROUP_FILES.contains(&v.file);
    let models = [(hlsl::ShaderModel::V5_1, "HLSL SM 5.1"), (hlsl::ShaderModel::V6_0, "HLSL SM 6.0"), (hlsl::ShaderModel::V6_2, "HLSL SM 6.2")];
    for (model, name) in models {
        let needs = if native_f16 { hlsl::ShaderModel::V6_2 } else if subgroups { hlsl::ShaderModel::V6_0 } else { hlsl::ShaderModel::V5_1 };
        if model < needs || (model == hlsl::ShaderModel::V6_2 && !native_f16) {
            continue;
        }
        if let Err(e) = write_hlsl(&r, v.entry, model) {
            fail(name, e);
        }
    }
    let versions = [
        (glsl::Version::Embedded { version: 310, is_webgl: false }, "GLSL ES 3.10"),
        (glsl::Version::Desktop(430), "GLSL 4.30"),
    ];
    for (version, name) in versions.into_iter().filter(|_| !native_f16) {
        match write_glsl(&r, v.entry, version) {
            Ok(text) => {
                if let Some(e) = validators.check("glslangValidator", &[], &format!("{stem}.comp"), text.as_bytes()) {
                    fail(&format!("{name} (glslangValidator)"), e);
                }
            }
            Err(e) => fail(name, e),
        }
    }
}

/// The functions of `module` that divide or take the remainder of signed
/// integers. WGSL defines both for negative operands (truncation toward
/// zero); naga writes them as GLSL's `/` and `%` (its GLSL writer has no
/// polyfill yet), and GLSL leaves `%` of a negative operand undefined: on
/// Mesa's GL it gave mask_giou's hull a wrong floor division. The kernels
/// therefore divide only unsigned integers.
fn signed_divisions(module: &Module, info: &naga::valid::ModuleInfo) -> Vec<String> {
    let mut found = Vec::new();
    let mut scan = |name: &str, function: &naga::Function, fi: &naga::valid::FunctionInfo| {
        for (_, e) in function.expressions.iter() {
            if let naga::Expression::Binary { op: naga::BinaryOperator::Divide | naga::BinaryOperator::Modulo, left, .. } = *e {
                if fi[left].ty.inner_with(&module.types).scalar_kind() == Some(naga::ScalarKind::Sint) {
                    found.push(name.to_string());
                }
            }
        }
    };
    for (handle, f) in module.functions.iter() {
        scan(f.name.as_deref().unwrap_or("?"), f, &info[handle]);
    }
    for (i, ep) in module.entry_points.iter().enumerate() {
        scan(&ep.name, &ep.function, info.get_entry_point(i));
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn no_kernel_divides_signed_integers() {
    let mut failures = Vec::new();
    for k in every_composed_kernel().filter(|k| k.access == Access::Declared) {
        for f in signed_divisions(&k.module, &k.info) {
            failures.push(format!("{}: {f} divides or takes the remainder of an i32 (undefined in GLSL for negative operands)", k.file));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_kernel_translates_on_every_backend() {
    let dir = std::env::temp_dir().join(format!("segloss-translation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let mut validators = Validators { dir: dir.clone(), seen: HashSet::new() };
    let mut failures = Vec::new();
    let mut count = 0;
    for k in every_composed_kernel() {
        let assignments = match override_assignments(k.file, &k.module) {
            Ok(a) => a,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        for ep in k.module.entry_points.iter().filter(|ep| ep.stage == ShaderStage::Compute) {
            for constants in &assignments {
                let v = Variant { file: k.file, access: k.access, encoding: k.encoding, entry: &ep.name, constants: constants.clone() };
                translate(&k.module, &k.info, &v, &mut validators, &mut failures);
                count += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(count > 100, "only {count} variants found: the kernel list is not being read");
    assert!(failures.is_empty(), "{} of {count} variants fail to translate:\n{}", failures.len(), failures.join("\n"));
    eprintln!("{count} kernel variants translated to SPIR-V, MSL, HLSL and GLSL");
}
