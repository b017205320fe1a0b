//! Real Redis servers for tests: [`RedisServer`] starts `redis-server` on a
//! free loopback port without persistence, [`RedisCluster`] three of them
//! joined into a Redis Cluster with `redis-cli --cluster create`. Both stop
//! (and delete their working directory) when dropped.
//!
//! Needs `redis-server` and `redis-cli` on the `PATH` (Debian package
//! `redis-server`; CI installs it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A `redis-server` process on `127.0.0.1`, stopped when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    tls: bool,
}

impl RedisServer {
    /// Starts a server on a free port (`--save '' --appendonly no`) and waits
    /// until it answers `PING`.
    ///
    /// # Panics
    /// When `redis-server` is missing or does not come up within 10 s.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// The same with extra `redis-server` arguments (e.g. `--requirepass x`,
    /// `--user …`).
    pub fn start_with(args: &[&str]) -> RedisServer {
        let port = free_port(false);
        RedisServer::start_on(port, args.iter().map(|a| (*a).to_owned()).collect())
    }

    fn start_on(port: u16, extra: Vec<String>) -> RedisServer {
        let dir = scratch_dir(port);
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            extra,
            tls: false,
        };
        server.spawn();
        server
    }

    /// Starts a server that speaks only TLS (`rediss://`), with a fresh
    /// certificate authority and a server certificate for `127.0.0.1` made
    /// by the `openssl` command; [`RedisServer::ca_certificate`] is the CA to
    /// trust. Clients need no certificate of their own.
    ///
    /// # Panics
    /// When `openssl` or a TLS-enabled `redis-server` is missing.
    pub fn start_tls() -> RedisServer {
        let port = free_port(false);
        let dir = scratch_dir(port);
        make_certificates(&dir);
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let extra = vec![
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            file("server.crt"),
            "--tls-key-file".to_owned(),
            file("server.key"),
            "--tls-ca-cert-file".to_owned(),
            file("ca.crt"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            extra,
            tls: true,
        };
        server.spawn();
        server
    }

    /// The PEM certificate of the authority that signed a
    /// [`start_tls`](RedisServer::start_tls) server's certificate.
    pub fn ca_certificate(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).unwrap_or_default()
    }

    fn spawn(&mut self) {
        // A TLS server listens on its TLS port only.
        let plain_port = if self.tls { 0 } else { self.port };
        let child = Command::new("redis-server")
            .args(["--port", &plain_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is needed for these tests (Debian: apt-get install redis-server)");
        self.child = Some(child);
        if self.tls {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.cli(&["ping"]) != "PONG" {
                assert!(
                    Instant::now() < deadline,
                    "redis-server (TLS) did not start on port {}",
                    self.port
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            wait_for_pong(self.port);
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli -p {port} args…` and returns its trimmed output.
    pub fn cli(&self, args: &[&str]) -> String {
        if self.tls {
            let ca = self.dir.join("ca.crt").to_string_lossy().into_owned();
            let mut all = vec!["--tls", "--cacert", &ca];
            all.extend_from_slice(args);
            cli(self.port, &all)
        } else {
            cli(self.port, args)
        }
    }

    /// Kills the server (`SIGKILL`): clients see the connection drop and new
    /// connections refused.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`RedisServer::kill`]), empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Freezes the server (`SIGSTOP`): connections open but nothing answers,
    /// like an overloaded or partitioned Redis. [`RedisServer::resume`] ends it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Undoes [`RedisServer::pause`] (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").arg(signal).arg(child.id().to_string()).status();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Three `redis-server --cluster-enabled yes` masters on loopback, joined by
/// `redis-cli --cluster create`, every slot assigned; stopped when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the three masters, creates the cluster and waits until every
    /// node reports `cluster_state:ok`.
    ///
    /// # Panics
    /// When `redis-server`/`redis-cli` are missing or the cluster does not
    /// form within 20 s.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = free_port(true);
                let config = format!("nodes-{port}.conf");
                RedisServer::start_on(
                    port,
                    ["--cluster-enabled", "yes", "--cluster-config-file", &config]
                        .iter()
                        .map(|a| (*a).to_owned())
                        .collect(),
                )
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is needed for these tests");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            while !node.cli(&["cluster", "info"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "the Redis Cluster did not become ready");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, to kill or pause one.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// `redis://127.0.0.1:{port}` of each node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Runs `redis-cli -c` (follows redirections) against the first node.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut all = vec!["-c"];
        all.extend_from_slice(args);
        cli(self.nodes[0].port, &all)
    }

    /// The node holding `key` (by `CLUSTER KEYSLOT` and `CLUSTER SLOTS`
    /// through `redis-cli`): its index in [`RedisCluster::nodes`].
    pub fn node_of(&self, key: &str) -> usize {
        self.nodes
            .iter()
            .position(|node| {
                // A node answers a key's GET itself only if it owns the slot.
                !node.cli(&["get", key]).starts_with("MOVED")
            })
            .expect("some node owns every slot")
    }
}

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli is needed for these tests");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A port free on loopback now (and, for cluster nodes, its bus port + 10000).
fn free_port(with_bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        if !with_bus {
            return port;
        }
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A CA and a server certificate for 127.0.0.1 (P-256 keys, valid a day) in `dir`.
fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is needed for the TLS tests");
        assert!(status.success(), "openssl {args:?} failed");
    };
    let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &key,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "1",
                "-subj",
                "/CN=client-credentials test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &key,
            &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write san.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ]);
}

fn scratch_dir(port: u16) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cc-redis-{}-{port}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory for redis-server");
    dir
}

fn wait_for_pong(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut reply = [0u8; 64];
            if stream.write_all(b"PING\r\n").is_ok() {
                if let Ok(n) = stream.read(&mut reply) {
                    // "-NOAUTH" also means it is up (a password was set).
                    if reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH") {
                        return;
                    }
                }
            }
        }
        assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
