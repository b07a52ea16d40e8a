#include "xent/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>

namespace xent::plugins {

child_outcome run_in_child(const std::function<void(int out_fd)>& work, double timeout_s) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe failed: ") + std::strerror(errno));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    close(fds[0]);
    close(fds[1]);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(e));
  }
  if (pid == 0) {
    // Its own process group, so that a hang kills what it forked too; and it
    // dies with its parent (Ctrl-C, or a parent killed on its own timeout),
    // also when the parent died before prctl took effect. The write end
    // stays open until this process ends, so the parent sees the pipe close
    // exactly then.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    close(fds[0]);
    int status = 0;
    try {
      work(fds[1]);
    } catch (...) {
      status = 1;
    }
    std::cout.flush();
    std::fflush(nullptr);
    _exit(status);  // no static destructors (LibTorch's, the registry's) in the child
  }
  setpgid(pid, pid);  // also here: whichever runs first
  close(fds[1]);
  child_outcome r;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  bool hung = false;
  char buf[65536];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      hung = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    const int p = poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (p < 0 && errno == EINTR) continue;
    if (p == 0) continue;
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // end of file (or an error): the child is gone
    r.output.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  if (hung) kill(-pid, SIGKILL);  // the group: the child and anything it forked
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (hung) {
    r.how = child_outcome::ending::hung;
  } else if (WIFSIGNALED(st)) {
    r.how = child_outcome::ending::signaled;
    r.status = WTERMSIG(st);
  } else {
    r.how = child_outcome::ending::exited;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  return r;
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  const char* desc = sigdescr_np(sig);
  std::string s = abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
  if (desc) s += std::string(" (") + desc + ")";
  return s;
}

}  // namespace xent::plugins
