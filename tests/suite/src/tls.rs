//! A throwaway PKI for the mutual TLS (RFC 8705) scenarios, made with the
//! `openssl` command line tool when the peer starts: a CA, the peer's server
//! certificate for `127.0.0.1`, a client certificate the CA issued
//! (`tls_client_auth`, subject `CN=mtls-client`) and a self-signed client
//! certificate (`self_signed_tls_client_auth`). P-256 keys, valid two days.
//!
//! `openssl` rather than a certificate crate: it is on every machine this
//! suite runs on, and the workspace then needs no X.509 writer of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its private key, as PEM.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate.
    pub cert_pem: String,
    /// Its PKCS#8 private key.
    pub key_pem: String,
}

/// The files of one test PKI.
#[derive(Debug)]
pub struct TestPki {
    /// The directory holding `ca.pem`, `server.pem`, `server.key`,
    /// `self-signed.pem` (what the peer reads) and the client files.
    pub dir: PathBuf,
    /// The CA certificate, which the clients trust for the peer.
    pub ca_pem: String,
    /// The CA-issued client certificate.
    pub client: Identity,
    /// The self-signed client certificate.
    pub self_signed: Identity,
    _temp: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("the mTLS scenarios need the `openssl` command line tool: {e}"));
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

impl TestPki {
    /// Generates a fresh PKI in a temporary directory.
    ///
    /// # Panics
    ///
    /// When `openssl` is missing or fails.
    pub fn generate() -> TestPki {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path();
        let req_x509 = |key: &str, cert: &str, subject: &str, extra: &[&str]| {
            let mut args = vec!["req", "-x509"];
            args.extend(EC);
            args.extend(["-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", subject]);
            args.extend(extra);
            openssl(dir, &args);
        };
        req_x509("ca.key", "ca.pem", "/CN=client-credentials test CA", &[]);
        let issue = |name: &str, subject: &str, extensions: &str| {
            let (key, csr, cert, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.ext"),
            );
            std::fs::write(dir.join(&ext), extensions).expect("write the extensions");
            let mut args = vec!["req"];
            args.extend(EC);
            args.extend(["-nodes", "-keyout", &key, "-out", &csr, "-subj", subject]);
            openssl(dir, &args);
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &cert,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ],
            );
        };
        issue(
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        );
        issue(
            "client",
            "/CN=mtls-client",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        );
        req_x509(
            "self-signed.key",
            "self-signed.pem",
            "/CN=self-signed-mtls-client",
            &[
                "-addext",
                "basicConstraints=CA:FALSE",
                "-addext",
                "extendedKeyUsage=clientAuth",
            ],
        );
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).expect("a generated file");
        TestPki {
            dir: dir.to_owned(),
            ca_pem: read("ca.pem"),
            client: Identity {
                cert_pem: read("client.pem"),
                key_pem: read("client.key"),
            },
            self_signed: Identity {
                cert_pem: read("self-signed.pem"),
                key_pem: read("self-signed.key"),
            },
            _temp: temp,
        }
    }
}
