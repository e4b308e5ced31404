//! A throwaway Azure Blob Storage emulator (Azurite's `azurite-blob`) for integration tests.
//!
//! `AzureServer::start()` runs `azurite-blob --blobHost 127.0.0.1 --blobPort PORT
//! --inMemoryPersistence --disableTelemetry` ([`ServerProcess`]; a stopped server has lost its
//! containers, as moto loses its buckets). Clients reach it as the README says: the child gets
//! `AZURE_STORAGE_USE_EMULATOR=true` and `AZURITE_BLOB_STORAGE_URL`; the in-process store is
//! configured explicitly with Azurite's well-known account and key.
#![allow(dead_code)]

use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use object_store::ObjectStore;
use object_store::azure::MicrosoftAzureBuilder;

use super::server::{ServerProcess, http_expecting, on_path};
use super::stores::{StoreServer, count_gets, without_inherited};

const INSTALL_HINT: &str = "install Azurite: npm install -g azurite";

/// Azurite's well-known development account and its key (public, documented by Microsoft).
const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The Blob service version the container creation speaks.
const SERVICE_VERSION: &str = "2021-08-06";

pub struct AzureServer {
    server: ServerProcess,
}

impl AzureServer {
    /// The settings a client of this server needs, as environment variables.
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            ("AZURITE_BLOB_STORAGE_URL", self.server.endpoint()),
        ]
    }
}

impl StoreServer for AzureServer {
    const NAME: &'static str = "Azure";
    const SCHEME: &'static str = "az";

    fn start() -> AzureServer {
        let program = on_path("azurite-blob")
            .unwrap_or_else(|| panic!("azurite-blob is not on PATH: {INSTALL_HINT}"));
        AzureServer {
            server: ServerProcess::start("azurite-blob", move |port, _| {
                let mut command = Command::new(&program);
                command
                    .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                    .args(["--inMemoryPersistence", "--disableTelemetry"]);
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

    fn configure<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        without_inherited(command, &["AZURE_", "AZURITE_"]).envs(self.client_env())
    }

    /// `PUT /ACCOUNT/CONTAINER?restype=container`, signed with the account key (Shared Key).
    fn create_bucket(&self, container: &str) {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let resource = format!("/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container");
        let signature = shared_key_signature("PUT", &date, &resource);
        let authorization = format!("SharedKey {ACCOUNT}:{signature}");
        let headers = [
            ("x-ms-date", date.as_str()),
            ("x-ms-version", SERVICE_VERSION),
            ("Authorization", authorization.as_str()),
        ];
        let path = format!("/{ACCOUNT}/{container}?restype=container");
        let what = format!("creating container {container} on Azurite");
        http_expecting(201, &what, (self.port(), "PUT", &path), &headers, b"");
    }

    fn store(&self, container: &str) -> Arc<dyn ObjectStore> {
        Arc::new(
            MicrosoftAzureBuilder::new()
                .with_account(ACCOUNT)
                .with_access_key(ACCOUNT_KEY)
                .with_container_name(container)
                .with_endpoint(format!("{}/{ACCOUNT}", self.server.endpoint()))
                .with_allow_http(true)
                .build()
                .expect("Azure store for Azurite"),
        )
    }

    fn gets_logged(&self, container: &str, prefix: &str) -> usize {
        count_gets(
            &self.server.log(),
            &format!("/{ACCOUNT}/{container}/{prefix}"),
        )
    }
}

/// The Shared Key signature of a request without a body, content headers or conditions:
/// base64(HMAC-SHA256(key, string to sign)).
fn shared_key_signature(verb: &str, date: &str, canonical_resource: &str) -> String {
    // The verb, then eleven standard headers left empty (Content-Length 0 is written empty).
    let string_to_sign = format!(
        "{verb}\n{}x-ms-date:{date}\nx-ms-version:{SERVICE_VERSION}\n{canonical_resource}",
        "\n".repeat(11)
    );
    let key = BASE64.decode(ACCOUNT_KEY).expect("base64 account key");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC key");
    mac.update(string_to_sign.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}
