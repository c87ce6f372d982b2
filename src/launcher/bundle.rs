//! Adds what a VM container needs to a bundle's config.json before crun
//! reads it: the handler annotation and, unless emulation is forced, the
//! `/dev/kvm` device. The file is edited as JSON values so that every field,
//! including those oci-spec does not model, is kept as it was.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::accel::KVM_DEVICE;
use crate::annotations::{HANDLER_ANNOTATION, HANDLER_NAME};

/// Major and minor number of the host's KVM device, if it has one.
pub fn host_kvm_device() -> Option<(u64, u64)> {
    let meta = fs::metadata(KVM_DEVICE).ok()?;
    if !meta.file_type().is_char_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some((libc::major(rdev) as u64, libc::minor(rdev) as u64))
}

/// Edits the parsed config in place. Pure.
pub fn annotate(config: &mut Value, kvm: Option<(u64, u64)>) -> Result<()> {
    let Some(obj) = config.as_object_mut() else {
        bail!("the bundle's config.json is not a JSON object");
    };
    let annotations = obj.entry("annotations").or_insert_with(|| json!({}));
    let Some(annotations) = annotations.as_object_mut() else {
        bail!("the bundle's config.json has annotations that are not an object");
    };
    match annotations.get(HANDLER_ANNOTATION).and_then(Value::as_str) {
        None => {
            annotations.insert(HANDLER_ANNOTATION.into(), json!(HANDLER_NAME));
        }
        Some(HANDLER_NAME) => {}
        Some(other) => bail!(
            "the container asks for crun handler {other:?} ({HANDLER_ANNOTATION}), but crun-qemu runs only VMs: \
             drop that annotation or use plain crun"
        ),
    }
    let forced_tcg = annotations.get("qemu.accel").and_then(Value::as_str) == Some("tcg");
    if let (Some((major, minor)), false) = (kvm, forced_tcg) {
        add_kvm_device(obj, major, minor)?;
    }
    Ok(())
}

fn add_kvm_device(obj: &mut serde_json::Map<String, Value>, major: u64, minor: u64) -> Result<()> {
    let linux = obj.entry("linux").or_insert_with(|| json!({}));
    let Some(linux) = linux.as_object_mut() else {
        bail!("the bundle's config.json has a \"linux\" section that is not an object");
    };
    let devices = linux.entry("devices").or_insert_with(|| json!([]));
    if let Some(devices) = devices.as_array_mut() {
        if !devices.iter().any(|d| d["path"] == KVM_DEVICE) {
            devices.push(json!({
                "path": KVM_DEVICE, "type": "c", "major": major, "minor": minor,
                "fileMode": 0o666, "uid": 0, "gid": 0
            }));
        }
    }
    let resources = linux.entry("resources").or_insert_with(|| json!({}));
    if let Some(resources) = resources.as_object_mut() {
        let rules = resources.entry("devices").or_insert_with(|| json!([]));
        if let Some(rules) = rules.as_array_mut() {
            let rule = json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"});
            if !rules.contains(&rule) {
                rules.push(rule);
            }
        }
    }
    Ok(())
}

/// Rewrites `path` with the additions, atomically (write and rename).
pub fn annotate_file(path: &Path) -> Result<()> {
    let text = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut config: Value = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    annotate(&mut config, host_kvm_device())?;
    let tmp = path.with_extension("json.crun-qemu-tmp");
    fs::write(&tmp, serde_json::to_vec(&config)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_annotation_and_keeps_everything_else() {
        let mut c = json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["unused"], "futureField": {"x": [1, 2]}},
            "annotations": {"io.podman.annotations.autoremove": "TRUE"},
            "unknownTopLevel": true
        });
        let before = c.clone();
        annotate(&mut c, None).unwrap();
        assert_eq!(c["annotations"]["run.oci.handler"], "qemu");
        assert_eq!(c["annotations"]["io.podman.annotations.autoremove"], "TRUE");
        assert_eq!(c["process"], before["process"]);
        assert_eq!(c["unknownTopLevel"], true);
        assert!(c.get("linux").is_none());
    }

    #[test]
    fn why_the_edit_is_not_an_oci_spec_round_trip() {
        // A field oci-spec does not model is lost by a parse and re-write;
        // the JSON-value edit keeps it.
        let text = r#"{"ociVersion": "1.0.2", "process": {"args": ["x"], "cwd": "/",
            "user": {"uid": 0, "gid": 0}}, "root": {"path": "rootfs"}, "vm.example/new": 1}"#;
        let spec: oci_spec::runtime::Spec = serde_json::from_str(text).unwrap();
        assert!(serde_json::to_value(&spec)
            .unwrap()
            .get("vm.example/new")
            .is_none());
        let mut value: Value = serde_json::from_str(text).unwrap();
        annotate(&mut value, None).unwrap();
        assert_eq!(value["vm.example/new"], 1);
        // The edited config still reads as an OCI spec.
        let spec: oci_spec::runtime::Spec = serde_json::from_value(value).unwrap();
        assert_eq!(
            spec.annotations().as_ref().unwrap()["run.oci.handler"],
            "qemu"
        );
    }

    #[test]
    fn refuses_another_handler() {
        let mut c = json!({"annotations": {"run.oci.handler": "krun"}});
        assert!(annotate(&mut c, None)
            .unwrap_err()
            .to_string()
            .contains("krun"));
    }

    #[test]
    fn grants_kvm_once_unless_tcg_is_forced() {
        let mut c =
            json!({"linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}}});
        annotate(&mut c, Some((10, 232))).unwrap();
        annotate(&mut c, Some((10, 232))).unwrap();
        assert_eq!(c["linux"]["devices"].as_array().unwrap().len(), 1);
        assert_eq!(c["linux"]["devices"][0]["path"], "/dev/kvm");
        let rules = c["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1]["major"], 10);

        let mut t = json!({"annotations": {"qemu.accel": "tcg"}});
        annotate(&mut t, Some((10, 232))).unwrap();
        assert!(t.get("linux").is_none());
    }
}
