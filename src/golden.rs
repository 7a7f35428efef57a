//! Golden cases (`shared/golden/README.md`): loading them, and holding the
//! float64 reference and the GPU to them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::gpu::tensor::{DType, HostTensor, integer_labels};
use crate::losses::{HostInputs, LossConfig};
use crate::runner::{LossResult, Runner};

/// How close the float64 reference must come to a golden value: relative to
/// the expected magnitude, with a floor for values that are exactly 0.
pub const REFERENCE_RTOL: f64 = 1e-8;
const REFERENCE_ATOL: f64 = 1e-12;

/// A tensor as golden files write it.
#[derive(Clone, Debug, Deserialize)]
pub struct JsonTensor {
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// `"f32"`, `"f64"` or `"i64"`.
    pub dtype: String,
    /// The elements.
    pub data: Vec<f64>,
}

impl JsonTensor {
    /// Whether the elements are integers (compared exactly).
    pub fn is_integer(&self) -> bool {
        self.dtype.starts_with('i') || self.dtype.starts_with('u')
    }
}

/// Per-case tolerance for the float32 GPU result.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Tolerance {
    /// Relative part.
    pub rtol: f64,
    /// Absolute part.
    pub atol: f64,
}

/// One golden case.
#[derive(Clone, Debug, Deserialize)]
pub struct GoldenCase {
    /// Case id (`focal-019`).
    pub id: String,
    /// SPEC.md loss name.
    pub loss: String,
    /// The library that computed the expected values.
    #[serde(default)]
    pub anchor: String,
    /// The loss's parameters.
    #[serde(default)]
    pub params: Value,
    /// Named input tensors.
    pub inputs: std::collections::BTreeMap<String, JsonTensor>,
    /// Expected outputs: `loss`, `grad`, and loss-specific extras.
    pub expected: Value,
    /// The GPU's tolerance.
    pub tolerance: Tolerance,
    /// The file the case was read from ([`GoldenCase::load`] sets it): what
    /// its errors name. `None` for a case built in memory, whose errors name its id.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

/// Every `*.json` case in `dir`, sorted by file name.
pub fn case_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| golden_err(dir, format!("cannot list: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Ok(files)
}

fn golden_err(file: &Path, message: impl Into<String>) -> Error {
    Error::Golden { file: file.display().to_string(), message: message.into() }
}

impl GoldenCase {
    /// Reads one case file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| golden_err(path, e.to_string()))?;
        let mut case: GoldenCase = serde_json::from_str(&text).map_err(|e| golden_err(path, crate::losses::params::json_error(&text, &e)))?;
        case.file = Some(path.to_path_buf());
        Ok(case)
    }

    /// An error about this case, naming its file (its id when it has none).
    fn error(&self, message: impl Into<String>) -> Error {
        let file = match &self.file {
            Some(f) => f.display().to_string(),
            None => self.id.clone(),
        };
        Error::Golden { file, message: message.into() }
    }

    /// Input `name` as a host tensor: f32 stays f32, i64 becomes i32 class
    /// indices (an element that is not an integer within i32 is an error).
    pub fn input(&self, name: &str) -> Result<Option<HostTensor>> {
        let Some(t) = self.inputs.get(name) else { return Ok(None) };
        let bad = |m: String| self.error(m);
        match t.dtype.as_str() {
            "f32" | "f64" => Ok(Some(HostTensor::f32(&t.shape, t.data.iter().map(|&v| v as f32).collect())?)),
            "i64" | "i32" => {
                // Never truncated: 1.5 is an error, not class 1.
                let ints = integer_labels(name, t.data.iter().copied()).map_err(|e| match e {
                    Error::Input { message, .. } => bad(message),
                    other => other,
                })?;
                Ok(Some(HostTensor::i32(&t.shape, ints)?))
            }
            other => Err(bad(format!("{name} has unknown dtype {other}"))),
        }
    }

    /// The expected value, flattened (one number for reduced losses).
    pub fn expected_loss(&self) -> Result<Vec<f64>> {
        match self.expected.get("loss") {
            Some(Value::Number(n)) => Ok(vec![n.as_f64().unwrap_or(f64::NAN)]),
            Some(v @ Value::Object(_)) => Ok(tensor_of(v).map_err(|e| self.error(format!("expected.loss: {e}")))?.data),
            Some(_) => Err(self.error("expected.loss is neither a number nor a tensor")),
            None => Err(self.error("expected.loss is missing")),
        }
    }

    /// Every expected tensor beside `loss` and `grad` (`enclosing_count`,
    /// `distance`), by name: what the reference's and the plan's extras must match.
    pub fn expected_extras(&self) -> Result<Vec<(String, JsonTensor)>> {
        let Value::Object(fields) = &self.expected else {
            return Err(self.error("expected is not an object"));
        };
        fields
            .iter()
            .filter(|(k, _)| *k != "loss" && *k != "grad")
            .map(|(k, v)| Ok((k.clone(), tensor_of(v).map_err(|e| self.error(format!("expected.{k}: {e}")))?)))
            .collect()
    }

    /// The expected gradient, flattened.
    pub fn expected_grad(&self) -> Result<Vec<f64>> {
        match self.expected.get("grad") {
            Some(v) => Ok(tensor_of(v).map_err(|e| self.error(format!("expected.grad: {e}")))?.data),
            None => Err(self.error("expected.grad is missing")),
        }
    }
}

/// A tensor field of a case; the caller names the case and the field in the error.
fn tensor_of(v: &Value) -> std::result::Result<JsonTensor, serde_json::Error> {
    serde_json::from_value(v.clone())
}

/// The worst element of a comparison, as a share of what the tolerance allows.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// `|got − expected| / allowed` at the worst element: ≤ 1 passes.
    pub ratio: f64,
    /// The worst absolute error.
    pub error: f64,
    /// Where: `"loss"`, `"grad[17]"`…
    pub at: String,
    /// The value found there.
    pub got: f64,
    /// The value expected there.
    pub expected: f64,
}

/// Compares `got` with `expected`: each element within `atol + rtol·scale`,
/// with `scale = |expected[i]|` (per element) or `max |expected|` (`per_tensor`).
pub fn compare(name: &str, got: &[f64], expected: &[f64], rtol: f64, atol: f64, per_tensor: bool) -> Mismatch {
    let mut worst = Mismatch { ratio: 0.0, error: 0.0, at: name.to_string(), got: f64::NAN, expected: f64::NAN };
    if got.len() != expected.len() {
        worst.ratio = f64::INFINITY;
        worst.at = format!("{name} (length {} vs {})", got.len(), expected.len());
        return worst;
    }
    let max_abs = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        let allowed = atol + rtol * if per_tensor { max_abs } else { e.abs() };
        let err = (g - e).abs();
        let ratio = if err.is_nan() { f64::INFINITY } else if allowed > 0.0 { err / allowed } else if err > 0.0 { f64::INFINITY } else { 0.0 };
        if ratio > worst.ratio || i == 0 {
            let at = if expected.len() == 1 { name.to_string() } else { format!("{name}[{i}]") };
            worst = Mismatch { ratio, error: err, at, got: g, expected: e };
        }
    }
    worst
}

/// How one case went.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Both checks passed; the worst ratios of the reference and the GPU.
    Pass { reference: f64, gpu: Option<f64> },
    /// A check failed: what, and where.
    Fail(String),
    /// The loss is not implemented in this build.
    Skip(String),
}

/// Runs one case through the float64 reference (held to 1e-8 relative) and,
/// with a runner, the GPU (held to the case's tolerance). The inputs are
/// looked up by [`LossConfig::input_names`]; every expected field beside
/// `loss` and `grad` must match the extra of that name (integers exactly).
pub fn check_case(case: &GoldenCase, runner: Option<&Runner>) -> Result<Outcome> {
    if !LossConfig::implemented(&case.loss) {
        if !crate::losses::SPEC_LOSSES.contains(&case.loss.as_str()) {
            return Ok(Outcome::Fail(format!("unknown loss {}", case.loss)));
        }
        return Ok(Outcome::Skip(format!("{} is not implemented yet", case.loss)));
    }
    let (config, CaseInputs { logits, target, weight, distance }) = case_inputs(case)?;
    let inputs = HostInputs { logits: &logits, target: &target, weight: weight.as_ref(), distance: distance.as_ref() };
    let exp_loss = case.expected_loss()?;
    let exp_grad = case.expected_grad()?;
    // An extra the case gives as an input (its distance maps) is the
    // caller's: neither the reference nor the plan computes it then.
    let exp_extras: Vec<_> = case.expected_extras()?.into_iter().filter(|(name, _)| !case.inputs.contains_key(name)).collect();

    let reference = config.reference(&inputs)?;
    let mut checks = vec![
        compare("loss", &reference.value, &exp_loss, REFERENCE_RTOL, REFERENCE_ATOL, false),
        compare("grad", &reference.grad, &exp_grad, REFERENCE_RTOL, REFERENCE_ATOL, true),
    ];
    for (name, expected) in &exp_extras {
        let Some((_, got)) = reference.extras.iter().find(|(n, _)| n == name) else {
            return Ok(Outcome::Fail(format!("the reference does not report expected.{name}")));
        };
        let (rtol, atol) = if expected.is_integer() { (0.0, 0.0) } else { (REFERENCE_RTOL, REFERENCE_ATOL) };
        checks.push(compare(name, got, &expected.data, rtol, atol, false));
    }
    if let Some(m) = checks.iter().find(|m| m.ratio > 1.0) {
        return Ok(Outcome::Fail(format!("reference {}", describe(m))));
    }
    let ref_ratio = checks.iter().map(|m| m.ratio).fold(0.0, f64::max);

    let Some(runner) = runner else { return Ok(Outcome::Pass { reference: ref_ratio, gpu: None }) };
    let gpu = runner.compute(&config, inputs)?;
    Ok(gpu_outcome(case, &gpu, &exp_extras, ref_ratio, "gpu"))
}

/// The GPU's result against the case's `expected`, within the case's tolerance.
fn gpu_outcome(case: &GoldenCase, gpu: &LossResult, exp_extras: &[(String, JsonTensor)], ref_ratio: f64, what: &str) -> Outcome {
    let (exp_loss, exp_grad) = match (case.expected_loss(), case.expected_grad()) {
        (Ok(l), Ok(g)) => (l, g),
        (Err(e), _) | (_, Err(e)) => return Outcome::Fail(e.to_string()),
    };
    let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let tol = case.tolerance;
    let mut checks = vec![
        compare("loss", &widen(&gpu.value), &exp_loss, tol.rtol, tol.atol, false),
        compare("grad", &widen(&gpu.grad), &exp_grad, tol.rtol, tol.atol, true),
    ];
    for (name, expected) in exp_extras {
        let Some((_, got)) = gpu.extras.iter().find(|(n, _)| n == name) else {
            return Outcome::Fail(format!("the GPU plan does not report expected.{name}"));
        };
        let (rtol, atol) = if expected.is_integer() { (0.0, 0.0) } else { (tol.rtol, tol.atol) };
        checks.push(compare(name, &got.to_f64(), &expected.data, rtol, atol, false));
    }
    if let Some(m) = checks.iter().find(|m| m.ratio > 1.0) {
        return Outcome::Fail(format!("{what} {}", describe(m)));
    }
    Outcome::Pass { reference: ref_ratio, gpu: Some(checks.iter().map(|m| m.ratio).fold(0.0, f64::max)) }
}

/// Runs one case through the data-parallel path ([`Runner::compute_sharded`]):
/// its batch (the boxes for `box_iou`, the instances for `mask_giou`) split
/// into min(`shards`, N) contiguous slices whose statistics are added, each
/// slice finished with the sums, the gradients concatenated, and all of it
/// held to the case's `expected` and tolerance. A configuration that cannot
/// split (the Lovász losses with `per_image: false`) is skipped with the reason.
pub fn check_case_sharded(case: &GoldenCase, runner: &Runner, shards: usize) -> Result<Outcome> {
    if !LossConfig::implemented(&case.loss) {
        return Ok(Outcome::Skip(format!("{} is not implemented yet", case.loss)));
    }
    let (config, CaseInputs { logits, target, weight, distance }) = case_inputs(case)?;
    if let Some(why) = config.unsplittable() {
        return Ok(Outcome::Skip(format!("{} does not split: {why}", case.loss)));
    }
    let inputs = HostInputs { logits: &logits, target: &target, weight: weight.as_ref(), distance: distance.as_ref() };
    let exp_extras: Vec<_> = case.expected_extras()?.into_iter().filter(|(name, _)| !case.inputs.contains_key(name)).collect();
    let gpu = runner.compute_sharded(&config, inputs, shards)?;
    let slices = shards.clamp(1, logits.shape[0].max(1));
    Ok(gpu_outcome(case, &gpu, &exp_extras, 0.0, &format!("gpu ({slices} shards)")))
}

/// The case's configuration and inputs (logits, target, weight, distance),
/// looked up by [`LossConfig::input_names`]; an input the loss does not
/// take is an error, not left unread.
fn case_inputs(case: &GoldenCase) -> Result<(LossConfig, CaseInputs)> {
    let config = LossConfig::from_parts(&case.loss, case.params.clone())?;
    let [logits_name, target_name] = config.input_names();
    let mut known = vec![logits_name, target_name, "weight"];
    if config.takes_distance() {
        known.push("distance");
    }
    if let Some(unknown) = case.inputs.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(case.error(format!("unknown input {unknown:?}: {} takes {known:?}", case.loss)));
    }
    let (logits, target) = match (case.input(logits_name)?, case.input(target_name)?) {
        (Some(l), Some(t)) => (l, t),
        _ => return Err(case.error(format!("needs inputs {logits_name} and {target_name}"))),
    };
    Ok((config, CaseInputs { logits, target, weight: case.input("weight")?, distance: case.input("distance")? }))
}

/// A case's input tensors.
struct CaseInputs {
    logits: HostTensor,
    target: HostTensor,
    weight: Option<HostTensor>,
    distance: Option<HostTensor>,
}

/// How far a gradient written in `dtype` may be from its f32 value, as a
/// share of the largest gradient: one unit in the last place of the type
/// (f16 keeps 11 significant bits, bf16 8; the GPU rounds to nearest even,
/// an error of half a unit, so this leaves a factor 2), and for f16 its
/// subnormal spacing (2^-24) as an absolute term.
pub fn rounding_tolerance(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F16 => (2f64.powi(-10), 2f64.powi(-24)),
        DType::BF16 => (2f64.powi(-7), 0.0),
        _ => (0.0, 0.0),
    }
}

/// Runs one case with its floating inputs (logits, dense targets, weights;
/// not distance maps) rounded to `dtype` (f16 or bf16) and the gradient
/// written in it, on the GPU, against the float64 reference on the rounded
/// inputs: the value within the case's tolerance, the gradient within it
/// plus [`rounding_tolerance`]. The case's own `expected` is for the
/// unrounded inputs and is not used.
pub fn check_case_in_dtype(case: &GoldenCase, runner: &Runner, dtype: DType) -> Result<Outcome> {
    if !LossConfig::implemented(&case.loss) {
        return Ok(Outcome::Skip(format!("{} is not implemented yet", case.loss)));
    }
    if !matches!(dtype, DType::F16 | DType::BF16) {
        return Err(Error::input("golden", format!("golden cases are checked in f16 or bf16, not {}", dtype.name())));
    }
    let (config, CaseInputs { logits, target, weight, distance }) = case_inputs(case)?;
    let round = |t: HostTensor| if t.dtype().is_float() { t.to_dtype(dtype) } else { Ok(t) };
    let (logits, target, weight) = (round(logits)?, round(target)?, weight.map(round).transpose()?);
    let inputs = HostInputs { logits: &logits, target: &target, weight: weight.as_ref(), distance: distance.as_ref() };
    let wide = inputs.widened();
    let reference = config.reference(&wide.inputs())?;
    let gpu = runner.compute(&config, inputs)?;
    let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let tol = case.tolerance;
    let (rounding, subnormal) = rounding_tolerance(dtype);
    let checks = [
        compare("loss", &widen(&gpu.value), &reference.value, tol.rtol, tol.atol, false),
        compare("grad", &widen(&gpu.grad), &reference.grad, tol.rtol + rounding, tol.atol + subnormal, true),
    ];
    if let Some(m) = checks.iter().find(|m| m.ratio > 1.0) {
        return Ok(Outcome::Fail(format!("gpu ({}) {}", dtype.name(), describe(m))));
    }
    Ok(Outcome::Pass { reference: 0.0, gpu: Some(checks.iter().map(|m| m.ratio).fold(0.0, f64::max)) })
}

fn describe(m: &Mismatch) -> String {
    format!("{}: got {:.9e}, expected {:.9e} (error {:.3e}, {:.2}× the tolerance)", m.at, m.got, m.expected, m.error, m.ratio)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bce case with valid inputs, its `expected` written by the caller.
    fn case_text(expected: &str) -> String {
        let t = r#"{"shape": [1, 1, 1, 2], "dtype": "f32", "data": [1.0, 0.0]}"#;
        format!(
            r#"{{"id": "bce-x", "loss": "bce", "params": {{}}, "inputs": {{"logits": {t}, "target": {t}}},
               "expected": {expected}, "tolerance": {{"rtol": 1e-4, "atol": 1e-6}}}}"#
        )
    }

    #[test]
    fn a_malformed_case_names_its_file() {
        let dir = std::env::temp_dir().join(format!("segloss-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            ("syntax.json", "{\"id\": \"bce-x\", ".to_string(), ""),
            ("grad-data.json", case_text(r#"{"loss": 0.5, "grad": {"shape": [2], "dtype": "f64", "data": "zero"}}"#), "expected.grad"),
            ("loss-shape.json", case_text(r#"{"loss": {"shape": "2", "dtype": "f64", "data": [0, 0]}, "grad": 0}"#), "expected.loss"),
            ("extra.json", case_text(r#"{"loss": 0.5, "grad": {"shape": [2], "dtype": "f64", "data": [0, 0]}, "distance": [1]}"#), "expected.distance"),
            ("no-grad.json", case_text(r#"{"loss": 0.5}"#), "expected.grad is missing"),
        ];
        for (name, text, needle) in &cases {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            let err = GoldenCase::load(&path).and_then(|case| check_case(&case, None)).expect_err(name);
            let shown = err.to_string();
            assert!(matches!(&err, Error::Golden { file, .. } if file.ends_with(name)), "{name}: {shown}");
            assert!(shown.contains(name) && shown.contains(needle), "{name}: {shown} lacks the file or {needle:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
