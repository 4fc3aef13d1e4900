//! CPU used by the cluster under test, from `/proc`.
//!
//! The cluster is the set of processes whose `/proc/<pid>/comm` is
//! `raftwatch`. Other clusters may run on the same machine, so when the
//! target's port is a local listening socket owned by a `raftwatch`
//! process, the set narrows to that process's tree: its topmost `raftwatch`
//! ancestor (the `raftwatch dev` parent) and every `raftwatch` process below
//! it. Otherwise (a remote target, or no permission to see the socket) it
//! is every local `raftwatch` process, and the report says so.
//!
//! CPU is utime + stime from `/proc/<pid>/stat`, read before and after the
//! run. A process that exits in between counts only what was seen before
//! (its ticks are gone with it); one that starts in between counts whole.
//!
//! When the target's port is a local listener of another program (a
//! Prometheus the bench compares against), the scope is that one process.

use std::collections::{BTreeMap, BTreeSet};

/// The process name (`comm`) of a raftwatch node and of `raftwatch dev`.
const COMM: &str = "raftwatch";

/// Clock ticks per second of `/proc/<pid>/stat` times: `USER_HZ`, which
/// is 100 on every Linux the bench runs on (sysconf(_SC_CLK_TCK) would need
/// libc for one constant).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// `CpuScope` is which processes count as the cluster.
#[derive(Debug, Clone)]
pub struct CpuScope {
    /// The topmost `raftwatch` ancestor of the target's listener; `None`
    /// when every local `raftwatch` process counts.
    root_pid: Option<u32>,
    /// The target's listener when it is not a `raftwatch` process: its
    /// pid and name. Then only it counts.
    other: Option<(u32, String)>,
}

/// `CpuSample` is one reading: clock ticks per process.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    ticks: BTreeMap<u32, u64>,
}

struct Proc {
    ppid: u32,
    ticks: u64,
}

impl CpuScope {
    /// `for_port` narrows the scope to the `raftwatch` process tree that
    /// listens on TCP `port` locally, if any.
    /// When no `raftwatch` process listens there but another local process
    /// does, the scope is that process alone.
    pub fn for_port(port: Option<u16>) -> CpuScope {
        let procs = raftwatch_procs();
        let listener = port.and_then(|p| listener_pid(p, procs.keys().copied()));
        if listener.is_none()
            && let Some(port) = port
            && let Some(pid) = listener_pid(port, all_pids().into_iter())
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map_or_else(|_| "?".to_owned(), |c| c.trim_end().to_owned());
            return CpuScope {
                root_pid: None,
                other: Some((pid, comm)),
            };
        }
        let root_pid = listener.map(|mut pid| {
            while let Some(parent) = procs.get(&pid).map(|p| p.ppid) {
                if !procs.contains_key(&parent) {
                    break;
                }
                pid = parent;
            }
            pid
        });
        CpuScope {
            root_pid,
            other: None,
        }
    }

    /// `describe` names the scope for the report.
    pub fn describe(&self) -> String {
        if let Some((pid, comm)) = &self.other {
            return format!("the target's listener, {comm} pid {pid}");
        }
        match self.root_pid {
            Some(pid) => format!("raftwatch process tree of pid {pid} (the target's)"),
            None => "every local raftwatch process (the target's listener was not found)".into(),
        }
    }

    /// `sample` reads the CPU ticks of every process in scope now.
    pub fn sample(&self) -> CpuSample {
        if let Some((pid, _)) = &self.other {
            let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .map(|(_, ticks)| (*pid, ticks));
            return CpuSample {
                ticks: ticks.into_iter().collect(),
            };
        }
        let procs = raftwatch_procs();
        let in_scope = |mut pid: u32| -> bool {
            let Some(root) = self.root_pid else {
                return true;
            };
            // Walk up through raftwatch processes only; the tree is shallow
            // (dev → nodes), the bound only guards against a ppid cycle.
            for _ in 0..64 {
                if pid == root {
                    return true;
                }
                match procs.get(&pid) {
                    Some(p) => pid = p.ppid,
                    None => return false,
                }
            }
            false
        };
        CpuSample {
            ticks: procs
                .iter()
                .filter(|(pid, _)| in_scope(**pid))
                .map(|(pid, p)| (*pid, p.ticks))
                .collect(),
        }
    }
}

impl CpuSample {
    /// `seconds_since` is the CPU seconds the processes of `self` used since
    /// `before`.
    pub fn seconds_since(&self, before: &CpuSample) -> f64 {
        let ticks: u64 = self
            .ticks
            .iter()
            .map(|(pid, t)| t.saturating_sub(before.ticks.get(pid).copied().unwrap_or(0)))
            .sum();
        ticks as f64 / CLOCK_TICKS_PER_SEC
    }

    /// `pids` are the processes seen in this sample.
    pub fn pids(&self) -> Vec<u32> {
        self.ticks.keys().copied().collect()
    }
}

/// `process_cpu_seconds` is the CPU this process (the bench) has used.
pub fn process_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat(&s))
        .map_or(0.0, |(_, ticks)| ticks as f64 / CLOCK_TICKS_PER_SEC)
}

/// Every live process's pid.
fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Every live process named `raftwatch`, by pid.
fn raftwatch_procs() -> BTreeMap<u32, Proc> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Any read may fail because the process just exited: skip it.
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if comm.trim_end() != COMM {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((ppid, ticks)) = parse_stat(&stat) {
            out.insert(pid, Proc { ppid, ticks });
        }
    }
    out
}

/// Parses `/proc/<pid>/stat` into (ppid, utime + stime ticks). The command
/// name (field 2) may contain spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let (_, after) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// The pid among `candidates` that owns a socket listening on TCP `port`.
fn listener_pid(port: u16, mut candidates: impl Iterator<Item = u32>) -> Option<u32> {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    candidates.find(|pid| {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|link| {
                link.to_str()
                    .and_then(|l| l.strip_prefix("socket:["))
                    .and_then(|l| l.strip_suffix(']'))
                    .and_then(|l| l.parse::<u64>().ok())
                    .is_some_and(|inode| inodes.contains(&inode))
            })
        })
    })
}

/// The inodes of the sockets in a `/proc/net/tcp{,6}` table that listen
/// (state 0A) on `port`.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let local_port = u16::from_str_radix(local_port, 16).ok()?;
            if local_port != port || *f.get(3)? != "0A" {
                return None;
            }
            f.get(9)?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_paren() {
        let stat = "1234 (raft (watch)) S 77 1234 1234 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 9 0";
        assert_eq!(parse_stat(stat), Some((77, 281)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn listening_sockets_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1E14 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n\
   1: 0100007F:1E14 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 20 4 30 10 -1\n\
   2: 0100007F:1E16 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 7700), vec![4242]);
        assert_eq!(listening_inodes(table, 7702), vec![4444]);
        assert!(listening_inodes(table, 7704).is_empty());
    }

    #[test]
    fn seconds_since_skips_vanished_and_counts_new_processes() {
        let before = CpuSample {
            ticks: [(1, 100), (2, 50)].into_iter().collect(),
        };
        let after = CpuSample {
            ticks: [(1, 350), (3, 20)].into_iter().collect(),
        };
        assert!((after.seconds_since(&before) - 2.7).abs() < 1e-9);
    }
}
