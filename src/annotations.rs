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

/// The VM settings the user can give as annotations.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Annotations {
    pub accel: AccelRequest,
}

/// Each known annotation with the values it accepts, for error messages.
pub const KNOWN: &[(&str, &str)] = &[("qemu.accel", "auto, kvm or tcg")];

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
                out.accel = match value {
                    "auto" => AccelRequest::Auto,
                    "kvm" => AccelRequest::Kvm,
                    "tcg" => AccelRequest::Tcg,
                    _ => {
                        bail!("annotation qemu.accel={value:?} is not valid: use auto, kvm or tcg")
                    }
                }
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
            err.contains("qemu.accel") && err.contains("auto, kvm or tcg"),
            "{err}"
        );
    }

    #[test]
    fn unknown_annotation_lists_known_ones() {
        let err = parse(&map(&[("qemu.acel", "tcg")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown annotation qemu.acel"), "{err}");
        assert!(err.contains("qemu.accel (auto, kvm or tcg)"), "{err}");
    }

    #[test]
    fn handler_selection() {
        assert!(selects_handler(&map(&[("run.oci.handler", "qemu")])));
        assert!(!selects_handler(&map(&[("run.oci.handler", "krun")])));
        assert!(!selects_handler(&map(&[])));
    }
}
