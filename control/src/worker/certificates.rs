//! The key material of one job: every `tls-file` of the load balancer the driver is handed
//! gets a random handle, and the file it names is opened from the key manager into the call's
//! [`CertificateFiles`]: a served certificate as its certificate, intermediates and key; a CA
//! as its certificates; a revocation list as its lists. Only those PEM blocks are sent, so
//! nothing else a tenant put in a secret reaches the device.
//!
//! A reference that no longer opens (the secret was deleted or expired after the listener
//! named it) fails the job with the reference named: sent without it, the device would serve
//! the wrong certificate or let clients in unchecked.

use lbaas_keys::{Authority, Bundle, pem_blocks};
use zeroize::Zeroizing;

use super::fault::JobError;
use crate::plane::ControlPlane;
use crate::runtime::{self as wit, CertificateFiles};

/// What a file holds, and so how it is read.
#[derive(Clone, Copy)]
enum Holds {
    /// A certificate with its key and intermediates.
    Bundle,
    /// CA certificates.
    Authority,
    /// Revocation lists.
    Revocations,
}

/// Opens every file `model` names and gives each its handle for this job.
pub(crate) fn attach(
    plane: &ControlPlane,
    model: &mut wit::LoadBalancer,
) -> Result<CertificateFiles, JobError> {
    let mut files = CertificateFiles::default();
    each_file(model, |file, holds| {
        let reference = std::mem::take(&mut file.handle);
        let (pem, certificates) = read(plane, &reference, holds)?;
        let described = match certificates.first() {
            Some(first) => format!("{reference} (certificate sha256 {})", first.fingerprint),
            None => reference.clone(),
        };
        file.handle = files.add(pem, described);
        file.certificates = certificates;
        Ok(())
    })?;
    Ok(files)
}

/// `model` for a call that sends no key material (`remove`, `status`): every file gets a
/// handle that names nothing, and the driver learns no reference.
pub(crate) fn conceal(model: &mut wit::LoadBalancer) {
    let mut none = CertificateFiles::default();
    let _ = each_file(model, |file, _| {
        file.handle = none.add(Zeroizing::new(Vec::new()), String::new());
        Ok(())
    });
}

/// Calls `visit` with every file of `model`'s listeners and pools, and what it holds.
fn each_file(
    model: &mut wit::LoadBalancer,
    mut visit: impl FnMut(&mut wit::TlsFile, Holds) -> Result<(), JobError>,
) -> Result<(), JobError> {
    for tls in model.listeners.iter_mut().filter_map(|l| l.tls.as_mut()) {
        for file in tls
            .default_certificate
            .iter_mut()
            .chain(tls.sni_certificates.iter_mut())
        {
            visit(file, Holds::Bundle)?;
        }
        if let Some(file) = &mut tls.client_ca {
            visit(file, Holds::Authority)?;
        }
        if let Some(file) = &mut tls.client_crl {
            visit(file, Holds::Revocations)?;
        }
    }
    for tls in model.pools.iter_mut().filter_map(|p| p.tls.as_mut()) {
        if let Some(file) = &mut tls.client_certificate {
            visit(file, Holds::Bundle)?;
        }
        if let Some(file) = &mut tls.ca {
            visit(file, Holds::Authority)?;
        }
        if let Some(file) = &mut tls.crl {
            visit(file, Holds::Revocations)?;
        }
    }
    Ok(())
}

/// The file `reference` names, as the device gets it, and what may be shown of it.
fn read(
    plane: &ControlPlane,
    reference: &str,
    holds: Holds,
) -> Result<(Zeroizing<Vec<u8>>, Vec<wit::CertificateInfo>), JobError> {
    let unusable = |why: String| {
        JobError::Gone(format!(
            "certificate {} could not be used: {why}",
            reference.escape_debug()
        ))
    };
    let payload = plane
        .host_payload(reference)?
        .map_err(|why| unusable(why.to_string()))?;
    match holds {
        Holds::Bundle => {
            let bundle = Bundle::parse(&payload).map_err(|e| unusable(e.to_string()))?;
            plane.saw_expiry(reference, bundle.info().not_after);
            let certificates = std::iter::once(bundle.info())
                .chain(bundle.intermediates())
                .map(info)
                .collect();
            let pem = bundle.pem();
            Ok((Zeroizing::new(pem.as_bytes().to_vec()), certificates))
        }
        Holds::Authority => {
            let authority = Authority::from_pem(&payload).map_err(|e| unusable(e.to_string()))?;
            let pem = pem_blocks(&payload, "CERTIFICATE")
                .ok_or_else(|| unusable("no certificate".into()))?;
            Ok((
                Zeroizing::new(pem.into_bytes()),
                vec![info(authority.info())],
            ))
        }
        Holds::Revocations => {
            let pem = pem_blocks(&payload, "X509 CRL")
                .ok_or_else(|| unusable("no revocation list".into()))?;
            Ok((Zeroizing::new(pem.into_bytes()), Vec::new()))
        }
    }
}

fn info(info: &lbaas_keys::CertificateInfo) -> wit::CertificateInfo {
    wit::CertificateInfo {
        subject: info.subject.clone(),
        common_name: info.common_name.clone(),
        dns_names: info.dns_names.clone(),
        not_before: info.not_before,
        not_after: info.not_after,
        fingerprint: info.fingerprint.clone(),
    }
}
