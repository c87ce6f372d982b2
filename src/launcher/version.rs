//! `crun-qemu --version`: this project's version, then what a user needs
//! to know when a VM does not start: which crun, whether it loads the
//! handler, which QEMU, and whether KVM works here.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::{crun_command, handler_source, HandlerSource};
use crate::qemu_cmdline::QEMU_BINARY;

fn first_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

pub fn print(crun: &Path) -> Result<()> {
    println!("crun-qemu version {}", env!("CARGO_PKG_VERSION"));
    let source = handler_source(crun);
    let mut cmd = crun_command(crun);
    cmd.arg("--version");
    let handler_desc = match &source {
        Ok(HandlerSource::Staged { dir, handler }) => {
            let desc = format!(
                "{} (this build, bound into crun's handler directory per command)",
                handler.display()
            );
            let (dir, handler) = (dir.clone(), handler.clone());
            // SAFETY: the launcher is single threaded, so the forked child
            // may allocate; it only sets up its own mount namespace.
            unsafe {
                cmd.pre_exec(move || {
                    super::stage::enter(&dir, &handler)
                        .map_err(|e| std::io::Error::other(format!("{e:#}")))
                });
            }
            desc
        }
        Ok(HandlerSource::Installed) => "installed in crun's handler directory".to_string(),
        Err(e) => format!("not found: {e:#}"),
    };
    match cmd.output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let loaded = text.split_whitespace().any(|w| w == "+QEMU");
            println!("crun: {} ({})", crun.display(), first_line(&out.stdout));
            println!("handler: {handler_desc}");
            println!(
                "handler loaded by crun: {}",
                if loaded {
                    "yes (+QEMU)"
                } else {
                    "NO: crun --version does not list +QEMU"
                }
            );
            if !out.status.success() {
                println!(
                    "crun --version failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        Err(e) => println!("crun: {} cannot be run: {e}", crun.display()),
    }
    match Command::new(QEMU_BINARY).arg("--version").output() {
        Ok(out) => println!("qemu: {QEMU_BINARY} ({})", first_line(&out.stdout)),
        Err(e) => println!("qemu: {QEMU_BINARY} cannot be run: {e} (install qemu-system-x86)"),
    }
    match crate::accel::kvm_usable() {
        Ok(()) => println!("kvm: usable (qemu.accel=auto uses it)"),
        Err(why) => {
            println!("kvm: not usable: {why} (qemu.accel=auto falls back to TCG emulation)")
        }
    }
    Ok(())
}
