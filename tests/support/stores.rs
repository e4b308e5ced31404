//! What the object-store tests need of a store's server — S3 (moto, `s3.rs`), GCS
//! (fake-gcs-server, `gcs.rs`), Azure (Azurite, `azure.rs`) — and what they do with any of them:
//! upload a lake's payloads, list the keys stored.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use super::server::ServerProcess;

/// A throwaway server of one object store, on 127.0.0.1, stopped on Drop.
pub trait StoreServer: Sized {
    /// How messages name the store: "S3", "GCS", "Azure".
    const NAME: &'static str;
    /// The scheme of its URLs: "s3", "gs", "az".
    const SCHEME: &'static str;

    /// Starts a server on a free port and waits until it answers.
    fn start() -> Self;

    /// The server's process.
    fn process(&self) -> &ServerProcess;
    fn process_mut(&mut self) -> &mut ServerProcess;

    /// Stops the server: its port refuses connections.
    fn stop(&mut self) {
        self.process_mut().stop();
    }

    /// Brings up an empty server on the same port (what a stopped server held is lost).
    fn restart(&mut self) {
        self.process_mut().restart();
    }

    /// The port write-perfetto connects to (its errors name `127.0.0.1:PORT`).
    fn port(&self) -> u16 {
        self.process().port()
    }

    /// The object store URL of `prefix` in `bucket`.
    fn url(&self, bucket: &str, prefix: &str) -> String {
        format!("{}://{bucket}/{prefix}", Self::SCHEME)
    }

    /// Points a child process at this server with the environment variables the README names;
    /// inherited ones of the same store are removed (a developer's settings must not redirect it).
    fn configure<'c>(&self, command: &'c mut Command) -> &'c mut Command;

    /// Creates a bucket (a container, for Azure).
    fn create_bucket(&self, bucket: &str);

    /// An in-process client of `bucket`, configured explicitly (environment variables are
    /// process-global: tests never set any).
    fn store(&self, bucket: &str) -> Arc<dyn ObjectStore>;

    /// How many GETs of keys under `bucket/prefix` the server has logged so far.
    fn gets_logged(&self, bucket: &str, prefix: &str) -> usize;
}

/// Removes the inherited environment variables whose names start with one of `prefixes`.
pub fn without_inherited<'c>(command: &'c mut Command, prefixes: &[&str]) -> &'c mut Command {
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| prefixes.iter().any(|p| k.starts_with(p)))
        {
            command.env_remove(key);
        }
    }
    command
}

/// How many lines of an access log are GETs of a path starting with `path_prefix`.
pub fn count_gets(log: &str, path_prefix: &str) -> usize {
    log.matches(&format!("GET {path_prefix}")).count()
}

/// Creates `bucket` on `server` and uploads every file under `dir` to it, keyed
/// `prefix/<path relative to dir>`. Returns how many files were uploaded.
pub fn load_dir(server: &impl StoreServer, bucket: &str, prefix: &str, dir: &Path) -> usize {
    server.create_bucket(bucket);
    let store = server.store(bucket);
    super::lake::runtime().block_on(upload_dir(store.as_ref(), prefix, dir))
}

/// Uploads every file under `dir`, keyed `prefix/<path relative to dir>`; returns how many.
pub async fn upload_dir(store: &dyn ObjectStore, prefix: &str, dir: &Path) -> usize {
    let mut count = 0;
    for file in files_under(dir) {
        let relative = file.strip_prefix(dir).unwrap();
        let key = format!(
            "{}/{}",
            prefix.trim_matches('/'),
            relative.to_str().expect("UTF-8 path")
        );
        let data = std::fs::read(&file).unwrap();
        store
            .put(&ObjectPath::from(key.as_str()), data.into())
            .await
            .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
        count += 1;
    }
    count
}

/// The keys under `prefix`, sorted.
pub async fn list(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let prefix = ObjectPath::from(prefix);
    let mut keys: Vec<String> = store
        .list(Some(&prefix))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("listing {prefix}: {e}"));
    keys.sort();
    keys
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}
