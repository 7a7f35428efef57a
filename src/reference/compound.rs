//! The float64 reference of a compound loss: the weighted sum of its terms' references.

use crate::error::Result;
use crate::losses::HostInputs;
use crate::losses::compound::CompoundConfig;
use crate::reference::Reference;

impl CompoundConfig {
    /// The float64 reference: `Σ_i w_i·` each term's value and gradient.
    pub fn reference(&self, inputs: &HostInputs<'_>) -> Result<Reference> {
        self.check_shapes(&inputs.shapes())?;
        let mut total: Option<Reference> = None;
        for t in &self.terms {
            let r = t.loss.reference(&self.term_inputs(t, inputs)?)?;
            match &mut total {
                None => {
                    total = Some(Reference {
                        value: r.value.iter().map(|v| t.weight * v).collect(),
                        value_shape: r.value_shape,
                        grad: r.grad.iter().map(|g| t.weight * g).collect(),
                        extras: r.extras,
                    })
                }
                Some(acc) => {
                    acc.value.iter_mut().zip(&r.value).for_each(|(a, v)| *a += t.weight * v);
                    acc.grad.iter_mut().zip(&r.grad).for_each(|(a, g)| *a += t.weight * g);
                    acc.extras.extend(r.extras);
                }
            }
        }
        Ok(total.expect("at least one term"))
    }
}
