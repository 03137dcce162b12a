//! The failover link between two xdhcp over TLS 1.3, both sides authenticated: whoever
//! connects is the TLS client, whoever accepts the server, and each presents its certificate.
//! Either side accepts the other only with a certificate that chains to the relationship's CA
//! and names the partner (`peer_name` as a DNS name, else `peer_address` as an IP address).
//!
//! rustls checks a server's name on its own; a client's it checks only against the CA, so the
//! accepting side's verifier ([`NamedClient`]) adds the same name check.
use std::{fmt, net::Ipv4Addr, path::Path, sync::Arc};

use rustls::{
    ClientConfig, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    client::{WebPkiServerVerifier, verify_server_name},
    crypto::ring,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject as _},
    server::{
        ParsedCertificate, WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
    sign::CertifiedKey,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{ValidationError, model::PeerTls as TlsFiles};

/// One relationship's TLS, ready for connections both ways.
#[derive(Clone)]
pub struct PeerTls {
    pub connector: TlsConnector,
    pub acceptor: TlsAcceptor,
    /// What the partner's certificate must name.
    pub peer_name: ServerName<'static>,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerTls").field("peer_name", &self.peer_name).finish_non_exhaustive()
    }
}

impl PeerTls {
    /// Reads `files` and builds both sides' configs; `at` is the relationship's key
    /// (`failover`), so that an error names the key of the file it concerns.
    pub fn load(
        files: &TlsFiles,
        peer_address: Ipv4Addr,
        at: &str,
    ) -> Result<Self, ValidationError> {
        let bad = |k: &str, path: &Path, why: String| ValidationError {
            key: format!("{at}.tls.{k}"),
            message: format!("{}: {why}", path.display()),
        };
        let provider = Arc::new(ring::default_provider());
        let chain = CertificateDer::pem_file_iter(&files.cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| bad("cert", &files.cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(bad("cert", &files.cert, "holds no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| bad("key", &files.key, e.to_string()))?;
        CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => bad(
                "key",
                &files.key,
                format!("is not the key of the certificate in {}", files.cert.display()),
            ),
            e => bad("key", &files.key, format!("unusable with the certificate: {e}")),
        })?;
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(&files.ca)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| bad("ca", &files.ca, e.to_string()))?;
        for c in cas {
            roots.add(c).map_err(|e| bad("ca", &files.ca, format!("not a CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(bad("ca", &files.ca, "holds no certificate".into()));
        }
        let roots = Arc::new(roots);
        let peer_name = match &files.peer_name {
            Some(n) => ServerName::try_from(n.clone()).map_err(|e| ValidationError {
                key: format!("{at}.tls.peer_name"),
                message: format!("{n:?}: {e}"),
            })?,
            None => ServerName::IpAddress(std::net::IpAddr::V4(peer_address).into()),
        };
        let internal = |e: &dyn fmt::Display| ValidationError {
            key: format!("{at}.tls"),
            message: format!("cannot set up TLS: {e}"),
        };
        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| internal(&e))?;
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| internal(&e))?
            .with_webpki_verifier(server_verifier)
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| internal(&e))?;
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| internal(&e))?;
        let named = NamedClient { inner: client_verifier, name: peer_name.clone() };
        let server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| internal(&e))?
            .with_client_cert_verifier(Arc::new(named))
            .with_single_cert(chain, key)
            .map_err(|e| internal(&e))?;
        Ok(PeerTls {
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
            peer_name,
        })
    }
}

/// The CA's check of a client's certificate, and then that it names the partner.
#[derive(Debug)]
struct NamedClient {
    inner: Arc<dyn ClientCertVerifier>,
    name: ServerName<'static>,
}

impl ClientCertVerifier for NamedClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        verify_server_name(&ParsedCertificate::try_from(end_entity)?, &self.name)?;
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
