//! The training run's parts: the problems' data, the network, the runs'
//! losses, the scores and the report. `segloss-train` trains with them;
//! `step-bench` times a training step with segloss's losses against the
//! same losses written with burn's tensor ops.

pub mod burn_ops;
pub mod data;
pub mod metrics;
pub mod net;
pub mod report;
pub mod runs;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::Batch;

/// Every image of `batch` as burn tensors: images `[N, 3, H, W]`, the dense
/// {0, 1} foreground `[N, 1, H, W]` and the class indices `[N, H, W]`.
pub fn tensors(batch: &Batch, size: usize, device: &Device) -> (Tensor<4>, Tensor<4>, Tensor<3, Int>) {
    let n = batch.count;
    let images = Tensor::<4>::from_data(TensorData::new(batch.images.clone(), [n, 3, size, size]), device);
    let fg: Vec<f32> = batch.labels.iter().map(|&l| (l == 1) as i32 as f32).collect();
    let dense = Tensor::<4>::from_data(TensorData::new(fg, [n, 1, size, size]), device);
    let classes = Tensor::<3, Int>::from_data(TensorData::new(batch.labels.clone(), [n, size, size]), device);
    (images, dense, classes)
}
