//! CertificateSigningRequests: creation as the apiserver validates it (every field error of a
//! 422 in upstream's order), GET, and (through [`super::watch`]) list and watch. A created CSR
//! goes to the approver ([`crate::approver`]), which approves and signs it or leaves it Pending.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use super::body::parse_json;
use super::objects::{
    cause, get_object, invalid, name_required, path_segment_name_error, requested_name, required,
    Handled,
};
use super::ApiRequest;
use crate::approver;
use crate::authz::User;
use crate::status::{Cause, Res, Status};
use crate::store::{Csr, CsrSpec, CsrStatus, Kind, Obj, ObjectMeta};

pub(super) const GROUP: &str = "certificates.k8s.io";
pub(super) const RESOURCE: &str = "certificatesigningrequests";

pub(super) fn get(r: &ApiRequest) -> Handled {
    get_object(r.shared, Kind::Csr, Res::CSRS, None, &r.attrs.name)
}

/// Validates and stores a new CSR with the requester's identity, then starts its approval.
pub(super) fn create(r: &ApiRequest) -> Handled {
    let value = parse_json(&r.body, "CertificateSigningRequest")?;
    let fields = CsrFields::read(&value)?;
    let request_der = fields.validate().map_err(|causes| {
        Status::invalid("CertificateSigningRequest", GROUP, &fields.name, causes)
    })?;
    let name = fields.name.clone();
    let created = r
        .shared
        .store
        .create(Obj::Csr(fields.into_csr(request_der, r.user)))
        .map_err(|()| Status::already_exists(Res::CSRS, &name))?;
    r.shared.spawn(approver::process(r.shared.clone(), name));
    Ok((201, created.json()))
}

/// What a create asks for, decoded but not yet validated.
struct CsrFields {
    /// `metadata.name`, or the name generated from `generateName`; empty if neither is given.
    name: String,
    /// `metadata.generateName`, kept when the name was generated from it.
    generate_name: Option<String>,
    /// `spec.request`, base64-decoded: the PEM CSR.
    request_pem: Vec<u8>,
    signer_name: String,
    usages: Vec<String>,
    expiration_seconds: Option<i64>,
}

impl CsrFields {
    /// Reads the fields; only a `spec.request` that is not base64 is refused here (400, from
    /// the apiserver's decoder rather than validation).
    fn read(value: &Value) -> Result<CsrFields, Status> {
        let meta = &value["metadata"];
        let name = requested_name(meta).unwrap_or_default();
        let generate_name = match meta["name"].as_str() {
            Some(given) if !given.is_empty() => None,
            _ => meta["generateName"]
                .as_str()
                .filter(|g| !g.is_empty())
                .map(str::to_string),
        };
        let spec = &value["spec"];
        let request_b64 = spec["request"].as_str().unwrap_or("");
        let request_pem = STANDARD.decode(request_b64).map_err(|e| {
            Status::bad_request(format!(
                "CertificateSigningRequest in version \"v1\" cannot be handled as a CertificateSigningRequest: {e}"
            ))
        })?;
        let usages = spec["usages"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|u| u.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok(CsrFields {
            name,
            generate_name,
            request_pem,
            signer_name: spec["signerName"].as_str().unwrap_or("").to_string(),
            usages,
            expiration_seconds: spec["expirationSeconds"].as_i64(),
        })
    }

    /// Every field error, in upstream's order (name, request, signer, usages, expiration); the
    /// request's DER when there is none.
    fn validate(&self) -> Result<Vec<u8>, Vec<Cause>> {
        let mut causes: Vec<Cause> = name_cause(&self.name).into_iter().collect();
        let request_der = match parse_csr_request(&self.request_pem) {
            Ok(der) => Some(der),
            Err(detail) => {
                causes.push(request_cause(&self.request_pem, &detail));
                None
            }
        };
        causes.extend(signer_cause(&self.signer_name));
        causes.extend(usage_causes(&self.usages));
        causes.extend(expiration_cause(self.expiration_seconds));
        match request_der {
            Some(der) if causes.is_empty() => Ok(der),
            _ => Err(causes),
        }
    }

    /// The CSR as stored: the request re-encoded, the requester's identity in the spec.
    fn into_csr(self, request_der: Vec<u8>, user: &User) -> Csr {
        let mut metadata = ObjectMeta::new(&self.name, None);
        metadata.generate_name = self.generate_name;
        Csr {
            metadata,
            spec: CsrSpec {
                request: STANDARD.encode(&self.request_pem),
                signer_name: self.signer_name,
                expiration_seconds: self.expiration_seconds,
                usages: self.usages,
                username: user.name.clone(),
                uid: None,
                groups: user.groups.clone(),
            },
            status: CsrStatus::default(),
            request_der,
        }
    }
}

fn name_cause(name: &str) -> Option<Cause> {
    if name.is_empty() {
        return Some(name_required());
    }
    path_segment_name_error(name)
        .map(|detail| invalid("metadata.name", &format!("{name:?}"), detail))
}

/// `spec.request` is not a PEM CSR with a valid self-signature; the value is shown as Go
/// prints a byte slice in an error.
fn request_cause(request_pem: &[u8], detail: &str) -> Cause {
    let shown = if request_pem.is_empty() {
        "[]byte(nil)".to_string()
    } else {
        format!("[]byte{{...{} bytes}}", request_pem.len())
    };
    invalid("spec.request", &shown, detail)
}

fn signer_cause(signer: &str) -> Option<Cause> {
    if signer.is_empty() {
        Some(required("spec.signerName", ""))
    } else if !signer.contains('/') || signer.starts_with('/') || signer.ends_with('/') {
        Some(invalid(
            "spec.signerName",
            &format!("{signer:?}"),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ))
    } else {
        None
    }
}

/// Usages must be given, each one known and none repeated.
fn usage_causes(usages: &[String]) -> Vec<Cause> {
    let mut causes = Vec::new();
    if usages.is_empty() {
        causes.push(required("spec.usages", "usages must be provided"));
    }
    for (i, usage) in usages.iter().enumerate() {
        let field = format!("spec.usages[{i}]");
        if !VALID_USAGES.contains(&usage.as_str()) {
            let supported: Vec<String> = VALID_USAGES.iter().map(|u| format!("{u:?}")).collect();
            causes.push(cause(
                "FieldValueNotSupported",
                &field,
                format!(
                    "Unsupported value: {usage:?}: supported values: {}",
                    supported.join(", ")
                ),
            ));
        } else if usages[..i].contains(usage) {
            causes.push(cause(
                "FieldValueDuplicate",
                &field,
                format!("Duplicate value: {usage:?}"),
            ));
        }
    }
    causes
}

fn expiration_cause(expiration_seconds: Option<i64>) -> Option<Cause> {
    let s = expiration_seconds.filter(|s| *s < 600)?;
    Some(invalid(
        "spec.expirationSeconds",
        &s.to_string(),
        "may not specify a duration less than 600 seconds (10 minutes)",
    ))
}

/// The key usages the apiserver accepts (`certificates.KeyUsage` values).
const VALID_USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// Decodes the PEM CSR and checks its self-signature, like `validateCSR`.
fn parse_csr_request(pem: &[u8]) -> Result<Vec<u8>, String> {
    let start = pem
        .windows(11)
        .position(|w| w == b"-----BEGIN ")
        .ok_or("PEM block type must be CERTIFICATE REQUEST")?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem[start..])
        .map_err(|_| "PEM block type must be CERTIFICATE REQUEST".to_string())?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err("PEM block type must be CERTIFICATE REQUEST".into());
    }
    let (_, req) = X509CertificationRequest::from_der(&block.contents)
        .map_err(|e| format!("asn1: structure error: {e}"))?;
    req.verify_signature()
        .map_err(|_| "x509: signature verification failure".to_string())?;
    Ok(block.contents)
}
