//! The break-it labs checked: `cargo bench --bench labs`.
//!
//! Each lab (`docs/labs/NAME.patch`, explained in `docs/labs.md`) removes
//! one safeguard from the reactor. For each, this check copies the project
//! into a scratch folder under `target/labs/`, runs the test that guards
//! the safeguard there (it must pass), applies the patch (`common::apply_patch`:
//! `git apply`, checked to have changed every file the patch names),
//! and runs the test again: it must fail now. A lab whose test still passes
//! means the suite no longer catches that fault, and the check exits 1; so
//! the labs cannot rot, and each is proof that the suite catches its fault.
//!
//! Every guarding test runs first on one unpatched copy; the copies share
//! one target folder, so the dependencies are built once. Needs `git` (for
//! `git apply`). CI runs it.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{apply_patch, copy_project};

/// A lab: its patch, and the test that must catch it.
struct Lab {
    name: &'static str,
    /// Arguments to `cargo test` that select the guarding test.
    test: &'static [&'static str],
}

const LABS: [Lab; 5] = [
    Lab {
        name: "stop-before-wouldblock",
        test: &[
            "--lib",
            "reactor::connection::tests::another_turn_after_the_budget_reads_through_to_a_hinted_eof",
        ],
    },
    Lab {
        name: "no-backpressure",
        test: &[
            "--test",
            "integration",
            "backpressure::flooder_is_paused_others_served_and_nothing_lost::reactor",
        ],
    },
    Lab {
        name: "close-without-reading",
        test: &[
            "--test",
            "integration",
            "signals::sigterm_lets_a_sending_peer_read_every_reply_then_eof::reactor",
        ],
    },
    Lab {
        name: "forget-the-paused-listener",
        test: &[
            "--test",
            "integration",
            "limits::descriptor_exhaustion_pauses_accept_without_spinning::reactor",
        ],
    },
    Lab {
        name: "no-deadline-in-the-timeout",
        test: &[
            "--test",
            "integration",
            "limits::idle_close_is_timely::reactor",
        ],
    },
];

/// The longest one test run may take (a fault may make a test hang until
/// its own timeouts).
const RUN_LIMIT: Duration = Duration::from_secs(300);

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = root.join("target/labs");
    let target_dir = work.join("target");
    let mut failures = Vec::new();
    let mut table = String::from(
        "| lab | guarding test | without the patch | with the patch |\n|---|---|---|---|\n",
    );
    // Every guarding test on an unpatched copy first (one build for all),
    // before any patched copy is built: the copies share the target folder,
    // where `CARGO_BIN_EXE_reactor-echo` is one path, so the binary there is
    // whichever copy was built last.
    let baseline = work.join("unpatched");
    if let Err(why) = copy_project(&root, &baseline) {
        eprintln!("error: cargo bench --bench labs cannot run: {why}");
        std::process::exit(1);
    }
    let before: Vec<Outcome> = LABS
        .iter()
        .map(|lab| run_test(&baseline, &target_dir, lab.test))
        .collect();
    for (lab, before) in LABS.iter().zip(before) {
        let copy = work.join(lab.name);
        if let Err(why) = copy_project(&root, &copy) {
            eprintln!("error: cargo bench --bench labs cannot run: {why}");
            std::process::exit(1);
        }
        let patch = root.join(format!("docs/labs/{}.patch", lab.name));
        let applied = match apply_patch(&copy, &patch) {
            Ok(()) => true,
            Err(why) => {
                eprintln!("{}: {why}", lab.name);
                false
            }
        };
        let after = if applied {
            run_test(&copy, &target_dir, lab.test)
        } else {
            Outcome::NotApplied
        };
        eprintln!("{}: without {before:?}, with {after:?}", lab.name);
        let caught =
            before == Outcome::Passed && matches!(after, Outcome::Failed | Outcome::TimedOut);
        if !caught {
            failures.push(lab.name);
        }
        table += &format!(
            "| [{0}](labs/{0}.patch) | `{1}` | {2} | {3} |\n",
            lab.name,
            lab.test.last().copied().unwrap_or_default(),
            before.describe(),
            after.describe()
        );
        let _ = std::fs::remove_dir_all(&copy);
    }
    print!("\n{table}");
    if failures.is_empty() {
        eprintln!("every lab's fault is caught by its test");
    } else {
        eprintln!("error: not caught as expected: {}", failures.join(", "));
        std::process::exit(1);
    }
}

/// How one test run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    TimedOut,
    NotApplied,
}

impl Outcome {
    fn describe(self) -> &'static str {
        match self {
            Outcome::Passed => "passes",
            Outcome::Failed => "fails",
            Outcome::TimedOut => "fails (hangs past the limit)",
            Outcome::NotApplied => "the patch does not apply",
        }
    }
}

/// Runs `cargo test ARGS` in `dir`, with the shared target folder.
fn run_test(dir: &Path, target_dir: &Path, args: &[&str]) -> Outcome {
    let child = Command::new("cargo")
        .args(["test", "--quiet", "--target-dir"])
        .arg(target_dir)
        .args(args)
        .args(["--", "--exact"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so that a hung run is ended with every
        // process it started (cargo, the test binary, the servers).
        .process_group(0)
        .spawn();
    let Ok(mut child) = child else {
        return Outcome::Failed;
    };
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Outcome::Passed,
            Ok(Some(_)) => return Outcome::Failed,
            Ok(None) if started.elapsed() > RUN_LIMIT => {
                let _ = Command::new("kill")
                    .args(["-KILL", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
                return Outcome::TimedOut;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => return Outcome::Failed,
        }
    }
}
