//! The benches' SVG plots, drawn with plotters: one line per server
//! against the connection count (log scale; the comparison and the
//! course's ladder), and bars for idle memory (the comparison).

use std::path::Path;

use plotters::prelude::*;

const COLOURS: [RGBColor; 8] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// Pixels for each bar of [`bars`], its label included.
const BAR_WIDTH: u32 = 150;

/// One line per server: `points[k]` are (connections, value) for `names[k]`.
pub fn lines(path: &Path, title: &str, y_desc: &str, names: &[&str], points: &[Vec<(f64, f64)>]) {
    if let Err(e) = draw_lines(path, title, y_desc, names, points) {
        eprintln!("cannot draw {}: {e}", path.display());
    }
}

fn draw_lines(
    path: &Path,
    title: &str,
    y_desc: &str,
    names: &[&str],
    points: &[Vec<(f64, f64)>],
) -> Result<(), Box<dyn std::error::Error>> {
    let finite = || {
        points
            .iter()
            .flatten()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let x_max = finite().map(|p| p.0).fold(1.0, f64::max) * 1.5;
    let y_max = finite().map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.7f64..x_max).log_scale(), 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("connections")
        .y_desc(y_desc)
        .draw()?;
    for (k, (name, series)) in names.iter().zip(points).enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let data: Vec<(f64, f64)> = series
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(data.clone(), colour.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(data.into_iter().map(|p| Circle::new(p, 3, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// One bar per server.
pub fn bars(path: &Path, title: &str, names: &[&str], values: &[f64]) {
    if let Err(e) = draw_bars(path, title, names, values) {
        eprintln!("cannot draw {}: {e}", path.display());
    }
}

fn draw_bars(
    path: &Path,
    title: &str,
    names: &[&str],
    values: &[f64],
) -> Result<(), Box<dyn std::error::Error>> {
    let y_max = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.2;
    // Room for each bar's label ("name: value") beside its neighbours'.
    let width = (BAR_WIDTH * names.len() as u32).max(760);
    let root = SVGBackend::new(path, (width, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = names.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n, 0f64..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("bytes per connection")
        .draw()?;
    for (k, (name, value)) in names.iter().zip(values).enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let x = k as f64;
        let value = if value.is_finite() { *value } else { 0.0 };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x + 0.15, 0.0), (x + 0.85, value)],
            colour.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{name}: {value:.0}"),
            (x + 0.15, value + y_max * 0.03),
            ("sans-serif", 13),
        )))?;
    }
    root.present()?;
    Ok(())
}
