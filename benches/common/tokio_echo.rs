//! The echo server from tokio's documentation (a task per connection, a
//! 4 KiB buffer), for comparison. A bench binary runs it when started with
//! `--tokio-server ct|mt` (see `compare.rs` and `cost.rs`).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::ServerSpec;

/// The flag that makes a bench binary this server instead of a bench.
const FLAG: &str = "--tokio-server";

/// If this process was started as the tokio server (`--tokio-server
/// ct|mt`), serves until killed and returns true; a bench's `main` calls it
/// first.
pub fn serve_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(pos) = args.iter().position(|a| a == FLAG) else {
        return false;
    };
    serve(args.get(pos + 1).is_some_and(|f| f == "mt"));
    true
}

/// This server as the running bench binary starts it: `current_thread`, or
/// `multi_thread`.
pub fn spec(multi_thread: bool) -> ServerSpec {
    let me = std::env::current_exe()
        .expect("current exe")
        .display()
        .to_string();
    if multi_thread {
        ServerSpec::new("tokio multi_thread", &me, &[FLAG, "mt"])
    } else {
        ServerSpec::new("tokio current_thread", &me, &[FLAG, "ct"])
    }
}

/// Serves until killed. `multi_thread` picks the runtime flavour.
pub fn serve(multi_thread: bool) {
    let runtime = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    }
    .expect("tokio runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        // The same start-up line as every server here, from its one writer.
        reactor_echo::listening::Listening {
            tcp: Some(listener.local_addr().expect("addr")),
            udp: None,
        }
        .announce()
        .expect("stdout");
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            // As the C server and the reactor do.
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                loop {
                    let n = match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}
