//! A test PKI: a certificate authority of a test's own and server certificates it signs (rcgen), written
//! as PEM files, so a test can start a server with a TLS listener and clients that verify it — or that
//! trust another CA and must refuse it.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A certificate authority whose certificate lives at [`TestCa::ca_pem`].
pub struct TestCa {
    dir: PathBuf,
    name: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its private key, as PEM files.
pub struct ServerCert {
    /// The certificate (leaf only; clients hold the CA).
    pub cert: PathBuf,
    /// The PKCS#8 private key.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir).expect("certificate dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("benchop test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-signed CA");
        let ca = Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            issuer,
        };
        std::fs::write(ca.ca_pem(), ca.issuer.pem()).expect("write CA certificate");
        ca
    }

    /// The CA certificate (PEM), what a client is configured to trust.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by this CA, written to
    /// `dir/<server>.pem` and `dir/<server>-key.pem`.
    pub fn server(&self, server: &str, names: &[&str]) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params.distinguished_name.push(DnType::CommonName, server);
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign server certificate");
        let out = ServerCert {
            cert: self.dir.join(format!("{server}.pem")),
            key: self.dir.join(format!("{server}-key.pem")),
        };
        std::fs::write(&out.cert, cert.pem()).expect("write server certificate");
        std::fs::write(&out.key, key.serialize_pem()).expect("write server key");
        out
    }
}
