//! TLS on a device, as the host will drive it: the agent takes a load balancer's certificate
//! files (mode 0600, in its own folder, only with that load balancer's scope), a configuration
//! that names them, and HAProxy serves them: the certificate each client's SNI asks for, ALPN's
//! h2, the HSTS header, the member's answer through the tunnel; clients' certificates checked
//! against their CA and its revocation list; and TLS towards members, verified against the
//! pool's CA. What names another load
//! balancer's files, or stores what is not a certificate, is refused; removing the load
//! balancer removes its keys. Real HAProxy, real `openssl s_client`, loopback only.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lbaas_keys::testing::{EC, Pki, RSA_PKCS8};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The agent binary with its HAProxy, stopped (HAProxy too) when dropped.
struct Device {
    child: Child,
    url: String,
    state: tempfile::TempDir,
}

impl Device {
    fn start() -> Self {
        let state = tempfile::tempdir().expect("state dir");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_lbaas-agent"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--stop-haproxy-on-exit",
            ])
            .arg("--state-dir")
            .arg(state.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the agent");
        let device = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            state,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while device.call("GET", "/v1/health", None, b"").0 != 200 {
            assert!(Instant::now() < deadline, "the agent did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        device
    }

    fn certificates(&self) -> PathBuf {
        self.state
            .path()
            .canonicalize()
            .expect("state")
            .join("certs")
    }

    /// One request: (status, body).
    fn call(&self, method: &str, path: &str, scope: Option<&str>, body: &[u8]) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url));
        if let Some(scope) = scope {
            request = request.header("lbaas-scope", scope);
        }
        let request = request.body(body.to_vec()).expect("request");
        match agent.run(request) {
            Ok(mut response) => (
                response.status().as_u16(),
                response.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// A member answering every connection with one HTTP response.
fn member() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 17\r\nconnection: close\r\n\r\nhello from member",
            );
        }
    });
    port
}

/// `openssl s_client` to the listener with `sni` (and `alpn`), sending `request`; its output.
fn s_client(port: u16, sni: &str, ca: &Path, alpn: Option<&str>, request: &str) -> String {
    s_client_as(port, sni, ca, alpn, None, request)
}

/// [`s_client`] presenting the client certificate `identity` (certificate, key), if any.
fn s_client_as(
    port: u16,
    sni: &str,
    ca: &Path,
    alpn: Option<&str>,
    identity: Option<(&Path, &Path)>,
    request: &str,
) -> String {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    lbaas_keys::testing::s_client(address, sni, ca, alpn, identity, request)
}

/// `openssl s_server -www` with the leaf for `cn` (signed by the test CA), or, when
/// `stranger`, with a self-signed certificate no CA of the test signed; stopped when dropped.
fn tls_member(pki: &Pki, cn: &str, stranger: bool) -> TlsMember {
    let (cert, key) = if stranger {
        lbaas_keys::testing::openssl(
            &pki.path(""),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "stranger.key",
                "-out",
                "stranger.pem",
                "-days",
                "1",
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        ("stranger.pem".to_owned(), "stranger.key".to_owned())
    } else {
        (format!("{cn}.pem"), format!("{cn}.key"))
    };
    let server = pki.s_server([127, 0, 0, 1].into(), &cert, &key);
    TlsMember {
        port: server.address.port(),
        _server: server,
    }
}

/// A member behind TLS, and its port.
struct TlsMember {
    port: u16,
    _server: lbaas_keys::testing::SServer,
}

#[test]
fn a_device_serves_the_certificates_of_its_own_load_balancer_only() {
    let pki = Pki::new();
    pki.leaf("www.example.com", EC);
    pki.leaf("api.example.com", RSA_PKCS8);
    let device = Device::start();
    let (vip, backend) = (free_port(), member());
    let scope = |lb: &str| {
        format!(
            r#"{{"loadbalancer":"{lb}","binds":["127.0.0.1:{vip}"],"servers":["127.0.0.1:{backend}"],"checks":[],"http_checks":[]}}"#
        )
    };
    let own = scope("lb-1");

    // The host sends the files during the load balancer's own job.
    for (name, files) in [
        (
            "www",
            ["www.example.com.pem", "int.pem", "www.example.com.key"],
        ),
        (
            "api",
            ["api.example.com.pem", "int.pem", "api.example.com.key"],
        ),
    ] {
        let path = format!("/v1/loadbalancers/lb-1/certificates/{name}");
        let (status, body) = device.call("PUT", &path, Some(&own), &pki.concat(&files));
        assert_eq!(status, 204, "{body}");
    }
    let folder = device.certificates().join("lb-1");
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&folder), 0o700);
    assert_eq!(mode(&folder.join("www.pem")), 0o600);

    // Refused: another load balancer's scope, no scope, what is not a certificate file.
    let www = pki.concat(&["www.example.com.pem", "www.example.com.key"]);
    let refusals = [
        (
            "/v1/loadbalancers/lb-1/certificates/x",
            Some(scope("lb-2")),
            www.clone(),
            422,
        ),
        (
            "/v1/loadbalancers/lb-1/certificates/x",
            None,
            www.clone(),
            422,
        ),
        (
            "/v1/loadbalancers/lb-1/certificates/x.y",
            Some(own.clone()),
            www.clone(),
            400,
        ),
        (
            "/v1/loadbalancers/lb-1/certificates/x",
            Some(own.clone()),
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_vec(),
            400,
        ),
        (
            "/v1/loadbalancers/lb-1/certificates/x",
            Some(own.clone()),
            b"#!/bin/sh\nid\n".to_vec(),
            400,
        ),
    ];
    for (path, scope, body, wanted) in refusals {
        let (status, answer) = device.call("PUT", path, scope.as_deref(), &body);
        assert_eq!(status, wanted, "{path}: {answer}");
    }
    assert!(!folder.join("x.pem").exists());

    let certs = folder.display();
    let config = format!(
        "frontend l-1\n    mode http\n    timeout client 5s\n    bind 127.0.0.1:{vip} ssl crt \
         {certs}/www.pem crt {certs}/api.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2\n    \
         http-response set-header Strict-Transport-Security max-age=300;includeSubDomains\n    \
         default_backend p-1\nbackend p-1\n    mode http\n    timeout connect 5s\n    timeout \
         server 5s\n    server m-1 127.0.0.1:{backend}\n"
    );
    // A configuration naming another load balancer's files is refused before HAProxy sees it.
    let stolen = config.replace("/lb-1/www.pem", "/lb-2/www.pem");
    let (status, answer) = device.call(
        "PUT",
        "/v1/loadbalancers/lb-1/config",
        Some(&own),
        stolen.as_bytes(),
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("certificate files"), "{answer}");
    // A file the configuration does not name (a listener that went, or one sent for nothing)
    // leaves the device when the configuration is installed.
    let (status, body) = device.call(
        "PUT",
        "/v1/loadbalancers/lb-1/certificates/stale",
        Some(&own),
        &www,
    );
    assert_eq!(status, 204, "{body}");
    let (status, answer) = device.call(
        "PUT",
        "/v1/loadbalancers/lb-1/config",
        Some(&own),
        config.as_bytes(),
    );
    assert_eq!(status, 201, "{answer}");
    assert!(!folder.join("stale.pem").exists());
    assert!(folder.join("www.pem").exists() && folder.join("api.pem").exists());

    // Each name gets its certificate, verified against the root; h2 is negotiated.
    let ca = pki.path("root.pem");
    let www = s_client(vip, "www.example.com", &ca, Some("h2"), "");
    assert!(
        www.contains("CN = WWW.EXAMPLE.COM") && www.contains("Verify return code: 0 (ok)"),
        "{www}"
    );
    assert!(www.contains("ALPN protocol: h2"), "{www}");
    let api = s_client(vip, "api.example.com", &ca, None, "");
    assert!(
        api.contains("CN = API.EXAMPLE.COM") && api.contains("Verify return code: 0 (ok)"),
        "{api}"
    );
    // Through the tunnel to the member, with the HSTS header.
    let answer = s_client(
        vip,
        "www.example.com",
        &ca,
        Some("http/1.1"),
        "GET / HTTP/1.1\r\nhost: www.example.com\r\nconnection: close\r\n\r\n",
    );
    assert!(answer.contains("hello from member"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=300;includesubdomains"),
        "{answer}"
    );

    // Re-encryption: HAProxy speaks TLS to members and verifies them against the pool's CA;
    // a member whose certificate another CA signed gets no request.
    let (trusted, stranger) = (
        tls_member(&pki, "www.example.com", false),
        tls_member(&pki, "www.example.com", true),
    );
    let (vip_good, vip_bad) = (free_port(), free_port());
    let reencrypting = format!(
        r#"{{"loadbalancer":"lb-1","binds":["127.0.0.1:{vip}","127.0.0.1:{vip_good}","127.0.0.1:{vip_bad}"],"servers":["127.0.0.1:{backend}","127.0.0.1:{}","127.0.0.1:{}"],"checks":[],"http_checks":[]}}"#,
        trusted.port, stranger.port
    );
    let (status, body) = device.call(
        "PUT",
        "/v1/loadbalancers/lb-1/certificates/members-ca",
        Some(&reencrypting),
        &pki.read("root.pem"),
    );
    assert_eq!(status, 204, "{body}");
    let members = format!(
        "{config}frontend l-2\n    mode http\n    timeout client 5s\n    bind 127.0.0.1:{vip_good}\n    \
         default_backend p-2\nbackend p-2\n    mode http\n    timeout connect 5s\n    timeout \
         server 5s\n    server m-2 127.0.0.1:{} ssl verify required ca-file {certs}/members-ca.pem\n\
         frontend l-3\n    mode http\n    timeout client 5s\n    bind 127.0.0.1:{vip_bad}\n    \
         default_backend p-3\nbackend p-3\n    mode http\n    timeout connect 5s\n    timeout \
         server 5s\n    server m-3 127.0.0.1:{} ssl verify required ca-file {certs}/members-ca.pem\n",
        trusted.port, stranger.port
    );
    let (status, answer) = device.call(
        "PUT",
        "/v1/loadbalancers/lb-1/config",
        Some(&reencrypting),
        members.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let get = |port: u16| {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: m\r\nconnection: close\r\n\r\n")
            .expect("send");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    let good = get(vip_good);
    // s_server answers in HTTP/1.0, and HAProxy passes its status line on.
    assert!(
        good.starts_with("HTTP/1.0 200") && good.contains("s_server"),
        "{good}"
    );
    let bad = get(vip_bad);
    assert!(
        bad.starts_with("HTTP/1.1 503") && !bad.contains("s_server"),
        "{bad}"
    );

    // Client authentication: MANDATORY with the clients' CA and its revocation list. A client
    // signed by that CA gets through; one without a certificate, or a revoked one, does not.
    pki.leaf("alice.example.com", EC);
    pki.leaf("mallory.example.com", EC);
    pki.revoke("int", "mallory.example.com");
    let vip_auth = free_port();
    let authenticating = reencrypting.replace(
        &format!("\"127.0.0.1:{vip_bad}\""),
        &format!("\"127.0.0.1:{vip_bad}\",\"127.0.0.1:{vip_auth}\""),
    );
    for (name, bytes) in [
        ("clients-ca", pki.concat(&["int.pem", "root.pem"])),
        // HAProxy checks the revocation of every certificate of the chain: both CAs' lists.
        ("clients-crl", [pki.crl("int"), pki.crl("root")].concat()),
    ] {
        let path = format!("/v1/loadbalancers/lb-1/certificates/{name}");
        let (status, body) = device.call("PUT", &path, Some(&authenticating), &bytes);
        assert_eq!(status, 204, "{body}");
    }
    let mandatory = format!(
        "{members}frontend l-4\n    mode http\n    timeout client 5s\n    bind 127.0.0.1:{vip_auth} \
         ssl crt {certs}/www.pem ca-file {certs}/clients-ca.pem crl-file {certs}/clients-crl.pem \
         verify required\n    default_backend p-1\n"
    );
    let (status, answer) = device.call(
        "PUT",
        "/v1/loadbalancers/lb-1/config",
        Some(&authenticating),
        mandatory.as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let request = "GET / HTTP/1.1\r\nhost: www.example.com\r\nconnection: close\r\n\r\n";
    let as_client = |name: &str| {
        let (cert, key) = (
            pki.path(&format!("{name}.pem")),
            pki.path(&format!("{name}.key")),
        );
        s_client_as(
            vip_auth,
            "www.example.com",
            &ca,
            None,
            Some((&cert, &key)),
            request,
        )
    };
    let alice = as_client("alice.example.com");
    assert!(alice.contains("hello from member"), "{alice}");
    let mallory = as_client("mallory.example.com");
    assert!(
        !mallory.contains("hello from member") && mallory.contains("revoked"),
        "{mallory}"
    );
    let nobody = s_client(vip_auth, "www.example.com", &ca, None, request);
    assert!(!nobody.contains("hello from member"), "{nobody}");
    let own = authenticating;

    // The load balancer removed, its keys are gone from the device.
    let (status, answer) = device.call("DELETE", "/v1/loadbalancers/lb-1/config", Some(&own), b"");
    assert_eq!(status, 204, "{answer}");
    assert!(!folder.exists(), "keys left behind");
}
