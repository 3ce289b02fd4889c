//! What a tenant uploads is attacker-controlled: the bundle reader, the CA and CRL checks and
//! the sealer's opening take any bytes — random, or a real bundle with bytes flipped, cut or
//! grown — and answer with a fault, never a panic.

use lbaas_keys::testing::{EC, Pki};
use lbaas_keys::{Authority, Bundle, Sealer};
use proptest::prelude::*;

/// A real PEM bundle and a real PKCS#12 bundle, made once.
fn bundles() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
    static BUNDLES: std::sync::OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    BUNDLES.get_or_init(|| {
        let pki = Pki::new();
        pki.leaf("www.example.com", EC);
        let pem = pki.concat(&["www.example.com.pem", "int.pem", "www.example.com.key"]);
        let p12 = pki.pkcs12("www.example.com");
        let crl = pki.crl("int");
        (pem, p12, crl)
    })
}

/// `bytes` with the byte at each position in `flips` changed, cut at `cut`.
fn damaged(bytes: &[u8], flips: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, with) in flips {
        let at = at % out.len();
        out[at] ^= with | 1;
    }
    out.truncate(cut % (out.len() + 1));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_are_refused_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = Bundle::parse(&bytes);
        let _ = Authority::from_pem(&bytes);
        let _ = Sealer::new(&[1; 32]).open("secrets/x", &bytes);
    }

    #[test]
    fn damaged_bundles_are_refused_not_a_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let (pem, p12, crl) = bundles();
        for bytes in [pem, p12] {
            let bytes = damaged(bytes, &flips, cut);
            let _ = Bundle::parse(&bytes);
            let _ = Bundle::from_pkcs12(&bytes);
        }
        let ca = Authority::from_pem(&pem[..]).expect("the leaf reads as a certificate");
        let _ = ca.check_crl(&damaged(crl, &flips, cut));
    }
}
