//! The loss's node in burn's autodiff graph: its backward is segloss's
//! analytic gradient, computed in the forward pass, times the gradient that
//! reaches the (scalar) value.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::ops::FloatTensorOps;
use burn::backend::wgpu::CubeTensor;
use burn::backend::{Cube, TensorMetadata};
use burn::tensor::{DType, FloatDType, Shape};

/// A segloss loss (or compound) as one operation of burn's graph, of one
/// parent: the logits, seen flat.
#[derive(Debug)]
pub(crate) struct LossBackward;

impl Backward<Cube, 1> for LossBackward {
    /// ∂loss/∂logits, flat, from the forward pass.
    type State = CubeTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [parent] = ops.parents;
        // The gradient reaching the value ([1]): 1 for `loss.backward()`, a
        // factor when the loss is scaled or summed with others.
        let upstream = grads.consume::<Cube>(&ops.node);
        if let Some(parent) = parent {
            let grad = ops.state;
            let rank = grad.shape().num_dims();
            let upstream = Cube::float_reshape(upstream, Shape::from(vec![1usize; rank]));
            // The value is f32; an f16 or bf16 gradient is multiplied in its own type.
            let upstream = match grad.dtype {
                DType::F16 => Cube::float_cast(upstream, FloatDType::F16),
                DType::BF16 => Cube::float_cast(upstream, FloatDType::BF16),
                _ => upstream,
            };
            // One broadcast multiply on the GPU, as burn's own `sum` backward does.
            grads.register::<Cube>(parent.id, Cube::float_mul(grad, upstream));
        }
    }
}
