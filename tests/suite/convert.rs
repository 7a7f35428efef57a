//! The element-type conversions on their own, against their CPU twins
//! (`HostTensor::widened`, `HostTensor::to_dtype`): every packed type, odd
//! lengths, tensors at an offset in a shared buffer, bindings chunked far
//! below a tensor's size, the padding of an odd f16 tensor left alone.

use rand::Rng;
use segloss::primitives::convert::Convert;
use segloss::{ContextOptions, DType, GpuContext, GpuTensor, HostTensor};

use crate::common::{ctx, rng};

const LENGTHS: [usize; 7] = [1, 2, 3, 5, 255, 1000, 4097];

/// Random host data of `dtype`: floats across many magnitudes, labels across the type's range.
fn random(dtype: DType, n: usize, seed: u64) -> HostTensor {
    let mut r = rng(seed);
    match dtype {
        DType::F16 | DType::BF16 | DType::F32 => {
            let v = (0..n).map(|_| (r.random::<f32>() - 0.5) * 10f32.powi(r.random_range(-6..5))).collect();
            HostTensor::f32(&[n], v).unwrap().to_dtype(dtype).unwrap()
        }
        DType::U8 => HostTensor { shape: vec![n], data: segloss::HostData::U8((0..n).map(|_| r.random()).collect()) },
        DType::U16 => HostTensor { shape: vec![n], data: segloss::HostData::U16((0..n).map(|_| r.random()).collect()) },
        DType::I64 => HostTensor {
            shape: vec![n],
            // Mostly within i32 (both signs), some far outside it.
            data: segloss::HostData::I64((0..n).map(|i| if i % 7 == 3 { r.random::<i64>() } else { r.random::<i32>() as i64 }).collect()),
        },
        DType::I32 => unreachable!("not converted"),
    }
}

/// `host` uploaded into a buffer shared with other data: at `offset`
/// bytes, with every byte around it set to 0xAB.
fn upload_at(ctx: &GpuContext, host: &HostTensor, offset: u64) -> (GpuTensor, wgpu::Buffer) {
    let bytes = host.bytes();
    let len = offset + (bytes.len() as u64).next_multiple_of(4) + 64;
    let mut all = vec![0xABu8; len as usize];
    all[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: len,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue().write_buffer(&buffer, 0, &all);
    (GpuTensor::new(ctx, buffer.clone(), offset, &host.shape, host.dtype()).unwrap(), buffer)
}

fn read_all(ctx: &GpuContext, buffer: &wgpu::Buffer) -> Vec<u8> {
    GpuTensor::new(ctx, buffer.clone(), 0, &[buffer.size() as usize], DType::U8).unwrap().read_host(ctx).unwrap().bytes().to_vec()
}

fn widen_on(ctx: &GpuContext, host: &HostTensor, offset: u64) -> HostTensor {
    let (src, _) = upload_at(ctx, host, offset);
    let dst = GpuTensor::zeros(ctx, &host.shape, host.dtype().widened()).unwrap();
    let widen = Convert::widen(ctx, "x", &host.shape, host.dtype()).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    widen.record(&mut encoder, &src, &dst).unwrap();
    ctx.queue().submit([encoder.finish()]);
    dst.read_host(ctx).unwrap()
}

#[test]
fn every_packed_type_widens_as_its_cpu_twin_does() {
    for dtype in [DType::F16, DType::BF16, DType::U8, DType::U16, DType::I64] {
        for (i, n) in LENGTHS.into_iter().enumerate() {
            let host = random(dtype, n, i as u64);
            let offset = 2 * ctx().offset_alignment();
            assert_eq!(widen_on(ctx(), &host, offset), host.widened(), "{} × {n}", dtype.name());
        }
    }
}

#[test]
fn widening_in_bindings_far_smaller_than_the_tensor() {
    // 4 KiB bindings: chunks that start at any element, bound from the word below.
    let small = GpuContext::with_options(ContextOptions { max_binding_bytes: Some(4096), ..Default::default() }).unwrap();
    for dtype in [DType::F16, DType::U8, DType::I64] {
        let host = random(dtype, 10_001, 40);
        assert_eq!(widen_on(&small, &host, small.offset_alignment()), host.widened(), "{}", dtype.name());
    }
}

#[test]
fn an_i64_label_outside_i32_becomes_the_out_of_range_value() {
    let host = HostTensor { shape: vec![5], data: segloss::HostData::I64(vec![-1, i32::MAX as i64 + 1, i32::MIN as i64, 1 << 40, 7]) };
    let got = widen_on(ctx(), &host, 0);
    let out = segloss::gpu::tensor::I64_OUT_OF_RANGE;
    assert_eq!(got.as_i32("labels").unwrap(), &[-1, out, i32::MIN, out, 7]);
}

/// Narrows `f32` into a `dtype` tensor that holds `before` (accumulating when
/// asked), at an offset in a buffer of 0xAB bytes; returns the result and
/// every byte of the buffer.
fn narrow_on(ctx: &GpuContext, f32s: &HostTensor, before: &HostTensor, accumulate: bool) -> (HostTensor, Vec<u8>, u64) {
    let offset = ctx.offset_alignment();
    let src = GpuTensor::from_host(ctx, f32s).unwrap();
    let (dst, buffer) = upload_at(ctx, before, offset);
    let narrow = Convert::narrow(ctx, "grad", &f32s.shape, before.dtype(), accumulate).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    narrow.record(&mut encoder, &src, &dst).unwrap();
    ctx.queue().submit([encoder.finish()]);
    (dst.read_host(ctx).unwrap(), read_all(ctx, &buffer), offset)
}

/// The same bits, element by element (both the GPU and the host round to
/// nearest even and saturate alike).
fn assert_same_bits(got: &HostTensor, want: &HostTensor, what: &str) {
    for (i, (a, b)) in got.bytes().chunks(2).zip(want.bytes().chunks(2)).enumerate() {
        assert_eq!(a, b, "{what}: element {i}");
    }
    assert_eq!(got.len(), want.len());
}

#[test]
fn narrowing_rounds_saturates_and_leaves_the_padding_alone() {
    for dtype in [DType::F16, DType::BF16] {
        for (i, n) in LENGTHS.into_iter().enumerate() {
            let mut values = random(DType::F32, n, 100 + i as u64);
            if let segloss::HostData::F32(v) = &mut values.data {
                // Beyond each type's range: saturated to its largest, never ±Inf.
                v[0] = if dtype == DType::F16 { 1e6 } else { 3.4e38 };
                if n > 1 {
                    v[1] = -v[0];
                }
                // ±∞ stays ±∞ (only a non-finite input gives one).
                if n > 3 {
                    v[2] = f32::INFINITY;
                    v[3] = f32::NEG_INFINITY;
                }
            }
            let zeros = HostTensor::f32(&[n], vec![0.0; n]).unwrap().to_dtype(dtype).unwrap();
            let (got, bytes, offset) = narrow_on(ctx(), &values, &zeros, false);
            let want = values.to_dtype(dtype).unwrap();
            assert_same_bits(&got, &want, &format!("{} × {n}", dtype.name()));
            assert!(got.widened().as_f32("g").unwrap().iter().take(2).all(|x| x.is_finite()), "saturated, not ±∞");
            // Every byte outside the n elements is as it was: the odd tail's padding and the neighbours.
            let end = offset as usize + 2 * n;
            assert!(bytes[..offset as usize].iter().chain(&bytes[end..]).all(|&b| b == 0xAB), "{} × {n}: bytes outside the tensor changed", dtype.name());
        }
    }
}

#[test]
fn narrowing_can_add_into_the_destination() {
    for dtype in [DType::F16, DType::BF16] {
        let n = 1001;
        let g = random(DType::F32, n, 200);
        let before = random(DType::F32, n, 201).to_dtype(dtype).unwrap();
        let (got, _, _) = narrow_on(ctx(), &g, &before, true);
        let sum: Vec<f32> = g.as_f32("g").unwrap().iter().zip(before.widened().as_f32("b").unwrap()).map(|(a, b)| a + b).collect();
        let want = HostTensor::f32(&[n], sum).unwrap().to_dtype(dtype).unwrap();
        assert_same_bits(&got, &want, dtype.name());
    }
}

#[test]
fn narrowing_in_small_bindings_matches_one_binding() {
    let small = GpuContext::with_options(ContextOptions { max_binding_bytes: Some(4096), ..Default::default() }).unwrap();
    let n = 9_999;
    let g = random(DType::F32, n, 300);
    let zeros = HostTensor::f32(&[n], vec![0.0; n]).unwrap().to_dtype(DType::F16).unwrap();
    let (chunked, _, _) = narrow_on(&small, &g, &zeros, false);
    let (whole, _, _) = narrow_on(ctx(), &g, &zeros, false);
    assert_eq!(chunked, whole);
}

#[test]
fn a_tensor_of_the_wrong_type_or_an_unconvertible_one_is_refused() {
    let e = Convert::widen(ctx(), "logits", &[4], DType::F32).err().expect("f32 is not converted").to_string();
    assert!(e.contains("f32"), "{e}");
    let e = Convert::narrow(ctx(), "grad", &[4], DType::U8, false).err().expect("no u8 gradient").to_string();
    assert!(e.contains("u8"), "{e}");
    let widen = Convert::widen(ctx(), "logits", &[4], DType::F16).unwrap();
    let wrong = GpuTensor::zeros(ctx(), &[4], DType::BF16).unwrap();
    let dst = GpuTensor::zeros(ctx(), &[4], DType::F32).unwrap();
    let mut encoder = ctx().device().create_command_encoder(&Default::default());
    let e = widen.record(&mut encoder, &wrong, &dst).err().expect("bf16 given to an f16 widening").to_string();
    assert!(e.contains("logits is bf16"), "{e}");
}
