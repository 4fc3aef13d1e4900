//! The test network: one network namespace per host, all joined by veth
//! pairs to a bridge that lives in a namespace of its own, on one /24 that
//! a `blackhole` route in the root namespace keeps on this machine.
//!
//! Order of creation: the blackhole route first, then the bridge namespace,
//! then each host. Order of removal: hosts, bridge, any stray link, and the
//! route last, so that at no moment can a packet to the test /24 be routed
//! off the machine. Every name starts with [`PREFIX`]; a run refuses to
//! start while anything with that prefix (or the route) exists, and prints
//! the command that removes it.
//!
//! Everything here shells out to `ip` and `iptables` (iproute2 and
//! iptables, installed by `.ci/run`) and needs root.

use std::net::Ipv4Addr;
use std::process::Command;

use thiserror::Error;

/// `PREFIX` starts every namespace and link name the harness makes.
pub const PREFIX: &str = "rwj-";

/// The bridge's namespace.
pub const BRIDGE_NS: &str = "rwj-bridge";

/// `NetError` is a failed network command.
#[derive(Debug, Error)]
pub enum NetError {
    /// A command exited non-zero or could not start.
    #[error("`{command}` failed: {reason}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr or why it did not run.
        reason: String,
    },
    /// Leftovers of an earlier run exist.
    #[error(
        "leftovers of an earlier run exist ({}); remove them with `raftwatch-jepsen cleanup --subnet {subnet}`",
        .found.join(", ")
    )]
    Leftovers {
        /// What was found.
        found: Vec<String>,
        /// The subnet the run was going to use.
        subnet: String,
    },
}

/// Runs `program args`, returning stdout; an error carries stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, NetError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetError::Command {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NetError::Command {
            command,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `program args` inside namespace `ns`.
pub fn run_in(ns: &str, program: &str, args: &[&str]) -> Result<String, NetError> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// `Subnet` is the test /24, written `A.B.C.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    prefix: [u8; 3],
}

impl Subnet {
    /// Parses `A.B.C.0/24` (only /24 subnets are used).
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let addr = text
            .strip_suffix("/24")
            .ok_or_else(|| format!("subnet {text:?} must be a /24 like 10.213.77.0/24"))?;
        let ip: Ipv4Addr = addr.parse().map_err(|e| format!("subnet {text:?}: {e}"))?;
        let o = ip.octets();
        if o[3] != 0 {
            return Err(format!("subnet {text:?} must end in .0/24"));
        }
        if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
            return Err(format!("subnet {text:?} is not a unicast range"));
        }
        Ok(Subnet {
            prefix: [o[0], o[1], o[2]],
        })
    }

    /// Host `n` (1..=254) of the subnet.
    pub fn host(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.prefix[0], self.prefix[1], self.prefix[2], n)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{}.{}.0/24",
            self.prefix[0], self.prefix[1], self.prefix[2]
        )
    }
}

/// `Host` is one namespace on the test network.
#[derive(Clone, Debug)]
pub struct Host {
    /// Namespace name (`rwj-…`).
    pub ns: String,
    /// Its address on the test /24.
    pub ip: Ipv4Addr,
}

/// `leftovers` lists anything of an earlier run: namespaces and root links
/// named `rwj-…`, and a blackhole route for `subnet`.
pub fn leftovers(subnet: Subnet) -> Result<Vec<String>, NetError> {
    let mut found = Vec::new();
    for line in run("ip", &["netns", "list"])?.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(PREFIX) {
            found.push(format!("namespace {name}"));
        }
    }
    for name in root_links()? {
        found.push(format!("link {name}"));
    }
    if has_blackhole(subnet)? {
        found.push(format!("blackhole route {subnet}"));
    }
    Ok(found)
}

fn root_links() -> Result<Vec<String>, NetError> {
    let mut names = Vec::new();
    for line in run("ip", &["-o", "link", "show"])?.lines() {
        // "7: rwj-n1@if6: <...>"
        if let Some(name) = line.split(": ").nth(1) {
            let name = name.split('@').next().unwrap_or(name);
            if name.starts_with(PREFIX) {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

fn has_blackhole(subnet: Subnet) -> Result<bool, NetError> {
    let routes = run("ip", &["route", "show", "type", "blackhole"])?;
    let want = subnet.to_string();
    Ok(routes
        .lines()
        .any(|l| l.split_whitespace().any(|w| w == want)))
}

/// `Network` is the topology a run made; [`Network::destroy`] (also run on
/// drop) removes all of it.
#[derive(Debug)]
pub struct Network {
    subnet: Subnet,
    hosts: Vec<Host>,
    destroyed: bool,
}

impl Network {
    /// `create` builds the topology for `hosts` (namespace name suffix,
    /// host number on the /24), after checking that nothing of an earlier
    /// run is left. On any failure it removes what it made.
    pub fn create(subnet: Subnet, hosts: &[(&str, u8)]) -> Result<Network, NetError> {
        let found = leftovers(subnet)?;
        if !found.is_empty() {
            return Err(NetError::Leftovers {
                found,
                subnet: subnet.to_string(),
            });
        }
        let net_str = subnet.to_string();
        // First: nothing addressed to the test /24 may leave the machine.
        run("ip", &["route", "add", "blackhole", &net_str])?;
        let mut net = Network {
            subnet,
            hosts: Vec::new(),
            destroyed: false,
        };
        if let Err(e) = net.build(hosts) {
            net.destroy();
            return Err(e);
        }
        Ok(net)
    }

    fn build(&mut self, hosts: &[(&str, u8)]) -> Result<(), NetError> {
        run("ip", &["netns", "add", BRIDGE_NS])?;
        run_in(BRIDGE_NS, "ip", &["link", "set", "lo", "up"])?;
        run_in(BRIDGE_NS, "ip", &["link", "add", "br0", "type", "bridge"])?;
        run_in(BRIDGE_NS, "ip", &["link", "set", "br0", "up"])?;
        for (name, n) in hosts {
            let ns = format!("{PREFIX}{name}");
            let link = format!("{PREFIX}{name}");
            let ip = self.subnet.host(*n);
            self.hosts.push(Host { ns: ns.clone(), ip });
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            run("ip", &["link", "set", &link, "netns", BRIDGE_NS])?;
            run_in(BRIDGE_NS, "ip", &["link", "set", &link, "master", "br0"])?;
            run_in(BRIDGE_NS, "ip", &["link", "set", &link, "up"])?;
            let cidr = format!("{ip}/24");
            run_in(&ns, "ip", &["addr", "add", &cidr, "dev", "eth0"])?;
            run_in(&ns, "ip", &["link", "set", "eth0", "up"])?;
            run_in(&ns, "ip", &["link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The hosts, in creation order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The host whose namespace is `rwj-<name>`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        let ns = format!("{PREFIX}{name}");
        self.hosts.iter().find(|h| h.ns == ns)
    }

    /// The subnet.
    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    /// `drop_from` makes `host` drop every packet arriving from `from`.
    pub fn drop_from(&self, host: &Host, from: Ipv4Addr) -> Result<(), NetError> {
        let src = from.to_string();
        run_in(
            &host.ns,
            "iptables",
            &["-w", "-A", "INPUT", "-s", &src, "-j", "DROP"],
        )
        .map(drop)
    }

    /// `lossy` makes `host` drop arriving packets from the other `peers`
    /// at random with probability `p`.
    pub fn lossy(&self, host: &Host, peers: &[Ipv4Addr], p: f64) -> Result<(), NetError> {
        let prob = format!("{p:.3}");
        for peer in peers {
            let src = peer.to_string();
            run_in(
                &host.ns,
                "iptables",
                &[
                    "-w",
                    "-A",
                    "INPUT",
                    "-s",
                    &src,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &prob,
                    "-j",
                    "DROP",
                ],
            )?;
        }
        Ok(())
    }

    /// `heal` removes every packet filter rule on `host`.
    pub fn heal(&self, host: &Host) -> Result<(), NetError> {
        run_in(&host.ns, "iptables", &["-w", "-F", "INPUT"]).map(drop)
    }

    /// `destroy` removes everything, route last; it keeps going past
    /// errors and returns what it could not remove.
    pub fn destroy(&mut self) -> Vec<String> {
        if self.destroyed {
            return Vec::new();
        }
        self.destroyed = true;
        cleanup(self.subnet)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let failed = self.destroy();
        if !failed.is_empty() {
            tracing::error!(?failed, "could not remove parts of the test network");
        }
    }
}

/// `cleanup` removes every `rwj-…` namespace and root link and then the
/// blackhole route for `subnet`; returns what failed. Idempotent: what is
/// not there is not an error.
pub fn cleanup(subnet: Subnet) -> Vec<String> {
    let mut failed = Vec::new();
    if let Ok(list) = run("ip", &["netns", "list"]) {
        let mut names: Vec<String> = list
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(PREFIX))
            .map(str::to_string)
            .collect();
        // Hosts before the bridge.
        names.sort_by_key(|n| n == BRIDGE_NS);
        for ns in names {
            if let Err(e) = run("ip", &["netns", "del", &ns]) {
                failed.push(e.to_string());
            }
        }
    }
    if let Ok(links) = root_links() {
        for link in links {
            if let Err(e) = run("ip", &["link", "del", &link]) {
                failed.push(e.to_string());
            }
        }
    }
    // Only once nothing else of ours exists.
    if failed.is_empty() {
        if let Ok(true) = has_blackhole(subnet)
            && let Err(e) = run("ip", &["route", "del", "blackhole", &subnet.to_string()])
        {
            failed.push(e.to_string());
        }
    } else {
        failed.push(format!(
            "kept the blackhole route for {subnet} because other parts remain"
        ));
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_only_as_unicast_slash_24() {
        let s = Subnet::parse("10.213.77.0/24").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.host(11), Ipv4Addr::new(10, 213, 77, 11));
        assert_eq!(s.to_string(), "10.213.77.0/24");
        assert!(Subnet::parse("10.213.77.0/16").is_err());
        assert!(Subnet::parse("10.213.77.5/24").is_err());
        assert!(Subnet::parse("127.0.0.0/24").is_err());
        assert!(Subnet::parse("nonsense/24").is_err());
    }
}
