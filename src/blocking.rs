//! The blocking version: the same server written the classic way, with
//! blocking `std::net` sockets, to read beside [`crate::reactor`].
//!
//! It is the two loops of the socket tutorials the project grows from (two
//! of the four, kept with the project's shared material in
//! `../shared/seeds/`, have them; the other two answer one `recv` per
//! client and close): an outer loop that `accept`s, and an inner loop that
//! `recv`s until the client sends nothing more (`recv` returns empty data:
//! the client's FIN) or fails (a reset, which only the fourth tutorial
//! catches). Each call *blocks* the thread that makes it, so the only way
//! to serve two clients at once is two threads:
//!
//! * [`Model::Iterative`]: one thread, one client at a time. A second client
//!   waits in the listen backlog until the first leaves. That is the lesson.
//! * [`Model::Threads`]: a thread per connection. Every client is served,
//!   at the price of a thread (a stack, a scheduler entry) per connection.
//!
//! UDP runs on a thread of its own in both models, so datagrams are answered
//! while a TCP client is connected. What the server does with the bytes is
//! the same [`Service`] the reactor calls; the counters are the same
//! [`Stats`]; binding and the start-up line are the same [`crate::net`] functions.
//! Only the way the I/O is driven differs.
//!
//! The sections carry the same names as the reactor's (*Bind*, *Accept*,
//! *Read and transform*, *Write*, *EOF, reset, idle*, *Shutdown*), each with
//! a pointer to where the reactor does the same job.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, info, trace, warn};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::allocator::{self, PeakTrimmer};
use crate::close::CloseReason;
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::fd_limit;
use crate::listening::Listening;
use crate::net::{SocketCalls, Sockets};
use crate::service::Service;
use crate::source_limit::SourceLimit;
use crate::stats::Stats;
use crate::udp_guard::UdpGuard;

/// How the blocking server serves TCP clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Model {
    /// One client at a time: the classic two loops.
    #[default]
    Iterative,
    /// One thread per connection.
    Threads,
}

/// The size of each connection's read buffer (each thread has its own). 64
/// KiB, as the reactor's one scratch buffer, so that both make the same
/// number of reads.
const BUFFER_SIZE: usize = 64 * 1024;
/// After this many connections at once, the last one to close gives the
/// allocator's free memory back to the system ([`allocator`]).
const PEAK_WORTH_TRIMMING: usize = 64;
/// How long after its greeting a connection waits for the peer's FIN.
const LINGER: Duration = Duration::from_secs(1);
/// The grace period: how long the server keeps writing owed bytes after a signal.
const GRACE_PERIOD: Duration = Duration::from_secs(1);
/// How long accept waits before retrying when out of descriptors.
const RETRY_WHILE_OUT_OF_FDS: Duration = Duration::from_millis(100);
/// How often the UDP thread looks up from `recv_from` to notice shutdown.
const UDP_WAKE: Duration = Duration::from_millis(250);

/// What every thread shares.
#[derive(Debug)]
struct Shared {
    service: Service,
    stats: Mutex<Stats>,
    /// Every open stream, shared with the thread serving it, so that shutdown
    /// can wake a thread blocked in `read` (`shutdown(Read)` makes it return
    /// 0). Shared, not cloned: a clone would cost a second descriptor.
    open: Mutex<HashMap<u64, Arc<TcpStream>>>,
    next_id: AtomicU64,
    /// Gives memory back after a peak of connection threads (see [`allocator`]).
    trimmer: PeakTrimmer,
    is_stopping: AtomicBool,
    /// The final stats line is printed once, by whichever thread gets there
    /// first: the main thread after the grace period, or the signal thread when a
    /// blocked write outlasts it.
    finished: Once,
    idle_timeout: Option<Duration>,
    /// `--max-per-source`: connections held per source address.
    per_source: Option<Mutex<SourceLimit>>,
}

impl Shared {
    fn stats(&self) -> MutexGuard<'_, Stats> {
        // A panicking thread cannot leave the counters half-updated in a way
        // that matters: keep counting.
        self.stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open(&self) -> MutexGuard<'_, HashMap<u64, Arc<TcpStream>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_stopping(&self) -> bool {
        self.is_stopping.load(Ordering::SeqCst)
    }
}

/// Runs the blocking server until SIGINT or SIGTERM, then prints the stats
/// line. This is `reactor-echo blocking`.
///
/// # Errors
/// A [`ServerError`] if a socket cannot be bound or the signal handlers
/// cannot be installed.
pub fn serve(config: &ServerConfig, model: Model) -> Result<Stats, ServerError> {
    // Bind. (Reactor: reactor.rs, `serve` and `Reactor::new`.)
    let limits = fd_limit::raise_to_hard_limit();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| limits.default_max_connections());
    let Sockets { tcp: listener, udp } = Sockets::bind(config, SocketCalls::Blocking)?;
    let shared = Arc::new(Shared {
        service: config.service.clone(),
        stats: Mutex::new(Stats::default()),
        open: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        trimmer: PeakTrimmer::new(PEAK_WORTH_TRIMMING),
        is_stopping: AtomicBool::new(false),
        finished: Once::new(),
        idle_timeout: config.idle_timeout,
        per_source: config
            .guards
            .max_per_source
            .map(|n| Mutex::new(SourceLimit::new(n))),
    });
    let wake_listener = listener
        .as_ref()
        .map(TcpListener::try_clone)
        .transpose()
        .map_err(|e| ServerError::new("cannot clone the listener", e))?;
    let signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| ServerError::new("cannot install signal handlers", e))?;
    let fail = |e| ServerError::new("cannot announce the listening addresses", e);
    let tcp_addr = listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(fail)?;
    let udp_addr = udp
        .as_ref()
        .map(UdpSocket::local_addr)
        .transpose()
        .map_err(fail)?;
    // Only now, with every socket bound, say what the limits are: a start-up
    // error must be the first line on stderr (see `fd_limit`).
    limits.log();
    info!("blocking server, model {model:?}, max connections {max_connections}");
    config.log_service();
    Listening {
        tcp: tcp_addr,
        udp: udp_addr,
    }
    .announce()
    .map_err(fail)?;

    spawn_signal_thread(signals, wake_listener, Arc::clone(&shared));
    if let Some(socket) = udp {
        let shared = Arc::clone(&shared);
        let bound = udp_addr.unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
        let guard = UdpGuard::new(&config.guards, bound, Instant::now());
        thread::spawn(move || serve_udp(&socket, guard, &shared));
    }
    if let Some(every) = config.stats_interval {
        let shared = Arc::clone(&shared);
        thread::spawn(move || {
            while !shared.is_stopping() {
                thread::sleep(every);
                print_stats(&shared.stats());
            }
        });
    }
    // Memory after a peak: the threads running now are the server's resting
    // set; a peak's connection threads come on top and must exit before
    // their memory can be given back.
    if model == Model::Threads {
        let shared = Arc::clone(&shared);
        thread::spawn(move || {
            let resting = allocator::process_threads().unwrap_or(u64::MAX);
            shared.trimmer.run(resting, || shared.is_stopping());
        });
    }

    // Accept: the outer loop. (Reactor: reactor/listener.rs, `accept_all`.)
    match listener {
        Some(listener) => accept_loop(&listener, model, max_connections, &shared),
        None => {
            while !shared.is_stopping() {
                thread::sleep(UDP_WAKE);
            }
        }
    }

    // Shutdown: give connection threads up to a second to finish writing.
    // (Reactor: reactor/shutdown.rs and the timers phase, `Reactor::timers`.)
    let deadline = Instant::now() + GRACE_PERIOD;
    while !shared.open().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let stats = *shared.stats();
    shared.finished.call_once(|| print_stats(&stats));
    info!("stopped");
    Ok(stats)
}

fn accept_loop(listener: &TcpListener, model: Model, max_connections: usize, shared: &Arc<Shared>) {
    let mut is_out_of_fds = false;
    loop {
        // `accept` blocks until a client connects (or shutdown wakes it).
        let accepted = listener.accept();
        if shared.is_stopping() {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if fd_limit::is_out_of_descriptors(&e) => {
                // No descriptor for the next client: it stays in the backlog.
                // Waiting a moment, not retrying at once, keeps the CPU idle.
                if !is_out_of_fds {
                    warn!(
                        "accept paused, out of file descriptors: {e}; retrying every {RETRY_WHILE_OUT_OF_FDS:?}"
                    );
                    is_out_of_fds = true;
                }
                thread::sleep(RETRY_WHILE_OUT_OF_FDS);
                continue;
            }
            Err(e) => {
                debug!("accept failed: {e}");
                continue;
            }
        };
        if is_out_of_fds {
            warn!("accept resumed");
            is_out_of_fds = false;
        }
        let client = Client::register(stream, peer, shared);
        if let Some(limit) = &shared.per_source {
            let admitted = limit
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .admit(client.id as usize, peer.ip());
            if !admitted {
                // As past the connection limit: accepted, closed at once.
                client.unregister(shared);
                shared.stats().rejected_source += 1;
                debug!("rejected {peer}: its address holds its share (--max-per-source)");
                continue;
            }
        }
        match model {
            // The tutorial's server: serve this client to the end, then accept the next.
            Model::Iterative => serve_client(&client, shared),
            Model::Threads => {
                if shared.stats().active as usize >= max_connections {
                    client.unregister(shared);
                    shared.stats().rejected();
                    debug!("rejected {peer}: at the connection limit ({max_connections})");
                    continue;
                }
                let worker = Arc::clone(shared);
                let id = client.id;
                let spawned = thread::Builder::new().spawn(move || serve_client(&client, &worker));
                if let Err(e) = spawned {
                    // The thread limit (or memory) is where this model breaks.
                    warn!("cannot start a thread for {peer}: {e}; connection rejected");
                    shared.open().remove(&id);
                    shared.stats().rejected();
                }
            }
        }
    }
}

/// One accepted connection: its id (the `conn=N` of the logs) and its
/// stream, shared with `Shared::open` so that shutdown can wake it.
struct Client {
    id: u64,
    peer: SocketAddr,
    stream: Arc<TcpStream>,
}

impl Client {
    /// Numbers the connection and enters it in `open`, before any thread
    /// serves it, so that a shutdown from now on reaches it.
    fn register(stream: TcpStream, peer: SocketAddr, shared: &Shared) -> Client {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let stream = Arc::new(stream);
        let mut open = shared.open();
        open.insert(id, Arc::clone(&stream));
        shared.trimmer.opened(open.len());
        drop(open);
        Client { id, peer, stream }
    }

    /// Takes the connection out of `open` (its socket closes when the last
    /// `Arc` goes). The last connection to leave after a peak gives the
    /// memory its threads freed back to the system: see [`allocator`] for
    /// why glibc would otherwise keep it.
    fn unregister(&self, shared: &Shared) {
        if let Some(limit) = &shared.per_source {
            limit
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .release(self.id as usize);
        }
        let mut open = shared.open();
        open.remove(&self.id);
        shared.trimmer.closed(open.len());
    }
}

/// One client, from accept to close: the inner loop.
fn serve_client(client: &Client, shared: &Shared) {
    let Client { id, peer, stream } = client;
    shared.stats().opened();
    trace!("conn={id} accepted from {peer}");
    // `Read` and `Write` are implemented for `&TcpStream`.
    let reason = converse(stream, *id, shared);
    client.unregister(shared);
    if let Some(reason) = reason {
        debug!("conn={id} closed: {reason}");
        shared.stats().closed(reason);
    }
}

/// Reads, transforms and writes until the client is done. Returns why the
/// connection ended, or `None` when it was cut short by shutdown (it is then
/// still counted as active, as in the reactor).
fn converse(mut stream: &TcpStream, id: u64, shared: &Shared) -> Option<CloseReason> {
    let _ = stream.set_nodelay(true);
    // The idle timeout is the socket's own timeout on each blocking call.
    // (Reactor: reactor/deadlines.rs.)
    let _ = stream.set_read_timeout(shared.idle_timeout);
    let _ = stream.set_write_timeout(shared.idle_timeout);
    let mut transform = shared.service.new_stream();
    // On the heap, zeroed lazily: the kernel maps zero pages on first touch,
    // so an idle thread's buffer costs no memory until bytes arrive.
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut reply_buffer = Vec::new();
    loop {
        // Read and transform. `read` blocks until bytes, EOF or an error.
        // (Reactor: reactor/connection.rs, `on_readable`.)
        let n = match stream.read(&mut buffer) {
            Ok(0) if shared.is_stopping() => return None,
            // EOF: `read` returned 0, the tutorials' "empty data": the
            // client sent its FIN. (A reset and the idle timeout come back
            // as errors, below: `failure` tells them apart.) Everything owed
            // has already been written (write_all below blocks until it
            // is), so send the transform's tail and our FIN.
            Ok(0) => {
                let tail = shared.service.on_eof(&mut transform, &mut reply_buffer);
                if let Err(e) = stream.write_all(tail) {
                    return Some(failure(&e, id));
                }
                shared.stats().bytes_out += tail.len() as u64;
                let _ = stream.shutdown(Shutdown::Write);
                return Some(CloseReason::Eof);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if shared.is_stopping() => {
                debug!("conn={id} stopped while reading: {e}");
                return None;
            }
            Err(e) => return Some(failure(&e, id)),
        };
        trace!("conn={id} read {n} bytes");
        shared.stats().bytes_in += n as u64;
        let reply = shared
            .service
            .on_bytes(&mut transform, &mut buffer[..n], &mut reply_buffer);

        // Write. `write_all` blocks until the kernel took every byte: a
        // client that does not read stops this thread here, which is the
        // blocking server's backpressure. (Reactor: `Connection::send`.)
        if let Err(e) = stream.write_all(reply.bytes) {
            return Some(failure(&e, id));
        }
        shared.stats().bytes_out += reply.bytes.len() as u64;
        if reply.is_final {
            // greet: our FIN, then wait for the peer's (bounded) so that
            // closing cannot reset away the greeting. (Reactor: `FinWait`.)
            let _ = stream.shutdown(Shutdown::Write);
            linger(stream, &mut buffer);
            return Some(CloseReason::Eof);
        }
    }
}

/// Reads and discards until the peer's FIN, an error, or [`LINGER`].
fn linger(mut stream: &TcpStream, buffer: &mut [u8]) {
    let deadline = Instant::now() + LINGER;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Maps an I/O error to why the connection ended: a timeout is the idle
/// timeout (`set_read_timeout` reports `WouldBlock` or `TimedOut`), anything
/// else a reset (see `close.rs`).
fn failure(err: &io::Error, id: u64) -> CloseReason {
    if matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        debug!("conn={id} idle timeout");
        return CloseReason::Idle;
    }
    debug!("conn={id} reset: {err}");
    CloseReason::Reset
}

/// The UDP thread: receive, transform, reply, one datagram at a time.
/// (Reactor: reactor/udp.rs.)
fn serve_udp(socket: &UdpSocket, mut guard: UdpGuard, shared: &Shared) {
    // Wake up now and then to notice shutdown.
    let _ = socket.set_read_timeout(Some(UDP_WAKE));
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut reply_buffer = Vec::new();
    while !shared.is_stopping() {
        let (n, from) = match socket.recv_from(&mut buffer) {
            Ok(received) => received,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                debug!("udp recv_from failed: {e}");
                continue;
            }
        };
        shared.stats().udp_in += 1;
        let mut turned_away = Stats::default();
        let answer = guard.answer(
            &shared.service,
            from,
            &mut buffer[..n],
            &mut reply_buffer,
            Instant::now(),
            &mut turned_away,
        );
        let Some(reply) = answer else {
            shared.stats().add(&turned_away);
            continue;
        };
        // A blocking send_to waits for buffer space instead of failing.
        match socket.send_to(reply, from) {
            Ok(_) => shared.stats().udp_out += 1,
            Err(e) => {
                shared.stats().udp_dropped += 1;
                debug!("udp reply to {from} dropped: {e}");
            }
        }
    }
}

/// The signal thread: on SIGINT or SIGTERM, mark the server as stopping and
/// wake every thread blocked in a socket call.
fn spawn_signal_thread(mut signals: Signals, listener: Option<TcpListener>, shared: Arc<Shared>) {
    thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            info!("received signal {signal}");
            shared.is_stopping.store(true, Ordering::SeqCst);
            // On Linux, shutting down a listening socket wakes a blocked
            // `accept` (it returns EINVAL); the accept loop then sees the flag.
            if let Some(listener) = &listener {
                let _ = socket2::SockRef::from(listener).shutdown(Shutdown::Read);
            }
            // Stop reading from every client: their `read` returns 0 now.
            // What they were writing is still written.
            for stream in shared.open().values() {
                let _ = stream.shutdown(Shutdown::Read);
            }
            // A thread blocked in `write` to a peer that does not read cannot
            // be woken (and the iterative server's is the main thread). Past
            // the grace period, stop the process from here.
            thread::sleep(GRACE_PERIOD + Duration::from_millis(100));
            let stats = *shared.stats();
            shared.finished.call_once(|| {
                warn!("grace period over with writes still blocked; exiting");
                print_stats(&stats);
                std::process::exit(0);
            });
        }
    });
}

fn print_stats(stats: &Stats) {
    if let Err(e) = stats.print_line() {
        warn!("cannot print the stats line: {e}");
    }
}
