//! The interactive keys, driven through a real terminal (tmux): ctrl-a x
//! aborts the VM; ctrl-p ctrl-q detaches and `podman attach` comes back to
//! the live console.

mod common;

use std::process::Command;

use common::*;

struct Tmux(String);

impl Tmux {
    fn start(name: &str, shell_command: &str) -> Tmux {
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "160",
                "-y",
                "50",
                shell_command,
            ])
            .status()
            .unwrap();
        assert!(ok.success(), "cannot start tmux");
        Tmux(name.to_string())
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-S", "-200", "-t", &self.0])
            .output()
            .unwrap();
        text(&out.stdout)
    }

    fn wait_for(&self, needle: &str, secs: u64) -> String {
        wait_for(secs, &format!("{needle:?} on the terminal"), || {
            let s = self.screen();
            s.contains(needle).then_some(s)
        })
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.0.as_str()];
        args.extend(keys);
        assert!(Command::new("tmux").args(&args).status().unwrap().success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

fn run_line(name: &str, status_file: &std::path::Path) -> String {
    let e = env();
    format!(
        "podman run --runtime={} --security-opt label=disable --annotation qemu.accel=tcg -it --name {name} {WAIT} unused; \
         echo EXIT=$? > {}; sleep 600",
        e.launcher.display(),
        status_file.display()
    )
}

fn read_status(file: &std::path::Path, secs: u64) -> String {
    wait_for(secs, "the podman command to end", || {
        std::fs::read_to_string(file)
            .ok()
            .filter(|s| s.ends_with('\n'))
    })
    .trim()
    .to_string()
}

#[test]
fn ctrl_a_x_aborts_the_vm_with_a_non_zero_status() {
    let name = unique("ctrlax");
    let _c = Container(name.clone());
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status");
    let tmux = Tmux::start(&name, &run_line(&name, &status));
    tmux.wait_for("TEST-GUEST: waiting for the power button", 120);
    tmux.keys(&["C-a", "x"]);
    assert_eq!(read_status(&status, 60), "EXIT=130", "{}", tmux.screen());
    assert!(
        tmux.screen()
            .contains("crun-qemu: the VM was stopped from the host"),
        "{}",
        tmux.screen()
    );
}

#[test]
fn detach_and_attach_reach_the_live_console() {
    let name = unique("attach");
    let _c = Container(name.clone());
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status");
    let tmux = Tmux::start(&name, &run_line(&name, &status));
    tmux.wait_for("TEST-GUEST: waiting for the power button", 120);
    // podman's detach keys, as a user types them: one, then the other.
    tmux.keys(&["C-p"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    tmux.keys(&["C-q"]);
    assert_eq!(read_status(&status, 30), "EXIT=0", "{}", tmux.screen());
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");

    let attach_status = dir.path().join("attach-status");
    let attach = Tmux::start(
        &format!("{name}-a"),
        &format!(
            "podman attach {name}; echo EXIT=$? > {}; sleep 600",
            attach_status.display()
        ),
    );
    // The guest's shell answers on the reattached console.
    wait_for(60, "the guest's shell to answer after attach", || {
        attach.keys(&["echo attach-$((40+2))", "Enter"]);
        std::thread::sleep(std::time::Duration::from_millis(700));
        attach
            .screen()
            .lines()
            .any(|l| l.trim() == "attach-42")
            .then_some(())
    });
    let stop = podman(&["stop", "-t", "60", &name]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert_eq!(
        read_status(&attach_status, 60),
        "EXIT=0",
        "{}",
        attach.screen()
    );
    assert_eq!(inspect(&name, "{{.State.ExitCode}}"), "0");
    assert!(
        attach.screen().contains("TEST-GUEST: power button pressed"),
        "{}",
        attach.screen()
    );
}
