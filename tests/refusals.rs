//! Bad container images and bad annotations are refused before anything
//! starts, with a message that says what was found and what to do, and
//! leave nothing behind.

mod common;

use common::*;

const PACKAGE_HINT: &str = "package-vm-image.sh";

#[test]
fn no_disk_directory() {
    let tag = "localhost/crun-qemu-test/bad-nodisk";
    scratch_image(tag, "mkdir -p $M/etc && echo x > $M/etc/hostname");
    assert_refused(tag, &[], &["no /disk directory", PACKAGE_HINT]);
}

#[test]
fn empty_disk_directory() {
    let tag = "localhost/crun-qemu-test/bad-empty";
    scratch_image(tag, "mkdir -p $M/disk");
    assert_refused(
        tag,
        &[],
        &["/disk in the container image is empty", PACKAGE_HINT],
    );
}

#[test]
fn two_images() {
    let tag = "localhost/crun-qemu-test/bad-two";
    scratch_image(
        tag,
        "mkdir -p $M/disk && echo a > $M/disk/a.img && echo b > $M/disk/b.img",
    );
    assert_refused(
        tag,
        &[],
        &["found 2 entries under /disk", "a.img, b.img", PACKAGE_HINT],
    );
}

#[test]
fn a_directory_instead_of_an_image() {
    let tag = "localhost/crun-qemu-test/bad-dir";
    scratch_image(tag, "mkdir -p $M/disk/vm");
    assert_refused(
        tag,
        &[],
        &["/disk/vm in the container image is a directory"],
    );
}

#[test]
fn a_symlink_out_of_the_rootfs() {
    let tag = "localhost/crun-qemu-test/bad-symlink";
    scratch_image(tag, "mkdir -p $M/disk && ln -s /etc/shadow $M/disk/vm.img");
    assert_refused(
        tag,
        &[],
        &["/disk/vm.img in the container image is a symbolic link"],
    );
}

#[test]
fn disk_itself_a_symlink() {
    let tag = "localhost/crun-qemu-test/bad-symlink-dir";
    scratch_image(tag, "ln -s /var/lib $M/disk");
    assert_refused(
        tag,
        &[],
        &["/disk in the container image is a symbolic link"],
    );
}

#[test]
fn a_device_node() {
    let tag = "localhost/crun-qemu-test/bad-device";
    scratch_image(tag, "mkdir -p $M/disk && mknod $M/disk/sda b 8 0");
    assert_refused(
        tag,
        &[],
        &["/disk/sda in the container image is a block device"],
    );
}

#[test]
fn a_corrupt_qcow2() {
    let tag = "localhost/crun-qemu-test/bad-corrupt";
    // A qcow2 magic followed by version 99.
    scratch_image(tag, "mkdir -p $M/disk && printf 'QFI\\373\\000\\000\\000\\143' > $M/disk/vm.qcow2 && truncate -s 1M $M/disk/vm.qcow2");
    assert_refused(
        tag,
        &[],
        &[
            "/disk/vm.qcow2 is a corrupt disk image",
            "unsupported qcow2 version 99",
        ],
    );
}

#[test]
fn a_compressed_image() {
    let tag = "localhost/crun-qemu-test/bad-gzip";
    scratch_image(
        tag,
        "mkdir -p $M/disk && head -c 100000 /dev/zero | gzip > $M/disk/vm.img.gz",
    );
    assert_refused(tag, &[], &["gzip-compressed", "decompress it first"]);
}

#[test]
fn a_qcow2_with_a_backing_file() {
    let tag = "localhost/crun-qemu-test/bad-backing";
    scratch_image(
        tag,
        "mkdir -p $M/disk && qemu-img create -q -f qcow2 -u -F raw -b /etc/shadow $M/disk/vm.qcow2 10M",
    );
    assert_refused(tag, &[], &["backing file", "qemu-img convert"]);
}

#[test]
fn an_unknown_annotation() {
    assert_refused(
        POWEROFF,
        &["--annotation", "qemu.bogus=1"],
        &[
            "unknown annotation qemu.bogus",
            "qemu.accel (auto, kvm or tcg)",
        ],
    );
}

#[test]
fn a_bad_annotation_value() {
    assert_refused(
        POWEROFF,
        &["--annotation", "qemu.accel=fast"],
        &["qemu.accel=\"fast\" is not valid"],
    );
}

#[test]
fn an_image_whose_usr_is_a_symlink() {
    let tag = "localhost/crun-qemu-test/bad-usr";
    let disk = env().images.join("poweroff.qcow2");
    scratch_image(
        tag,
        &format!(
            "mkdir -p $M/disk && cp {} $M/disk/ && ln -s /etc $M/usr",
            disk.display()
        ),
    );
    assert_refused(
        tag,
        &[],
        &["/usr in the container image is not a directory"],
    );
}
