//! Key material one `apply` call may have sent to its device: the files a load balancer's TLS
//! names, by the random handles its `tls-file`s carry. The driver holds the handles, never the
//! bytes; `device-api.send-certificate` turns a handle into a `PUT` of the file to the load
//! balancer's own device ([`crate::scope`]) at a path its grant names for certificates
//! ([`crate::manifest::Grant::certificate_path`]), and answers the status alone.

use std::collections::HashMap;
use std::sync::Arc;

use zeroize::Zeroizing;

/// One PEM file of key material.
pub struct CertificateFile {
    pem: Zeroizing<Vec<u8>>,
    /// What the audit log says the file was (a fingerprint, never the bytes).
    described: String,
    /// The base64 lines of its private key: scrubbed from every device answer of the call,
    /// so a device that hands back what it was sent hands the driver no key.
    key_lines: Vec<Zeroizing<String>>,
}

impl CertificateFile {
    /// The file's bytes, for the request body.
    pub(crate) fn pem(&self) -> &[u8] {
        &self.pem
    }

    /// What the audit log says the file was.
    pub(crate) fn described(&self) -> &str {
        &self.described
    }
}

/// The files of one call, by handle. Cloning shares them; the bytes are wiped when the last
/// clone goes.
#[derive(Clone, Default)]
pub struct CertificateFiles {
    files: HashMap<String, Arc<CertificateFile>>,
}

impl CertificateFiles {
    /// Adds a file and answers its handle: 128 random bits, in hex. `described` is what the
    /// audit log may say of it (e.g. its certificate's fingerprint).
    pub fn add(&mut self, pem: Zeroizing<Vec<u8>>, described: String) -> String {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).expect("the operating system's random numbers");
        let handle = hex::encode(random);
        let key_lines = key_lines(&pem);
        self.files.insert(
            handle.clone(),
            Arc::new(CertificateFile {
                pem,
                described,
                key_lines,
            }),
        );
        handle
    }

    /// The base64 lines of every private key of the call's files.
    pub(crate) fn key_lines(&self) -> impl Iterator<Item = &str> {
        self.files
            .values()
            .flat_map(|file| file.key_lines.iter().map(|line| line.as_str()))
    }

    /// The file `handle` names in this call.
    pub(crate) fn get(&self, handle: &str) -> Option<&CertificateFile> {
        self.files.get(handle).map(Arc::as_ref)
    }

    /// How many files there are.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// Lines shorter than this are not searched for: too short to be worth a key, and they would
/// mangle ordinary answers.
const SHORTEST_KEY_LINE: usize = 16;

/// The base64 lines inside the `PRIVATE KEY` blocks of `pem`.
fn key_lines(pem: &[u8]) -> Vec<Zeroizing<String>> {
    let text = String::from_utf8_lossy(pem);
    let mut inside = false;
    let mut lines = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN") {
            inside = line.contains("PRIVATE KEY");
        } else if line.starts_with("-----END") {
            inside = false;
        } else if inside && line.len() >= SHORTEST_KEY_LINE {
            lines.push(Zeroizing::new(line.to_owned()));
        }
    }
    lines
}

impl std::fmt::Debug for CertificateFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.files.iter().map(|(h, file)| (h, &file.described)))
            .finish()
    }
}
