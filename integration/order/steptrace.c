/*
 * steptrace OUT BINARY CMD [ARG...]: run CMD, single-stepping it and every
 * process it forks or clones, and write to OUT the offsets (from the start
 * of BINARY's image) of the instructions of BINARY that ran, each once, in
 * the order they first ran. A development tool: gen-order.sh turns the
 * offsets into the link order of hutch's functions (see README there).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_IMAGE (64u << 20)
#define MAX_PIDS 64

static unsigned char seen[MAX_IMAGE / 8];
static struct { pid_t pid; uintptr_t base, end; } procs[MAX_PIDS];
static char binary[4096];

/* The range BINARY is mapped at in `pid` (0, 0 when it is not there). */
static void image_of(pid_t pid, uintptr_t *base, uintptr_t *end) {
    char path[64], line[4096 + 128];
    *base = *end = 0;
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off;
        char name[4096] = "";
        if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %4095s", &lo, &hi, &off, name) < 3) continue;
        if (strcmp(name, binary) != 0) continue;
        if (off == 0 && (*base == 0 || lo < *base)) *base = lo;
        if (hi > *end) *end = hi;
    }
    fclose(f);
}

static int slot(pid_t pid) {
    for (int i = 0; i < MAX_PIDS; i++) if (procs[i].pid == pid) return i;
    for (int i = 0; i < MAX_PIDS; i++) if (procs[i].pid == 0) { procs[i].pid = pid; procs[i].base = 0; return i; }
    fprintf(stderr, "steptrace: too many processes\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: steptrace OUT BINARY CMD [ARG...]\n"); return 2; }
    FILE *out = fopen(argv[1], "a");
    if (!out || !realpath(argv[2], binary)) { perror("steptrace"); return 2; }
    pid_t child = fork();
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        execvp(argv[3], argv + 3);
        _exit(127);
    }
    int status, live = 1, first = 1, code = 0;
    while (live > 0) {
        pid_t pid = waitpid(-1, &status, __WALL);
        if (pid < 0) { if (errno == EINTR) continue; break; }
        int i = slot(pid);
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            if (pid == child) code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            procs[i].pid = 0;
            live--;
            continue;
        }
        if (!WIFSTOPPED(status)) continue;
        int sig = WSTOPSIG(status), event = status >> 16, inject = 0;
        if (first) {
            first = 0;
            ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK |
                   PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
        } else if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK) {
            live++;
        } else if (event == PTRACE_EVENT_EXEC) {
            procs[i].base = 0;
        } else if (sig == SIGTRAP) {
            struct user_regs_struct r;
            if (procs[i].base == 0) image_of(pid, &procs[i].base, &procs[i].end);
            if (ptrace(PTRACE_GETREGS, pid, 0, &r) == 0 && r.rip >= procs[i].base && r.rip < procs[i].end) {
                uintptr_t off = r.rip - procs[i].base;
                if (off < MAX_IMAGE && !(seen[off / 8] & (1 << (off % 8)))) {
                    seen[off / 8] |= 1 << (off % 8);
                    fprintf(out, "%lx\n", (unsigned long)off);
                }
            }
        } else if (sig != SIGSTOP || event != 0) {
            inject = (event == 0) ? sig : 0;
        }
        ptrace(PTRACE_SINGLESTEP, pid, 0, inject);
    }
    fclose(out);
    return code;
}
