//! The machine a run measured, from `/proc`: cores, memory, CPU model,
//! load, and a process's peak resident set.

use serde::Serialize;

/// What the results were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Cores this process may run on.
    pub cores: usize,
    /// `MemTotal`, in MiB.
    pub memory_mib: u64,
    /// The CPU's model name.
    pub cpu_model: String,
    /// The 1, 5 and 15 minute load averages when the run started.
    pub load_average: String,
}

impl Machine {
    /// This machine, now.
    pub fn now() -> Self {
        Self {
            cores: cores(),
            memory_mib: total_memory_kib() / 1024,
            cpu_model: std::fs::read_to_string("/proc/cpuinfo")
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_default(),
            load_average: load_average(),
        }
    }
}

/// The cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `MemTotal` of `/proc/meminfo`, in KiB.
pub fn total_memory_kib() -> u64 {
    kib_field("/proc/meminfo", "MemTotal:").unwrap_or(0)
}

/// Peak resident set (`VmHWM`) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    kib_field(&format!("/proc/{pid}/status"), "VmHWM:")
}

/// The `<key> <n> kB` line of a `/proc` file.
fn kib_field(path: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
