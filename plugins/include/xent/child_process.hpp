// Running work in a forked child process, so that a crash, an exit() or a
// hang in it becomes an outcome the parent reports instead of its own end.
// The one runner behind `xent verify`'s per-property children and the
// plug-in loader's per-call isolation.
#pragma once

#include <functional>
#include <string>

namespace xent::plugins {

struct child_outcome {
  enum class ending {
    exited,    // exit status in `status` (0: work returned)
    signaled,  // killed by the signal in `status`
    hung,      // still running at the timeout: killed with its process group
  };
  ending how = ending::exited;
  int status = 0;
  std::string output;  // everything the child wrote to out_fd (also on a crash or a hang)

  bool returned() const { return how == ending::exited && status == 0; }
};

// Forks; the child runs work(out_fd) and ends with _exit(0) when it returns
// (status 1 when it throws), so no static destructor runs in it. The child
// leads its own process group, killed whole on the timeout (with anything the
// child forked), and dies with its parent (PR_SET_PDEATHSIG). The parent reads
// out_fd until the child ends or timeout_s passes, then reaps it. stdio is
// flushed before the fork so that buffered output is not written twice.
// Throws std::runtime_error when the pipe or the fork fails.
child_outcome run_in_child(const std::function<void(int out_fd)>& work, double timeout_s);

// The name of a signal ("SIGSEGV (Segmentation fault)").
std::string signal_name(int sig);

}  // namespace xent::plugins
