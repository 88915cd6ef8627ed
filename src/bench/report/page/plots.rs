//! The report page's plots, drawn with `plotters` into SVG text: one
//! function a plot, each with its title, its axes labelled with their
//! units, and a sentence that says what it shows for those who cannot see
//! it (the SVG's `<title>` and `<desc>`, `page.rs`).
//!
//! Time runs along the x axis in seconds since the run began (the first
//! interval's start); the measured window is shaded, so that warm-up and
//! opening seconds are not read as measured ones.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::bench::measure::series::Point;

/// A plot's pixels: wide enough for a laptop, scaled down on a phone.
const SIZE: (u32, u32) = (760, 340);
/// The colours, from a palette that stays apart for the colour-blind.
const BLUE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const ORANGE: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
const GREEN: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
const RED: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const PURPLE: RGBColor = RGBColor(0x94, 0x67, 0xbd);
/// The measured window's shade.
const WINDOW: RGBColor = RGBColor(0xe8, 0xf0, 0xfa);

/// One drawn plot: its title, the sentence that describes it, its SVG.
#[derive(Debug)]
pub(crate) struct Plot {
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) svg: String,
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// One line of a plot: its name, colour and points.
struct Line<'a> {
    name: &'a str,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
}

/// The shortest interval whose rate is drawn: a sliver at a change of
/// period (the last wake-up of a window, the opening of a UDP run) holds a
/// few replies over a few milliseconds, and its rate would be noise.
const SHORTEST: f64 = 0.1;

/// Seconds since the run began, at the middle of each point (a sliver
/// is not drawn: NaN, which the plots leave out).
fn times(series: &[Point]) -> Vec<f64> {
    let base = series.first().map_or(0, |p| p.start_ms);
    series
        .iter()
        .map(|p| {
            if p.length_s < SHORTEST {
                return f64::NAN;
            }
            (p.start_ms.saturating_sub(base)) as f64 / 1e3 + p.length_s / 2.0
        })
        .collect()
}

/// A linear axis's number, as a person writes it: `120,000`, `0.5`.
fn plain_number(v: f64) -> String {
    if v.abs() < 10.0 && v.fract() != 0.0 {
        return format!("{v:.1}");
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

/// A log axis's number: only 1, 2 and 5 of each decade are labelled (the
/// others keep their grid line), so the labels do not run together.
fn log_number(v: f64) -> String {
    let decade = 10f64.powf(v.log10().floor());
    let mantissa = (v / decade).round();
    if (v / decade - mantissa).abs() < 0.01 && [1.0, 2.0, 5.0].contains(&mantissa) {
        plain_number(v)
    } else {
        String::new()
    }
}

/// The measured window, as (from, to) seconds since the run began.
fn window(series: &[Point]) -> Option<(f64, f64)> {
    let base = series.first()?.start_ms;
    let counted: Vec<&Point> = series.iter().filter(|p| p.stage.counts()).collect();
    let first = counted.first()?;
    let last = counted.last()?;
    let at = |p: &Point| p.start_ms.saturating_sub(base) as f64 / 1e3;
    Some((at(first), at(last) + last.length_s))
}

/// Draws `lines` against time, on a linear or a log y axis, shading the
/// measured window; `None` if there is nothing to draw.
fn time_plot(
    title: &str,
    y_desc: &str,
    series: &[Point],
    lines: &[Line<'_>],
    log_y: bool,
) -> Option<String> {
    let finite = || {
        lines
            .iter()
            .flat_map(|l| l.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
    };
    finite().next()?;
    let x_max = finite().map(|p| p.0).fold(1.0, f64::max).max(
        series.last().zip(series.first()).map_or(1.0, |(l, f)| {
            (l.start_ms - f.start_ms) as f64 / 1e3 + l.length_s
        }),
    );
    let y_max = finite().map(|p| p.1).fold(0.0, f64::max);
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        if log_y {
            let y_min = finite().map(|p| p.1).fold(f64::INFINITY, f64::min).max(1.0);
            let y = (y_min / 1.5)..(y_max * 1.5).max(y_min * 2.0);
            let axis = Axis {
                y_desc,
                format: &log_number,
            };
            draw_lines(&root, title, axis, (x_max, y.log_scale()), series, lines)
        } else {
            let y = 0.0..(y_max * 1.15).max(1.0);
            let axis = Axis {
                y_desc,
                format: &plain_number,
            };
            draw_lines(&root, title, axis, (x_max, y), series, lines)
        }
    };
    drawn.ok().map(|()| svg)
}

/// A y axis: its label, and how its numbers are written.
struct Axis<'a> {
    y_desc: &'a str,
    format: &'a dyn Fn(f64) -> String,
}

fn draw_lines<Y>(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    axis: Axis<'_>,
    (x_max, y_range): (f64, Y),
    series: &[Point],
    lines: &[Line<'_>],
) -> Drawn
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(78)
        .build_cartesian_2d(0f64..x_max, y_range)?;
    if let Some((from, to)) = window(series) {
        let (y0, y1) = (chart.y_range().start, chart.y_range().end);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, y0), (to, y1)],
            WINDOW.filled(),
        )))?;
    }
    chart
        .configure_mesh()
        .x_desc("seconds since the run began")
        .y_desc(axis.y_desc)
        .y_label_formatter(&|y| (axis.format)(*y))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for line in lines {
        let colour = line.colour;
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied().filter(|(x, _)| x.is_finite()),
                colour.stroke_width(2),
            ))?
            .label(line.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// A range of numbers in words: "from 1 to 9, median 5".
fn spread(values: &[f64], unit: &str) -> String {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return "none".into();
    }
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    format!(
        "from {:.0} to {:.0} {unit}, median {median:.0}",
        sorted[0],
        sorted[sorted.len() - 1]
    )
}

/// The window in words.
fn window_words(series: &[Point]) -> String {
    window(series).map_or_else(
        || "no measured window".to_owned(),
        |(from, to)| format!("the measured window (shaded) from {from:.1} s to {to:.1} s"),
    )
}

/// Messages per second, each interval.
pub(crate) fn throughput(series: &[Point], noun: &str) -> Option<Plot> {
    let t = times(series);
    let rates: Vec<f64> = series.iter().map(Point::messages_per_sec).collect();
    let points = t.iter().copied().zip(rates.iter().copied()).collect();
    let title = format!("Throughput over time ({noun} per second)");
    let svg = time_plot(
        &title,
        &format!("{noun} per second"),
        series,
        &[Line {
            name: &format!("{noun}/s"),
            colour: BLUE,
            points,
        }],
        false,
    )?;
    let counted: Vec<f64> = series
        .iter()
        .filter(|p| p.stage.counts() && p.length_s >= 0.5)
        .map(Point::messages_per_sec)
        .collect();
    Some(Plot {
        description: format!(
            "{}{} answered per second, each second of the run: in the measured seconds {}; {}.",
            noun[..1].to_uppercase(),
            &noun[1..],
            spread(&counted, &format!("{noun}/s")),
            window_words(series)
        ),
        title,
        svg,
    })
}

/// The latency percentiles of each interval, on a log scale.
pub(crate) fn latency_over_time(series: &[Point]) -> Option<Plot> {
    let t = times(series);
    let pick = |f: fn(&crate::bench::report::Latency) -> u64| -> Vec<(f64, f64)> {
        t.iter()
            .zip(series)
            .filter_map(|(x, p)| p.latency_us.as_ref().map(|l| (*x, f(l) as f64)))
            .collect()
    };
    let lines = [
        Line {
            name: "p50",
            colour: BLUE,
            points: pick(|l| l.p50),
        },
        Line {
            name: "p99",
            colour: ORANGE,
            points: pick(|l| l.p99),
        },
        Line {
            name: "p99.9",
            colour: GREEN,
            points: pick(|l| l.p999),
        },
        Line {
            name: "max",
            colour: RED,
            points: pick(|l| l.max),
        },
    ];
    let title = "Latency percentiles over time".to_owned();
    let svg = time_plot(&title, "latency (µs, log scale)", series, &lines, true)?;
    let p99: Vec<f64> = lines[1].points.iter().map(|p| p.1).collect();
    let worst = series
        .iter()
        .zip(&t)
        .filter_map(|(p, x)| Some((p.latency_us?.max, *x)))
        .max_by_key(|(max, _)| *max);
    Some(Plot {
        description: format!(
            "Each second's p50, p99, p99.9 and largest latency in microseconds, on a log scale: \
             p99 {}{}; {}.",
            spread(&p99, "µs"),
            worst.map_or(String::new(), |(max, at)| format!(
                ", the largest {max} µs at {at:.1} s"
            )),
            window_words(series)
        ),
        title,
        svg,
    })
}

/// The whole run's latency by percentile, on HdrHistogram's scale: the
/// x axis is 1/(1-q) on a log scale, so 90%, 99%, 99.9% and 99.99% are
/// evenly spaced and the tail gets the room it needs.
pub(crate) fn percentile_distribution(latency: &hdrhistogram::Histogram<u64>) -> Option<Plot> {
    if latency.is_empty() {
        return None;
    }
    let points: Vec<(f64, f64)> = latency
        .iter_quantiles(4)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| {
            let q = v.quantile_iterated_to();
            (
                1.0 / (1.0 - q),
                latency.highest_equivalent(v.value_iterated_to()) as f64,
            )
        })
        .collect();
    let x_max = points.iter().map(|p| p.0).fold(10.0, f64::max) * 1.2;
    let y_min = points
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .max(1.0);
    let y_max = latency.max() as f64;
    let title = "Latency by percentile (the measured window)".to_owned();
    let mut svg = String::new();
    let drawn: Drawn = (|| {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(78)
            .build_cartesian_2d(
                (1f64..x_max).log_scale(),
                ((y_min / 1.5)..(y_max * 1.5).max(y_min * 2.0)).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("percentile (HdrHistogram's log scale)")
            .y_desc("latency (µs, log scale)")
            .x_label_formatter(&|x| percent_label(*x))
            .y_label_formatter(&|y| log_number(*y))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart.draw_series(LineSeries::new(points.clone(), PURPLE.stroke_width(2)))?;
        root.present()?;
        Ok(())
    })();
    drawn.ok()?;
    let at = |q: f64| latency.value_at_quantile(q);
    Some(Plot {
        description: format!(
            "The measured window's latency at each percentile, in microseconds: p50 {}, p90 {}, \
             p99 {}, p99.9 {}, p99.99 {}, largest {}.",
            at(0.5),
            at(0.9),
            at(0.99),
            at(0.999),
            at(0.9999),
            latency.max()
        ),
        title,
        svg,
    })
}

/// 1/(1-q) as the percentile it stands for: 10 is 90%, 1000 is 99.9%.
fn percent_label(x: f64) -> String {
    if x < 1.5 {
        return "0%".into();
    }
    let q = (1.0 - 1.0 / x) * 100.0;
    let text = format!("{q:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// Connections open and connects completed per second.
pub(crate) fn connections(series: &[Point]) -> Option<Plot> {
    let t = times(series);
    let open = t
        .iter()
        .zip(series)
        .map(|(x, p)| (*x, p.connections as f64))
        .collect();
    let connects = t
        .iter()
        .zip(series)
        .map(|(x, p)| (*x, p.connects_per_sec()))
        .collect();
    let failed: Vec<(f64, f64)> = t
        .iter()
        .zip(series)
        .map(|(x, p)| (*x, p.failed as f64 / p.length_s.max(1e-3)))
        .collect();
    let title = "Connections over time".to_owned();
    let svg = time_plot(
        &title,
        "connections, or per second",
        series,
        &[
            Line {
                name: "open",
                colour: BLUE,
                points: open,
            },
            Line {
                name: "connects/s",
                colour: GREEN,
                points: connects,
            },
            Line {
                name: "failed connects/s",
                colour: RED,
                points: failed,
            },
        ],
        false,
    )?;
    let most = series.iter().map(|p| p.connections).max().unwrap_or(0);
    let total_connects: u64 = series.iter().map(|p| p.connects).sum();
    let total_failed: u64 = series.iter().map(|p| p.failed).sum();
    let errors: u64 = series.iter().map(|p| p.errors).sum();
    Some(Plot {
        description: format!(
            "Connections open at the end of each second (at most {most}), connects completed per \
             second ({total_connects} in all) and failed connects per second ({total_failed} in \
             all); {errors} connections lost during the run."
        ),
        title,
        svg,
    })
}

/// The server's CPU (percent of one core) and memory (MiB), when measured.
pub(crate) fn server(series: &[Point]) -> Option<Plot> {
    let t = times(series);
    let cpu: Vec<(f64, f64)> = t
        .iter()
        .zip(series)
        .filter_map(|(x, p)| Some((*x, p.server_cpu_s? / p.length_s.max(1e-3) * 100.0)))
        .collect();
    let memory: Vec<(f64, f64)> = t
        .iter()
        .zip(series)
        .filter_map(|(x, p)| Some((*x, p.server_rss_kib? as f64 / 1024.0)))
        .collect();
    if cpu.is_empty() && memory.is_empty() {
        return None;
    }
    let title = "The server's CPU and memory over time".to_owned();
    let cpu_values: Vec<f64> = cpu.iter().map(|p| p.1).collect();
    let memory_values: Vec<f64> = memory.iter().map(|p| p.1).collect();
    let svg = time_plot(
        &title,
        "CPU (% of one core), memory (MiB)",
        series,
        &[
            Line {
                name: "CPU %",
                colour: ORANGE,
                points: cpu,
            },
            Line {
                name: "resident MiB",
                colour: PURPLE,
                points: memory,
            },
        ],
        false,
    )?;
    Some(Plot {
        description: format!(
            "The server's CPU time each second as a percentage of one core ({}) and its resident \
             memory in MiB ({}).",
            spread(&cpu_values, "%"),
            spread(&memory_values, "MiB")
        ),
        title,
        svg,
    })
}
