//! The training run end to end, small: every run of both problems trains
//! for two epochs of two steps, and the panels, the chart and the table are
//! written. (Whether the losses train well is the default run's business,
//! shown in the README; this checks that the main job works.)

use std::process::Command;

#[test]
fn a_small_run_writes_panels_chart_and_table() {
    let out = std::env::temp_dir().join(format!("segloss-train-test-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_segloss-train"))
        .args(["--size", "24", "--epochs", "2", "--steps", "2", "--batch", "2", "--held-out", "3", "--width", "4", "--out"])
        .arg(&out)
        .status()
        .expect("segloss-train runs");
    assert!(status.success(), "segloss-train failed: {status}");
    for file in ["panels-seagulls.png", "panels-wires.png", "iou.png", "results.md"] {
        let len = std::fs::metadata(out.join(file)).unwrap_or_else(|e| panic!("{file}: {e}")).len();
        assert!(len > 100, "{file} has {len} bytes");
    }
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    for run in ["bce", "α-bce", "focal", "dice", "dice + α·boundary", "lovász hinge", "cross-entropy", "lovász softmax"] {
        assert!(table.contains(run), "the table lacks {run}:\n{table}");
    }
    std::fs::remove_dir_all(&out).ok();
}
