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
