//! Routers (issue 23): a router's forwarding and nftables NAT table, `miniupnpd` for
//! [`Nat::Upnp`], and reading its mappings. See the parent module's docs.

use super::{Iface, Net, Upnpd, UPNP_HTTP_PORT};
use crate::sys;
use crate::topology::{Nat, Router};
use anyhow::{bail, Context as _, Result};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

impl Net {
    /// Forwarding, the NAT table and the LAN hosts' default routes for router `r`; `miniupnpd`
    /// for [`Nat::Upnp`].
    pub(super) fn setup_router(&mut self, r: &Router) -> Result<()> {
        if !self.env.nft {
            bail!("NAT routers need nft (package nftables)");
        }
        let ns = self.hosts[r.host].ns.clone();
        let wan = self
            .iface_on(r.host, r.wan)
            .context("router WAN iface")?
            .clone();
        let lan = self
            .iface_on(r.host, r.lan)
            .context("router LAN iface")?
            .clone();
        sys::run_in(&ns, "sh", &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])?;
        sys::run_with_stdin(
            "ip",
            &["netns", "exec", &ns, "nft", "-f", "-"],
            &nat_ruleset(&wan.name, &lan.name, r.nat),
        )?;
        for &h in self.topo.segments[r.lan].iter().filter(|&&h| h != r.host) {
            let dev = self
                .iface_on(h, r.lan)
                .context("LAN host iface")?
                .name
                .clone();
            sys::run(
                "ip",
                &[
                    "-n",
                    &self.hosts[h].ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &lan.addr.to_string(),
                    "dev",
                    &dev,
                ],
            )?;
        }
        if r.nat == Nat::Upnp {
            self.start_upnpd(r.host, &wan, &lan)?;
        }
        Ok(())
    }

    /// Starts `miniupnpd` in router `router`'s namespace (see the module docs).
    fn start_upnpd(&mut self, router: usize, wan: &Iface, lan: &Iface) -> Result<()> {
        if !sys::have("miniupnpd") {
            bail!("UPnP routers need miniupnpd (package miniupnpd-nftables)");
        }
        let ns = self.hosts[router].ns.clone();
        let dir = std::env::temp_dir()
            .join("meshchat-lab")
            .join(&self.prefix)
            .join(format!("upnp-h{router}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lan_net =
            Ipv4Addr::from(u32::from(lan.addr) & (u32::MAX << (32 - u32::from(lan.prefix_len))));
        // A UUID unique per run and router: the run prefix's 8 hex digits and the host index.
        let uuid = format!(
            "6d636c00-0000-4000-8000-{}{:04x}",
            &self.prefix[3..11],
            router
        );
        let conf = format!(
            "ext_ifname={wan}\n\
             listening_ip={lan_if}\n\
             http_port={UPNP_HTTP_PORT}\n\
             enable_upnp=yes\n\
             enable_natpmp=yes\n\
             secure_mode=yes\n\
             system_uptime=yes\n\
             notify_interval=60\n\
             clean_ruleset_interval=600\n\
             uuid={uuid}\n\
             lease_file={leases}\n\
             upnp_table_name=mcl_nat\n\
             upnp_nat_table_name=mcl_nat\n\
             upnp_forward_chain=miniupnpd\n\
             upnp_nat_chain=prerouting_miniupnpd\n\
             upnp_nat_postrouting_chain=postrouting_miniupnpd\n\
             allow 1-65535 {lan_net}/{len} 1-65535\n\
             deny 0-65535 0.0.0.0/0 0-65535\n",
            wan = wan.name,
            lan_if = lan.name,
            leases = dir.join("leases").display(),
            len = lan.prefix_len,
        );
        let conf_path = dir.join("miniupnpd.conf");
        std::fs::write(&conf_path, conf)?;
        let log = std::fs::File::create(dir.join("log"))?;
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "miniupnpd", "-d", "-f"])
            .arg(&conf_path)
            .arg("-P")
            .arg(dir.join("pid"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting miniupnpd")?;
        self.upnpd.push(Upnpd { router, child, dir });
        Ok(())
    }

    /// Waits until router `router`'s `miniupnpd` listens for HTTP on its LAN interface (it opens
    /// its SSDP and NAT-PMP sockets before), or fails at `deadline` with its log. [`Net::create`]
    /// already waits for every UPnP router (20 s at most); this is for checks after that.
    pub fn wait_upnp(&self, router: usize, deadline: Instant) -> Result<()> {
        let d = self
            .upnpd
            .iter()
            .find(|d| d.router == router)
            .with_context(|| format!("host {router} runs no miniupnpd"))?;
        let port = format!("sport = :{UPNP_HTTP_PORT}");
        loop {
            if !sys::pid_running(d.child.id()) {
                bail!(
                    "miniupnpd on host {router} exited:\n{}",
                    self.upnp_log(router)
                );
            }
            let out = sys::run_in(self.ns(router), "ss", &["-H", "-l", "-t", "-n", &port])?;
            if !out.trim().is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "miniupnpd on host {router} not listening by the deadline:\n{}",
                    self.upnp_log(router)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port mappings router `router`'s `miniupnpd` has installed now, read from its DNAT
    /// chain (`prerouting_miniupnpd`), e.g. to check that a node behind it mapped its port.
    pub fn upnp_mappings(&self, router: usize) -> Result<Vec<Mapping>> {
        let out = sys::run_in(
            self.ns(router),
            "nft",
            &["list", "chain", "inet", "mcl_nat", "prerouting_miniupnpd"],
        )?;
        Ok(out.lines().filter_map(Mapping::parse).collect())
    }

    /// What router `router`'s `miniupnpd` printed so far (empty if none runs).
    pub fn upnp_log(&self, router: usize) -> String {
        self.upnpd
            .iter()
            .find(|d| d.router == router)
            .and_then(|d| std::fs::read_to_string(d.dir.join("log")).ok())
            .unwrap_or_default()
    }
}

/// A UPnP port mapping: `external_port`/`protocol` on the router's WAN address goes to
/// `internal`:`internal_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// `"tcp"` or `"udp"`.
    pub protocol: &'static str,
    /// Port on the router's WAN address.
    pub external_port: u16,
    /// The LAN host it goes to.
    pub internal: Ipv4Addr,
    /// Port on that host.
    pub internal_port: u16,
}

impl Mapping {
    /// Parses one DNAT rule as `nft list chain` prints miniupnpd's, e.g.
    /// `iif "l0" @nh,72,8 0x6 th dport 4000 dnat ip to 10.231.0.2:4000`.
    pub fn parse(line: &str) -> Option<Self> {
        let w: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| w.iter().position(|x| *x == key).and_then(|i| w.get(i + 1));
        let protocol = match *after("@nh,72,8")? {
            "0x6" => "tcp",
            "0x11" => "udp",
            _ => return None,
        };
        let external_port = after("dport")?.parse().ok()?;
        let to = w.iter().position(|x| *x == "dnat")?;
        let (addr, port) = w.get(to + 3)?.rsplit_once(':')?;
        Some(Mapping {
            protocol,
            external_port,
            internal: addr.parse().ok()?,
            internal_port: port.parse().ok()?,
        })
    }
}

/// The nftables table of a router: masquerade out of `wan` (fully random for
/// [`Nat::Symmetric`]), forward LAN to WAN and replies, drop the rest; the chains `miniupnpd`,
/// `prerouting_miniupnpd` and `postrouting_miniupnpd` (empty unless `miniupnpd` fills them) are
/// jumped to from the forward, prerouting and postrouting hooks.
fn nat_ruleset(wan: &str, lan: &str, nat: Nat) -> String {
    let flags = if nat == Nat::Symmetric {
        " random,fully-random"
    } else {
        ""
    };
    format!(
        "table inet mcl_nat {{
  chain miniupnpd {{
  }}
  chain prerouting_miniupnpd {{
  }}
  chain postrouting_miniupnpd {{
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname \"{wan}\" ct state established,related accept
    iifname \"{wan}\" icmp type echo-request accept
    iifname \"{wan}\" drop
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname \"{lan}\" oifname \"{wan}\" accept
    iifname \"{wan}\" oifname \"{lan}\" jump miniupnpd
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    jump prerouting_miniupnpd
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    jump postrouting_miniupnpd
    oifname \"{wan}\" masquerade{flags}
  }}
}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upnp_mappings() {
        let tcp = "\t\tiif \"l0\" @nh,72,8 0x6 th dport 4000 dnat ip to 10.231.0.2:4000";
        assert_eq!(
            Mapping::parse(tcp),
            Some(Mapping {
                protocol: "tcp",
                external_port: 4000,
                internal: Ipv4Addr::new(10, 231, 0, 2),
                internal_port: 4000
            })
        );
        let udp = "iif \"l0\" @nh,72,8 0x11 th dport 5001 dnat ip to 10.231.0.6:41234";
        let m = Mapping::parse(udp).unwrap();
        assert_eq!(
            (m.protocol, m.external_port, m.internal_port),
            ("udp", 5001, 41234)
        );
        assert_eq!(Mapping::parse("chain prerouting_miniupnpd {"), None);
    }
}
