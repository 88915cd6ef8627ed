//! Every transition of the connection state machine, without a socket.

use super::Input::*;
use super::State::*;
use super::*;

const MAX: usize = 100;

fn after(state: State, inputs: &[Input]) -> State {
    inputs.iter().fold(state, |s, &i| s.next(i, MAX))
}

#[test]
fn open_stays_open_while_owed_is_within_bound() {
    assert_eq!(Open.next(Received { owed: 0 }, MAX), Open);
    assert_eq!(Open.next(Received { owed: MAX }, MAX), Open);
    assert_eq!(Open.next(Written { owed: 3 }, MAX), Open);
}

#[test]
fn owing_more_than_the_bound_pauses_and_a_full_flush_resumes() {
    assert_eq!(Open.next(Received { owed: MAX + 1 }, MAX), Paused);
    assert_eq!(Paused.next(Written { owed: 50 }, MAX), Paused);
    assert_eq!(Paused.next(Written { owed: 0 }, MAX), Open);
}

#[test]
fn eof_with_nothing_owed_closes_as_eof() {
    assert_eq!(Open.next(Eof { owed: 0 }, MAX), Closed(CloseReason::Eof));
}

#[test]
fn eof_with_bytes_owed_flushes_them_first() {
    assert_eq!(Open.next(Eof { owed: 7 }, MAX), CloseWait);
    assert_eq!(
        after(Open, &[Eof { owed: 7 }, Written { owed: 2 }]),
        CloseWait
    );
    assert_eq!(
        after(Open, &[Eof { owed: 7 }, Written { owed: 0 }]),
        Closed(CloseReason::Eof)
    );
}

#[test]
fn a_final_reply_goes_through_finishing_to_fin_wait() {
    assert_eq!(Open.next(LastReply { owed: 0 }, MAX), FinWait);
    assert_eq!(Open.next(LastReply { owed: 4 }, MAX), Finishing);
    assert_eq!(Finishing.next(Written { owed: 1 }, MAX), Finishing);
    assert_eq!(Finishing.next(Written { owed: 0 }, MAX), FinWait);
}

#[test]
fn fin_wait_discards_input_and_ends_on_peer_fin_or_linger() {
    assert_eq!(FinWait.next(Received { owed: 0 }, MAX), FinWait);
    assert_eq!(FinWait.next(Eof { owed: 0 }, MAX), Closed(CloseReason::Eof));
    assert_eq!(FinWait.next(LingerExpired, MAX), Closed(CloseReason::Eof));
}

#[test]
fn linger_expiry_only_affects_fin_wait() {
    for s in [Open, Paused, CloseWait, Finishing] {
        assert_eq!(s.next(LingerExpired, MAX), s);
    }
}

#[test]
fn errors_and_idle_close_from_every_live_state() {
    for s in [Open, Paused, CloseWait, Finishing, FinWait] {
        assert_eq!(
            s.next(Failed(CloseReason::Reset), MAX),
            Closed(CloseReason::Reset)
        );
        assert_eq!(s.next(IdleExpired, MAX), Closed(CloseReason::Idle));
    }
}

#[test]
fn shutdown_stops_reading_but_keeps_what_is_owed() {
    assert_eq!(Open.next(ShutdownBegun { owed: 0 }, MAX), FinWait);
    assert_eq!(Paused.next(ShutdownBegun { owed: 500 }, MAX), Finishing);
    assert_eq!(CloseWait.next(ShutdownBegun { owed: 5 }, MAX), CloseWait);
    assert_eq!(FinWait.next(ShutdownBegun { owed: 0 }, MAX), FinWait);
}

#[test]
fn closed_is_final() {
    let closed = Closed(CloseReason::Eof);
    for input in [
        Received { owed: 1 },
        Eof { owed: 0 },
        Written { owed: 0 },
        Failed(CloseReason::Reset),
        IdleExpired,
        LingerExpired,
        ShutdownBegun { owed: 0 },
    ] {
        assert_eq!(closed.next(input, MAX), closed);
    }
}

#[test]
fn only_open_and_fin_wait_read() {
    assert!(Open.is_reading() && FinWait.is_reading());
    for s in [Paused, CloseWait, Finishing, Closed(CloseReason::Eof)] {
        assert!(!s.is_reading());
    }
}

#[test]
fn display_names_are_the_log_names() {
    assert_eq!(FinWait.to_string(), "FIN-WAIT-2");
    assert_eq!(CloseWait.to_string(), "CLOSE-WAIT");
    assert_eq!(Closed(CloseReason::Reset).to_string(), "CLOSED(reset)");
}

#[test]
fn actions_on_every_transition() {
    let eof = Closed(CloseReason::Eof);
    let reset = Closed(CloseReason::Reset);
    let idle = Closed(CloseReason::Idle);
    let live = [Open, Paused, CloseWait, Finishing, FinWait];
    for from in live {
        for to in live {
            let expected = match (from, to) {
                (f, t) if f == t => Action::None,
                (_, FinWait) => Action::SendFinAndLinger,
                _ => Action::None,
            };
            assert_eq!(from.action(to), expected, "{from} -> {to}");
        }
        let fin_then_close = if from == FinWait {
            Action::Close
        } else {
            Action::SendFinAndClose
        };
        assert_eq!(from.action(eof), fin_then_close, "{from} -> {eof}");
        assert_eq!(from.action(reset), Action::Close, "{from} -> {reset}");
        assert_eq!(from.action(idle), Action::Close, "{from} -> {idle}");
    }
    // A closed connection only waits to be removed: nothing happens again.
    assert_eq!(eof.action(eof), Action::None);
}

/// The transition table of `docs/architecture.md`, read from the file and
/// checked cell by cell against `State::next`: every state (the rows) against
/// every kind of input (the columns), so the documented table and the code
/// cannot drift. The two exhaustive `match`es below make a new state or input
/// a compile error here until the table has it too.
#[test]
fn the_documented_table_is_the_code() {
    let doc = include_str!("../../../docs/architecture.md");
    let table: Vec<&str> = doc
        .lines()
        .skip_while(|l| !l.contains("transition-table:start"))
        .skip(1)
        .take_while(|l| !l.contains("transition-table:end"))
        .collect();
    assert!(
        table.len() > 2,
        "no transition table in docs/architecture.md"
    );
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let header = cells(table[0]);
    let columns = &header[1..];
    let mut rows_seen = Vec::new();
    for line in &table[2..] {
        let row = cells(line);
        let state = parse_state(&row[0]);
        rows_seen.push(state);
        assert_eq!(
            row.len(),
            header.len(),
            "row {:?} has the wrong number of cells",
            row[0]
        );
        for (column, cell) in columns.iter().zip(&row[1..]) {
            let expected = parse_state(cell);
            for input in inputs_of(column) {
                assert_eq!(
                    state.next(input, MAX),
                    expected,
                    "docs/architecture.md says {state:?} + {input:?} ({column}) -> {cell}"
                );
            }
        }
    }
    // Every state is a row and every kind of input a column.
    for state in EVERY_STATE {
        assert!(rows_seen.contains(&state), "no row for {state:?}");
        let _ = row_name(state);
    }
    for input in [
        Received { owed: 0 },
        Eof { owed: 0 },
        Written { owed: 0 },
        LastReply { owed: 0 },
        Failed(CloseReason::Reset),
        IdleExpired,
        LingerExpired,
        ShutdownBegun { owed: 0 },
    ] {
        let kind = column_kind(input);
        assert!(
            columns.iter().any(|c| c.starts_with(kind)),
            "no column for {kind}"
        );
    }
}

/// Every state, each reason of `Closed` apart.
const EVERY_STATE: [State; 8] = [
    Open,
    Paused,
    CloseWait,
    Finishing,
    FinWait,
    Closed(CloseReason::Eof),
    Closed(CloseReason::Reset),
    Closed(CloseReason::Idle),
];

/// The name a row gives a state (exhaustive: a new state must be named).
fn row_name(state: State) -> String {
    match state {
        Open => "Open".into(),
        Paused => "Paused".into(),
        CloseWait => "CloseWait".into(),
        Finishing => "Finishing".into(),
        FinWait => "FinWait".into(),
        Closed(reason) => format!("Closed({reason})"),
    }
}

fn parse_state(cell: &str) -> State {
    EVERY_STATE
        .into_iter()
        .find(|s| row_name(*s) == cell)
        .unwrap_or_else(|| panic!("not a state: {cell:?}"))
}

/// The column an input falls in, by kind (exhaustive: a new input must get
/// a column).
fn column_kind(input: Input) -> &'static str {
    match input {
        Received { .. } => "Received",
        Eof { .. } => "Eof",
        Written { .. } => "Written",
        LastReply { .. } => "LastReply",
        Failed(_) => "Failed",
        IdleExpired => "IdleExpired",
        LingerExpired => "LingerExpired",
        ShutdownBegun { .. } => "ShutdownBegun",
    }
}

/// Sample inputs for a column heading: the edges of its range of `owed`.
fn inputs_of(column: &str) -> Vec<Input> {
    let (kind, range) = column.split_once(" (").unwrap_or((column, ""));
    let owed: Vec<usize> = match range.trim_end_matches(')') {
        "" => vec![0],
        "owed ≤ max" => vec![0, 1, MAX],
        "owed > max" => vec![MAX + 1, 10 * MAX],
        "0" => vec![0],
        "> 0" => vec![1, MAX, MAX + 1],
        other => panic!("unknown range {other:?} in column {column:?}"),
    };
    owed.into_iter()
        .map(|owed| match kind {
            "Received" => Received { owed },
            "Eof" => Eof { owed },
            "Written" => Written { owed },
            "LastReply" => LastReply { owed },
            "ShutdownBegun" => ShutdownBegun { owed },
            "Failed" => Failed(CloseReason::Reset),
            "IdleExpired" => IdleExpired,
            "LingerExpired" => LingerExpired,
            other => panic!("unknown input {other:?}"),
        })
        .collect()
}
