//! Shared by the benchmarks, one concern per file: [`args`] (a bench's
//! options after `--`), [`servers`] (the
//! servers the comparison benches name), [`load`] (the C load generator
//! and `reactor-echo bench`, pinned to CPU 1), [`measure`] (syscalls,
//! instructions and memory per message or connection), [`plot`] (the SVG
//! plots), [`anchors`] (the C reference programs) and [`build`] (the
//! release binary, of this checkout or of a patched copy). A running
//! server is the tests' own [`Server`] (started with
//! [`Server::start_pinned`] on CPU 0, under a counting wrapper), from the
//! tests' support folder, included whole. Here: what every bench needs
//! besides, down to writing a table into `docs/` only from a complete run.

#![allow(dead_code)] // each bench uses its own subset

pub mod anchors;
pub mod args;
pub mod build;
pub mod load;
pub mod measure;
pub mod plot;
pub mod servers;
pub mod tokio_echo;

// Each bench names what it uses as `common::NAME`, wherever it lives; a
// bench that uses nothing of a file would otherwise be warned about it.
#[allow(unused_imports)]
pub use {anchors::*, args::*, build::*, load::*, measure::*, servers::*};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;

/// The tests' support: the one type for "a server" ([`ServerSpec`]) and
/// for a running one ([`Server`]), so that a bench and a test start, read
/// and stop a server alike. A bench uses a part of it.
#[path = "../../tests/integration/support/mod.rs"]
#[allow(dead_code, unused_imports, unused_macros)]
#[allow(clippy::unwrap_used)] // test code: as the tests allow it (tests/integration/main.rs)
pub mod support;
pub use support::Server;
pub use support::spec::ServerSpec;

/// The median of `v` (the upper one of an even count; NaN if empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Owned copies of string slices, for argument lists.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A file for a tool's output (strace's counts, callgrind's profile), in the
/// temporary directory, named after this bench process so that two benches
/// running at once do not share it.
pub fn scratch_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("reactor-echo-{}-{name}", std::process::id()))
}

/// Checks that each command can be run (`NAME --version` or `--help`
/// starts), or explains in one line which is missing.
pub fn require_tools(tools: &[&str]) -> Result<(), String> {
    for tool in tools {
        let found = Command::new(tool)
            .arg(if *tool == "taskset" {
                "-V"
            } else {
                "--version"
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(format!(
                "`{tool}` is not installed (needed: {})",
                tools.join(", ")
            ));
        }
    }
    Ok(())
}

/// Prints `error: WHY` as the one line a bench that cannot run says, and
/// exits with status 1.
pub fn cannot_run(bench: &str, why: &str) -> ! {
    eprintln!("error: cargo bench --bench {bench} cannot run: {why}");
    std::process::exit(1);
}

/// Writes a bench's table: into `docs/benchmarks/NAME` when the run was
/// complete (the published figures), else under `target/bench-partial/`, so
/// that a quick or partial run never overwrites what the docs quote.
/// Returns the path written.
pub fn publish(root: &Path, name: &str, text: &str, complete: bool) -> PathBuf {
    let dir = if complete {
        root.join("docs/benchmarks")
    } else {
        root.join("target/bench-partial")
    };
    std::fs::create_dir_all(&dir).expect("create the output folder");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the table");
    path
}

/// The machine facts printed with every table: kernel, cores, date, and
/// the commit measured.
pub fn machine_line() -> String {
    let kernel = reactor_echo::bench::procfs::kernel_release().unwrap_or_default();
    let output = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let date = output("date", &["+%Y-%m-%d"]);
    let commit = output("git", &["rev-parse", "--short", "HEAD"]);
    let commit = if commit.is_empty() {
        "an unknown commit".to_owned()
    } else {
        format!("commit {commit}")
    };
    format!(
        "kernel {}, {} cores, taken {date} at {commit}",
        kernel.trim(),
        thread::available_parallelism().map_or(0, |n| n.get())
    )
}
