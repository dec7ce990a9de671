//! TLS between Stratum's machines: the API, the agents' own APIs and the data paths. Every certificate is issued by
//! the cluster's own authority (`stratum server` makes it on first start) and names what it is: the control plane
//! [`SERVER_IDENTITY`], an agent [`agent_identity`]. A client checks the chain against that one authority and the
//! name it expects, not against the address it dialled: addresses are whatever a network gives a machine, while an
//! agent's name is what the control plane bound its certificate to when it joined with its own key.
//!
//! A server's certificate may arrive after it starts listening (an agent's comes with its join) and may change (a
//! join again): [`ServerTls`] holds the current one, and refuses handshakes while it has none.

use crate::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex};
use stratum_core::sync::lock;

/// The name in the control plane's certificate.
pub const SERVER_IDENTITY: &str = "control-plane.stratum";

/// The name in the certificate of the agent `name` (a node's or pool member's name: letters, digits, `_`, `-`).
pub fn agent_identity(name: &str) -> String {
    format!("{}.agent.stratum", name.to_ascii_lowercase())
}

/// The sha256 (hex) of the first certificate in `pem`, as a join string carries the authority's.
pub fn certificate_sha256(pem: &str) -> Result<String, Error> {
    Ok(stratum_ml::data::sha256_hex(first_certificate(pem)?.as_ref()))
}

/// The header with which the control plane proves, to whoever holds one of its tokens, that the authority it
/// hands out is its own: one [`authority_proof`] per token, comma separated.
pub const PROOF_HEADER: &str = "x-stratum-authority-proof";

/// The HMAC-SHA256 (hex) of the authority's first certificate under `token`: a client that fetched the authority
/// over an unchecked connection and holds the token checks with it that the authority came from the control
/// plane (someone in between, without the token, cannot make one for an authority of their own).
pub fn authority_proof(token: &str, pem: &str) -> Result<String, Error> {
    let certificate = first_certificate(pem)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    Ok(stratum_core::bytes::hex(ring::hmac::sign(&key, certificate.as_ref()).as_ref()))
}

/// Whether `header` (a [`PROOF_HEADER`] value) holds the proof of `pem` under `token`.
pub fn proves(header: &str, token: &str, pem: &str) -> bool {
    let Ok(expected) = authority_proof(token, pem) else { return false };
    header
        .split(',')
        .map(str::trim)
        .any(|given| stratum_core::bytes::same_secret(given.as_bytes(), expected.as_bytes()))
}

fn first_certificate(pem: &str) -> Result<CertificateDer<'static>, Error> {
    certificates(pem)?.into_iter().next().ok_or_else(|| tls_error("no certificate in the PEM text", "empty".into()))
}

fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| tls_error("cannot read a certificate", error.into()))
}

fn tls_error(context: &str, source: stratum_core::Cause) -> Error {
    Error::Tls { context: context.to_string(), source }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key, in PEM: what a server presents.
#[derive(Clone)]
pub struct Identity {
    /// The certificate chain (PEM).
    pub certificate_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Identity(…)")
    }
}

impl Identity {
    fn certified_key(&self) -> Result<Arc<CertifiedKey>, Error> {
        let chain = certificates(&self.certificate_pem)?;
        if chain.is_empty() {
            return Err(tls_error("no certificate in the identity", "empty".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|error| tls_error("cannot read a private key", error.into()))?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|error| tls_error("cannot use the private key", error.into()))?;
        Ok(Arc::new(CertifiedKey::new(chain, signing)))
    }
}

/// The server side of TLS: the certificate presented now (none yet: every handshake is refused).
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
    current: Arc<Current>,
}

#[derive(Debug, Default)]
struct Current(Mutex<Option<Arc<CertifiedKey>>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        lock(&self.0).clone()
    }
}

impl ServerTls {
    /// A server with no certificate yet; [`ServerTls::present`] gives it one.
    pub fn waiting() -> Result<ServerTls, Error> {
        let current = Arc::new(Current::default());
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| tls_error("cannot configure TLS", error.into()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        Ok(ServerTls { config: Arc::new(config), current })
    }

    /// A server presenting `identity` from the start.
    pub fn new(identity: &Identity) -> Result<ServerTls, Error> {
        let server = ServerTls::waiting()?;
        server.present(identity)?;
        Ok(server)
    }

    /// Presents `identity` from the next handshake on.
    pub fn present(&self, identity: &Identity) -> Result<(), Error> {
        let key = identity.certified_key()?;
        *lock(&self.current.0) = Some(key);
        Ok(())
    }

    /// What accepts TLS connections with the certificate presented now.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ServerTls(…)")
    }
}

/// The client side of TLS: trusts the cluster's authority alone, and only a certificate naming `expected` — and,
/// when pinned, only the one certificate with that sha256.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    expected: ServerName<'static>,
    pin: Option<String>,
}

impl ClientTls {
    /// A client that trusts the authority `ca_pem` and expects the other end to be `expected` (an identity).
    pub fn new(ca_pem: &str, expected: &str) -> Result<ClientTls, Error> {
        ClientTls::pinned(ca_pem, expected, None)
    }

    /// As [`ClientTls::new`], taking only the certificate whose sha256 (of its DER bytes, hex) is `pin` when
    /// there is one: the control plane pins each agent's latest certificate, so that one it issued before (to a
    /// machine since forgotten, or to the same agent before it joined again) opens nothing, though it is still
    /// valid.
    pub fn pinned(ca_pem: &str, expected: &str, pin: Option<&str>) -> Result<ClientTls, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in certificates(ca_pem)? {
            roots.add(certificate).map_err(|error| tls_error("cannot trust the cluster's authority", error.into()))?;
        }
        let expected = ServerName::try_from(expected.to_string())
            .map_err(|error| tls_error(&format!("`{expected}` is not a name a certificate can have"), error.into()))?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|error| tls_error("cannot trust the cluster's authority", error.into()))?;
        let pin = pin.map(str::to_string);
        let verifier = Arc::new(Expect { inner, expected: expected.clone(), pin: pin.clone() });
        Ok(ClientTls { config: Arc::new(client_config(verifier)?), expected, pin })
    }

    /// The sha256 of the one certificate it takes, when pinned.
    pub fn pin(&self) -> Option<&str> {
        self.pin.as_deref()
    }

    /// A client that takes any certificate: for fetching the authority itself, which the caller then checks
    /// against the hash it was given, and for health checks, which send nothing secret.
    pub fn trusting_anyone() -> Result<ClientTls, Error> {
        let config = client_config(Arc::new(Anyone(provider())))?;
        Ok(ClientTls {
            config: Arc::new(config),
            expected: ServerName::try_from(SERVER_IDENTITY).map_err(|error| tls_error("name", error.into()))?,
            pin: None,
        })
    }

    /// The configuration, for an HTTP client (`reqwest::ClientBuilder::use_preconfigured_tls`).
    pub fn config(&self) -> rustls::ClientConfig {
        (*self.config).clone()
    }

    /// TLS over `stream`, checked as [`ClientTls::new`] says.
    pub async fn connect(
        &self,
        stream: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        tokio_rustls::TlsConnector::from(self.config.clone()).connect(self.expected.clone(), stream).await
    }
}

/// Two clients are the same when they expect the same name and pin the same certificate: a process trusts one
/// authority.
impl PartialEq for ClientTls {
    fn eq(&self, other: &ClientTls) -> bool {
        self.expected == other.expected && self.pin == other.pin
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "ClientTls({:?}, pin {:?})", self.expected, self.pin)
    }
}

fn client_config(verifier: Arc<dyn ServerCertVerifier>) -> Result<rustls::ClientConfig, Error> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| tls_error("cannot configure TLS", error.into()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Checks a server's chain against the cluster's authority for the name expected, whatever name was dialled, and
/// the certificate itself against the pin, if any.
#[derive(Debug)]
struct Expect {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    expected: ServerName<'static>,
    pin: Option<String>,
}

impl ServerCertVerifier for Expect {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(end_entity, intermediates, &self.expected, ocsp_response, now)?;
        match &self.pin {
            Some(pin) if stratum_ml::data::sha256_hex(end_entity.as_ref()) != *pin => Err(rustls::Error::General(
                format!("{:?} presented a certificate the control plane no longer stands by", self.expected),
            )),
            _ => Ok(verified),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Takes any certificate, checking only that the handshake's signatures are made with its key.
#[derive(Debug)]
struct Anyone(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Anyone {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
