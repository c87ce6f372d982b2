//! The VM follows the container's configuration: podman's --cpus,
//! --cpuset-cpus and --memory, the firmware the image needs, its format,
//! persistence, and --rootfs.

mod common;

use std::path::Path;

use common::*;
use crun_qemu::resources::MEMORY_ALLOWANCE_MIB;

fn boot(extra: &[&str], image: &str) -> String {
    env();
    let name = unique("cfg");
    let _c = Container(name.clone());
    let mut args = vec!["--name", name.as_str()];
    args.extend(extra);
    let out = podman_run(&args, image);
    let console = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{console}\n{}",
        text(&out.stderr)
    );
    assert!(console.contains("TEST-GUEST: powering off"), "{console}");
    console
}

#[test]
fn cpus_gives_the_guest_the_rounded_up_count() {
    assert_eq!(
        guest_value(&boot(&["--cpus", "1"], POWEROFF), "nproc").as_deref(),
        Some("1")
    );
    assert_eq!(
        guest_value(&boot(&["--cpus", "1.5"], POWEROFF), "nproc").as_deref(),
        Some("2")
    );
}

#[test]
fn cpuset_sets_the_count_and_pins_each_vcpu() {
    env();
    assert_eq!(
        guest_value(&boot(&["--cpuset-cpus", "1"], POWEROFF), "nproc").as_deref(),
        Some("1")
    );

    let name = unique("pin");
    let _c = Container(name.clone());
    let out = podman_run(&["-d", "--name", &name, "--cpuset-cpus", "0-1"], WAIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    let logs = wait_for_log(&name, "TEST-GUEST: waiting for the power button", 120);
    assert_eq!(guest_value(&logs, "nproc").as_deref(), Some("2"), "{logs}");
    let (qemu, _) = container_processes(&id)
        .into_iter()
        .find(|(_, cmd)| cmd.starts_with("/usr/bin/qemu-system-x86_64"))
        .expect("QEMU runs in the container");
    let mut pinned = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{qemu}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap();
        if let Some(cpu) = comm
            .trim()
            .strip_prefix("CPU ")
            .and_then(|c| c.strip_suffix("/TCG"))
        {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap();
            let allowed = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap()
                .trim()
                .to_string();
            pinned.push((cpu.to_string(), allowed));
        }
    }
    pinned.sort();
    assert_eq!(
        pinned,
        vec![("0".into(), "0".into()), ("1".into(), "1".into())]
    );
}

#[test]
fn memory_gives_the_guest_the_limit_minus_qemus_allowance() {
    let console = boot(&["--memory", "512m"], POWEROFF);
    let kb: u64 = guest_value(&console, "memtotal_kb")
        .unwrap()
        .parse()
        .unwrap();
    let guest_mib = 512 - MEMORY_ALLOWANCE_MIB;
    // The kernel keeps about 50 MiB of the RAM for itself (measured with
    // 352 MiB to 1 GiB guests).
    assert!(
        kb <= guest_mib * 1024 && kb >= (guest_mib - 64) * 1024,
        "MemTotal {kb} kB for {guest_mib} MiB"
    );
}

#[test]
fn a_guest_that_fills_its_memory_stays_inside_the_limit() {
    package("fill.qcow2", "localhost/crun-qemu-test/fill");
    let name = unique("fill");
    let _c = Container(name.clone());
    let out = podman_run(
        &["--name", &name, "--memory", "512m"],
        "localhost/crun-qemu-test/fill",
    );
    let console = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{console}\n{}",
        text(&out.stderr)
    );
    let filled: u64 = guest_value(&console, "filled_mib").map_or(0, |v| v.parse().unwrap_or(0));
    assert!(filled > 200, "the guest filled only {filled} MiB");
    assert_eq!(inspect(&name, "{{.State.OOMKilled}}"), "false");
}

#[test]
fn too_small_a_memory_limit_is_refused_before_start() {
    assert_refused(
        POWEROFF,
        &["--memory", "200m"],
        &["the memory limit (200 MiB) is too small for a VM: use --memory 288m or more"],
    );
}

#[test]
fn a_uefi_only_image_boots_with_ovmf() {
    package("uefi.qcow2", "localhost/crun-qemu-test/uefi");
    let console = boot(&[], "localhost/crun-qemu-test/uefi");
    assert!(console.contains("TEST-GUEST: booted"), "{console}");
}

#[test]
fn vmdk_images_boot() {
    package("poweroff.vmdk", "localhost/crun-qemu-test/vmdk");
    boot(&[], "localhost/crun-qemu-test/vmdk");
}

#[test]
fn vdi_images_boot() {
    package("poweroff.vdi", "localhost/crun-qemu-test/vdi");
    boot(&[], "localhost/crun-qemu-test/vdi");
}

#[test]
fn vhdx_images_boot() {
    package("poweroff.vhdx", "localhost/crun-qemu-test/vhdx");
    boot(&[], "localhost/crun-qemu-test/vhdx");
}

fn rootfs_with(image_at: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join(image_at);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(env().images.join("poweroff.raw"), &dest).unwrap();
    dir
}

/// `podman run --rootfs DIR`: the directory stands where the image would.
fn boot_rootfs(dir: &Path, extra: &[&str]) -> String {
    let mut args = vec!["--rootfs"];
    args.extend(extra);
    boot(&args, dir.to_str().unwrap())
}

#[test]
fn rootfs_dir_with_disk_boots_and_persistence_keeps_writes() {
    let dir = rootfs_with("disk/vm.raw");
    let image = dir.path().join("disk/vm.raw");
    let pristine = sha256(&image);

    // Without persistence the host file is never written.
    let first = boot_rootfs(dir.path(), &[]);
    assert_eq!(
        guest_value(&first, "previous-marker").as_deref(),
        Some("none"),
        "{first}"
    );
    assert_eq!(sha256(&image), pristine);
    let overlay_left: Vec<_> = std::fs::read_dir(dir.path().join(".crun-qemu"))
        .map(|d| d.count())
        .into_iter()
        .collect();
    assert_eq!(
        overlay_left,
        vec![0],
        "the overlay was left in the host directory"
    );

    // With persistence a second run sees what the first one wrote.
    let p = ["--annotation", "qemu.persistent=true"];
    let one = boot_rootfs(dir.path(), &p);
    assert_eq!(
        guest_value(&one, "previous-marker").as_deref(),
        Some("none"),
        "{one}"
    );
    assert_ne!(
        sha256(&image),
        pristine,
        "the writes did not reach the image"
    );
    let two = boot_rootfs(dir.path(), &p);
    let marker = guest_value(&two, "previous-marker").unwrap();
    assert!(marker.starts_with("run-"), "{two}");
}

#[test]
fn rootfs_dir_with_the_image_at_its_top_boots() {
    let dir = rootfs_with("vm.raw");
    boot_rootfs(dir.path(), &[]);
}

#[test]
fn persistence_is_refused_where_it_would_copy_the_image() {
    assert_refused(
        POWEROFF,
        &["--annotation", "qemu.persistent=true"],
        &[
            "qemu.persistent=true would copy the whole VM image",
            "--rootfs",
        ],
    );
}
