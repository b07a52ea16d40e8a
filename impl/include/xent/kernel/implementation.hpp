// Implementations (kernels) and their registry, after simdjson's
// `implementation` list: tests, benchmarks and reports iterate the registry,
// so a kernel added here is verified and measured everywhere.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xent/kernel/capabilities.hpp"
#include "xent/kernel/problem.hpp"

namespace xent {

// Accuracy tiers (docs/design.md §3), strictest first (the order compares
// them). Every implementation declares one; the property suite enforces it.
// correctly_rounded: every result is the exact value rounded once
// (docs/correct_rounding.md). relaxed: loss and each gradient entry within
// 256 ulp (docs/throughput_kernel.md). The plug-in ABI numbers them apart
// (xent_plugin_tier in xent/kernel/plugin.h; plugins/ converts).
enum class tier { correctly_rounded = -1, accurate = 0, fast = 1, relaxed = 2, standard = 3, naive = 4 };
std::string to_string(tier t);
// The relaxed tier's bound on the loss, each gradient entry and the mean/sum,
// in ulps of the float32 result (the proof: docs/throughput_kernel.md).
inline constexpr double relaxed_tier_ulps = 256.0;

class implementation {
 public:
  virtual ~implementation() = default;

  virtual std::string name() const = 0;
  virtual std::string description() const = 0;
  virtual xent::tier tier() const = 0;
  // Where the tier's bounds hold, in words ("all inputs", ...).
  virtual std::string domain() const = 0;
  // Why this problem is outside the declared domain, or nullopt when inside.
  // Reads the logits; used by tests and reports to separate "outside the
  // domain" from "wrong".
  virtual std::optional<std::string> outside_domain(const problem&) const { return std::nullopt; }
  // Can this CPU run it?
  virtual bool supported() const { return true; }
  // Are results bitwise identical for any thread count?
  virtual bool thread_count_independent() const { return true; }
  // Are results bitwise identical for the same values in any memory layout
  // (a strided view and its contiguous copy)? Our kernels: yes.
  virtual bool layout_independent() const { return true; }
  // An external implementation under test (LibTorch's), not one of ours:
  // registered and checked like the others, marked as a peer by the tools,
  // never the default.
  virtual bool peer() const { return false; }
  // What the kernel declares it supports (xent/kernel/capabilities.hpp), or nullopt
  // for no declaration: everything is tried. The property suite generates
  // cases inside the declaration; a plug-in's UNSUPPORTED inside it fails.
  virtual std::optional<capabilities> declared_capabilities() const { return std::nullopt; }
  // The logits dtypes it computes (dtype_bit: XENT_PLUGIN_DTYPE_FLOAT32,
  // dtype_bfloat16_bit, dtype_float16_bit). The front door refuses a problem
  // of any other dtype with an error naming the kernels that take it.
  virtual std::uint32_t dtypes() const { return XENT_PLUGIN_DTYPE_FLOAT32; }

  // Loss only: writes p.loss.
  virtual void forward(const problem& p) const = 0;
  // Loss and gradient w.r.t. the logits: writes p.loss and p.grad.
  virtual void forward_backward(const problem& p) const = 0;
};

// Every registered implementation, in registration order (ours first).
const std::vector<const implementation*>& implementations();
// nullptr when no implementation has that name.
const implementation* find_implementation(std::string_view name);
// The implementation to use when none is given: $XENT_IMPL when set (an
// unknown or unsupported name is an error), else the most accurate one that
// is supported. Chosen on the first call and kept (the environment is read
// then, not per call); registering an implementation chooses again. Throws
// xent::error.
const implementation& default_implementation();
// Adds an implementation (test-only kernels, external peers, plug-ins). The
// registry owns it. Names must be unique (xent::error otherwise). Not
// thread-safe: register before use.
const implementation& register_implementation(std::unique_ptr<implementation> impl);

}  // namespace xent
