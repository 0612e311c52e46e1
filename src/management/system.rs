//! What the process uses, for `/api/nodes` and `/metrics`: resident memory, open file
//! descriptors and the machine's memory, read from `/proc` (0 where there is none).

use std::fs;

/// The page size `statm` counts in (4 KiB on the platforms Warren runs on).
const PAGE: u64 = 4096;

/// RabbitMQ's default memory high watermark: 0.4 of the machine's memory.
const WATERMARK: f64 = 0.4;

/// A snapshot of the process's resources.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct System {
    /// Resident memory, in bytes.
    pub(crate) resident_bytes: u64,
    /// The memory limit RabbitMQ would set on this machine (0.4 of its memory), in bytes.
    pub(crate) memory_limit_bytes: u64,
    /// Open file descriptors.
    pub(crate) fds_open: u64,
    /// The open-file limit.
    pub(crate) fds_limit: u64,
    /// Cores.
    pub(crate) processors: usize,
    /// The process id.
    pub(crate) pid: u32,
}

impl System {
    /// Reads the current figures.
    pub(crate) fn now() -> Self {
        System {
            resident_bytes: resident_bytes(),
            memory_limit_bytes: (machine_memory() as f64 * WATERMARK) as u64,
            fds_open: fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
            fds_limit: fd_limit(),
            processors: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pid: std::process::id(),
        }
    }
}

fn resident_bytes() -> u64 {
    fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * PAGE)
}

fn machine_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn fd_limit() -> u64 {
    fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
}
