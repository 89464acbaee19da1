//! A throwaway `redis-server` for tests: started on a free loopback port,
//! without persistence, killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` of the test's own.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    /// With TLS: the PEM of the CA that signed the server's certificate.
    ca_pem: Option<String>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one. Without `redis-server` on the PATH: prints a notice and
    /// returns `None` (the test passes), unless `AUTH_REQUIRE_REDIS=1`,
    /// which makes it panic (the test fails).
    pub fn start() -> Option<Self> {
        Self::launch(false, &[])
    }

    /// Starts one that speaks TLS only, with a certificate for 127.0.0.1
    /// signed by a CA made for it ([`RedisServer::ca_pem`]); URL
    /// [`RedisServer::tls_url`]. Skipped like [`RedisServer::start`].
    pub fn start_tls() -> Option<Self> {
        Self::launch(true, &[])
    }

    fn launch(tls: bool, extra: &[&str]) -> Option<Self> {
        Self::launch_with(tls.then(tls_files), extra)
    }

    /// Starts one, speaking TLS only with `tls` (the CA's PEM, the
    /// server's certificate and key) when given.
    fn launch_with(tls: Option<(String, String, String)>, extra: &[&str]) -> Option<Self> {
        let required = std::env::var("AUTH_REQUIRE_REDIS").is_ok_and(|v| v == "1");
        if Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_err() {
            assert!(!required, "AUTH_REQUIRE_REDIS=1 but redis-server is not installed (apt-get install redis-server)");
            eprintln!("notice: redis-server is not installed; skipping a Redis test (apt-get install redis-server)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = tempfile::tempdir().ok()?;
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]).arg("--dir").arg(dir.path());
        command.args(extra);
        let ca_pem = if let Some((ca, cert, key)) = tls {
            let (cert_path, key_path) = (dir.path().join("server.pem"), dir.path().join("server.key"));
            let ca_path = dir.path().join("ca.pem");
            std::fs::write(&cert_path, cert).expect("write the test certificate");
            std::fs::write(&key_path, key).expect("write the test key");
            std::fs::write(&ca_path, &ca).expect("write the test CA");
            command.args(["--port", "0", "--tls-port", &port.to_string(), "--tls-auth-clients", "no"]);
            command.arg("--tls-cert-file").arg(cert_path).arg("--tls-key-file").arg(key_path);
            // The CA is what nodes of a TLS cluster check each other with.
            command.arg("--tls-ca-cert-file").arg(ca_path);
            Some(ca)
        } else {
            command.args(["--port", &port.to_string()]);
            None
        };
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("redis-server starts");
        let server = Self { child, port, ca_pem, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The loopback port it listens on (TLS only, for a server started
    /// with [`RedisServer::start_tls`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://127.0.0.1:PORT/0` (a server started with
    /// [`RedisServer::start_tls`]).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.port)
    }

    /// The PEM of the CA that signed a TLS server's certificate.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// What `redis-cli` printed for `args` against this server (nothing if
    /// it could not run): to look at or change the keys in a test.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {signal} failed");
    }
}

/// A Redis Cluster of the test's own: three primaries on free loopback
/// ports, every slot assigned (`redis-cli --cluster create`), killed when
/// dropped. Skipped like [`RedisServer::start`].
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the three nodes and joins them; returns once every node says
    /// `cluster_state:ok`.
    pub fn start() -> Option<Self> {
        Self::start_with(None, false)
    }

    /// Like [`RedisCluster::start`], with a replica for each primary (six
    /// nodes); returns once every replica is in sync.
    pub fn start_with_replicas() -> Option<Self> {
        Self::start_with(None, true)
    }

    /// Like [`RedisCluster::start`], every node speaking TLS only (the
    /// cluster bus too), with certificates for 127.0.0.1 signed by one CA
    /// made for it ([`RedisServer::ca_pem`] of any node); URL
    /// [`RedisCluster::tls_url`].
    pub fn start_tls() -> Option<Self> {
        let authority = crate::tls::Authority::new();
        let server = authority.issue("127.0.0.1", true);
        Self::start_with(Some((authority.ca_pem(), server.certificate, server.private_key)), false)
    }

    fn start_with(tls: Option<(String, String, String)>, replicas: bool) -> Option<Self> {
        let mut cluster =
            vec!["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"];
        if tls.is_some() {
            cluster.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
        }
        if replicas {
            cluster.extend(["--repl-diskless-sync-delay", "0"]);
        }
        let count = if replicas { 6 } else { 3 };
        let nodes: Vec<RedisServer> =
            (0..count).map(|_| RedisServer::launch_with(tls.clone(), &cluster)).collect::<Option<Vec<_>>>()?;
        let ca_path = nodes[0]._dir.path().join("ca.pem");
        let tls_args: Vec<String> = match &tls {
            Some(_) => vec!["--tls".into(), "--cacert".into(), ca_path.display().to_string()],
            None => Vec::new(),
        };
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .args(&tls_args)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", if replicas { "1" } else { "0" }, "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(created.is_ok_and(|s| s.success()), "redis-cli --cluster create failed (is redis-cli installed?)");
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args(&tls_args)
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not become ready: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Each replica in sync with its primary.
        for node in nodes.iter().filter(|_| replicas) {
            loop {
                let info = redis_cli(node.port, &["info", "replication"]);
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(Instant::now() < deadline, "a replica did not sync: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(Self { nodes })
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`: every node
    /// as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// `rediss+cluster://...`, for a cluster started with
    /// [`RedisCluster::start_tls`].
    pub fn tls_url(&self) -> String {
        self.url().replacen("redis+cluster", "rediss+cluster", 1)
    }

    /// The nodes (primaries, and replicas when started with them), e.g. to
    /// read what each holds.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// A primary, one replica and one Sentinel watching them (service
/// `mymaster`, quorum 1), each on a free loopback port, killed when
/// dropped. Skipped like [`RedisServer::start`].
#[derive(Debug)]
pub struct RedisSentinel {
    primary: RedisServer,
    replica: RedisServer,
    sentinel: Child,
    sentinel_port: u16,
    _dir: tempfile::TempDir,
}

impl RedisSentinel {
    /// The service name the Sentinel watches.
    pub const SERVICE: &'static str = "mymaster";

    /// Starts the three; returns once the Sentinel knows the replica.
    pub fn start() -> Option<Self> {
        // No 5 s wait before a full sync (Redis 7's default), on either:
        // the replica serves them once promoted.
        let primary = RedisServer::launch(false, &["--repl-diskless-sync-delay", "0"])?;
        let replica = RedisServer::launch(
            false,
            &["--replicaof", "127.0.0.1", &primary.port.to_string(), "--repl-diskless-sync-delay", "0"],
        )?;
        let sentinel_port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = tempfile::tempdir().ok()?;
        let config = dir.path().join("sentinel.conf");
        let text = format!(
            "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {} 127.0.0.1 {} 1\n\
             sentinel down-after-milliseconds {} 1000\nsentinel failover-timeout {} 5000\n",
            dir.path().display(),
            Self::SERVICE,
            primary.port,
            Self::SERVICE,
            Self::SERVICE
        );
        std::fs::write(&config, text).expect("write the Sentinel's configuration");
        let sentinel = Command::new("redis-server")
            .arg(&config)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel starts");
        let this = Self { primary, replica, sentinel, sentinel_port, _dir: dir };
        let replica_port = this.replica.port.to_string();
        this.wait_for("the replica to be in sync", |sentinel| {
            let info = redis_cli(sentinel.replica.port, &["info", "replication"]);
            info.contains("master_link_status:up")
        });
        // Online for the primary only at its first acknowledgement: until
        // then a WAIT counts it out.
        this.wait_for("the primary to count its replica", |sentinel| {
            redis_cli(sentinel.primary.port, &["info", "replication"]).contains("state=online")
        });
        this.wait_for("the Sentinel to know the replica", |sentinel| {
            sentinel.ask(&["sentinel", "replicas", Self::SERVICE]).contains(&replica_port)
        });
        // The Sentinel looks at the servers every 100 ms rather than every
        // 10 s (Redis 7's SENTINEL DEBUG; older ones ignore it), so that it
        // sees a demoted primary in sync, and may fail over again, within
        // a second.
        // And it does not go into TILT (no failover for 30 s) when a loaded
        // machine delays its timer.
        this.ask(&[
            "sentinel",
            "debug",
            "info-period",
            "100",
            "ping-period",
            "100",
            "publish-period",
            "100",
            "tilt-trigger",
            "30000",
            "tilt-period",
            "1000",
        ]);
        Some(this)
    }

    /// `redis+sentinel://127.0.0.1:PORT/mymaster/0`.
    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{}/0", self.sentinel_port, Self::SERVICE)
    }

    /// The port of the primary the Sentinel names now.
    pub fn primary_port(&self) -> Option<u16> {
        let answer = self.ask(&["sentinel", "get-master-addr-by-name", Self::SERVICE]);
        answer.lines().nth(1).and_then(|port| port.trim().parse().ok())
    }

    /// The first primary and the replica, as started.
    pub fn servers(&self) -> (&RedisServer, &RedisServer) {
        (&self.primary, &self.replica)
    }

    /// Waits (up to 30 s) until the replica has every write the primary
    /// took so far (its replication offset reaches the primary's):
    /// replication is asynchronous, and a failover before it loses the
    /// writes not yet copied.
    pub fn wait_for_replication(&self) {
        let offset = |port: u16, field: &str| -> Option<u64> {
            let info = redis_cli(port, &["info", "replication"]);
            info.lines().find_map(|line| line.strip_prefix(field)).and_then(|v| v.trim().parse().ok())
        };
        let primary = self.primary_port().unwrap_or(self.primary.port);
        let replica = if primary == self.primary.port { self.replica.port } else { self.primary.port };
        let target = offset(primary, "master_repl_offset:").unwrap_or(0);
        self.wait_for("the replica to catch up", |_| {
            offset(replica, "slave_repl_offset:").is_some_and(|at| at >= target)
        });
    }

    /// Makes the replica the primary (`SENTINEL FAILOVER`); returns once
    /// the Sentinel names it, it answers as a primary, and the old primary
    /// is its replica again, in sync (until then the old one may still
    /// answer as a primary, or with an empty dataset while it resyncs).
    pub fn failover(&self) {
        let before = self.primary_port();
        // The Sentinel refuses while it still finishes the previous one
        // (INPROG), or until it has seen the old primary serve as a
        // replica in sync (NOGOODSLAVE).
        // A failover the Sentinel gave up on (its timeout passed on a
        // loaded machine) is asked for again.
        for _ in 0..3 {
            self.wait_for("the Sentinel to start the failover", |sentinel| {
                sentinel.ask(&["sentinel", "failover", Self::SERVICE]).trim() == "OK"
            });
            if self.is_promoted(before, Duration::from_secs(10)) {
                break;
            }
        }
        self.promoted(before);
        self.followed(before);
    }

    /// The primary stops answering (frozen, as a crashed or cut-off host):
    /// the Sentinel finds it down after a second and promotes the replica;
    /// then it comes back, and returns once it follows the new primary, in
    /// sync (what it took while the replica had not copied it is lost).
    pub fn fail_primary(&self) {
        let before = self.primary_port();
        let server = if before == Some(self.primary.port) { &self.primary } else { &self.replica };
        server.signal("-STOP");
        // Woken whether or not the Sentinel promoted in time (`promoted` then says so).
        self.is_promoted(before, Duration::from_secs(30));
        server.signal("-CONT");
        self.promoted(before);
        self.followed(before);
    }

    /// Whether the Sentinel names a primary other than `before` that
    /// answers as one within `within`.
    fn is_promoted(&self, before: Option<u16>, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let now = self.primary_port();
            if now.is_some() && now != before && redis_cli(now.unwrap_or(0), &["role"]).starts_with("master") {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the Sentinel names a primary other than `before` that
    /// answers as one.
    fn promoted(&self, before: Option<u16>) {
        assert!(self.is_promoted(before, Duration::from_secs(30)), "timed out waiting for the failover");
    }

    /// Waits until the primary `before` is a replica again, in sync.
    fn followed(&self, before: Option<u16>) {
        let old = before.unwrap_or(self.primary.port);
        self.wait_for("the old primary to follow the new one", |sentinel| {
            let info = redis_cli(old, &["info", "replication"]);
            let new = sentinel.primary_port().unwrap_or(0);
            info.contains("role:slave")
                && info.contains("master_link_status:up")
                && redis_cli(new, &["info", "replication"]).contains("state=online")
        });
    }

    fn ask(&self, args: &[&str]) -> String {
        redis_cli(self.sentinel_port, args)
    }

    fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let _ = self.sentinel.kill();
        let _ = self.sentinel.wait();
    }
}

/// What `redis-cli -p port args...` printed (nothing if it could not run).
fn redis_cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A CA certificate, and a server certificate for 127.0.0.1 it signed with
/// the server's key, all PEM.
fn tls_files() -> (String, String, String) {
    let authority = crate::tls::Authority::new();
    let server = authority.issue("127.0.0.1", true);
    (authority.ca_pem(), server.certificate, server.private_key)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
