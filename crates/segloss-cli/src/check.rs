//! `segloss check DIR`: one line per case, then `N passed, M failed, K skipped`.

use std::path::Path;

use segloss::golden::{GoldenCase, Outcome, case_files, check_case, check_case_in_dtype, check_case_sharded};
use segloss::{DType, GpuContext, Result, Runner};

pub fn run(dir: &Path, only: &[String], cpu_only: bool, dtype: Option<DType>, shards: Option<usize>) -> Result<bool> {
    let runner = if cpu_only { None } else { Some(Runner::new(GpuContext::new()?)) };
    if let Some(r) = &runner {
        let held = |d: DType| match d {
            DType::F16 if r.context().native_f16() => " (read as f16)",
            DType::F16 | DType::BF16 => " (read in u32 words)",
            _ => "",
        };
        let inputs = dtype.map(|d| format!(", inputs and gradient in {}{}", d.name(), held(d))).unwrap_or_default();
        let sharded = shards.map(|k| format!(", each batch split over {k} data-parallel devices")).unwrap_or_default();
        println!("device: {}{inputs}{sharded}", r.context().adapter_name());
    }
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for file in case_files(dir)? {
        let name = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let outcome = GoldenCase::load(&file).and_then(|case| {
            if !only.is_empty() && !only.contains(&case.loss) {
                return Ok(None);
            }
            match (dtype, shards, &runner) {
                (Some(d), _, Some(r)) => check_case_in_dtype(&case, r, d).map(Some),
                (_, Some(k), Some(r)) => check_case_sharded(&case, r, k).map(Some),
                _ => check_case(&case, runner.as_ref()).map(Some),
            }
        });
        match outcome {
            Ok(None) => {}
            Ok(Some(Outcome::Pass { reference, gpu })) => {
                passed += 1;
                match (dtype, gpu) {
                    (Some(d), Some(g)) => println!("PASS {name} (gpu at {g:.3} of tolerance, against the reference on {} inputs)", d.name()),
                    (None, Some(g)) if shards.is_some() => println!("PASS {name} (gpu at {g:.3} of tolerance)"),
                    _ => {
                        let gpu = gpu.map(|g| format!(", gpu at {g:.3} of tolerance")).unwrap_or_default();
                        println!("PASS {name} (reference at {reference:.3} of 1e-8{gpu})");
                    }
                }
            }
            Ok(Some(Outcome::Fail(why))) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
            Ok(Some(Outcome::Skip(why))) => {
                skipped += 1;
                println!("SKIP {name}: {why}");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    if passed + failed + skipped == 0 {
        eprintln!("segloss: no golden case ran from {} (a wrong folder, or --only naming no loss there?)", dir.display());
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    Ok(failed == 0 && passed + failed + skipped > 0)
}
