/*
 * Loads a handler library the way crun does (dlopen with RTLD_NOW, then the
 * get-handler symbol) and checks its vtable through c-headers/crun-handler.h.
 * Usage: load-handler LIBRARY. Prints the name and feature string.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "crun-handler.h"

int main(int argc, char **argv)
{
    void *lib;
    handler_get_fn get;
    struct custom_handler_s *h;
    void *cookie = (void *) 1;
    struct libcrun_error_s *err = NULL;

    if (argc != 2) {
        fprintf(stderr, "usage: %s LIBRARY\n", argv[0]);
        return 2;
    }
    lib = dlopen(argv[1], RTLD_NOW);
    if (lib == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    get = (handler_get_fn) dlsym(lib, CRUN_HANDLER_GET_SYMBOL);
    if (get == NULL) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    h = get();
    if (h == NULL || h->name == NULL || h->run_func == NULL || h->unload == NULL) {
        fprintf(stderr, "vtable lacks a required slot\n");
        return 1;
    }
    if (h->load != NULL && (h->load(&cookie, &err) != 0 || err != NULL)) {
        fprintf(stderr, "load failed\n");
        return 1;
    }
    printf("name=%s feature=%s alias=%s exec=%s configure=%s modify=%s close_fds=%s\n", h->name,
           h->feature_string ? h->feature_string : "(null)", h->alias ? h->alias : "(null)",
           h->exec_func ? "yes" : "no", h->configure_container ? "yes" : "no",
           h->modify_oci_configuration ? "yes" : "no", h->close_fds ? "yes" : "no");
    return 0;
}
