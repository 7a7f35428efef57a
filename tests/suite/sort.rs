//! The key-value sort on its own, against a stable CPU sort.

use rand::Rng;
use segloss::primitives::sort::{SortPlan, argsort_cpu};
use segloss::{ContextOptions, Error, GpuContext};

use crate::common::{ctx, rng};

/// Argsorts on the GPU and demands the CPU's result, bit for bit.
fn check(keys: &[f32], lengths: &[usize]) {
    let (got_keys, got_pos) = SortPlan::argsort_host(ctx(), keys, lengths).unwrap();
    let (want_keys, want_pos) = argsort_cpu(keys, lengths);
    if let Some(i) = (0..keys.len()).find(|&i| got_pos[i] != want_pos[i] || got_keys[i].to_bits() != want_keys[i].to_bits()) {
        panic!(
            "segments {:?}: position {i}: got key {} from {}, want key {} from {}",
            &lengths[..lengths.len().min(8)],
            got_keys[i],
            got_pos[i],
            want_keys[i],
            want_pos[i]
        );
    }
}

fn random_keys(seed: u64, n: usize) -> Vec<f32> {
    let mut r = rng(seed);
    (0..n).map(|_| r.random::<f32>() * 2.0 - 1.0).collect()
}

#[test]
fn short_lengths() {
    for (i, n) in [1usize, 2, 3, 4, 5, 7, 1000, 2047, 2048, 2049, 4096, 5000].into_iter().enumerate() {
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
fn special_values() {
    let keys = [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, 1e-42, -1e-42, f32::MAX, f32::MIN, 1.0, -0.0, 0.0, 1e-42];
    check(&keys, &[keys.len()]);
    let (sorted, order) = SortPlan::argsort_host(ctx(), &keys, &[keys.len()]).unwrap();
    assert_eq!(sorted[0], f32::INFINITY);
    assert_eq!(*sorted.last().unwrap(), f32::NEG_INFINITY);
    // ±0 are equal keys: they keep their order and come back as +0.
    let zeros: Vec<u32> = order.iter().zip(&sorted).filter(|(_, k)| **k == 0.0).map(|(i, _)| *i).collect();
    assert_eq!(zeros, vec![0, 1, 9, 10]);
    assert!(sorted.iter().all(|k| k.to_bits() != (-0.0f32).to_bits()));
}

#[test]
fn many_segments_of_unequal_length() {
    let lengths = [1usize, 0, 2, 3, 2047, 2048, 2049, 5, 70_000, 131_079, 1, 4096, 33, 262_144, 17];
    let total = lengths.iter().sum();
    let mut keys = random_keys(41, total);
    // Ties inside segments too.
    for k in keys.iter_mut().step_by(7) {
        *k = 0.5;
    }
    check(&keys, &lengths);
    // Thousands of tiny segments in one dispatch.
    let mut r = rng(42);
    let small: Vec<usize> = (0..5000).map(|_| r.random_range(1..40)).collect();
    let total = small.iter().sum();
    check(&random_keys(43, total), &small);
}

#[test]
fn caller_values_break_ties_ascending() {
    let keys = [1.0f32, 2.0, 1.0, 1.0, 2.0];
    let values = [9u32, 4, 0xFFFF_FFF0, 3, 5];
    let (k, v) = SortPlan::sort_host(ctx(), &keys, &values, &[5]).unwrap();
    assert_eq!(k, vec![2.0, 2.0, 1.0, 1.0, 1.0]);
    assert_eq!(v, vec![4, 5, 3, 9, 0xFFFF_FFF0]);
}

#[test]
fn beyond_2_pow_22_keys() {
    // 4,206,649 keys: merges up to 2^23 positions, half of them padding;
    // a quarter of the keys repeat so ties cross every pass.
    let n = (1 << 22) + 12_345;
    let mut r = rng(44);
    let keys: Vec<f32> = (0..n).map(|_| if r.random::<f32>() < 0.25 { r.random_range(0..64) as f32 / 64.0 } else { r.random::<f32>() }).collect();
    check(&keys, &[n]);
}

#[test]
fn keys_over_one_binding_are_a_clear_error() {
    let small = GpuContext::with_options(ContextOptions { max_binding_bytes: Some(1 << 20) }).unwrap();
    match SortPlan::argsort(&small, &[200_000, 100_000]) {
        Err(Error::Limit { message: m, .. }) => assert!(m.contains("300000 keys"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a 1.2 MB sort was planned under a 1 MiB binding"),
    }
    assert!(SortPlan::argsort(ctx(), &[]).is_err());
    assert!(SortPlan::argsort(ctx(), &[0, 0]).is_err());
}

#[test]
fn a_plan_records_into_a_callers_encoder_and_counts_its_dispatches() {
    // 2^24 keys: one tile sort, then per merge above the tile its passes.
    let plan = SortPlan::argsort(ctx(), &[1 << 24]).unwrap();
    assert_eq!(plan.len(), 1 << 24);
    assert!(plan.dispatches() < 40, "{} dispatches", plan.dispatches());
}
