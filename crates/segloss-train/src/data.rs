//! The two problems of the seed article, made on the fly and reproducible
//! from a seed: small rare objects against a sky, and a scene of thin
//! structures. Images are RGB in [0, 1], `[3, H, W]`; labels are class indices.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which problem a run trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Seagulls against the sky: about 1% of the pixels are foreground (class 1).
    Seagulls,
    /// Sky (0), ground (1), poles (2) and wires (3): the last two a pixel or two wide.
    Wires,
}

impl Problem {
    /// How many classes its labels have.
    pub fn classes(self) -> usize {
        match self {
            Problem::Seagulls => 2,
            Problem::Wires => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Problem::Seagulls => "seagulls",
            Problem::Wires => "wires",
        }
    }

    /// The classes its scores are about (all but the background).
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            Problem::Seagulls => &["sky", "gull"],
            Problem::Wires => &["sky", "ground", "pole", "wire"],
        }
    }
}

/// One image and its labels.
pub struct Sample {
    /// `[3, H, W]`, channel-major.
    pub image: Vec<f32>,
    /// `[H, W]`.
    pub labels: Vec<i32>,
}

/// A batch: images `[N, 3, H, W]` and labels `[N, H, W]`, flat.
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<i32>,
    pub count: usize,
}

impl Batch {
    pub fn new(samples: Vec<Sample>) -> Self {
        let count = samples.len();
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for s in samples {
            images.extend(s.image);
            labels.extend(s.labels);
        }
        Batch { images, labels, count }
    }
}

/// Makes samples of one problem at one size.
pub struct Generator {
    problem: Problem,
    size: usize,
    rng: StdRng,
}

impl Generator {
    pub fn new(problem: Problem, size: usize, seed: u64) -> Self {
        Generator { problem, size, rng: StdRng::seed_from_u64(seed) }
    }

    pub fn batch(&mut self, count: usize) -> Batch {
        Batch::new((0..count).map(|_| self.sample()).collect())
    }

    pub fn sample(&mut self) -> Sample {
        match self.problem {
            Problem::Seagulls => self.seagulls(),
            Problem::Wires => self.wires(),
        }
    }

    /// A sky with a gradient and bright clouds (the distractors), and one to
    /// three gulls: a small dark body with two thin wings.
    fn seagulls(&mut self) -> Sample {
        let s = self.size;
        let rng = &mut self.rng;
        let mut image = vec![0f32; 3 * s * s];
        let mut labels = vec![0i32; s * s];
        let tint: f32 = rng.random_range(-0.08..0.08);
        let clouds: Vec<(f32, f32, f32, f32)> = (0..rng.random_range(2..5))
            .map(|_| (rng.random_range(0.0..s as f32), rng.random_range(0.0..s as f32), rng.random_range(3.0..s as f32 / 4.0), rng.random_range(0.3..0.6)))
            .collect();
        for y in 0..s {
            for x in 0..s {
                let v = y as f32 / s as f32;
                let mut rgb = [0.35 + 0.3 * v + tint, 0.55 + 0.25 * v + tint, 0.85 + 0.1 * v];
                for &(cx, cy, r, a) in &clouds {
                    let d2 = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2) * 2.0) / (r * r);
                    let w = a * (-d2).exp();
                    for c in &mut rgb {
                        *c += w * (1.0 - *c);
                    }
                }
                put(&mut image, s, x, y, rgb);
            }
        }
        for _ in 0..rng.random_range(1..=3) {
            let (cx, cy) = (rng.random_range(4.0..s as f32 - 4.0), rng.random_range(4.0..s as f32 - 4.0));
            let span = rng.random_range(3.0..5.5f32);
            let shade = rng.random_range(0.15..0.4f32);
            // Body: a small ellipse.
            for y in 0..s {
                for x in 0..s {
                    let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                    let body = (dx / (span * 0.45)).powi(2) + (dy / 1.2).powi(2) <= 1.0;
                    // Wings: two thin arcs rising from the body, a "V".
                    let wing = dx.abs() <= span && (dy + 0.5 * dx.abs() - 0.06 * dx * dx).abs() <= 0.6;
                    if body || wing {
                        labels[y * s + x] = 1;
                        put(&mut image, s, x, y, [shade, shade, shade + 0.05]);
                    }
                }
            }
        }
        noise(&mut image, rng, 0.04);
        Sample { image, labels }
    }

    /// Ground below a wavy horizon, a few poles standing on it, and wires
    /// sagging between neighbouring poles.
    fn wires(&mut self) -> Sample {
        let s = self.size;
        let rng = &mut self.rng;
        let mut image = vec![0f32; 3 * s * s];
        let mut labels = vec![0i32; s * s];
        let horizon = rng.random_range(0.55..0.8) * s as f32;
        let (amp, freq, phase) = (rng.random_range(1.0..4.0f32), rng.random_range(0.05..0.2f32), rng.random_range(0.0..6.3f32));
        let ground_at = |x: usize| horizon + amp * (freq * x as f32 + phase).sin();
        for y in 0..s {
            for x in 0..s {
                let v = y as f32 / s as f32;
                if y as f32 >= ground_at(x) {
                    labels[y * s + x] = 1;
                    let t = 0.05 * ((x * 7 + y * 13) % 5) as f32;
                    put(&mut image, s, x, y, [0.3 + t, 0.45 + t, 0.2]);
                } else {
                    put(&mut image, s, x, y, [0.5 + 0.3 * v, 0.65 + 0.2 * v, 0.9]);
                }
            }
        }
        let poles = rng.random_range(2..=4);
        let mut tops = Vec::new();
        for i in 0..poles {
            let x = ((i as f32 + rng.random_range(0.2..0.8)) * s as f32 / poles as f32) as usize;
            let top = rng.random_range(0.1..0.35) * s as f32;
            let width = rng.random_range(1..=2);
            for dx in 0..width {
                let px = (x + dx).min(s - 1);
                for y in top as usize..(ground_at(px) as usize).min(s) {
                    labels[y * s + px] = 2;
                    put(&mut image, s, px, y, [0.3, 0.2, 0.1]);
                }
            }
            tops.push((x as f32, top));
        }
        for pair in tops.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            let sag = rng.random_range(1.0..5.0f32);
            for x in x0 as usize + 1..x1 as usize {
                let t = (x as f32 - x0) / (x1 - x0);
                let y = y0 + (y1 - y0) * t + sag * 4.0 * t * (1.0 - t);
                let y = y.round() as usize;
                if y < s && labels[y * s + x] == 0 {
                    labels[y * s + x] = 3;
                    put(&mut image, s, x, y, [0.1, 0.1, 0.12]);
                }
            }
        }
        noise(&mut image, rng, 0.05);
        Sample { image, labels }
    }
}

fn put(image: &mut [f32], s: usize, x: usize, y: usize, rgb: [f32; 3]) {
    for (c, v) in rgb.into_iter().enumerate() {
        image[(c * s + y) * s + x] = v.clamp(0.0, 1.0);
    }
}

fn noise(image: &mut [f32], rng: &mut StdRng, amount: f32) {
    for v in image.iter_mut() {
        *v = (*v + rng.random_range(-amount..amount)).clamp(0.0, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seagulls_are_rare_and_wires_thin() {
        let fg = |problem, class| {
            let b = Generator::new(problem, 64, 7).batch(32);
            b.labels.iter().filter(|&&l| l == class).count() as f64 / b.labels.len() as f64
        };
        let gulls = fg(Problem::Seagulls, 1);
        assert!((0.003..0.03).contains(&gulls), "gull fraction {gulls}");
        let wires = fg(Problem::Wires, 3);
        assert!((0.001..0.03).contains(&wires), "wire fraction {wires}");
        assert!(fg(Problem::Wires, 2) > 0.0);
    }
}
