//! Synthetic node_exporter-like data: one "host" exposes the series a
//! node_exporter on a 4-CPU Linux machine does (CPU, memory, network,
//! filesystem, disk, Go runtime, scrape metadata), each with a value model
//! that matches how the real series moves between 15 s scrapes:
//!
//! - constants (info metrics, sizes, totals, counters that never move);
//! - integer counters with realistic increments (bytes, packets, ops) and
//!   rare resets;
//! - counters of seconds at 0.01 resolution (`/proc/stat` USER_HZ);
//! - integer gauges that random-walk in quanta (memory in 4 KiB pages);
//! - two-decimal gauges (load averages);
//! - high-entropy floats (durations, `node_time_seconds`), the expensive
//!   case for XOR encoding;
//! - one classic histogram (`http_request_duration_seconds`, Go's default
//!   buckets, with `_sum` and `_count`), whose buckets stay cumulative:
//!   every series of it on a host draws the same observations.
//!
//! Everything derives from one seed through [`DetRng`].

use raftwatch_model::{LabelLimits, Labels};
use raftwatch_seams::DetRng;

/// The scrape interval, 15 s.
pub const SCRAPE_INTERVAL_MS: i64 = 15_000;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Constant(f64),
    /// Integer increments with the given mean per scrape.
    IntCounter(f64),
    /// Increments in multiples of 0.01 with the given mean per scrape.
    CentiCounter(f64),
    /// Random walk in multiples of `quantum`, up to `max_steps` per scrape.
    IntGauge {
        quantum: f64,
        max_steps: i64,
    },
    /// Mean-reverting gauge rounded to two decimals.
    CentiGauge,
    /// A fresh high-entropy float around `scale` every scrape.
    Noisy(f64),
    /// A fresh duration around `scale` seconds every scrape, measured in
    /// whole nanoseconds and exported as Go's `Duration.Seconds()` does
    /// (below one second: `float64(ns) / 1e9`), so a decimal with nine
    /// digits after the point.
    Duration(f64),
    /// A counter that almost never moves (errors, drops).
    RareCounter,
    /// A histogram bucket: the observations at most `le` so far (`_count`
    /// is the `+Inf` bucket). Never resets.
    HistBucket {
        le: f64,
    },
    /// A histogram's `_sum`: the sum of every observation so far.
    HistSum,
}

/// Observations per scrape of the histogram are 1 + `below(HIST_OBS_SPREAD)`.
const HIST_OBS_SPREAD: u64 = 6;
/// Mean of the histogram's exponentially distributed observations, seconds.
const HIST_OBS_MEAN_S: f64 = 0.08;
/// Go client's default buckets (the `+Inf` bucket is added to them).
const HIST_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Mixed into the seed of a host's histogram stream.
const HIST_SALT: u64 = 0x6869_7374_6f67_7261;

/// `SeriesGen` produces one series' values.
#[derive(Debug)]
pub struct SeriesGen {
    /// The series' labels.
    pub labels: Labels,
    kind: Kind,
    value: f64,
    rng: DetRng,
}

impl SeriesGen {
    /// `next_value` advances the series by one scrape.
    pub fn next_value(&mut self) -> f64 {
        let r = &mut self.rng;
        self.value = match self.kind {
            Kind::Constant(v) => v,
            Kind::IntCounter(mean) => {
                if r.chance(1.0 / 20_000.0) {
                    0.0
                } else {
                    let inc = (mean * (0.5 + r.unit_f64())).round();
                    self.value + inc
                }
            }
            Kind::CentiCounter(mean) => {
                if r.chance(1.0 / 20_000.0) {
                    0.0
                } else {
                    let cents = (mean * 100.0 * (0.7 + 0.6 * r.unit_f64())).round();
                    ((self.value * 100.0).round() + cents) / 100.0
                }
            }
            Kind::IntGauge { quantum, max_steps } => {
                let steps = r.range_i64(-max_steps, max_steps) as f64;
                (self.value + steps * quantum).max(0.0)
            }
            Kind::CentiGauge => {
                let target = 1.5;
                let v = self.value + (target - self.value) * 0.05 + (r.unit_f64() - 0.5) * 0.2;
                (v.max(0.0) * 100.0).round() / 100.0
            }
            Kind::Noisy(scale) => scale * (0.5 + r.unit_f64()),
            Kind::Duration(scale) => (scale * (0.5 + r.unit_f64()) * 1e9).round() / 1e9,
            Kind::RareCounter => {
                if r.chance(0.002) {
                    self.value + 1.0
                } else {
                    self.value
                }
            }
            // Every series of the host's histogram has the same stream, so
            // each draws the same observations: bucket ≤ bucket ≤ _count.
            Kind::HistBucket { le } => {
                let n = 1 + r.below(HIST_OBS_SPREAD);
                let hits = (0..n).filter(|_| observation(r) <= le).count();
                self.value + hits as f64
            }
            Kind::HistSum => {
                let n = 1 + r.below(HIST_OBS_SPREAD);
                let sum: f64 = (0..n).map(|_| observation(r)).sum();
                self.value + sum
            }
        };
        self.value
    }
}

/// One observation of the histogram: exponential with mean
/// [`HIST_OBS_MEAN_S`], rounded to microseconds.
fn observation(r: &mut DetRng) -> f64 {
    let x = -HIST_OBS_MEAN_S * (1.0 - r.unit_f64()).ln();
    (x * 1e6).round() / 1e6
}

fn initial(kind: Kind, r: &mut DetRng) -> f64 {
    match kind {
        Kind::Constant(v) => v,
        Kind::IntCounter(mean) => (mean * 1_000.0 * (1.0 + r.unit_f64() * 100.0)).round(),
        Kind::CentiCounter(mean) => {
            ((mean * 10_000.0 * (1.0 + r.unit_f64() * 10.0)) * 100.0).round() / 100.0
        }
        Kind::IntGauge { quantum, .. } => (r.range_i64(1_000, 4_000_000) as f64) * quantum,
        Kind::CentiGauge => 1.0,
        Kind::Noisy(scale) | Kind::Duration(scale) => scale,
        Kind::RareCounter => r.below(3) as f64,
        Kind::HistBucket { .. } | Kind::HistSum => 0.0,
    }
}

/// Template: metric name, extra label pairs, value model.
type Template = (String, Vec<(String, String)>, Kind);

fn host_templates() -> Vec<Template> {
    let mut t: Vec<Template> = Vec::new();
    let mut add = |name: &str, labels: &[(&str, &str)], kind: Kind| {
        t.push((
            name.to_string(),
            labels
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            kind,
        ));
    };
    for cpu in ["0", "1", "2", "3"] {
        for (mode, kind) in [
            ("idle", Kind::CentiCounter(13.0)),
            ("user", Kind::CentiCounter(1.2)),
            ("system", Kind::CentiCounter(0.5)),
            ("iowait", Kind::CentiCounter(0.05)),
            ("softirq", Kind::CentiCounter(0.03)),
            ("irq", Kind::RareCounter),
            ("steal", Kind::Constant(0.0)),
            ("nice", Kind::Constant(0.0)),
        ] {
            add(
                "node_cpu_seconds_total",
                &[("cpu", cpu), ("mode", mode)],
                kind,
            );
        }
        for mode in ["guest", "guest_nice"] {
            add(
                "node_cpu_guest_seconds_total",
                &[("cpu", cpu), ("mode", mode)],
                Kind::Constant(0.0),
            );
        }
        add(
            "node_cpu_scaling_frequency_hertz",
            &[("cpu", cpu)],
            Kind::IntGauge {
                quantum: 1e6,
                max_steps: 3,
            },
        );
    }
    for (dev, scale) in [("eth0", 1.0), ("lo", 0.1), ("docker0", 0.01)] {
        for dir in ["receive", "transmit"] {
            add(
                &format!("node_network_{dir}_bytes_total"),
                &[("device", dev)],
                Kind::IntCounter(2e5 * scale),
            );
            add(
                &format!("node_network_{dir}_packets_total"),
                &[("device", dev)],
                Kind::IntCounter(300.0 * scale),
            );
            for what in ["errs", "drop"] {
                add(
                    &format!("node_network_{dir}_{what}_total"),
                    &[("device", dev)],
                    Kind::RareCounter,
                );
            }
            for what in ["fifo", "compressed"] {
                add(
                    &format!("node_network_{dir}_{what}_total"),
                    &[("device", dev)],
                    Kind::Constant(0.0),
                );
            }
        }
        for what in ["up", "mtu_bytes", "speed_bytes", "carrier", "info"] {
            add(
                &format!("node_network_{what}"),
                &[("device", dev)],
                Kind::Constant(1500.0),
            );
        }
    }
    for name in [
        "MemTotal",
        "SwapTotal",
        "HugePages_Total",
        "Hugepagesize",
        "CommitLimit",
        "VmallocTotal",
        "DirectMap4k",
        "DirectMap2M",
        "DirectMap1G",
        "HugePages_Free",
        "HugePages_Rsvd",
        "HugePages_Surp",
        "SwapFree",
        "Mlocked",
        "Unevictable",
    ] {
        add(
            &format!("node_memory_{name}_bytes"),
            &[],
            Kind::Constant(8_589_934_592.0),
        );
    }
    for name in [
        "MemFree",
        "MemAvailable",
        "Buffers",
        "Cached",
        "Active",
        "Inactive",
        "Active_anon",
        "Inactive_anon",
        "Active_file",
        "Inactive_file",
        "Dirty",
        "Writeback",
        "AnonPages",
        "Mapped",
        "Shmem",
        "Slab",
        "SReclaimable",
        "SUnreclaim",
        "KernelStack",
        "PageTables",
        "Committed_AS",
        "VmallocUsed",
        "AnonHugePages",
        "KReclaimable",
        "Percpu",
    ] {
        add(
            &format!("node_memory_{name}_bytes"),
            &[],
            Kind::IntGauge {
                quantum: 4096.0,
                max_steps: 40,
            },
        );
    }
    for (mount, fstype) in [
        ("/", "ext4"),
        ("/boot", "ext4"),
        ("/var/lib/docker", "xfs"),
        ("/run", "tmpfs"),
    ] {
        let l = [
            ("mountpoint", mount),
            ("fstype", fstype),
            ("device", "/dev/sda1"),
        ];
        add(
            "node_filesystem_size_bytes",
            &l,
            Kind::Constant(107_374_182_400.0),
        );
        add("node_filesystem_files", &l, Kind::Constant(6_553_600.0));
        add("node_filesystem_readonly", &l, Kind::Constant(0.0));
        add("node_filesystem_device_error", &l, Kind::Constant(0.0));
        add(
            "node_filesystem_free_bytes",
            &l,
            Kind::IntGauge {
                quantum: 4096.0,
                max_steps: 20,
            },
        );
        add(
            "node_filesystem_avail_bytes",
            &l,
            Kind::IntGauge {
                quantum: 4096.0,
                max_steps: 20,
            },
        );
        add(
            "node_filesystem_files_free",
            &l,
            Kind::IntGauge {
                quantum: 1.0,
                max_steps: 3,
            },
        );
    }
    for dev in ["sda", "nvme0n1"] {
        let l = [("device", dev)];
        add(
            "node_disk_reads_completed_total",
            &l,
            Kind::IntCounter(20.0),
        );
        add(
            "node_disk_writes_completed_total",
            &l,
            Kind::IntCounter(60.0),
        );
        add("node_disk_read_bytes_total", &l, Kind::IntCounter(80_000.0));
        add(
            "node_disk_written_bytes_total",
            &l,
            Kind::IntCounter(600_000.0),
        );
        add(
            "node_disk_io_time_seconds_total",
            &l,
            Kind::CentiCounter(0.3),
        );
        add(
            "node_disk_read_time_seconds_total",
            &l,
            Kind::CentiCounter(0.05),
        );
        add(
            "node_disk_write_time_seconds_total",
            &l,
            Kind::CentiCounter(0.2),
        );
        add(
            "node_disk_io_now",
            &l,
            Kind::IntGauge {
                quantum: 1.0,
                max_steps: 1,
            },
        );
        for what in [
            "discards_completed",
            "discards_merged",
            "discarded_sectors",
            "flush_requests",
        ] {
            add(&format!("node_disk_{what}_total"), &l, Kind::Constant(0.0));
        }
    }
    for name in ["node_load1", "node_load5", "node_load15"] {
        add(name, &[], Kind::CentiGauge);
    }
    add(
        "node_context_switches_total",
        &[],
        Kind::IntCounter(30_000.0),
    );
    add("node_intr_total", &[], Kind::IntCounter(20_000.0));
    add("node_forks_total", &[], Kind::IntCounter(30.0));
    add(
        "node_procs_running",
        &[],
        Kind::IntGauge {
            quantum: 1.0,
            max_steps: 1,
        },
    );
    add(
        "node_procs_blocked",
        &[],
        Kind::IntGauge {
            quantum: 1.0,
            max_steps: 1,
        },
    );
    add(
        "node_entropy_available_bits",
        &[],
        Kind::IntGauge {
            quantum: 1.0,
            max_steps: 5,
        },
    );
    add(
        "node_filefd_allocated",
        &[],
        Kind::IntGauge {
            quantum: 1.0,
            max_steps: 8,
        },
    );
    add(
        "node_boot_time_seconds",
        &[],
        Kind::Constant(1_700_000_000.0),
    );
    add("node_time_seconds", &[], Kind::Noisy(1.7e9));
    for info in [
        "node_uname_info",
        "node_os_info",
        "node_exporter_build_info",
        "node_dmi_info",
    ] {
        add(info, &[], Kind::Constant(1.0));
    }
    for c in [
        "cpu",
        "diskstats",
        "filesystem",
        "loadavg",
        "meminfo",
        "netdev",
        "netstat",
        "stat",
        "time",
        "vmstat",
        "sockstat",
        "filefd",
        "entropy",
        "uname",
        "os",
    ] {
        add(
            "node_scrape_collector_duration_seconds",
            &[("collector", c)],
            Kind::Duration(0.002),
        );
        add(
            "node_scrape_collector_success",
            &[("collector", c)],
            Kind::Constant(1.0),
        );
    }
    for name in [
        "TCP_inuse",
        "TCP_orphan",
        "TCP_tw",
        "TCP_alloc",
        "TCP_mem",
        "UDP_inuse",
        "UDP_mem",
        "sockets_used",
    ] {
        add(
            &format!("node_sockstat_{name}"),
            &[],
            Kind::IntGauge {
                quantum: 1.0,
                max_steps: 4,
            },
        );
    }
    for name in [
        "Tcp_ActiveOpens",
        "Tcp_PassiveOpens",
        "Tcp_InSegs",
        "Tcp_OutSegs",
        "Udp_InDatagrams",
        "Udp_OutDatagrams",
        "Ip_Forwarding",
    ] {
        add(
            &format!("node_netstat_{name}"),
            &[],
            Kind::IntCounter(150.0),
        );
    }
    for name in [
        "Tcp_RetransSegs",
        "Tcp_InErrs",
        "Tcp_OutRsts",
        "TcpExt_ListenDrops",
        "TcpExt_ListenOverflows",
        "Udp_InErrors",
        "Udp_NoPorts",
        "TcpExt_SyncookiesFailed",
    ] {
        add(&format!("node_netstat_{name}"), &[], Kind::RareCounter);
    }
    for name in [
        "pgfault",
        "pgmajfault",
        "pgpgin",
        "pgpgout",
        "pswpin",
        "pswpout",
        "oom_kill",
    ] {
        let kind = if name.starts_with("pgp") || name == "pgfault" {
            Kind::IntCounter(5_000.0)
        } else {
            Kind::RareCounter
        };
        add(&format!("node_vmstat_{name}"), &[], kind);
    }
    add(
        "go_goroutines",
        &[],
        Kind::IntGauge {
            quantum: 1.0,
            max_steps: 1,
        },
    );
    add("go_threads", &[], Kind::Constant(9.0));
    for name in [
        "alloc_bytes",
        "heap_alloc_bytes",
        "heap_inuse_bytes",
        "heap_idle_bytes",
        "stack_inuse_bytes",
        "next_gc_bytes",
    ] {
        add(
            &format!("go_memstats_{name}"),
            &[],
            Kind::IntGauge {
                quantum: 8.0,
                max_steps: 20_000,
            },
        );
    }
    add(
        "go_memstats_alloc_bytes_total",
        &[],
        Kind::IntCounter(500_000.0),
    );
    add("go_memstats_mallocs_total", &[], Kind::IntCounter(5_000.0));
    add("go_memstats_frees_total", &[], Kind::IntCounter(4_900.0));
    for q in ["0", "0.25", "0.5", "0.75", "1"] {
        add(
            "go_gc_duration_seconds",
            &[("quantile", q)],
            Kind::Duration(0.0001),
        );
    }
    add("go_gc_duration_seconds_count", &[], Kind::IntCounter(1.0));
    let handler = ("handler", "/metrics");
    for le in HIST_BUCKETS {
        add(
            "http_request_duration_seconds_bucket",
            &[handler, ("le", &le.to_string())],
            Kind::HistBucket { le },
        );
    }
    add(
        "http_request_duration_seconds_bucket",
        &[handler, ("le", "+Inf")],
        Kind::HistBucket { le: f64::INFINITY },
    );
    add(
        "http_request_duration_seconds_count",
        &[handler],
        Kind::HistBucket { le: f64::INFINITY },
    );
    add(
        "http_request_duration_seconds_sum",
        &[handler],
        Kind::HistSum,
    );
    add("process_cpu_seconds_total", &[], Kind::CentiCounter(0.05));
    add(
        "process_resident_memory_bytes",
        &[],
        Kind::IntGauge {
            quantum: 4096.0,
            max_steps: 10,
        },
    );
    add(
        "process_virtual_memory_bytes",
        &[],
        Kind::IntGauge {
            quantum: 4096.0,
            max_steps: 4,
        },
    );
    add(
        "process_open_fds",
        &[],
        Kind::IntGauge {
            quantum: 1.0,
            max_steps: 1,
        },
    );
    add("process_max_fds", &[], Kind::Constant(1_048_576.0));
    add(
        "process_start_time_seconds",
        &[],
        Kind::Constant(1_700_000_000.0),
    );
    add("up", &[], Kind::Constant(1.0));
    add("scrape_duration_seconds", &[], Kind::Duration(0.02));
    add("scrape_samples_scraped", &[], Kind::Constant(300.0));
    add(
        "scrape_samples_post_metric_relabeling",
        &[],
        Kind::Constant(300.0),
    );
    add("scrape_series_added", &[], Kind::Constant(0.0));
    t
}

/// `Fleet` is the generated data set: `series` generators spread over as
/// many hosts as needed, and each host's scrape offset within the interval.
#[derive(Debug)]
pub struct Fleet {
    /// One generator per series.
    pub series: Vec<SeriesGen>,
    /// Per series, the scrape offset (ms) of its host within the interval.
    pub offsets_ms: Vec<i64>,
    /// Series per host in the template.
    pub series_per_host: usize,
}

impl Fleet {
    /// `new` builds `count` series from `seed`, host by host.
    pub fn new(count: usize, seed: u64) -> anyhow::Result<Fleet> {
        let templates = host_templates();
        let mut rng = DetRng::new(seed);
        let mut series = Vec::with_capacity(count);
        let mut offsets_ms = Vec::with_capacity(count);
        let mut host = 0usize;
        while series.len() < count {
            let instance = format!("host-{host:05}.example.internal:9100");
            let offset = rng.range_i64(0, SCRAPE_INTERVAL_MS - 1);
            for (name, extra, kind) in &templates {
                if series.len() == count {
                    break;
                }
                let mut pairs = vec![
                    ("__name__".to_string(), name.clone()),
                    ("instance".to_string(), instance.clone()),
                    ("job".to_string(), "node".to_string()),
                ];
                pairs.extend(extra.iter().cloned());
                let labels = Labels::from_pairs(pairs, &LabelLimits::default())?;
                let mut srng = rng.fork(series.len() as u64);
                if matches!(kind, Kind::HistBucket { .. } | Kind::HistSum) {
                    // The host's histogram stream, shared by its series
                    // (and not taken from `rng`, so it shifts no one else).
                    srng = DetRng::new(seed ^ HIST_SALT ^ (host as u64).wrapping_mul(0x9e37_79b9));
                }
                let value = initial(*kind, &mut srng);
                series.push(SeriesGen {
                    labels,
                    kind: *kind,
                    value,
                    rng: srng,
                });
                offsets_ms.push(offset);
            }
            host += 1;
        }
        Ok(Fleet {
            series,
            offsets_ms,
            series_per_host: templates.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_is_deterministic_and_counters_do_not_decrease_without_reset() {
        let mut a = Fleet::new(600, 7).unwrap();
        let mut b = Fleet::new(600, 7).unwrap();
        for _ in 0..50 {
            for (x, y) in a.series.iter_mut().zip(b.series.iter_mut()) {
                assert_eq!(x.next_value().to_bits(), y.next_value().to_bits());
            }
        }
        assert_eq!(a.series[0].labels, b.series[0].labels);
        assert!(a.series_per_host > 250);
        let mut distinct = a
            .series
            .iter()
            .map(|s| s.labels.clone())
            .collect::<Vec<_>>();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 600, "series label sets must be unique");
    }

    #[test]
    fn histogram_buckets_stay_cumulative() {
        let mut fleet = Fleet::new(2 * Fleet::new(1, 1).unwrap().series_per_host, 3).unwrap();
        let name = |s: &SeriesGen| s.labels.get("__name__").unwrap_or("").to_string();
        let le = |s: &SeriesGen| s.labels.get("le").map(|v| v.parse::<f64>().unwrap());
        for _ in 0..40 {
            // (instance → [(le, value)], instance → _count)
            let mut buckets: std::collections::BTreeMap<String, Vec<(f64, f64)>> =
                Default::default();
            let mut counts: std::collections::BTreeMap<String, f64> = Default::default();
            for s in fleet.series.iter_mut() {
                let v = s.next_value();
                let inst = s.labels.get("instance").unwrap_or("").to_string();
                match name(s).as_str() {
                    "http_request_duration_seconds_bucket" => {
                        buckets.entry(inst).or_default().push((le(s).unwrap(), v))
                    }
                    "http_request_duration_seconds_count" => {
                        counts.insert(inst, v);
                    }
                    _ => {}
                }
            }
            assert_eq!(buckets.len(), 2, "one histogram per host");
            for (inst, mut b) in buckets {
                assert_eq!(b.len(), HIST_BUCKETS.len() + 1);
                b.sort_by(|x, y| x.0.total_cmp(&y.0));
                assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "{inst}: {b:?}");
                assert_eq!(b.last().unwrap().1, counts[&inst], "+Inf bucket = _count");
            }
        }
    }

    #[test]
    fn durations_are_whole_nanoseconds_as_go_exports_them() {
        let mut fleet = Fleet::new(Fleet::new(1, 1).unwrap().series_per_host, 5).unwrap();
        let mut seen = 0;
        for _ in 0..20 {
            for s in fleet.series.iter_mut() {
                let v = s.next_value();
                let name = s.labels.get("__name__").unwrap_or("");
                if name == "node_scrape_collector_duration_seconds"
                    || name == "go_gc_duration_seconds"
                    || name == "scrape_duration_seconds"
                {
                    // Go: float64(ns) / 1e9 for a duration under a second.
                    let ns = (v * 1e9).round();
                    assert!(v > 0.0 && v < 1.0, "{name} = {v}");
                    assert_eq!((ns / 1e9).to_bits(), v.to_bits(), "{name} = {v}");
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 20 * (15 + 5 + 1));
    }
}
