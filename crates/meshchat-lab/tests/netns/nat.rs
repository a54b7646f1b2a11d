//! NAT routers (issue 23), at the network level only: masquerade lets a NATed host out and
//! nothing in, keeps source ports; the symmetric NAT does not; a UPnP mapping made with `upnpc`
//! lets the public host in. TCP clients and servers are `socat` processes in the namespaces; a
//! server answers with the address and port it saw the connection come from.

use crate::need_root;
use meshchat_lab::net::Mapping;
use meshchat_lab::{sys, Nat, Net, Topology};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env() -> sys::Env {
    sys::check_env(true).expect("lab environment")
}

/// A `socat` listener in a namespace; killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on TCP `port` in host `i`'s namespace.
fn wait_listening(net: &Net, i: usize, port: u16, deadline: Instant) {
    let filter = format!("sport = :{port}");
    loop {
        let out = sys::run_in(net.ns(i), "ss", &["-H", "-l", "-t", "-n", &filter]).unwrap();
        if !out.trim().is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port} in host {i}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Serves TCP `port` on host `i`: every connection gets one line, `reply` if given, else the
/// peer's `ADDR PORT` as the server sees it.
fn serve(net: &Net, i: usize, port: u16, reply: Option<&str>) -> Server {
    let answer = match reply {
        Some(r) => format!("SYSTEM:echo {r}"),
        // (No `:` or `,` in the command: socat would take them for address syntax.)
        None => "SYSTEM:echo $SOCAT_PEERADDR $SOCAT_PEERPORT".into(),
    };
    let child = Command::new("ip")
        .args(["netns", "exec", net.ns(i), "socat"])
        .arg(format!("TCP4-LISTEN:{port},reuseaddr,fork"))
        .arg(answer)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat (package socat)");
    let server = Server(child);
    wait_listening(net, i, port, Instant::now() + Duration::from_secs(10));
    server
}

/// Connects from host `i` (from local port `sport` if given) to `addr:port` and returns the
/// line the server sent, or the error. Bounded: 2 s to connect, 5 s in all.
fn fetch(
    net: &Net,
    i: usize,
    addr: Ipv4Addr,
    port: u16,
    sport: Option<u16>,
) -> Result<String, String> {
    let mut target = format!("TCP4:{addr}:{port},connect-timeout=2");
    if let Some(s) = sport {
        target.push_str(&format!(",sourceport={s},reuseaddr"));
    }
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            net.ns(i),
            "timeout",
            "5",
            "socat",
            "-T",
            "3",
            "-u",
        ])
        .arg(target)
        .arg("STDOUT")
        .stdin(Stdio::null())
        .output()
        .expect("run socat");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !text.is_empty() {
        Ok(text)
    } else {
        Err(format!(
            "{} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `ADDR PORT` as a server printed it.
fn parse_peer(s: &str) -> (Ipv4Addr, u16) {
    let (a, p) = s
        .split_once(' ')
        .unwrap_or_else(|| panic!("bad peer {s:?}"));
    (a.parse().unwrap(), p.parse().unwrap())
}

#[test]
fn nat_masquerade_lets_out_not_in() {
    need_root("nat_masquerade_lets_out_not_in");
    // Host 0 public, host 1 the router, host 2 behind it.
    let net = Net::create(&Topology::nat(&[Nat::Masquerade]), env()).unwrap();
    net.verify_isolation(16).unwrap();
    net.check_confined().unwrap();
    let public = net.public_addr(0).unwrap();
    let wan = net.public_addr(1).unwrap();
    let private = net.hosts[2].ifaces[0].addr;
    assert_eq!(net.external_addr(2), Some(wan));
    assert_eq!(net.external_addr(0), Some(public));
    assert_eq!(net.route_addr(2, 0), Some(public));
    assert_eq!(net.route_addr(0, 2), None);
    assert!(public.octets()[..3] == [11, 231, 0] && private.is_private());

    // Out: the public host sees the router's WAN address.
    let _s = serve(&net, 0, 7001, None);
    let seen = fetch(&net, 2, public, 7001, None).expect("NATed host reaches the public host");
    assert_eq!(parse_peer(&seen).0, wan, "{seen}");

    // In: nothing, neither at the router's WAN address nor at the private address.
    let _a = serve(&net, 2, 4000, Some("inside"));
    assert_eq!(fetch(&net, 1, private, 4000, None).as_deref(), Ok("inside"));
    let e = fetch(&net, 0, wan, 4000, None).expect_err("no mapping: no way in");
    eprintln!("public -> router WAN:4000 without mapping: {e}");
    let e = fetch(&net, 0, private, 4000, None).expect_err("private address unreachable");
    eprintln!("public -> private address: {e}");
    assert!(!net.ping(0, private));
}

#[test]
fn nat_masquerade_keeps_ports_symmetric_does_not() {
    need_root("nat_masquerade_keeps_ports_symmetric_does_not");
    // Host 0 public; routers 1 (masquerade) and 2 (symmetric); hosts 3 and 4 behind them.
    let net = Net::create(&Topology::nat(&[Nat::Masquerade, Nat::Symmetric]), env()).unwrap();
    net.verify_isolation(16).unwrap();
    net.check_confined().unwrap();
    let public = net.public_addr(0).unwrap();
    let ports = [7001, 7002, 7003];
    let _servers: Vec<Server> = ports.iter().map(|&p| serve(&net, 0, p, None)).collect();
    for (host, router, sport) in [(3, 1, 40001), (4, 2, 40002)] {
        let wan = net.public_addr(router).unwrap();
        let seen: Vec<u16> = ports
            .iter()
            .map(|&p| {
                let s = fetch(&net, host, public, p, Some(sport))
                    .unwrap_or_else(|e| panic!("host {host} -> {public}:{p}: {e}"));
                let (addr, port) = parse_peer(&s);
                assert_eq!(addr, wan, "host {host}: source seen {s}");
                port
            })
            .collect();
        eprintln!("host {host} from local port {sport}: external ports {seen:?}");
        if host == 3 {
            assert!(seen.iter().all(|&p| p == sport), "masquerade: {seen:?}");
        } else {
            let distinct: BTreeSet<u16> = seen.iter().copied().collect();
            assert!(distinct.len() > 1, "symmetric NAT kept one port: {seen:?}");
        }
    }
}

#[test]
fn nat_upnp_mapping_lets_public_in() {
    need_root("nat_upnp_mapping_lets_public_in");
    // Host 0 public, host 1 the UPnP router, host 2 behind it.
    let net = Net::create(&Topology::nat(&[Nat::Upnp]), env()).unwrap();
    // Net::create waited for miniupnpd already; waiting again returns at once.
    net.wait_upnp(1, Instant::now() + Duration::from_secs(20))
        .unwrap();
    assert!(net.upnp_mappings(1).unwrap().is_empty());
    net.verify_isolation(16).unwrap();
    net.check_confined().unwrap();
    let wan = net.public_addr(1).unwrap();
    let private = net.hosts[2].ifaces[0].addr;
    let _a = serve(&net, 2, 4000, Some("inside"));
    assert!(fetch(&net, 0, wan, 4000, None).is_err(), "no mapping yet");

    // SSDP discovery from the LAN host finds the gateway and its (global) external address.
    let status = sys::run_in(net.ns(2), "upnpc", &["-s"]).unwrap();
    assert!(
        status.contains(&format!("ExternalIPAddress = {wan}")),
        "{status}\n{}",
        net.upnp_log(1)
    );
    let add = sys::run_in(
        net.ns(2),
        "upnpc",
        &["-a", &private.to_string(), "4000", "4000", "TCP"],
    )
    .unwrap();
    assert!(
        add.contains(&format!(
            "external {wan}:4000 TCP is redirected to internal {private}:4000"
        )),
        "{add}\n{}",
        net.upnp_log(1)
    );
    assert_eq!(
        net.upnp_mappings(1).unwrap(),
        vec![Mapping {
            protocol: "tcp",
            external_port: 4000,
            internal: private,
            internal_port: 4000
        }]
    );
    assert_eq!(
        fetch(&net, 0, wan, 4000, None).as_deref(),
        Ok("inside"),
        "{}",
        net.upnp_log(1)
    );
    // Only the mapped port: another port on A stays closed from outside.
    let _b = serve(&net, 2, 4001, Some("other"));
    assert!(fetch(&net, 0, wan, 4001, None).is_err());

    // Dropping the network ends miniupnpd.
    let pids: Vec<u32> = sys::run("ip", &["netns", "pids", net.ns(1)])
        .unwrap()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(!pids.is_empty(), "miniupnpd runs in the router namespace");
    drop(net);
    assert!(
        pids.iter().all(|&p| !sys::pid_running(p)),
        "{pids:?} still run"
    );
}
