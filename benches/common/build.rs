//! Building the programs a bench measures: the release binary of this
//! checkout, or of a copy of it with one patch applied (the labs, and the
//! proactor's design choices measured one at a time).

use std::path::Path;
use std::process::Command;

/// Builds the release binary and returns its path.
pub fn build_release(root: &Path) -> String {
    build_release_into(root, &root.join("target")).unwrap_or_else(|why| panic!("{why}"))
}

/// Builds the release binary of the project in `source` (a patched copy,
/// say) into `target_dir`; its path, or why not.
pub fn build_release_into(source: &Path, target_dir: &Path) -> Result<String, String> {
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "--target-dir"])
        .arg(target_dir)
        .current_dir(source)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        return Err(format!(
            "cargo build --release in {} failed",
            source.display()
        ));
    }
    Ok(target_dir
        .join("release/reactor-echo")
        .display()
        .to_string())
}

/// Copies the project (its manifest, lock file, sources, tests, benches and
/// docs: what `cargo build` and `cargo test` read) into `to`, replacing
/// what was there.
pub fn copy_project(root: &Path, to: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for item in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "tests",
        "benches",
        "docs",
    ] {
        let ok = Command::new("cp")
            .arg("-r")
            .arg(root.join(item))
            .arg(to)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("cannot copy {item} into {}", to.display()));
        }
    }
    Ok(())
}

/// Applies `patch` to the copy of the project in `copy` with `git apply`,
/// and checks that it changed every file it names.
///
/// Two traps make the check necessary. A copy under `target/` is inside
/// this checkout's git work tree, and there `git apply` takes paths as
/// relative to the work tree's top and silently skips every file outside
/// the current folder: it exits 0 having changed nothing. Setting
/// `GIT_CEILING_DIRECTORIES` to the copy's parent stops git from finding
/// the checkout, so the copy is applied to as a plain folder. And a patch
/// whose file is missing must fail loudly, not measure the unpatched code
/// under the patch's name: `--verbose` names each file applied, and every
/// `+++` line of the patch must be among them.
pub fn apply_patch(copy: &Path, patch: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(patch)
        .map_err(|e| format!("cannot read {}: {e}", patch.display()))?;
    let parent = copy.parent().unwrap_or(copy);
    let output = Command::new("git")
        .args(["apply", "--verbose"])
        .arg(patch)
        .env("GIT_CEILING_DIRECTORIES", parent)
        .current_dir(copy)
        .output()
        .map_err(|e| format!("cannot run git apply: {e}"))?;
    let said = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let first = said
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or("no message");
        return Err(format!(
            "{} does not apply: {}",
            patch.display(),
            first.trim()
        ));
    }
    for file in text.lines().filter_map(|l| l.strip_prefix("+++ ")) {
        let file = file.split('\t').next().unwrap_or(file).trim();
        let file = file.strip_prefix("b/").unwrap_or(file);
        if !said.contains(&format!("Applied patch {file} cleanly")) {
            return Err(format!("{} was not applied to {file}", patch.display()));
        }
    }
    Ok(())
}

/// The proactor as it is (`patches` empty), or with the patches in
/// `benches/proactor_choices/` named applied in order to a copy under
/// `target/proactor-choices/` (the copies sharing one target folder): the
/// binary's path, or why it could not be built.
pub fn build_proactor_choice(root: &Path, patches: &[&str]) -> Result<String, String> {
    if patches.is_empty() {
        return Ok(build_release(root));
    }
    let name = patches.join("+");
    let scratch = root.join("target/proactor-choices");
    let copy = scratch.join(&name);
    copy_project(root, &copy)?;
    for patch in patches {
        apply_patch(
            &copy,
            &root.join(format!("benches/proactor_choices/{patch}.patch")),
        )?;
    }
    build_release_into(&copy, &scratch.join("target"))?;
    // Each copy's binary is overwritten by the next build in the shared
    // folder: keep this one under its own name.
    let built = scratch.join("target/release/reactor-echo");
    let kept = scratch.join(format!("reactor-echo-{name}"));
    std::fs::copy(&built, &kept).map_err(|e| format!("{}: {e}", kept.display()))?;
    Ok(kept.display().to_string())
}
