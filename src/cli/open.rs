//! `--open`: serves the written trace on 127.0.0.1 and points the Perfetto UI at it, as
//! Perfetto's own `open_trace_in_ui` does — the UI's deep link `#!/?url=` fetches the file from
//! the one local port its content policy allows, with a CORS header naming the UI's origin.

use anyhow::Result;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

use crate::error::{FailureKind, failure};

const UI: &str = "https://ui.perfetto.dev";
/// The only local port the Perfetto UI may fetch a trace from.
pub const PORT: u16 = 9001;
/// Tests serve on another port.
const PORT_ENV: &str = "WRITE_PERFETTO_OPEN_PORT";

/// Serves `trace` until the UI has fetched it once (or the user interrupts), after printing the
/// link on stderr and trying to open a browser on it when there is one.
pub fn serve_to_ui(trace: &Path, announce: &dyn Fn(&str)) -> Result<()> {
    let port = std::env::var(PORT_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(PORT);
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        failure(
            FailureKind::Io,
            format!("cannot serve the trace on 127.0.0.1:{port} ({e}): is another trace being served? open the file in the UI instead"),
        )
    })?;
    let name = trace
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trace".into());
    let link = format!("{UI}/#!/?url=http://127.0.0.1:{port}/{name}");
    announce(&format!(
        "open {link} (serving {} until the UI has fetched it; Ctrl-C to stop)",
        trace.display()
    ));
    open_browser(&link);
    for stream in listener.incoming() {
        if answer(stream?, trace, &name)? == Served::Trace {
            return Ok(());
        }
    }
    Ok(())
}

#[derive(PartialEq)]
enum Served {
    Trace,
    Other,
}

/// Answers one request: the trace for `GET /<name>`, the CORS preflight, else 404.
fn answer(stream: TcpStream, trace: &Path, name: &str) -> Result<Served> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let wanted = path.trim_start_matches('/') == name;
    let mut out = stream;
    let cors = format!("Access-Control-Allow-Origin: {UI}\r\n");
    match (method, wanted) {
        ("GET", true) => {
            let bytes = std::fs::read(trace)?;
            write!(
                out,
                "HTTP/1.1 200 OK\r\n{cors}Content-Type: application/octet-stream\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
                bytes.len()
            )?;
            out.write_all(&bytes)?;
            Ok(Served::Trace)
        }
        ("OPTIONS", _) => {
            write!(
                out,
                "HTTP/1.1 204 No Content\r\n{cors}Access-Control-Allow-Methods: GET\r\nAccess-Control-Allow-Headers: *\r\nConnection: close\r\n\r\n"
            )?;
            Ok(Served::Other)
        }
        _ => {
            write!(
                out,
                "HTTP/1.1 404 Not Found\r\n{cors}Content-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            Ok(Served::Other)
        }
    }
}

/// Opens the link in a browser when the session has a display and an opener; otherwise the
/// printed link is all there is.
fn open_browser(link: &str) {
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
    let opener = match std::env::consts::OS {
        "macos" => Some("open"),
        "linux" if has_display => Some("xdg-open"),
        _ => None,
    };
    if let Some(opener) = opener {
        let _ = std::process::Command::new(opener)
            .arg(link)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}
