// The one exception type of the library. Every validation failure names the
// argument, and where it makes sense the position and the offending value, so
// that a message alone is enough to find the problem in the caller's data.
#pragma once

#include <stdexcept>
#include <string>

namespace xent {

class error : public std::invalid_argument {
 public:
  // argument: "target", "logits", "weight", "label_smoothing", ...
  error(std::string argument, const std::string& message)
      : std::invalid_argument(message), argument_(std::move(argument)) {}
  const std::string& argument() const noexcept { return argument_; }

 private:
  std::string argument_;
};

}  // namespace xent
