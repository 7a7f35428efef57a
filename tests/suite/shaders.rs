//! Every kernel parses and validates with naga, with the capabilities it runs with.

#[test]
fn every_kernel_validates_with_naga() {
    let mut checked = 0;
    for name in segloss::gpu::shaders::kernel_names() {
        let source = segloss::gpu::shaders::compose(name).unwrap();
        let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
        // A `*_subgroup.wgsl` kernel runs only where the device offers subgroups.
        let capabilities = if name.ends_with("_subgroup.wgsl") {
            naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::empty()
        };
        let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities);
        validator.validate(&module).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
        assert!(!module.entry_points.is_empty(), "{name} has no entry point");
        checked += 1;
    }
    assert!(checked >= 4);
}
