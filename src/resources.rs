//! Maps the container's resource limits (OCI `linux.resources`, which podman
//! fills from --cpus, --cpuset-cpus and --memory) to the VM's size. Pure.

use anyhow::{bail, Result};

use crate::vm::{DEFAULT_MEMORY_MIB, DEFAULT_VCPUS};

/// QEMU's own memory beside the guest's RAM, measured with QEMU 10 under
/// TCG: a 512 MiB guest that filled its memory peaked 72 MiB above it.
pub const QEMU_OVERHEAD_MIB: u64 = 96;
/// The TCG translation cache, bounded (QEMU's default may grow to 1 GiB).
pub const TCG_TB_CACHE_MIB: u64 = 64;
/// Total allowance subtracted from a container memory limit.
pub const MEMORY_ALLOWANCE_MIB: u64 = QEMU_OVERHEAD_MIB + TCG_TB_CACHE_MIB;
/// The smallest guest worth booting.
pub const MIN_GUEST_MIB: u64 = 128;

/// The limits as the OCI config gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset: Option<String>,
    pub memory_bytes: Option<i64>,
}

/// The VM's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizing {
    pub vcpus: u32,
    /// Host CPU for each vCPU, in order; empty when not pinned.
    pub pinning: Vec<u32>,
    pub memory_mib: u64,
}

/// Parses a cpuset list such as `0-2,5`.
pub fn parse_cpuset(list: &str) -> Result<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>(), b.trim().parse::<u32>()),
            None => (part.parse::<u32>(), part.parse::<u32>()),
        };
        let (Ok(lo), Ok(hi)) = (lo, hi) else {
            bail!("cannot read the cpuset {list:?}: use a list such as 0-2,5");
        };
        if lo > hi || hi - lo > 4096 {
            bail!("cannot read the cpuset {list:?}: bad range {part}");
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Decides the VM's size. `host_cpus` is how many CPUs the container may
/// run on when nothing else says.
pub fn size(limits: &Limits, host_cpus: u32) -> Result<Sizing> {
    let cpuset = match limits.cpuset.as_deref() {
        Some(list) if !list.trim().is_empty() => parse_cpuset(list)?,
        _ => Vec::new(),
    };
    let from_quota = match (limits.cpu_quota, limits.cpu_period) {
        (Some(q), Some(p)) if q > 0 && p > 0 => Some((q as u64).div_ceil(p) as u32),
        _ => None,
    };
    let vcpus = match (from_quota, cpuset.len()) {
        (Some(n), _) => n,
        (None, 0) => DEFAULT_VCPUS.min(host_cpus.max(1)),
        (None, n) => n as u32,
    };
    let pinning = if cpuset.is_empty() {
        Vec::new()
    } else {
        (0..vcpus as usize)
            .map(|i| cpuset[i % cpuset.len()])
            .collect()
    };
    let memory_mib = match limits.memory_bytes {
        Some(bytes) if bytes > 0 => {
            let limit_mib = bytes as u64 / (1024 * 1024);
            let min = MIN_GUEST_MIB + MEMORY_ALLOWANCE_MIB;
            if limit_mib < min {
                bail!(
                    "the memory limit ({limit_mib} MiB) is too small for a VM: use --memory {min}m or more \
                     ({MIN_GUEST_MIB} MiB for the guest and {MEMORY_ALLOWANCE_MIB} MiB for QEMU itself)"
                );
            }
            limit_mib - MEMORY_ALLOWANCE_MIB
        }
        _ => DEFAULT_MEMORY_MIB,
    };
    Ok(Sizing {
        vcpus,
        pinning,
        memory_mib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn defaults() {
        let s = size(&limits(), 8).unwrap();
        assert_eq!(
            s,
            Sizing {
                vcpus: DEFAULT_VCPUS,
                pinning: vec![],
                memory_mib: DEFAULT_MEMORY_MIB
            }
        );
        assert_eq!(size(&limits(), 1).unwrap().vcpus, 1);
    }

    #[test]
    fn cpus_round_up() {
        // podman --cpus 1.5 gives quota 150000 over period 100000.
        let l = Limits {
            cpu_quota: Some(150_000),
            cpu_period: Some(100_000),
            ..limits()
        };
        assert_eq!(size(&l, 8).unwrap().vcpus, 2);
        let l = Limits {
            cpu_quota: Some(100_000),
            cpu_period: Some(100_000),
            ..limits()
        };
        assert_eq!(size(&l, 8).unwrap().vcpus, 1);
        let l = Limits {
            cpu_quota: Some(-1),
            cpu_period: Some(100_000),
            ..limits()
        };
        assert_eq!(size(&l, 8).unwrap().vcpus, DEFAULT_VCPUS);
    }

    #[test]
    fn cpuset_sets_count_and_pinning() {
        let l = Limits {
            cpuset: Some("1,3-4".into()),
            ..limits()
        };
        let s = size(&l, 8).unwrap();
        assert_eq!((s.vcpus, s.pinning), (3, vec![1, 3, 4]));
        let l = Limits {
            cpuset: Some("0-1".into()),
            cpu_quota: Some(300_000),
            cpu_period: Some(100_000),
            ..limits()
        };
        let s = size(&l, 8).unwrap();
        assert_eq!((s.vcpus, s.pinning), (3, vec![0, 1, 0]));
        assert!(parse_cpuset("2-1").is_err());
        assert!(parse_cpuset("a").is_err());
    }

    #[test]
    fn memory_leaves_room_for_qemu() {
        let l = Limits {
            memory_bytes: Some(1024 * 1024 * 1024),
            ..limits()
        };
        assert_eq!(size(&l, 2).unwrap().memory_mib, 1024 - MEMORY_ALLOWANCE_MIB);
        let l = Limits {
            memory_bytes: Some(200 * 1024 * 1024),
            ..limits()
        };
        let err = size(&l, 2).unwrap_err().to_string();
        assert!(
            err.contains("too small") && err.contains("--memory 288m"),
            "{err}"
        );
    }
}
