//! The servers the comparison benches name: this checkout's reactor,
//! proactor and thread-per-connection model, each on TCP only, port 0.
//! (The C reference programs are named where they are built, in
//! `anchors.rs`.)

use super::ServerSpec;

/// `reactor-echo serve` on TCP only, port 0: the reactor as the comparison
/// benches name it.
pub fn reactor_spec(bin: &str) -> ServerSpec {
    tcp_only("reactor (serve)", bin, "serve")
}

/// `reactor-echo proactor` on TCP only, port 0: the io_uring server as the
/// comparison benches name it.
pub fn proactor_spec(bin: &str) -> ServerSpec {
    tcp_only("proactor (io_uring)", bin, "proactor")
}

/// `reactor-echo SUBCOMMAND` on TCP only, port 0, named `name`.
fn tcp_only(name: &str, bin: &str, subcommand: &str) -> ServerSpec {
    ServerSpec::new(
        name,
        bin,
        &[subcommand, "--tcp", "127.0.0.1:0", "--udp", "off"],
    )
}

/// `reactor-echo blocking --model threads` on TCP only, port 0.
pub fn threads_spec(bin: &str) -> ServerSpec {
    ServerSpec::new(
        "blocking threads",
        bin,
        &[
            "blocking",
            "--model",
            "threads",
            "--tcp",
            "127.0.0.1:0",
            "--udp",
            "off",
        ],
    )
}
