/*
 * The subset of crun's custom handler ABI that crun-qemu relies on, as
 * measured on x86-64 for crun 1.8.1 and later. Only the leading fields of
 * crun's context and container structures are stable between releases, so
 * only those are declared: never read past them, and never allocate these
 * structures (crun owns them).
 */
#ifndef CRUN_QEMU_CRUN_HANDLER_H
#define CRUN_QEMU_CRUN_HANDLER_H

#include <sys/types.h>

/* Name of the function crun looks up in every handler library it dlopens. */
#define CRUN_HANDLER_GET_SYMBOL "run_oci_handler_get_handler"

/* Values passed as `phase` to configure_container. Newer crun versions may
 * pass values not listed here; a handler must ignore them. */
#define CRUN_HANDLER_PHASE_BEFORE_MOUNTS 1
#define CRUN_HANDLER_PHASE_AFTER_MOUNTS 2
#define CRUN_HANDLER_PHASE_MOUNTS 3
#define CRUN_HANDLER_PHASE_BEFORE_USERNS 4

/* An error reported to crun: the handler mallocs both the structure and the
 * message; crun prints and frees them. */
struct libcrun_error_s {
    int status;
    char *msg;
};

/* Stable leading part of crun's per-command context. */
struct libcrun_context_s {
    const char *state_root;
    const char *id;
    const char *bundle;
    const char *console_socket;
    const char *pid_file;
    const char *notify_socket;
    const char *handler;
    int preserve_fds;
    int listen_fds;
    /* crun keeps private fields after this point. */
};

/* Stable leading part of crun's loaded container. */
struct libcrun_container_s {
    void *container_def; /* crun's parsed spec: layout differs per release */
    uid_t host_uid;
    gid_t host_gid;
    uid_t container_uid;
    gid_t container_gid;
    char *config_file;         /* path of config.json, or NULL */
    char *config_file_content; /* JSON text when not loaded from a file */
    /* crun keeps private fields after this point. */
};

/* The handler's table of callbacks. Every slot is pointer-sized; slots a
 * handler does not implement are NULL, except name, run_func and unload.
 * close_fds is read only by crun 1.27.1 and later. */
struct custom_handler_s {
    const char *name;
    const char *feature_string;
    const char *alias;

    int (*load)(void **cookie, struct libcrun_error_s **err);
    int (*unload)(void *cookie, struct libcrun_error_s **err);

    int (*run_func)(void *cookie, struct libcrun_container_s *container,
                    const char *pathname, char *const argv[]);
    int (*exec_func)(void *cookie, struct libcrun_container_s *container,
                     const char *pathname, char *const argv[]);

    int (*configure_container)(void *cookie, int phase,
                               struct libcrun_context_s *context,
                               struct libcrun_container_s *container,
                               const char *rootfs, struct libcrun_error_s **err);

    int (*can_handle_container)(struct libcrun_container_s *container,
                                struct libcrun_error_s **err);

    int (*modify_oci_configuration)(void *cookie, struct libcrun_context_s *context,
                                    void *container_def,
                                    struct libcrun_error_s **err);

    int (*close_fds)(void *cookie, struct libcrun_container_s *container,
                     int preserve_fds, struct libcrun_error_s **err);
};

/* Signature of CRUN_HANDLER_GET_SYMBOL. */
typedef struct custom_handler_s *(*handler_get_fn)(void);

#endif
