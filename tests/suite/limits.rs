//! The device's limits are read and respected: the suite's context has the
//! limits `SEGLOSS_LIMITS` asks for (the test script runs the suite again
//! with WebGPU's defaults), and a kernel a device cannot run is refused when
//! the plan is made, with the limit named.

use segloss::{ContextOptions, GpuContext, InputShapes, PlanOptions};

use crate::common::{config, ctx};

#[test]
fn the_suite_runs_with_the_limits_segloss_limits_asks_for() {
    let got = ctx().device().limits();
    match std::env::var("SEGLOSS_LIMITS").as_deref() {
        Ok("webgpu") => {
            let webgpu = wgpu::Limits::default();
            assert_eq!(got.max_storage_buffers_per_shader_stage, webgpu.max_storage_buffers_per_shader_stage);
            assert_eq!(got.max_buffer_size, webgpu.max_buffer_size);
            assert_eq!(got.max_storage_buffer_binding_size, webgpu.max_storage_buffer_binding_size);
            assert_eq!(got.max_compute_workgroup_storage_size, webgpu.max_compute_workgroup_storage_size);
        }
        _ => {
            // segloss's own request: the adapter's buffer sizes, up to 16 storage buffers.
            let info = ctx().adapter_info().expect("the suite opens its own adapter");
            let adapter = GpuContext::list_adapters()
                .into_iter()
                .find(|a| a.info.name == info.name && a.info.backend == info.backend)
                .expect("the suite's adapter is listed")
                .limits;
            assert_eq!(got.max_buffer_size, adapter.max_buffer_size);
            assert_eq!(got.max_storage_buffer_binding_size, adapter.max_storage_buffer_binding_size);
            assert_eq!(got.max_storage_buffers_per_shader_stage, adapter.max_storage_buffers_per_shader_stage.min(16));
        }
    }
}

#[test]
fn a_kernel_beyond_the_devices_limits_is_refused_at_plan_time_naming_the_limit() {
    // downlevel_defaults give 4 storage buffers a stage; hausdorff_er's forward pass binds 8.
    let options = ContextOptions { limits: Some(wgpu::Limits::downlevel_defaults()), ..Default::default() };
    let small = GpuContext::with_options(options).expect("a device with downlevel limits");
    assert_eq!(small.device().limits().max_storage_buffers_per_shader_stage, 4);
    let loss = config(r#"{"loss": "hausdorff_er", "params": {"mode": "multiclass"}}"#);
    let shapes = InputShapes::new(&[1, 3, 16, 16], &[1, 16, 16]);
    let e = loss.plan(&small, &shapes, PlanOptions::default()).err().expect("refused").to_string();
    assert!(e.contains("max_storage_buffers_per_shader_stage") && e.contains("hausdorff_er.wgsl"), "{e}");
}

#[test]
fn explicitly_requested_limits_are_the_devices() {
    let options = ContextOptions { limits: Some(wgpu::Limits::default()), ..Default::default() };
    let c = GpuContext::with_options(options).expect("WebGPU's default limits are always available");
    assert_eq!(c.device().limits().max_storage_buffers_per_shader_stage, 8);
    assert_eq!(c.binding_limit(), 128 << 20);
}
