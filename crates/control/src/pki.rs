//! The cluster's certificate authority and its join string. `stratum server` makes the authority on first start
//! (`STATE_DIR/tls/ca.pem` and `ca.key`, readable by its user alone) and signs with it its own certificate at every
//! start and each agent's when it joins. A client fetches the authority's certificate from `GET /v1/cluster/ca`
//! over a connection it cannot check yet ([`fetch_authority`]) and accepts it only if the control plane proves it
//! with the client's token (an HMAC under each token comes with it), or if it has the sha256 a join string pins
//! (`stratum1:SHA256:TOKEN`, as k3s's tokens carry their CA's hash); from then on it trusts that authority alone.
//!
//! Certificates name what they are ([`stratum_dataplane::tls`]): a client checks that name, not the address it
//! dialled, so no one needs to list the addresses of machines. The control plane's certificate also names the
//! addresses an operator's browser or `curl` may use (`localhost`, the machine's name, `--tls-name`).

use crate::Error;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};
use std::time::Duration;
use stratum_dataplane::tls::{ClientTls, Identity, PROOF_HEADER, certificate_sha256, proves};

/// The prefix of a join string; the version in it changes if its shape ever does.
const JOIN_PREFIX: &str = "stratum1:";

fn pki_error(what: &str, source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Tls(format!("{what}: {source}").into())
}

/// The cluster's certificate authority.
pub struct Authority {
    certificate_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Authority(…)")
    }
}

/// The authority's certificate and key in a folder.
fn files(folder: &Path) -> (PathBuf, PathBuf) {
    (folder.join("ca.pem"), folder.join("ca.key"))
}

/// The authority's parameters: the same every time, so that an issuer made again from its kept key signs as the
/// one that made the certificate did.
fn authority_parameters() -> CertificateParams {
    let mut parameters = CertificateParams::default();
    parameters.distinguished_name.push(DnType::CommonName, "Stratum cluster authority");
    parameters.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    parameters.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let year = this_year();
    parameters.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    parameters.not_after = rcgen::date_time_ymd(year + 20, 1, 1);
    parameters
}

/// The calendar year now, near enough for validity periods that start a year back.
fn this_year() -> i32 {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    1970 + (seconds / 31_556_952) as i32
}

impl Authority {
    /// The authority kept in `folder` (`ca.pem`, `ca.key`), made there when the folder has none.
    pub fn open(folder: &Path) -> Result<Authority, Error> {
        let (certificate_file, key_file) = files(folder);
        if certificate_file.exists() || key_file.exists() {
            let read = |path: &Path| {
                std::fs::read_to_string(path)
                    .map_err(|error| pki_error(&format!("cannot read {}", path.display()), error))
            };
            let certificate_pem = read(&certificate_file)?;
            let key = KeyPair::from_pem(&read(&key_file)?)
                .map_err(|error| pki_error(&format!("{} holds no key", key_file.display()), error))?;
            return Ok(Authority { certificate_pem, issuer: Issuer::new(authority_parameters(), key) });
        }
        let key = KeyPair::generate().map_err(|error| pki_error("cannot make the authority's key", error))?;
        let certificate =
            authority_parameters().self_signed(&key).map_err(|error| pki_error("cannot make the authority", error))?;
        let write = |path: &Path, text: &str| {
            crate::files::write_secret(path, text.as_bytes())
                .map_err(|error| pki_error(&format!("cannot write {}", path.display()), error))
        };
        // The key first: a certificate without its key would be read as an authority next time and fail.
        write(&key_file, &key.serialize_pem())?;
        write(&certificate_file, &certificate.pem())?;
        tracing::info!(folder = %folder.display(), "made the cluster's certificate authority");
        Ok(Authority { certificate_pem: certificate.pem(), issuer: Issuer::new(authority_parameters(), key) })
    }

    /// The authority's certificate, which clients trust.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The sha256 of the authority's certificate, as join strings carry it.
    pub fn sha256(&self) -> Result<String, Error> {
        Ok(certificate_sha256(&self.certificate_pem)?)
    }

    /// A new key and a certificate for `identity`, also valid for the names and addresses in `also`.
    pub fn issue(&self, identity: &str, also: &[String]) -> Result<Identity, Error> {
        let mut names = vec![identity.to_string()];
        names.extend(also.iter().filter(|name| !name.is_empty()).cloned());
        names.dedup();
        let mut parameters = CertificateParams::new(names)
            .map_err(|error| pki_error(&format!("`{identity}` cannot be named in a certificate"), error))?;
        parameters.distinguished_name.push(DnType::CommonName, identity);
        parameters.use_authority_key_identifier_extension = true;
        parameters.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        parameters.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let year = this_year();
        parameters.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
        parameters.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
        let key = KeyPair::generate().map_err(|error| pki_error("cannot make a key", error))?;
        let certificate = parameters
            .signed_by(&key, &self.issuer)
            .map_err(|error| pki_error(&format!("cannot sign a certificate for `{identity}`"), error))?;
        Ok(Identity { certificate_pem: certificate.pem(), key_pem: key.serialize_pem() })
    }
}

/// Fetches the cluster's authority from the control plane at `server` (`https://host:port`) over a connection
/// whose certificate is not checked yet, and checks what came: against `pinned` (a sha256 from a join string)
/// when given, else against the proof made with `token`. `Ok(Err(Error::Unreachable))`: no answer yet (try again
/// later); `Err`: what came is not the cluster's authority.
pub async fn fetch_authority(server: &str, token: &str, pinned: Option<&str>) -> Result<Result<String, Error>, Error> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .use_preconfigured_tls(ClientTls::trusting_anyone()?.config())
        .build()
        .map_err(|error| Error::Tls(format!("HTTP client: {error}").into()))?;
    let url = format!("{}/v1/cluster/ca", server.trim_end_matches('/'));
    let response = match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            let source = format!("it answered {}", response.status()).into();
            return Ok(Err(Error::Unreachable { url, source }));
        }
        Err(error) => return Ok(Err(Error::Unreachable { url, source: error.into() })),
    };
    let proof = response.headers().get(PROOF_HEADER).and_then(|value| value.to_str().ok()).unwrap_or("").to_string();
    let pem = match response.text().await {
        Ok(pem) => pem,
        Err(error) => return Ok(Err(Error::Unreachable { url, source: error.into() })),
    };
    let refused = |message: String| Err(Error::Refused(message));
    match pinned {
        Some(pinned) => {
            let hash = certificate_sha256(&pem)?;
            if hash != pinned {
                return refused(format!(
                    "the control plane at {server} presents an authority whose sha256 is {hash}, not the {pinned} of \
                     the join string: a wrong join string, or someone in between"
                ));
            }
        }
        None => {
            if !proves(&proof, token, &pem) {
                return refused(format!(
                    "the control plane at {server} cannot prove its authority with this token: a wrong token, or \
                     someone in between"
                ));
            }
        }
    }
    Ok(Ok(pem))
}

/// What an agent needs to join: the authority's sha256 and the join token, written `stratum1:SHA256:TOKEN`.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinString {
    /// The sha256 of the authority's certificate.
    pub ca_sha256: String,
    /// The join token.
    pub token: String,
}

impl std::fmt::Debug for JoinString {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "JoinString({}, …)", self.ca_sha256)
    }
}

impl JoinString {
    /// The join string of `token`, or `None` when `text` is a plain token (no authority to pin).
    pub fn parse(text: &str) -> Result<Option<JoinString>, Error> {
        let Some(rest) = text.strip_prefix(JOIN_PREFIX) else { return Ok(None) };
        let (hash, token) = rest.split_once(':').ok_or(Error::JoinString("a join string is stratum1:SHA256:TOKEN"))?;
        if hash.len() != 64 || !hash.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(Error::JoinString("a join string's second part is the authority's sha256: 64 hex digits"));
        }
        if token.is_empty() {
            return Err(Error::JoinString("a join string ends with the join token, and this one has none"));
        }
        Ok(Some(JoinString { ca_sha256: hash.to_ascii_lowercase(), token: token.to_string() }))
    }

    /// The text form, for an agent's `--join-token`.
    pub fn render(&self) -> String {
        format!("{JOIN_PREFIX}{}:{}", self.ca_sha256, self.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum_dataplane::tls::{ServerTls, agent_identity};

    #[test]
    fn an_authority_is_made_once_and_read_back_signing_the_same() {
        let folder = tempfile::tempdir().unwrap();
        let made = Authority::open(folder.path()).unwrap();
        let again = Authority::open(folder.path()).unwrap();
        assert_eq!(made.certificate_pem(), again.certificate_pem());
        assert_eq!(made.sha256().unwrap().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(folder.path().join("ca.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // What the authority read back signs is trusted with the certificate first made.
        let identity = again.issue(&agent_identity("cloud_workers-1"), &[]).unwrap();
        ServerTls::new(&identity).unwrap();
        ClientTls::new(made.certificate_pem(), &agent_identity("cloud_workers-1")).unwrap();
    }

    #[test]
    fn join_strings_read_back_and_plain_tokens_are_not_join_strings() {
        let join = JoinString { ca_sha256: "ab".repeat(32), token: "se:cret".into() };
        assert_eq!(JoinString::parse(&join.render()).unwrap(), Some(join));
        assert_eq!(JoinString::parse("plain-token").unwrap(), None);
        assert!(JoinString::parse("stratum1:abc:token").unwrap_err().to_string().contains("64 hex digits"));
        assert!(JoinString::parse(&format!("stratum1:{}:", "0".repeat(64))).unwrap_err().to_string().contains("no"));
    }

    /// A TLS handshake between a server presenting `identity` and a client expecting `expected`.
    async fn handshake(authority: &Authority, presented: Option<&str>, expected: &str) -> std::io::Result<()> {
        let identity = presented.map(|presented| authority.issue(presented, &[]).unwrap());
        pinned_handshake(authority, identity.as_ref(), expected, None).await
    }

    /// As [`handshake`], presenting `identity` to a client that pins the certificate whose sha256 is `pin`.
    async fn pinned_handshake(
        authority: &Authority,
        identity: Option<&stratum_dataplane::tls::Identity>,
        expected: &str,
        pin: Option<&str>,
    ) -> std::io::Result<()> {
        let server = ServerTls::waiting().unwrap();
        if let Some(identity) = identity {
            server.present(identity).unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = server.acceptor();
        let accepting = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(stream).await;
        });
        let client = ClientTls::pinned(authority.certificate_pem(), expected, pin).unwrap();
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let result = client.connect(stream).await.map(|_| ());
        accepting.abort();
        result
    }

    #[tokio::test]
    async fn a_pinned_client_takes_only_the_agent_s_latest_certificate() {
        // edge1 joined twice (or a machine replaced a forgotten edge1): both certificates are valid and name it,
        // but the control plane pins the latest, and the earlier one opens nothing.
        let folder = tempfile::tempdir().unwrap();
        let authority = Authority::open(folder.path()).unwrap();
        let edge = agent_identity("edge1");
        let (earlier, latest) = (authority.issue(&edge, &[]).unwrap(), authority.issue(&edge, &[]).unwrap());
        let pin = stratum_dataplane::tls::certificate_sha256(&latest.certificate_pem).unwrap();
        pinned_handshake(&authority, Some(&latest), &edge, Some(&pin)).await.unwrap();
        pinned_handshake(&authority, Some(&earlier), &edge, Some(&pin)).await.unwrap_err();
        pinned_handshake(&authority, Some(&earlier), &edge, None).await.unwrap();
    }

    #[tokio::test]
    async fn a_client_takes_only_the_name_it_expects_from_the_authority_it_trusts() {
        let folder = tempfile::tempdir().unwrap();
        let authority = Authority::open(folder.path()).unwrap();
        let edge = agent_identity("edge1");
        handshake(&authority, Some(&edge), &edge).await.unwrap();
        // Another agent's certificate, though from the same authority, is not edge1's.
        handshake(&authority, Some(&agent_identity("fog1")), &edge).await.unwrap_err();
        // A server with no certificate yet refuses every handshake.
        handshake(&authority, None, &edge).await.unwrap_err();
        // A certificate for the right name from another authority is refused.
        let elsewhere = tempfile::tempdir().unwrap();
        let other = Authority::open(elsewhere.path()).unwrap();
        let server = ServerTls::new(&other.issue(&edge, &[]).unwrap()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = server.acceptor();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(stream).await;
        });
        let client = ClientTls::new(authority.certificate_pem(), &edge).unwrap();
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        assert!(client.connect(stream).await.is_err());
    }
}
