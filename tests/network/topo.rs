//! Network topologies in namespaces this test makes, inside the test
//! namespace of scripts/test.sh: each namespace is held by a `sleep` in
//! `unshare --net` (it disappears with that process, which is stopped by
//! its pid on drop, also when a test panics), configured with `nsenter`,
//! joined to the others by veth pairs. Addresses are from the documentation
//! ranges and exist only in here.
// Not every test uses every namespace handle (they are held to keep the
// namespaces alive).
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The server's interface address (private side of the NAT).
pub const SERVER_PRIVATE: &str = "10.88.0.2";
/// The router on the private side.
pub const ROUTER_PRIVATE: &str = "10.88.0.1";
/// The router's own public address (coturn listens here).
pub const ROUTER_PUBLIC: &str = "198.51.100.1";
/// The server's public address: the router maps it 1:1 to SERVER_PRIVATE.
pub const SERVER_PUBLIC: &str = "198.51.100.10";
/// The client, on the public side, with no route to the private network.
pub const CLIENT: &str = "198.51.100.20";
/// The router towards "the internet", where STUN and TURN servers live.
pub const ROUTER_INTERNET: &str = "203.0.113.1";
/// A host on "the internet" (coturn runs here).
pub const INTERNET_HOST: &str = "203.0.113.2";

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// One network namespace, held by a process.
pub struct Ns {
    pub name: &'static str,
    holder: Child,
}

impl Ns {
    pub fn new(name: &'static str) -> Ns {
        let holder = Command::new("unshare")
            .args(["--net", "--", "sleep", "900"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("unshare (util-linux) cannot start: {e}"));
        let ns = Ns { name, holder };
        // unshare makes the namespace, then execs sleep: until then the
        // process is still in ours.
        let ours = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(ns.path()).ok().as_ref() == Some(&ours) {
            assert!(Instant::now() < deadline, "namespace {name} not made");
            std::thread::sleep(Duration::from_millis(10));
        }
        ns.sh("ip link set lo up; sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
        ns
    }

    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid()))
    }

    /// `cmd` run inside this namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs a shell script in here; panics with its output when it fails.
    pub fn sh(&self, script: &str) {
        let out = self
            .command("sh")
            .args(["-ec", script])
            .output()
            .expect("nsenter (util-linux) runs");
        assert!(
            out.status.success(),
            "in namespace {}: `{script}` failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A veth pair between `a` and `b`, with these addresses (prefix /24).
pub fn link(a: &Ns, a_ip: &str, b: &Ns, b_ip: &str) {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let (an, bn) = (
        format!("x{}a{n}", std::process::id() % 100_000),
        format!("x{}b{n}", std::process::id() % 100_000),
    );
    let out = Command::new("sh")
        .args([
            "-ec",
            &format!(
                "ip link add {an} type veth peer name {bn}; \
                 ip link set {an} netns {}; ip link set {bn} netns {}",
                a.pid(),
                b.pid()
            ),
        ])
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "veth: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.sh(&format!(
        "ip addr add {a_ip}/24 dev {an}; ip link set {an} up"
    ));
    b.sh(&format!(
        "ip addr add {b_ip}/24 dev {bn}; ip link set {bn} up"
    ));
}

/// Server behind a router doing 1:1 NAT (SERVER_PUBLIC <-> SERVER_PRIVATE,
/// nftables DNAT and SNAT), and a client on the public side with no route
/// to the private network and, with `client_firewall`, a stateful firewall
/// that lets in only replies to its own traffic (as nearly every client
/// has; without it a server's check through the NAT reaches the client as
/// a peer-reflexive candidate and hides a missing PUBLIC_IP). A fourth
/// namespace is a host beyond the router ("the internet": the STUN/TURN
/// server), which sees the server's traffic from the public address; the
/// router's own addresses would not (locally delivered packets are not
/// SNATed).
pub struct NatTopology {
    pub server: Ns,
    pub router: Ns,
    pub client: Ns,
    pub internet: Ns,
}

impl NatTopology {
    pub fn new(client_firewall: bool) -> NatTopology {
        let server = Ns::new("server");
        let router = Ns::new("router");
        let client = Ns::new("client");
        let internet = Ns::new("internet");
        link(&server, SERVER_PRIVATE, &router, ROUTER_PRIVATE);
        link(&router, ROUTER_PUBLIC, &client, CLIENT);
        link(&router, ROUTER_INTERNET, &internet, INTERNET_HOST);
        internet.sh(&format!("ip route add default via {ROUTER_INTERNET}"));
        // The client reaches the internet host through the router, but has
        // no route to the private network.
        client.sh(&format!("ip route add 203.0.113.0/24 via {ROUTER_PUBLIC}"));
        server.sh(&format!(
            "ip route add default via {ROUTER_PRIVATE}; \
             echo '1024 14999' > /proc/sys/net/ipv4/ip_local_port_range"
        ));
        // The public address is the router's (it answers ARP for it), and
        // every packet to it goes to the server, every packet from the
        // server leaves from it.
        let dev = router_public_dev(&router);
        router.sh(&format!(
            "sysctl -qw net.ipv4.ip_forward=1; \
             ip addr add {SERVER_PUBLIC}/32 dev {dev}; \
             nft add table ip nat; \
             nft 'add chain ip nat pre {{ type nat hook prerouting priority dstnat; }}'; \
             nft 'add chain ip nat post {{ type nat hook postrouting priority srcnat; }}'; \
             nft add rule ip nat pre ip daddr {SERVER_PUBLIC} dnat to {SERVER_PRIVATE}; \
             nft add rule ip nat post ip saddr {SERVER_PRIVATE} snat to {SERVER_PUBLIC}"
        ));
        if client_firewall {
            client.sh(
                "nft add table inet fw; \
                 nft 'add chain inet fw input { type filter hook input priority 0; policy drop; }'; \
                 nft add rule inet fw input iifname lo accept; \
                 nft add rule inet fw input ct state established,related accept",
            );
        }
        NatTopology {
            server,
            router,
            client,
            internet,
        }
    }
}

/// The router's interface on the public side (the one with ROUTER_PUBLIC).
fn router_public_dev(router: &Ns) -> String {
    let out = router
        .command("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&format!("{ROUTER_PUBLIC}/")))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_owned)
        .expect("router has its public address")
}

/// Runs `f` on a thread of its own inside `ns` (setns), with a tokio
/// runtime made there: every socket its tasks open (the runtime's worker
/// and blocking threads inherit the namespace) belongs to `ns`. Returns
/// what `f` returns; a panic in it is a panic here.
pub async fn in_netns<F, Fut, T>(ns: &Path, f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let ns = ns.to_owned();
    tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || {
            let file = std::fs::File::open(&ns).expect("open the namespace");
            // SAFETY: setns on a valid descriptor of a network namespace;
            // it only changes this thread's namespace.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f())
        })
        .join()
    })
    .await
    .expect("join the namespace thread")
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// The real `rheo-sfu` binary inside `ns`, its log in a file; stopped by
/// pid on drop.
pub struct ServerProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl ServerProcess {
    pub fn start(ns: &Ns, env: &[(&str, &str)]) -> ServerProcess {
        Self::spawn(ns.command(env!("CARGO_BIN_EXE_rheo-sfu")), env)
    }

    /// In the test namespace itself.
    pub fn start_here(env: &[(&str, &str)]) -> ServerProcess {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_rheo-sfu")), env)
    }

    fn spawn(mut command: Command, env: &[(&str, &str)]) -> ServerProcess {
        let log = std::env::temp_dir().join(format!(
            "rheo-sfu-net-{}-{}.log",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start rheo-sfu");
        ServerProcess {
            child: Some(child),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its pid (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits until it listens (its log says so); panics if it exits first.
    pub fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.log_text().contains("listening") {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("server exited ({status}): {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "server not listening: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for it to exit by itself (bounded): its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

static SERIAL: AtomicU32 = AtomicU32::new(0);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// coturn (Debian `coturn`, `turnserver`) inside a namespace, with a
/// config file this test writes; stopped by its pid on drop.
pub struct Coturn {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Coturn {
    /// A STUN listener only (no relay, no auth) on `ip`:3478.
    pub fn stun_only(ns: &Ns, ip: &str) -> Coturn {
        Self::start(ns, ip, "stun-only\n")
    }

    /// A TURN server on `ip`:3478 with coturn's REST credentials
    /// (`use-auth-secret`, `static-auth-secret`), relaying from `ip`.
    pub fn with_secret(ns: &Ns, ip: &str, secret: &str) -> Coturn {
        Self::start(
            ns,
            ip,
            &format!(
                "use-auth-secret\nstatic-auth-secret={secret}\nrealm=rheo-sfu.test\n\
                 relay-ip={ip}\nmin-port=49152\nmax-port=49252\nfingerprint\n"
            ),
        )
    }

    fn start(ns: &Ns, ip: &str, extra: &str) -> Coturn {
        let dir = std::env::temp_dir().join(format!(
            "rheo-sfu-coturn-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("coturn dir");
        let port = 3478;
        let conf = dir.join("turnserver.conf");
        std::fs::write(
            &conf,
            format!(
                "listening-ip={ip}\nlistening-port={port}\nno-cli\nno-tls\nno-dtls\n\
                 simple-log\nlog-file=stdout\npidfile={pid}\nuserdb={db}\n{extra}",
                pid = dir.join("pid").display(),
                db = dir.join("turndb").display(),
            ),
        )
        .expect("coturn config");
        let log = std::fs::File::create(dir.join("log")).expect("coturn log");
        let child = ns
            .command("turnserver")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start turnserver ({e}): install Debian's coturn (scripts/test.sh does)"
                )
            });
        let mut c = Coturn {
            child: Some(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c.log_text().contains("Total General servers") {
            if let Some(status) = c.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("turnserver exited ({status}): {}", c.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "turnserver not ready: {}",
                c.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `tests/browser/netns-call.mjs` reported: two Chromium demo pages
/// in `ns`, each publishing and subscribing to the other at `url` with the
/// tokens given. `expect_media`: wait (up to `wait`) until both decode the
/// other; otherwise watch for `wait` and report. The script runs under a
/// bound (`wait` + 60 s) and is stopped by its pid past it; a run that
/// fails or prints no report panics with its output.
pub fn chromium_call(
    ns: &Ns,
    url: &str,
    room: &str,
    tokens: [&str; 2],
    expect_media: bool,
    wait: Duration,
) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run scripts/test.sh (it runs npm ci)"
    );
    let args = serde_json::json!({
        "url": url,
        "room": room,
        "tokens": tokens,
        "expect": if expect_media { "media" } else { "none" },
        "waitMs": wait.as_millis() as u64,
    });
    let out_path = std::env::temp_dir().join(format!(
        "rheo-sfu-chromium-{}-{}.out",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed)
    ));
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut child = ns
        .command("node")
        .arg("netns-call.mjs")
        .arg(args.to_string())
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("output file"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("node cannot start ({e}): scripts/test.sh installs it"));
    let deadline = Instant::now() + wait + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            // SIGTERM first: playwright closes the browser on it.
            // SAFETY: kill(2) on the pid of our own child, not yet reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(3));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    assert!(
        status.is_some_and(|s| s.success()),
        "netns-call.mjs ended with {status:?}: {text}"
    );
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .unwrap_or_else(|| panic!("netns-call.mjs printed no report: {text}"))
}
