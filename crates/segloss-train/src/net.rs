//! The network every run trains: five convolutions at full resolution with
//! growing dilation (a receptive field of 31 pixels), small enough to train
//! on a software Vulkan device in minutes.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

#[derive(Module, Debug)]
pub struct Net {
    layers: Vec<Conv2d>,
}

impl Net {
    /// `[N, 3, H, W]` images to `[N, outputs, H, W]` logits.
    pub fn new(width: usize, outputs: usize, device: &Device) -> Self {
        let conv = |from: usize, to: usize, kernel: usize, dilation: usize| {
            // Padding of half the dilated kernel keeps the resolution (burn's
            // `Same` sizes it for an undilated kernel).
            let pad = dilation * (kernel / 2);
            Conv2dConfig::new([from, to], [kernel, kernel])
                .with_dilation([dilation, dilation])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(device)
        };
        let layers = vec![conv(3, width, 3, 1), conv(width, width, 3, 2), conv(width, width, 3, 4), conv(width, width, 3, 8), conv(width, outputs, 1, 1)];
        Net { layers }
    }

    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(images, |x, (i, layer)| {
            let y = layer.forward(x);
            if i < last { relu(y) } else { y }
        })
    }
}
