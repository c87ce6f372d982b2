//! A VM container image boots through podman, crun and QEMU, and its
//! lifecycle (power-off, podman stop, podman rm -f) behaves as a user expects.

mod common;

use common::*;

#[test]
fn guest_console_reaches_the_container_and_poweroff_exits_zero() {
    env();
    let name = unique("poweroff");
    let _c = Container(name.clone());
    let out = podman_run(
        &["--name", &name, "--annotation", "qemu.accel=auto"],
        POWEROFF,
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("TEST-GUEST: booted mode=poweroff"),
        "{stdout}"
    );
    assert!(stdout.contains("TEST-GUEST: powering off"), "{stdout}");
    // auto must not trust /dev/kvm on these machines, and says so once.
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("using TCG")).collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(
        notes[0].starts_with("crun-qemu: KVM is not usable"),
        "{stderr}"
    );
}

#[test]
fn podman_stop_presses_the_power_button_and_the_guest_powers_off() {
    env();
    let name = unique("stop");
    let _c = Container(name.clone());
    let out = podman_run(&["-d", "--name", &name], WAIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for_log(
        &name,
        "TEST-GUEST: waiting for the power button on /dev/input/event",
        120,
    );
    // The handler's mounts (the host's /usr in the rootfs, the staged
    // handler directory) live in the container's and crun's namespaces only.
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let leaked: Vec<&str> = host_mounts
        .lines()
        .filter(|l| l.contains("/merged/usr") || l.contains("crun/handlers"))
        .collect();
    assert!(leaked.is_empty(), "mounts leaked to the host: {leaked:?}");
    let stop = podman(&["stop", "-t", "60", &name]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let logs = logs(&name);
    assert!(logs.contains("TEST-GUEST: power button pressed"), "{logs}");
    assert_eq!(inspect(&name, "{{.State.ExitCode}}"), "0", "{logs}");
}

#[test]
fn a_vm_that_cannot_start_fails_the_container_with_a_message() {
    env();
    let name = unique("nokvm");
    let _c = Container(name.clone());
    // KVM cannot run guests on the test machines: asking for it must fail
    // fast and say what to do, not hang or fall back silently.
    let out = podman_run(
        &["--name", &name, "--annotation", "qemu.accel=kvm"],
        POWEROFF,
    );
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr.contains("qemu.accel=kvm was requested but KVM is not usable"),
        "{stderr}"
    );
    assert!(stderr.contains("use qemu.accel=tcg"), "{stderr}");
    // The launcher made /dev/kvm reachable (node and device cgroup): the
    // runner opened it and only then found the host's KVM unusable.
    assert!(stderr.contains("kvm-pvm"), "{stderr}");
    assert!(!text(&out.stdout).contains("TEST-GUEST"));
}

#[test]
fn rm_force_during_boot_leaves_nothing_behind() {
    env();
    let name = unique("rmf");
    let out = podman_run(&["-d", "--name", &name], WAIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    // Mid-boot: QEMU is running but the guest has not reached userspace.
    wait_for(60, "QEMU in the container", || {
        leftovers(&id)
            .iter()
            .any(|l| l.contains("qemu-system-x86_64"))
            .then_some(())
    });
    assert!(
        !logs(&name).contains("TEST-GUEST: waiting"),
        "the guest booted too fast for this test"
    );
    let rm = podman(&["rm", "-f", "-t", "0", &name]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    let left = wait_for(30, "the container to be gone", || {
        let l = leftovers(&id);
        l.is_empty().then_some(l)
    });
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_vm_image_is_never_written() {
    env();
    let name = unique("pristine");
    let _c = Container(name.clone());
    let mnt = text(&podman(&["image", "mount", POWEROFF]).stdout)
        .trim()
        .to_string();
    let image = std::path::Path::new(&mnt).join("disk/poweroff.qcow2");
    let before = sha256(&image);
    let out = podman_run(&["--name", &name], POWEROFF);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("TEST-GUEST: wrote a marker to /dev/vda"),
        "{stdout}"
    );
    assert_eq!(
        sha256(&image),
        before,
        "the guest's writes reached the image"
    );
    // A second run starts from the pristine image again.
    let again = podman_run(&["--rm"], POWEROFF);
    assert!(
        text(&again.stdout).contains("TEST-GUEST: previous-marker=none"),
        "{}",
        text(&again.stdout)
    );
    let _ = podman(&["image", "unmount", POWEROFF]);
}

#[test]
fn read_only_containers_boot_with_the_overlay_in_memory() {
    env();
    let name = unique("readonly");
    let _c = Container(name.clone());
    let out = podman_run(&["--name", &name, "--read-only"], POWEROFF);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("TEST-GUEST: wrote a marker to /dev/vda"),
        "{stdout}"
    );
}

#[test]
fn podman_start_after_stop_keeps_the_guests_disk_writes() {
    env();
    let name = unique("restart");
    let _c = Container(name.clone());
    let out = podman_run(&["-d", "--name", &name], WAIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = wait_for_log(&name, "TEST-GUEST: waiting for the power button", 120);
    assert_eq!(
        guest_value(&first, "previous-marker").as_deref(),
        Some("none"),
        "{first}"
    );
    assert!(podman(&["stop", "-t", "60", &name]).status.success());
    let start = podman(&["start", &name]);
    assert!(start.status.success(), "{}", text(&start.stderr));
    // podman logs now holds both boots; the second saw the first's marker.
    let both = wait_for(120, "the second boot", || {
        let l = logs(&name);
        (l.matches("TEST-GUEST: waiting for the power button")
            .count()
            == 2)
            .then_some(l)
    });
    let markers: Vec<&str> = both
        .lines()
        .filter(|l| l.contains("previous-marker="))
        .collect();
    assert_eq!(markers.len(), 2, "{both}");
    assert!(markers[1].contains("previous-marker=run-"), "{both}");
}

#[test]
fn podman_exec_says_it_is_not_supported_yet() {
    env();
    let name = unique("exec");
    let _c = Container(name.clone());
    let out = podman_run(&["-d", "--name", &name], WAIT);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for_log(&name, "TEST-GUEST: waiting for the power button", 120);
    let exec = podman(&["exec", &name, "ls"]);
    assert_ne!(exec.status.code(), Some(0));
    let stderr = text(&exec.stderr);
    assert!(
        stderr.contains("running commands in the guest (podman exec) is not supported yet"),
        "{stderr}"
    );
    // The VM is unaffected.
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
}
