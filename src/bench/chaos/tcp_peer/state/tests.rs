//! Every transition of the hostile peer's state machine, for every TCP
//! kind, without a socket: the table below is the machine, cell by cell.

use super::Input::*;
use super::State::*;
use super::*;

/// `next` for every state (rows) and input (columns), as `STATE/ACTION`.
/// Two cells depend on the kind: `stall` is `Stalled/CountStall` for
/// never-read and `Playing/None` for the others; `burst` is
/// `Waiting/Reset` for reset, `WriteShut/ShutWrite` for half-close and
/// `Playing/None` for the others.
const TABLE: &str = "
state      | TimerDue           | Connected     | ConnectFailed         | SocketFull      | BurstSent       | Eof                   | Failed                | RunOver
Waiting    | Connecting/Connect | Waiting/None  | Waiting/None          | Waiting/None    | Waiting/None    | Waiting/None          | Waiting/None          | Left/Leave
Connecting | Connecting/None    | Playing/Start | Waiting/ConnectFailed | Connecting/None | Connecting/None | Waiting/ConnectFailed | Waiting/ConnectFailed | Left/Leave
Playing    | Playing/None       | Playing/None  | Playing/None          | stall           | burst           | Waiting/ServerClosed  | Waiting/ServerReset   | Left/Leave
Stalled    | Stalled/None       | Stalled/None  | Stalled/None          | Stalled/None    | Stalled/None    | Waiting/ServerClosed  | Waiting/ServerReset   | Left/Leave
WriteShut  | WriteShut/None     | WriteShut/None| WriteShut/None        | WriteShut/None  | WriteShut/None  | Waiting/FinAnswered   | Waiting/ServerReset   | Left/Leave
Left       | Left/None          | Left/None     | Left/None             | Left/None       | Left/None       | Left/None             | Left/None             | Left/None
";

const EVERY_STATE: [State; 6] = [
    State::Waiting,
    State::Connecting,
    State::Playing,
    State::Stalled,
    State::WriteShut,
    State::Left,
];
const EVERY_INPUT: [Input; 8] = [
    Input::TimerDue,
    Input::Connected,
    Input::ConnectFailed,
    Input::SocketFull,
    Input::BurstSent,
    Input::Eof,
    Input::Failed,
    Input::RunOver,
];

/// A row's name (exhaustive: a new state must get a row).
fn state_name(state: State) -> &'static str {
    match state {
        Waiting => "Waiting",
        Connecting => "Connecting",
        Playing => "Playing",
        Stalled => "Stalled",
        WriteShut => "WriteShut",
        Left => "Left",
    }
}

/// A column's name (exhaustive: a new input must get a column).
fn input_name(input: Input) -> &'static str {
    match input {
        TimerDue => "TimerDue",
        Connected => "Connected",
        ConnectFailed => "ConnectFailed",
        SocketFull => "SocketFull",
        BurstSent => "BurstSent",
        Eof => "Eof",
        Failed => "Failed",
        RunOver => "RunOver",
    }
}

/// A cell as `STATE/ACTION`, the kind-dependent ones resolved.
fn expected(cell: &str, kind: Kind) -> String {
    match (cell, kind) {
        ("stall", Kind::NeverRead) => "Stalled/CountStall".into(),
        ("burst", Kind::Reset) => "Waiting/Reset".into(),
        ("burst", Kind::HalfClose) => "WriteShut/ShutWrite".into(),
        ("stall" | "burst", _) => "Playing/None".into(),
        _ => cell.into(),
    }
}

#[test]
fn the_table_is_the_machine_for_every_kind() {
    let rows: Vec<Vec<&str>> = TABLE
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    let columns = &rows[0][1..];
    assert_eq!(
        columns,
        EVERY_INPUT.map(input_name),
        "every input is a column, in order"
    );
    assert_eq!(
        rows[1..].iter().map(|r| r[0]).collect::<Vec<_>>(),
        EVERY_STATE.map(state_name),
        "every state is a row, in order"
    );
    for kind in Kind::TCP {
        for (row, state) in rows[1..].iter().zip(EVERY_STATE) {
            for (cell, input) in row[1..].iter().zip(EVERY_INPUT) {
                let (to, action) = state.next(input, kind);
                assert_eq!(
                    format!("{}/{action:?}", state_name(to)),
                    expected(cell, kind),
                    "{kind:?}: {state:?} + {input:?}"
                );
            }
        }
    }
}

#[test]
fn a_life_of_each_scripted_end() {
    let after = |kind: Kind, inputs: &[Input]| {
        inputs
            .iter()
            .fold(Waiting, |state, &input| state.next(input, kind).0)
    };
    let open = [TimerDue, Connected];
    assert_eq!(
        after(Kind::Reset, &[&open[..], &[BurstSent]].concat()),
        Waiting
    );
    assert_eq!(
        after(Kind::HalfClose, &[&open[..], &[BurstSent]].concat()),
        WriteShut
    );
    assert_eq!(
        after(Kind::HalfClose, &[&open[..], &[BurstSent, Eof]].concat()),
        Waiting
    );
    assert_eq!(
        after(
            Kind::NeverRead,
            &[&open[..], &[SocketFull, SocketFull]].concat()
        ),
        Stalled
    );
    assert_eq!(
        after(Kind::Slow, &[&open[..], &[SocketFull]].concat()),
        Playing
    );
    assert_eq!(
        after(Kind::Vanish, &[TimerDue, ConnectFailed, TimerDue]),
        Connecting
    );
}

#[test]
fn only_connected_states_read_and_write() {
    for state in EVERY_STATE {
        assert_eq!(
            state.is_connected(),
            matches!(state, Playing | Stalled | WriteShut),
            "{state:?}"
        );
    }
}
