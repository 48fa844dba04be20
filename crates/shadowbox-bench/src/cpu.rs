//! CPU accounting from `/proc`: how many cores the load generator, the
//! `shadowbox serve` process, the private PostgreSQL (postmaster and every
//! backend), the private Mosquitto and the whole machine used over a
//! window, so every figure says who was busy while it was measured, and
//! how much of the machine other users took.

use std::time::Instant;

use serde::Serialize;

/// Kernel clock ticks per second in `/proc` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The processes of the system under test.
#[derive(Debug, Clone, Copy)]
pub struct Watched {
    /// The private cluster's postmaster; its children are the backends.
    pub postmaster: u32,
    /// The private broker.
    pub mosquitto: u32,
    /// `shadowbox serve`, when one runs.
    pub serve: Option<u32>,
}

/// A reading of the CPU clocks at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    load_generator: u64,
    serve: u64,
    postgres: u64,
    mosquitto: u64,
    machine_busy: u64,
    machine_total: u64,
}

/// The cores each party used between two samples.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuShare {
    /// This load generator (user + system).
    pub load_generator_cores: f64,
    /// `shadowbox serve` (0 when it was not running).
    pub serve_cores: f64,
    /// The private PostgreSQL: postmaster and live backends (pgbench's
    /// backends included, pgbench itself not).
    pub postgres_cores: f64,
    /// The private Mosquitto.
    pub mosquitto_cores: f64,
    /// The whole machine: the above, pgbench, and anyone else's work.
    pub machine_busy_cores: f64,
}

impl CpuSample {
    /// Reads the clocks of `watched` now.
    pub fn now(watched: &Watched) -> Self {
        let (machine_busy, machine_total) = machine_ticks();
        Self {
            at: Instant::now(),
            load_generator: process_ticks("self").map_or(0, |(ticks, _)| ticks),
            serve: watched
                .serve
                .and_then(|pid| process_ticks(&pid.to_string()))
                .map_or(0, |(ticks, _)| ticks),
            postgres: family_ticks(watched.postmaster),
            mosquitto: process_ticks(&watched.mosquitto.to_string()).map_or(0, |(ticks, _)| ticks),
            machine_busy,
            machine_total,
        }
    }

    /// The cores used since `earlier`.
    pub fn since(&self, earlier: &Self) -> CpuShare {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let cores =
            |now: u64, then: u64| now.saturating_sub(then) as f64 / TICKS_PER_SECOND / seconds;
        let total = self
            .machine_total
            .saturating_sub(earlier.machine_total)
            .max(1) as f64;
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy) as f64;
        CpuShare {
            load_generator_cores: cores(self.load_generator, earlier.load_generator),
            serve_cores: cores(self.serve, earlier.serve),
            postgres_cores: cores(self.postgres, earlier.postgres),
            mosquitto_cores: cores(self.mosquitto, earlier.mosquitto),
            machine_busy_cores: busy / total * crate::machine::cores() as f64,
        }
    }
}

/// utime + stime and the parent pid of `/proc/<pid>/stat`.
fn process_ticks(pid: &str) -> Option<(u64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it do not.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so ppid (4), utime (14) and stime (15)
    // are at 1, 11 and 12.
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((field(11)? + field(12)?, u32::try_from(field(1)?).ok()?))
}

/// CPU ticks of `parent` and of its live children.
fn family_ticks(parent: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|pid| {
            let (ticks, ppid) = process_ticks(&pid)?;
            (ppid == parent || pid == parent.to_string()).then_some(ticks)
        })
        .sum()
}

/// The pid of the first process whose command line (arguments joined by
/// spaces) contains `needle`.
pub fn find_process(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|pid| pid.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
}

/// Busy and total ticks of all cores, from the `cpu` line of `/proc/stat`.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    // user nice system idle iowait irq softirq steal: idle and iowait are idle.
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}
