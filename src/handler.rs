//! The FFI edge: the vtable crun finds with `run_oci_handler_get_handler`
//! and thin shims around the safe code. Every entry point catches panics and
//! turns errors into crun errors; nothing here can make loading fail.
//!
//! Processes: `modify_oci_configuration` runs in the crun parent (host
//! namespaces); `configure_container` in the container's init before
//! pivot_root; `run_func` in the init after it, as the container's PID 1;
//! `exec_func` in the child of `crun exec`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, Result};
use crun_sys::{custom_handler_s, libcrun_container_s, libcrun_context_s, libcrun_error_s};

use crate::spec::{self, Plan};
use crate::{rootfs_setup, runner, LOG_PREFIX};

/// The plan made in the crun parent. crun forks the container's init from
/// that process, so the init inherits it.
static PLAN: Mutex<Option<Plan>> = Mutex::new(None);
/// Whether the rootfs was already prepared (MOUNTS may be skipped by crun).
static PREPARED: Mutex<bool> = Mutex::new(false);

fn set_plan(plan: Plan) {
    *PLAN.lock().unwrap_or_else(|e| e.into_inner()) = Some(plan);
}

fn current_plan() -> Option<Plan> {
    PLAN.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Stores `msg` as a crun error and returns crun's failure value.
fn to_crun_error(err: *mut *mut libcrun_error_s, msg: &str) -> c_int {
    if err.is_null() {
        return -1;
    }
    let text = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    // SAFETY: crun passes a valid `libcrun_error_t *` and takes ownership of
    // a malloc'd error whose message is malloc'd too (it frees both with
    // free). Both allocations are checked before use.
    unsafe {
        let e = libc::malloc(std::mem::size_of::<libcrun_error_s>()) as *mut libcrun_error_s;
        if e.is_null() {
            return -1;
        }
        (*e).status = 0;
        (*e).msg = libc::strdup(text.as_ptr());
        *err = e;
    }
    -1
}

/// Runs `f`, converting an error or a panic into a crun error.
fn guarded(err: *mut *mut libcrun_error_s, f: impl FnOnce() -> Result<()>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => to_crun_error(err, &format!("{LOG_PREFIX} {e:#}")),
        Err(_) => to_crun_error(
            err,
            &format!("{LOG_PREFIX} internal error (panic), see the message above"),
        ),
    }
}

/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
unsafe fn opt_path(p: *const c_char) -> Option<PathBuf> {
    if p.is_null() {
        None
    } else {
        // SAFETY: guaranteed by the caller.
        Some(PathBuf::from(
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned(),
        ))
    }
}

/// # Safety
/// `context` is NULL or points to crun's context for this command.
unsafe fn bundle_of(context: *const libcrun_context_s) -> Option<PathBuf> {
    if context.is_null() {
        return None;
    }
    // SAFETY: `bundle` is among the context's stable leading fields.
    unsafe { opt_path((*context).bundle) }
}

fn plan_from_bundle(bundle: &Path) -> Result<Plan> {
    let spec = spec::load(bundle)?;
    spec::plan(&spec, bundle)
}

extern "C" fn qemu_load(cookie: *mut *mut c_void, _err: *mut *mut libcrun_error_s) -> c_int {
    // Loading must never fail: any work belongs to the later callbacks.
    if !cookie.is_null() {
        // SAFETY: crun passes a valid slot for the cookie.
        unsafe { *cookie = std::ptr::null_mut() };
    }
    0
}

extern "C" fn qemu_unload(_cookie: *mut c_void, _err: *mut *mut libcrun_error_s) -> c_int {
    0
}

extern "C" fn qemu_modify_oci_configuration(
    _cookie: *mut c_void,
    context: *mut libcrun_context_s,
    _def: *mut c_void,
    err: *mut *mut libcrun_error_s,
) -> c_int {
    guarded(err, || {
        // SAFETY: crun passes its context for this command (or NULL).
        let Some(bundle) = (unsafe { bundle_of(context) }) else {
            return Ok(());
        };
        set_plan(plan_from_bundle(&bundle)?);
        Ok(())
    })
}

extern "C" fn qemu_configure_container(
    _cookie: *mut c_void,
    phase: c_int,
    context: *mut libcrun_context_s,
    _container: *mut libcrun_container_s,
    rootfs: *const c_char,
    err: *mut *mut libcrun_error_s,
) -> c_int {
    // MOUNTS comes before the OCI mounts; crun 1.8 skips it when the config
    // has no mounts, so AFTER_MOUNTS catches up. BEFORE_MOUNTS may run
    // outside the container's mount namespace: never mount there.
    let phase = phase as u32;
    if phase != crun_sys::CRUN_HANDLER_PHASE_MOUNTS
        && phase != crun_sys::CRUN_HANDLER_PHASE_AFTER_MOUNTS
    {
        return 0;
    }
    guarded(err, || {
        let mut prepared = PREPARED.lock().unwrap_or_else(|e| e.into_inner());
        if *prepared {
            return Ok(());
        }
        let plan = match current_plan() {
            Some(plan) => plan,
            None => {
                // SAFETY: crun passes its context for this command (or NULL).
                let bundle = unsafe { bundle_of(context) }
                    .ok_or_else(|| anyhow!("crun gave no bundle directory for the container"))?;
                let plan = plan_from_bundle(&bundle)?;
                set_plan(plan.clone());
                plan
            }
        };
        // SAFETY: crun passes the rootfs path as a valid string (or NULL).
        let rootfs = unsafe { opt_path(rootfs) }
            .ok_or_else(|| anyhow!("crun gave no root filesystem for the container"))?;
        // crun 1.8 replaces errors from this phase with its own text, so
        // say what went wrong on the container's stderr as well.
        rootfs_setup::prepare(&rootfs, plan.state_in_tmpfs)
            .inspect_err(|e| eprintln!("{LOG_PREFIX} {e:#}"))?;
        *prepared = true;
        Ok(())
    })
}

extern "C" fn qemu_run_func(
    _cookie: *mut c_void,
    _container: *mut libcrun_container_s,
    _pathname: *const c_char,
    _argv: *const *mut c_char,
) -> c_int {
    // process.args (podman's `unused`) is ignored: the VM is the workload.
    let code = match catch_unwind(|| match current_plan() {
        Some(plan) => runner::run(&plan),
        None => Err(anyhow!(
            "the container was not prepared by crun-qemu's handler"
        )),
    }) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("{LOG_PREFIX} {e:#}");
            1
        }
        Err(_) => 1,
    };
    // SAFETY: the container's init must not return into crun; _exit ends it
    // with the guest's status without running crun's exit handlers.
    unsafe { libc::_exit(code) }
}

extern "C" fn qemu_exec_func(
    _cookie: *mut c_void,
    _container: *mut libcrun_container_s,
    _pathname: *const c_char,
    _argv: *const *mut c_char,
) -> c_int {
    eprintln!("{LOG_PREFIX} running commands in the guest (podman exec) is not supported yet");
    // SAFETY: ends the exec child, which must not return into crun.
    unsafe { libc::_exit(125) }
}

/// The vtable, read by crun. Wrapped so that it can live in a static.
#[repr(transparent)]
pub struct Vtable(custom_handler_s);
// SAFETY: the table is never written after initialisation; its pointers are
// to 'static strings and functions.
unsafe impl Sync for Vtable {}

pub static VTABLE: Vtable = Vtable(custom_handler_s {
    name: c"qemu".as_ptr(),
    feature_string: c"QEMU".as_ptr(),
    alias: std::ptr::null(),
    load: Some(qemu_load),
    unload: Some(qemu_unload),
    run_func: Some(qemu_run_func),
    exec_func: Some(qemu_exec_func),
    configure_container: Some(qemu_configure_container),
    can_handle_container: None,
    modify_oci_configuration: Some(qemu_modify_oci_configuration),
    close_fds: None,
});

/// The symbol crun looks up after dlopen.
#[no_mangle]
pub extern "C" fn run_oci_handler_get_handler() -> *const custom_handler_s {
    &VTABLE.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(err: *mut libcrun_error_s) -> (i32, String) {
        // SAFETY: `err` was made by to_crun_error: both allocations are
        // malloc'd and owned here, as crun would own them.
        unsafe {
            let msg = CStr::from_ptr((*err).msg).to_string_lossy().into_owned();
            let status = (*err).status;
            libc::free((*err).msg.cast());
            libc::free(err.cast());
            (status, msg)
        }
    }

    #[test]
    fn errors_become_crun_errors() {
        let mut err: *mut libcrun_error_s = std::ptr::null_mut();
        assert_eq!(guarded(&mut err, || Err(anyhow!("no VM image"))), -1);
        assert_eq!(take(err), (0, "crun-qemu: no VM image".to_string()));
        assert_eq!(to_crun_error(std::ptr::null_mut(), "ignored"), -1);
    }

    #[test]
    fn panics_stop_at_the_edge() {
        let mut err: *mut libcrun_error_s = std::ptr::null_mut();
        assert_eq!(guarded(&mut err, || panic!("boom")), -1);
        assert!(take(err).1.contains("internal error"));
        let mut err: *mut libcrun_error_s = std::ptr::null_mut();
        assert_eq!(guarded(&mut err, || Ok(())), 0);
        assert!(err.is_null());
    }

    #[test]
    fn the_vtable_has_crun_s_required_slots() {
        let v = run_oci_handler_get_handler();
        // SAFETY: the vtable is a static that lives for the program.
        let v = unsafe { &*v };
        assert!(v.run_func.is_some() && v.unload.is_some());
        // SAFETY: name is a 'static C string literal.
        assert_eq!(unsafe { CStr::from_ptr(v.name) }, c"qemu");
        let mut cookie = std::ptr::dangling_mut::<c_void>();
        assert_eq!(qemu_load(&mut cookie, std::ptr::null_mut()), 0);
        assert!(cookie.is_null());
    }
}
