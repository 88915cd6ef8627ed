//! `--report FILE.html`: the report as one self-contained page, for a
//! person who would rather look at a run than read it.
//!
//! Self-contained means it opens from a laptop on a plane: no script at
//! all, no font, image or style sheet fetched from anywhere (the plots are
//! inline SVG, the style is inline, the fonts are the reader's own), and a
//! `Content-Security-Policy` that forbids any load the page might
//! otherwise attempt. It reads on a narrow screen (the plots scale to the
//! width down to where their labels would be too small to read, and then
//! scroll sideways, as the tables do), and every plot has a title, axes labelled
//! with their units, and a sentence saying what it shows (the SVG's
//! `<title>` and `<desc>`, for screen readers), with the numbers
//! themselves in a table below.
//!
//! The page, top to bottom: the verdict (passed, failed and why, or
//! interrupted), the run's facts (command, version, host, start, kernel,
//! CPUs, limits, source addresses), the summary (the text report), the
//! plots (`page/plots.rs`), the hostile peers apart from the honest
//! clients under `--chaos`, and the per-second figures.

mod plots;

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::{Report, Workload};
use plots::Plot;

/// The page's style: the reader's own fonts, a readable measure, plots
/// that shrink with the screen.
const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:62rem;padding:0 1rem 3rem;\
line-height:1.45;color:#1a1a1a;background:#fff}\
h1{font-size:1.6rem;margin-top:1.2rem}h2{font-size:1.25rem;margin-top:2rem;\
border-bottom:1px solid #ddd}\
.verdict{padding:.6rem .9rem;border-radius:.3rem;font-weight:600}\
.ok{background:#e6f4ea;color:#14532d}.failed{background:#fdecea;color:#7f1d1d}\
.interrupted{background:#fff4e5;color:#7c2d12}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}\
dd{margin:0;overflow-wrap:anywhere}\
pre{overflow-x:auto;background:#f6f8fa;padding:.8rem;font-size:.85rem}\
figure{margin:1.5rem 0;overflow-x:auto}figure svg{width:100%;min-width:34rem;height:auto;\
display:block}\
figcaption{font-size:.9rem;color:#444}\
.table{overflow-x:auto}table{border-collapse:collapse;font-size:.85rem}\
th,td{padding:.2rem .5rem;text-align:right;border-bottom:1px solid #eee}\
th{position:sticky;top:0;background:#fff}";

impl Report {
    /// Writes the page to `path`.
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn write_page(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.page(self.verdict_words()))
    }

    /// The verdict as the page states it: its class and its sentence.
    fn verdict_words(&self) -> (&'static str, String) {
        match self.verdict(0.0) {
            _ if self.is_interrupted() => (
                "interrupted",
                "Interrupted (Ctrl-C): the figures are of the part that ran.".into(),
            ),
            Ok(()) if self.mismatches() == 0 => (
                "ok",
                "Every connection opened and every reply byte was right.".into(),
            ),
            Ok(()) => (
                "failed",
                format!("{} reply bytes were wrong.", self.mismatches()),
            ),
            Err(why) => ("failed", format!("Failed: {why}.")),
        }
    }

    /// The page, whole.
    pub fn page(&self, (class, verdict): (&str, String)) -> String {
        let noun = match self.run.workload {
            Workload::Churn => "cycles",
            Workload::Udp => "datagrams",
            Workload::Idle => "round trips",
            _ => "messages",
        };
        let title = format!(
            "reactor-echo bench: {}, {} connections, {}",
            self.run.workload, self.run.connections, self.origin.host
        );
        let mut html = String::new();
        let _ = write!(
            html,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n\
             <body>\n<h1>{}</h1>\n<p class=\"verdict {class}\" role=\"status\">{}</p>\n",
            escape(&title),
            escape(&title),
            escape(&verdict)
        );
        self.facts(&mut html);
        let _ = write!(
            html,
            "<h2>Summary</h2>\n<pre>{}</pre>\n<h2>Plots</h2>\n",
            escape(&self.human())
        );
        let series = self.series();
        let plots: Vec<Plot> = [
            plots::throughput(series, noun),
            plots::latency_over_time(series),
            plots::percentile_distribution(&self.honest.latency),
            plots::connections(series),
            plots::server(series),
        ]
        .into_iter()
        .flatten()
        .collect();
        if plots.is_empty() {
            html.push_str("<p>The run recorded no intervals to plot.</p>\n");
        }
        for (index, plot) in plots.iter().enumerate() {
            figure(&mut html, index, plot);
        }
        self.hostile(&mut html);
        self.table(&mut html);
        html.push_str("</body>\n</html>\n");
        html
    }

    /// The run's facts, as a list of terms.
    fn facts(&self, html: &mut String) {
        let env = &self.environment;
        let started = self
            .origin
            .started_ms
            .map_or_else(|| "unknown".to_owned(), utc);
        let rate = self
            .timeline
            .rate_requested
            .map_or_else(String::new, |r| format!(", {r:.0} msg/s asked"));
        let facts = [
            ("command", self.origin.command.clone()),
            ("version", format!("reactor-echo {}", self.origin.version)),
            ("run", self.origin.run_id.clone()),
            ("host", self.origin.host.clone()),
            ("window began", started),
            (
                "load",
                format!(
                    "{}, {} connections, {} processes, {} bytes, pipeline {}{rate}",
                    self.run.workload,
                    self.run.connections,
                    self.run.processes,
                    self.run.size,
                    self.run.pipeline
                ),
            ),
            ("kernel", format!("{}, {} cores", env.kernel, env.cores)),
            ("CPUs", env.cpus.clone()),
            (
                "open-file limit",
                format!("{} (hard {})", env.fd_soft, env.fd_hard),
            ),
            ("source addresses", env.sources.replace(',', ", ")),
        ];
        html.push_str("<h2>The run</h2>\n<dl>\n");
        for (term, value) in facts {
            let _ = writeln!(html, "<dt>{term}</dt><dd>{}</dd>", escape(&value));
        }
        html.push_str("</dl>\n");
    }

    /// `--chaos`: what each kind of hostile peer met, apart from the
    /// honest clients above.
    fn hostile(&self, html: &mut String) {
        let Some(chaos) = &self.chaos else {
            return;
        };
        let _ = write!(
            html,
            "<h2>Hostile peers</h2>\n<p>{} hostile peers ran beside the verified clients, on a \
             loop of their own; the plots above are of the verified clients alone. {} of the \
             hostile peers' reply bytes were wrong.</p>\n<div class=\"table\"><table>\n\
             <caption>What each kind of hostile peer did, and what the server did to it</caption>\n\
             <tr><th scope=\"col\">kind</th><th scope=\"col\">peers</th><th scope=\"col\">connects</th>\
             <th scope=\"col\">scripts played</th><th scope=\"col\">bytes sent</th>\
             <th scope=\"col\">reply bytes checked</th><th scope=\"col\">wrong</th>\
             <th scope=\"col\">server closed</th><th scope=\"col\">server reset</th>\
             <th scope=\"col\">lost</th></tr>\n",
            chaos.peers(),
            chaos.mismatches()
        );
        for (kind, t) in &chaos.kinds {
            let _ = writeln!(
                html,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                kind.name(),
                t.peers,
                t.connects,
                t.cycles,
                t.bytes_sent,
                t.bytes_verified,
                t.mismatches,
                t.server_closed,
                t.server_reset,
                t.lost
            );
        }
        html.push_str("</table></div>\n");
    }

    /// The figures behind the plots, one row an interval.
    fn table(&self, html: &mut String) {
        let series = self.series();
        if series.is_empty() {
            return;
        }
        let base = series[0].start_ms;
        html.push_str(
            "<h2>Each second</h2>\n<details><summary>The figures behind the plots, one row an \
             interval</summary>\n<div class=\"table\"><table>\n<tr><th scope=\"col\">from (s)</th>\
             <th scope=\"col\">stage</th><th scope=\"col\">length (s)</th><th scope=\"col\">msg/s</th>\
             <th scope=\"col\">p50 (µs)</th><th scope=\"col\">p99 (µs)</th>\
             <th scope=\"col\">max (µs)</th><th scope=\"col\">open</th><th scope=\"col\">connects</th>\
             <th scope=\"col\">failed</th><th scope=\"col\">lost</th><th scope=\"col\">wrong bytes</th>\
             <th scope=\"col\">server CPU (s)</th><th scope=\"col\">server MiB</th></tr>\n",
        );
        let none = || "–".to_owned();
        for p in series {
            let (p50, p99, max) = p.latency_us.map_or_else(
                || (none(), none(), none()),
                |l| (l.p50.to_string(), l.p99.to_string(), l.max.to_string()),
            );
            let _ = writeln!(
                html,
                "<tr><td>{:.1}</td><td>{}</td><td>{:.3}</td><td>{:.0}</td><td>{p50}</td>\
                 <td>{p99}</td><td>{max}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                p.start_ms.saturating_sub(base) as f64 / 1e3,
                p.stage.name(),
                p.length_s,
                p.messages_per_sec(),
                p.connections,
                p.connects,
                p.failed,
                p.errors,
                p.mismatches,
                p.server_cpu_s.map_or_else(none, |s| format!("{s:.3}")),
                p.server_rss_kib
                    .map_or_else(none, |k| format!("{:.1}", k as f64 / 1024.0)),
            );
        }
        html.push_str("</table></div></details>\n");
    }
}

/// One plot in its figure: the SVG made an image with a title and a
/// description for screen readers, and the description as its caption.
fn figure(html: &mut String, index: usize, plot: &Plot) {
    let id = format!("plot-{index}");
    let svg = plot.svg.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" ",),
        1,
    );
    // The title and description go first inside the SVG, where assistive
    // technology and the browser's tooltip look for them.
    let svg = match svg.find('>') {
        Some(end) => format!(
            "{}<title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>{}",
            &svg[..=end],
            escape(&plot.title),
            escape(&plot.description),
            &svg[end + 1..]
        ),
        None => svg,
    };
    let _ = write!(
        html,
        "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
        escape(&plot.description)
    );
}

/// Text made safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Milliseconds since the epoch as a UTC date and time.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20.123 UTC");
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
