//! What the runs showed: prediction panels, the IoU chart and the table.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::data::{Batch, Problem};
use crate::metrics::Scores;

/// The settings of the runs, for the table's heading.
pub struct Settings {
    pub size: usize,
    pub epochs: usize,
    pub steps: usize,
    pub batch: usize,
    pub held_out: usize,
    pub width: usize,
    pub lr: f64,
}

/// What one run produced.
pub struct RunResult {
    pub name: String,
    /// Scores on the held-out images after each epoch.
    pub epochs: Vec<Scores>,
    /// Predicted classes of the first held-out images, `[H, W]` each.
    pub predictions: Vec<Vec<i32>>,
    pub ms_per_step: f64,
}

/// What one problem's runs produced.
pub struct ProblemResult {
    pub problem: Problem,
    pub held_out: Batch,
    pub runs: Vec<RunResult>,
}

/// Held-out images shown in the panels.
pub const PANEL_ROWS: usize = 3;
/// Each image pixel is drawn as this many screen pixels a side.
const ZOOM: usize = 3;

type Failure = Box<dyn std::error::Error>;

/// Writes `panels-<problem>.png`, `iou.png` and `results.md` into `out`.
pub fn write(out: &Path, results: &[ProblemResult], args: &Settings) -> Result<(), Failure> {
    load_font()?;
    for r in results {
        panels(&out.join(format!("panels-{}.png", r.problem.name())), r, args.size)?;
    }
    chart(&out.join("iou.png"), results, args.epochs)?;
    std::fs::write(out.join("results.md"), table(results, args))?;
    Ok(())
}

/// plotters draws text with a font it is given: DejaVu Sans, where the
/// system has it (`apt-get install fonts-dejavu-core`; `scripts/train.sh` does).
fn load_font() -> Result<(), Failure> {
    const PLACES: [&str; 3] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ];
    let bytes = PLACES
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no DejaVuSans.ttf for the chart's text: install fonts-dejavu-core (Debian, Ubuntu) or dejavu-sans-fonts (Fedora)")?;
    register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice())).map_err(|_| "DejaVuSans.ttf is not a font plotters can read")?;
    Ok(())
}

/// A class's colour in the label and prediction images.
fn class_colour(problem: Problem, class: i32) -> RGBColor {
    match (problem, class) {
        (_, 0) => RGBColor(20, 24, 40),
        (Problem::Seagulls, _) => RGBColor(255, 255, 255),
        (Problem::Wires, 1) => RGBColor(70, 150, 60),
        (Problem::Wires, 2) => RGBColor(240, 150, 30),
        (Problem::Wires, _) => RGBColor(255, 240, 60),
    }
}

/// Rows of held-out images; columns: the input, the target, each run's prediction.
fn panels(path: &Path, r: &ProblemResult, size: usize) -> Result<(), Failure> {
    let cell = size * ZOOM;
    let (gap, header) = (6, 28);
    let columns = 2 + r.runs.len();
    let rows = PANEL_ROWS.min(r.held_out.count);
    let (w, h) = (columns * (cell + gap) + gap, header + rows * (cell + gap) + gap);
    let root = BitMapBackend::new(path, (w as u32, h as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let titles: Vec<String> = ["input".to_string(), "target".to_string()].into_iter().chain(r.runs.iter().map(|run| run.name.clone())).collect();
    let font = ("sans-serif", 13).into_font();
    for (col, title) in titles.iter().enumerate() {
        let x = gap + col * (cell + gap);
        root.draw_text(title, &font.color(&BLACK), (x as i32, 8))?;
    }
    let pixels = size * size;
    for row in 0..rows {
        let y0 = header + row * (cell + gap);
        let image = &r.held_out.images[row * 3 * pixels..(row + 1) * 3 * pixels];
        let labels = &r.held_out.labels[row * pixels..(row + 1) * pixels];
        for col in 0..columns {
            let x0 = gap + col * (cell + gap);
            for p in 0..pixels {
                let colour = match col {
                    0 => {
                        let c = |k: usize| (image[k * pixels + p] * 255.0) as u8;
                        RGBColor(c(0), c(1), c(2))
                    }
                    1 => class_colour(r.problem, labels[p]),
                    _ => class_colour(r.problem, r.runs[col - 2].predictions[row][p]),
                };
                let (px, py) = (x0 + (p % size) * ZOOM, y0 + (p / size) * ZOOM);
                root.draw(&Rectangle::new([(px as i32, py as i32), ((px + ZOOM) as i32, (py + ZOOM) as i32)], colour.filled()))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

/// Foreground IoU on the held-out images against epoch, one line per run, one chart per problem.
fn chart(path: &Path, results: &[ProblemResult], epochs: usize) -> Result<(), Failure> {
    let root = BitMapBackend::new(path, (620 * results.len().max(1) as u32, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, results.len().max(1)));
    for (area, r) in areas.iter().zip(results) {
        let top = r.runs.iter().flat_map(|run| run.epochs.iter().map(|s| s.foreground_iou())).fold(0.0f64, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{}: foreground IoU, held-out images", r.problem.name()), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(1f64..epochs.max(2) as f64, 0f64..(top * 1.1).clamp(0.05, 1.0))?;
        chart.configure_mesh().x_desc("epoch").y_desc("IoU").label_style(("sans-serif", 13)).draw()?;
        for (i, run) in r.runs.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = run.epochs.iter().enumerate().map(|(e, s)| ((e + 1) as f64, s.foreground_iou())).collect();
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(run.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).label_font(("sans-serif", 12)).position(SeriesLabelPosition::LowerRight).draw()?;
    }
    root.present()?;
    Ok(())
}

/// The final scores of every run, as markdown.
fn table(results: &[ProblemResult], args: &Settings) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Held-out scores after {} epochs of {} steps ({} images of {} × {} px a step, Adam at {}, {} hidden channels); \
         IoU and Dice over all {} held-out images' pixels.\n",
        args.epochs, args.steps, args.batch, args.size, args.size, args.lr, args.width, args.held_out
    );
    for r in results {
        let names = r.problem.class_names();
        let _ = writeln!(md, "### {}\n", r.problem.name());
        let per_class: String = names[1..].iter().map(|n| format!(" IoU {n} |")).collect();
        let _ = writeln!(md, "| run | foreground IoU | foreground Dice |{per_class} ms / step |");
        let _ = writeln!(md, "|---|---:|---:|{}---:|", "---:|".repeat(names.len() - 1));
        for run in &r.runs {
            let last = run.epochs.last().expect("at least one epoch");
            let classes: String = last.iou[1..].iter().map(|v| format!(" {v:.3} |")).collect();
            let _ = writeln!(md, "| {} | {:.3} | {:.3} |{classes} {:.0} |", run.name, last.foreground_iou(), last.foreground_dice(), run.ms_per_step);
        }
        let _ = writeln!(md);
    }
    md
}
