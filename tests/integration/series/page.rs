//! `bench --report FILE.html` opened in a real browser: Debian's headless
//! Chromium (`.ci/run` installs it) loads the page from the file system,
//! dumps its DOM and takes screenshots, one as wide as a laptop and one as
//! narrow as a phone; every plot must be in the DOM as an SVG image with
//! its title and description, the screenshots must not be blank, and the
//! browser's network log must show no request the page made (the browser
//! makes some of its own, with no origin; they are told apart, and a
//! control page that does load something shows the check can fail).
//! Skipped, saying why, only where Chromium is absent.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// The browser, if there is one.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

/// Runs headless Chromium on `page` with a fresh profile, keeping its
/// network log in `netlog`; `what` is `--dump-dom` or `--screenshot=...`.
fn browse(browser: &Path, page: &Path, netlog: &Path, what: &[&str]) -> String {
    let profile = netlog.with_extension("profile");
    let _ = std::fs::remove_dir_all(&profile);
    let out = Command::new("timeout")
        .arg("120")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            // Nothing this browser asks for resolves: whatever it tries
            // stays on this machine, and still shows in its network log.
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--log-net-log={}", netlog.display()))
        .args(what)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The URLs of the requests the page made (those with an origin: the
/// browser's own background requests have none), from the network log.
fn page_requests(netlog: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(netlog).expect("a network log");
    let log: serde_json::Value = serde_json::from_str(&text).expect("the log is JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("the event type");
    log["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"].as_u64() == Some(start_job))
        .filter(|e| e["params"]["initiator"].as_str() != Some("not an origin"))
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_owned))
        .collect()
}

/// The share of a PNG's pixels that are not white, and how many distinct
/// colours it has.
fn ink(png: &Path) -> (f64, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    let channels = frame.color_type.samples();
    let pixels = &pixels[..frame.buffer_size()];
    let mut colours = std::collections::BTreeSet::new();
    let mut inked = 0usize;
    for pixel in pixels.chunks(channels) {
        if pixel[..3.min(channels)].iter().any(|&c| c < 240) {
            inked += 1;
        }
        colours.insert(pixel[..3.min(channels)].to_vec());
    }
    (
        inked as f64 / (pixels.len() / channels) as f64,
        colours.len(),
    )
}

#[test]
fn the_report_page_renders_every_plot_offline() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no Chromium on this machine (.ci/run installs Debian's chromium)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("reactor-echo-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    let server = Server::start(Kind::Reactor, &[]);
    let pid = server.pid().to_string();
    let out = bench_at(
        server.tcp(),
        &[
            "--connections",
            "50",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--server-pid",
            &pid,
            "--chaos",
            "10",
            "--report",
            page.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for outside in ["src=", "href=", "url(", "@import", "<script", "<link"] {
        assert!(
            !html.contains(outside),
            "the page refers to something outside: {outside}"
        );
    }

    let netlog = dir.join("dom.netlog.json");
    let dom = browse(&browser, &page, &netlog, &["--dump-dom"]);
    let titles = [
        "Throughput over time",
        "Latency percentiles over time",
        "Latency by percentile",
        "Connections over time",
        "The server's CPU and memory over time",
    ];
    assert_eq!(dom.matches("<figure>").count(), titles.len(), "{dom}");
    assert_eq!(dom.matches("<svg role=\"img\"").count(), titles.len());
    for (index, title) in titles.iter().enumerate() {
        let tag = format!("<title id=\"plot-{index}-title\">{title}");
        assert!(dom.contains(&tag), "no {tag}");
        assert!(dom.contains(&format!("<desc id=\"plot-{index}-desc\">")));
    }
    assert!(dom.contains("seconds since the run began") && dom.contains("latency (µs"));
    assert!(dom.contains("Hostile peers"), "the hostile peers apart");
    assert_eq!(page_requests(&netlog), Vec::<String>::new());

    for (name, size) in [("wide", "1100,4200"), ("narrow", "390,5200")] {
        let shot = dir.join(format!("{name}.png"));
        let netlog = dir.join(format!("{name}.netlog.json"));
        browse(
            &browser,
            &page,
            &netlog,
            &[
                &format!("--screenshot={}", shot.display()),
                &format!("--window-size={size}"),
            ],
        );
        let (share, colours) = ink(&shot);
        assert!(
            share > 0.05 && colours > 20,
            "{name}: {share} inked, {colours} colours"
        );
        assert_eq!(page_requests(&netlog), Vec::<String>::new(), "{name}");
        if let Ok(keep) = std::env::var("REACTOR_ECHO_KEEP_SCREENSHOTS") {
            std::fs::copy(&shot, Path::new(&keep).join(format!("report-{name}.png"))).unwrap();
        }
    }

    // The control: a page that loads an image is caught by the same check.
    let control = dir.join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><img src=\"http://example.invalid/x.png\">",
    )
    .unwrap();
    let netlog = dir.join("control.netlog.json");
    browse(&browser, &control, &netlog, &["--dump-dom"]);
    assert_eq!(page_requests(&netlog), ["http://example.invalid/x.png"]);
    let _ = std::fs::remove_dir_all(&dir);
}
