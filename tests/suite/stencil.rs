//! The stencil primitive (`primitives::stencil`) on the GPU against its CPU
//! twins: the cross sum, the cross minimum and the box maximum, and which
//! pixel the minimum and the maximum take, in 2D and 3D, on maps over many
//! tiles, maps of one row, one column or one pixel, and several maps at once.

use rand::Rng;
use segloss::primitives::stencil::{StencilGrid, StencilOp, run_stencil, stencil_cpu, stencil_select_cpu};

use crate::common::{ctx, rng};

#[test]
fn stencils_match_their_cpu_twins() {
    let mut rng = rng(120);
    for spatial in [vec![1usize, 1], vec![1, 40], vec![37, 1], vec![33, 50], vec![3, 17, 20], vec![5, 1, 1], vec![2, 16, 16]] {
        let grid = StencilGrid::new(3, &spatial).unwrap();
        let input: Vec<f32> = (0..grid.maps * grid.spatial()).map(|_| rng.random::<f32>() * 4.0 - 2.0).collect();
        let wide: Vec<f64> = input.iter().map(|&v| v as f64).collect();
        for op in [StencilOp::CrossSum, StencilOp::CrossMin, StencilOp::BoxMax] {
            let got = run_stencil(ctx(), op, &grid, &input).unwrap();
            let want = stencil_cpu(op, &grid, &wide).unwrap();
            for (q, (g, w)) in got.iter().zip(&want).enumerate() {
                // Min and max are exact; the sum of seven f32 within its rounding.
                assert!((*g as f64 - w).abs() <= 1e-6 * (1.0 + w.abs()), "{op:?} {spatial:?} at {q}: {g} vs {w}");
            }
        }
        // The selections: which pixel the minimum and the maximum take.
        let (plane, w) = (grid.height * grid.width, grid.width);
        let offset = |q: usize, r: usize| {
            let c = |v: usize| ((v % grid.spatial() / plane) as i64, (v % plane / w) as i64, (v % w) as i64);
            let ((z0, y0, x0), (z1, y1, x1)) = (c(q), c(r));
            (z1 - z0, y1 - y0, x1 - x0)
        };
        let cross = [(0, 0, 0), (-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)];
        for (select, op) in [(StencilOp::CrossMin, StencilOp::CrossArgmin), (StencilOp::BoxMax, StencilOp::BoxArgmax)] {
            let got = run_stencil(ctx(), op, &grid, &input).unwrap();
            let (_, sources) = stencil_select_cpu(select, &grid, &wide).unwrap();
            for (q, (g, &r)) in got.iter().zip(&sources).enumerate() {
                let (dz, dy, dx) = offset(q, r);
                let want = match select {
                    StencilOp::CrossMin => cross.iter().position(|&o| o == (dz, dy, dx)).unwrap(),
                    _ => ((dz + 1) * 9 + (dy + 1) * 3 + dx + 1) as usize,
                };
                assert_eq!(*g as usize, want, "{op:?} {spatial:?} at {q}");
            }
        }
    }
}
