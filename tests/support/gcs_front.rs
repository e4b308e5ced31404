//! The one request of the GCS XML API that fake-gcs-server lacks, supplied in front of it.
//!
//! write-perfetto stores a file on GCS with the XML API's single-request upload, `PUT
//! /BUCKET/OBJECT` with the data as the body (the object_store crate's `put`; documented at
//! cloud.google.com/storage/docs/xml-api/put-object-upload). fake-gcs-server serves the XML
//! API's GET, HEAD, DELETE and listing, but routes that PUT to its JSON API upload handler,
//! which answers `400 invalid uploadType` unless the URL carries a JSON API `uploadType` or a
//! signed URL's `X-Goog-Algorithm` (its issue #331, open since 2020; object_store's own test
//! setup runs a fork built from the pull request that adds it, #1164).
//!
//! [`XmlPutFront`] listens on its own port of 127.0.0.1 and passes every request through to the
//! emulator unchanged, except a plain PUT Object (no query string, no `x-goog-*` header such as
//! a precondition): that one becomes the emulator's JSON API media upload of the same bytes
//! under the same name (`POST /upload/storage/v1/b/BUCKET/o?uploadType=media&name=OBJECT`),
//! answered as the XML API answers it: 200, `ETag` and `x-goog-generation`, no body. The
//! emulator stores and serves the objects; the front only supplies the missing route.
//!
//! One thread per connection, std only; [`XmlPutFront::stop`] closes the port and every open
//! connection, as a server that dies would.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::server::free_port;

pub struct XmlPutFront {
    port: u16,
    /// The emulator's port.
    upstream: u16,
    running: Option<Running>,
    translated: Arc<AtomicUsize>,
}

/// A listener on a port from [`free_port`], so that the port stays the front's across a
/// restart; another one when an outside process took the port in the meantime.
fn bind_free_port() -> (TcpListener, u16) {
    loop {
        let port = free_port();
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return (listener, port);
        }
    }
}

/// The accepting thread and the connections it opened.
struct Running {
    stopping: Arc<AtomicBool>,
    clients: Arc<Mutex<Vec<TcpStream>>>,
    accepting: JoinHandle<()>,
}

impl XmlPutFront {
    /// Starts a front for the emulator on `upstream`, on a free port.
    pub fn start(upstream: u16) -> XmlPutFront {
        let (listener, port) = bind_free_port();
        let mut front = XmlPutFront {
            port,
            upstream,
            running: None,
            translated: Arc::default(),
        };
        front.serve(listener);
        front
    }

    /// Closes the port and every open connection. Also called from Drop.
    pub fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.stopping.store(true, Ordering::SeqCst);
        // Wake the accepting thread; it then drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = running.accepting.join();
        for client in running.clients.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let listener =
            TcpListener::bind(("127.0.0.1", self.port)).expect("rebinding the GCS front");
        self.serve(listener);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many PUT Object requests became media uploads.
    pub fn puts_translated(&self) -> usize {
        self.translated.load(Ordering::SeqCst)
    }

    fn serve(&mut self, listener: TcpListener) {
        let stopping = Arc::new(AtomicBool::new(false));
        let clients = Arc::new(Mutex::new(Vec::new()));
        let (upstream, translated) = (self.upstream, self.translated.clone());
        let accepting = {
            let (stopping, clients) = (stopping.clone(), clients.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    if let Ok(clone) = client.try_clone() {
                        clients.lock().unwrap().push(clone);
                    }
                    let translated = translated.clone();
                    std::thread::spawn(move || serve_client(client, upstream, &translated));
                }
            })
        };
        self.running = Some(Running {
            stopping,
            clients,
            accepting,
        });
    }
}

impl Drop for XmlPutFront {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Answers the requests of one keep-alive connection until the client closes it.
fn serve_client(client: TcpStream, upstream: u16, translated: &AtomicUsize) {
    let Ok(reading) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reading);
    let mut writer = client;
    while let Ok(Some(request)) = Message::read_request(&mut reader) {
        let response = match request.as_media_upload() {
            Some(upload) => {
                translated.fetch_add(1, Ordering::SeqCst);
                as_xml_put_response(exchange(upstream, &upload))
            }
            None => exchange(upstream, &request),
        };
        let head_only = request.start[0] == "HEAD";
        if response.write(&mut writer, head_only).is_err() {
            return;
        }
    }
}

/// An HTTP/1.x request or response: its start line's three parts, headers, body.
struct Message {
    start: [String; 3],
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    /// The next request of a connection; None when the client closed it. A body must come
    /// with a Content-Length (what object_store sends).
    fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Message>> {
        let Some((start, headers)) = read_head(reader)? else {
            return Ok(None);
        };
        let mut message = Message {
            start,
            headers,
            body: Vec::new(),
        };
        if message.header("transfer-encoding").is_some() {
            return Err(std::io::Error::other(
                "chunked request bodies are not supported",
            ));
        }
        let length = message.header("content-length").map_or(Ok(0), str::parse);
        let length = length.map_err(std::io::Error::other)?;
        message.body.resize(length, 0);
        reader.read_exact(&mut message.body)?;
        Ok(Some(message))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A plain XML API PUT Object as the emulator's JSON API media upload of the same body.
    fn as_media_upload(&self) -> Option<Message> {
        let [method, target, _] = &self.start;
        let plain = method == "PUT"
            && !target.contains('?')
            && !self
                .headers
                .iter()
                .any(|(n, _)| n.to_ascii_lowercase().starts_with("x-goog-"));
        let (bucket, object) = target.strip_prefix('/')?.split_once('/')?;
        if !plain || bucket.is_empty() || object.is_empty() {
            return None;
        }
        Some(Message {
            start: [
                "POST".into(),
                format!("/upload/storage/v1/b/{bucket}/o?uploadType=media&name={object}"),
                "HTTP/1.1".into(),
            ],
            headers: self.headers.clone(),
            body: self.body.clone(),
        })
    }

    /// Writes the response on the client's keep-alive connection, framed by Content-Length.
    fn write(&self, out: &mut impl Write, head_only: bool) -> std::io::Result<()> {
        let [_, code, reason] = &self.start;
        let mut head = format!("HTTP/1.1 {code} {reason}\r\n");
        for (name, value) in &self.headers {
            let framing = [
                "connection",
                "keep-alive",
                "transfer-encoding",
                "content-length",
            ];
            let keep = !framing.contains(&name.to_ascii_lowercase().as_str())
                || (head_only && name.eq_ignore_ascii_case("content-length"));
            if keep {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        if !head_only && !matches!(code.as_str(), "204" | "304") {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        if !head_only {
            out.write_all(&self.body)?;
        }
        out.flush()
    }
}

/// The start line (split in three) and the headers of a message; None at the end of the stream.
fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<([String; 3], Headers)>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.trim_end().splitn(3, ' ').map(String::from);
    let start = [(); 3].map(|_| parts.next().unwrap_or_default());
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Some((start, headers)))
}

type Headers = Vec<(String, String)>;

/// Sends `request` to the emulator on a connection of its own (HTTP/1.0: the response ends
/// with the connection, never chunked) and reads the whole response. An emulator that does
/// not answer gives a 502.
fn exchange(upstream: u16, request: &Message) -> Message {
    send(upstream, request).unwrap_or_else(|e| Message {
        start: ["HTTP/1.1".into(), "502".into(), "Bad Gateway".into()],
        headers: Vec::new(),
        body: format!("fake-gcs-server on port {upstream}: {e}").into_bytes(),
    })
}

fn send(upstream: u16, request: &Message) -> std::io::Result<Message> {
    let mut stream = TcpStream::connect(("127.0.0.1", upstream))?;
    let [method, target, _] = &request.start;
    let mut head = format!("{method} {target} HTTP/1.0\r\n");
    for (name, value) in &request.headers {
        if !["connection", "keep-alive"].contains(&name.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&request.body)?;
    let mut reader = BufReader::new(stream);
    let (start, headers) = read_head(&mut reader)?
        .ok_or_else(|| std::io::Error::other("closed without a response"))?;
    let mut body = Vec::new();
    reader.read_to_end(&mut body)?;
    Ok(Message {
        start,
        headers,
        body,
    })
}

/// The emulator's answer to a media upload (the object's JSON) as the XML API answers a PUT
/// Object: 200, the object's `ETag` and `x-goog-generation`, no body. Errors pass unchanged.
fn as_xml_put_response(upload: Message) -> Message {
    if upload.start[1] != "200" {
        return upload;
    }
    let object: serde_json::Value =
        serde_json::from_slice(&upload.body).unwrap_or(serde_json::Value::Null);
    let field = |name: &str| object[name].as_str().unwrap_or_default().to_string();
    Message {
        start: ["HTTP/1.1".into(), "200".into(), "OK".into()],
        headers: vec![
            ("ETag".into(), format!("\"{}\"", field("etag"))),
            ("x-goog-generation".into(), field("generation")),
        ],
        body: Vec::new(),
    }
}
