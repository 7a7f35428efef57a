//! Every validation error is reached and names what is wrong.

use segloss::{DType, Error, GpuTensor, HostInputs, HostTensor, InputShapes, LossInputs, LossOutputs, PlanOptions};

use crate::common::{binary, config, config_error, input_error, ctx, gpu_vs_reference, labels, logits, rng, runner};

#[test]
fn bad_parameters_are_named() {
    config_error(r#"{"loss": "bce", "params": {"alpha": 0.5, "pos_weight": 2.0}}"#, "mutually exclusive");
    config_error(r#"{"loss": "bce", "params": {"alpha": 1.5}}"#, "alpha = 1.5");
    config_error(r#"{"loss": "bce", "params": {"pos_weight": -1}}"#, "pos_weight");
    config_error(r#"{"loss": "bce", "params": {"posweight": 2}}"#, "unknown field `posweight`");
    config_error(r#"{"loss": "bce", "params": {"reduction": "avg"}}"#, "unknown variant `avg`");
    config_error(r#"{"loss": "cross_entropy", "params": {"label_smoothing": 1.5}}"#, "label_smoothing");
    config_error(r#"{"loss": "cross_entropy", "params": {"class_weights": [1, -2]}}"#, "non-negative");
    config_error(r#"{"loss": "focal", "params": {"gamma": -1}}"#, "gamma = -1");
    config_error(r#"{"loss": "focal", "params": {"alpha": 2}}"#, "alpha = 2");
    config_error(r#"{"loss": "focal", "params": {"mode": "binary", "class_weights": [1, 2]}}"#, "multiclass mode");
    config_error(r#"{"loss": "focal", "params": {"mode": "multiclass", "alpha": 0.3}}"#, "sigmoid modes");
    config_error(r#"{"loss": "focal", "params": {"mode": "softmax"}}"#, "unknown variant `softmax`");
    config_error(r#"{"loss": "hausdorff", "params": {}}"#, "unknown loss");
    config_error("not json", "not valid JSON");
}

/// A parameter of the wrong type is named, with what it must be and what it
/// was, for every loss: the path serde_path_to_error finds, in SPEC.md's words.
#[test]
fn parameter_type_errors_name_the_parameter() {
    for (loss, params, needle) in [
        ("focal", r#"{"gamma": "2.0"}"#, r#"gamma must be a number, not the string "2.0""#),
        ("focal", r#"{"alpha": [0.25]}"#, "alpha must be a number or null, not a list"),
        ("bce", r#"{"pos_weight": "3"}"#, r#"pos_weight must be a number or null, not the string "3""#),
        ("bce", r#"{"reduction": 1}"#, "reduction must be"),
        ("cross_entropy", r#"{"ignore_index": 1.5}"#, "ignore_index must be an integer or null, not the number 1.5"),
        ("cross_entropy", r#"{"class_weights": [1, "a"]}"#, r#"class_weights[1] must be a number, not the string "a""#),
        ("dice", r#"{"squared": "yes"}"#, r#"squared must be true or false, not the string "yes""#),
        ("jaccard", r#"{"smooth_nr": null}"#, "smooth_nr must be a number, not null"),
        ("tversky", r#"{"alpha": "0.3"}"#, r#"alpha must be a number, not the string "0.3""#),
        ("tversky", r#"{"squared": 1}"#, "squared must be true or false, not the number 1"),
        ("generalized_dice", r#"{"smooth_dr": {}}"#, "smooth_dr must be a number, not an object"),
        ("box_iou", r#"{"eps": "tiny"}"#, r#"eps must be a number, not the string "tiny""#),
        ("mask_giou", r#"{"threshold": []}"#, "threshold must be a number, not a list"),
        ("boundary", r#"{"classes": 1}"#, "classes must be a list or null, not the number 1"),
        ("boundary", r#"{"spacing": ["a", 1]}"#, r#"spacing[0] must be a number, not the string "a""#),
        ("hausdorff_dt", r#"{"alpha": "2"}"#, r#"alpha must be a number, not the string "2""#),
        ("mcc", r#"{"eps": [0.1]}"#, "eps must be a number, not a list"),
        ("hausdorff_er", r#"{"alpha": [2]}"#, "alpha must be a number, not a list"),
        ("cl_dice", r#"{"include_background": 0}"#, "include_background must be true or false, not the number 0"),
        ("unified_focal", r#"{"delta": "0.7"}"#, r#"delta must be a number, not the string "0.7""#),
        ("lovasz_softmax", r#"{"per_image": "no"}"#, r#"per_image must be true or false, not the string "no""#),
        ("lovasz_hinge", r#"{"ignore_index": "x"}"#, r#"ignore_index must be an integer or null, not the string "x""#),
    ] {
        config_error(&format!(r#"{{"loss": "{loss}", "params": {params}}}"#), needle);
        config_error(&format!(r#"{{"loss": "{loss}", "params": {params}}}"#), &format!("invalid {loss} configuration: "));
    }
}

/// NaN and Infinity are not JSON: the error says so, with the position.
#[test]
fn a_nan_token_is_not_json_and_the_error_says_so() {
    config_error(r#"{"loss": "focal", "params": {"gamma": NaN}}"#, "NaN at line 1 column 39 is not JSON");
    config_error(r#"{"loss": "focal", "params": {"gamma": -Infinity}}"#, "-Infinity at line 1 column 39 is not JSON");
    config_error(r#"{"loss": "focal", "params": {"gamma": 2,}}"#, "not valid JSON: ");
}

#[test]
fn bad_inputs_are_named() {
    let mut r = rng(30);
    let x = logits(&mut r, &[2, 3, 4, 4], 1.0);
    let yb = binary(&mut r, &[2, 3, 4, 4]);
    let yc = labels(&mut r, &[2, 4, 4], 3, None);
    input_error(&config(r#"{"loss": "bce", "params": {}}"#), &x, &binary(&mut r, &[2, 3, 4, 5]), None, "target has shape [2, 3, 4, 5]");
    input_error(&config(r#"{"loss": "bce", "params": {}}"#), &x, &yb, Some(&binary(&mut r, &[2, 3])), "weight has shape [2, 3]");
    input_error(&config(r#"{"loss": "bce", "params": {}}"#), &x, &yc.clone(), None, "target has shape [2, 4, 4]");
    let mut outside = yb.clone();
    if let segloss::HostData::F32(v) = &mut outside.data {
        v[5] = 1.5;
    }
    input_error(&config(r#"{"loss": "bce", "params": {}}"#), &x, &outside, None, "target[5] = 1.5 is outside [0, 1]");
    let mut nan_weight = yb.clone();
    if let segloss::HostData::F32(v) = &mut nan_weight.data {
        v[2] = f32::NAN;
    }
    input_error(&config(r#"{"loss": "bce", "params": {}}"#), &x, &yb, Some(&nan_weight), "weight[2] = NaN");
    let empty = HostTensor::f32(&[0, 3], vec![]).unwrap();
    input_error(&config(r#"{"loss": "bce", "params": {}}"#), &empty, &empty, None, "hold no element");
    input_error(&config(r#"{"loss": "cross_entropy", "params": {}}"#), &x, &yb, None, "target has shape [2, 3, 4, 4]");
    input_error(&config(r#"{"loss": "cross_entropy", "params": {"class_weights": [1, 2]}}"#), &x, &yc, None, "class_weights has 2 entries for 3 classes");
    let mut bad_label = yc.clone();
    if let segloss::HostData::I32(v) = &mut bad_label.data {
        v[7] = 3;
    }
    input_error(&config(r#"{"loss": "cross_entropy", "params": {"ignore_index": 255}}"#), &x, &bad_label, None, "target[7] = 3 is outside [0, 3) and is not ignore_index 255");
    input_error(&config(r#"{"loss": "focal", "params": {"mode": "multiclass"}}"#), &x, &bad_label, None, "target[7] = 3");
    let flat = logits(&mut r, &[5], 1.0);
    input_error(&config(r#"{"loss": "cross_entropy", "params": {}}"#), &flat, &yc, None, "with a class axis");
    let float_labels = HostTensor::f32(&[2, 4, 4], vec![0.0; 32]).unwrap();
    input_error(&config(r#"{"loss": "cross_entropy", "params": {}}"#), &x, &float_labels, None, "integer class indices");
}

#[test]
fn too_many_classes_is_a_limit_error() {
    let shapes = InputShapes::new(&[1, 5000, 2, 2], &[1, 2, 2]);
    let e = config(r#"{"loss": "cross_entropy", "params": {}}"#).plan(ctx(), &shapes, PlanOptions::default());
    assert!(matches!(e, Err(Error::Limit { message: ref m, .. }) if m.contains("5000 classes")), "{:?}", e.err());
}

#[test]
fn the_most_classes_allowed_are_computed_in_full() {
    // 2,048 classes, four pixels per thread: 32,768 loop iterations per invocation,
    // within lavapipe's cut-off. A truncated loop would miss classes and fail here.
    let mut r = rng(31);
    let x = logits(&mut r, &[1, 2048, 32, 32], 3.0);
    let y = labels(&mut r, &[1, 32, 32], 2048, None);
    for json in [r#"{"loss": "cross_entropy", "params": {"label_smoothing": 0.1}}"#, r#"{"loss": "focal", "params": {"mode": "multiclass"}}"#] {
        gpu_vs_reference(&config(json), HostInputs { logits: &x, target: &y, weight: None, distance: None }, 1e-4, 1e-6);
    }
}

fn record_error(inputs: LossInputs<'_>, outputs: LossOutputs<'_>, needle: &str) {
    let c = config(r#"{"loss": "cross_entropy", "params": {}}"#);
    let plan = c.plan(ctx(), &InputShapes::new(&[2, 3, 4, 4], &[2, 4, 4]), PlanOptions::default()).unwrap();
    let mut encoder = ctx().device().create_command_encoder(&Default::default());
    let e = plan.record(&mut encoder, inputs, outputs).expect_err(needle).to_string();
    assert!(e.contains(needle), "{e} lacks {needle:?}");
}

#[test]
fn engine_buffers_are_checked_before_recording() {
    let ctx = ctx();
    let x = GpuTensor::zeros(ctx, &[2, 3, 4, 4], DType::F32).unwrap();
    let y = GpuTensor::zeros(ctx, &[2, 4, 4], DType::I32).unwrap();
    let v = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let g = GpuTensor::zeros(ctx, &[2, 3, 4, 4], DType::F32).unwrap();
    let out = LossOutputs { value: &v, grad: Some(&g) };
    let wrong = GpuTensor::zeros(ctx, &[2, 3, 4, 5], DType::F32).unwrap();
    record_error(LossInputs { logits: &wrong, target: &y, weight: None, distance: None }, out, "this plan was made for [2, 3, 4, 4]");
    let float_target = GpuTensor::zeros(ctx, &[2, 4, 4], DType::F32).unwrap();
    record_error(LossInputs { logits: &x, target: &float_target, weight: None, distance: None }, out, "target is f32");
    let inputs = LossInputs { logits: &x, target: &y, weight: None, distance: None };
    record_error(inputs, LossOutputs { value: &v, grad: None }, "grad is required");
    let aliased = GpuTensor::new(ctx, x.buffer().clone(), 0, &[2, 3, 4, 4], DType::F32).unwrap();
    record_error(inputs, LossOutputs { value: &v, grad: Some(&aliased) }, "overlap in one buffer, and grad is written");
    let e = GpuTensor::new(ctx, g.buffer().clone(), 4, &[2], DType::F32).unwrap_err().to_string();
    assert!(e.contains("not a multiple"), "{e}");
    let e = GpuTensor::new(ctx, v.buffer().clone(), 0, &[1000], DType::F32).unwrap_err().to_string();
    assert!(e.contains("needs 4000 bytes"), "{e}");
}

#[test]
fn tensors_sub_allocate_at_the_devices_offset_alignment() {
    let ctx = ctx();
    let align = ctx.offset_alignment();
    assert_eq!(align, ctx.device().limits().min_storage_buffer_offset_alignment as u64);
    // Logits one alignment into a buffer of the caller's, as a pooled allocator places them.
    let mut r = rng(61);
    let (x, y) = (logits(&mut r, &[2, 1, 3, 5], 3.0), binary(&mut r, &[2, 1, 3, 5]));
    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("engine pool"),
        size: align + x.bytes().len() as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue().write_buffer(&buffer, align, x.bytes());
    let xt = GpuTensor::new(ctx, buffer.clone(), align, &x.shape, DType::F32).unwrap();
    assert_eq!(xt.read_f32(ctx).unwrap(), x.as_f32("logits").unwrap());
    let c = config(r#"{"loss": "bce", "params": {}}"#);
    let plan = c.plan(ctx, &InputShapes::new(&x.shape, &y.shape), PlanOptions::default()).unwrap();
    let yt = GpuTensor::from_host(ctx, &y).unwrap();
    let (v, g) = (GpuTensor::zeros(ctx, &[1], DType::F32).unwrap(), GpuTensor::zeros(ctx, &x.shape, DType::F32).unwrap());
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    plan.record(&mut encoder, LossInputs { logits: &xt, target: &yt, weight: None, distance: None }, LossOutputs { value: &v, grad: Some(&g) })
        .unwrap();
    ctx.queue().submit([encoder.finish()]);
    let reference = c.reference(&HostInputs { logits: &x, target: &y, weight: None, distance: None }).unwrap();
    let got = v.read_f32(ctx).unwrap()[0] as f64;
    assert!((got - reference.value[0]).abs() <= 1e-5 * reference.value[0].abs(), "{got} vs {}", reference.value[0]);
    // Anything between two multiples is refused, naming the device's alignment.
    let e = GpuTensor::new(ctx, buffer, align / 2, &[2], DType::F32).unwrap_err().to_string();
    assert!(e.contains(&format!("not a multiple of the device's {align}-byte")), "{e}");
}

#[test]
fn labels_out_of_range_on_the_gpu_set_the_status_word() {
    let ctx = ctx();
    let c = config(r#"{"loss": "cross_entropy", "params": {"ignore_index": 255}}"#);
    let plan = c.plan(ctx, &InputShapes::new(&[1, 3, 2, 2], &[1, 2, 2]), PlanOptions::default()).unwrap();
    let x = GpuTensor::from_host(ctx, &HostTensor::f32(&[1, 3, 2, 2], vec![0.5; 12]).unwrap()).unwrap();
    let v = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let g = GpuTensor::zeros(ctx, &[1, 3, 2, 2], DType::F32).unwrap();
    let status_after = |labels: Vec<i32>| {
        let y = GpuTensor::from_host(ctx, &HostTensor::i32(&[1, 2, 2], labels).unwrap()).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        plan.record(&mut encoder, LossInputs { logits: &x, target: &y, weight: None, distance: None }, LossOutputs { value: &v, grad: Some(&g) })
            .unwrap();
        let status = plan.status_buffer().unwrap();
        let staging = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
        encoder.copy_buffer_to_buffer(status, 0, staging.buffer(), 0, 4);
        ctx.queue().submit([encoder.finish()]);
        staging.read_f32(ctx).unwrap()[0].to_bits()
    };
    assert_eq!(status_after(vec![0, 1, 2, 255]), 0);
    assert_eq!(status_after(vec![0, 7, 2, 255]), 1);
    assert_eq!(status_after(vec![0, 1, 2, 1]), 0, "the status word is cleared on each recording");
}

#[test]
fn a_weight_given_to_a_plan_made_without_one_is_an_error() {
    let ctx = ctx();
    let c = config(r#"{"loss": "bce", "params": {}}"#);
    let plan = c.plan(ctx, &InputShapes::new(&[2, 8], &[2, 8]), PlanOptions::default()).unwrap();
    let x = GpuTensor::zeros(ctx, &[2, 8], DType::F32).unwrap();
    let y = GpuTensor::zeros(ctx, &[2, 8], DType::F32).unwrap();
    let w = GpuTensor::zeros(ctx, &[2, 8], DType::F32).unwrap();
    let v = GpuTensor::zeros(ctx, &[1], DType::F32).unwrap();
    let g = GpuTensor::zeros(ctx, &[2, 8], DType::F32).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    let e = plan
        .record(&mut encoder, LossInputs { logits: &x, target: &y, weight: Some(&w), distance: None }, LossOutputs { value: &v, grad: Some(&g) })
        .expect_err("an unused weight");
    assert!(e.to_string().contains("weight was given, but this plan was made without it"), "{e}");
    let e = plan
        .record(&mut encoder, LossInputs { logits: &x, target: &y, weight: None, distance: Some(&w) }, LossOutputs { value: &v, grad: Some(&g) })
        .expect_err("unused distance maps");
    assert!(e.to_string().contains("this loss takes none"), "{e}");
}

#[test]
fn parameters_beyond_f32_are_refused() {
    config_error(r#"{"loss": "cross_entropy", "params": {"class_weights": [1e39, 1]}}"#, "does not fit in f32");
    config_error(r#"{"loss": "cross_entropy", "params": {"class_weights": [3e38, 3e38]}}"#, "sum beyond f32");
    config_error(r#"{"loss": "focal", "params": {"mode": "multiclass", "class_weights": [1e39, 1]}}"#, "does not fit in f32");
    config_error(r#"{"loss": "bce", "params": {"pos_weight": 1e39}}"#, "pos_weight");
    config_error(r#"{"loss": "tversky", "params": {"squared": true, "alpha": 2.0, "beta": 0.0}}"#, "squared denominators");
}

#[test]
fn a_tensor_whose_data_does_not_fill_its_shape_is_refused() {
    let mut r = rng(32);
    let mut x = logits(&mut r, &[1, 3, 2, 2], 1.0);
    let y = labels(&mut r, &[1, 2, 2], 3, None);
    x.data = segloss::HostData::F32(vec![0.5; 3]);
    let c = config(r#"{"loss": "cross_entropy", "params": {}}"#);
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    for e in [runner().compute(&c, inputs).unwrap_err(), c.reference(&inputs).unwrap_err()] {
        assert!(e.to_string().contains("logits has shape [1, 3, 2, 2], which holds 12 elements, but 3 were given"), "{e}");
    }
    assert!(GpuTensor::from_host(ctx(), &x).is_err());
}

#[test]
fn a_buffer_beyond_the_device_limit_is_an_error_not_a_panic() {
    let max = ctx().device().limits().max_buffer_size;
    let elements = (max / 4 + 1) as usize;
    let e = GpuTensor::zeros(ctx(), &[elements], DType::F32).unwrap_err();
    assert!(matches!(e, Error::Limit { message: ref m, .. } if m.contains("exceeds the device's largest")), "{e}");
}

#[test]
fn clamped_giou_of_inverted_boxes_follows_the_reference() {
    // Both boxes inverted in y: the enclosing height is negative and clamps to 0.
    let pred = HostTensor::f32(&[1, 4], vec![0.0, 5.0, 4.0, 3.0]).unwrap();
    let target = HostTensor::f32(&[1, 4], vec![1.0, 6.0, 3.0, 4.0]).unwrap();
    let c = config(r#"{"loss": "box_iou", "params": {"kind": "giou", "degenerate": "clamp"}}"#);
    gpu_vs_reference(&c, HostInputs { logits: &pred, target: &target, weight: None, distance: None }, 1e-4, 1e-6);
}

#[test]
fn a_cancelled_read_leaves_the_runner_usable() {
    use futures::FutureExt;
    let runner = segloss::Runner::new(segloss::GpuContext::new().unwrap());
    let mut r = rng(33);
    let x = logits(&mut r, &[2, 3, 64, 64], 2.0);
    let y = labels(&mut r, &[2, 64, 64], 3, None);
    let c = config(r#"{"loss": "cross_entropy", "params": {}}"#);
    let inputs = HostInputs { logits: &x, target: &y, weight: None, distance: None };
    // Polled once, then dropped while its readback is pending.
    assert!(runner.compute_async(&c, inputs).now_or_never().is_none());
    let reference = c.reference(&inputs).unwrap();
    for _ in 0..3 {
        let got = runner.compute(&c, inputs).unwrap();
        assert!((got.value[0] as f64 - reference.value[0]).abs() < 1e-5 * reference.value[0].abs());
    }
}

/// Class indices from floating data must be integers within i32: never truncated.
#[test]
fn class_indices_from_floats_must_be_integers() {
    let t = HostTensor::classes_from_f32(&[2, 2], &[0.0, 1.0, 255.0, -100.0]).unwrap();
    assert_eq!(t.as_i32("target").unwrap(), &[0, 1, 255, -100]);
    for (data, needle) in [
        (vec![1.0, 0.5], "class indices[1] = 0.5 is not an integer"),
        (vec![f64::NAN, 0.0], "class indices[0] = NaN is not an integer"),
        (vec![0.0, 3e9], "class indices[1] = 3000000000 is outside i32"),
    ] {
        let e = HostTensor::classes_from_f64(&[2], &data).unwrap_err().to_string();
        assert!(e.contains(needle), "{data:?}: {e}");
    }
    let e = HostTensor::classes_from_f32(&[1], &[2.25]).unwrap_err().to_string();
    assert!(e.contains("[0] = 2.25 is not an integer"), "{e}");
}
