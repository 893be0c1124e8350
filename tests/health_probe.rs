//! Probes against real sockets and processes: a tokio listener in the test
//! answers 200, 503, garbage, or nothing; exec probes run real commands.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prodserver::health::probe::{self, Accept, ExecPids, HttpProbe, Target, TcpProbe};
use support::{group_members, request, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(2);

/// How the test server answers each connection.
#[derive(Clone, Copy)]
enum Reply {
    Bytes(&'static [u8]),
    /// Read the request, then say nothing (until the client goes away).
    Silent,
    /// Close without a word.
    Close,
}

/// Serves `reply` on `addr` forever; returns the port and the requests seen.
async fn serve(addr: &str, reply: Reply) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                if let Reply::Close = reply {
                    return;
                }
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&req).into_owned());
                match reply {
                    Reply::Bytes(b) => {
                        let _ = conn.write_all(b).await;
                    }
                    Reply::Silent => {
                        let _ = conn.read(&mut buf).await;
                    }
                    Reply::Close => {}
                }
            });
        }
    });
    (port, seen)
}

fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

#[tokio::test]
async fn http_200_passes_and_sends_a_minimal_request() {
    let (port, seen) = serve(
        "127.0.0.1:0",
        Reply::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    )
    .await;
    let p = HttpProbe::new(&url(port, "/healthz/"), None, Some("shop.example.com")).unwrap();
    assert_eq!(p.check(T).await, Ok(()));
    // The same probe runs again (built once, used many times).
    assert_eq!(p.check(T).await, Ok(()));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[0].starts_with("GET /healthz/ HTTP/1.1\r\n"),
        "{:?}",
        seen[0]
    );
    assert!(
        seen[0].contains("\r\nHost: shop.example.com\r\n"),
        "{:?}",
        seen[0]
    );
    assert!(
        seen[0].contains("\r\nConnection: close\r\n"),
        "{:?}",
        seen[0]
    );
}

#[tokio::test]
async fn http_default_host_header_is_the_url_authority() {
    let (port, seen) = serve("127.0.0.1:0", Reply::Bytes(b"HTTP/1.0 301 Moved\r\n\r\n")).await;
    let p = HttpProbe::new(&url(port, ""), None, None).unwrap();
    assert_eq!(p.check(T).await, Ok(()), "3xx is healthy");
    let host = format!("\r\nHost: 127.0.0.1:{port}\r\n");
    assert!(seen.lock().unwrap()[0].contains(&host));
}

#[tokio::test]
async fn http_503_fails_with_the_status() {
    let (port, _) = serve(
        "127.0.0.1:0",
        Reply::Bytes(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"),
    )
    .await;
    let p = HttpProbe::new(&url(port, "/healthz/"), None, None).unwrap();
    assert_eq!(p.check(T).await, Err("GET /healthz/ -> 503".to_owned()));
    // ...unless any answer will do (default probes of web servers).
    let any = HttpProbe::from_parts(
        Target::parse(&format!("127.0.0.1:{port}"), None).unwrap(),
        "/",
        "x",
        Accept::AnyResponse,
    )
    .unwrap();
    assert_eq!(any.check(T).await, Ok(()));
}

#[tokio::test]
async fn http_expected_status() {
    let (port, _) = serve("127.0.0.1:0", Reply::Bytes(b"HTTP/1.1 200 OK\r\n\r\n")).await;
    let p = HttpProbe::new(&url(port, "/"), Some(204), None).unwrap();
    assert_eq!(
        p.check(T).await,
        Err("GET / -> 200 (expected 204)".to_owned())
    );
}

#[tokio::test]
async fn http_garbage_is_not_a_response() {
    let (port, _) = serve("127.0.0.1:0", Reply::Bytes(b"SSH-2.0-OpenSSH_9.6\r\n")).await;
    let p = HttpProbe::new(&url(port, "/"), None, None).unwrap();
    let err = p.check(T).await.unwrap_err();
    assert_eq!(
        err,
        "GET / -> not an HTTP response: \"SSH-2.0-OpenSSH_9.6\""
    );
}

#[tokio::test]
async fn http_endless_status_line_is_cut_off() {
    static LONG: [u8; 4096] = [b'H'; 4096];
    let (port, _) = serve("127.0.0.1:0", Reply::Bytes(&LONG)).await;
    let p = HttpProbe::new(&url(port, "/"), None, None).unwrap();
    let err = p.check(T).await.unwrap_err();
    assert!(err.contains("status line longer than"), "{err}");
}

#[tokio::test]
async fn http_silent_server_times_out_within_the_timeout() {
    let (port, seen) = serve("127.0.0.1:0", Reply::Silent).await;
    let p = HttpProbe::new(&url(port, "/slow"), None, None).unwrap();
    let t0 = Instant::now();
    let err = p.check(Duration::from_millis(300)).await.unwrap_err();
    let took = t0.elapsed();
    assert_eq!(err, "GET /slow: timed out after 300ms");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "the request was sent");
}

#[tokio::test]
async fn http_closed_without_response() {
    let (port, _) = serve("127.0.0.1:0", Reply::Close).await;
    let p = HttpProbe::new(&url(port, "/"), None, None).unwrap();
    let err = p.check(T).await.unwrap_err();
    // Either we saw EOF, or the write/read hit the reset.
    assert!(
        err == "GET /: connection closed without a response"
            || err.starts_with("GET /: connection reset"),
        "{err}"
    );
}

#[tokio::test]
async fn http_refused() {
    // Reserved: nothing else may be listening there.
    let ports = support::ports::reserve();
    let port = ports.port(0);
    let p = HttpProbe::new(&url(port, "/healthz/"), None, None).unwrap();
    assert_eq!(
        p.check(T).await,
        Err(format!("connect 127.0.0.1:{port}: connection refused"))
    );
}

#[tokio::test]
async fn http_localhost_and_ipv6() {
    let (port, _) = serve(
        "127.0.0.1:0",
        Reply::Bytes(b"HTTP/1.1 204 No Content\r\n\r\n"),
    )
    .await;
    let p = HttpProbe::new(&format!("http://localhost:{port}/"), None, None).unwrap();
    assert_eq!(p.check(T).await, Ok(()));

    match TcpListener::bind("[::1]:0").await {
        Ok(l) => {
            drop(l);
            let (port, _) = serve("[::1]:0", Reply::Bytes(b"HTTP/1.1 200 OK\r\n\r\n")).await;
            let p = HttpProbe::new(&format!("http://[::1]:{port}/"), None, None).unwrap();
            assert_eq!(p.check(T).await, Ok(()));
        }
        // No IPv6 loopback on this machine: the probe must say so, not hang.
        Err(_) => {
            let p = HttpProbe::new("http://[::1]:8000/", None, None).unwrap();
            let err = p.check(T).await.unwrap_err();
            assert!(err.starts_with("connect [::1]:8000: "), "{err}");
        }
    }
}

#[tokio::test]
async fn tcp_accepted_and_refused() {
    // A reserved port: once the listener is gone, no other test's bind(0)
    // can take it before the refused probe.
    let ports = support::ports::reserve();
    let port = ports.port(0);
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let p = TcpProbe::new(&format!("127.0.0.1:{port}")).unwrap();
    assert_eq!(p.check(T).await, Ok(()));
    drop(listener);
    assert_eq!(
        p.check(T).await,
        Err(format!("connect 127.0.0.1:{port}: connection refused"))
    );
}

#[tokio::test]
async fn exec_exit_codes_and_output() {
    let pids = ExecPids::default();
    assert_eq!(probe::exec(&request(&["true"]), T, &pids).await, Ok(()));
    assert_eq!(
        probe::exec(&request(&["true"]), Duration::MAX, &pids).await,
        Ok(()),
        "a huge timeout"
    );
    assert!(pids.snapshot().is_empty(), "reaped, so no longer listed");
    assert_eq!(
        probe::exec(&request(&["false"]), T, &pids).await,
        Err("exit code 1".to_owned())
    );
    let req = request(&[
        "sh",
        "-c",
        "echo starting; echo 'db: no response' >&2; exit 2",
    ]);
    assert_eq!(
        probe::exec(&req, T, &pids).await,
        Err("exit code 2: db: no response".to_owned())
    );
    let req = request(&["sh", "-c", "kill -SEGV $$"]);
    assert_eq!(
        probe::exec(&req, T, &pids).await,
        Err("killed by SIGSEGV".to_owned())
    );
    let err = probe::exec(&request(&["no-such-probe-xyz"]), T, &pids)
        .await
        .unwrap_err();
    assert!(err.contains("not found on PATH"), "{err}");
}

/// Polls a running probe future until its pid is listed in `pids`.
async fn listed_pid<F: std::future::Future + Unpin>(probe: &mut F, pids: &ExecPids) -> i32
where
    F::Output: std::fmt::Debug,
{
    loop {
        tokio::select! {
            r = &mut *probe => panic!("finished before being seen: {r:?}"),
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                if let [pid] = pids.snapshot()[..] {
                    return pid;
                }
            }
        }
    }
}

#[tokio::test]
async fn exec_timeout_kills_the_whole_group() {
    let pids = ExecPids::default();
    let req = request(&["sh", "-c", "sleep 300 & sleep 300"]);
    let t0 = Instant::now();
    let mut probe = Box::pin(probe::exec(&req, Duration::from_millis(300), &pids));
    let pgid = listed_pid(&mut probe, &pids).await;
    assert_eq!(probe.await, Err("timed out after 300ms".to_owned()));
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(!pids.contains(pgid), "unlisted once reaped");
    assert!(
        wait_until(Duration::from_secs(5), || group_members(pgid).is_empty()),
        "left behind: {:?}",
        group_members(pgid)
    );
}

#[tokio::test]
async fn exec_success_leaves_nothing_behind() {
    let pids = ExecPids::default();
    // The probe passes, but leaves a background process in its group; it
    // waits a moment so that the test sees its pid while it runs.
    let req = request(&["sh", "-c", "sleep 300 & sleep 0.3; exit 0"]);
    let t0 = Instant::now();
    let mut probe = Box::pin(probe::exec(&req, T, &pids));
    let pgid = listed_pid(&mut probe, &pids).await;
    assert_eq!(probe.await, Ok(()));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "did not wait for the pipe the background sleep holds: {:?}",
        t0.elapsed()
    );
    assert!(
        wait_until(Duration::from_secs(5), || group_members(pgid).is_empty()),
        "left behind: {:?}",
        group_members(pgid)
    );
}

#[tokio::test]
async fn exec_chatty_probe_does_not_block_on_its_pipe() {
    // 1 MiB of output: more than a pipe holds, so it must be drained.
    let pids = ExecPids::default();
    let req = request(&[
        "sh",
        "-c",
        "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo done; exit 3",
    ]);
    assert_eq!(
        probe::exec(&req, T, &pids).await,
        Err("exit code 3: done".to_owned())
    );
}

#[tokio::test]
async fn exec_dropped_mid_run_kills_its_group() {
    let pids = ExecPids::default();
    let req = request(&["sh", "-c", "sleep 300 & sleep 300"]);
    let task = {
        let pids = pids.clone();
        tokio::spawn(async move { probe::exec(&req, Duration::from_secs(600), &pids).await })
    };
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let [pid] = pids.snapshot()[..] {
                // Wait for the background sleep to exist too.
                if group_members(pid).len() >= 2 {
                    return pid;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the probe runs");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(pids.snapshot().is_empty(), "unlisted when dropped");
    assert!(
        wait_until(Duration::from_secs(5), || group_members(seen).is_empty()),
        "left behind: {:?}",
        group_members(seen)
    );
}

#[tokio::test]
async fn a_passing_probe_names_the_address_that_answered() {
    // The engine checks whose listener that address is (health::owner).
    let (port, _) = serve("127.0.0.1:0", Reply::Bytes(b"HTTP/1.1 200 OK\r\n\r\n")).await;
    let answered: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let p = HttpProbe::new(&format!("http://localhost:{port}/"), None, None).unwrap();
    assert_eq!(p.check_peer(T).await, Ok(answered));
    let p = TcpProbe::new(&format!("localhost:{port}")).unwrap();
    assert_eq!(p.check_peer(T).await, Ok(answered));
    let p = HttpProbe::new(&format!("http://127.0.0.1:{port}/"), Some(204), None).unwrap();
    assert!(
        p.check_peer(T).await.is_err(),
        "a failing probe names nothing"
    );
}
