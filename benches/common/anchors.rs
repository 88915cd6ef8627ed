//! The C reference programs (`../shared/anchors`): the epoll and io_uring
//! echo servers the project measures itself against, and the C load
//! generator; where their sources are and how they are built.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the C reference programs' sources are: `$REACTOR_ECHO_ANCHORS`, or
/// `../shared/anchors` beside the checkout (where the project's machines keep
/// them). They are instruments, not part of the repository.
pub fn anchors_dir(root: &Path) -> PathBuf {
    std::env::var_os("REACTOR_ECHO_ANCHORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/anchors"))
}

/// The C reference programs, built with gcc under `target/anchors/`.
pub struct Anchors {
    /// `epoll_echo`: the C epoll echo server.
    pub server: PathBuf,
    /// `loadgen`: the C load generator.
    pub loadgen: PathBuf,
}

/// Builds the C reference programs, or explains in one line why it cannot.
pub fn build_anchors(root: &Path) -> Result<Anchors, String> {
    let src = anchors_dir(root);
    if !src.join("epoll_echo.c").exists() || !src.join("loadgen.c").exists() {
        return Err(format!(
            "the C reference programs (epoll_echo.c, loadgen.c) are not in {}: set REACTOR_ECHO_ANCHORS to their folder",
            src.display()
        ));
    }
    Ok(Anchors {
        server: gcc_anchor(root, "epoll_echo", &[])?,
        loadgen: gcc_anchor(root, "loadgen", &["-lm"])?,
    })
}

/// Builds `uring_echo`, the C io_uring echo server, beside the other C
/// reference programs: a build of its own, since it needs liburing, which
/// the others do not (a bench that does not measure it keeps working
/// without). Its path, or why not in one line.
pub fn build_uring_anchor(root: &Path) -> Result<PathBuf, String> {
    let src = anchors_dir(root);
    if !src.join("uring_echo.c").exists() {
        return Err(format!(
            "the C io_uring echo server (uring_echo.c) is not in {}: set REACTOR_ECHO_ANCHORS to its folder",
            src.display()
        ));
    }
    gcc_anchor(root, "uring_echo", &["-luring"])
        .map_err(|why| format!("{why} (it needs liburing: apt-get install liburing-dev)"))
}

/// Compiles the C reference program `NAME.c` of [`anchors_dir`] with gcc
/// into `target/anchors/NAME` (`extra`: the libraries it links); its path,
/// or why not in one line (gcc's own messages are not shown).
fn gcc_anchor(root: &Path, name: &str, extra: &[&str]) -> Result<PathBuf, String> {
    let src = anchors_dir(root);
    let out = root.join("target/anchors");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let output = Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(out.join(name))
        .arg(src.join(format!("{name}.c")))
        .args(extra)
        .output()
        .map_err(|e| format!("cannot run gcc to build {name}: {e}"))?;
    if output.status.success() {
        Ok(out.join(name))
    } else {
        let errors = String::from_utf8_lossy(&output.stderr);
        let first = errors
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or("no message");
        Err(format!("gcc failed to build {name}.c: {}", first.trim()))
    }
}
