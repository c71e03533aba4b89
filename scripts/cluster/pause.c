/*
 * The pod sandbox's pause process: holds the pod's namespaces, reaps the zombies of a pod that
 * shares its PID namespace, and exits 0 on SIGINT or SIGTERM so a sandbox stops cleanly.
 * Built static (`gcc -static -Os`) into a FROM-scratch image by scripts/cluster/images.sh.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

static int on(int sig, void (*handler)(int), int flags) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = handler;
  sa.sa_flags = flags;
  sigemptyset(&sa.sa_mask);
  return sigaction(sig, &sa, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    printf("castnet pause\n");
    return 0;
  }
  /* As PID 1 a signal without a handler is ignored: handle SIGINT/SIGTERM explicitly. */
  if (on(SIGINT, stop, 0) < 0 || on(SIGTERM, stop, 0) < 0 ||
      on(SIGCHLD, reap, SA_NOCLDSTOP | SA_RESTART) < 0) {
    perror("pause: sigaction");
    return 1;
  }
  if (getpid() != 1) fprintf(stderr, "pause: not running as PID 1, will not reap other processes\n");
  for (;;) pause();
}
