//! The OCI annotations that select this handler and configure the VM.
//! Parsed once, from the container's config.json, in the crun parent.

use std::collections::HashMap;

use anyhow::{bail, Result};

/// crun's annotation that names the custom handler for a container.
pub const HANDLER_ANNOTATION: &str = "run.oci.handler";
/// The name this handler registers with crun.
pub const HANDLER_NAME: &str = "qemu";
/// Every annotation of ours starts with this; unknown ones are refused.
pub const PREFIX: &str = "qemu.";

/// Which accelerator the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelRequest {
    /// KVM when it really runs guests, otherwise TCG.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// Which firmware the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirmwareRequest {
    /// Chosen from the image's partition table.
    #[default]
    Auto,
    Bios,
    Uefi,
}

/// The VM settings the user can give as annotations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Annotations {
    pub accel: AccelRequest,
    pub firmware: FirmwareRequest,
    /// Guest writes reach the image itself instead of a throwaway overlay.
    pub persistent: bool,
}

/// Each known annotation with the values it accepts, for error messages.
pub const KNOWN: &[(&str, &str)] = &[
    ("qemu.accel", "auto, kvm or tcg"),
    ("qemu.firmware", "auto, bios or uefi"),
    ("qemu.persistent", "true or false"),
];

fn choice<T: Copy>(key: &str, value: &str, options: &[(&str, T)]) -> Result<T> {
    match options.iter().find(|(name, _)| *name == value) {
        Some((_, v)) => Ok(*v),
        None => {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            bail!(
                "annotation {key}={value:?} is not valid: use {}",
                names.join(", ")
            )
        }
    }
}

fn known_list() -> String {
    KNOWN
        .iter()
        .map(|(k, v)| format!("{k} ({v})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when the container asks crun to run it with this handler.
pub fn selects_handler(map: &HashMap<String, String>) -> bool {
    map.get(HANDLER_ANNOTATION).map(String::as_str) == Some(HANDLER_NAME)
}

/// Parses the `qemu.*` annotations; any other key is left alone.
pub fn parse(map: &HashMap<String, String>) -> Result<Annotations> {
    let mut out = Annotations::default();
    let mut keys: Vec<&String> = map.keys().filter(|k| k.starts_with(PREFIX)).collect();
    keys.sort();
    for key in keys {
        let value = map[key].as_str();
        match key.as_str() {
            "qemu.accel" => {
                use AccelRequest::*;
                out.accel = choice(key, value, &[("auto", Auto), ("kvm", Kvm), ("tcg", Tcg)])?
            }
            "qemu.firmware" => {
                use FirmwareRequest::*;
                out.firmware = choice(
                    key,
                    value,
                    &[("auto", Auto), ("bios", Bios), ("uefi", Uefi)],
                )?
            }
            "qemu.persistent" => {
                out.persistent = choice(key, value, &[("true", true), ("false", false)])?
            }
            _ => bail!(
                "unknown annotation {key}: the annotations crun-qemu knows are {}",
                known_list()
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_when_absent() {
        assert_eq!(parse(&map(&[])).unwrap(), Annotations::default());
        assert_eq!(
            parse(&map(&[("io.podman.x", "1")])).unwrap().accel,
            AccelRequest::Auto
        );
    }

    #[test]
    fn accel_values() {
        for (v, want) in [
            ("auto", AccelRequest::Auto),
            ("kvm", AccelRequest::Kvm),
            ("tcg", AccelRequest::Tcg),
        ] {
            assert_eq!(parse(&map(&[("qemu.accel", v)])).unwrap().accel, want);
        }
        let err = parse(&map(&[("qemu.accel", "hvf")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("qemu.accel") && err.contains("auto, kvm, tcg"),
            "{err}"
        );
    }

    #[test]
    fn firmware_and_persistence() {
        let a = parse(&map(&[
            ("qemu.firmware", "uefi"),
            ("qemu.persistent", "true"),
        ]))
        .unwrap();
        assert_eq!((a.firmware, a.persistent), (FirmwareRequest::Uefi, true));
        assert!(parse(&map(&[("qemu.persistent", "yes")])).is_err());
        let err = parse(&map(&[("qemu.firmware", "coreboot")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auto, bios, uefi"), "{err}");
    }

    #[test]
    fn unknown_annotation_lists_known_ones() {
        let err = parse(&map(&[("qemu.acel", "tcg")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown annotation qemu.acel"), "{err}");
        assert!(
            err.contains("qemu.accel (auto, kvm or tcg), qemu.firmware (auto, bios or uefi)"),
            "{err}"
        );
    }

    #[test]
    fn handler_selection() {
        assert!(selects_handler(&map(&[("run.oci.handler", "qemu")])));
        assert!(!selects_handler(&map(&[("run.oci.handler", "krun")])));
        assert!(!selects_handler(&map(&[])));
    }
}
