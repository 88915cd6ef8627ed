//! One integration-test binary (one link, shared helpers), after ripgrep's
//! layout. Every test starts the real `reactor-echo` binary on port 0, talks
//! to it over real sockets, and asserts on bytes, exit codes and the stats
//! line. Each test runs against the reactor (`serve`) and both blocking
//! models (`blocking --model threads|iterative`) from the same code; where a
//! blocking server cannot pass by design, the test says which and why, and
//! that skip is part of the lesson. The modules, by the behaviour they prove:

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]
// Start the binary, parse its lines, measure it, stop it by PID; the
// server kinds and the `server_test!` macro that runs a test against each.
#[macro_use]
mod support;

// Echo and upper byte-exact, small and multi-megabyte, half-close, reset.
mod tcp;
// The streaming uppercase rule over real sockets: split characters, invalid bytes.
mod upper;
// The greeting over TCP (then FIN, then close) and UDP.
mod greet;
// A peer that sends without reading: bounded memory, others still served.
mod backpressure;
// The connection limit, descriptor exhaustion, idle timeout.
mod limits;
// UDP: empty and maximum-size datagrams, upper, the reflection guard.
mod udp;
// SIGTERM / SIGINT: the grace period, the stats line, exit 0; the periodic stats line.
mod signals;
// Bad start-up input: one `error:` line, exit 2 or 1, no panic.
mod startup;
// Memory: idle connections cost almost nothing; a soak does not leak.
mod memory;
// The interactive clients, piped and in a real terminal (tmux).
mod client;
// The load generator: every mode, the JSON report, mismatch detection.
mod bench;
// The course's steps (docs/course/): echo, half-close, reset, and each one's limit.
mod course;
// Random client sequences against the real server, checked against a model.
mod model;
mod series; // The run in time: --json-stream, --hdr-log, the report page in a browser, exit codes.
// Hostile peers of every kind beside verified clients (`bench --chaos`).
mod chaos;
// `serve --workers N`: reactors in several processes on one port.
mod workers;
// bench --processes N and bench merge: one exact report from many.
mod processes;
// The proactor's own: operations in flight at close, no io_uring.
mod proactor;
// Safe to expose: the UDP and TCP guards, exposed on loopback with --exposed.
mod exposure;
// A test process killed with SIGKILL leaves no server behind.
mod leftovers;
// Server hosts behind a real balancer, in network namespaces (root).
mod hosts;
