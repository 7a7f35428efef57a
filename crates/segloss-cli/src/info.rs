//! `segloss info`.

use segloss::{GpuContext, Result};

pub fn run() -> Result<bool> {
    let adapters = GpuContext::list_adapters();
    println!("adapters found: {}", adapters.len());
    for a in &adapters {
        let driver: Vec<&str> = [a.info.driver.trim(), a.info.driver_info.trim()].into_iter().filter(|s| !s.is_empty()).collect();
        println!("  - {} (driver {})", a.label(), driver.join(" "));
    }
    let ctx = GpuContext::new()?;
    let device = ctx.device();
    let limits = device.limits();
    println!("chosen: {}", ctx.adapter_name());
    println!("features: {:?}", device.features());
    println!("limits:");
    println!("  max_buffer_size: {}", limits.max_buffer_size);
    println!("  max_storage_buffer_binding_size: {} (segloss binds at most {})", limits.max_storage_buffer_binding_size, ctx.binding_limit());
    println!("  max_storage_buffers_per_shader_stage: {}", limits.max_storage_buffers_per_shader_stage);
    println!("  max_compute_workgroups_per_dimension: {}", limits.max_compute_workgroups_per_dimension);
    println!("  max_compute_invocations_per_workgroup: {}", limits.max_compute_invocations_per_workgroup);
    println!("  max_compute_workgroup_storage_size: {}", limits.max_compute_workgroup_storage_size);
    println!("  min_storage_buffer_offset_alignment: {}", limits.min_storage_buffer_offset_alignment);
    println!("timestamps: {}", if ctx.has_timestamps() { "yes" } else { "no (bench uses wall clock)" });
    let f16 = if ctx.native_f16() { "read and written as f16 (SHADER_F16)" } else { "in u32 words (no SHADER_F16, or SEGLOSS_F16=words)" };
    println!("f16 tensors: {f16}; bf16 in u32 words");
    Ok(true)
}
