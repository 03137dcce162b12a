//! Certificates for the failover-over-TLS tests, made in the test: a CA and the servers'
//! certificates it signs, written as PEM files the config names.
use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate authority of its own: partners trust it, or (another one) do not.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Its certificate, as the partners' `ca`.
    pub pem: PathBuf,
}

/// One server's `tls` files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl Ca {
    /// A CA named `name`, its certificate written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate()?)?;
        let pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem, issuer.pem())?;
        Ok(Self { issuer, pem })
    }

    /// A server's certificate naming `names` (DNS names, or IP addresses as IP SANs), good for
    /// both ends of a TLS connection, and its key: `dir/<tag>.pem` and `dir/<tag>.key`, with
    /// this CA as `ca`.
    pub fn issue(&self, dir: &Path, tag: &str, names: &[&str]) -> Result<TlsFiles> {
        let mut p =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        p.distinguished_name.push(DnType::CommonName, tag);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.issuer)?;
        let files = TlsFiles {
            cert: dir.join(format!("{tag}.pem")),
            key: dir.join(format!("{tag}.key")),
            ca: self.pem.clone(),
        };
        std::fs::write(&files.cert, cert.pem())?;
        std::fs::write(&files.key, key.serialize_pem())?;
        Ok(files)
    }
}

impl TlsFiles {
    /// The `tls = { ... }` line of a `[failover]` table, `peer_name` if given.
    #[must_use]
    pub fn toml(&self, peer_name: Option<&str>) -> String {
        let name = peer_name.map_or(String::new(), |n| format!(", peer_name = \"{n}\""));
        format!(
            "tls = {{ cert = \"{}\", key = \"{}\", ca = \"{}\"{name} }}\n",
            self.cert.display(),
            self.key.display(),
            self.ca.display()
        )
    }
}
