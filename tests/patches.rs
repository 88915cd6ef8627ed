//! Every patch the project ships applies to today's source.
//!
//! Two sets of patches change `src/` on purpose: the break-it labs
//! (`docs/labs/*.patch`, each removing one safeguard; `cargo bench --bench
//! labs` proves the suite catches each) and the proactor's choices undone
//! (`benches/proactor_choices/*.patch`, each measured by `cargo bench
//! --bench proactor_choices`). Those benches take minutes and are not run
//! on every change; this check takes a second, so that a change to the
//! source that makes a patch rot fails `cargo test` at once, naming it.
//!
//! Each patch goes onto a copy of `src/` in a temporary folder with `git
//! apply --verbose`, and every file the patch names must be reported
//! `Applied`: git skips a file it judges outside its reach (a path relative
//! to a work tree above the folder) silently, with exit status 0, so the
//! status alone proves nothing. `GIT_CEILING_DIRECTORIES` keeps git from
//! looking for a work tree above the copy.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folders whose `*.patch` files change `src/`.
const PATCH_FOLDERS: [&str; 2] = ["docs/labs", "benches/proactor_choices"];

fn shipped_patches(root: &Path) -> Vec<PathBuf> {
    let mut patches: Vec<PathBuf> = PATCH_FOLDERS
        .iter()
        .flat_map(|folder| std::fs::read_dir(root.join(folder)).expect("a patch folder"))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "patch"))
        .collect();
    patches.sort();
    patches
}

/// `git apply --verbose PATCH` on a fresh copy of `src/`: `Ok` when every
/// file the patch names was applied, else git's words.
fn apply_to_a_copy(root: &Path, patch: &Path, scratch: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
    let copied = Command::new("cp")
        .arg("-r")
        .arg(root.join("src"))
        .arg(scratch)
        .status()
        .is_ok_and(|s| s.success());
    if !copied {
        return Err(format!("cannot copy src/ into {}", scratch.display()));
    }
    let text = std::fs::read_to_string(patch).map_err(|e| e.to_string())?;
    let named = text.lines().filter(|l| l.starts_with("+++ ")).count();
    let out = Command::new("git")
        .args(["apply", "--verbose"])
        .arg(patch)
        .current_dir(scratch)
        .env(
            "GIT_CEILING_DIRECTORIES",
            scratch.parent().unwrap_or(scratch),
        )
        .output()
        .map_err(|e| format!("git: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let applied = said.matches("Applied patch").count();
    if out.status.success() && named > 0 && applied == named {
        Ok(())
    } else {
        Err(format!(
            "{applied} of {named} files applied: {}",
            said.trim()
        ))
    }
}

#[test]
fn every_shipped_patch_applies_to_the_source() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let patches = shipped_patches(root);
    // Five labs and five choices today: a folder that went missing or
    // empty is a failure too, not a pass over nothing.
    assert!(patches.len() >= 10, "only {} patches found", patches.len());
    let scratch = std::env::temp_dir().join(format!("reactor-echo-patches-{}", std::process::id()));
    let failures: Vec<String> = patches
        .iter()
        .filter_map(|patch| {
            let name = patch.strip_prefix(root).unwrap_or(patch);
            apply_to_a_copy(root, patch, &scratch.join("copy"))
                .err()
                .map(|why| format!("{}: {why}", name.display()))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        failures.is_empty(),
        "patches that no longer apply to src/:\n{}",
        failures.join("\n")
    );
}
