/*
 * lostwrites.so: a power-loss model for the fault campaign (tests only).
 *
 * LD_PRELOAD it into a process that writes under $LOSTWRITES_DIR. It keeps a shadow copy,
 * $LOSTWRITES_SHADOW, of what a power cut would leave on disk: a file's content reaches the
 * shadow only when that file is fsync()ed or fdatasync()ed, and a name (create, rename,
 * unlink) only when its directory is fsync()ed. Everything else -- written but not synced --
 * is lost. After killing the process, the test replaces the data directory with the shadow
 * and restarts, exactly as after pulling the plug.
 *
 * Model limits (stated, not hidden): no torn writes inside one fsync'd file, no reordering
 * across fsync points; SQLite's own guarantees are what is being exercised.
 */
#define _GNU_SOURCE
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* inode -> snapshot file holding that inode's content as of its last fsync */
static int snapshot_path(ino_t ino, char *out, size_t n) {
    const char *shadow = getenv("LOSTWRITES_SHADOW");
    if (!shadow) return -1;
    snprintf(out, n, "%s/.inodes/%lu", shadow, (unsigned long)ino);
    return 0;
}

static int copy_fd_to(int src, const char *dst) {
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.part", dst);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) return -1;
    char buf[65536];
    off_t off = 0;
    ssize_t r;
    while ((r = pread(src, buf, sizeof buf, off)) > 0) {
        if (write(out, buf, (size_t)r) != r) { close(out); return -1; }
        off += r;
    }
    close(out);
    return rename(tmp, dst);
}

static int copy_path(const char *src, const char *dst) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    int rc = copy_fd_to(in, dst);
    close(in);
    return rc;
}

/* the path of fd relative to LOSTWRITES_DIR, or NULL when outside it */
static const char *relative(int fd, char *path, size_t n) {
    const char *dir = getenv("LOSTWRITES_DIR");
    if (!dir) return NULL;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, n - 1);
    if (len < 0) return NULL;
    path[len] = 0;
    size_t dl = strlen(dir);
    if (strncmp(path, dir, dl) != 0) return NULL;
    if (path[dl] == 0) return "";
    if (path[dl] != '/') return NULL;
    return path + dl + 1;
}

static void sync_dir(const char *rel) {
    const char *dir = getenv("LOSTWRITES_DIR"), *shadow = getenv("LOSTWRITES_SHADOW");
    char real[PATH_MAX], shad[PATH_MAX];
    snprintf(real, sizeof real, "%s/%s", dir, rel);
    snprintf(shad, sizeof shad, "%s/%s", shadow, rel);
    mkdir(shad, 0700);
    /* names that are gone from the real directory leave the shadow */
    DIR *d = opendir(shad);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.' && (!e->d_name[1] || e->d_name[1] == '.' ||
                                         strcmp(e->d_name, ".inodes") == 0))
                continue;
            char r[PATH_MAX], s[PATH_MAX];
            snprintf(r, sizeof r, "%s/%s", real, e->d_name);
            snprintf(s, sizeof s, "%s/%s", shad, e->d_name);
            struct stat st;
            if (lstat(r, &st) != 0 && e->d_type != DT_DIR) unlink(s);
        }
        closedir(d);
    }
    /* names present now become durable, with their inode's last synced content */
    d = opendir(real);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        char r[PATH_MAX], s[PATH_MAX], snap[PATH_MAX];
        snprintf(r, sizeof r, "%s/%s", real, e->d_name);
        snprintf(s, sizeof s, "%s/%s", shad, e->d_name);
        struct stat st;
        if (lstat(r, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) { mkdir(s, 0700); continue; }
        if (!S_ISREG(st.st_mode)) continue;
        snapshot_path(st.st_ino, snap, sizeof snap);
        if (access(snap, F_OK) == 0) {
            copy_path(snap, s);
        } else if (access(s, F_OK) != 0) {
            /* a new name is durable, its content never was: an empty file. (A name that was
               already durable keeps the content it had at its last sync.) */
            int fd = open(s, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fd >= 0) close(fd);
        }
    }
    closedir(d);
}

static void on_sync(int fd) {
    if (!getenv("LOSTWRITES_SHADOW")) return;
    char path[PATH_MAX];
    const char *rel = relative(fd, path, sizeof path);
    if (!rel) return;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    pthread_mutex_lock(&lock);
    if (S_ISDIR(st.st_mode)) {
        sync_dir(rel);
    } else if (S_ISREG(st.st_mode)) {
        char snap[PATH_MAX], shad[PATH_MAX];
        snapshot_path(st.st_ino, snap, sizeof snap);
        /* the fd may be write-only (O_WRONLY): read through a fresh read-only descriptor */
        char self_fd[64];
        snprintf(self_fd, sizeof self_fd, "/proc/self/fd/%d", fd);
        copy_path(self_fd, snap);
        /* a file whose name is already durable gets its new content under that name */
        snprintf(shad, sizeof shad, "%s/%s", getenv("LOSTWRITES_SHADOW"), rel);
        if (access(shad, F_OK) == 0) copy_path(snap, shad);
    }
    pthread_mutex_unlock(&lock);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    int rc = real(fd);
    if (rc == 0) on_sync(fd);
    return rc;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    int rc = real(fd);
    if (rc == 0) on_sync(fd);
    return rc;
}
