//! Certificates made in the test with rcgen: a CA, and leaf certificates it signs, written to
//! files portero can load; and rustls clients that trust the CA.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A test CA and the directory its files live in.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    /// The CA certificate, PEM.
    pub pem: String,
    dir: tempfile::TempDir,
}

/// A leaf certificate's files.
pub struct Leaf {
    /// PEM chain file.
    pub cert: PathBuf,
    /// PEM key file.
    pub key: PathBuf,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &pem).unwrap();
        Ca {
            params,
            key,
            pem,
            dir,
        }
    }

    /// The CA certificate's file.
    pub fn file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A rustls root store holding this CA.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        for cert in portero::tls::load_chain(&self.file()).unwrap() {
            roots.add(cert).unwrap();
        }
        roots
    }

    /// Issues a certificate for `names` (DNS names or IP addresses) with common name `cn` and
    /// `serial`, written as `{file}.pem` and `{file}.key` in the CA's directory.
    pub fn issue(&self, file: &str, cn: &str, names: &[&str], serial: u64) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::new(self.params.clone(), &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let leaf = Leaf {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}.key")),
        };
        write_atomically(&leaf.cert, &cert.pem());
        write_atomically(&leaf.key, &key.serialize_pem());
        leaf
    }
}

/// A rustls client config (aws-lc-rs) that trusts `ca`, speaks only `versions` and offers
/// `http/1.1` by ALPN.
pub fn rustls_client(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Replaces a file in one step, as certbot and Kubernetes do, so a reader never sees half.
pub fn write_atomically(path: &Path, text: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

/// A config with one HTTPS listener (`https`) serving `leaves` (with `tls_extra` in its
/// `[listener.tls]`), over one pool, with `extra` appended.
pub fn https_config(leaves: &[&Leaf], tls_extra: &str, backend: SocketAddr, extra: &str) -> String {
    let certs: Vec<String> = leaves
        .iter()
        .map(|l| {
            format!(
                "{{ cert = \"{}\", key = \"{}\" }}",
                l.cert.display(),
                l.key.display()
            )
        })
        .collect();
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n\
         [[listener]]\nname = \"https\"\naddress = \"127.0.0.1:0\"\n\
         [listener.tls]\ncertificates = [{}]\n{tls_extra}\n\
         [pool.app]\nbackends = [\"{backend}\"]\n{extra}\n",
        certs.join(", ")
    )
}
