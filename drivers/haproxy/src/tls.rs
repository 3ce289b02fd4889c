//! TLS on an HAProxy device: the files a load balancer's listeners and pools name, where they
//! live on the device, and the `bind` and `server` options that use them, as Octavia's amphora
//! renders them.
//!
//! The driver never holds key material. Each file is a `tls-file` handle; `apply` has the host
//! send it to the device agent (`device::send_certificate`), which keeps it in its folder of
//! certificate files as `<load balancer>/<name>.pem`, the name the configuration uses (HAProxy
//! reads it from the folder its `crt-base` and `ca-base` name). Only then is the configuration
//! sent.

use std::fmt::Write as _;

use lbaas_driver_sdk::prelude::*;

/// The headers about a client's certificate a `TERMINATED_HTTPS` listener may insert, with the
/// sample HAProxy fills each from (the amphora's).
pub(crate) const SSL_HEADERS: [(&str, &str); 8] = [
    ("X-SSL-Client-Verify", "%[ssl_c_verify]"),
    ("X-SSL-Client-Has-Cert", "%[ssl_c_used]"),
    ("X-SSL-Client-DN", "%{+Q}[ssl_c_s_dn]"),
    ("X-SSL-Client-CN", "%{+Q}[ssl_c_s_dn(cn)]"),
    ("X-SSL-Issuer", "%{+Q}[ssl_c_i_dn]"),
    ("X-SSL-Client-SHA1", "%{+Q}[ssl_c_sha1,hex]"),
    ("X-SSL-Client-Not-Before", "%{+Q}[ssl_c_notbefore]"),
    ("X-SSL-Client-Not-After", "%{+Q}[ssl_c_notafter]"),
];

fn invalid(message: String) -> DriverError {
    DriverError::InvalidInput(message)
}

/// A file's name on the device: 1 to 64 letters, digits, `-` or `_`, as the agent stores them.
fn name(owner: &str, what: &str) -> Result<String, DriverError> {
    let name = format!("{owner}-{what}");
    let ok = name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(invalid(format!(
            "certificate file name `{}` is not 1 to 64 letters, digits, '-' or '_'",
            name.escape_debug()
        )))
    }
}

/// Every file `lb` names, with its name on the device, in the order the configuration uses
/// them.
pub(crate) fn files(lb: &LoadBalancer) -> Result<Vec<(&TlsFile, String)>, DriverError> {
    let mut all = Vec::new();
    for listener in &lb.listeners {
        let Some(tls) = &listener.tls else { continue };
        for (i, file) in served(tls).enumerate() {
            all.push((file, name(&listener.id, &format!("crt-{i}"))?));
        }
        if let Some(file) = &tls.client_ca {
            all.push((file, name(&listener.id, "ca")?));
        }
        if let Some(file) = &tls.client_crl {
            all.push((file, name(&listener.id, "crl")?));
        }
    }
    for pool in &lb.pools {
        let Some(tls) = &pool.tls else { continue };
        if let Some(file) = &tls.client_certificate {
            all.push((file, name(&pool.id, "client")?));
        }
        if let Some(file) = &tls.ca {
            all.push((file, name(&pool.id, "ca")?));
        }
        if let Some(file) = &tls.crl {
            all.push((file, name(&pool.id, "crl")?));
        }
    }
    Ok(all)
}

/// The certificates a listener serves: the default one first (HAProxy serves the first `crt`
/// to a client whose SNI no certificate names), then the SNI ones.
fn served(tls: &ListenerTls) -> impl Iterator<Item = &TlsFile> {
    tls.default_certificate
        .iter()
        .chain(tls.sni_certificates.iter())
}

/// How a configuration names `lb`'s certificate files: relative to the agent's folder of every
/// load balancer's files.
pub(crate) struct Folder(String);

impl Folder {
    pub(crate) fn of(lb: &LoadBalancer) -> Self {
        Self(lb.id.clone())
    }

    fn file(&self, name: &str) -> String {
        format!("{}/{name}.pem", self.0)
    }
}

/// HAProxy's name of a TLS version (`TLSv1.0` for Octavia's `TLSv1`).
fn version(v: TlsVersion) -> &'static str {
    match v {
        TlsVersion::SslV3 => "SSLv3",
        TlsVersion::TlsV1 => "TLSv1.0",
        TlsVersion::TlsV11 => "TLSv1.1",
        TlsVersion::TlsV12 => "TLSv1.2",
        TlsVersion::TlsV13 => "TLSv1.3",
    }
}

/// The options shared by `bind` and `server` lines: ALPN, the versions (as the lowest and the
/// highest offered) and the ciphers.
fn common(
    out: &mut String,
    alpn: &[String],
    versions: &[TlsVersion],
    ciphers: Option<&str>,
) -> Result<(), DriverError> {
    if !alpn.is_empty() {
        if let Some(bad) = alpn
            .iter()
            .find(|p| !["h2", "http/1.1", "http/1.0"].contains(&p.as_str()))
        {
            return Err(invalid(format!(
                "ALPN protocol `{}` is not h2, http/1.1 or http/1.0",
                bad.escape_debug()
            )));
        }
        let _ = write!(out, " alpn {}", alpn.join(","));
    }
    if let (Some(low), Some(high)) = (versions.iter().min(), versions.iter().max()) {
        let _ = write!(
            out,
            " ssl-min-ver {} ssl-max-ver {}",
            version(*low),
            version(*high)
        );
    }
    if let Some(ciphers) = ciphers {
        let plain = !ciphers.is_empty()
            && ciphers.len() <= 2048
            && ciphers
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_-+!.@=".contains(&b));
        if !plain {
            return Err(invalid(format!(
                "cipher string `{}` is not an OpenSSL cipher list",
                ciphers.escape_debug()
            )));
        }
        let _ = write!(out, " ciphers {ciphers}");
    }
    Ok(())
}

/// The TLS options of a listener's `bind` line.
pub(crate) fn bind_options(
    listener: &Listener,
    tls: &ListenerTls,
    folder: &Folder,
) -> Result<String, DriverError> {
    let mut out = String::from(" ssl");
    let mut any = false;
    for i in 0..served(tls).count() {
        let _ = write!(
            out,
            " crt {}",
            folder.file(&name(&listener.id, &format!("crt-{i}"))?)
        );
        any = true;
    }
    if !any {
        return Err(invalid(format!(
            "listener {} terminates TLS without a certificate",
            listener.id
        )));
    }
    if let Some(_ca) = &tls.client_ca {
        let verify = match tls.client_authentication {
            ClientAuthentication::Mandatory => "required",
            ClientAuthentication::Optional => "optional",
            ClientAuthentication::None => "none",
        };
        let _ = write!(
            out,
            " ca-file {} verify {verify}",
            folder.file(&name(&listener.id, "ca")?)
        );
        if tls.client_crl.is_some() {
            let _ = write!(
                out,
                " crl-file {}",
                folder.file(&name(&listener.id, "crl")?)
            );
        }
    }
    common(
        &mut out,
        &tls.alpn_protocols,
        &tls.versions,
        tls.ciphers.as_deref(),
    )?;
    Ok(out)
}

/// The `Strict-Transport-Security` header of a listener, if it sets HSTS.
pub(crate) fn hsts_line(tls: &ListenerTls) -> Option<String> {
    let hsts = tls.hsts.as_ref()?;
    // The amphora's value, byte for byte: each directive ends with `;`, the later ones after a
    // space (so the value is quoted).
    let mut value = format!("max-age={};", hsts.max_age);
    if hsts.include_subdomains {
        value.push_str(" includeSubDomains;");
    }
    if hsts.preload {
        value.push_str(" preload;");
    }
    Some(format!(
        "    http-response set-header Strict-Transport-Security '{value}'"
    ))
}

/// The TLS options of a pool's `server` lines: TLS towards the member, verified against the
/// pool's CA when it has one.
pub(crate) fn server_options(
    pool: &Pool,
    tls: &PoolTls,
    folder: &Folder,
) -> Result<String, DriverError> {
    let mut out = String::from(" ssl");
    match &tls.ca {
        Some(_) => {
            let _ = write!(
                out,
                " verify required ca-file {}",
                folder.file(&name(&pool.id, "ca")?)
            );
            if tls.crl.is_some() {
                let _ = write!(out, " crl-file {}", folder.file(&name(&pool.id, "crl")?));
            }
        }
        None => out.push_str(" verify none"),
    }
    if tls.client_certificate.is_some() {
        let _ = write!(out, " crt {}", folder.file(&name(&pool.id, "client")?));
    }
    common(
        &mut out,
        &tls.alpn_protocols,
        &tls.versions,
        tls.ciphers.as_deref(),
    )?;
    Ok(out)
}
