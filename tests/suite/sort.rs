//! The key-value sort on its own, against std's stable sort (the CPU twin),
//! on every path: the bitonic network for short segments, and the radix
//! sort with each local ranking.

use rand::Rng;
use segloss::primitives::sort::{Ranking, SORT_TILE, SortOptions, SortPlan, argsort_cpu};
use segloss::{ContextOptions, Error, GpuContext};

use crate::common::{ctx, rng};

const TILE: usize = SORT_TILE as usize;

/// The default (bitonic for short segments, radix with subgroups for the
/// rest on lavapipe), and the radix sort alone with each ranking.
const PATHS: [SortOptions; 3] = [
    SortOptions { ranking: Ranking::Auto, tile_sort: true },
    SortOptions { ranking: Ranking::Subgroup, tile_sort: false },
    SortOptions { ranking: Ranking::Workgroup, tile_sort: false },
];

/// Argsorts on the GPU as `options` say and demands the CPU's result, bit for bit.
fn check_with(keys: &[f32], lengths: &[usize], options: SortOptions) {
    let plan = SortPlan::with_options(ctx(), lengths, true, options).unwrap();
    let (got_keys, got_pos) = plan.run_host(keys, &vec![0; keys.len()]).unwrap();
    let (want_keys, want_pos) = argsort_cpu(keys, lengths);
    if let Some(i) = (0..keys.len()).find(|&i| got_pos[i] != want_pos[i] || got_keys[i].to_bits() != want_keys[i].to_bits()) {
        panic!(
            "{options:?}, segments {:?}: position {i}: got key {} from {}, want key {} from {}",
            &lengths[..lengths.len().min(8)],
            got_keys[i],
            got_pos[i],
            want_keys[i],
            want_pos[i]
        );
    }
}

fn has_subgroups() -> bool {
    ctx().device().features().contains(wgpu::Features::SUBGROUP)
}

/// The paths this device offers: all three, less the subgroup ranking where
/// the device has no subgroups (wgpu's GL backend); asking for it there is
/// an error (`each_path_is_the_one_asked_for`).
fn paths() -> Vec<SortOptions> {
    PATHS.into_iter().filter(|o| o.ranking != Ranking::Subgroup || has_subgroups()).collect()
}

/// [`check_with`] on every path.
fn check(keys: &[f32], lengths: &[usize]) {
    for options in paths() {
        check_with(keys, lengths, options);
    }
}

fn random_keys(seed: u64, n: usize) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random::<f32>() * 2.0 - 1.0).collect()
}

#[test]
fn each_path_is_the_one_asked_for() {
    let info = ctx().adapter_info().expect("the suite opens its own adapter");
    if info.backend == wgpu::Backend::Vulkan && info.name.contains("llvmpipe") {
        assert!(has_subgroups(), "lavapipe offers subgroups, so the subgroup path must be tested here");
    }
    let ranking = |n: usize, options| SortPlan::with_options(ctx(), &[n], true, options).map(|p| p.ranking());
    assert_eq!(ranking(TILE, PATHS[0]).unwrap(), None, "one tile goes to the bitonic network");
    assert_eq!(ranking(5, PATHS[2]).unwrap(), Some(Ranking::Workgroup));
    if has_subgroups() {
        assert_eq!(ranking(TILE + 1, PATHS[0]).unwrap(), Some(Ranking::Subgroup));
        assert_eq!(ranking(5, PATHS[1]).unwrap(), Some(Ranking::Subgroup));
    } else {
        assert_eq!(ranking(TILE + 1, PATHS[0]).unwrap(), Some(Ranking::Workgroup));
        let e = ranking(5, PATHS[1]).err().expect("no subgroups here").to_string();
        assert!(e.contains("SUBGROUP"), "{e}");
    }
}

#[test]
fn short_lengths() {
    for (i, n) in [1usize, 2, 3, 4, 5, 7, 255, 1000, TILE - 1, TILE, TILE + 1, 4096, 5000, 3 * TILE + 17].into_iter().enumerate() {
        check(&random_keys(i as u64, n), &[n]);
    }
}

#[test]
fn equal_keys_keep_their_order() {
    for n in [3usize, 1000, 70_001] {
        check(&vec![0.25; n], &[n]);
    }
    // Few distinct values: long runs of ties across tiles and passes.
    let mut r = rng(40);
    let keys: Vec<f32> = (0..300_000).map(|_| r.random_range(0..5) as f32).collect();
    check(&keys, &[300_000]);
}

#[test]
fn sorted_and_reversed_inputs() {
    for n in [1000usize, 9000, 65_537] {
        let ascending: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 100.0).collect();
        let descending: Vec<f32> = ascending.iter().rev().copied().collect();
        check(&ascending, &[n]);
        check(&descending, &[n]);
    }
}

#[test]
fn keys_that_differ_in_one_digit_only() {
    // Neighbouring floats differ in the lowest byte (the first pass), powers
    // of two in the exponent (the last two): each pass must order alone.
    let mut r = rng(45);
    let low: Vec<f32> = (0..20_000).map(|_| f32::from_bits(0x3F80_0000 + r.random_range(0..256))).collect();
    let high: Vec<f32> = (0..20_000).map(|_| 2f32.powi(r.random_range(-60..60)) * if r.random() { 1.0 } else { -1.0 }).collect();
    check(&low, &[low.len()]);
    check(&high, &[high.len()]);
}

#[test]
fn special_values() {
    let nan = f32::NAN;
    let negative_nan = f32::from_bits(0xFFC0_0001);
    let keys = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 1e-42, -1e-42, f32::MAX, f32::MIN, nan, 1.0, -0.0, 0.0, negative_nan, 1e-42];
    // One short segment (the network) and the same keys repeated past a tile (the radix sort).
    let long: Vec<f32> = keys.iter().copied().cycle().take(3 * TILE).collect();
    check(&keys, &[keys.len()]);
    check(&long, &[long.len()]);
    for options in paths() {
        let (sorted, order) = SortPlan::with_options(ctx(), &[keys.len()], true, options).unwrap().run_host(&keys, &[0; 14]).unwrap();
        // Every NaN first, in input order, as one NaN; −∞ last.
        assert_eq!(&order[..2], &[8, 12], "{options:?}");
        assert!(sorted[..2].iter().all(|k| k.to_bits() == 0x7FFF_FFFF), "{options:?}");
        assert_eq!(sorted[2], f32::INFINITY);
        assert_eq!(*sorted.last().unwrap(), f32::NEG_INFINITY);
        // ±0 are equal keys: they keep their order and come back as +0.
        let zeros: Vec<u32> = order.iter().zip(&sorted).filter(|(_, k)| **k == 0.0).map(|(i, _)| *i).collect();
        assert_eq!(zeros, vec![0, 1, 10, 11], "{options:?}");
        assert!(sorted.iter().all(|k| k.to_bits() != (-0.0f32).to_bits()));
    }
}

#[test]
fn many_segments_of_unequal_length() {
    let lengths = [1usize, 0, 2, 3, TILE - 1, TILE, TILE + 1, 5, 0, 70_000, 131_079, 1, 4096, 33, 262_144, 17, 0];
    let total = lengths.iter().sum();
    let mut keys = random_keys(41, total);
    // Ties inside segments too.
    for k in keys.iter_mut().step_by(7) {
        *k = 0.5;
    }
    check(&keys, &lengths);
    // Thousands of tiny segments in one dispatch.
    let mut r = rng(42);
    let small: Vec<usize> = (0..5000).map(|_| r.random_range(0..40)).collect();
    let total = small.iter().sum();
    check(&random_keys(43, total), &small);
}

#[test]
fn a_segment_of_2_pow_22_plus_3_among_short_ones() {
    let lengths = [TILE + 1, 0, (1 << 22) + 3, 1, TILE, TILE - 1, 0];
    let total = lengths.iter().sum();
    let mut r = rng(46);
    // A quarter of the keys repeat, so ties cross every pass and tile.
    let keys: Vec<f32> = (0..total).map(|_| if r.random::<f32>() < 0.25 { r.random_range(0..64) as f32 / 64.0 } else { r.random::<f32>() }).collect();
    check(&keys, &lengths);
}

#[test]
fn two_pow_24_keys() {
    let n = 1 << 24;
    let mut r = rng(44);
    let keys: Vec<f32> = (0..n).map(|_| if r.random::<f32>() < 0.25 { r.random_range(0..64) as f32 / 64.0 } else { r.random::<f32>() * 2.0 - 1.0 }).collect();
    check_with(&keys, &[n], PATHS[0]);
    check_with(&keys, &[n], PATHS[2]);
}

#[test]
fn caller_values_follow_their_keys_and_ties_keep_their_order() {
    let keys = [1.0f32, 2.0, 1.0, 1.0, 2.0];
    let values = [9u32, 4, 0xFFFF_FFF0, 3, 5];
    let (k, v) = SortPlan::sort_host(ctx(), &keys, &values, &[5]).unwrap();
    assert_eq!(k, vec![2.0, 2.0, 1.0, 1.0, 1.0]);
    assert_eq!(v, vec![4, 5, 9, 0xFFFF_FFF0, 3]);
    // The same through the radix passes, on two segments of random values.
    let lengths = [3 * TILE + 5, TILE + 9];
    let n: usize = lengths.iter().sum();
    let mut r = rng(47);
    let keys: Vec<f32> = (0..n).map(|_| r.random_range(0..50) as f32).collect();
    let values: Vec<u32> = (0..n).map(|_| r.random()).collect();
    let (_, order) = argsort_cpu(&keys, &lengths);
    let want: Vec<u32> = order.iter().enumerate().map(|(i, &p)| values[if i < lengths[0] { p as usize } else { lengths[0] + p as usize }]).collect();
    for options in paths() {
        let (_, got) = SortPlan::with_options(ctx(), &lengths, false, options).unwrap().run_host(&keys, &values).unwrap();
        assert_eq!(got, want, "{options:?}");
    }
}

#[test]
fn two_runs_give_identical_permutations() {
    let keys = random_keys(48, 3 * TILE * 7 + 11);
    for options in paths() {
        let plan = SortPlan::with_options(ctx(), &[keys.len()], true, options).unwrap();
        let zeros = vec![0; keys.len()];
        assert_eq!(plan.run_host(&keys, &zeros).unwrap().1, plan.run_host(&keys, &zeros).unwrap().1, "{options:?}");
    }
}

#[test]
fn keys_over_one_binding_are_a_clear_error() {
    let small = GpuContext::with_options(ContextOptions { max_binding_bytes: Some(1 << 20), ..Default::default() }).unwrap();
    match SortPlan::argsort(&small, &[200_000, 100_000]) {
        Err(Error::Limit { message: m, .. }) => assert!(m.contains("300000 keys"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a 1.2 MB sort was planned under a 1 MiB binding"),
    }
    assert!(matches!(SortPlan::argsort(ctx(), &[]), Err(Error::Input { .. })));
    assert!(matches!(SortPlan::argsort(ctx(), &[0, 0]), Err(Error::Input { .. })));
    let plan = SortPlan::argsort(ctx(), &[3, 4]).unwrap();
    match plan.run_host(&[1.0; 6], &[0; 6]) {
        Err(Error::Input { message: m, .. }) => assert!(m.contains("6 keys and 6 values do not fill segments of 7"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_plan_records_into_a_callers_encoder_and_counts_its_dispatches() {
    // 2^24 keys: four passes of an upsweep, a two-level scan and a downsweep.
    let plan = SortPlan::argsort(ctx(), &[1 << 24]).unwrap();
    assert_eq!(plan.len(), 1 << 24);
    assert!(plan.dispatches() <= 24, "{} dispatches", plan.dispatches());
    // Short segments take one dispatch.
    assert_eq!(SortPlan::argsort(ctx(), &[TILE, 1, 0, 7]).unwrap().dispatches(), 1);
}
