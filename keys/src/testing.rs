//! Test certificates made as operators make theirs, with the `openssl` command: a root CA, an
//! intermediate it signed, leaves the intermediate signed, revocation lists, bundles. For this
//! crate's tests and the host's (feature `testing`); nothing of the host uses it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `openssl genpkey`-style key commands (`-out` is added after the first word).
pub const EC: &[&str] = &["ecparam", "-name", "prime256v1", "-genkey", "-noout"];
/// An RSA key in PKCS#8.
pub const RSA_PKCS8: &[&str] = &[
    "genpkey",
    "-algorithm",
    "RSA",
    "-pkeyopt",
    "rsa_keygen_bits:2048",
];
/// An RSA key in PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub const RSA_PKCS1: &[&str] = &["genrsa", "-traditional", "2048"];
/// A P-384 key in PKCS#8.
pub const EC_PKCS8: &[&str] = &[
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-384",
];
/// An Ed25519 key.
pub const ED25519: &[&str] = &["genpkey", "-algorithm", "ed25519"];

/// Runs `openssl ARGS…` in `dir`; panics with its error output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl s_client` to `address` asking for `sni` (and offering `alpn`), verifying the
/// server against `ca`, presenting the client certificate `identity` (certificate, key) if
/// any, and sending `request`; everything it printed (the handshake's report, the answer).
pub fn s_client(
    address: std::net::SocketAddr,
    sni: &str,
    ca: &Path,
    alpn: Option<&str>,
    identity: Option<(&Path, &Path)>,
    request: &str,
) -> String {
    use std::io::Write as _;
    let mut command = Command::new("openssl");
    command
        .args([
            "s_client",
            "-connect",
            &address.to_string(),
            "-servername",
            sni,
        ])
        .arg("-CAfile")
        .arg(ca)
        .args(["-verify_return_error", "-ign_eof"]);
    if let Some((cert, key)) = identity {
        command.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    if let Some(alpn) = alpn {
        command.args(["-alpn", alpn]);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.as_bytes());
    let output = child.wait_with_output().expect("s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A folder with a root CA (`root.pem`, `root.key`) and an intermediate it signed (`int.pem`,
/// `int.key`); removed when dropped.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Makes the root and the intermediate.
    pub fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let dir = pki.dir.path();
        std::fs::write(
            dir.join("ca.ext"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n",
        )
        .expect("write");
        let root = "-x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem -days 30";
        openssl(
            dir,
            &words(&format!("req {root}"), &["-subj", "/CN=Test Root CA"]),
        );
        let csr = "req -newkey rsa:2048 -nodes -keyout int.key -out int.csr";
        openssl(dir, &words(csr, &["-subj", "/CN=Test Intermediate"]));
        openssl(
            dir,
            &words(
                "x509 -req -in int.csr -CA root.pem -CAkey root.key -CAcreateserial -out int.pem \
                 -days 30 -extfile ca.ext",
                &[],
            ),
        );
        pki
    }

    /// `name` in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The bytes of `name`.
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read")
    }

    /// The bytes of `names`, one after the other.
    pub fn concat(&self, names: &[&str]) -> Vec<u8> {
        names.iter().flat_map(|name| self.read(name)).collect()
    }

    /// A leaf `<cn>.pem` for `cn` (its subject upper-cased, its DNS names `cn` and `alt.<cn>`)
    /// signed by the intermediate, with its key `<cn>.key` made by `genkey`.
    pub fn leaf(&self, cn: &str, genkey: &[&str]) {
        let dir = self.dir.path();
        let key = format!("{cn}.key");
        // `-out` first: genrsa wants its bit count last.
        let mut args: Vec<&str> = vec![genkey[0], "-out", &key];
        args.extend(&genkey[1..]);
        openssl(dir, &args);
        let ext = format!("{cn}.ext");
        std::fs::write(
            dir.join(&ext),
            format!("subjectAltName=DNS:{cn},DNS:alt.{cn}\n"),
        )
        .expect("write");
        let (csr, pem) = (format!("{cn}.csr"), format!("{cn}.pem"));
        let subject = format!("/CN={}", cn.to_uppercase());
        openssl(
            dir,
            &["req", "-new", "-key", &key, "-out", &csr, "-subj", &subject],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "int.pem",
                "-CAkey",
                "int.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "30",
                "-extfile",
                &ext,
            ],
        );
    }

    /// `<cn>.p12`: the leaf, its key and the intermediate as OpenSSL 3 exports them by default,
    /// without a pass phrase.
    pub fn pkcs12(&self, cn: &str) -> Vec<u8> {
        let (key, pem, out) = (
            format!("{cn}.key"),
            format!("{cn}.pem"),
            format!("{cn}.p12"),
        );
        openssl(
            self.dir.path(),
            &[
                "pkcs12",
                "-export",
                "-inkey",
                &key,
                "-in",
                &pem,
                "-certfile",
                "int.pem",
                "-passout",
                "pass:",
                "-out",
                &out,
            ],
        );
        self.read(&out)
    }

    /// Writes `<ca>`'s `openssl ca` database (once), for revocations and revocation lists.
    fn database(&self, ca: &str) -> String {
        let dir = self.dir.path();
        let config = format!("{ca}.cnf");
        if !dir.join(&config).exists() {
            std::fs::write(dir.join(format!("{ca}.index")), "").expect("index");
            std::fs::write(dir.join(format!("{ca}.crlnumber")), "1000\n").expect("crlnumber");
            std::fs::write(
                dir.join(&config),
                format!(
                    "[ca]\ndefault_ca = this\n[this]\ndatabase = {ca}.index\n\
                     crlnumber = {ca}.crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n"
                ),
            )
            .expect("config");
        }
        config
    }

    /// Revokes `<cert>.pem`, which `<ca>` signed (`root` or `int`): the next [`Pki::crl`] of
    /// that CA lists it.
    pub fn revoke(&self, ca: &str, cert: &str) {
        let config = self.database(ca);
        let (key, ca_cert, revoked) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("{cert}.pem"),
        );
        openssl(
            self.dir.path(),
            &[
                "ca", "-config", &config, "-revoke", &revoked, "-keyfile", &key, "-cert", &ca_cert,
            ],
        );
    }

    /// `<ca>.crl`: the revocation list of `<ca>` (`root` or `int`), signed with `<ca>.key`,
    /// listing what [`Pki::revoke`] revoked.
    pub fn crl(&self, ca: &str) -> Vec<u8> {
        let config = self.database(ca);
        let (key, cert, out) = (
            format!("{ca}.key"),
            format!("{ca}.pem"),
            format!("{ca}.crl"),
        );
        openssl(
            self.dir.path(),
            &[
                "ca", "-config", &config, "-gencrl", "-keyfile", &key, "-cert", &cert, "-out", &out,
            ],
        );
        self.read(&out)
    }
}

/// `openssl s_server -www`, answering every request with its report; stopped when dropped.
pub struct SServer {
    /// Where it listens.
    pub address: std::net::SocketAddr,
    child: std::process::Child,
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pki {
    /// `openssl s_server -www` on a free port of `ip`, serving `<cert>` with `<key>` and the
    /// intermediate as its chain.
    pub fn s_server(&self, ip: std::net::IpAddr, cert: &str, key: &str) -> SServer {
        let address = std::net::TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &address.to_string(),
                "-www",
                "-quiet",
            ])
            .arg("-cert")
            .arg(self.path(cert))
            .arg("-key")
            .arg(self.path(key))
            .arg("-cert_chain")
            .arg(self.path("int.pem"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let server = SServer { address, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "s_server did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        server
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// `command`'s words, then `more`.
fn words<'a>(command: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    command
        .split_whitespace()
        .chain(more.iter().copied())
        .collect()
}
