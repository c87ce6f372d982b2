//! Reads just enough of an OCI runtime command line (crun's syntax) to know
//! the command and its bundle. Pure; everything is passed on unchanged.

use std::path::PathBuf;

/// crun's global options that take a value as the next argument.
const GLOBAL_WITH_VALUE: &[&str] = &[
    "--root",
    "--log",
    "--log-format",
    "--log-level",
    "--cgroup-manager",
    "--rootless",
    "--handler",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The command word (`create`, `run`, `state`…), if any.
    pub command: Option<String>,
    /// The bundle directory for `create` and `run` (default: the cwd).
    pub bundle: PathBuf,
    /// `--config FILE` given to `create`/`run`, relative to the bundle.
    pub config: Option<PathBuf>,
}

pub fn parse(args: &[String]) -> Invocation {
    let mut i = 0;
    let mut command = None;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            break;
        }
        if !a.starts_with('-') {
            command = Some(a.to_string());
            break;
        }
        if GLOBAL_WITH_VALUE.contains(&a) {
            i += 1;
        }
        i += 1;
    }
    let mut bundle = PathBuf::from(".");
    let mut config = None;
    if matches!(command.as_deref(), Some("create") | Some("run")) {
        let rest = &args[i + 1..];
        let mut j = 0;
        while j < rest.len() {
            let a = rest[j].as_str();
            let next = rest.get(j + 1).cloned();
            if a == "--bundle" || a == "-b" {
                if let Some(n) = next {
                    bundle = n.into();
                }
                j += 1;
            } else if let Some(v) = a.strip_prefix("--bundle=") {
                bundle = v.into();
            } else if let Some(v) = a.strip_prefix("-b").filter(|v| !v.is_empty()) {
                bundle = v.into();
            } else if a == "--config" || a == "-f" {
                config = next.map(PathBuf::from);
                j += 1;
            } else if let Some(v) = a.strip_prefix("--config=") {
                config = Some(v.into());
            } else if !a.starts_with('-') {
                break; // the container id: options end here
            }
            j += 1;
        }
    }
    Invocation {
        command,
        bundle,
        config,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn podman_create() {
        let inv = parse(&args(
            "--root /run/crun --log /x/log --log-format json --systemd-cgroup create --bundle /b/userdata --pid-file /p ctr",
        ));
        assert_eq!(inv.command.as_deref(), Some("create"));
        assert_eq!(inv.bundle, PathBuf::from("/b/userdata"));
        assert_eq!(inv.config, None);
    }

    #[test]
    fn other_spellings() {
        assert_eq!(parse(&args("run -b/x c")).bundle, PathBuf::from("/x"));
        assert_eq!(
            parse(&args("--root=/r run --bundle=/y c")).bundle,
            PathBuf::from("/y")
        );
        assert_eq!(parse(&args("run c")).bundle, PathBuf::from("."));
        assert_eq!(
            parse(&args("create -f my.json c")).config,
            Some(PathBuf::from("my.json"))
        );
    }

    #[test]
    fn other_commands_have_no_bundle_edit() {
        let inv = parse(&args("--root /run/crun kill ctr TERM"));
        assert_eq!(inv.command.as_deref(), Some("kill"));
        assert_eq!(parse(&args("--version")).command, None);
    }
}
