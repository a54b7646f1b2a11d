//! Namespaces, links, reachability, faults and cleanup, without any node process.

use crate::need_root;
use meshchat_lab::{cleanup, sys, Net, Topology};
use std::time::{Duration, Instant};

fn env() -> sys::Env {
    sys::check_env(true).expect("lab environment")
}

fn ns_exists(name: &str) -> bool {
    cleanup::list_lab_namespaces()
        .unwrap()
        .iter()
        .any(|n| n == name)
}

#[test]
fn chain_reaches_only_neighbours() {
    need_root("chain_reaches_only_neighbours");
    let net = Net::create(&Topology::line(5), env()).unwrap();
    // Exhaustive: every neighbour address answers, every other address does not.
    let checks = net.verify_isolation(16).unwrap();
    assert_eq!(checks, 32);
    let far = net.hosts[2].ifaces[1].addr; // host 2 on the 2-3 link
    assert!(!net.ping(0, far));
    assert!(net.ping(1, net.hosts[2].ifaces[0].addr));
    // No forwarding even towards a directly attached neighbour's other link.
    assert!(!net.ping(1, far));
}

#[test]
fn shapes_and_lan_obey_reachability() {
    need_root("shapes_and_lan_obey_reachability");
    for desc in ["ring:6", "star:5", "grid:3x2", "lan:4", "edges:4:0-1,2-3"] {
        let net = Net::create(&Topology::parse(desc).unwrap(), env()).unwrap();
        net.verify_isolation(16)
            .unwrap_or_else(|e| panic!("{desc}: {e:#}"));
    }
}

#[test]
fn link_down_up_partition_and_heal() {
    need_root("link_down_up_partition_and_heal");
    let mut net = Net::create(&Topology::ring(4), env()).unwrap();
    let a1 = net.addr_for(0, 1).unwrap();
    assert!(net.ping(0, a1));
    net.set_link(0, 1, false).unwrap();
    assert!(!net.link_is_up(0, 1));
    assert!(!net.ping(0, a1));
    net.verify_isolation(16).unwrap();
    net.set_link(0, 1, true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !net.ping(0, a1) {
        assert!(Instant::now() < deadline, "link did not come back");
    }
    let a2 = net.addr_for(1, 2).unwrap();
    assert!(net.ping(1, a2));
    let cut = net.partition(&[0, 1]).unwrap();
    assert_eq!(cut, vec![(1, 2), (0, 3)]);
    assert!(!net.ping(1, a2));
    assert!(net.ping(0, a1), "links inside a side stay up");
    net.verify_isolation(16).unwrap();
    net.heal(&cut).unwrap();
    assert!(net.link_is_up(1, 2) && net.link_is_up(0, 3));
}

#[test]
fn loss_and_bandwidth_rules() {
    need_root("loss_and_bandwidth_rules");
    let mut net = Net::create(&Topology::line(2), env()).unwrap();
    let b = net.addr_for(0, 1).unwrap();
    net.set_loss(0, 1, 100.0).unwrap();
    assert!(!net.ping(0, b), "100% loss must drop the ping");
    net.set_loss(0, 1, 0.0).unwrap();
    assert!(net.ping(0, b), "0% loss must let pings through");
    assert!(net.set_loss(0, 1, 150.0).is_err());
    net.set_bandwidth(0, 1, Some("1mbit")).unwrap();
    let q = sys::run_in(net.ns(0), "tc", &["qdisc", "show", "dev", "v1"]).unwrap();
    assert!(q.contains("tbf") && q.contains("1Mbit"), "{q}");
    assert!(net.ping(0, b));
    net.set_bandwidth(0, 1, None).unwrap();
    let q = sys::run_in(net.ns(0), "tc", &["qdisc", "show", "dev", "v1"]).unwrap();
    assert!(!q.contains("tbf"), "{q}");
    assert!(net.set_loss(0, 0, 5.0).is_err(), "no such link");
}

/// Fraction of `count` fast pings from host 0 to `addr` that got no answer.
fn ping_loss(net: &Net, addr: std::net::Ipv4Addr, count: u32) -> f64 {
    let out = sys::output(
        "ip",
        &[
            "netns",
            "exec",
            net.ns(0),
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.002",
            "-W",
            "1",
            &addr.to_string(),
        ],
    )
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let received: f64 = text
        .split(',')
        .find_map(|p| p.trim().strip_suffix(" received")?.parse().ok())
        .unwrap_or_else(|| panic!("no ping summary: {text}"));
    1.0 - received / f64::from(count)
}

#[test]
fn random_loss_with_nft_and_iptables() {
    need_root("random_loss_with_nft_and_iptables");
    let found = env();
    let mut backends = Vec::new();
    if found.nft {
        backends.push(sys::Env {
            nft: true,
            iptables: false,
        });
    }
    if found.iptables {
        backends.push(sys::Env {
            nft: false,
            iptables: true,
        });
    }
    assert!(!backends.is_empty());
    for backend in backends {
        let mut net = Net::create(&Topology::line(2), backend.clone()).unwrap();
        let b = net.addr_for(0, 1).unwrap();
        // 50% each way: a round trip survives with probability 1/4.
        net.set_loss(0, 1, 50.0).unwrap();
        let lost = ping_loss(&net, b, 200);
        assert!((0.6..0.9).contains(&lost), "{backend:?}: lost {lost}");
        net.set_loss(0, 1, 100.0).unwrap();
        assert!(!net.ping(0, b), "{backend:?}");
        net.set_loss(0, 1, 0.0).unwrap();
        assert_eq!(ping_loss(&net, b, 20), 0.0, "{backend:?}");
    }
}

#[test]
fn names_are_unique_and_dropped_networks_vanish() {
    need_root("names_are_unique_and_dropped_networks_vanish");
    let a = Net::create(&Topology::line(2), env()).unwrap();
    let b = Net::create(&Topology::line(2), env()).unwrap();
    assert_ne!(a.prefix, b.prefix);
    let names: Vec<String> = a.namespaces().into_iter().chain(b.namespaces()).collect();
    assert!(names.iter().all(|n| n.len() <= 15 && ns_exists(n)));
    drop(a);
    drop(b);
    assert!(names.iter().all(|n| !ns_exists(n)));
    // A panic while a network exists still removes it.
    let mut seen = Vec::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let net = Net::create(&Topology::ring(3), env()).unwrap();
        seen = net.namespaces();
        panic!("scenario failed");
    }));
    assert!(r.is_err());
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|n| !ns_exists(n)));
}

#[test]
fn stale_namespaces_are_cleaned_up() {
    need_root("stale_namespaces_are_cleaned_up");
    // A namespace named as if created by a dead pid (pid_max is below 0xfffffe), with a process
    // left running inside it.
    let stale = "mclfffffe00h0";
    let _ = sys::output("ip", &["netns", "del", stale]);
    sys::run("ip", &["netns", "add", stale]).unwrap();
    let mut sleeper = std::process::Command::new("ip")
        .args(["netns", "exec", stale, "sleep", "60"])
        .spawn()
        .unwrap();
    // Only once the process is inside: cleaning up before it entered would leave it running.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sys::output("ip", &["netns", "pids", stale])
        .map(|o| o.stdout.is_empty())
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "the sleeper never entered {stale}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let removed = cleanup::remove_stale(false).unwrap();
    assert!(removed.iter().any(|n| n == stale), "{removed:?}");
    assert!(!ns_exists(stale));
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "process inside was killed");
}

#[test]
fn signal_removes_namespaces() {
    need_root("signal_removes_namespaces");
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meshchat-lab"))
        .args(["net", "--topology", "line:3", "--hold"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("holding") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "lab exited early");
    }
    let ours: Vec<String> = cleanup::list_lab_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| cleanup::parse_ns(n).map(|(p, _)| p) == Some(pid & 0xff_ffff))
        .collect();
    assert_eq!(ours.len(), 3, "{ours:?}");
    sys::signal(pid, "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        ours.iter().all(|n| !ns_exists(n)),
        "namespaces left: {ours:?}"
    );
}

#[test]
fn not_root_or_missing_tools_is_one_line() {
    // Runs as anyone: without root, the binary must say so in one line and exit non-zero.
    if sys::euid() == Some(0) {
        assert!(
            sys::have("setpriv"),
            "setpriv (util-linux) is needed to run the lab as nobody"
        );
        // A copy nobody can reach and run (the build tree may sit under a directory only root
        // can enter).
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("meshchat-lab-nobody-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.join("meshchat-lab");
        std::fs::copy(env!("CARGO_BIN_EXE_meshchat-lab"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["run", "chain5"])
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("root"), "{err}");
    } else {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshchat-lab"))
            .args(["run", "chain5"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
    }
}
