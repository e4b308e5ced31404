//! A throwaway S3-compatible server (moto's `moto_server`) for integration tests.
//!
//! `S3Server::start()` runs `moto_server -H 127.0.0.1 -p PORT` on a free port of 127.0.0.1
//! ([`ServerProcess`]) and kills it on Drop. moto keeps everything in memory: a stopped server
//! has lost its buckets, and `restart` brings up an empty one on the same port.
//!
//! Environment variables are process-global, so this module never sets any: child processes
//! get the `AWS_*` settings through `configure` (`Command::envs`), and in-process uploads use
//! a store built with explicit settings (`store`).
#![allow(dead_code)]

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

use super::server::{ServerProcess, http_expecting, on_path};
use super::stores::{StoreServer, count_gets, without_inherited};

const INSTALL_HINT: &str = "install moto: pip install 'moto[server]'";

/// Credentials moto accepts (it does not check them) and the region it defaults to.
const ACCESS_KEY_ID: &str = "testing";
const SECRET_ACCESS_KEY: &str = "testing";
const REGION: &str = "us-east-1";

pub struct S3Server {
    server: ServerProcess,
}

impl S3Server {
    /// The settings a client of this server needs, as `AWS_*` environment variables.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ENDPOINT", self.server.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

impl StoreServer for S3Server {
    const NAME: &'static str = "S3";
    const SCHEME: &'static str = "s3";

    fn start() -> S3Server {
        let program = moto_program();
        S3Server {
            server: ServerProcess::start("moto_server", move |port, _| {
                let mut command = Command::new(&program[0]);
                command.args(&program[1..]);
                command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                command
            }),
        }
    }

    fn process(&self) -> &ServerProcess {
        &self.server
    }

    fn process_mut(&mut self) -> &mut ServerProcess {
        &mut self.server
    }

    /// Removes every inherited `AWS_*` variable (a developer's profile must not redirect the
    /// child) and sets [`S3Server::client_env`].
    fn configure<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        without_inherited(command, &["AWS_"]).envs(self.client_env())
    }

    /// A plain HTTP `PUT /bucket`: moto checks no signature.
    fn create_bucket(&self, bucket: &str) {
        let what = format!("creating bucket {bucket} on moto");
        let path = format!("/{bucket}");
        http_expecting(200, &what, (self.port(), "PUT", &path), &[], b"");
    }

    fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(self.server.endpoint())
                .with_allow_http(true)
                .with_region(REGION)
                .with_access_key_id(ACCESS_KEY_ID)
                .with_secret_access_key(SECRET_ACCESS_KEY)
                .build()
                .expect("S3 store for moto"),
        )
    }

    fn gets_logged(&self, bucket: &str, prefix: &str) -> usize {
        count_gets(&self.server.log(), &format!("/{bucket}/{prefix}"))
    }
}

/// `moto_server`, or `python3 -m moto.server` when the script is not on PATH (a Python
/// installation whose scripts directory is not); panics with the install hint without moto.
fn moto_program() -> Vec<OsString> {
    if let Some(program) = on_path("moto_server") {
        return vec![program.into()];
    }
    let module = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !module {
        panic!("moto_server is not on PATH and python3 cannot import moto.server: {INSTALL_HINT}");
    }
    ["python3", "-m", "moto.server"].map(OsString::from).into()
}
