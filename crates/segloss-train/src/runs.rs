//! The runs: which loss trains the network in which epochs, per problem.

use burn::tensor::{Int, Tensor};
use segloss_burn::segloss::{ALPHA_START, CompoundConfig, LossConfig, alpha_step};
use segloss_burn::{BurnLoss, Result, SeglossBurn};

use crate::data::Problem;

/// How a loss reads the network's output and the labels.
#[derive(Clone, Copy)]
pub enum Reads {
    /// One logit per pixel, a dense {0, 1} target `[N, 1, H, W]`.
    SigmoidDense,
    /// One logit per pixel, class indices `[N, H, W]` (lovasz_hinge).
    SigmoidClasses,
    /// One logit z per pixel seen as the two-class softmax of `[0, z]`
    /// (whose class-1 probability is σ(z)), class indices: the form of the
    /// boundary paper's dice + boundary.
    TwoClass,
    /// C logits per pixel, class indices.
    Softmax,
}

/// A loss in use from an epoch on.
pub struct Phase {
    pub from_epoch: usize,
    pub loss: BurnLoss,
    pub reads: Reads,
    /// The compound's boundary weight follows the paper's schedule: α
    /// starts at 0.01 and grows by 0.01 each epoch.
    pub alpha_schedule: bool,
}

impl Phase {
    /// The loss's value on the network's `logits` and the labels.
    pub fn value(&self, logits: Tensor<4>, dense: &Tensor<4>, classes: &Tensor<3, Int>) -> Result<Tensor<1>> {
        match self.reads {
            Reads::SigmoidDense => self.loss.forward(logits, dense.clone()),
            Reads::SigmoidClasses => self.loss.forward(logits, classes.clone()),
            Reads::TwoClass => self.loss.forward(Tensor::cat(vec![logits.zeros_like(), logits], 1), classes.clone()),
            Reads::Softmax => self.loss.forward(logits, classes.clone()),
        }
    }

    /// Sets the weights of `epoch` (the α schedule), from the phase's first epoch.
    pub fn start_epoch(&self, epoch: usize) -> Result<()> {
        if self.alpha_schedule {
            let alpha = (self.from_epoch..epoch).fold(ALPHA_START, |a, _| alpha_step(a));
            self.loss.set_weights(&[1.0, alpha])?;
        }
        Ok(())
    }
}

/// A named sequence of phases.
pub struct Run {
    pub name: String,
    pub phases: Vec<Phase>,
}

impl Run {
    /// The phase in use in `epoch`.
    pub fn phase(&self, epoch: usize) -> &Phase {
        self.phases.iter().rev().find(|p| p.from_epoch <= epoch).expect("a phase from epoch 0")
    }
}

fn config(json: &str) -> LossConfig {
    LossConfig::from_json(json).unwrap_or_else(|e| panic!("the run's own configuration {json}: {e}"))
}

fn phase(engine: &SeglossBurn, json: &str, reads: Reads) -> Result<Phase> {
    Ok(Phase { from_epoch: 0, loss: engine.loss(config(json))?, reads, alpha_schedule: false })
}

fn dice_and_boundary(engine: &SeglossBurn, dice: &str, boundary: &str, reads: Reads) -> Result<Phase> {
    let compound = CompoundConfig::new(vec![(1.0, config(dice)), (ALPHA_START, config(boundary))])?;
    Ok(Phase { from_epoch: 0, loss: engine.compound(compound)?, reads, alpha_schedule: true })
}

fn single(name: &str, phase: Phase) -> Run {
    Run { name: name.into(), phases: vec![phase] }
}

/// The runs of `problem`. `class_frequency` is each class's share of the
/// training pixels, for the class-balancing weights; `epochs` places the
/// Lovász fine-tune in the second half.
pub fn runs(engine: &SeglossBurn, problem: Problem, class_frequency: &[f64], epochs: usize) -> Result<Vec<Run>> {
    let fine_tune = epochs / 2;
    Ok(match problem {
        Problem::Seagulls => {
            // α = the background's share of the pixels, as the seed article advises.
            let alpha = format!(r#"{{"loss": "bce", "params": {{"alpha": {:.4}}}}}"#, class_frequency[0]);
            let mut lovasz = phase(engine, r#"{"loss": "lovasz_hinge", "params": {}}"#, Reads::SigmoidClasses)?;
            lovasz.from_epoch = fine_tune;
            vec![
                single("bce", phase(engine, r#"{"loss": "bce", "params": {}}"#, Reads::SigmoidDense)?),
                single(&format!("α-bce (α = {:.3})", class_frequency[0]), phase(engine, &alpha, Reads::SigmoidDense)?),
                single("focal", phase(engine, r#"{"loss": "focal", "params": {"mode": "binary"}}"#, Reads::SigmoidDense)?),
                single("dice", phase(engine, r#"{"loss": "dice", "params": {"mode": "binary"}}"#, Reads::SigmoidDense)?),
                // The regional term is the dice run's own loss: the gull's
                // dice alone (softmax([0, z])'s class 1 is σ(z)). With the
                // background's dice in the mean too, the network learned to
                // paint everything sky and never left it in 10 epochs.
                single(
                    "dice + α·boundary",
                    dice_and_boundary(
                        engine,
                        r#"{"loss": "dice", "params": {"include_background": false}}"#,
                        r#"{"loss": "boundary", "params": {"classes": [1]}}"#,
                        Reads::TwoClass,
                    )?,
                ),
                Run { name: "bce → lovász hinge".into(), phases: vec![phase(engine, r#"{"loss": "bce", "params": {}}"#, Reads::SigmoidDense)?, lovasz] },
            ]
        }
        Problem::Wires => {
            // Inverse class frequencies, scaled to average 1.
            let inverse: Vec<f64> = class_frequency.iter().map(|f| 1.0 / f.max(1e-4)).collect();
            let mean = inverse.iter().sum::<f64>() / inverse.len() as f64;
            let weights: Vec<String> = inverse.iter().map(|w| format!("{:.4}", w / mean)).collect();
            let weighted = format!(r#"{{"loss": "cross_entropy", "params": {{"class_weights": [{}]}}}}"#, weights.join(", "));
            let ce = r#"{"loss": "cross_entropy", "params": {}}"#;
            let mut lovasz = phase(engine, r#"{"loss": "lovasz_softmax", "params": {}}"#, Reads::Softmax)?;
            lovasz.from_epoch = fine_tune;
            vec![
                single("cross-entropy", phase(engine, ce, Reads::Softmax)?),
                single("class-weighted cross-entropy", phase(engine, &weighted, Reads::Softmax)?),
                single("focal", phase(engine, r#"{"loss": "focal", "params": {"mode": "multiclass"}}"#, Reads::Softmax)?),
                single("dice", phase(engine, r#"{"loss": "dice", "params": {}}"#, Reads::Softmax)?),
                single(
                    "dice + α·boundary",
                    dice_and_boundary(engine, r#"{"loss": "dice", "params": {}}"#, r#"{"loss": "boundary", "params": {"classes": [1, 2, 3]}}"#, Reads::Softmax)?,
                ),
                Run { name: "cross-entropy → lovász softmax".into(), phases: vec![phase(engine, ce, Reads::Softmax)?, lovasz] },
            ]
        }
    })
}
