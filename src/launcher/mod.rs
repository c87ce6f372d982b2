//! The `crun-qemu` launcher: the OCI runtime podman's `--runtime` points at.
//! It runs on the host, once per runtime command. It marks containers for
//! the handler, makes crun able to load this build's handler, and hands
//! every command to crun unchanged.

pub mod bundle;
pub mod cli;
pub mod stage;
pub mod version;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::crun_install::{self, HANDLER_FILE};

/// How crun will find the handler for this invocation.
pub enum HandlerSource {
    /// Our build, bound over crun's handler directory in a private namespace.
    Staged { dir: PathBuf, handler: PathBuf },
    /// Already installed in crun's handler directory.
    Installed,
}

/// Decides where crun gets the handler from; our own build wins.
pub fn handler_source(crun: &Path) -> Result<HandlerSource> {
    let dir = crun_install::handler_dir(crun)?;
    if let Some(handler) = crun_install::handler_next_to_launcher() {
        return Ok(HandlerSource::Staged { dir, handler });
    }
    if dir.join(HANDLER_FILE).is_file() {
        return Ok(HandlerSource::Installed);
    }
    bail!(
        "cannot find {HANDLER_FILE}: keep it next to the crun-qemu binary, or run `crun-qemu install-handler` as root"
    )
}

/// A crun command with argv[0] "crun": crun picks a global handler from an
/// argv[0] of "crun-NAME", which must not happen as well as the annotation.
pub fn crun_command(crun: &Path) -> Command {
    let mut cmd = Command::new(crun);
    cmd.arg0("crun");
    cmd
}

fn exec_crun(crun: &Path, args: &[String], stage: bool) -> Result<()> {
    if stage {
        if let HandlerSource::Staged { dir, handler } = handler_source(crun)? {
            stage::enter(&dir, &handler)?;
        }
    }
    let err = crun_command(crun).args(args).exec();
    Err(err).with_context(|| format!("cannot execute {}", crun.display()))
}

fn install(uninstall: bool) -> Result<()> {
    let crun = crun_install::crun_binary();
    let dir = crun_install::handler_dir(&crun)?;
    if uninstall {
        match crun_install::uninstall(&dir)? {
            Some(p) => println!("removed {}", p.display()),
            None => println!("no handler installed in {}", dir.display()),
        }
        return Ok(());
    }
    let src = crun_install::handler_next_to_launcher().with_context(|| {
        format!("no {HANDLER_FILE} next to this crun-qemu binary: build it with cargo build")
    })?;
    let dest = crun_install::install(&src, &dir)?;
    println!(
        "installed {} (crun now runs containers annotated run.oci.handler=qemu as VMs)",
        dest.display()
    );
    Ok(())
}

fn dispatch(args: &[String]) -> Result<()> {
    let inv = cli::parse(args);
    let crun = crun_install::crun_binary();
    match inv.command.as_deref() {
        None if args.iter().any(|a| a == "--version" || a == "-v") => version::print(&crun),
        Some("install-handler") => install(false),
        Some("uninstall-handler") => install(true),
        Some("create") | Some("run") => {
            let config = inv.config.clone().unwrap_or_else(|| "config.json".into());
            bundle::annotate_file(&inv.bundle.join(config))?;
            exec_crun(&crun, args, true)
        }
        Some("exec") => exec_crun(&crun, args, true),
        _ => exec_crun(&crun, args, false),
    }
}

/// Entry point of the binary; returns the exit status on failure (success
/// replaces the process with crun).
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{} {e:#}", crate::LOG_PREFIX);
            1
        }
    }
}
