//! The interactive clients: `reactor-echo client tcp|udp [ADDR]`.
//!
//! The tutorials' clients, made robust: they read lines from stdin, send each
//! one with its newline, and print what comes back. A `>>> ` prompt (the
//! fourth tutorial's) appears only when stdin is a terminal, so piped use
//! prints nothing but replies; `quit` ends the client, as in the third
//! tutorial's UDP client. (The four tutorials are kept with the project's
//! shared material, `../shared/seeds/`, not in this repository.)
//!
//! Empty lines are not sent, on either protocol. This client sends each
//! line with its newline, so an empty line would be a one-byte message whose
//! reply is a blank line: noise while typing, and not a message anyone
//! meant. The tutorials send what Python's `input()` returns, without its
//! newline, and there an empty line is a real pitfall, which the fourth tutorial names ("empty
//! data") and shows: its first TCP client sends whatever was typed, so an
//! empty input becomes `send(b"")`, zero bytes, which TCP does not transmit
//! at all; the server's `recv` gets nothing, sends nothing, and the client
//! waits in `recv` for ever. Its looping client fixes it by skipping empty
//! input (`if len(send_data) == 0: continue`), as this one does. Here the
//! skip is not needed to avoid the hang (every message this client sends
//! is at least its newline), only to avoid the blank line. The tutorials'
//! UDP clients send empty input as an empty datagram, which UDP does carry
//! (the fourth tutorial says so too); this client skips it on UDP as well,
//! for the same reason as on TCP. On TCP, replies are printed by a reader
//! thread as they arrive, since a TCP reply need not come in one piece.
//!
//! On UDP each line is one datagram, and one reply datagram is expected.
//! Nothing tells the client when the datagram or its reply is lost (there is
//! no connection whose reset or close would say so), so it waits at most
//! `--timeout` seconds, prints one line on stderr, and goes on.

use std::fmt;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::thread;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// The protocol the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// A TCP connection; replies are printed as they arrive.
    Tcp,
    /// One datagram per line, one reply datagram expected for each.
    Udp,
}

/// `reactor-echo client` flags.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Empty lines are not sent: each line goes out with its newline, and an empty \
                        one would only bring back a blank line.\n\
                        Type `quit` or end the input (Ctrl-D) to leave."
)]
pub struct ClientArgs {
    /// tcp or udp.
    #[arg(value_enum)]
    pub protocol: Protocol,
    /// The server's address.
    #[arg(default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// UDP: seconds to wait for each reply before saying it is lost.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub timeout: f64,
}

/// Why the client could not run.
#[derive(Debug)]
pub enum ClientError {
    /// The address does not resolve (exit 2).
    BadAddress(String, io::Error),
    /// Connecting or talking failed (exit 1).
    Io(String, io::Error),
}

impl ClientError {
    /// The exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::BadAddress(..) => 2,
            ClientError::Io(..) => 1,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::BadAddress(addr, e) => write!(f, "invalid address '{addr}': {e}"),
            ClientError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Runs the client until `quit` or the end of stdin.
///
/// # Errors
/// A [`ClientError`] if the address is bad or the connection fails.
pub fn run(args: &ClientArgs) -> Result<(), ClientError> {
    let addr = args
        .addr
        .to_socket_addrs()
        .and_then(|mut addrs| {
            addrs
                .next()
                .ok_or_else(|| io::Error::other("it resolves to no address"))
        })
        .map_err(|e| ClientError::BadAddress(args.addr.clone(), e))?;
    match args.protocol {
        Protocol::Tcp => run_tcp(addr),
        Protocol::Udp => run_udp(addr, Duration::from_secs_f64(args.timeout.max(0.001))),
    }
}

/// What the reader thread reports.
enum Heard {
    Reply,
    Closed,
}

fn run_tcp(addr: SocketAddr) -> Result<(), ClientError> {
    let stream = TcpStream::connect(addr)
        .map_err(|e| ClientError::Io(format!("cannot connect to {addr}"), e))?;
    let reader = stream
        .try_clone()
        .map_err(|e| ClientError::Io("cannot clone the stream".into(), e))?;
    let closed = Arc::new(AtomicBool::new(false));
    let (heard, replies) = channel();
    let interactive = io::stdin().is_terminal();
    let printer = {
        let closed = Arc::clone(&closed);
        thread::spawn(move || {
            print_replies(reader, &closed, &heard);
            if interactive {
                // The main thread is blocked reading the terminal; there is
                // nothing left to talk to, so leave now.
                eprintln!("\nthe server closed the connection");
                std::process::exit(0);
            }
        })
    };
    let mut writer = stream;
    for line in Lines::new(interactive) {
        if closed.load(Ordering::SeqCst) {
            break;
        }
        if line.is_empty() {
            continue; // not a message: see the module docs
        }
        let mut message = line.into_bytes();
        message.push(b'\n');
        if let Err(e) = writer.write_all(&message) {
            return Err(ClientError::Io(format!("cannot send to {addr}"), e));
        }
        if interactive {
            // Let the reply print before the next prompt.
            wait_for_reply(&replies);
        }
    }
    // Half-close: the server sees EOF, sends what it still owes, and closes.
    let _ = writer.shutdown(Shutdown::Write);
    let _ = printer.join();
    Ok(())
}

fn wait_for_reply(replies: &Receiver<Heard>) {
    if let Ok(Heard::Reply) = replies.recv_timeout(Duration::from_millis(500)) {
        // More pieces of the same reply may follow at once.
        while let Ok(Heard::Reply) = replies.recv_timeout(Duration::from_millis(20)) {}
    }
}

fn print_replies(
    mut stream: TcpStream,
    closed: &AtomicBool,
    heard: &std::sync::mpsc::Sender<Heard>,
) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                let mut out = io::stdout().lock();
                let _ = out.write_all(&buffer[..n]);
                let _ = out.flush();
                let _ = heard.send(Heard::Reply);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("connection lost: {e}");
                break;
            }
        }
    }
    closed.store(true, Ordering::SeqCst);
    let _ = heard.send(Heard::Closed);
}

fn run_udp(addr: SocketAddr, timeout: Duration) -> Result<(), ClientError> {
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .map_err(|e| ClientError::Io("cannot open a UDP socket".into(), e))?;
    // A connected UDP socket only accepts replies from the server, and turns
    // an ICMP "port unreachable" into ECONNREFUSED on the next receive.
    socket
        .connect(addr)
        .map_err(|e| ClientError::Io(format!("cannot reach {addr}"), e))?;
    socket
        .set_read_timeout(Some(timeout))
        .map_err(|e| ClientError::Io("cannot set the timeout".into(), e))?;
    let interactive = io::stdin().is_terminal();
    let mut buffer = vec![0u8; 65_536];
    for line in Lines::new(interactive) {
        if line.is_empty() {
            continue; // not a message: see the module docs
        }
        let mut message = line.into_bytes();
        message.push(b'\n');
        if let Err(e) = socket.send(&message) {
            eprintln!("cannot send to {addr}: {e}");
            continue;
        }
        match socket.recv(&mut buffer) {
            Ok(n) => {
                let mut out = io::stdout().lock();
                let _ = out.write_all(&buffer[..n]);
                if !buffer[..n].ends_with(b"\n") && interactive {
                    let _ = out.write_all(b"\n");
                }
                let _ = out.flush();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                eprintln!("no reply from {addr} within {timeout:?}");
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                eprintln!("no reply from {addr}: nothing listens there (connection refused)");
            }
            Err(e) => eprintln!("no reply from {addr}: {e}"),
        }
    }
    Ok(())
}

/// Lines from stdin, with a prompt before each when stdin is a terminal;
/// ends at `quit` or the end of input.
struct Lines {
    interactive: bool,
    stdin: io::StdinLock<'static>,
}

impl Lines {
    fn new(interactive: bool) -> Self {
        Lines {
            interactive,
            stdin: io::stdin().lock(),
        }
    }
}

impl Iterator for Lines {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.interactive {
            print!(">>> ");
            let _ = io::stdout().flush();
        }
        let mut line = String::new();
        match self.stdin.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let line = line.trim_end_matches(['\n', '\r']).to_owned();
                (line != "quit").then_some(line)
            }
        }
    }
}
