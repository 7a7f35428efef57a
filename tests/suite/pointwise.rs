//! The per-pixel losses' kernels.

use segloss::{Error, HostInputs, InputShapes};

use crate::common::{config, gpu_vs_reference, labels, logits, rng};

/// At the class limit every loop of the softmax kernel runs to its end (lavapipe
/// cuts an invocation's loops after 65,535 iterations, silently); one more class is refused.
#[test]
fn softmax_losses_at_the_class_limit_run_every_loop_to_the_end() {
    let mut rng = rng(51);
    let c = 4000;
    let x = logits(&mut rng, &[1, c, 1, 1024], 2.0);
    let t = labels(&mut rng, &[1, 1, 1024], c, None);
    let ce = config(r#"{"loss": "cross_entropy", "params": {}}"#);
    gpu_vs_reference(&ce, HostInputs { logits: &x, target: &t, weight: None }, 1e-4, 1e-6);
    let too_many = InputShapes::new(&[1, c + 1, 1, 4], &[1, 1, 4]);
    assert!(matches!(ce.check_shapes(&too_many), Err(Error::Limit(_))));
}
