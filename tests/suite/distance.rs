//! The distance-transform primitive: exact GPU maps against the float64
//! reference (itself checked against brute force), on random 2D and 3D masks
//! with random spacing and on the edge masks; jump flooding's error measured;
//! chunking, determinism, the loop bound, and every validation error.

use rand::Rng;
use rand::rngs::StdRng;
use segloss::primitives::distance::{DistanceField, DistanceMode, DistancePlan, MAX_EXACT_LINE, signed_distance};
use segloss::reference::boundary::{euclidean_distance, signed_distance as reference_maps};
use segloss::reference::hausdorff_dt::two_sided_distance;
use segloss::tools::jump_flood::{measure_jump_flood, measure_jump_flood_on_blobs};
use segloss::tools::samples::blob_labels;
use segloss::{ContextOptions, DType, Error, GpuContext, GpuTensor, HostTensor};

use crate::common::{ctx, rng};

/// Worst |gpu − ref| / (1e-5·(1 + |ref|)) over the maps: ≤ 1 is f32 rounding.
fn check_exact(ctx: &GpuContext, target: &HostTensor, classes: &[usize], spacing: Option<&[f64]>) {
    let dims = &target.shape[1..];
    let ones = vec![1.0; dims.len()];
    let expected = reference_maps(target.as_i32("t").unwrap(), dims, classes, spacing.unwrap_or(&ones));
    let got = signed_distance(ctx, target, classes, spacing, DistanceMode::Exact).unwrap();
    assert_eq!(got.shape[..2], [target.shape[0], classes.len()]);
    let got = got.as_f32("maps").unwrap();
    for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
        let allowed = 1e-5 * (1.0 + e.abs());
        assert!(
            (g as f64 - e).abs() <= allowed,
            "target {:?} spacing {spacing:?}: map element {i} is {g}, the reference {e}",
            target.shape
        );
    }
}

/// Labels with blobs of a few classes plus salt noise, so masks have holes, borders and lone pixels.
fn noisy_labels(rng: &mut StdRng, shape: &[usize], classes: usize) -> HostTensor {
    let blobs = blob_labels(shape, classes, rng.random()).unwrap();
    let mut data = blobs.as_i32("blobs").unwrap().to_vec();
    for y in data.iter_mut() {
        if rng.random::<f32>() < 0.05 {
            *y = rng.random_range(0..classes as i32);
        }
    }
    HostTensor::i32(shape, data).unwrap()
}

fn random_spacing(rng: &mut StdRng, axes: usize) -> Vec<f64> {
    (0..axes).map(|_| rng.random_range(0.3..2.5)).collect()
}

#[test]
fn reference_edt_equals_brute_force() {
    let mut r = rng(11);
    for dims in [vec![9usize, 14], vec![1, 13], vec![5, 6, 7], vec![4, 1, 9]] {
        let spacing = random_spacing(&mut r, dims.len());
        let n: usize = dims.iter().product();
        let feature: Vec<bool> = (0..n).map(|_| r.random::<f32>() < 0.1).collect();
        let got = euclidean_distance(&feature, &dims, &spacing);
        let coords = |mut i: usize| {
            let mut c = vec![0usize; dims.len()];
            for a in (0..dims.len()).rev() {
                c[a] = i % dims[a];
                i /= dims[a];
            }
            c
        };
        for (q, &distance) in got.iter().enumerate() {
            let cq = coords(q);
            let brute = (0..n)
                .filter(|&p| feature[p])
                .map(|p| {
                    let cp = coords(p);
                    (0..dims.len()).map(|a| ((cq[a] as f64 - cp[a] as f64) * spacing[a]).powi(2)).sum::<f64>().sqrt()
                })
                .fold(f64::INFINITY, f64::min);
            assert!(brute == distance || (brute - distance).abs() <= 1e-12 * brute, "{dims:?} pixel {q}: {distance} vs {brute}");
        }
    }
}

#[test]
fn exact_equals_reference_on_random_2d_masks() {
    let mut r = rng(1);
    for shape in [[2usize, 17, 23], [1, 64, 48], [3, 1, 40], [2, 37, 1], [1, 5, 129]] {
        let classes = r.random_range(2..5);
        let target = noisy_labels(&mut r, &shape, classes);
        let all: Vec<usize> = (0..classes).collect();
        check_exact(ctx(), &target, &all, Some(&random_spacing(&mut r, 2)));
        check_exact(ctx(), &target, &all, None);
    }
}

#[test]
fn exact_equals_reference_on_random_3d_masks() {
    let mut r = rng(2);
    for shape in [[1usize, 9, 17, 13], [2, 6, 11, 20], [1, 1, 12, 12], [1, 16, 1, 3]] {
        let classes = r.random_range(2..4);
        let target = noisy_labels(&mut r, &shape, classes);
        let all: Vec<usize> = (0..classes).collect();
        check_exact(ctx(), &target, &all, Some(&random_spacing(&mut r, 3)));
    }
}

#[test]
fn exact_handles_empty_full_single_pixel_and_border_masks() {
    let (h, w) = (13usize, 11usize);
    let mut images: Vec<Vec<i32>> = Vec::new();
    images.push(vec![0; h * w]); // class 1 empty, class 0 full
    let mut single = vec![0; h * w];
    single[6 * w + 5] = 1;
    images.push(single);
    let mut corner = vec![0; h * w];
    corner[0] = 1;
    corner[h * w - 1] = 1;
    images.push(corner);
    let mut border = vec![0; h * w];
    border[..w].fill(1); // top row
    for y in 0..h {
        border[y * w + w - 1] = 1; // right column
    }
    images.push(border);
    let mut all_but_one = vec![1; h * w];
    all_but_one[3 * w + 7] = 0;
    images.push(all_but_one);
    let target = HostTensor::i32(&[images.len(), h, w], images.concat()).unwrap();
    // Class 2 appears nowhere: every map of it is 0.
    check_exact(ctx(), &target, &[0, 1, 2], Some(&[0.7, 1.9]));
    check_exact(ctx(), &target, &[1], None);
    let maps = signed_distance(ctx(), &target, &[0, 1, 2], None, DistanceMode::Exact).unwrap();
    let maps = maps.as_f32("maps").unwrap();
    let s = h * w;
    assert!(maps[..3 * s].iter().all(|&v| v == 0.0), "an empty or full class's map is all zero");
    // One pixel: 0 on it (1 − 1), its neighbours at 1, the corner far away at the exact distance.
    let single = &maps[4 * s..5 * s]; // image 1, class 1
    assert_eq!(single[6 * w + 5], 0.0);
    assert_eq!(single[6 * w + 4], 1.0);
    assert_eq!(single[0], ((36.0f32 + 25.0).sqrt()));
    // 3D: one voxel, and a volume that is all one class.
    let mut vol = vec![0; 4 * 5 * 6];
    vol[2 * 30 + 3 * 6 + 4] = 1;
    let vol = HostTensor::i32(&[2, 4, 5, 6], [vol, vec![1; 120]].concat()).unwrap();
    check_exact(ctx(), &vol, &[0, 1], Some(&[2.0, 0.5, 1.25]));
    // One pixel images: every mask is empty or full.
    let tiny = HostTensor::i32(&[3, 1, 1], vec![0, 1, 2]).unwrap();
    let maps = signed_distance(ctx(), &tiny, &[0, 1, 2], None, DistanceMode::Exact).unwrap();
    assert!(maps.as_f32("maps").unwrap().iter().all(|&v| v == 0.0));
    let maps = signed_distance(ctx(), &tiny, &[0, 1, 2], None, DistanceMode::JumpFlood).unwrap();
    assert!(maps.as_f32("maps").unwrap().iter().all(|&v| v == 0.0));
}

#[test]
fn labels_that_are_no_listed_class_lie_outside_every_mask() {
    let mut r = rng(3);
    let mut target = noisy_labels(&mut r, &[2, 19, 21], 3);
    if let segloss::HostData::I32(v) = &mut target.data {
        for y in v.iter_mut().step_by(7) {
            *y = 255;
        }
    }
    check_exact(ctx(), &target, &[2, 0], Some(&[1.5, 0.75]));
}

#[test]
fn an_exact_line_of_the_longest_accepted_length_is_not_cut_short() {
    // 6 loop iterations per pixel at most: a truncated loop would leave the far end wrong.
    let mut r = rng(4);
    let n = MAX_EXACT_LINE;
    let data: Vec<i32> = (0..2 * n).map(|i| if r.random::<f32>() < 0.002 || i == 2 * n - 3 { 1 } else { 0 }).collect();
    let wide = HostTensor::i32(&[1, 2, n], data.clone()).unwrap();
    check_exact(ctx(), &wide, &[0, 1], Some(&[1.0, 0.37]));
    let tall = HostTensor::i32(&[1, n, 2], data).unwrap();
    check_exact(ctx(), &tall, &[1], None);
    // Dense: both sides of every line hold thousands of envelope sites.
    let dense: Vec<i32> = (0..2 * n).map(|_| r.random_range(0..2)).collect();
    check_exact(ctx(), &HostTensor::i32(&[1, 2, n], dense).unwrap(), &[0, 1], Some(&[0.9, 1.1]));
    let too_long = DistancePlan::new(ctx(), &[1, 2, n + 1], &[1], None, DistanceMode::Exact);
    assert!(matches!(too_long, Err(Error::Limit { .. })), "{too_long:?}");
    // Jump flooding has no such bound.
    DistancePlan::new(ctx(), &[1, 2, n + 1], &[1], None, DistanceMode::JumpFlood).unwrap();
}

#[test]
fn chunked_bindings_give_the_same_maps() {
    // 4 KiB bindings: a few masks per chunk, many chunks.
    let small = GpuContext::with_options(ContextOptions { max_binding_bytes: Some(4096), ..Default::default() }).unwrap();
    let mut r = rng(5);
    let target = noisy_labels(&mut r, &[3, 20, 24], 4);
    let classes = [0, 1, 2, 3];
    check_exact(&small, &target, &classes, Some(&[1.1, 0.9]));
    for mode in [DistanceMode::Exact, DistanceMode::JumpFlood] {
        let a = signed_distance(&small, &target, &classes, None, mode).unwrap();
        let b = signed_distance(ctx(), &target, &classes, None, mode).unwrap();
        assert_eq!(a, b, "{mode:?}: chunked and whole differ");
    }
    // A single map larger than a binding is a clear error.
    let big = DistancePlan::new(&small, &[1, 40, 40], &[0], None, DistanceMode::Exact);
    assert!(matches!(big, Err(Error::Limit { .. })), "{big:?}");
}

#[test]
fn maps_are_bitwise_reproducible() {
    let mut r = rng(6);
    let target = noisy_labels(&mut r, &[2, 40, 33], 3);
    for mode in [DistanceMode::Exact, DistanceMode::JumpFlood] {
        let plan = DistancePlan::new(ctx(), &target.shape, &[0, 1, 2], Some(&[0.8, 1.3]), mode).unwrap();
        assert_eq!(plan.compute(&target).unwrap(), plan.compute(&target).unwrap());
    }
}

#[test]
fn jump_flood_error_is_measured_on_blobs() {
    // Not exact, and not claimed to be: the share of wrong pixels and the
    // largest error are measured and printed (run with --nocapture).
    let e = measure_jump_flood_on_blobs(ctx(), 4, 5, 0).unwrap();
    println!("256x256 blobs, 4 images x 5 classes: {e}");
    assert_eq!(e.pixels, 4 * 5 * 256 * 256);
    assert!(e.wrong_share() < 1e-3, "{e}");
    assert!(e.max_error_pixels < 1.0, "{e}");
    // 3D with anisotropic spacing, measured the same way.
    let mut r = rng(7);
    let vol = noisy_labels(&mut r, &[1, 24, 40, 40], 3);
    let e3 = measure_jump_flood(ctx(), &vol, &[0, 1, 2], Some(&[2.0, 1.0, 0.8])).unwrap();
    println!("24x40x40 noisy blobs, spacing (2, 1, 0.8): {e3}");
    assert!(e3.wrong_share() < 0.02 && e3.max_error_pixels < 3.0, "{e3}");
}

#[test]
fn jump_flood_is_close_to_the_reference_on_small_masks() {
    let mut r = rng(8);
    let target = noisy_labels(&mut r, &[2, 30, 26], 3);
    let expected = reference_maps(target.as_i32("t").unwrap(), &[30, 26], &[0, 1, 2], &[1.0, 1.0]);
    let got = signed_distance(ctx(), &target, &[0, 1, 2], None, DistanceMode::JumpFlood).unwrap();
    let worst = got.as_f32("maps").unwrap().iter().zip(&expected).map(|(&g, &e)| (g as f64 - e).abs()).fold(0.0, f64::max);
    assert!(worst < 1.0, "jump flooding is {worst} px from exact");
}

#[test]
fn distance_plan_validation_errors() {
    let c = ctx();
    let input = |r: Result<DistancePlan, Error>, what: &str| match r {
        Err(Error::Input { message: m, .. } | Error::Shape { message: m, .. }) => assert!(m.contains(what), "{m}"),
        Err(e) => panic!("{what}: {e}"),
        Ok(_) => panic!("{what}: accepted"),
    };
    input(DistancePlan::new(c, &[4, 4], &[0], None, DistanceMode::Exact), "[N, H, W]");
    input(DistancePlan::new(c, &[1, 2, 3, 4, 5], &[0], None, DistanceMode::Exact), "[N, H, W]");
    input(DistancePlan::new(c, &[1, 0, 4], &[0], None, DistanceMode::Exact), "empty axis");
    input(DistancePlan::new(c, &[1, 4, 4], &[], None, DistanceMode::Exact), "at least one class");
    input(DistancePlan::new(c, &[1, 4, 4], &[1 << 40], None, DistanceMode::Exact), "i32");
    input(DistancePlan::new(c, &[1, 4, 4], &[0], Some(&[1.0]), DistanceMode::Exact), "2 spatial axes");
    input(DistancePlan::new(c, &[1, 4, 4], &[0], Some(&[1.0, 0.0]), DistanceMode::Exact), "spacing 0");
    input(DistancePlan::new(c, &[1, 4, 4], &[0], Some(&[1.0, f64::NAN]), DistanceMode::JumpFlood), "spacing NaN");
    input(DistancePlan::new(c, &[1, 4, 4], &[0], Some(&[1.0, 1e9]), DistanceMode::Exact), "spacing");
    let huge = DistancePlan::new(c, &[1 << 12, 1 << 10, 1 << 10], &[0], None, DistanceMode::JumpFlood);
    assert!(matches!(huge, Err(Error::Limit { .. })), "{huge:?}");
    let unpackable = DistancePlan::new(c, &[1, 1 << 15, (1 << 15) + 1], &[0], None, DistanceMode::JumpFlood);
    assert!(matches!(unpackable, Err(Error::Limit { message: ref m, .. }) if m.contains("30 bits")), "{unpackable:?}");

    // Recording checks the tensors against the plan.
    let plan = DistancePlan::new(c, &[1, 4, 4], &[0, 1], None, DistanceMode::Exact).unwrap();
    let mut encoder = c.device().create_command_encoder(&Default::default());
    let float_target = GpuTensor::zeros(c, &[1, 4, 4], DType::F32).unwrap();
    let target = GpuTensor::zeros(c, &[1, 4, 4], DType::I32).unwrap();
    let out = GpuTensor::zeros(c, &[1, 2, 4, 4], DType::F32).unwrap();
    let wrong_out = GpuTensor::zeros(c, &[1, 1, 4, 4], DType::F32).unwrap();
    assert!(matches!(plan.record(&mut encoder, &float_target, &out), Err(Error::Input { .. })));
    assert!(matches!(plan.record(&mut encoder, &target, &wrong_out), Err(Error::Shape { input: "distance", .. })));
    assert!(matches!(plan.compute(&HostTensor::f32(&[1, 4, 4], vec![0.0; 16]).unwrap()), Err(Error::Input { .. })));
    plan.record(&mut encoder, &target, &out).unwrap();
}

#[test]
fn two_sided_maps_equal_the_reference_and_the_signed_maps_turned_inside_out() {
    let mut r = rng(12);
    for shape in [vec![2usize, 17, 23], vec![1, 5, 129], vec![3, 1, 40], vec![1, 9, 17, 13], vec![2, 6, 11, 20]] {
        let classes = r.random_range(2..5);
        let target = noisy_labels(&mut r, &shape, classes);
        let all: Vec<usize> = (0..classes).collect();
        let dims = &shape[1..];
        let spacing = random_spacing(&mut r, dims.len());
        let expected = two_sided_distance(target.as_i32("t").unwrap(), dims, &all, &spacing);
        let plan = |mode, field| DistancePlan::with_field(ctx(), &shape, &all, Some(&spacing), mode, field).unwrap().compute(&target).unwrap();
        let got = plan(DistanceMode::Exact, DistanceField::TwoSided);
        for (i, (&g, &e)) in got.as_f32("maps").unwrap().iter().zip(&expected).enumerate() {
            assert!((g as f64 - e).abs() <= 1e-5 * (1.0 + e), "{shape:?} spacing {spacing:?}: element {i} is {g}, the reference {e}");
        }
        // Both transforms: the two-sided field is the signed one outside each mask and 1 − it inside.
        let labels = target.as_i32("t").unwrap();
        let s: usize = dims.iter().product();
        for mode in [DistanceMode::Exact, DistanceMode::JumpFlood] {
            let (two, signed) = (plan(mode, DistanceField::TwoSided), plan(mode, DistanceField::Signed));
            for (i, (&t, &f)) in two.as_f32("two").unwrap().iter().zip(signed.as_f32("signed").unwrap()).enumerate() {
                let (img, k, q) = (i / (classes * s), i / s % classes, i % s);
                let inside = labels[img * s + q] == all[k] as i32;
                // An empty or full mask is 0 in both; f32's 1 − φ rounds.
                let want = if inside && (t != 0.0 || f != 0.0) { 1.0 - f } else { f };
                assert!((t - want).abs() <= 1e-6 * (1.0 + want.abs()), "{mode:?} {shape:?} element {i} (inside: {inside}): {t} vs {want}");
            }
        }
    }
}
