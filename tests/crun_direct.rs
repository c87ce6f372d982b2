//! The handler without the launcher: after `crun-qemu install-handler`,
//! plain crun boots a bundle annotated `run.oci.handler=qemu`, and still
//! runs ordinary containers as before.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn crun_spec(bundle: &Path, args: serde_json::Value, annotations: serde_json::Value) {
    let out = Command::new("crun")
        .arg("spec")
        .current_dir(bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "crun spec: {}", text(&out.stderr));
    let path = bundle.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["args"] = args;
    config["process"]["terminal"] = false.into();
    config["annotations"] = annotations;
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

#[test]
fn plain_crun_boots_an_annotated_bundle_after_install_handler() {
    let env = env();
    let dir = Path::new("/usr/lib/x86_64-linux-gnu/crun/handlers");
    let created_dir = !dir.exists();
    let install = Command::new(&env.launcher)
        .arg("install-handler")
        .output()
        .unwrap();
    assert!(install.status.success(), "{}", text(&install.stderr));
    assert!(dir.join("libcrun_qemu.so").is_file());

    let version = Command::new("crun").arg("--version").output().unwrap();
    let result = std::panic::catch_unwind(|| {
        assert!(
            text(&version.stdout).contains("+QEMU"),
            "{}",
            text(&version.stdout)
        );

        // A VM bundle: the image's /disk copied into a fresh rootfs.
        let vm = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(vm.path().join("rootfs/disk")).unwrap();
        std::fs::copy(
            env.images.join("poweroff.qcow2"),
            vm.path().join("rootfs/disk/poweroff.qcow2"),
        )
        .unwrap();
        crun_spec(
            vm.path(),
            serde_json::json!(["unused"]),
            serde_json::json!({"run.oci.handler": "qemu", "qemu.accel": "tcg"}),
        );
        let id = unique("crun");
        let out = run_limited(
            180,
            "crun",
            &["run", "--bundle", vm.path().to_str().unwrap(), &id],
        );
        let _ = Command::new("crun").args(["delete", "-f", &id]).output();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains("TEST-GUEST: powering off"),
            "{}",
            text(&out.stdout)
        );

        // An ordinary container on the same crun is not affected.
        let plain = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(plain.path().join("rootfs/bin")).unwrap();
        std::fs::copy("/bin/busybox", plain.path().join("rootfs/bin/busybox")).unwrap();
        crun_spec(
            plain.path(),
            serde_json::json!(["/bin/busybox", "echo", "plain-container-ok"]),
            serde_json::json!({}),
        );
        let id = unique("plain");
        let out = run_limited(
            60,
            "crun",
            &["run", "--bundle", plain.path().to_str().unwrap(), &id],
        );
        let _ = Command::new("crun").args(["delete", "-f", &id]).output();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), "plain-container-ok");
    });

    let uninstall = Command::new(&env.launcher)
        .arg("uninstall-handler")
        .output()
        .unwrap();
    assert!(uninstall.status.success(), "{}", text(&uninstall.stderr));
    assert!(!dir.join("libcrun_qemu.so").exists());
    if created_dir {
        let _ = std::fs::remove_dir(dir);
        let _ = std::fs::remove_dir(dir.parent().unwrap());
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
