//! Bundles made as operators make them, with the `openssl` command (PEM in every key encoding,
//! PKCS#12 in OpenSSL 3's default, legacy and unencrypted forms), read and checked as Octavia
//! checks a certificate reference; and secrets sealed, opened, moved and tampered with.

use lbaas_keys::testing::{EC, EC_PKCS8, ED25519, Pki, RSA_PKCS1, RSA_PKCS8, openssl};
use lbaas_keys::{Bundle, CertError, SealError, Sealer};

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
        openssl(&pki.path(""), &args);
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
        &pki.path(""),
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
        &pki.path(""),
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
        &pki.path(""),
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

#[test]
fn a_client_ca_and_the_revocation_list_it_signed() {
    use lbaas_keys::{Authority, AuthorityError};
    let pki = Pki::new();
    pki.crl("int");
    pki.crl("root");

    let ca = Authority::from_pem(&pki.read("int.pem")).expect("a CA");
    assert_eq!(ca.info().common_name.as_deref(), Some("test intermediate"));
    // The first certificate of a bundle is the CA.
    let bundle = Authority::from_pem(&pki.concat(&["root.pem", "int.pem"])).expect("a CA");
    assert_eq!(bundle.info().common_name.as_deref(), Some("test root ca"));

    ca.check_crl(&pki.read("int.crl")).expect("its own CRL");
    assert_eq!(
        ca.check_crl(&pki.read("root.crl")),
        Err(AuthorityError::NotSignedByCa)
    );
    assert!(matches!(
        ca.check_crl(&pki.read("int.pem")),
        Err(AuthorityError::Crl(_))
    ));
    let error = Authority::from_pem(&pki.read("int.key")).expect_err("a key is no CA");
    assert!(
        error
            .to_string()
            .starts_with("The client authentication CA certificate is invalid.")
    );
}
