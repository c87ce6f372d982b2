//! Reads what the handler needs from the container's OCI config.json and
//! turns it into a [`Plan`]. Runs in the crun parent, so that every refusal
//! happens before the container exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;

use crate::annotations::{self, Annotations};
use crate::firmware::{self, Firmware};
use crate::image::{self, VmImage};
use crate::resources::{self, Limits, Sizing};

/// Everything decided about a container before it starts. It is computed in
/// the crun parent and inherited by the container's init, which crun forks
/// from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub settings: Annotations,
    pub image: VmImage,
    pub sizing: Sizing,
    pub firmware: Firmware,
    /// The runtime's state (the overlay, the UEFI variables) lives in a
    /// tmpfs: the root is read-only (podman --read-only), or it is not a
    /// container's own layer (podman --rootfs DIR, a host directory that
    /// must not fill up with overlays).
    pub state_in_tmpfs: bool,
}

/// The host's UEFI firmware (Debian's ovmf package) and its variable store
/// template, copied per container.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The resource limits podman wrote into the config.
pub fn limits(spec: &Spec) -> Limits {
    let res = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let cpu = res.and_then(|r| r.cpu().as_ref());
    Limits {
        cpu_quota: cpu.and_then(|c| c.quota()),
        cpu_period: cpu.and_then(|c| c.period()),
        cpuset: cpu.and_then(|c| c.cpus().clone()),
        memory_bytes: res
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit()),
    }
}

fn host_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The bundle's config, read with oci-spec.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    Spec::load(&path)
        .with_context(|| format!("cannot read the container's OCI config {}", path.display()))
}

/// The container's annotations, empty when there are none.
pub fn annotations(spec: &Spec) -> HashMap<String, String> {
    spec.annotations().clone().unwrap_or_default()
}

/// The host path of the container's root filesystem (relative paths are
/// relative to the bundle, as the runtime spec says).
pub fn rootfs(spec: &Spec, bundle: &Path) -> PathBuf {
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| PathBuf::from("rootfs"));
    if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    }
}

/// Validates the container as a VM and returns the plan for it.
pub fn plan(spec: &Spec, bundle: &Path) -> Result<Plan> {
    let settings = annotations::parse(&annotations(spec))?;
    let sizing = resources::size(&limits(spec), host_cpus())?;
    let root = rootfs(spec, bundle);
    let image = image::find(&root)?;
    crate::rootfs_setup::check(&root)?;
    let read_only_root = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    if settings.persistent {
        if image.on_overlayfs {
            bail!(
                "qemu.persistent=true would copy the whole VM image into the container's writable layer \
                 before the first write: run the image from a host directory instead \
                 (podman run --rootfs DIR, with the image in DIR/disk/)"
            );
        }
        if read_only_root {
            bail!("qemu.persistent=true needs a writable root filesystem: drop --read-only");
        }
    }
    let firmware = firmware::choose(settings.firmware, || image.boot_firmware);
    if firmware == Firmware::Uefi {
        for file in [OVMF_CODE, OVMF_VARS] {
            if !Path::new(file).is_file() {
                bail!("this VM boots with UEFI, but {file} is missing: install the ovmf package");
            }
        }
    }
    Ok(Plan {
        state_in_tmpfs: read_only_root || !image.on_overlayfs,
        settings,
        image,
        sizing,
        firmware,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn plan_from_a_bundle() {
        let bundle = tempfile::tempdir().unwrap();
        fs::create_dir_all(bundle.path().join("rootfs/disk")).unwrap();
        fs::write(bundle.path().join("rootfs/disk/vm.raw"), [0u8; 512]).unwrap();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"args": ["unused"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "annotations": {"run.oci.handler": "qemu", "qemu.accel": "tcg"}
        });
        fs::write(bundle.path().join("config.json"), config.to_string()).unwrap();
        let spec = load(bundle.path()).unwrap();
        let plan = plan(&spec, bundle.path()).unwrap();
        assert_eq!(plan.settings.accel, crate::annotations::AccelRequest::Tcg);
        assert_eq!(plan.image.path_in_container, Path::new("/disk/vm.raw"));
    }

    #[test]
    fn limits_come_from_linux_resources() {
        let bundle = tempfile::tempdir().unwrap();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {"resources": {
                "cpu": {"quota": 150000, "period": 100000, "cpus": "0-1"},
                "memory": {"limit": 536870912}
            }}
        });
        fs::write(bundle.path().join("config.json"), config.to_string()).unwrap();
        let l = limits(&load(bundle.path()).unwrap());
        assert_eq!(
            l,
            Limits {
                cpu_quota: Some(150_000),
                cpu_period: Some(100_000),
                cpuset: Some("0-1".into()),
                memory_bytes: Some(512 << 20)
            }
        );
    }

    #[test]
    fn unknown_annotation_is_refused_before_the_image_is_looked_at() {
        let bundle = tempfile::tempdir().unwrap();
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "/nonexistent"},
            "annotations": {"qemu.bogus": "1"}
        });
        fs::write(bundle.path().join("config.json"), config.to_string()).unwrap();
        let spec = load(bundle.path()).unwrap();
        let err = plan(&spec, bundle.path()).unwrap_err().to_string();
        assert!(err.contains("unknown annotation qemu.bogus"), "{err}");
    }
}
