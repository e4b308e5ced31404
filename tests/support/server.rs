//! A throwaway server process for integration tests, and the bits of HTTP the tests speak to it.
//!
//! [`ServerProcess::start`] runs a command on a free port of 127.0.0.1, in a temp dir of its own
//! that also holds its output (`server.log`), returns once the port answers HTTP (any status),
//! and kills the process on Drop, even when the test fails. [`ServerProcess::restart`] brings a
//! new one up on the same port. The object-store servers (`s3.rs`, `gcs.rs`, `azure.rs`) are
//! built on it. Only std is used.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: usize = 5;

/// Builds the server's command line for a port, in the server's own directory.
type CommandLine = Box<dyn Fn(u16, &Path) -> Command>;

pub struct ServerProcess {
    name: &'static str,
    command_line: CommandLine,
    child: Option<Child>,
    port: u16,
    /// The server's working directory; `server.log` holds its stdout and stderr.
    dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `name` with `command_line(port, dir)` on a free port and waits until it answers.
    pub fn start(
        name: &'static str,
        command_line: impl Fn(u16, &Path) -> Command + 'static,
    ) -> ServerProcess {
        let mut server = ServerProcess {
            name,
            command_line: Box::new(command_line),
            child: None,
            port: 0,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let mut last_failure = String::new();
        // A port taken between probing it and the server binding it: try another one.
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) => {
                    last_failure = e;
                    server.stop();
                }
            }
        }
        panic!("could not start {name}: {last_failure}");
    }

    /// Stops the server and starts a new one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    panic!("could not restart {} on port {}: {e}", self.name, self.port)
                }
                Err(_) => {
                    self.stop();
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Kills the server; its port then refuses connections. Also called from Drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log file");
        let mut command = (self.command_line)(self.port, self.dir.path());
        let child = command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {command:?}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(self.failure(&format!("exited ({status})")));
            }
            if http(self.port, "GET", "/", &[], b"").is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("not ready after {READY_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn failure(&self, what: &str) -> String {
        format!(
            "{} on port {} {what}:\n{}",
            self.name,
            self.port,
            self.log()
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The program `name` if it is on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// One HTTP/1.1 request that must answer `expected`; panics naming `what` otherwise.
pub fn http_expecting(
    expected: u16,
    what: &str,
    (port, method, path): (u16, &str, &str),
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let (status, answer) =
        http(port, method, path, headers, body).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(status, expected, "{what}: {answer}");
}

/// One HTTP/1.1 request; returns the status and the body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String), String> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .and_then(|_| stream.set_write_timeout(Some(Duration::from_secs(10))))
        .map_err(|e| e.to_string())?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream
        .write_all(request.as_bytes())
        .and_then(|_| stream.write_all(body))
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("receive: {e}"))?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The ports this test process has handed out. A stopped server keeps its port for a restart,
/// and the tests of one binary run at once: a port handed out once is never handed out again,
/// or a test could start its server on a port another test's server is about to return to,
/// find that server answering, and use it as its own.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A TCP port of 127.0.0.1 that was free a moment ago and that no other test of this process
/// was given.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("binding 127.0.0.1:0 to find a free port");
        if claim_port(port) {
            return port;
        }
    }
}

/// Records `port`, bound some other way, as handed out; false if it already was.
pub fn claim_port(port: u16) -> bool {
    HANDED_OUT.lock().unwrap().insert(port)
}
