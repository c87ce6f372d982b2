//! Reads what the handler needs from the container's OCI config.json and
//! turns it into a [`Plan`]. Runs in the crun parent, so that every refusal
//! happens before the container exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oci_spec::runtime::Spec;

use crate::annotations::{self, Annotations};
use crate::image::{self, VmImage};

/// Everything decided about a container before it starts. It is computed in
/// the crun parent and inherited by the container's init, which crun forks
/// from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub settings: Annotations,
    pub image: VmImage,
    /// `root.readonly` (podman --read-only): the overlay then lives in a
    /// tmpfs, since the container has no writable layer to hold it.
    pub read_only_root: bool,
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
    let image = image::find(&rootfs(spec, bundle))?;
    let read_only_root = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    Ok(Plan {
        settings,
        image,
        read_only_root,
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
