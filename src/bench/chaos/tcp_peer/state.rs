//! The hostile TCP peer's state machine: where a peer is between one
//! connection and the next, and the one function that moves it on.
//!
//! Like the server's connection (`reactor/state.rs`) the machine is
//! *sans-IO*: [`State::next`] maps `(state, input)`, for a peer of a given
//! [`Kind`], to the next state and the [`Action`] to carry out, and does
//! nothing else, so every pair is tested without a socket. The peer
//! (`tcp_peer.rs`) does the connects, reads and writes, turns what they
//! return into an [`Input`], and carries out the action.
//!
//! ```text
//!              TimerDue                 Connected
//!   Waiting ─────────────▶ Connecting ─────────────▶ Playing ──SocketFull (never-read)──▶ Stalled
//!      ▲                        │ ConnectFailed         │ BurstSent (half-close)
//!      │                        │ (or Eof, Failed)      ▼
//!      ├────────────────────────┘                    WriteShut
//!      │  BurstSent (reset), Eof, Failed: from Playing, Stalled, WriteShut
//!      └───────────────────────────────────────────────────────────────
//!   any ── RunOver ──▶ Left (final)
//! ```
//!
//! What a connected peer writes, and when, is its kind's script
//! (`tcp_peer.rs`): a slow byte when its timer is due, a flood, a burst,
//! a sliced message. The machine knows only what changes where the peer
//! is: the handshake, the burst that ends in a reset or a half-close, the
//! socket that fills, the end of the connection, and the end of the run.

use super::super::kind::Kind;

#[cfg(test)]
mod tests;

/// Where a hostile TCP peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// No connection: its timer says when to connect (the first start, or
    /// a pause after a script ended or a connect failed).
    Waiting,
    /// The non-blocking connect has not finished.
    Connecting,
    /// Connected: the kind's script writes as its pacing allows, and the
    /// replies are read and checked.
    Playing,
    /// Never-read only: its socket is full, the server has stopped reading
    /// (counted once a connection). It still writes when there is room.
    Stalled,
    /// Half-close only: its FIN is sent, and what is owed is read until the
    /// server's FIN.
    WriteShut,
    /// The run is over: the connection is closed for good.
    Left,
}

/// What happened to a peer: a timer, or the result of a connect, a read or
/// a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// Its timer is due (the script's pacing reads it too, inside
    /// `Playing`).
    TimerDue,
    /// The handshake finished.
    Connected,
    /// The connect failed, at once or when the handshake ended.
    ConnectFailed,
    /// A write found the socket full.
    SocketFull,
    /// The script's burst is written (reset and half-close).
    BurstSent,
    /// The server's FIN.
    Eof,
    /// A reset or another error on the connection.
    Failed,
    /// The run is over.
    RunOver,
}

/// What to do on a transition, beside changing the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing.
    None,
    /// Open a socket and start connecting, with a new seed and zeroed
    /// counts.
    Connect,
    /// Count the connection and start the script at once.
    Start,
    /// Count the stall: the never-read peer's cycle.
    CountStall,
    /// Reset the connection (SO_LINGER 0, then close) with the reply on its
    /// way: the reset peer's cycle; connect again after a pause.
    Reset,
    /// Shut the write side: send the FIN.
    ShutWrite,
    /// The FIN asked for came: a cycle if every byte owed came first;
    /// connect again after a pause.
    FinAnswered,
    /// The server closed when not asked: count it, and the bytes still
    /// owed as wrong (for the kinds that read); connect again after a pause.
    ServerClosed,
    /// The server reset the connection, or it failed: count it; connect
    /// again after a pause.
    ServerReset,
    /// The connect failed: count it; try again after a pause.
    ConnectFailed,
    /// Close the connection for good.
    Leave,
}

impl State {
    /// The next state after `input`, for a peer of `kind`, and the action
    /// on the way. No I/O happens here.
    pub(crate) fn next(self, input: Input, kind: Kind) -> (State, Action) {
        use Action as A;
        use Input::*;
        use State::*;
        match (self, input) {
            // The end of the run ends every connection, once.
            (Left, _) => (Left, A::None),
            (_, RunOver) => (Left, A::Leave),

            // Between connections only the timer matters.
            (Waiting, TimerDue) => (Connecting, A::Connect),
            (Waiting, _) => (Waiting, A::None),

            // The handshake: a connection that ends before it is
            // established is a failed connect.
            (Connecting, Connected) => (Playing, A::Start),
            (Connecting, ConnectFailed | Eof | Failed) => (Waiting, A::ConnectFailed),
            (Connecting, _) => (Connecting, A::None),

            // The scripts' own turns.
            (Playing, SocketFull) if kind == Kind::NeverRead => (Stalled, A::CountStall),
            (Playing, BurstSent) if kind == Kind::Reset => (Waiting, A::Reset),
            (Playing, BurstSent) if kind == Kind::HalfClose => (WriteShut, A::ShutWrite),

            // The end of a connection the peer did not end itself.
            (WriteShut, Eof) => (Waiting, A::FinAnswered),
            (Playing | Stalled, Eof) => (Waiting, A::ServerClosed),
            (Playing | Stalled | WriteShut, Failed) => (Waiting, A::ServerReset),

            // Anything else changes nothing: a timer or a full socket is the
            // script's business.
            (Playing | Stalled | WriteShut, _) => (self, A::None),
        }
    }

    /// Whether the peer has a connection to read and write.
    pub(crate) fn is_connected(self) -> bool {
        matches!(self, State::Playing | State::Stalled | State::WriteShut)
    }
}
