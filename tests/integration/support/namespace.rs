//! A server in a network namespace of its own, and a client that joins it,
//! for the tests that need the network set up otherwise than this
//! machine's (larger socket buffers, a slow loopback) without touching the
//! machine's own: each namespace has its own loopback, its own queueing
//! discipline on it, and its own `tcp_rmem`/`tcp_wmem`. Creating one needs
//! root (`unshare --net`); the tests that use this skip without it.

#![allow(dead_code)] // the tests use it, the benches do not

use std::io;
use std::os::fd::AsFd;
use std::thread;

/// Why a network namespace of its own cannot be had here, if it cannot.
pub fn cannot_unshare_network_because() -> Option<&'static str> {
    (!rustix::process::geteuid().is_root()).then_some("a network namespace of its own needs root")
}

/// The first of `tools` (each a program and an argument that only makes it
/// say its version) that cannot be run here, said as a reason to skip.
pub fn missing_tool(tools: &[(&str, &str)]) -> Option<String> {
    tools.iter().find_map(|(tool, arg)| {
        let runs = std::process::Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|out| out.status.success());
        (!runs).then(|| format!("`{tool}` cannot be run here"))
    })
}

/// A wrapper for [`super::Server::start_wrapped`] that runs the server in a
/// new network namespace (`unshare --net`, which executes the program in
/// its place, so the server keeps the PID), with its loopback up and the
/// shell commands `setup` run there first.
pub fn in_own_network(setup: &str) -> Vec<String> {
    ["unshare", "--net", "--", "sh", "-c"]
        .into_iter()
        .map(String::from)
        .chain([format!(
            "ip link set lo up && {setup} && exec \"$0\" \"$@\""
        )])
        .collect()
}

/// Runs `open` on a thread that has joined the network namespace of
/// process `pid`, and returns what it opened: setns(2) moves only the
/// calling thread, and a socket stays in the namespace it was made in,
/// whichever thread uses it after.
pub fn in_network_of<T: Send + 'static>(
    pid: u32,
    open: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    thread::spawn(move || {
        let namespace = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
        rustix::thread::move_into_link_name_space(
            namespace.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        open()
    })
    .join()
    .expect("the thread that joins the namespace")
}

/// Whether every thread of process `pid` is stopped (state `T` in its
/// `/proc/PID/task/TID/stat`): a SIGSTOP is taken by each thread on its
/// way back from the kernel, so one may still run a little after `kill`.
pub fn every_thread_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('T'))
        })
    })
}
