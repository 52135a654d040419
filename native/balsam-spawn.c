/*
 * balsam-spawn: starts a launcher's job processes so that the launcher does
 * not fork. A Node launcher's fork() copies its page tables (1+ ms of system
 * CPU a job at a launcher's 100-300 MiB, measured) and blocks its event loop
 * until the child has exec'd; this small process starts jobs as vfork() does
 * (clone with CLONE_VM|CLONE_VFORK: nothing is copied), and the launcher only
 * writes a request and reads a line.
 *
 * Requests on stdin, one after another: a decimal byte count and '\n', then
 * that many bytes of NUL-terminated fields:
 *   id, cwd, output file, flags ("m" = make cwd first), argc, argv...,
 *   envc, NAME=value... (added to or replacing this process's environment).
 * argv[0] must be a path (the launcher resolves it on the job's PATH).
 * flags may also hold "dMS": the job's fence deadline, MS in CLOCK_MONOTONIC
 * milliseconds (absolute: a launcher frozen between computing and writing it
 * cannot push it later). A request whose first field is "D" moves deadlines:
 *   D, MS, id...      each listed job's deadline becomes MS (never a passed one)
 * Replies on stdout, one line each:
 *   s ID PID          started
 *   f ID MESSAGE      could not start (nothing runs)
 *   k ID              fenced: its deadline passed, its session was killed
 *   x ID CODE SIGNAL SIZE
 *                     exited (CODE -1 when killed by SIGNAL, SIGNAL 0 otherwise);
 *                     SIZE: its output file's size then, -1 when it cannot be
 *                     read (most short jobs print nothing, and the launcher then
 *                     reads nothing: its stat from Node cost ~4% of its CPU)
 *
 * The fence (DESIGN §6.2): only the launcher's successful lease renewals move
 * a deadline, and this process keeps time while the launcher is frozen or cut
 * off. TERM_LEAD_MS (argv[2], default 0) before a deadline the job's process
 * group gets SIGTERM (mpirun and srun pass it to the ranks on every node); at
 * the deadline the group and every process of the job's session get SIGKILL,
 * and the job's output file gets a last line saying so.
 *
 * Each job gets its own session (its process group is its own, so a group
 * kill reaches its children) and SIGKILL as parent-death signal: when this
 * process dies, the jobs' main processes die. This process has the same
 * signal for the launcher's death, and stops when its stdin closes, killing
 * the groups of jobs still running: no job outlives its launcher.
 *
 * The job table (argv[3], optional: an open file descriptor): the pid of
 * each live job, one line of TABLE_LINE bytes per slot ("%10d\n", spaces
 * when free), written in place as jobs start and end. The launcher's
 * watchdog reads it when the launcher (and with it this process) dies, and
 * sweeps those jobs' sessions: what a job forked outside its process group
 * dies too, without the launcher telling the watchdog of every job (two
 * pipe writes and a bash wakeup per job, ~0.13 ms of the watchdog's CPU and
 * the launcher's writes, measured).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <dirent.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* deadline: CLOCK_MONOTONIC ms; 0 = none, -1 = fenced already. */
struct job { pid_t pid; char *id; char *out; long long deadline; int termed; long slot; };
static struct job *jobs;
static size_t njobs, capjobs;

#define TABLE_LINE 11
static int table_fd = -1;
static char *slot_used;
static size_t nslots;
/*
 * Set once stdin closes. From then on a reaped job's line stays: this
 * process killed only the job's group, and what the job put in other groups
 * of its session is for the watchdog to sweep, from this table. When the
 * launcher dies, the kernel closes its files (our stdin) before it sends
 * the parent-death signal that kills us, and we may reap jobs in between: a
 * CI run saw a job's child in a group of its own outlive a launcher killed
 * -9, the job's line blanked before the watchdog read it.
 */
static int stdin_closed;

/* Writes the job's line in the table (pid 0: the slot is free again); a failed write only loses the sweep's help. */
static void table_put(long slot, pid_t pid) {
  if (table_fd < 0 || slot < 0) return;
  char line[TABLE_LINE + 1];
  if (pid > 0) snprintf(line, sizeof line, "%10d\n", (int)pid);
  else memcpy(line, "          \n", TABLE_LINE);
  if (pwrite(table_fd, line, TABLE_LINE, (off_t)slot * TABLE_LINE) < 0) {}
}

/* The lowest free slot, taken; -1 without a table (or out of memory). */
static long table_take(pid_t pid) {
  if (table_fd < 0) return -1;
  size_t i = 0;
  while (i < nslots && slot_used[i]) i++;
  if (i == nslots) {
    char *more = realloc(slot_used, nslots * 2 + 16);
    if (!more) return -1;
    memset(more + nslots, 0, nslots + 16);
    slot_used = more;
    nslots = nslots * 2 + 16;
  }
  slot_used[i] = 1;
  table_put((long)i, pid);
  return (long)i;
}

static void table_free(long slot) {
  if (slot < 0) return;
  table_put(slot, 0);
  slot_used[slot] = 0;
}

static long long term_lead_ms;

static char out[1 << 16];
static size_t outlen;

static void flush_out(void) {
  size_t off = 0;
  while (off < outlen) {
    ssize_t w = write(1, out + off, outlen - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      _exit(1); /* the launcher is gone */
    }
    off += (size_t)w;
  }
  outlen = 0;
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
  va_list ap;
  char line[1024];
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) { n = sizeof line - 1; line[n - 1] = '\n'; }
  if (outlen + (size_t)n > sizeof out) flush_out();
  memcpy(out + outlen, line, (size_t)n);
  outlen += (size_t)n;
}

static int mkdirs(char *path) {
  struct stat st;
  /* The common case, a job's new directory in its workflow's, is one system
     call: walking down from / cost a stat and a mkdir per level (six here),
     each a path lookup, for every job. */
  if (mkdir(path, 0777) == 0) return 0;
  if (errno == EEXIST) return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : (errno = ENOTDIR, -1);
  if (errno != ENOENT) return -1;
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    int r = mkdir(path, 0777);
    int e = errno;
    *p = '/';
    if (r < 0 && e != EEXIST) return errno = e, -1;
  }
  if (mkdir(path, 0777) < 0 && errno != EEXIST) return -1;
  return 0;
}

/* environ with each of add[] (NAME=value) added or replacing its NAME. */
static char **merged_env(char **add, size_t nadd) {
  size_t nbase = 0;
  while (environ[nbase]) nbase++;
  char **env = malloc((nbase + nadd + 1) * sizeof *env);
  if (!env) return NULL;
  size_t n = 0;
  for (size_t i = 0; i < nbase; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    int replaced = 0;
    for (size_t j = 0; j < nadd && !replaced; j++)
      if (strncmp(add[j], environ[i], klen) == 0 && add[j][klen] == '=') replaced = 1;
    if (!replaced) env[n++] = environ[i];
  }
  for (size_t j = 0; j < nadd; j++) env[n++] = add[j];
  env[n] = NULL;
  return env;
}

static sigset_t chld;

struct child {
  char **argv, **env;
  const char *cwd;
  int fd;
  pid_t parent;
  /* Set by the child when it could not exec; read once it is gone. */
  int err;
  const char *step;
};

/*
 * The child, on a stack of its own (clone with CLONE_VM|CLONE_VFORK, as
 * glibc's posix_spawn does, which has no parent-death signal): it shares this
 * process's memory until it execs, so it makes system calls only.
 */
static int child_main(void *p) {
  struct child *c = p;
  sigset_t none;
  sigemptyset(&none);
  if (setsid() < 0) { c->err = errno; c->step = "setsid"; _exit(127); }
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) { c->err = errno; c->step = "prctl"; _exit(127); }
  /* The helper died before the signal was set: the job must not run orphaned. */
  if (getppid() != c->parent) _exit(127);
  if (chdir(c->cwd) < 0) { c->err = errno; c->step = "chdir"; _exit(127); }
  if (dup2(c->fd, 1) < 0 || dup2(c->fd, 2) < 0) { c->err = errno; c->step = "dup2"; _exit(127); }
  int nul = open("/dev/null", O_RDONLY);
  if (nul >= 0 && nul != 0) { dup2(nul, 0); close(nul); }
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(c->argv[0], c->argv, c->env);
  c->err = errno;
  c->step = "exec";
  _exit(127);
}

static char child_stack[256 * 1024] __attribute__((aligned(16)));

static void start(char **f, size_t nf) {
  /* id, cwd, out, flags, argc, argv..., envc, env... */
  if (nf < 6) { reply("f ? malformed request\n"); return; }
  char *id = f[0], *cwd = f[1], *outfile = f[2], *flags = f[3];
  size_t argc = strtoul(f[4], NULL, 10);
  if (argc == 0 || 5 + argc >= nf) { reply("f %s malformed request\n", id); return; }
  char **argv = &f[5];
  size_t envc = strtoul(f[5 + argc], NULL, 10);
  if (6 + argc + envc != nf) { reply("f %s malformed request\n", id); return; }
  char **add = &f[6 + argc];

  if (strchr(flags, 'm') && mkdirs(cwd) < 0) {
    reply("f %s cannot make the working directory: %s\n", id, strerror(errno));
    return;
  }
  int fd = open(outfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) { reply("f %s cannot open the output file: %s\n", id, strerror(errno)); return; }
  char **env = merged_env(add, envc);
  if (!env) { close(fd); reply("f %s out of memory\n", id); return; }
  char *saved = argv[argc];
  argv[argc] = NULL;

  struct child c = { argv, env, cwd, fd, getpid(), 0, "" };
  pid_t pid = clone(child_main, child_stack + sizeof child_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &c);
  int e = errno;
  argv[argc] = saved;
  free(env);
  close(fd);
  if (pid < 0) { reply("f %s clone: %s\n", id, strerror(e)); return; }
  if (c.err) {
    /* It exited without exec'ing: reap it here, it was never a job. */
    waitpid(pid, NULL, 0);
    if (strcmp(c.step, "exec") == 0) reply("f %s %s: %s\n", id, argv[0], strerror(c.err));
    else reply("f %s %s: %s\n", id, c.step, strerror(c.err));
    return;
  }
  if (njobs == capjobs) {
    capjobs = capjobs ? capjobs * 2 : 64;
    jobs = realloc(jobs, capjobs * sizeof *jobs);
    if (!jobs) _exit(1);
  }
  const char *d = strchr(flags, 'd');
  jobs[njobs] = (struct job){ pid, strdup(id), strdup(outfile), d ? strtoll(d + 1, NULL, 10) : 0, 0, table_take(pid) };
  njobs++;
  reply("s %s %d\n", id, (int)pid);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * SIGKILL to every process whose session or process group is `sid`, for up
 * to three rounds (catching processes forked meanwhile): mpirun (Open MPI
 * 4.1, measured) gives each local rank its own process group in the job's
 * session. The watchdog in services/launcher/runner.ts sweeps the same way.
 */
static void sweep_session(pid_t sid) {
  for (int round = 0; round < 3; round++) {
    int found = 0;
    DIR *proc = opendir("/proc");
    if (!proc) return;
    struct dirent *e;
    while ((e = readdir(proc))) {
      pid_t p = (pid_t)atoi(e->d_name);
      if (p <= 0) continue;
      char path[64], line[512];
      snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      ssize_t n = read(fd, line, sizeof line - 1);
      close(fd);
      if (n <= 0) continue;
      line[n] = 0;
      char *rp = strrchr(line, ')');
      char state;
      int ppid, pgrp, session;
      if (!rp || sscanf(rp + 2, "%c %d %d %d", &state, &ppid, &pgrp, &session) != 4 || state == 'Z') continue;
      if ((session == sid || pgrp == sid) && kill(p, SIGKILL) == 0) found = 1;
    }
    closedir(proc);
    if (!found) return;
  }
}

/* The kill at the deadline; "k" was told when the job was first fenced (at its SIGTERM, or now). */
static void fence(struct job *j) {
  if (!j->termed) reply("k %s\n", j->id);
  kill(-j->pid, SIGKILL);
  sweep_session(j->pid);
  j->deadline = -1;
  int fd = open(j->out, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return;
  char at[32], line[256];
  time_t t = time(NULL);
  struct tm tm;
  strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  int n = snprintf(line, sizeof line, "balsam: fenced at %s: the launcher could not renew this job's lease in time; its processes were killed so that it never runs twice at once\n", at);
  if (write(fd, line, (size_t)n) < 0) {}
  close(fd);
}

/* Acts on deadlines due; returns the poll timeout until the next one (-1: none). */
static int fence_due(void) {
  long long now = now_ms(), next = -1;
  for (size_t i = 0; i < njobs; i++) {
    struct job *j = &jobs[i];
    if (j->deadline <= 0) continue;
    if (now >= j->deadline) { fence(j); continue; }
    long long term = j->deadline - term_lead_ms;
    /* From its SIGTERM on the job is fenced: a late renewal no longer saves it. */
    if (!j->termed && now >= term) { j->termed = 1; reply("k %s\n", j->id); kill(-j->pid, SIGTERM); }
    long long at = j->termed ? j->deadline : term;
    if (next < 0 || at < next) next = at;
  }
  if (next < 0) return -1;
  return (int)(next - now > 60000 ? 60000 : next - now);
}

/* "D", MS, id...: moves the deadlines of jobs not fenced yet. */
static void set_deadlines(char **f, size_t nf) {
  if (nf < 2) { reply("f ? malformed request\n"); return; }
  long long ms = strtoll(f[1], NULL, 10);
  for (size_t k = 2; k < nf; k++)
    for (size_t i = 0; i < njobs; i++) {
      struct job *j = &jobs[i];
      if (strcmp(j->id, f[k]) != 0) continue;
      if (j->deadline >= 0 && !j->termed) j->deadline = ms;
      break;
    }
}

static void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (size_t i = 0; i < njobs; i++) {
      if (jobs[i].pid != pid) continue;
      /* Ended by its fence's SIGTERM: the rest of its session goes now, and its output says so. */
      if (jobs[i].termed && jobs[i].deadline > 0) fence(&jobs[i]);
      /* What the job left in its group goes with it: the node's share it held goes to the next job (the launcher did this kill, at an exception per job when, as mostly, nothing was left). */
      kill(-pid, SIGKILL);
      if (!stdin_closed) table_free(jobs[i].slot);
      struct stat st;
      long long size = stat(jobs[i].out, &st) == 0 ? (long long)st.st_size : -1;
      if (WIFSIGNALED(status)) reply("x %s -1 %d %lld\n", jobs[i].id, WTERMSIG(status), size);
      else reply("x %s %d 0 %lld\n", jobs[i].id, WEXITSTATUS(status), size);
      free(jobs[i].id);
      free(jobs[i].out);
      jobs[i] = jobs[--njobs];
      break;
    }
  }
}

int main(int argc, char **argv) {
  /* argv[1]: the launcher's pid; this process dies with it. */
  if (argc < 2) { fprintf(stderr, "usage: balsam-spawn LAUNCHER_PID [TERM_LEAD_MS [TABLE_FD]]\n"); return 2; }
  pid_t launcher = (pid_t)atoi(argv[1]);
  if (argc > 2) term_lead_ms = strtoll(argv[2], NULL, 10);
  if (argc > 3) {
    table_fd = atoi(argv[3]);
    /* Not an open descriptor: no table (the launcher then tells the watchdog of each job). */
    if (table_fd <= 2 || fcntl(table_fd, F_SETFD, FD_CLOEXEC) < 0) table_fd = -1;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != launcher) return 1;
  signal(SIGPIPE, SIG_DFL);
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) { perror("balsam-spawn: signalfd"); return 1; }

  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  char **fields = NULL;
  size_t capf = 0;
  if (!buf) return 1;
  int open_in = 1;
  while (open_in || njobs) {
    struct pollfd p[2] = { { sfd, POLLIN, 0 }, { 0, POLLIN, 0 } };
    int np = open_in ? 2 : 1;
    /* Deadlines first: a request read later never saves a job whose deadline passed. */
    int wait = fence_due();
    flush_out();
    if (poll(p, (nfds_t)np, wait) < 0) { if (errno == EINTR) continue; return 1; }
    fence_due();
    if (p[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) > 0) {}
      reap();
    }
    if (np == 2 && p[1].revents) {
      if (len == cap) { cap *= 2; buf = realloc(buf, cap); if (!buf) return 1; }
      ssize_t r = read(0, buf + len, cap - len);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        /* The launcher stopped or died: end every job still running. */
        open_in = 0;
        stdin_closed = 1;
        for (size_t i = 0; i < njobs; i++) kill(-jobs[i].pid, SIGKILL);
      } else {
        len += (size_t)r;
        size_t off = 0;
        for (;;) {
          char *nl = memchr(buf + off, '\n', len - off);
          if (!nl) break;
          size_t size = strtoul(buf + off, NULL, 10);
          size_t body = (size_t)(nl - buf) + 1;
          if (len - body < size) {
            if (body + size > cap) {
              /* Make room for the whole request. */
              memmove(buf, buf + off, len - off);
              len -= off; body -= off; off = 0;
              while (body + size > cap) cap *= 2;
              buf = realloc(buf, cap);
              if (!buf) return 1;
            }
            break;
          }
          off = body + size;
          if (size == 0 || buf[body + size - 1] != 0) {
            reply("f ? malformed request\n");
            continue;
          }
          size_t nf = 0;
          for (size_t i = body; i < body + size; i++) if (buf[i] == 0) nf++;
          if (nf + 1 > capf) { capf = nf + 16; fields = realloc(fields, capf * sizeof *fields); if (!fields) return 1; }
          size_t k = 0;
          for (size_t i = body; i < body + size; ) { fields[k++] = buf + i; i += strlen(buf + i) + 1; }
          fields[k] = NULL;
          if (strcmp(fields[0], "D") == 0) set_deadlines(fields, nf);
          else start(fields, nf);
        }
        memmove(buf, buf + off, len - off);
        len -= off;
      }
    }
    flush_out();
  }
  flush_out();
  return 0;
}
