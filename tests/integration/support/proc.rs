//! Measuring a process from outside, through `/proc`.

/// The number after `key` in `/proc/PID/status` (kB for the memory lines).
pub fn proc_status_number(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .expect("status key");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
