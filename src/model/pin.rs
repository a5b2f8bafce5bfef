//! CA public-key pins (`sha256:<hex>`), with the semantics of kubeadm's `pubkeypin` package.
//!
//! A pin is the SHA-256 of a CA certificate's DER SubjectPublicKeyInfo (not of the whole
//! certificate, so it survives re-issuing the CA with the same key). Discovery accepts
//! cluster-info's CA bundle when at least one certificate in it matches one pin; this is what
//! turns an unauthenticated first fetch into a trusted CA.
//!
//! Parsing follows kubeadm: exactly one `:`, the format name is case-insensitive (`SHA256:` is
//! fine), the value is 64 hex digits in either case, stored and printed in lowercase.

use std::fmt;
use std::str::FromStr;

use x509_parser::prelude::*;

/// How to get a pin, repeated in every parse error so the user can fix it in one step.
const HOW_TO_GET_A_PIN: &str =
    "expected \"sha256:<64 hex digits>\"; get it on a control-plane node \
with `openssl x509 -pubkey -in /etc/kubernetes/pki/ca.crt | openssl rsa -pubin -outform der \
2>/dev/null | openssl dgst -sha256 -hex` (prefix the hex with \"sha256:\"), or from \
`kubeadm token create --print-join-command`";

/// Errors about pins and the certificates they are checked against.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// The pin string is not `<format>:<value>`.
    #[error("CA pin is not of the form \"format:hex-value\": {HOW_TO_GET_A_PIN}")]
    MissingFormat,
    /// A format other than sha256 (the only one kubeadm knows).
    #[error("CA pin has unknown hash format {format:?} (known: sha256): {HOW_TO_GET_A_PIN}")]
    UnknownFormat { format: String },
    /// The value is not 64 hex digits.
    #[error("CA pin value is not a SHA-256 hash ({reason}): {HOW_TO_GET_A_PIN}")]
    BadHex { reason: &'static str },
    /// The CA bundle had no `CERTIFICATE` PEM block at all.
    #[error(
        "the CA data holds no PEM CERTIFICATE block: expected one or more \
         \"-----BEGIN CERTIFICATE-----\" blocks (check certificate-authority-data in cluster-info)"
    )]
    NoCertificates,
    /// A PEM block is broken (bad header, bad base64, missing END line).
    #[error("the CA data has a broken PEM block (number {index}, counting from 1): {reason}")]
    BadPem { index: usize, reason: String },
    /// A certificate does not parse as X.509 DER.
    #[error("CA certificate number {index} (counting from 1) is not a valid X.509 certificate: {reason}")]
    BadCertificate { index: usize, reason: String },
}

/// A SHA-256 public-key pin.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CaPin([u8; 32]);

impl CaPin {
    /// The pin of a DER certificate: SHA-256 over its SubjectPublicKeyInfo, as kubeadm's
    /// `pubkeypin.Hash` (Go's `RawSubjectPublicKeyInfo`).
    pub fn of_certificate_der(der: &[u8]) -> Result<CaPin, PinError> {
        Self::of_certificate_der_numbered(der, 1)
    }

    fn of_certificate_der_numbered(der: &[u8], index: usize) -> Result<CaPin, PinError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| PinError::BadCertificate {
            index,
            reason: e.to_string(),
        })?;
        let spki = cert.tbs_certificate.subject_pki.raw;
        let digest = ring::digest::digest(&ring::digest::SHA256, spki);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Ok(CaPin(out))
    }

    /// The raw 32-byte hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for CaPin {
    type Err = PinError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // kubeadm: strings.Split(pin, ":") must give exactly two parts.
        let mut parts = s.split(':');
        let (Some(format), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(PinError::MissingFormat);
        };
        if !format.eq_ignore_ascii_case("sha256") {
            return Err(PinError::UnknownFormat {
                format: format.to_owned(),
            });
        }
        if value.len() != 64 {
            return Err(PinError::BadHex {
                reason: "expected 64 hex digits (32 bytes)",
            });
        }
        let mut out = [0u8; 32];
        for (i, pair) in value.as_bytes().chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]);
            let lo = hex_digit(pair[1]);
            match (hi, lo) {
                (Some(h), Some(l)) => out[i] = (h << 4) | l,
                _ => {
                    return Err(PinError::BadHex {
                        reason: "only 0-9, a-f and A-F are hex digits",
                    })
                }
            }
        }
        Ok(CaPin(out))
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CaPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A pin is public (it is printed in join commands), so Debug shows it in full.
        write!(f, "CaPin({self})")
    }
}

/// Every `CERTIFICATE` block of a PEM bundle, as DER, in order; other block types are skipped
/// (like client-go's `certutil.ParseCertsPEM`). Each must parse as X.509. Errors when there is
/// none.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, PinError> {
    let mut certs = Vec::new();
    for (i, block) in x509_parser::pem::Pem::iter_from_buffer(pem).enumerate() {
        let block = block.map_err(|e| PinError::BadPem {
            index: i + 1,
            reason: e.to_string(),
        })?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let index = certs.len() + 1;
        X509Certificate::from_der(&block.contents).map_err(|e| PinError::BadCertificate {
            index,
            reason: e.to_string(),
        })?;
        certs.push(block.contents);
    }
    if certs.is_empty() {
        return Err(PinError::NoCertificates);
    }
    Ok(certs)
}

/// The pin of the first certificate (in bundle order) whose pin is in `pins`, or `None` when no
/// certificate matches (kubeadm's `CheckAny`). Errors only on a certificate that does not parse.
pub fn first_match(certs_der: &[Vec<u8>], pins: &[CaPin]) -> Result<Option<CaPin>, PinError> {
    for (i, der) in certs_der.iter().enumerate() {
        let pin = CaPin::of_certificate_der_numbered(der, i + 1)?;
        if pins.contains(&pin) {
            return Ok(Some(pin));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        crate::fixtures::fixtures_dir()
    }

    fn recorded_pin() -> String {
        std::fs::read_to_string(fixtures().join("ca-cert-hash.txt"))
            .unwrap()
            .trim()
            .to_owned()
    }

    #[test]
    fn fixture_ca_matches_recorded_pin() {
        let pem = std::fs::read(fixtures().join("ca.crt")).unwrap();
        let certs = certificates_from_pem(&pem).unwrap();
        assert_eq!(certs.len(), 1);
        let pin = CaPin::of_certificate_der(&certs[0]).unwrap();
        assert_eq!(pin.to_string(), recorded_pin());
        let wanted: CaPin = recorded_pin().parse().unwrap();
        assert_eq!(
            first_match(&certs, std::slice::from_ref(&wanted)).unwrap(),
            Some(wanted)
        );
    }

    #[test]
    fn parse_follows_kubeadm_case_rules() {
        let lower = recorded_pin();
        let upper_hex = format!("sha256:{}", lower["sha256:".len()..].to_uppercase());
        let upper_fmt = format!("SHA256:{}", &lower["sha256:".len()..]);
        let a: CaPin = lower.parse().unwrap();
        assert_eq!(upper_hex.parse::<CaPin>().unwrap(), a);
        assert_eq!(upper_fmt.parse::<CaPin>().unwrap(), a);
        // Display is canonical lowercase.
        assert_eq!(upper_hex.parse::<CaPin>().unwrap().to_string(), lower);
        assert!(format!("{a:?}").contains(&lower));
    }

    #[test]
    fn parse_rejects_bad_pins_with_the_fix() {
        let hex = &recorded_pin()["sha256:".len()..].to_owned();
        let cases = [
            (hex.clone(), "MissingFormat"),
            (format!("sha256:{hex}:x"), "MissingFormat"),
            (format!("md5:{hex}"), "UnknownFormat"),
            (format!("sha256:{}", &hex[1..]), "BadHex"),
            (format!("sha256:{hex}0"), "BadHex"),
            (format!("sha256:{}g", &hex[1..]), "BadHex"),
            ("sha256:".to_owned(), "BadHex"),
        ];
        for (input, kind) in cases {
            let err = input.parse::<CaPin>().unwrap_err();
            assert!(format!("{err:?}").starts_with(kind), "{input}: {err:?}");
            let msg = err.to_string();
            assert!(msg.contains("openssl dgst -sha256 -hex"), "{msg}");
            assert!(
                msg.contains("kubeadm token create --print-join-command"),
                "{msg}"
            );
        }
    }

    #[test]
    fn bundle_with_no_match_and_other_blocks() {
        let ca = std::fs::read_to_string(fixtures().join("ca.crt")).unwrap();
        let bundle = format!(
            "# comment\n-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n{ca}{ca}"
        );
        let certs = certificates_from_pem(bundle.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        let other: CaPin = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        assert_eq!(first_match(&certs, &[other]).unwrap(), None);
        assert_eq!(first_match(&certs, &[]).unwrap(), None);
    }

    #[test]
    fn bundle_errors() {
        assert_eq!(
            certificates_from_pem(b"").unwrap_err(),
            PinError::NoCertificates
        );
        assert_eq!(
            certificates_from_pem(b"not pem at all\n").unwrap_err(),
            PinError::NoCertificates
        );
        let err =
            certificates_from_pem(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
                .unwrap_err();
        assert!(matches!(err, PinError::BadPem { index: 1, .. }), "{err:?}");
        let err = certificates_from_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err();
        assert!(
            matches!(err, PinError::BadCertificate { index: 1, .. }),
            "{err:?}"
        );
        assert!(matches!(
            CaPin::of_certificate_der(b"junk").unwrap_err(),
            PinError::BadCertificate { .. }
        ));
    }
}
