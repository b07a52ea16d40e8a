// A scratch allocation that fails is an xent::error naming the buffer and its
// size, and leaves the outputs untouched: never a crash, never
// std::terminate (an exception escaping an OpenMP region would be one).
//
// Each case runs in a forked child: inputs and poisoned outputs are allocated
// first, the kernel is warmed up on a small problem (OpenMP threads and their
// stacks exist), its scratch released, and then RLIMIT_AS is lowered to the
// address space in use plus a few MiB, so that the large problem's scratch
// cannot be mapped. The child reports through its exit code and a pipe.
//
// This binary is separate from the other unit tests so that the parent
// process never starts OpenMP before forking (libgomp's thread pool does not
// survive fork).
#include <gtest/gtest.h>
#include <malloc.h>
#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "xent/kernel.hpp"
#include "xent/xent.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define XENT_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XENT_UNDER_ASAN 1
#endif
#endif

namespace {

// Address space left to the child above what it has mapped when the limit is set.
constexpr std::size_t kHeadroom = std::size_t{4} << 20;

enum outcome : int {
  clean_error = 0,   // xent::error naming the scratch and its bytes, nothing written
  completed = 1,     // the call returned normally (it needed no more than the headroom)
  bad_message = 2,   // xent::error without the allocation's name or size
  wrote_output = 3,  // xent::error, but an output or an input changed
  other_error = 4,   // any other exception
  setup_failed = 5,
};

struct problem_case {
  const char* name;
  std::int64_t N, C;
  xent::reduction reduce;
};

// Scratch far above the headroom: 8 bytes per position for a mean (the
// losses: every kernel; 2^21 positions, 16 MiB); 8 bytes per
// class of a row for loss + gradient (the simd kernels, 4 for throughput;
// 2^21 classes, 8 MiB a buffer): rows on two threads for openmp, then one long row whose chunks
// are spread over the threads. Inputs and outputs stay below 32 MiB each.
const problem_case cases[] = {
    {"position_scratch", std::int64_t{1} << 21, 2, xent::reduction::mean},
    {"row_scratch", 4, std::int64_t{1} << 21, xent::reduction::none},
    {"long_row_scratch", 1, std::int64_t{1} << 21, xent::reduction::none},
};

#ifndef XENT_UNDER_ASAN  // the child's machinery: unused where the test is skipped

constexpr std::uint32_t kPoison = 0x7fbadbadu;  // a NaN payload no kernel writes

std::size_t mapped_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long pages = 0;
  const int got = std::fscanf(f, "%llu", &pages);
  std::fclose(f);
  return got == 1 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

bool all_poison(const std::vector<float>& v) {
  for (float f : v) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    if (u != kPoison) return false;
  }
  return true;
}

void poison(std::vector<float>& v) {
  float f;
  std::memcpy(&f, &kPoison, 4);
  std::fill(v.begin(), v.end(), f);
}

void call(const xent::implementation* impl, std::int64_t N, std::int64_t C, xent::reduction r,
          const std::vector<float>& x, const std::vector<std::int64_t>& t, std::vector<float>& loss,
          std::vector<float>& grad) {
  xent::options o;
  o.reduce = r;
  const xent::tensor_view out = r == xent::reduction::none ? xent::view(loss.data(), {N}) : xent::view(loss.data(), {});
  xent::cross_entropy_forward_backward(xent::view(x.data(), {N, C}), xent::view(t.data(), {N}), out,
                                       xent::view(grad.data(), {N, C}), o, nullptr, impl);
}

struct problem_data {
  std::vector<float> x;
  std::vector<std::int64_t> t;
  std::vector<float> loss, grad;
  problem_data(std::int64_t N, std::int64_t C, xent::reduction r)
      : x(static_cast<std::size_t>(N * C)),
        t(static_cast<std::size_t>(N)),
        loss(r == xent::reduction::none ? static_cast<std::size_t>(N) : 1),
        grad(x.size()) {
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 13) * 0.25f - 1.0f;
    for (std::int64_t p = 0; p < N; ++p) t[static_cast<std::size_t>(p)] = (p * 7) % C;
  }
};

// The child: never returns.
[[noreturn]] void child(const xent::implementation* impl, const problem_case& c, int fd) {
  auto report = [&](outcome o, const std::string& text) {
    const ssize_t w = write(fd, text.data(), text.size());
    (void)w;
    _exit(o);
  };
  // Every large allocation maps fresh address space (glibc's adaptive
  // threshold could otherwise serve it from a heap already reserved, which
  // RLIMIT_AS does not see).
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  omp_set_num_threads(2);
  try {
    problem_data big(c.N, c.C, c.reduce);
    for (const auto& [n, cl] : {std::pair<std::int64_t, std::int64_t>{2048, 64}, {1, 131072}}) {
      problem_data warm(n, cl, c.reduce);
      call(impl, n, cl, c.reduce, warm.x, warm.t, warm.loss, warm.grad);
    }
    xent::release_scratch();
    poison(big.loss);
    poison(big.grad);
    const std::vector<float> x0 = big.x;
    rlimit lim{};
    if (getrlimit(RLIMIT_AS, &lim) != 0) report(setup_failed, "getrlimit failed");
    const std::size_t now = mapped_bytes();
    if (now == 0) report(setup_failed, "cannot read /proc/self/statm");
    lim.rlim_cur = now + kHeadroom;
    if (setrlimit(RLIMIT_AS, &lim) != 0) report(setup_failed, "setrlimit failed");
    try {
      call(impl, c.N, c.C, c.reduce, big.x, big.t, big.loss, big.grad);
    } catch (const xent::error& e) {
      const std::string m = e.what();
      if (m.find("scratch") == std::string::npos || m.find("bytes") == std::string::npos ||
          m.find("allocate") == std::string::npos)
        report(bad_message, m);
      if (!all_poison(big.loss) || !all_poison(big.grad) || big.x != x0)
        report(wrote_output, "outputs or inputs changed; error: " + m);
      report(clean_error, m);
    }
    report(completed, "returned normally");
  } catch (const std::exception& e) {
    report(other_error, std::string("exception: ") + e.what());
  } catch (...) {
    report(other_error, "unknown exception");
  }
  _exit(setup_failed);  // not reached: every path above reports
}

#endif  // XENT_UNDER_ASAN

class scratch_limit
    : public ::testing::TestWithParam<std::tuple<const xent::implementation*, const problem_case*>> {};

TEST_P(scratch_limit, failed_allocation_is_a_clean_error) {
#ifdef XENT_UNDER_ASAN
  GTEST_SKIP() << "RLIMIT_AS cannot limit allocations under AddressSanitizer (its shadow memory "
                  "reserves terabytes of address space); covered by the release build";
#else
  const auto [impl, c] = GetParam();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::fflush(nullptr);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    child(impl, *c, fds[1]);
  }
  close(fds[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_FALSE(WIFSIGNALED(status)) << impl->name() << " " << c->name << ": child killed by signal "
                                    << WTERMSIG(status) << " (" << strsignal(WTERMSIG(status)) << ")";
  ASSERT_TRUE(WIFEXITED(status));
  const int code = WEXITSTATUS(status);
  std::printf("[%s %s] %s\n", impl->name().c_str(), c->name, text.c_str());
  // Every kernel takes position scratch; the simd kernels also row scratch.
  const std::string name = impl->name();
  const bool must_fail =
      std::string(c->name) == "position_scratch" || name == "simd" || name == "openmp" || name == "throughput";
  if (must_fail) {
    EXPECT_EQ(code, clean_error) << text;
  } else {
    EXPECT_TRUE(code == clean_error || code == completed) << text;
  }
#endif
}

std::vector<const problem_case*> all_cases() {
  std::vector<const problem_case*> v;
  for (const auto& c : cases) v.push_back(&c);
  return v;
}

INSTANTIATE_TEST_SUITE_P(all, scratch_limit,
                         ::testing::Combine(::testing::ValuesIn(xent::implementations()),
                                            ::testing::ValuesIn(all_cases())),
                         [](const auto& p) {
                           return std::get<0>(p.param)->name() + "_" + std::get<1>(p.param)->name;
                         });

}  // namespace
