//! What this machine offers, and how the node stays out of its owner's way.

use std::path::Path;

/// Cores and memory of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostResources {
    pub cores: u32,
    pub total_memory_bytes: u64,
    pub available_memory_bytes: u64,
}

/// Reads cores from the scheduler affinity (`available_parallelism`) and memory
/// from `/proc/meminfo` (falls back to 1 GiB where that file does not exist).
pub fn detect() -> HostResources {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let (total, avail) = std::fs::read_to_string(Path::new("/proc/meminfo"))
        .ok()
        .and_then(|t| parse_meminfo(&t))
        .unwrap_or((1 << 30, 1 << 30));
    HostResources {
        cores,
        total_memory_bytes: total,
        available_memory_bytes: avail,
    }
}

/// `(MemTotal, MemAvailable)` in bytes.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kb * 1024)
        })
    };
    let total = field("MemTotal")?;
    Some((total, field("MemAvailable").unwrap_or(total)))
}

/// Slots for a CPU cap: `ceil(cores × pct / 100)`, at least 1, at most `cores`.
pub fn slots_for_cpu_cap(cores: u32, max_cpu_pct: u8) -> u32 {
    let pct = u32::from(max_cpu_pct.clamp(1, 100));
    (cores * pct).div_ceil(100).clamp(1, cores.max(1))
}

/// Lowers this process to the lowest scheduling priority (nice 19), so work units
/// only use CPU time nothing else on the machine wants.
pub fn lower_priority() -> Result<i32, std::io::Error> {
    rustix::process::setpriority_process(None, 19)?;
    Ok(rustix::process::getpriority_process(None)?)
}

/// Hands memory the allocator keeps but no longer uses back to the OS.
///
/// Compiling a module (cranelift) allocates a few MiB of short-lived data; glibc
/// keeps the freed pages in its per-thread arenas, which would keep an idle node
/// about 8 MiB above its resting size. The node calls this after each compile.
/// Returns whether memory was released (always `false` off glibc).
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    {
        // SAFETY: `malloc_trim` takes no pointers; glibc documents it as callable
        // at any time from any thread (it locks each arena while trimming it).
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let t = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(
            parse_meminfo(t),
            Some((24_000_000 * 1024, 20_000_000 * 1024))
        );
        assert_eq!(parse_meminfo("garbage"), None);
    }

    #[test]
    fn detects_something_sane() {
        let h = detect();
        assert!(h.cores >= 1);
        assert!(h.total_memory_bytes >= h.available_memory_bytes);
    }

    #[test]
    fn cpu_cap_to_slots() {
        assert_eq!(slots_for_cpu_cap(2, 100), 2);
        assert_eq!(slots_for_cpu_cap(2, 50), 1);
        assert_eq!(slots_for_cpu_cap(2, 1), 1);
        assert_eq!(slots_for_cpu_cap(16, 30), 5);
        assert_eq!(slots_for_cpu_cap(8, 0), 1);
    }

    #[test]
    fn priority_is_lowered_in_a_child() {
        // Run in a child process so the test runner keeps its priority.
        if std::env::var_os("LODE_TEST_NICE_CHILD").is_some() {
            assert_eq!(lower_priority().unwrap(), 19);
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let status = std::process::Command::new(exe)
            .args([
                "--exact",
                "host::tests::priority_is_lowered_in_a_child",
                "--nocapture",
            ])
            .env("LODE_TEST_NICE_CHILD", "1")
            .status()
            .unwrap();
        assert!(status.success());
    }
}
