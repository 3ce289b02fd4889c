//! Bundles made as operators make them, with the `openssl` command (PEM in every key encoding,
//! PKCS#12 in OpenSSL 3's default, legacy and unencrypted forms), read and checked as Octavia
//! checks a certificate reference; and secrets sealed, opened, moved and tampered with.

use std::path::{Path, PathBuf};
use std::process::Command;

use lbaas_keys::{Bundle, CertError, SealError, Sealer};

/// A folder of test certificates: a root, an intermediate signed by it, and leaves.
struct Pki {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
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

impl Pki {
    fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let dir = pki.dir.path();
        std::fs::write(
            dir.join("ca.ext"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n",
        )
        .expect("write");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "root.key",
                "-out",
                "root.pem",
                "-days",
                "30",
                "-subj",
                "/CN=Test Root CA",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "int.key",
                "-out",
                "int.csr",
                "-subj",
                "/CN=Test Intermediate",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "int.csr",
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-CAcreateserial",
                "-out",
                "int.pem",
                "-days",
                "30",
                "-extfile",
                "ca.ext",
            ],
        );
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read")
    }

    /// A leaf for `cn` signed by the intermediate, with its key made by `genkey` (an openssl
    /// command line writing `<cn>.key`).
    fn leaf(&self, cn: &str, genkey: &[&str]) {
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
        let subj = format!("/CN={}", cn.to_uppercase());
        openssl(
            dir,
            &["req", "-new", "-key", &key, "-out", &csr, "-subj", &subj],
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

    fn concat(&self, names: &[&str]) -> Vec<u8> {
        names.iter().flat_map(|name| self.read(name)).collect()
    }
}

const EC: &[&str] = &["ecparam", "-name", "prime256v1", "-genkey", "-noout"];
const RSA_PKCS8: &[&str] = &[
    "genpkey",
    "-algorithm",
    "RSA",
    "-pkeyopt",
    "rsa_keygen_bits:2048",
];
const RSA_PKCS1: &[&str] = &["genrsa", "-traditional", "2048"];
const EC_PKCS8: &[&str] = &[
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-384",
];
const ED25519: &[&str] = &["genpkey", "-algorithm", "ed25519"];

#[test]
fn pem_bundles_in_every_key_encoding_and_any_order() {
    let pki = Pki::new();
    for (cn, genkey) in [
        ("sec1.example.com", EC),
        ("pkcs1.example.com", RSA_PKCS1),
        ("pkcs8.example.com", RSA_PKCS8),
        ("p384.example.com", EC_PKCS8),
        ("ed.example.com", ED25519),
    ] {
        pki.leaf(cn, genkey);
        let (pem, key) = (format!("{cn}.pem"), format!("{cn}.key"));
        // In order, backwards, and with the root: always the leaf, then its chain in order.
        for order in [
            vec![pem.as_str(), "int.pem", key.as_str()],
            vec![key.as_str(), "int.pem", pem.as_str()],
            vec!["root.pem", key.as_str(), pem.as_str(), "int.pem"],
        ] {
            let bundle = Bundle::parse(&pki.concat(&order)).unwrap_or_else(|e| panic!("{cn}: {e}"));
            let info = bundle.info();
            assert_eq!(info.common_name.as_deref(), Some(cn), "lower-cased");
            assert_eq!(info.dns_names, [cn.to_owned(), format!("alt.{cn}")]);
            assert!(info.not_after - info.not_before >= 29 * 86_400);
            assert_eq!(info.fingerprint.len(), 64);
            let chain: Vec<_> = bundle.intermediates().map(|c| c.subject.clone()).collect();
            let expected: &[&str] = if order.contains(&"root.pem") {
                &["CN=Test Intermediate", "CN=Test Root CA"]
            } else {
                &["CN=Test Intermediate"]
            };
            assert_eq!(chain, expected, "{cn} {order:?}");

            // The device's file: certificate, chain, key; read back, it is the same bundle.
            let out = bundle.pem();
            assert!(out.starts_with("-----BEGIN CERTIFICATE-----\n"));
            assert!(out.trim_end().ends_with("PRIVATE KEY-----"));
            let again = Bundle::parse(out.as_bytes()).expect("its own output");
            assert_eq!(again.info(), bundle.info());
            assert_eq!(again.intermediates().count(), chain.len());
        }
    }
}

#[test]
fn pkcs12_bundles_as_openssl_writes_them() {
    let pki = Pki::new();
    pki.leaf("www.example.com", EC);
    let export = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "pkcs12",
            "-export",
            "-inkey",
            "www.example.com.key",
            "-in",
            "www.example.com.pem",
            "-certfile",
            "int.pem",
            "-out",
            out,
        ];
        args.extend(extra);
        openssl(pki.dir.path(), &args);
        pki.read(out)
    };
    for (name, extra) in [
        ("default.p12", &["-passout", "pass:"][..]),
        ("legacy.p12", &["-legacy", "-passout", "pass:"][..]),
        (
            "plain.p12",
            &[
                "-keypbe", "NONE", "-certpbe", "NONE", "-nomac", "-passout", "pass:",
            ][..],
        ),
    ] {
        let bundle = Bundle::parse(&export(name, extra)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            bundle.info().common_name.as_deref(),
            Some("www.example.com"),
            "{name}"
        );
        assert_eq!(bundle.intermediates().count(), 1, "{name}");
    }
    // A pass phrase the host is never given: Octavia's fault, naming the cause.
    let error = Bundle::parse(&export("secret.p12", &["-passout", "pass:secret"]))
        .expect_err("needs a pass phrase");
    assert!(matches!(error, CertError::Pkcs12(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("The PKCS12 bundle is unreadable."),
        "{error}"
    );
    assert!(
        error.to_string().contains("does not require a pass phrase"),
        "{error}"
    );
}

#[test]
fn what_octavia_refuses_is_refused_with_its_fault() {
    let pki = Pki::new();
    pki.leaf("a.example.com", EC);
    pki.leaf("b.example.com", EC);
    openssl(
        pki.dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-days",
            "1",
            "-subj",
            "/CN=Someone Else",
        ],
    );
    openssl(
        pki.dir.path(),
        &[
            "pkey",
            "-in",
            "a.example.com.key",
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "encrypted.key",
        ],
    );
    openssl(
        pki.dir.path(),
        &[
            "rsa",
            "-in",
            "root.key",
            "-traditional",
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "encrypted-traditional.key",
        ],
    );
    let cases: [(&[&str], CertError); 7] = [
        (
            &["a.example.com.pem", "b.example.com.key"],
            CertError::MisMatchedKey,
        ),
        (&["a.example.com.pem", "int.pem"], CertError::NoKey),
        (&["a.example.com.key"], CertError::NoCertificate),
        (
            &[
                "a.example.com.pem",
                "a.example.com.key",
                "b.example.com.key",
            ],
            CertError::SeveralKeys(2),
        ),
        (
            &["a.example.com.pem", "a.example.com.key", "other.pem"],
            CertError::NotInChain("CN=Someone Else".into()),
        ),
        (
            &["a.example.com.pem", "encrypted.key"],
            CertError::NeedsPassphrase,
        ),
        (
            &["root.pem", "encrypted-traditional.key"],
            CertError::NeedsPassphrase,
        ),
    ];
    for (files, expected) in cases {
        assert_eq!(
            Bundle::parse(&pki.concat(files)).expect_err("refused"),
            expected,
            "{files:?}"
        );
    }
    let garbage =
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    assert_eq!(
        Bundle::parse(garbage).expect_err("refused"),
        CertError::Unreadable
    );
    let other = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    assert_eq!(
        Bundle::parse(other).expect_err("refused"),
        CertError::UnexpectedBlock("PUBLIC KEY".into())
    );
    assert!(matches!(
        Bundle::parse(b"\x30\x03\x02\x01\x03"),
        Err(CertError::Pkcs12(_))
    ));
    assert!(matches!(Bundle::parse(b""), Err(CertError::Pkcs12(_))));
}

#[test]
fn a_bundle_shows_no_key_byte() {
    let pki = Pki::new();
    pki.leaf("www.example.com", RSA_PKCS1);
    let bundle = Bundle::parse(&pki.concat(&["www.example.com.pem", "www.example.com.key"]))
        .expect("bundle");
    let shown = format!("{bundle:?} {:?}", bundle.info());
    let key = String::from_utf8(pki.read("www.example.com.key")).expect("text");
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!shown.contains(line), "a key line shows in {shown}");
    }
    assert!(
        bundle.pem().replace('\n', "").contains(&body),
        "the device file carries the key"
    );
}

#[test]
fn sealed_secrets_open_only_under_their_key_and_record() {
    let sealer = Sealer::new(&[7; 32]);
    let secret = b"-----BEGIN PRIVATE KEY----- the bytes";
    let sealed = sealer.seal("secrets/1", secret);
    assert!(
        !sealed.windows(10).any(|w| w == &secret[..10]),
        "no plaintext at rest"
    );
    assert_eq!(
        sealer.open("secrets/1", &sealed).expect("open").as_slice(),
        secret
    );
    assert_ne!(
        sealer.seal("secrets/1", secret),
        sealed,
        "a fresh nonce each time"
    );

    assert_eq!(
        sealer.open("secrets/2", &sealed),
        Err(SealError::Opening),
        "moved"
    );
    assert_eq!(
        Sealer::new(&[8; 32]).open("secrets/1", &sealed),
        Err(SealError::Opening)
    );
    for at in [1, 30, sealed.len() - 1] {
        let mut changed = sealed.clone();
        changed[at] ^= 1;
        assert_eq!(
            sealer.open("secrets/1", &changed),
            Err(SealError::Opening),
            "byte {at}"
        );
    }
    let mut future = sealed.clone();
    future[0] = 2;
    assert_eq!(sealer.open("secrets/1", &future), Err(SealError::Format(2)));
    assert_eq!(
        sealer.open("secrets/1", &sealed[..20]),
        Err(SealError::Truncated)
    );
    assert_eq!(sealer.open("secrets/1", &[]), Err(SealError::Truncated));
}
