//! The servers under test, and the groups a test names instead of listing
//! them: adding a server means editing this file, not every test.

use super::spec::ServerSpec;

/// The path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_reactor-echo");

/// The servers under test: one suite, four ways of driving the same service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `reactor-echo serve`: the mio reactor.
    Reactor,
    /// `reactor-echo blocking --model threads`: a thread per connection.
    Threads,
    /// `reactor-echo blocking --model iterative`: one client at a time.
    Iterative,
    /// `reactor-echo proactor`: the io_uring completion loop.
    Proactor,
}

impl Kind {
    /// How to start this kind: the program and the subcommand (and model).
    pub fn spec(self) -> ServerSpec {
        match self {
            Kind::Reactor => ServerSpec::new("reactor", BIN, &["serve"]),
            Kind::Threads => ServerSpec::new("threads", BIN, &["blocking", "--model", "threads"]),
            Kind::Iterative => {
                ServerSpec::new("iterative", BIN, &["blocking", "--model", "iterative"])
            }
            Kind::Proactor => ServerSpec::new("proactor", BIN, &["proactor"]),
        }
    }

    /// A small number per kind, to keep concurrent tests of different kinds
    /// apart where they need a fixed resource (a loopback address, say).
    pub fn index(self) -> u8 {
        self as u8
    }
}

/// The kinds by the names the test functions get (`half_close::reactor`).
// Lower case so that `server_test!` can use one identifier for both.
#[allow(non_upper_case_globals)]
pub mod kind {
    use super::Kind;
    /// See [`Kind::Reactor`].
    pub const reactor: Kind = Kind::Reactor;
    /// See [`Kind::Threads`].
    pub const threads: Kind = Kind::Threads;
    /// See [`Kind::Iterative`].
    pub const iterative: Kind = Kind::Iterative;
    /// See [`Kind::Proactor`].
    pub const proactor: Kind = Kind::Proactor;
}

/// Expands one test body into a `#[test]` per server kind, so a failure names
/// its server (`half_close::threads`). A test names a group or lists kinds;
/// kinds it does not apply to are listed with the reason, and show up in the
/// test output as ignored with it:
///
/// ```ignore
/// server_test! {
///     /// What it proves.
///     fn name(kind) for all { ... }            // every server
/// }
/// server_test! {
///     fn name(kind) for concurrent { ... }     // every server that serves
/// }                                            // clients at the same time
/// server_test! {
///     fn name(kind) for [reactor]
///     skip [threads: "why", iterative: "why"] { ... }
/// }
/// ```
///
/// The groups are defined here, once: `all` is every kind; `concurrent`
/// leaves out `iterative`, with the reason that is the lesson.
macro_rules! server_test {
    (
        $(#[doc = $doc:literal])*
        fn $name:ident($kind:ident) for all
        $body:block
    ) => {
        server_test! {
            $(#[doc = $doc])*
            fn $name($kind) for [reactor, threads, iterative, proactor]
            $body
        }
    };
    (
        $(#[doc = $doc:literal])*
        fn $name:ident($kind:ident) for concurrent
        $body:block
    ) => {
        server_test! {
            $(#[doc = $doc])*
            fn $name($kind) for [reactor, threads, proactor]
            skip [iterative: "serves one client at a time: the second client waits until the first leaves"]
            $body
        }
    };
    (
        $(#[doc = $doc:literal])*
        fn $name:ident($kind:ident) for [$($run:ident),+]
        $(skip [$($skip:ident: $why:literal),+])?
        $body:block
    ) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($kind: crate::support::Kind) $body

            $(
                #[test]
                fn $run() {
                    run(crate::support::kind::$run)
                }
            )+
            $($(
                #[test]
                #[ignore = $why]
                fn $skip() {}
            )+)?
        }
    };
}
