//! The launcher as a user sees it: `--version` diagnostics, the handler
//! loaded the way crun loads it, and commands passed through to crun.

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_handler_loads_like_crun_loads_it() {
    let env = env();
    let out = Command::new(env!("CRUN_QEMU_LOADER"))
        .arg(&env.handler)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "name=qemu feature=QEMU alias=(null) exec=yes configure=yes modify=yes close_fds=no"
    );
}

#[test]
fn version_reports_what_a_user_needs() {
    let env = env();
    let out = Command::new(&env.launcher)
        .arg("--version")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with(&format!(
            "crun-qemu version {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("crun: /usr/bin/crun (crun version 1.8.1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("handler loaded by crun: yes (+QEMU)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("qemu: /usr/bin/qemu-system-x86_64 (QEMU emulator version"),
        "{stdout}"
    );
    assert!(stdout.contains("kvm: not usable"), "{stdout}");
}

#[test]
fn other_commands_reach_crun_unchanged() {
    let env = env();
    let ours = Command::new(&env.launcher)
        .args(["--root", "/run/crun", "list", "-q"])
        .output()
        .unwrap();
    let theirs = Command::new("crun")
        .args(["--root", "/run/crun", "list", "-q"])
        .output()
        .unwrap();
    assert_eq!(ours.status.code(), theirs.status.code());
    let bad = Command::new(&env.launcher)
        .args(["state", "no-such-container"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("no-such-container"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn package_vm_image_explains_its_usage() {
    let env = env();
    for args in [&[][..], &["only-one"][..], &["a", "b", "c"][..]] {
        let out = Command::new(env.root.join("package-vm-image.sh"))
            .args(args)
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0));
        let stderr = text(&out.stderr);
        let mut lines = stderr.lines();
        assert_eq!(
            lines.next(),
            Some("Usage: ./package-vm-image.sh <vm_image_file> <container_image_tag>")
        );
        assert!(
            lines.next().is_some_and(|l| l.contains("/disk/")),
            "{stderr}"
        );
    }
}

#[test]
fn package_vm_image_packages_the_file_under_disk() {
    let env = env();
    let tag = "localhost/crun-qemu-test/packaged";
    let out = Command::new(env.root.join("package-vm-image.sh"))
        .arg(env.images.join("poweroff.qcow2"))
        .arg(tag)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mnt = text(&podman(&["image", "mount", tag]).stdout)
        .trim()
        .to_string();
    let entries: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let disk: Vec<String> = std::fs::read_dir(std::path::Path::new(&mnt).join("disk"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let _ = podman(&["image", "unmount", tag]);
    assert_eq!(entries, vec!["disk".to_string()]);
    assert_eq!(disk, vec!["poweroff.qcow2".to_string()]);
}
